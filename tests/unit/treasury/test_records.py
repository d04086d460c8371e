"""Operator bindings and ballots as the registry holds them (specs/0009-treasury.md,
TREASURY-2, TREASURY-4): each is used only once every check passed, whoever wrote the
parameter, and a reader survives any value."""

import contextlib
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.chain.governance import Support, sign_ballot
from fpai_node.identity import NodeKey
from fpai_node.treasury.binding import OperatorBinding
from fpai_node.treasury.records import (
    RecordRefused,
    ballot_from_value,
    ballot_parameter,
    ballot_to_value,
    parse_ballot_parameter,
)
from fpai_node.wire import codec

NODE = NodeKey.from_seed(bytes([1]) * 32)
OTHER_NODE = NodeKey.from_seed(bytes([2]) * 32)
OPERATOR = Account.from_key(b"\x03" * 32)
STRANGER = Account.from_key(b"\x04" * 32)
CHAIN_ID = 31337
GOVERNOR = Account.from_key(b"\x05" * 32).address  # any address: the domain names it
PROPOSAL = 2**255 + 12345  # ids are uint256: this one needs every byte


def secret(account: LocalAccount) -> int:
    """The account's private key as the integer OperatorBinding.sign takes."""
    return int.from_bytes(account.key, "big")


def binding() -> OperatorBinding:
    return OperatorBinding.sign(NODE, secret(OPERATOR))


def refusal(node_id: str, value: codec.Value) -> str:
    with pytest.raises(RecordRefused) as refused:
        OperatorBinding.from_value(node_id, value)
    return refused.value.reason


def test_a_binding_read_back_is_the_one_signed() -> None:
    made = binding()
    value = codec.decode(codec.encode(made.to_value()))
    assert OperatorBinding.from_value(NODE.node_id, value) == made
    assert made.address == OPERATOR.address


def test_the_operators_half_is_what_eth_account_and_wallets_sign() -> None:
    """TREASURY-2's EIP-191 signature, made without eth_account (a node signs its binding as it
    starts), is byte for byte the one eth_account makes: a wallet's binding reads the same."""
    statement = encode_defunct(text=f"FPAI operator binding: {NODE.node_id}")
    assert binding().operator_signature == bytes(OPERATOR.sign_message(statement).signature)


def test_a_binding_is_refused_under_another_members_name_or_when_altered() -> None:
    value = binding().to_value()
    assert isinstance(value, dict)
    # a voter copying a member's binding under another member's prefix
    assert refusal(OTHER_NODE.node_id, value) == "wrong_node_key"
    # another address written over the member's
    assert refusal(NODE.node_id, value | {"address": bytes(20)}) == "bad_node_signature"
    # a node naming someone else's address: it can sign its half, not the operator's
    claimed = OperatorBinding.sign(NODE, secret(STRANGER)).to_value()
    assert isinstance(claimed, dict)
    forged = claimed | {"operator_sig": value["operator_sig"]}
    assert refusal(NODE.node_id, forged) == "bad_operator_signature"
    assert refusal(NODE.node_id, value | {"operator_sig": b"\x00" * 65}) == (
        "bad_operator_signature"
    )
    signature = value["operator_sig"]
    assert isinstance(signature, bytes)
    raw_v = signature[:64] + bytes([signature[64] - 27])  # the recovery id bare: not EIP-191's
    assert refusal(NODE.node_id, value | {"operator_sig": raw_v}) == "bad_operator_signature"
    assert refusal(NODE.node_id, value | {"extra": 1}) == "malformed"


def ballot_value(
    operator: "Account" = OPERATOR, *, reason: str | None = None, governor: str = GOVERNOR
) -> codec.Value:
    ballot = sign_ballot(
        operator,
        chain_id=CHAIN_ID,
        governor=governor,  # type: ignore[arg-type]
        proposal=PROPOSAL,
        support=Support.FOR,
        nonce=7,
        reason=reason,
    )
    return codec.decode(codec.encode(ballot_to_value(ballot)))


def read(value: codec.Value, bound: OperatorBinding | None = None) -> object:
    return ballot_from_value(
        NODE.node_id,
        PROPOSAL,
        value,
        bound if bound is not None else binding(),
        chain_id=CHAIN_ID,
        governor=GOVERNOR,  # type: ignore[arg-type]
    )


def ballot_refusal(value: codec.Value, bound: OperatorBinding | None = None) -> str:
    with pytest.raises(RecordRefused) as refused:
        read(value, bound)
    return refused.value.reason


def test_a_ballot_by_the_members_operator_is_read_with_or_without_a_reason() -> None:
    for reason in (None, "", "the vault pays 4%"):
        ballot = read(ballot_value(reason=reason))
        assert ballot.voter == OPERATOR.address  # type: ignore[attr-defined]
        assert ballot.reason == reason  # type: ignore[attr-defined]
        assert ballot.nonce == 7 and ballot.support is Support.FOR  # type: ignore[attr-defined]


def test_a_ballot_is_refused_unless_the_members_bound_operator_signed_it_for_this_governor() -> (
    None
):
    assert ballot_refusal(ballot_value(STRANGER)) == "not_the_members_operator"
    other_governor = Account.from_key(b"\x06" * 32).address
    assert ballot_refusal(ballot_value(governor=other_governor)) == "bad_ballot_signature"
    value = ballot_value()
    assert isinstance(value, dict)
    assert ballot_refusal(value | {"support": 0}) == "bad_ballot_signature"  # the vote changed
    assert ballot_refusal(value | {"nonce": 8}) == "bad_ballot_signature"
    with pytest.raises(RecordRefused, match="no_binding"):
        ballot_from_value(
            NODE.node_id,
            PROPOSAL,
            value,
            None,
            chain_id=CHAIN_ID,
            governor=GOVERNOR,  # type: ignore[arg-type]
        )
    moved = replace(binding(), node_id=OTHER_NODE.node_id)  # another member's binding
    assert ballot_refusal(value, moved) == "no_binding"


def test_a_ballot_out_of_bounds_is_malformed_or_for_another_proposal() -> None:
    value = ballot_value()
    assert isinstance(value, dict)
    assert ballot_refusal(value | {"support": 3}) == "malformed"
    assert ballot_refusal(value | {"support": True}) == "malformed"
    assert ballot_refusal(value | {"nonce": -1}) == "malformed"
    assert ballot_refusal(value | {"reason": "x" * 1025}) == "malformed"
    assert ballot_refusal(value | {"proposal": (1).to_bytes(32, "big")}) == "wrong_proposal"
    assert ballot_refusal(value | {"voter": b"\x00" * 19}) == "malformed"


def test_ballot_parameters_name_their_member_and_proposal() -> None:
    key = ballot_parameter(NODE.node_id, PROPOSAL)
    assert parse_ballot_parameter(key) == (NODE.node_id, PROPOSAL)
    assert parse_ballot_parameter(key.upper()) is None
    assert parse_ballot_parameter(f"member.{NODE.node_id}.operator") is None
    assert parse_ballot_parameter(key + "0") is None


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=7),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def valid_records() -> tuple[OperatorBinding, codec.Value]:
    """A valid binding and ballot, each read back once: readers that refused everything would
    pass the tests below that expect refusals. Signed once: each signature is milliseconds of
    pure-Python elliptic curve arithmetic, and the tests below run hundreds of examples."""
    made, ballot = binding(), ballot_value()
    assert OperatorBinding.from_value(NODE.node_id, made.to_value()) == made
    assert read(ballot, made).voter == OPERATOR.address  # type: ignore[attr-defined]
    return made, ballot


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_value_is_read_or_refused_never_raised(
    valid_records: tuple[OperatorBinding, codec.Value], value: codec.Value
) -> None:
    made, _ = valid_records
    for read_one in (
        lambda: OperatorBinding.from_value(NODE.node_id, value),
        lambda: read(value, made),
    ):
        with contextlib.suppress(RecordRefused):
            read_one()


# Any 65 bytes, and half the time a v of 27 or 28, so that recovery runs on any r and s
# (with a random last byte it is refused before recovery 254 times in 256).
signatures = st.one_of(
    st.binary(min_size=65, max_size=65),
    st.builds(
        bytes.__add__, st.binary(min_size=64, max_size=64), st.sampled_from([b"\x1b", b"\x1c"])
    ),
)


@settings(max_examples=300, deadline=None)
@given(signatures, signatures)
def test_any_signature_bytes_are_checked_never_raised(
    valid_records: tuple[OperatorBinding, codec.Value], operator_sig: bytes, ballot_sig: bytes
) -> None:
    """Signatures with r or s out of range or v not 27/28 are refused like wrong ones."""
    made, ballot = valid_records
    signed = made.to_value()
    assert isinstance(signed, dict) and isinstance(ballot, dict)
    with pytest.raises(RecordRefused, match="bad_operator_signature"):
        OperatorBinding.from_value(NODE.node_id, signed | {"operator_sig": operator_sig})
    with pytest.raises(RecordRefused, match="bad_ballot_signature"):
        read(ballot | {"signature": ballot_sig}, made)
