"""Replays every protocol/ vector against the implementation, reading only the files on disk."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fpai_node.identity import NodeKey, node_id_from_public_key
from fpai_node.testing import vectors
from fpai_node.wire import Limits, ReplayGuard, WireError, codec, open_envelope

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"
SPECS = PROTOCOL.parent / "specs"


def cases(area: str) -> list[Any]:
    folders = sorted(p for p in (PROTOCOL / "vectors" / area).iterdir() if p.is_dir())
    assert folders, f"no {area} vectors"
    return [pytest.param(p, id=p.name) for p in folders]


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "case.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_vectors_on_disk_match_the_generator() -> None:
    """A change to the codec or envelope that alters bytes fails here until `make vectors`."""
    assert vectors.differences() == []


def test_constants_match_the_generator() -> None:
    on_disk = json.loads((PROTOCOL / "constants.json").read_text())
    assert on_disk == vectors.constants()


@pytest.mark.parametrize("folder", cases("identity"))
def test_identity(folder: Path) -> None:
    case = load(folder)
    key = NodeKey.from_seed(bytes.fromhex(case["seed"]))
    assert key.public_key.hex() == case["public_key"]
    assert node_id_from_public_key(key.public_key) == case["node_id"]
    assert key.node_id == case["node_id"]


@pytest.mark.parametrize("folder", cases("codec"))
def test_codec(folder: Path) -> None:
    case = load(folder)
    data = (folder / "encoded.bin").read_bytes()
    if "ok" in case["expect"]:
        value = vectors.from_json(case["expect"]["ok"])
        assert codec.encode(value) == data
        assert codec.decode(data) == value
    else:
        assert case["expect"]["error"] == "malformed"
        with pytest.raises(WireError) as raised:
            codec.decode(data)
        assert raised.value.reason == "malformed"


@pytest.mark.parametrize("folder", cases("envelope"))
def test_envelope(folder: Path) -> None:
    case = load(folder)
    guard = ReplayGuard(window=case["replay_window"], max_senders=case["replay_max_senders"])
    limits = Limits(**case["limits"])
    known = frozenset(case["known_types"])

    def verify(frame: bytes) -> Any:
        return open_envelope(
            frame, now_ms=case["now_ms"], known_types=known, replay_guard=guard, limits=limits
        )

    for earlier in case["accepted_before"]:
        verify(bytes.fromhex(earlier))
    frame = (folder / "frame.bin").read_bytes()
    expect = case["expect"]
    if "ok" in expect:
        env = verify(frame)
        assert {
            "version": env.version,
            "type": env.type,
            "from": env.sender,
            "key": env.public_key.hex(),
            "seq": env.seq,
            "ts": env.timestamp_ms,
            "exp": env.expires_ms,
            "body": env.payload.hex(),
        } == expect["ok"]
    else:
        with pytest.raises(WireError) as raised:
            verify(frame)
        assert raised.value.reason == expect["error"]


def test_every_rejection_reason_has_a_vector() -> None:
    from fpai_node.wire.errors import REASONS

    seen = {load(p)["expect"].get("error") for p in (PROTOCOL / "vectors" / "envelope").iterdir()}
    assert seen >= REASONS


def test_spec_worked_example_is_the_valid_ping_vector() -> None:
    spec = (SPECS / "0002-wire.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example-frame.*?-->\n```\n(.*?)```", spec, re.S)
    assert match, "worked example block missing from specs/0002-wire.md"
    frame = (PROTOCOL / "vectors" / "envelope" / "valid-ping" / "frame.bin").read_bytes()
    assert bytes.fromhex(match.group(1).replace("\n", "")) == frame


def test_spec_identity_example_is_the_alice_vector() -> None:
    spec = (SPECS / "0001-identity.md").read_text(encoding="utf-8")
    case = load(PROTOCOL / "vectors" / "identity" / "seed-alice")
    assert case["public_key"] in spec
    assert f"node id      {case['node_id']}" in spec


def test_every_rule_cited_in_code_exists_in_the_specs() -> None:
    """Anchors cited in fpai_node/ (`VERIFY-7`, `ID-2`, ...) must exist in some spec."""
    anchors = set(
        re.findall(
            r'<a id="([A-Z]+-\d+)"></a>',
            "".join(p.read_text(encoding="utf-8") for p in SPECS.glob("*.md")),
        )
    )
    cited: set[str] = set()
    for path in (PROTOCOL.parent / "fpai_node").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for first, last in re.findall(r"\b([A-Z]+-\d+)\.\.([A-Z]+-\d+)\b", text):
            prefix = first.rsplit("-", 1)[0]
            low, high = int(first.rsplit("-", 1)[1]), int(last.rsplit("-", 1)[1])
            cited |= {f"{prefix}-{n}" for n in range(low, high + 1)}
        cited |= set(
            re.findall(
                r"\b((?:ID|KEY|CANON|ENV|VERIFY|REPLAY|SEQ|MSG|CERT|TLS|GOSSIP|PEER|REG|RAFT|MEM|CHAIN|TREASURY|RWD)-\d+)\b",
                text,
            )
        )
    assert cited - anchors == set()


@pytest.mark.parametrize("folder", cases("registry"))
def test_registry(folder: Path) -> None:
    from fpai_node.registry.state import RegistryState, apply

    case = load(folder)
    state = RegistryState()
    results = []
    for raw in case["commands"]:
        applied = apply(state, bytes.fromhex(raw))
        state = applied.state
        results.append({"status": applied.result.status, "reason": applied.result.reason})
    assert results == case["expect"]["ok"]["results"]
    assert codec.encode(state.to_value()) == (folder / "snapshot.bin").read_bytes()


@pytest.mark.parametrize("folder", cases("gossip"))
def test_gossip(folder: Path) -> None:
    """specs/0004 GOSSIP-10, GOSSIP-12, GOSSIP-19: a rumor, Carol's member list or Bob's
    announcement against a held view; rumor payloads."""
    from fpai_node.gossip.messages import (
        ANNOUNCE_TYPES,
        Announcement,
        AnnouncementItem,
        Piggyback,
        Push,
        Rumor,
        Status,
        SyncReply,
    )
    from fpai_node.testing.gossip_vectors import CAROL, CAROL_ADDRESS, held_view
    from fpai_node.wire.envelope import open_envelope

    case = load(folder)
    expect = case["expect"]
    kind = folder.name.split("-", 1)[0]
    if kind == "payload":
        value = codec.decode((folder / "rumor.bin").read_bytes())
        assert value == vectors.from_json(case["rumor"])
        if "error" in expect:
            with pytest.raises(WireError):
                Rumor.from_value(value)
        else:
            assert Rumor.from_value(value).to_value() == vectors.from_json(expect["ok"])
        return
    alice, bob = vectors.ALICE.node_id, vectors.BOB.node_id
    if kind == "announce":  # GOSSIP-12: Bob's own signed announcement against the held view
        node = held_view(tuple(case["held"]))  # type: ignore[arg-type]
        frame = (folder / "announcement.bin").read_bytes()
        item = AnnouncementItem(bob, vectors.NOW_MS * 1000 + 2, frame)
        envelope = open_envelope(
            frame, now_ms=vectors.NOW_MS, known_types=ANNOUNCE_TYPES, replay_guard=None
        )
        assert Announcement.decode(envelope.payload).incarnation == case["announcement_inc"]
        node.receive(bob, Push(Piggyback((), (item,))), vectors.NOW_MS + 1)
        member = node.member(bob)
        assert member is not None and [str(member.status), member.incarnation] == expect["ok"]
        return
    if kind == "members":  # GOSSIP-19: Carol's sync reply lists Bob
        held, entry = case["held"], case["entry"]
        node = held_view(None if held is None else (held[0], held[1], held[2]))
        listed = (
            Rumor(CAROL.node_id, CAROL_ADDRESS, 0, Status.ALIVE),
            Rumor(bob, "127.0.0.1:7101", entry["inc"], Status(entry["st"])),
        )
        node.receive(CAROL.node_id, SyncReply(listed, (), ()), vectors.NOW_MS + 1)
        member = node.member(bob)
        seen = None if member is None else [str(member.status), member.incarnation]
        assert seen == expect["ok"]
        return
    given = case["rumor"]
    if kind == "self":
        node = held_view(None, case["own_incarnation"])
        rumor = Rumor(alice, "127.0.0.1:7100", given["inc"], Status(given["st"]))
        node.receive(bob, Push(Piggyback((rumor,))), vectors.NOW_MS + 1)
        assert node.incarnation == expect["ok"]
        return
    held = case["held"]
    node = held_view(None if held is None else (held[0], held[1], held[2]))
    rumor = Rumor(bob, given["addr"], given["inc"], Status(given["st"]))
    node.receive(bob, Push(Piggyback((rumor,))), vectors.NOW_MS + 1)
    member = node.member(bob)
    seen = None if member is None else [str(member.status), member.incarnation, member.address]
    assert seen == expect["ok"]


@pytest.mark.parametrize("folder", cases("raft"))
def test_raft(folder: Path) -> None:
    """Each valid frame decodes to its value and survives the trip through pysyncobj's form
    (decode, then encode again) byte for byte; each invalid frame is refused."""
    from fpai_node.registry import raft_wire
    from fpai_node.wire.errors import MalformedFrame

    case = load(folder)
    frame = (folder / "frame.bin").read_bytes()
    if "error" in case["expect"]:
        with pytest.raises(MalformedFrame):
            if b"hello" in frame:
                raft_wire.parse_hello(frame)
            else:
                raft_wire.decode_message(frame)
        return
    assert codec.decode(frame) == vectors.from_json(case["expect"]["ok"]["message"])
    if folder.name == "valid-hello":
        assert raft_wire.parse_hello(frame) == (codec.decode(frame)["id"], False)  # type: ignore[index]
        return
    assert raft_wire.encode_message(raft_wire.decode_message(frame)) == frame


@pytest.mark.parametrize("folder", cases("routing"))
def test_routing(folder: Path) -> None:
    """specs/0006: ranking, forwarded requests, answer events and receipts."""
    import dataclasses

    from fpai_node.router import messages
    from fpai_node.router.select import LocalOffer, PeerOffer, rank

    case = load(folder)
    expect = case["expect"]
    kind = folder.name.split("-", 1)[0]
    if kind == "rank":
        given = case["input"]
        order = rank(
            request_id=given["request_id"],
            prompt_tokens=given["prompt_tokens"],
            local_id=given["local_id"],
            local=None if given["local"] is None else LocalOffer(**given["local"]),
            peers=[PeerOffer(**p) for p in given["peers"]],
        )
        assert [c.node_id for c in order] == expect["ok"]
    elif kind == "request":
        data = (folder / "request.bin").read_bytes()
        if "error" in expect:
            with pytest.raises(WireError):
                messages.InferRequest.decode(data)
            return
        request = messages.InferRequest.decode(data)
        ok = expect["ok"]
        assert (request.api, request.request_id, list(request.path)) == (
            ok["api"],
            ok["id"],
            ok["path"],
        )
        assert request.body == vectors.from_json(ok["body"])
        assert request.encode() == data
    elif kind == "event":
        data = (folder / "event.bin").read_bytes()
        reader = messages.EventReader()
        if "error" in expect:
            with pytest.raises(WireError):
                reader.feed(data)
            return
        [event] = reader.feed(data)
        assert messages.encode_event(event) == data
        assert codec.decode(data[4:]) == vectors.from_json(expect["ok"])
    else:
        assert kind == "receipt"
        request = messages.InferRequest.decode((folder / "request.bin").read_bytes())
        context = case["context"]
        check = dict(
            request=request,
            model=context["model"],
            server=context["server"],
            now_ms=context["now_ms"],
            seen=messages.SeenReceipts(),
            received=messages.Received(**context["received"]),
        )
        if "error" in expect:
            with pytest.raises(messages.ReceiptRejected) as rejected:
                messages.check_receipt((folder / "receipt.bin").read_bytes(), **check)  # type: ignore[arg-type]
            assert rejected.value.reason == expect["error"]
            return
        receipt = messages.check_receipt((folder / "receipt.bin").read_bytes(), **check)  # type: ignore[arg-type]
        assert vectors.to_json(dataclasses.asdict(receipt)) == expect["ok"]


def test_every_rule_is_checked_by_a_test_or_a_vector() -> None:
    """Issue 14: a rule nothing checks is a sentence the next implementer may read otherwise
    unnoticed. A rule no check can pin says `(untestable: why)` in its spec."""
    from fpai_node.testing.spec_coverage import uncited

    missing, untestable = uncited()
    assert missing == []
    assert set(untestable) <= {"MSG-4", "PEER-6"}  # a new exemption is a decision: list it here


def test_a_rule_anchored_twice_is_refused(tmp_path: Path) -> None:
    """Two ROUTE-9 anchors once made every citation of ROUTE-9 ambiguous."""
    from fpai_node.testing.spec_coverage import rules

    (tmp_path / "0001-a.md").write_text('- <a id="X-1"></a>**X-1** one.\n- <a id="X-1"></a>two.')
    with pytest.raises(ValueError, match=r"0001-a\.md: rule X-1 is anchored twice"):
        rules(tmp_path)


@pytest.mark.parametrize("folder", cases("memory"))
def test_memory(folder: Path) -> None:
    """specs/0007: operations (MEM-1..MEM-7), placement (MEM-8), merge and history (MEM-10,
    MEM-12), digests (MEM-11), route bodies (MEM-13..MEM-16) and filters (MEM-17)."""
    from fpai_node.memory import filters, messages
    from fpai_node.memory.merge import Digest, history, latest, op_key
    from fpai_node.memory.operations import (
        OperationRejected,
        Version,
        new_record_id,
        read_operation,
        shard_of_scope,
    )
    from fpai_node.memory.placement import replicas

    case = load(folder)
    expect = case["expect"]
    kind = folder.name.split("-", 1)[0]
    if kind == "op":
        frame = (folder / "op.bin").read_bytes()
        if "error" in expect:
            with pytest.raises(OperationRejected) as refused:
                read_operation(frame, now_ms=case.get("now_ms"))
            assert refused.value.reason == expect["error"]
            return
        op = read_operation(frame)
        ok = expect["ok"]
        assert (op.id, op.action, op.shard) == (ok["id"], ok["action"], ok["shard"])
        assert [op.version.at_ms, op.version.n, op.version.node] == ok["version"]
        content = None if op.content is None else op.content.to_value()
        assert content == (None if ok["content"] is None else vectors.from_json(ok["content"]))
    elif kind == "shard":
        given = case["input"]
        if folder.name == "shard-of-scopes":
            assert [shard_of_scope(n, v) for n, v in given] == expect["ok"]
        else:
            made = [new_record_id(s, bytes.fromhex(r)) for s, r in given]
            assert made == expect["ok"]
    elif kind == "place":
        given = case["input"]
        got = [list(replicas(s, given["holders"], given["replicas"])) for s in range(64)]
        assert got == expect["ok"]
    elif kind == "merge":
        ops = [read_operation(bytes.fromhex(f)) for f in case["input"]]
        for record, want in expect["ok"].items():
            held = [op for op in ops if op.id == record]
            top = latest(held)
            assert [top.version.at_ms, top.version.n, top.version.node] == want["version"]
            assert (None if top.content is None else top.content.memory) == want["memory"]
            events = [
                [c.event, c.old.memory if c.old else None, c.new.memory if c.new else None]
                for c in history(held)
            ]
            assert events == want["history"]
    elif kind == "digest":
        keys = [(r, Version(at, n, node)) for r, at, n, node in case["input"]]
        assert [f"{op_key(r, v):016x}" for r, v in keys] == expect["ok"]["key_hashes"]
        digest = Digest()
        for r, v in keys:
            digest.add(r, v)
        assert digest.to_bytes().hex() == expect["ok"]["digest"]
    elif kind == "body":
        data = (folder / "body.bin").read_bytes()
        decoders = {
            "search": messages.Search.decode,
            "scan": messages.Scan.decode,
            "get": messages.Get.decode,
            "history": messages.History.decode,
            "digest": messages.DigestRequest.decode,
            "digest-answer": messages.DigestAnswer.decode,
            "fetch": messages.Fetch.decode,
            "stored": messages.Stored.decode,
            "write": lambda body: messages.Ops.decode(body, messages.MAX_OPS),
        }
        if "error" in expect:
            with pytest.raises(messages.BadRequest) as refused:
                decoders[case["kind"]](data)
            assert refused.value.reason == expect["error"]
            return
        name = folder.name.removeprefix("body-").removesuffix("-valid")
        decoded = decoders[name](data)
        assert decoded.encode() == data  # type: ignore[attr-defined]
        assert codec.decode(data) == vectors.from_json(expect["ok"])
    else:
        assert kind == "filter"
        condition = filters.from_value(vectors.from_json(case["input"]["filter"]))
        assert [filters.matches(condition, p) for p in case["input"]["payloads"]] == expect["ok"]


@pytest.mark.parametrize(
    "folder", [c for c in cases("chain") if not c.values[0].name.startswith("split-")]
)
def test_chain(folder: Path) -> None:
    """specs/0008: proposal ids (CHAIN-5), ballots (CHAIN-6), reward trees (CHAIN-7) and
    deployment files (CHAIN-9) against fpai_node/chain. The splits (CHAIN-3) are the contract's
    arithmetic: tests/contracts/test_chain_vectors.py replays them on anvil."""
    from eth_account import Account
    from eth_keys import keys

    from fpai_node.chain import governance
    from fpai_node.chain.artifacts import ChainError
    from fpai_node.chain.deployment import Deployment
    from fpai_node.chain.merkle import RewardTree

    case = load(folder)
    expect = case["expect"]
    kind = folder.name.split("-")[0]
    if kind == "proposal":
        actions = tuple(
            governance.Action(target, bytes.fromhex(data[2:]), int(value))
            for target, value, data in zip(
                case["targets"], case["values"], case["calldatas"], strict=True
            )
        )
        proposal = governance.Proposal(actions, case["text"])
        assert proposal.id == int(expect["id"])
        assert "0x" + proposal.description_hash.hex() == expect["description_hash"]
    elif kind == "ballot":
        ballot, domain = case["ballot"], case["domain"]
        signed = governance.sign_ballot(
            Account.from_key(case["key"]),
            chain_id=domain["chain_id"],
            governor=domain["verifying_contract"],
            proposal=int(ballot["proposal_id"]),
            support=governance.Support(ballot["support"]),
            nonce=int(ballot["nonce"]),
            reason=ballot["reason"],
        )
        assert signed.voter == ballot["voter"]
        assert "0x" + signed.signature.hex() == expect["signature"]
        digest = bytes.fromhex(expect["digest"][2:])
        r_s, v = signed.signature[:64], signed.signature[64]
        public = keys.Signature(r_s + bytes([v - 27])).recover_public_key_from_msg_hash(digest)
        assert public.to_checksum_address() == ballot["voter"]
    elif kind == "reward":
        tree = RewardTree({op: int(a) for op, a in case["amounts"].items()})
        assert "0x" + tree.root.hex() == expect["root"]
        assert tree.total == int(expect["total"])
        for operator, proof in expect["proofs"].items():
            assert ["0x" + p.hex() for p in tree.proof(operator)] == proof
    else:
        assert kind == "deployment"
        if expect["valid"]:
            Deployment.load(folder / "deployment.json")
        else:
            with pytest.raises(ChainError, match=expect["reason_contains"]):
                Deployment.load(folder / "deployment.json")


@pytest.mark.parametrize("folder", cases("treasury"))
def test_treasury(folder: Path) -> None:
    """specs/0009: operator bindings (TREASURY-2) and ballot records (TREASURY-4) read, and a
    binding signed, through fpai_node/treasury."""
    from fpai_node.chain.operator_key import parse_secret
    from fpai_node.treasury.binding import OperatorBinding
    from fpai_node.treasury.records import (
        RecordRefused,
        ballot_from_value,
        ballot_to_value,
        parse_ballot_parameter,
    )

    case = load(folder)
    expect = case["expect"]
    data = (folder / "value.bin").read_bytes()
    value = codec.decode(data)
    if folder.name.startswith("binding-"):
        if "refused" in expect:
            with pytest.raises(RecordRefused) as refused:
                OperatorBinding.from_value(case["node_id"], value)
            assert refused.value.reason == expect["refused"]
            return
        binding = OperatorBinding.from_value(case["node_id"], value)
        assert binding.address == expect["address"]
        node = NodeKey.from_seed(bytes.fromhex(case["node_seed"][2:]))
        signed = OperatorBinding.sign(node, parse_secret(case["operator_key"]))
        assert codec.encode(signed.to_value()) == data  # both signatures are deterministic
        return
    binding = OperatorBinding.from_value(
        case["node_id"], codec.decode((folder / "binding.bin").read_bytes())
    )
    parsed = parse_ballot_parameter(case["parameter"])
    assert parsed is not None and parsed[0] == case["node_id"]

    def read() -> Any:
        return ballot_from_value(
            case["node_id"],
            parsed[1],
            value,
            binding,
            chain_id=case["domain"]["chain_id"],
            governor=case["domain"]["verifying_contract"],
        )

    if "refused" in expect:
        with pytest.raises(RecordRefused) as refused:
            read()
        assert refused.value.reason == expect["refused"]
        return
    ballot = read()
    want = expect["ballot"]
    assert (ballot.proposal_id, ballot.voter, ballot.reason) == (
        int(want["proposal_id"]),
        want["voter"],
        want["reason"],
    )
    assert (int(ballot.support), ballot.nonce) == (want["support"], int(want["nonce"]))
    assert codec.encode(ballot_to_value(ballot)) == data


@pytest.mark.parametrize("folder", cases("rewards"))
def test_rewards(folder: Path) -> None:
    """specs/0010: pairs (RWD-1, RWD-2), digests (RWD-5, RWD-6), parameters (RWD-4), the
    reward function (RWD-8), spot samples and verdicts (RWD-10..RWD-12) and fraud reports
    (RWD-13), read through fpai_node/router/acks and fpai_node/rewards."""
    from fpai_node.chain.merkle import RewardTree
    from fpai_node.rewards.digests import (
        Digest,
        DigestRefused,
        Row,
        RowKey,
        merkle_root,
        read_digest,
        summarize,
    )
    from fpai_node.rewards.params import Rate, RewardParams
    from fpai_node.rewards.reward import compute
    from fpai_node.rewards.spot import checkers, is_sampled, judge, read_report
    from fpai_node.router.acks import read_pair
    from fpai_node.router.messages import ReceiptRejected

    case = load(folder)
    expect = case["expect"]
    kind = folder.name.split("-")[0]

    def rows(value: Any) -> dict[RowKey, Row]:
        return {
            RowKey(peer, model, weights): Row(*counts)
            for peer, model, weights, *counts in vectors.from_json(value)  # type: ignore[union-attr,misc]
        }

    def refused(error: type[Exception], call: Any) -> None:
        with pytest.raises(error) as info:
            call()
        assert info.value.reason == expect["refused"]  # type: ignore[attr-defined]

    if kind == "pair":
        receipt, ack = (folder / "receipt.bin").read_bytes(), (folder / "ack.bin").read_bytes()
        if "refused" in expect:
            refused(ReceiptRejected, lambda: read_pair(receipt, ack))
        else:
            assert read_pair(receipt, ack).id.hex() == expect["ok"]["pair_id"]
    elif kind == "merkle":
        assert merkle_root(bytes.fromhex(i) for i in case["ids"]).hex() == expect["root"]
    elif folder.name == "digest-summary":
        pairs = [read_pair(r, a) for r, a in codec.decode((folder / "pairs.bin").read_bytes())]  # type: ignore[union-attr,misc]
        digest = summarize(case["node_id"], case["epoch"], pairs)
        assert digest.served == rows(expect["served"]) and digest.used == rows(expect["used"])
        assert (digest.pairs, digest.root.hex()) == (expect["pairs"], expect["root"])
    elif kind == "digest":
        value = (folder / "value.bin").read_bytes()

        def read() -> Digest:
            return read_digest(case["node_id"], case["epoch"], value, case["deadline_ms"])

        if "refused" in expect:
            refused(DigestRefused, read)
        else:
            assert read().served == rows(expect["ok"]["served"])
    elif kind == "params":
        params = RewardParams.from_parameters(vectors.from_json(case["parameters"]))  # type: ignore[arg-type]
        got = {
            "epoch_s": params.epoch_s,
            "settle_s": params.settle_s,
            "requester_cap": params.requester_cap,
            "spot_ppm": params.spot_ppm,
            "fraud_quorum": params.fraud_quorum,
            "rates": {
                m: [r.weights.hex(), r.prompt, r.completion] for m, r in params.rates.items()
            },
        }
        assert got == expect
    elif kind == "reward":
        given = case["params"]
        rate = given["rate"]
        params = RewardParams(
            epoch_s=60,
            requester_cap=given["requester_cap"],
            rates={
                rate["model"]: Rate(
                    bytes.fromhex(rate["weights"]), rate["prompt"], rate["completion"]
                )
            },
        )
        digests = {
            node: Digest(node, case["epoch"], bytes(32), 0, rows(d["served"]), rows(d["used"]))
            for node, d in case["digests"].items()
        }
        result = compute(
            case["epoch"], digests, case["operators"], params, frozenset(case["penalized"])
        )
        lines = [
            {"server": x.server, "requester": x.requester, "value": x.value, "reason": x.reason}
            for x in result.lines
        ]
        assert lines == expect["lines"]
        assert dict(result.amounts) == expect["amounts"]
        root = "0x" + RewardTree(result.amounts).root.hex() if result.amounts else None
        assert root == expect["root"]
    elif kind == "spot":
        pair = read_pair((folder / "receipt.bin").read_bytes(), (folder / "ack.bin").read_bytes())
        assert is_sampled(pair, case["api"], case["spot_ppm"]) == expect["sampled"]
        assert (int(expect["draw"]) < int(expect["threshold"])) == expect["sampled"]
        assert checkers(pair, case["checkers"]["serving"]) == case["checkers"]["order"]
    elif kind == "judge":
        verdict = judge(
            claimed_prompt=case["claimed"][0],
            claimed_completion=case["claimed"][1],
            counted_prompt=case["counted"][0],
            counted_completion=case["counted"][1],
            ranks=case["ranks"],
            greedy=case["greedy"],
        )
        assert (verdict.passed, verdict.reason) == (expect["passed"], expect["reason"])
    else:
        assert kind == "report"
        value = (folder / "value.bin").read_bytes()
        if "refused" in expect:
            refused(
                ReceiptRejected, lambda: read_report(case["parameter"], value, case["spot_ppm"])
            )
        else:
            report = read_report(case["parameter"], value, case["spot_ppm"])
            got = {"checker": report.checker, "server": report.server, "reason": report.reason}
            assert got == expect["ok"]
