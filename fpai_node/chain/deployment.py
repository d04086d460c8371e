"""The deployment file: which contracts a federation uses on which chain (`fpai-node chain deploy`).

    {"format": "fpai-chain-deployment/1", "chain_id": 31337, "block": 1, "deployer": "0x...",
     "contracts": {"FederationTimelock": "0x...", ...}, "parameters": {...}}

A node parses it strictly here, then checks every claim it makes against the chain before
trusting an address (wiring.py, CHAIN-2).
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address

from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.parameters import GovernanceParameters

FORMAT = "fpai-chain-deployment/1"
# Every contract of the set, in deployment order; "Stablecoin" is the revenue and reward token
# (TestStablecoin on testnets, an existing token on a real chain), "TestVault" testnets only.
CONTRACTS = (
    "Stablecoin",
    "FederationTimelock",
    "OperatorVotes",
    "FederationGovernor",
    "Treasury",
    "GrowthFund",
    "SacredLoop",
    "RewardsDistributor",
)
OPTIONAL_CONTRACTS = ("TestVault",)
MAX_FILE_BYTES = 64 * 1024  # a deployment is under 2 KB; refuse to parse anything absurd


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    block: int
    deployer: ChecksumAddress
    contracts: dict[str, ChecksumAddress]
    parameters: GovernanceParameters = field(default_factory=GovernanceParameters)

    def address(self, name: str) -> ChecksumAddress:
        try:
            return self.contracts[name]
        except KeyError:
            raise ChainError(f"the deployment has no {name}") from None

    def to_json(self) -> str:
        body = {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "block": self.block,
            "deployer": self.deployer,
            "contracts": dict(self.contracts),
            "parameters": asdict(self.parameters),
        }
        return json.dumps(body, indent=2) + "\n"

    def save(self, path: Path) -> None:
        """Writes the file atomically (a crash leaves the old file or the new one, never half)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(self.to_json())
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> "Deployment":
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ChainError(f"{path} is not a deployment file (over {MAX_FILE_BYTES} bytes)")
            text = path.read_text()
        except OSError as exc:
            raise ChainError(f"cannot read deployment file {path}: {exc.strerror}") from None
        try:
            return cls.parse(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            raise ChainError(f"{path} is not a valid deployment file: {exc}") from None

    @classmethod
    def parse(cls, body: Any) -> "Deployment":
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        contracts = body["contracts"]
        if not isinstance(contracts, dict):
            raise ValueError("contracts is not an object")
        missing = [name for name in CONTRACTS if name not in contracts]
        unknown = [n for n in contracts if n not in CONTRACTS and n not in OPTIONAL_CONTRACTS]
        if missing or unknown:
            raise ValueError(f"contracts missing {missing}, unknown {unknown}")
        addresses = {name: _address(name, value) for name, value in contracts.items()}
        raw = body.get("parameters", {})
        if not isinstance(raw, dict) or any(type(v) is not int for v in raw.values()):
            raise ValueError("parameters is not an object of integers")
        parameters = GovernanceParameters(**raw)
        parameters.check()
        for key in ("chain_id", "block"):
            if type(body[key]) is not int or body[key] < 0:
                raise ValueError(f"{key} is not a non-negative integer")
        return cls(
            chain_id=body["chain_id"],
            block=body["block"],
            deployer=_address("deployer", body["deployer"]),
            contracts=addresses,
            parameters=parameters,
        )


def _address(name: str, value: Any) -> ChecksumAddress:
    if not isinstance(value, str) or not is_checksum_address(value):
        raise ValueError(f"{name} is not a checksummed address: {value!r}")
    return to_checksum_address(value)
