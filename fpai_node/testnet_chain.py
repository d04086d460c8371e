"""The testnet's chain (issue 17): anvil, from the project's own npm install, with its state in
DIR/chain; the contracts deployed once, every node's operator admitted and funded; each node
configured to use them. So `fpai-node testnet up` gives a user the whole treasury loop: pay
revenue in, propose, vote, and watch the nodes relay and execute.

    DIR/chain/anvil-state.json   the chain, dumped every few seconds and when anvil stops
    DIR/chain/deployment.json    the contracts (`fpai-node chain deploy`'s file)
    DIR/chain.log                anvil's output

The chain code (web3) is imported only when a chain is deployed: `testnet status` stays quick.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fpai_node.chain import operator_key
from fpai_node.chain.anvil import DEV_MNEMONIC, anvil_binary
from fpai_node.chain.artifacts import ChainError
from fpai_node.chain.parameters import GovernanceParameters
from fpai_node.errors import FpaiError
from fpai_node.home import Home

CHAIN_PORT_OFFSET = 300  # API ports from P, peers P+100, Raft P+200, the chain P+300
BLOCK_TIME_S = 2  # a block every 2 s: the governor's clock (block time) moves like a real chain's
STATE_INTERVAL_S = 5  # how much of the chain a kill -9 of anvil can lose
READY_TIMEOUT_S = 15.0  # anvil answers within a second; a loaded machine gets more
OPERATOR_FUNDS_WEI = 100 * 10**18  # test ETH for each operator's gas: thousands of votes
# Short enough to try the whole loop in about three minutes: a vote opens 5 s after a proposal
# and lasts 2 minutes, and what passed waits 1 minute in the timelock.
TESTNET_PARAMETERS = GovernanceParameters(
    voting_delay_s=5, voting_period_s=120, timelock_delay_s=60, claim_window_s=7 * 24 * 3600
)
DEPLOY_TIMEOUT_S = 120.0  # ten contracts on a chain that mines every block time


@dataclass
class TestnetChain:
    __test__ = False  # a name pytest would otherwise collect

    directory: Path
    port: int
    pid: int | None = None

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def deployment_file(self) -> Path:
        return self.directory / "deployment.json"

    @property
    def state_file(self) -> Path:
        return self.directory / "anvil-state.json"

    @property
    def log_path(self) -> Path:
        return self.directory.parent / "chain.log"

    def running(self) -> bool:
        """Our anvil is alive: the pid exists and runs anvil on this chain's state file."""
        if self.pid is None:
            return False
        try:
            arguments = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.state_file).encode() in arguments

    def start(self) -> None:
        """Start anvil in its own session (it outlives the command), resuming its state. A block
        every BLOCK_TIME_S once the contracts are deployed; until then a block per transaction,
        so the deployment's dozen transactions take a second, not half a minute."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--mnemonic", DEV_MNEMONIC,
            "--state", str(self.state_file),
            "--state-interval", str(STATE_INTERVAL_S),
        ]  # fmt: skip
        if self.deployment_file.exists():
            argv += ["--block-time", str(BLOCK_TIME_S)]
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 (our own binary, arguments we built)
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = process.pid
        deadline = time.monotonic() + READY_TIMEOUT_S
        # The child's own handle, not `running`: until it has exec'd, its command line is
        # still this process's, and `running` would call it gone (a CI failure).
        while not self.answers():
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                self.pid = None
                raise FpaiError(f"anvil did not start; the end of {self.log_path}:\n{_tail(self)}")
            time.sleep(0.1)

    def answers(self) -> bool:
        return self.block() is not None

    def block(self) -> int | None:
        """The chain's latest block number, or None when nothing answers at its RPC."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
        request = urllib.request.Request(  # noqa: S310 (our own anvil, on loopback)
            self.rpc, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                return int(json.loads(response.read())["result"], 16)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, so anvil writes its state; SIGKILL if it outstays `timeout_s`."""
        if not self.running():
            self.pid = None
            return
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def deploy(self, homes: list[Path], progress: Callable[[str], None]) -> None:
        """Once: the contracts, with every node's operator admitted and funded."""
        if self.deployment_file.exists():
            return
        from web3 import HTTPProvider, Web3
        from web3.types import RPCEndpoint

        from fpai_node.chain import restore_recursion_limit
        from fpai_node.chain.deploy import deploy
        from fpai_node.chain.transactor import Transactor, rpc_errors

        restore_recursion_limit()
        operators = [Web3.to_checksum_address(operator_address(home)) for home in homes]
        w3 = Web3(HTTPProvider(self.rpc, request_kwargs={"timeout": DEPLOY_TIMEOUT_S}))
        with rpc_errors():
            for address in operators:
                w3.provider.make_request(
                    RPCEndpoint("anvil_setBalance"), [address, hex(OPERATOR_FUNDS_WEI)]
                )
            deployer = Transactor(w3, w3.eth.accounts[0])
            deployment = deploy(deployer, operators, TESTNET_PARAMETERS, progress=progress)
            w3.provider.make_request(RPCEndpoint("evm_setIntervalMining"), [BLOCK_TIME_S])
        deployment.save(self.deployment_file)


def operator_address(home: Path) -> str:
    made = Home(home)
    made.ensure_operator_key()
    return operator_key.address_of(operator_key.read_secret(made.operator_key_file))


def configure(home: Path, chain: TestnetChain) -> None:
    """Point the node at the chain in its node.toml (once), so that it finds the treasury
    however it is started."""
    config = Home(home).config_file
    text = config.read_text()
    if "\nchain_rpc = " in text:
        return
    config.write_text(
        text.rstrip("\n")
        + "\n\n# The testnet's chain (fpai-node testnet up)\n"
        + f'chain_rpc = "{chain.rpc}"\n'
        + f'chain_deployment = "{chain.deployment_file}"\n'
    )


def _tail(chain: TestnetChain, lines: int = 20) -> str:
    try:
        return "\n".join(chain.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def available() -> str | None:
    """Why the testnet cannot have a chain here (anvil missing), or None."""
    try:
        anvil_binary()
    except ChainError as exc:
        return str(exc)
    return None
