"""Per-peer token buckets: a flooding peer is stopped before any signature is checked (PEER-4)."""

import time
from dataclasses import dataclass

MAX_BUCKETS = 4096  # per-peer rate state kept; full buckets are the first forgotten


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per peer, with bounded memory."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, peer: str) -> bool:
        now = time.monotonic()
        if peer not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            self._forget_full_buckets(now)
        bucket = self._buckets.setdefault(peer, _Bucket(self._burst, now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_full_buckets(self, now: float) -> None:
        """A bucket that has refilled is the same as no bucket: drop those, then the oldest."""
        for peer, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self._rate >= self._burst:
                del self._buckets[peer]
        while len(self._buckets) >= MAX_BUCKETS:
            del self._buckets[min(self._buckets, key=lambda p: self._buckets[p].updated)]
