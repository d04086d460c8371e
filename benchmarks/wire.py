"""Cost of the signed envelope over bare Ed25519 (specs/0002-wire.md), measured on this machine.

    .venv/bin/python benchmarks/wire.py

For two payloads (a `peer.ping` and a ~4 KiB body) it measures, in one process:

- sign:   raw Ed25519 signing of the exact bytes an envelope signs (`SIGNATURE_DOMAIN + signed`)
          against `seal` (build the header, canonical-encode it, sign, encode the frame);
- verify: raw Ed25519 verification of the same bytes against `open_envelope` (length check,
          canonical decode of frame and header, field checks, node-id check, verify, replay
          guard). Every opened frame carries a fresh sequence number, so each one is accepted.

Each figure is the best of 3 repetitions of ~1 s after a warm-up. Reading the table: `raw` and
`envelope` are operations per second; `env/raw` is envelope throughput as a fraction of raw
throughput (1.00 = the envelope is free); `overhead` is the extra time per operation the envelope
adds on top of the signature primitive, in microseconds. Absolute numbers depend on the CPU; the
ratio and the overhead are what to compare between runs.
"""

import itertools
import os
import platform
import sys
import time
from collections.abc import Callable

import cryptography
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fpai_node.identity import NodeKey
from fpai_node.wire import codec
from fpai_node.wire.envelope import SIGNATURE_DOMAIN, open_envelope, seal
from fpai_node.wire.messages import MESSAGE_TYPES, Ping
from fpai_node.wire.replay import ReplayGuard

NOW_MS = 1_767_225_600_000
REPETITIONS = 3
TARGET_SECONDS = 1.0
WARMUP_SECONDS = 0.2
POOL = 4096  # distinct pre-sealed frames for the open benchmark; the guard is renewed per pass
BIG_TYPE = "bench.blob"


def measure(make_batch: Callable[[int], Callable[[], None]]) -> float:
    """Best ops/s over REPETITIONS runs of ~TARGET_SECONDS. `make_batch(n)` returns a function
    doing n operations; setup done in make_batch is not timed."""
    n = 64
    while True:  # warm-up and calibration
        batch = make_batch(n)
        start = time.perf_counter()
        batch()
        elapsed = time.perf_counter() - start
        if elapsed >= WARMUP_SECONDS:
            break
        n *= 2
    n = max(1, int(n * TARGET_SECONDS / elapsed))
    best = 0.0
    for _ in range(REPETITIONS):
        batch = make_batch(n)
        start = time.perf_counter()
        batch()
        elapsed = time.perf_counter() - start
        best = max(best, n / elapsed)
    return best


def bench_payload(key: NodeKey, msg_type: str, payload: bytes) -> dict[str, float]:
    seq = itertools.count(1)
    sample = seal(key, msg_type, payload, seq=next(seq), now_ms=NOW_MS)
    signed, signature = codec.decode(sample)  # type: ignore[misc]
    message = SIGNATURE_DOMAIN + signed
    private = key.private_key
    public = Ed25519PublicKey.from_public_bytes(key.public_key)
    known = MESSAGE_TYPES | {BIG_TYPE}
    frames = [seal(key, msg_type, payload, seq=next(seq), now_ms=NOW_MS) for _ in range(POOL)]

    def raw_sign(n: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                private.sign(message)

        return run

    def envelope_seal(n: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                seal(key, msg_type, payload, seq=next(seq), now_ms=NOW_MS)

        return run

    def raw_verify(n: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                public.verify(signature, message)

        return run

    def envelope_open(n: int) -> Callable[[], None]:
        # Each pass over the pool uses a new guard, so every frame is accepted (seq unseen).
        def run() -> None:
            done = 0
            while done < n:
                guard = ReplayGuard()
                for frame in frames[: n - done]:
                    open_envelope(frame, now_ms=NOW_MS, known_types=known, replay_guard=guard)
                done += min(POOL, n - done)

        return run

    # sanity: the measured operations do what they claim
    public.verify(private.sign(message), message)
    guard = ReplayGuard()
    assert all(
        open_envelope(f, now_ms=NOW_MS, known_types=known, replay_guard=guard).payload == payload
        for f in frames[:8]
    )

    return {
        "frame_bytes": len(sample),
        "raw_sign": measure(raw_sign),
        "seal": measure(envelope_seal),
        "raw_verify": measure(raw_verify),
        "open": measure(envelope_open),
    }


def main() -> None:
    key = NodeKey.from_seed(bytes(range(32)))
    ping = Ping(bytes(range(16))).encode()
    big = codec.encode({"data": os.urandom(4096 - 12)})  # ~4 KiB of canonical payload
    cases = [("ping", Ping.TYPE, ping), ("4 KiB", BIG_TYPE, big)]

    print(
        f"fpai wire benchmark: Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; best of {REPETITIONS} x ~{TARGET_SECONDS:.0f} s"
    )
    header = (
        f"{'payload':<8} {'frame B':>8} {'operation':<16} {'raw ops/s':>11} "
        f"{'envelope ops/s':>15} {'env/raw':>8} {'overhead µs/op':>15}"
    )
    print(header)
    print("-" * len(header))
    for name, msg_type, payload in cases:
        r = bench_payload(key, msg_type, payload)
        for label, raw, env in (
            ("sign vs seal", r["raw_sign"], r["seal"]),
            ("verify vs open", r["raw_verify"], r["open"]),
        ):
            overhead_us = (1 / env - 1 / raw) * 1e6
            print(
                f"{name:<8} {int(r['frame_bytes']):>8} {label:<16} {raw:>11,.0f} "
                f"{env:>15,.0f} {env / raw:>8.2f} {overhead_us:>15.1f}"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
