"""Test ports: each pytest-xdist worker picks from a slice of its own (`make test` runs two)."""

from itertools import pairwise

import pytest

from fpai_node.testing import registry_cluster
from fpai_node.testing.registry_cluster import PORT_SPAN, free_port, worker_port_slice

EPHEMERAL_START = 32768  # Linux's default


def test_alone_a_process_picks_from_the_whole_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert worker_port_slice(EPHEMERAL_START) == (EPHEMERAL_START - PORT_SPAN, EPHEMERAL_START)


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_workers_pick_from_disjoint_slices_of_the_span(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    slices = []
    for worker in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        slices.append(worker_port_slice(EPHEMERAL_START))
    for (low, high), (next_low, _) in pairwise(slices):
        assert low < high <= next_low
    assert slices[0][0] == EPHEMERAL_START - PORT_SPAN
    assert slices[-1][1] <= EPHEMERAL_START


def test_a_worker_is_given_ports_only_from_its_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setattr(registry_cluster, "_ephemeral_start", lambda: EPHEMERAL_START)
    low, high = worker_port_slice(EPHEMERAL_START)
    assert low == EPHEMERAL_START - PORT_SPAN // 2
    assert all(low <= free_port() < high for _ in range(50))


def test_a_low_ephemeral_range_keeps_the_privileged_ports_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    low, high = worker_port_slice(5000)
    assert (low, high) == (1024, 1024 + (5000 - 1024) // 2)
