"""Identifiers cut from blocks of kernel randomness: each byte used once, any length served."""

import os

import pytest

from fpai_node.entropy import RandomBytes, random_hex


def test_blocks_are_cut_without_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[bytes] = []
    real = os.urandom

    def urandom(n: int) -> bytes:
        fetched.append(real(n))
        return fetched[-1]

    monkeypatch.setattr(os, "urandom", urandom)
    source = RandomBytes(block_bytes=64)
    taken = [source.take(16) for _ in range(8)]
    assert len(fetched) == 2  # 8 keys of 16 bytes: two blocks of 64, one system call each
    assert b"".join(taken) == b"".join(fetched)  # every byte once, in order
    assert len(source.take(100)) == 100  # over a block: straight from the kernel
    assert len(fetched) == 3


def test_request_ids_are_distinct_hex() -> None:
    ids = {random_hex() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 32 for i in ids)
    int(next(iter(ids)), 16)
