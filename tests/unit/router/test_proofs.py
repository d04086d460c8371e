"""ROUTE-9: which announced (peer, model) pairs count, and when unproven ones are probed."""

from fpai_node.router.proofs import (
    DEFER_MIN_S,
    FIRST_RETRY_S,
    MAX_PROBES_IN_FLIGHT,
    MAX_RETRY_S,
    ModelProofs,
    is_probe_body,
    probe_bodies,
)


def test_a_pair_counts_once_answered_and_is_forgotten_when_no_longer_announced() -> None:
    proofs = ModelProofs()
    assert not proofs.proven("b", "m")
    proofs.answered("b", "m")
    assert proofs.proven("b", "m")
    assert proofs.status() == {"b": ["m"]}
    assert proofs.due({("b", "m")}, 0.0) == []  # nothing left to probe
    proofs.due(set(), 1.0)
    assert not proofs.proven("b", "m")


def test_unproven_pairs_are_probed_a_few_at_a_time() -> None:
    proofs = ModelProofs()
    announced = {(f"n{i}", "m") for i in range(MAX_PROBES_IN_FLIGHT + 2)}
    first = proofs.due(announced, 0.0)
    assert len(first) == MAX_PROBES_IN_FLIGHT
    assert proofs.due(announced, 0.0) == []  # every slot busy
    proofs.probed(first[0], answered=True, now=0.0)
    assert proofs.proven(*first[0])
    assert len(proofs.due(announced, 0.0)) == 1  # one slot freed


def test_a_failed_probe_waits_longer_each_time_up_to_ten_minutes() -> None:
    proofs = ModelProofs()
    pair = {("n", "m")}
    assert proofs.due(pair, 0.0) == [("n", "m")]
    proofs.probed(("n", "m"), answered=False, now=0.0)
    assert proofs.due(pair, FIRST_RETRY_S - 0.1) == []
    assert proofs.due(pair, FIRST_RETRY_S) == [("n", "m")]
    proofs.probed(("n", "m"), answered=False, now=FIRST_RETRY_S)
    assert proofs.due(pair, 3 * FIRST_RETRY_S - 0.1) == []  # then twice as long
    for _ in range(10):
        proofs.probed(("n", "m"), answered=False, now=100.0)
    assert proofs.due(pair, 100.0 + MAX_RETRY_S - 0.1) == []
    assert proofs.due(pair, 100.0 + MAX_RETRY_S) == [("n", "m")]


def test_a_busy_peer_is_asked_again_after_its_retry_after_doubling_up_to_a_failures_wait() -> None:
    """Two nodes probing a one-sequence server at once: one of them is refused as busy, and
    must not wait as long as for a peer that failed (that took 10 s to list a model)."""
    proofs, pair = ModelProofs(), ("n", "m")
    assert proofs.due({pair}, 0.0) == [pair]
    proofs.probed(pair, answered=False, now=0.0, deferred_s=2.0)
    assert proofs.due({pair}, 1.9) == []
    assert proofs.due({pair}, 2.0) == [pair]
    proofs.probed(pair, answered=False, now=2.0, deferred_s=2.0)
    assert proofs.due({pair}, 5.9) == []
    assert proofs.due({pair}, 6.0) == [pair]  # twice as long while it stays busy
    for _ in range(5):
        proofs.probed(pair, answered=False, now=10.0, deferred_s=3.0)
    assert proofs.due({pair}, 10.0 + FIRST_RETRY_S - 0.1) == []
    assert proofs.due({pair}, 10.0 + FIRST_RETRY_S) == [pair]  # never longer than a failure's
    proofs.probed(pair, answered=False, now=30.0)  # a real failure: its own schedule
    assert proofs.due({pair}, 30.0 + FIRST_RETRY_S - 0.1) == []
    assert proofs.due({pair}, 30.0 + FIRST_RETRY_S) == [pair]
    proofs.probed(pair, answered=False, now=50.0, deferred_s=0.0)  # busy again: from the start
    assert proofs.due({pair}, 50.0 + DEFER_MIN_S - 0.1) == []  # a Retry-After of 0 is 1 s
    assert proofs.due({pair}, 50.0 + DEFER_MIN_S) == [pair]
    proofs.probed(pair, answered=True, now=51.0)
    assert proofs.proven(*pair)


def test_probes_are_one_token_completions_then_one_embedding() -> None:
    (first, body), (second, _) = probe_bodies('m "x"')
    assert (first, second) == ("completion", "embeddings")
    assert b'"max_tokens": 1' in body and b'"model": "m \\"x\\""' in body


def test_a_probe_of_a_pair_no_longer_announced_frees_its_slot() -> None:
    """Review finding: a probe whose pair vanished held its slot for good."""
    proofs = ModelProofs()
    pairs = {(f"n{i}", "m") for i in range(MAX_PROBES_IN_FLIGHT)}
    assert len(proofs.due(pairs, 0.0)) == MAX_PROBES_IN_FLIGHT
    assert proofs.due({("new", "m")}, 0.0) == [("new", "m")]  # the old ones are gone


def test_a_server_serves_only_the_probes_written_in_route_9() -> None:
    (api, body), (second_api, second_body) = probe_bodies("m")
    assert is_probe_body(api, "m", body) and is_probe_body(second_api, "m", second_body)
    longer = body.replace(b'"Hi"', b'"' + b"x" * 4096 + b'"')
    assert not is_probe_body(api, "m", longer)  # a probe is no free inference
    assert not is_probe_body(api, "other", body)
