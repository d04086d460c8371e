"""Limits one peer or one host cannot get around: per-peer token buckets stop a flooding peer
before any signature is checked (PEER-4); per-address slots stop one host from holding every
connection still in its handshake (PEER-5)."""

import ipaddress
import time
from collections import Counter
from collections.abc import Hashable
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


def address_group(ip: str) -> str:
    """The unit a limit counts: an IPv4 address, or an IPv6 /64 (one host gets a whole /64)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d from a dual-stack socket
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Slots:
    """Connections in some phase (a handshake not finished, a hello not said), by remote
    address: `total` in all, at most `per_address` from one address group, so one host cannot
    hold them all (PEER-5, RAFT-3)."""

    def __init__(self, total: int, per_address: int) -> None:
        self._total = total
        self._per_address = per_address
        self._held: dict[Hashable, str] = {}
        self._by_group: Counter[str] = Counter()

    def refusal(self, ip: str) -> str | None:
        """Why a connection from `ip` gets no slot now, or None."""
        if len(self._held) >= self._total:
            return "too_many_handshakes"
        if self._by_group[address_group(ip)] >= self._per_address:
            return "too_many_handshakes_from_address"
        return None

    def take(self, holder: Hashable, ip: str) -> None:
        """Hold a slot for `holder` (after `refusal` said there is one) until `release`."""
        group = address_group(ip)
        self._held[holder] = group
        self._by_group[group] += 1

    def __len__(self) -> int:
        """Slots held now."""
        return len(self._held)

    def release(self, holder: Hashable) -> None:
        group = self._held.pop(holder, None)
        if group is not None:
            self._by_group[group] -= 1
            if not self._by_group[group]:
                del self._by_group[group]
