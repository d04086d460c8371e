"""The routing policy (fpai_node/router/select.py, ROUTE-3..ROUTE-6): least expected queue first,
the local node winning ties, then load bucket, then latency, then a rendezvous hash; unhealthy
peers after healthy ones and too-small contexts last, never dropped."""

import hashlib
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.router.jobs import parse_job
from fpai_node.router.select import (
    CHARS_PER_TOKEN,
    LOAD_BUCKET_PERMILLE,
    UNKNOWN_LATENCY_MS,
    Candidate,
    LocalOffer,
    PeerOffer,
    estimate_prompt_tokens,
    rank,
)

LOCAL = "fpn1localaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def peer(name: str, **overrides: object) -> PeerOffer:
    fields: dict[str, object] = {
        "node_id": name,
        "peer_address": f"{name}.example:7100",
        "context_length": 0,
        "load_permille": 0,
        "queue_depth": 0,
        "healthy": True,
    }
    fields.update(overrides)
    return PeerOffer(**fields)  # type: ignore[arg-type]


def free(context_length: int | None = None) -> LocalOffer:
    return LocalOffer(running=0, capacity=2, waiting=0, context_length=context_length)


def busy(waiting: int = 0) -> LocalOffer:
    return LocalOffer(running=2, capacity=2, waiting=waiting, context_length=None)


def order(
    *peers: PeerOffer,
    local: LocalOffer | None = None,
    request_id: str = "req-1",
    prompt_tokens: int = 10,
) -> list[str]:
    ranked = rank(
        request_id=request_id,
        prompt_tokens=prompt_tokens,
        local_id=LOCAL,
        local=local,
        peers=peers,
    )
    return [c.node_id for c in ranked]


# --- the local node -----------------------------------------------------------------------------


def test_local_with_a_free_slot_comes_first_and_is_marked_local() -> None:
    ranked = rank(
        request_id="r",
        prompt_tokens=10,
        local_id=LOCAL,
        local=free(),
        peers=[peer("a"), peer("b", latency_ms=0.1)],
    )
    assert ranked[0] == Candidate(LOCAL, "", 0)
    assert ranked[0].local
    assert [c.local for c in ranked[1:]] == [False, False]
    assert {c.peer_address for c in ranked[1:]} == {"a.example:7100", "b.example:7100"}


def test_busy_local_gives_way_to_an_idle_healthy_peer() -> None:
    ranked = rank(request_id="r", prompt_tokens=10, local_id=LOCAL, local=busy(), peers=[peer("a")])
    assert ranked == [Candidate("a", "a.example:7100", 0), Candidate(LOCAL, "", 1)]


def test_busy_local_wins_the_tie_against_a_peer_with_the_same_expected_queue() -> None:
    ranked = rank(
        request_id="r",
        prompt_tokens=10,
        local_id=LOCAL,
        local=busy(),
        peers=[peer("a", queue_depth=1), peer("b", inflight=1), peer("c", load_permille=1000)],
    )
    assert ranked[0] == Candidate(LOCAL, "", 1)
    assert [c.expected_queue for c in ranked] == [1, 1, 1, 1]


def test_local_expected_queue_is_waiting_plus_one_when_every_slot_is_taken() -> None:
    assert rank(request_id="r", prompt_tokens=1, local_id=LOCAL, local=busy(3), peers=[]) == [
        Candidate(LOCAL, "", 4)
    ]
    waiting = LocalOffer(running=1, capacity=2, waiting=3, context_length=None)
    assert rank(request_id="r", prompt_tokens=1, local_id=LOCAL, local=waiting, peers=[]) == [
        Candidate(LOCAL, "", 3)
    ]
    # a shorter queue on a peer beats the local node's longer one
    assert order(peer("a", queue_depth=3), local=busy(3)) == ["a", LOCAL]


def test_without_a_local_offer_only_peers_are_ranked() -> None:
    assert order(peer("a"), local=None) == ["a"]
    assert order(local=None) == []


def test_a_peer_with_the_local_id_is_ignored() -> None:
    ranked = rank(
        request_id="r",
        prompt_tokens=10,
        local_id=LOCAL,
        local=busy(),
        peers=[peer(LOCAL), peer("a", queue_depth=5)],
    )
    assert ranked == [Candidate(LOCAL, "", 1), Candidate("a", "a.example:7100", 5)]
    assert order(peer(LOCAL), local=None) == []


# --- peers: expected queue, health, load, latency -----------------------------------------------


def test_peers_are_ordered_by_expected_queue() -> None:
    ranked = rank(
        request_id="r",
        prompt_tokens=10,
        local_id=LOCAL,
        local=None,
        peers=[
            peer("deep", queue_depth=2, latency_ms=1.0),
            peer("inflight", inflight=2, latency_ms=2.0),
            peer("full", load_permille=1000, latency_ms=1.0),
            peer("mixed", queue_depth=1, inflight=1, load_permille=1200),
            peer("idle", latency_ms=400.0, load_permille=900),
        ],
    )
    assert [(c.node_id, c.expected_queue) for c in ranked] == [
        ("idle", 0),
        ("full", 1),
        ("deep", 2),
        ("inflight", 2),
        ("mixed", 3),
    ]


def test_full_load_adds_exactly_one_to_the_expected_queue() -> None:
    def queue(load: int) -> int:
        [candidate] = rank(
            request_id="r",
            prompt_tokens=1,
            local_id=LOCAL,
            local=None,
            peers=[peer("a", queue_depth=4, load_permille=load)],
        )
        return candidate.expected_queue

    assert [queue(load) for load in (0, 999, 1000, 1001, 5000)] == [4, 4, 5, 5, 5]


def test_unhealthy_peers_come_after_every_healthy_one() -> None:
    ranked = order(
        peer("sick-idle", healthy=False, latency_ms=1.0),
        peer("well-deep", queue_depth=9, load_permille=990, latency_ms=900.0),
        peer("sick-deep", healthy=False, queue_depth=3),
        local=busy(5),
    )
    assert ranked == [LOCAL, "well-deep", "sick-idle", "sick-deep"]


def test_loads_within_one_bucket_are_equal_and_latency_decides() -> None:
    assert LOAD_BUCKET_PERMILLE == 250
    # 0 and 249 share a bucket: the faster peer wins despite its higher load
    assert order(
        peer("a", load_permille=0, latency_ms=30.0), peer("b", load_permille=249, latency_ms=10.0)
    ) == [
        "b",
        "a",
    ]
    assert order(
        peer("a", load_permille=500, latency_ms=30.0), peer("b", load_permille=749, latency_ms=10.0)
    ) == [
        "b",
        "a",
    ]
    # 249 and 250 do not: the lower bucket wins despite its higher latency
    assert order(
        peer("a", load_permille=249, latency_ms=300.0), peer("b", load_permille=250, latency_ms=1.0)
    ) == [
        "a",
        "b",
    ]


def test_expected_queue_outranks_load_and_latency() -> None:
    assert order(
        peer("queued", queue_depth=1, latency_ms=1.0),
        peer("loaded", load_permille=990, latency_ms=500.0),
    ) == ["loaded", "queued"]


def test_an_unmeasured_peer_ranks_with_the_unknown_latency() -> None:
    assert UNKNOWN_LATENCY_MS == 50.0
    unknown = peer("unknown")
    assert order(unknown, peer("fast", latency_ms=UNKNOWN_LATENCY_MS - 1)) == ["fast", "unknown"]
    assert order(unknown, peer("slow", latency_ms=UNKNOWN_LATENCY_MS + 1)) == ["unknown", "slow"]
    # exactly the unknown latency is a tie: the hash decides, the same way for both spellings
    for request_id in ("r1", "r2", "r3", "r4", "r5", "r6"):
        tied = order(
            unknown, peer("measured", latency_ms=UNKNOWN_LATENCY_MS), request_id=request_id
        )
        renamed = order(peer("unknown"), peer("measured"), request_id=request_id)
        assert tied == renamed


# --- context length -----------------------------------------------------------------------------


def test_estimate_rounds_up_to_whole_tokens() -> None:
    """ROUTE-2: ceil(characters / 4)."""
    assert CHARS_PER_TOKEN == 4
    assert [estimate_prompt_tokens(c) for c in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_the_characters_counted_are_the_prompts() -> None:
    """ROUTE-2: chat counts the messages' contents, completion the prompt, embeddings every
    input."""
    chat = b'{"model": "m", "messages": [{"role": "system", "content": "abc"}, '
    chat += b'{"role": "user", "content": "d\xc3\xa9f"}]}'
    assert parse_job("chat", chat).prompt_chars == 6
    assert parse_job("completion", b'{"model": "m", "prompt": "hello"}').prompt_chars == 5
    embeddings = b'{"model": "m", "input": ["ab", "cde"]}'
    assert parse_job("embeddings", embeddings).prompt_chars == 5


def test_a_context_too_small_by_the_estimate_goes_last_but_is_kept() -> None:
    """ROUTE-2: a non-zero context not above the estimate is too small; 0 is unknown."""
    tokens = estimate_prompt_tokens(4000)  # 1000
    ranked = order(
        peer("exact", context_length=tokens),  # prompt_tokens >= context: too small
        peer("small", context_length=tokens - 1),
        peer("roomy", context_length=tokens + 1, queue_depth=7),
        peer("unknown", context_length=0, queue_depth=8),  # 0: the peer did not say, it fits
        peer("sick", healthy=False, queue_depth=9),
        local=None,
        prompt_tokens=tokens,
    )
    assert ranked[:3] == ["roomy", "unknown", "sick"]
    assert sorted(ranked[3:]) == ["exact", "small"]


def test_a_local_context_too_small_goes_after_unhealthy_peers() -> None:
    ranked = order(
        peer("sick", healthy=False, queue_depth=3),
        peer("small", context_length=100),
        local=LocalOffer(running=0, capacity=1, waiting=0, context_length=100),
        prompt_tokens=100,
    )
    assert ranked == ["sick", LOCAL, "small"]  # local still wins the tie among the too-small
    assert order(local=LocalOffer(0, 1, 0, 101), prompt_tokens=100) == [LOCAL]
    assert order(peer("a"), local=LocalOffer(0, 1, 0, None), prompt_tokens=10**9)[0] == LOCAL
    assert order(peer("a"), local=LocalOffer(0, 1, 0, 0), prompt_tokens=10**9)[0] == LOCAL


# --- the rendezvous tie-break -------------------------------------------------------------------


def test_equal_peers_share_the_first_place_across_request_ids() -> None:
    peers = (peer("a", latency_ms=20.0), peer("b", latency_ms=20.0))
    firsts = Counter(order(*peers, request_id=f"req-{i}")[0] for i in range(1000))
    assert set(firsts) == {"a", "b"}
    assert 350 <= firsts["a"] <= 650 and 350 <= firsts["b"] <= 650, firsts


def test_three_equal_peers_each_lead_a_fair_share() -> None:
    peers = [peer(name) for name in ("a", "b", "c")]
    firsts = Counter(order(*peers, request_id=f"id.{i}")[0] for i in range(1500))
    assert all(350 <= firsts[name] <= 650 for name in "abc"), firsts


def test_the_tie_break_is_deterministic_for_one_request_and_ignores_input_order() -> None:
    peers = [peer(name) for name in ("a", "b", "c", "d")]
    for i in range(50):
        request_id = f"req-{i}"
        first = order(*peers, request_id=request_id)
        assert order(*peers, request_id=request_id) == first
        assert order(*reversed(peers), request_id=request_id) == first


def test_the_tie_break_never_overrides_a_real_difference() -> None:
    for i in range(200):
        assert order(peer("a", latency_ms=5.0), peer("b", latency_ms=6.0), request_id=f"r{i}") == [
            "a",
            "b",
        ]


# --- property: a permutation, sorted by the documented key --------------------------------------

names = st.text("abcdefghij", min_size=1, max_size=3)
peers_strategy = st.lists(
    st.builds(
        PeerOffer,
        node_id=st.one_of(names, st.just(LOCAL)),
        peer_address=st.just(""),  # replaced below by a unique address
        context_length=st.sampled_from([0, 10, 50, 100, 1000]),
        load_permille=st.integers(0, 1500),
        queue_depth=st.integers(0, 4),
        healthy=st.booleans(),
        inflight=st.integers(0, 3),
        latency_ms=st.none() | st.floats(0, 200, allow_nan=False),
    ),
    max_size=8,
    unique_by=lambda p: p.node_id,
)
locals_strategy = st.none() | st.builds(
    LocalOffer,
    running=st.integers(0, 4),
    capacity=st.integers(1, 4),
    waiting=st.integers(0, 4),
    context_length=st.none() | st.sampled_from([0, 10, 50, 100, 1000]),
)


def documented_key(
    candidate: Candidate,
    offers: dict[str, PeerOffer],
    local: LocalOffer | None,
    prompt_tokens: int,
    request_id: str,
) -> tuple[int, int, int, int, float, bytes]:
    """ROUTE-5: tier, expected queue, this node before peers, load // 250, latency, then
    BLAKE2b-64 of request_id || 0x00 || node_id."""

    def fits(context: int) -> bool:
        return context == 0 or prompt_tokens < context

    if candidate.local:
        assert local is not None
        queue = local.waiting + (1 if local.running >= local.capacity else 0)
        tier = 0 if fits(local.context_length or 0) else 2
        return (tier, queue, 0, 0, 0.0, b"")
    offer = offers[candidate.node_id]
    queue = offer.queue_depth + offer.inflight + (1 if offer.load_permille >= 1000 else 0)
    tier = 2 if not fits(offer.context_length) else (0 if offer.healthy else 1)
    latency = UNKNOWN_LATENCY_MS if offer.latency_ms is None else offer.latency_ms
    spread = hashlib.blake2b(
        request_id.encode() + b"\x00" + offer.node_id.encode(), digest_size=8
    ).digest()
    return (tier, queue, 1, offer.load_permille // LOAD_BUCKET_PERMILLE, latency, spread)


@settings(max_examples=400, deadline=None)
@given(peers_strategy, locals_strategy, st.integers(0, 2000), st.text(max_size=8))
def test_rank_is_a_permutation_of_the_eligible_sorted_by_the_key(
    raw: list[PeerOffer], local: LocalOffer | None, prompt_tokens: int, request_id: str
) -> None:
    offers = {
        p.node_id: PeerOffer(
            p.node_id,
            f"{p.node_id}:7100",
            p.context_length,
            p.load_permille,
            p.queue_depth,
            p.healthy,
            p.inflight,
            p.latency_ms,
        )
        for p in raw
    }
    ranked = rank(
        request_id=request_id,
        prompt_tokens=prompt_tokens,
        local_id=LOCAL,
        local=local,
        peers=list(offers.values()),
    )
    eligible = {n for n in offers if n != LOCAL} | ({LOCAL} if local is not None else set())
    assert sorted(c.node_id for c in ranked) == sorted(eligible)
    assert all(c.local == (c.node_id == LOCAL) for c in ranked)
    for c in ranked:
        if not c.local:
            assert c.peer_address == offers[c.node_id].peer_address
    keys = [documented_key(c, offers, local, prompt_tokens, request_id) for c in ranked]
    assert [k[1] for k in keys] == [c.expected_queue for c in ranked]
    assert keys == sorted(keys), list(zip(ranked, keys, strict=True))
    assert len(set(keys)) == len(keys)  # the hash leaves no tie: the order is fully defined
    # the same inputs in another order give the same ranking (the hash breaks every tie)
    again = rank(
        request_id=request_id,
        prompt_tokens=prompt_tokens,
        local_id=LOCAL,
        local=local,
        peers=list(reversed(offers.values())),
    )
    assert again == ranked
