"""The treasury counts the transactions it sends (TREASURY-10): the supervisor reads the draft
again when the count moves. Reads must not move it, every sending call must."""

from typing import Any

from fpai_node.identity import NodeKey
from fpai_node.registry.state import RegistryState
from fpai_node.treasury.service import TreasuryService


class Hash(bytes):
    def to_0x_hex(self) -> str:
        return "0x" + self.hex()


class Ledger:
    """A chain that answers at once: two sending calls and a read."""

    def pay(self, amount: str, token: str) -> dict[str, Any]:
        return {"transactionHash": Hash(32), "gasUsed": 21_000}

    def claim(self, epoch: int, amount: int, proof: list[bytes]) -> dict[str, Any]:
        return {"transactionHash": Hash(32), "gasUsed": 21_000}

    def published(self, epoch: int) -> None:
        return None


class Registry:
    state = RegistryState()


async def test_sending_calls_count_and_reads_do_not() -> None:
    service = TreasuryService(NodeKey.from_seed(bytes([9]) * 32), Registry(), None)  # type: ignore[arg-type]
    service._ledger = Ledger()  # type: ignore[assignment]
    assert await service.published_rewards(3) is None
    assert service.sent == 0
    await service.pay("10", "stablecoin")
    await service.claim_reward(3, 5, [])
    assert service.sent == 2
