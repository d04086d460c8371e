"""`fpai-node testnet` through the real command: resume with state, status, and its errors."""

import contextlib
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fpai_node.errors import FpaiError
from fpai_node.testing.nodeproc import run_cli, wait_for
from fpai_node.testnet import Testnet, prepare, stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
BASE = 12100  # below the range test nodes take ports from, and apart from README's 18100


def cli(*args: str, timeout_s: float = 240.0) -> Any:
    return run_cli("testnet", *args, timeout_s=timeout_s)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "testnet"
    with contextlib.suppress(FpaiError):  # a test may have broken the manifest on purpose
        testnet = Testnet.load(tmp_path / "testnet")
        if testnet is not None:
            stop(testnet.nodes, timeout_s=5)
            if testnet.chain is not None:
                testnet.chain.stop(timeout_s=5)


def status(directory: Path) -> list[dict[str, Any]]:
    result = cli("status", "--dir", str(directory), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_down_and_up_resume_the_federation_with_its_state(directory: Path) -> None:
    """The registry survives a whole-federation pause: the same members, the same leader
    term or later, and a parameter written before `down` is read back after `up`. Two cycles
    (a pause right after `up` once caught a node whose start-up hint had forgotten a voter),
    then an unclean stop (kill -9 of every node), after which `up` resumes too. The chain
    (issue 17) resumes with them: revenue paid before the first `down` is still split after."""
    up = cli("up", "--nodes", "3", "--dir", str(directory), "--base-port", str(BASE))
    assert up.returncode == 0, up.stderr
    before = status(directory)
    assert [n["healthy"] for n in before] == [True, True, True]
    assert all(n["alive_peers"] == 2 and n["registry_members"] == 3 for n in before)
    node2 = directory / "node2"
    written = run_cli("registry", "set", "greeting", "hello", "--home", str(node2))
    assert written.returncode == 0, written.stderr
    paid = run_cli("treasury", "pay", "100", "--home", str(node2))
    assert paid.returncode == 0, paid.stderr
    for _ in range(2):
        down = cli("down", "--dir", str(directory))
        assert down.returncode == 0 and "stopped 3 node(s)" in down.stdout, down.stderr
        assert not any(n["running"] for n in status(directory))
        again = cli("up", "--dir", str(directory), timeout_s=120)
        assert again.returncode == 0, again.stderr + again.stdout
        assert "resuming" in again.stdout
    for node in Testnet.load(directory).nodes:  # type: ignore[union-attr]
        os.kill(node.pid, signal.SIGKILL)  # type: ignore[arg-type]  # an unclean stop
    wait_for(lambda: not any(n["running"] for n in status(directory)))
    again = cli("up", "--dir", str(directory), timeout_s=120)
    assert again.returncode == 0, again.stderr + again.stdout
    after = status(directory)
    assert [n["node_id"] for n in after] == [n["node_id"] for n in before]
    assert len({n["leader"] for n in after}) == 1
    read = run_cli("registry", "get", "greeting", "--home", str(directory / "node3"))
    assert read.returncode == 0 and "hello" in read.stdout, read.stderr
    shown = run_cli("treasury", "status", "--json", "--home", str(directory / "node3"))
    assert shown.returncode == 0, shown.stderr
    treasury = json.loads(shown.stdout)
    assert (treasury["treasury"]["stablecoin"], treasury["growth"]["stablecoin"]) == (
        60 * 10**6,
        40 * 10**6,
    )
    listed = cli("status", "--dir", str(directory))
    assert "treasury: 60.00 USD idle" in listed.stdout, listed.stdout


def test_a_taken_port_names_the_node_and_nothing_starts(directory: Path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT of others
        taken.bind(("127.0.0.1", BASE + 101))  # node2's peer port
        taken.listen()
        result = cli("up", "--nodes", "3", "--dir", str(directory), "--base-port", str(BASE))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"fpai-node: node2: peer port {BASE + 101} is taken; choose another --base-port or "
        "stop what uses it"
    )
    assert not any(n["running"] for n in status(directory))


def test_a_different_size_on_an_existing_testnet_is_refused(directory: Path) -> None:
    Testnet.plan(directory, 2, BASE, 1).directory.mkdir(parents=True)
    Testnet.plan(directory, 2, BASE, 1).save()
    result = cli("up", "--nodes", "3", "--dir", str(directory))
    assert result.returncode == 1
    assert "holds a testnet of 2 nodes" in result.stderr
    missing = cli("status", "--dir", str(directory.parent / "nowhere"))
    assert missing.returncode == 1 and "no testnet in" in missing.stderr


def test_a_node_that_cannot_start_is_named_with_its_log_and_the_rest_stop(
    directory: Path,
) -> None:
    """node2's node.toml is broken: `up` names node2, shows its log's end (the one-line config
    error) and stops the nodes it started, so nothing is left running."""
    testnet = Testnet.plan(directory, 3, BASE, 1)
    prepare(testnet)
    (directory / "node2" / "node.toml").write_text("queue_depth = 'many'\n")
    result = cli("up", "--dir", str(directory), timeout_s=120)
    assert result.returncode == 1
    assert "node2 exited during start-up; the end of" in result.stderr
    assert "queue_depth" in result.stderr  # the node's own one-line error, from its log
    assert not any(n["running"] for n in status(directory))


def test_purge_deletes_only_what_the_testnet_made_and_a_foreign_directory_is_refused(
    directory: Path,
) -> None:
    testnet = Testnet.plan(directory, 2, BASE, 1)
    prepare(testnet)
    (directory / "notes.txt").write_text("mine")
    purged = cli("down", "--dir", str(directory), "--purge")
    assert purged.returncode == 0, purged.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]
    refused = cli("up", "--dir", str(directory))
    assert refused.returncode == 1
    assert "is not empty and holds no testnet" in refused.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]


def test_a_damaged_manifest_is_a_one_line_error(directory: Path, tmp_path: Path) -> None:
    """Issue 13 finding 7 too: `down --purge` deleted whatever folders a hand-edited manifest
    named; a home outside the testnet's directory is a damaged manifest."""
    directory.mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()
    foreign = {
        "name": "node1",
        "home": str(precious),
        "api_port": 18100,
        "peer_port": 18200,
        "raft_port": 18300,
        "serves_model": False,
        "pid": None,
    }
    for broken in (
        '{"nodes": []}',
        '{"nodes": [{"name": "node1"}]}',
        "not json",
        json.dumps({"nodes": [foreign]}),
        json.dumps({"nodes": [{**foreign, "home": str(directory / "etc"), "name": "etc"}]}),
        json.dumps(
            {
                "nodes": [{**foreign, "home": str(directory / "node1")}],
                "chain": {"port": "18400", "pid": None},
            }
        ),
    ):
        (directory / "testnet.json").write_text(broken)
        result = cli("status", "--dir", str(directory))
        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("fpai-node: ") and "is not a testnet manifest" in line
        assert cli("down", "--dir", str(directory), "--purge").returncode == 1
    assert precious.is_dir()
