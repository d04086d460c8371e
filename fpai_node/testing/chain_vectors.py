"""protocol/vectors/chain/ (specs/0008-chain.md): splits, proposal ids, signed ballots, reward
trees and deployment files.

Each expectation is derived here independently of fpai_node/chain: the splits are worked out by
hand, the EIP-712 digests are hashed field by field from the spec's type strings and signed with
the bare key, the reward trees are built by a separate, naive construction. The conformance test
then checks the implementation against these files, and the contract tests check the contracts.
In these cases uint256 values are decimal strings and byte strings are 0x-prefixed hex.
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

from eth_abi.abi import encode
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from fpai_node.chain.deployment import CONTRACTS, FORMAT
from fpai_node.testing.vectors import Case

# A secp256k1 key for the ballots: test only. Its address is derived, not typed in.
OPERATOR_KEY = PrivateKey(bytes(range(1, 33)))
OPERATOR = OPERATOR_KEY.public_key.to_checksum_address()
GOVERNOR = to_checksum_address("0x5fbdb2315678afecb367f032d93f642f64180aa3")
CHAIN_ID = 31337
GOVERNOR_NAME, GOVERNOR_VERSION = "FPAI Federation", "1"  # CHAIN-6

LARGEST = 2**256 - 1
# CHAIN-3, worked by hand: (amount, treasury_bps, to the treasury, to growth).
SPLITS = [
    ("default", 10**18 + 7, 6000, 6 * 10**17 + 5, 4 * 10**17 + 2),  # 0.4 * 7 = 2.8 -> 2
    ("stablecoin", 1_000_003, 6000, 600_002, 400_001),  # 0.4 * 1,000,003 = 400,001.2
    ("one-unit", 1, 6000, 1, 0),  # 0.4 -> 0: the unit goes to the treasury
    ("zero", 0, 6000, 0, 0),
    ("half-odd", 9_999, 5000, 5_000, 4_999),  # 4,999.5 -> 4,999
    ("all-growth", 10**6, 0, 0, 10**6),
    ("all-treasury", 10**6, 10_000, 10**6, 0),
    # The largest amount: growth is 2/5 of it, rounded down, computed at full width.
    ("largest", LARGEST, 6000, LARGEST - LARGEST * 2 // 5, LARGEST * 2 // 5),
]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def split_cases() -> Iterator[tuple[str, Case]]:
    for name, amount, bps, treasury, growth in SPLITS:
        assert treasury + growth == amount
        meta = {
            "description": f"CHAIN-3: {amount} split at {bps} bps to the treasury",
            "amount": str(amount),
            "treasury_bps": bps,
            "expect": {"treasury": str(treasury), "growth": str(growth)},
        }
        yield f"split-{name}", Case(meta)


def _proposal_id(
    targets: Sequence[str], values: list[int], calldatas: list[bytes], text: str
) -> int:
    encoded = encode(
        ["address[]", "uint256[]", "bytes[]", "bytes32"],
        [targets, values, calldatas, keccak(text=text)],
    )
    return int.from_bytes(keccak(encoded), "big")


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


PROPOSALS = {
    "growth-payment": (
        [to_checksum_address("0x" + "22" * 20)],
        [0],
        [
            _selector("pay(address,address,uint256)")
            + encode(
                ["address", "address", "uint256"],
                ["0x" + "00" * 20, "0x" + "33" * 20, 10**17],
            )
        ],
        "Release 0.1 ETH of growth funds",
    ),
    "two-calls-with-value": (
        [to_checksum_address("0x" + "44" * 20), to_checksum_address("0x" + "55" * 20)],
        [0, 5],
        [_selector("setSplit(uint16)") + encode(["uint16"], [7000]), b""],
        "Raise the treasury share to 70% — and send 5 wei",
    ),
}


def proposal_cases() -> Iterator[tuple[str, Case]]:
    for name, (targets, values, calldatas, text) in PROPOSALS.items():
        meta = {
            "description": "CHAIN-5: a proposal's id",
            "targets": targets,
            "values": [str(v) for v in values],
            "calldatas": [_hex(c) for c in calldatas],
            "text": text,
            "expect": {
                "description_hash": _hex(keccak(text=text)),
                "id": str(_proposal_id(targets, values, calldatas, text)),
            },
        }
        yield f"proposal-{name}", Case(meta)


def _ballot_digest(proposal: int, support: int, nonce: int, reason: str | None) -> bytes:
    domain_type = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    domain = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                domain_type,
                keccak(text=GOVERNOR_NAME),
                keccak(text=GOVERNOR_VERSION),
                CHAIN_ID,
                GOVERNOR,
            ],
        )
    )
    if reason is None:
        type_hash = keccak(
            text="Ballot(uint256 proposalId,uint8 support,address voter,uint256 nonce)"
        )
        struct = encode(
            ["bytes32", "uint256", "uint8", "address", "uint256"],
            [type_hash, proposal, support, OPERATOR, nonce],
        )
    else:
        type_hash = keccak(
            text="ExtendedBallot(uint256 proposalId,uint8 support,address voter,uint256 nonce,"
            "string reason,bytes params)"
        )
        struct = encode(
            ["bytes32", "uint256", "uint8", "address", "uint256", "bytes32", "bytes32"],
            [type_hash, proposal, support, OPERATOR, nonce, keccak(text=reason), keccak(b"")],
        )
    return keccak(b"\x19\x01" + domain + keccak(struct))


def ballot_cases() -> Iterator[tuple[str, Case]]:
    proposal = _proposal_id(*PROPOSALS["growth-payment"])
    for name, support, nonce, reason in (
        ("for", 1, 0, None),
        ("against-nonce-3", 0, 3, None),
        ("abstain-with-reason", 2, 1, "the recipient is unknown to me"),
    ):
        digest = _ballot_digest(proposal, support, nonce, reason)
        signature = OPERATOR_KEY.sign_msg_hash(digest)
        r, s, v = signature.r, signature.s, signature.v + 27
        meta = {
            "description": "CHAIN-6: an operator's signed ballot",
            "key": _hex(OPERATOR_KEY.to_bytes()),
            "domain": {
                "name": GOVERNOR_NAME,
                "version": GOVERNOR_VERSION,
                "chain_id": CHAIN_ID,
                "verifying_contract": GOVERNOR,
            },
            "ballot": {
                "proposal_id": str(proposal),
                "support": support,
                "voter": OPERATOR,
                "nonce": str(nonce),
                "reason": reason,
            },
            "expect": {
                "digest": _hex(digest),
                "signature": _hex(r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])),
            },
        }
        yield f"ballot-{name}", Case(meta)


def _naive_tree(amounts: dict[str, int]) -> tuple[bytes, dict[str, list[bytes]]]:
    """CHAIN-7 read literally: sorted leaves, sorted pairs, an odd last node carried up."""

    def hash_leaf(operator: str, amount: int) -> bytes:
        return keccak(keccak(encode(["address", "uint256"], [operator, amount])))

    leaves = {op: hash_leaf(op, amount) for op, amount in amounts.items()}
    level = sorted(leaves.values())
    proofs: dict[str, list[bytes]] = {op: [] for op in amounts}
    position = {op: level.index(leaf) for op, leaf in leaves.items()}
    while len(level) > 1:
        above = []
        for i in range(0, len(level), 2):
            pair = level[i : i + 2]
            above.append(keccak(min(pair) + max(pair)) if len(pair) == 2 else pair[0])
        for op, index in position.items():
            sibling = index + 1 if index % 2 == 0 else index - 1
            if sibling < len(level):
                proofs[op].append(level[sibling])
            position[op] = index // 2
        level = above
    return level[0], proofs


def _operators(count: int) -> list[str]:
    return [to_checksum_address(keccak(bytes([i]))[:20]) for i in range(count)]


def reward_tree_cases() -> Iterator[tuple[str, Case]]:
    for count in (1, 2, 3, 5, 8):
        amounts = {op: 1_000_000 * (i + 1) for i, op in enumerate(_operators(count))}
        root, proofs = _naive_tree(amounts)
        meta = {
            "description": f"CHAIN-7: the reward tree of {count} operators",
            "amounts": {op: str(a) for op, a in amounts.items()},
            "expect": {
                "root": _hex(root),
                "total": str(sum(amounts.values())),
                "proofs": {op: [_hex(p) for p in proof] for op, proof in proofs.items()},
            },
        }
        yield f"reward-tree-{count}", Case(meta)


def _deployment(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "format": FORMAT,
        "chain_id": CHAIN_ID,
        "block": 0,
        "deployer": OPERATOR,
        "contracts": {n: to_checksum_address(keccak(text=n)[:20]) for n in CONTRACTS},
        "parameters": {"voting_period_s": 600, "quorum_percent": 60},
    }
    body.update(changes)
    return body


def deployment_cases() -> Iterator[tuple[str, Case]]:
    valid = _deployment()
    with_vault = _deployment(
        contracts={**valid["contracts"], "TestVault": to_checksum_address("0x" + "77" * 20)}
    )
    missing = _deployment(
        contracts={k: v for k, v in valid["contracts"].items() if k != "Treasury"}
    )
    lowercase = _deployment(contracts={**valid["contracts"], "SacredLoop": "0x" + "ab" * 20})
    unknown = _deployment(contracts={**valid["contracts"], "Oracle": OPERATOR})
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("valid", valid, None),
        ("valid-test-vault", with_vault, None),
        ("valid-default-parameters", _deployment(parameters={}), None),
        ("format", _deployment(format="fpai-chain-deployment/2"), "format"),
        ("missing-contract", missing, "missing"),
        ("unknown-contract", unknown, "unknown"),
        ("unchecksummed-address", lowercase, "checksummed"),
        ("negative-chain-id", _deployment(chain_id=-1), "chain_id"),
        ("quorum-zero", _deployment(parameters={"quorum_percent": 0}), "quorum"),
        ("bps-above-10000", _deployment(parameters={"treasury_bps": 10_001}), "treasury share"),
        ("parameter-text", _deployment(parameters={"quorum_percent": "51"}), "integers"),
        ("unknown-parameter", _deployment(parameters={"fee_bps": 1}), "fee_bps"),
    ]  # fmt: skip
    for name, body, reason in cases:
        meta = {
            "description": "CHAIN-9: a deployment file "
            + ("a node accepts" if reason is None else "a node refuses"),
            "expect": {"valid": reason is None, "reason_contains": reason},
        }
        text = json.dumps(body, indent=2) + "\n"
        yield f"deployment-{name}", Case(meta, {"deployment.json": text.encode()})


def chain_cases() -> Iterator[tuple[str, Case]]:
    yield from split_cases()
    yield from proposal_cases()
    yield from ballot_cases()
    yield from reward_tree_cases()
    yield from deployment_cases()
