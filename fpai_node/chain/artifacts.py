"""The compiled contracts: contracts/artifacts/<Name>.json, written by `make contracts`.

The artifacts are committed, so a node deploys and calls the contracts without a compiler. An
artifact is trusted as the repository's own file; what arrives over the network never becomes one.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fpai_node.errors import FpaiError

ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"


class ChainError(FpaiError):
    """A chain call that failed: unreachable RPC, a revert, a missing artifact or deployment."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    immutables: tuple[tuple[int, int], ...]  # (start, length) in deployed_bytecode's bytes


@cache
def load(name: str) -> Artifact:
    """The artifact of contract `name` (e.g. "SacredLoop")."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ChainError(f"no compiled contract {name} at {path} (run `make contracts`)") from None
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        immutables=tuple((start, length) for start, length in data["immutables"]),
    )


@cache
def custom_errors() -> dict[bytes, str]:
    """Every custom error of every artifact by its 4-byte selector, e.g. b'\\x11\\x8c\\xda\\xa7' ->
    "OwnableUnauthorizedAccount(address)": how a revert's data becomes a readable reason."""
    from eth_utils.crypto import keccak  # here: the CLI imports this module on every start

    errors: dict[bytes, str] = {}
    for path in sorted(ARTIFACTS_DIR.glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] == "error":
                signature = f"{item['name']}({','.join(_type(i) for i in item['inputs'])})"
                errors[keccak(text=signature)[:4]] = signature
    return errors


def _type(param: dict[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out, as selectors need)."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        return f"({','.join(_type(c) for c in param['components'])}){kind[5:]}"
    return kind
