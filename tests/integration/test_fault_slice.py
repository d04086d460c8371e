"""The fault campaign's slice (issue 21), run by `make test`: 3 hosts in network namespaces
run a private federation; a registry workload and chat requests come from outside while the
leader is isolated, healed, then paused with SIGSTOP and resumed, each for a few seconds.
`make faults` runs the full campaign (six faults, 3 and 5 nodes). Needs root and `ip netns`:
skipped, with the reason, elsewhere."""

from pathlib import Path

import pytest

from fpai_node.testing.netns.campaign import (
    ALIVE_WITHIN_S,
    SLICE,
    CampaignConfig,
    CampaignResult,
    PhaseResult,
    run_campaign,
)
from fpai_node.testing.netns.preflight import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
FAULTS = ["leader-isolated", "leader-paused"]


@pytest.fixture(scope="module")
def campaign(gguf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> CampaignResult:
    reason = unavailable()
    if reason:
        pytest.skip(f"fault slice skipped: {reason}")
    result = run_campaign(
        CampaignConfig(
            nodes=3,
            faults=FAULTS,
            report_dir=tmp_path_factory.mktemp("faults"),
            timing=SLICE,
            model=gguf_model,
        )
    )
    assert result.markdown is not None
    print(result.markdown.read_text())
    return result


@pytest.fixture(params=FAULTS)
def phase(campaign: CampaignResult, request: pytest.FixtureRequest) -> PhaseResult:
    return next(p for p in campaign.phases if p.fault == request.param)


def test_the_workload_ran_through_the_fault(phase: PhaseResult) -> None:
    assert phase.counts["writes_acknowledged"] >= 20, phase.counts


def test_gossip_saw_the_fault(phase: PhaseResult) -> None:
    """The fault lasted long enough for gossip to declare deaths: the heal checks below
    measure a real recovery, not a blip nobody noticed."""
    assert phase.expected_deaths > 0


def test_no_acknowledged_write_is_lost(phase: PhaseResult) -> None:
    assert phase.lost == []


def test_the_history_is_linearizable(phase: PhaseResult) -> None:
    assert phase.violations == {}


def test_the_minority_acknowledges_nothing(phase: PhaseResult) -> None:
    assert phase.minority_acks == 0


def test_every_node_sees_every_other_alive_soon_after_the_heal(phase: PhaseResult) -> None:
    alive = phase.recovery.all_alive
    assert alive is not None and alive <= ALIVE_WITHIN_S, (
        f"{phase.fault}: every node saw every other alive "
        f"{'never' if alive is None else f'{alive:.1f} s'} after the heal"
    )


def test_chat_answers_again_through_every_gateway(phase: PhaseResult) -> None:
    """No node restarts in these two faults: each gateway must route again by itself."""
    silent = {
        n: phase.recovery.chat_errors.get(n) for n, t in phase.recovery.chat.items() if t is None
    }
    assert not silent, f"{phase.fault}: no chat answer after the heal through {silent}"
    assert len(phase.recovery.chat) == 3
