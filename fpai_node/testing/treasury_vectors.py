"""protocol/vectors/treasury/ (specs/0009-treasury.md): operator bindings and ballot records as
the registry holds them.

Each expectation is built here from the primitives the spec names (Ed25519 over the domain and
the canonical map, EIP-191 over the statement, the CHAIN-6 ballot signed with the bare key),
not by fpai_node/treasury; the conformance test reads them back through the implementation.
`value.bin` is the parameter's canonical encoding (CANON-1).
"""

from collections.abc import Iterator
from typing import Any

from eth_keys.datatypes import PrivateKey
from eth_utils.crypto import keccak

from fpai_node.identity import NodeKey
from fpai_node.testing import chain_vectors
from fpai_node.testing.vectors import Case
from fpai_node.wire import codec

NODE_SEED = bytes(range(64, 96))  # test only, like every key in these vectors
NODE = NodeKey.from_seed(NODE_SEED)
OTHER_NODE = NodeKey.from_seed(bytes(range(96, 128)))
OPERATOR_KEY = chain_vectors.OPERATOR_KEY  # the CHAIN-6 vectors' operator
STRANGER_KEY = PrivateKey(bytes(range(2, 34)))
BINDING_DOMAIN = b"FPAI-OPERATOR-BINDING-V1\x00"


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _eth_sign(key: PrivateKey, digest: bytes) -> bytes:
    signature = key.sign_msg_hash(digest)
    r, s, v = int(signature.r), int(signature.s), int(signature.v)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v + 27])


def _binding(node: NodeKey, operator: PrivateKey) -> tuple[dict[str, Any], dict[str, codec.Value]]:
    """TREASURY-2, step by step: what each key signs, and the parameter's value."""
    address = operator.public_key.to_canonical_address()
    node_statement = BINDING_DOMAIN + codec.encode({"address": address, "node": node.node_id})
    text = f"FPAI operator binding: {node.node_id}".encode()
    eip191 = keccak(b"\x19Ethereum Signed Message:\n" + str(len(text)).encode() + text)
    value: dict[str, codec.Value] = {
        "address": address,
        "key": node.public_key,
        "node_sig": node.sign(node_statement),
        "operator_sig": _eth_sign(operator, eip191),
    }
    steps = {
        "node_statement": _hex(node_statement),
        "operator_statement": text.decode(),
        "operator_digest": _hex(eip191),
    }
    return steps, value


def binding_cases() -> Iterator[tuple[str, Case]]:
    steps, value = _binding(NODE, OPERATOR_KEY)
    address = OPERATOR_KEY.public_key.to_checksum_address()
    yield (
        "binding-valid",
        Case(
            {
                "description": "TREASURY-2: a member's operator binding",
                "node_id": NODE.node_id,
                "node_seed": _hex(NODE_SEED),
                "operator_key": _hex(OPERATOR_KEY.to_bytes()),
                "steps": steps,
                "expect": {"address": address},
            },
            {"value.bin": codec.encode(value)},
        ),
    )
    _, claimed = _binding(NODE, STRANGER_KEY)
    refused: list[tuple[str, str, str, dict[str, codec.Value]]] = [
        ("under-another-member", OTHER_NODE.node_id, "wrong_node_key", value),
        ("address-replaced", NODE.node_id, "bad_node_signature", value | {"address": bytes(20)}),
        (
            "someone-elses-address",
            NODE.node_id,
            "bad_operator_signature",
            claimed | {"operator_sig": value["operator_sig"]},
        ),
    ]
    for name, node_id, reason, bad in refused:
        meta = {
            "description": f"TREASURY-2: a binding refused ({reason})",
            "node_id": node_id,
            "expect": {"refused": reason},
        }
        yield f"binding-{name}", Case(meta, {"value.bin": codec.encode(bad)})


def ballot_cases() -> Iterator[tuple[str, Case]]:
    """The CHAIN-6 vectors' ballots as their operator's node keeps them (TREASURY-4)."""
    _, binding = _binding(NODE, OPERATOR_KEY)
    voter = OPERATOR_KEY.public_key.to_canonical_address()
    chain = dict(chain_vectors.ballot_cases())
    for name in ("for", "abstain-with-reason"):
        chain_case = chain[f"ballot-{name}"]
        signed = chain_case.meta["ballot"]
        proposal = int(signed["proposal_id"])
        value = {
            "nonce": int(signed["nonce"]),
            "proposal": proposal.to_bytes(32, "big"),
            "reason": signed["reason"],
            "signature": bytes.fromhex(chain_case.meta["expect"]["signature"][2:]),
            "support": signed["support"],
            "voter": voter,
        }
        meta = {
            "description": "TREASURY-4: a ballot record, by the member's bound operator",
            "node_id": NODE.node_id,
            "parameter": f"member.{NODE.node_id}.ballot.{proposal:064x}",
            "domain": chain_case.meta["domain"],
            "expect": {"ballot": signed},
        }
        yield (
            f"ballot-{name}",
            Case(meta, {"value.bin": codec.encode(value), "binding.bin": codec.encode(binding)}),
        )
        if name == "for":
            _, stranger = _binding(NODE, STRANGER_KEY)
            refusals = [
                ("unbound-voter", stranger, value, "not_the_members_operator"),
                ("vote-changed", binding, value | {"support": 0}, "bad_ballot_signature"),
                ("support-out-of-range", binding, value | {"support": 3}, "malformed"),
            ]
            for case_name, bound, bad, reason in refusals:
                refused = {
                    "description": f"TREASURY-4: a ballot record refused ({reason})",
                    "node_id": NODE.node_id,
                    "parameter": meta["parameter"],
                    "domain": chain_case.meta["domain"],
                    "expect": {"refused": reason},
                }
                files = {"value.bin": codec.encode(bad), "binding.bin": codec.encode(bound)}
                yield f"ballot-{case_name}", Case(refused, files)


def treasury_cases() -> Iterator[tuple[str, Case]]:
    yield from binding_cases()
    yield from ballot_cases()
