"""Sending transactions as one account, and turning a revert into a readable ChainError.

The account is a local key (the transaction is signed here and sent raw: works with any
JSON-RPC node) or, on a development chain such as anvil, an address the node itself unlocks.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception
from web3.types import TxParams, TxReceipt, Wei

from fpai_node.chain.artifacts import Artifact, ChainError, custom_errors

# How long one transaction may take to be mined: a public chain's block time is seconds, a busy
# one's inclusion can take a minute or two; a dev chain mines at once.
RECEIPT_TIMEOUT_S = 180.0
# A gas estimate runs on the pending block, and the mined block can cost more when a storage
# write depends on its time: admitting an operator in the second of the last change updates
# two vote checkpoints (the operator's and the total's), a second later it adds two, measured
# at 44,532 gas more than the estimate. So a fifth more plus two fresh slots with their cold
# access; unused gas is not charged.
GAS_MARGIN = 50_000

T = TypeVar("T")


class Transactor:
    """Sends contract calls and deployments from one account and waits for each receipt."""

    def __init__(self, w3: Web3, account: LocalAccount | ChecksumAddress) -> None:
        self.w3 = w3
        self._key = account if isinstance(account, LocalAccount) else None
        self.address: ChecksumAddress = (
            account.address if isinstance(account, LocalAccount) else account
        )

    def send(self, call: ContractFunction, value: int = 0) -> TxReceipt:
        """Runs `call` in a transaction; a revert raises ChainError naming the contract's error."""
        params: TxParams = {"from": self.address, "value": Wei(value)}
        tx = guarded(lambda: call.build_transaction(params))
        return self._send(tx)

    def transfer(self, to: ChecksumAddress, value: int) -> TxReceipt:
        """Sends `value` wei to `to` (a contract's receive() runs: a revert raises ChainError)."""
        tx: TxParams = {"from": self.address, "to": to, "value": Wei(value)}
        tx["gas"] = guarded(lambda: self.w3.eth.estimate_gas(tx))
        return self._send(tx)

    def deploy(self, artifact: Artifact, *args: Any) -> Contract:
        """Deploys `artifact` with constructor `args` and returns the contract at its address."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        params: TxParams = {"from": self.address}
        tx = guarded(lambda: factory.constructor(*args).build_transaction(params))
        receipt = self._send(tx)
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploying {artifact.name} created no contract")
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def _send(self, tx: TxParams) -> TxReceipt:
        with rpc_errors():
            return self._send_and_wait(tx)

    def _send_and_wait(self, tx: TxParams) -> TxReceipt:
        estimate = int(tx["gas"])
        tx["gas"] = estimate + estimate // 5 + GAS_MARGIN
        if self._key is None:
            tx_hash = self.w3.eth.send_transaction(tx)
        else:
            tx["nonce"] = self.w3.eth.get_transaction_count(self.address, "pending")
            if "gasPrice" not in tx and "maxFeePerGas" not in tx:
                tx |= self._fees()
            tx.setdefault("chainId", self.w3.eth.chain_id)
            signed = self._key.sign_transaction(tx)  # type: ignore[arg-type]
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        if receipt["status"] != 1:
            raise ChainError(f"transaction {tx_hash.to_0x_hex()} reverted")
        return receipt

    def _fees(self) -> TxParams:
        """EIP-1559 fees as web3 sets them for contract calls: twice the latest base fee (room
        for six full blocks of rises) plus the node's suggested tip."""
        tip = self.w3.eth.max_priority_fee
        base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0)
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": Wei(2 * base + tip)}


def guarded(action: Callable[[], T]) -> T:
    """Runs a chain call; a revert or an RPC failure becomes one ChainError line."""
    with rpc_errors():
        return action()


@contextlib.contextmanager
def rpc_errors() -> Iterator[None]:
    """Turns what web3 raises (a revert, a timeout, an unreachable or failing RPC) into a
    ChainError with one line fit for the user."""
    try:
        yield
    except ContractCustomError as exc:
        raise ChainError(f"reverted: {revert_reason(exc.data)}") from None
    except ContractLogicError as exc:
        reason = revert_reason(exc.data) if isinstance(exc.data, str) else exc.message
        raise ChainError(f"reverted: {reason}") from None
    except (Web3Exception, OSError) as exc:
        raise ChainError(f"chain RPC failed: {exc}") from None


def revert_reason(data: Any) -> str:
    """A revert's data as `Error(args)` when an artifact declares it, else the raw hex."""
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return str(data)
    raw = bytes.fromhex(data[2:])
    signature = custom_errors().get(raw[:4])
    if signature is None:
        return data
    name, _, types = signature.partition("(")
    arg_types = [t for t in types.rstrip(")").split(",") if t]
    try:
        values = abi_decode(arg_types, raw[4:])
    except Exception:  # a malformed payload still names its error
        return signature
    return f"{name}({', '.join(_show(t, v) for t, v in zip(arg_types, values, strict=True))})"


def _show(kind: str, value: Any) -> str:
    if kind == "address":
        return str(to_checksum_address(value))
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)
