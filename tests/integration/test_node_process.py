"""The real `fpai-node` console script as a user runs it: init, start, status, stop."""

import json
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpai_node import __version__
from fpai_node.testing.nodeproc import NodeProcess, run_cli
from fpai_node.testing.registry_cluster import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def node(home: Path) -> Iterator[NodeProcess]:
    with NodeProcess(home, "--api", "127.0.0.1:0", "--no-model") as running:
        yield running


def one_line_error(result: object) -> str:
    """The CLI's error contract: exit 1, exactly one line on stderr, no traceback."""
    assert result.returncode == 1, result  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    assert lines[0].startswith("fpai-node: ")
    return lines[0]


def test_init_creates_a_private_home_and_prints_the_node_id(home: Path) -> None:
    result = run_cli("init", "--home", str(home))
    assert result.returncode == 0, result.stderr
    node_id = result.stdout.split("node id ")[1].split()[0]
    operator = result.stdout.split("operator ")[1].strip()
    assert node_id.startswith("fpn1") and len(node_id) == 36
    assert operator.startswith("0x") and len(operator) == 42
    assert stat.S_IMODE((home / "keys" / "node.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys" / "operator.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "node.toml").stat().st_mode) == 0o600
    again = run_cli("id", "--home", str(home))
    assert again.stdout.strip() == node_id
    as_json = json.loads(run_cli("id", "--home", str(home), "--json").stdout)
    assert as_json["node_id"] == node_id and len(bytes.fromhex(as_json["public_key"])) == 32
    assert as_json["operator"] == operator
    assert run_cli("id", "--home", str(home), "--operator").stdout.strip() == operator


def test_init_refuses_to_overwrite_a_key(home: Path) -> None:
    run_cli("init", "--home", str(home))
    before = (home / "keys" / "node.key").read_bytes()
    assert "refusing to overwrite" in one_line_error(run_cli("init", "--home", str(home)))
    assert (home / "keys" / "node.key").read_bytes() == before


def test_home_defaults_to_fpai_home_env(tmp_path: Path) -> None:
    result = run_cli("init", env={"FPAI_HOME": str(tmp_path / "from-env")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-env" / "keys" / "node.key").exists()


def test_a_world_readable_key_is_a_one_line_error(home: Path) -> None:
    run_cli("init", "--home", str(home))
    (home / "keys" / "node.key").chmod(0o644)
    assert "chmod 600" in one_line_error(run_cli("id", "--home", str(home)))


def test_a_corrupt_key_is_a_one_line_error(home: Path) -> None:
    run_cli("init", "--home", str(home))
    (home / "keys" / "node.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    assert "corrupt" in one_line_error(run_cli("start", "--home", str(home)))


def test_an_unknown_node_toml_key_is_a_one_line_error(home: Path) -> None:
    run_cli("init", "--home", str(home))
    with (home / "node.toml").open("a") as f:
        f.write('\nlisten = "127.0.0.1:1"\n')
    assert "unknown key 'listen'" in one_line_error(run_cli("start", "--home", str(home)))


def test_a_bad_value_names_its_key_and_source(home: Path) -> None:
    run_cli("init", "--home", str(home))
    line = one_line_error(run_cli("start", "--home", str(home), env={"FPAI_API": "nowhere"}))
    assert "FPAI_API" in line and "HOST:PORT" in line


def test_start_serves_health_and_status_then_stops_on_sigterm(node: NodeProcess) -> None:
    assert node.get_json("/healthz") == {"status": "ok"}
    status = node.get_json("/fpai/v1/status")
    node_id = run_cli("id", "--home", str(node.home.root)).stdout.strip()
    assert status["node_id"] == node_id
    assert status["version"] == __version__
    assert status["protocol_version"] == 1
    assert status["uptime_s"] >= 0
    assert status["peers"] == [] and status["models"] == []
    assert status["registry"]["phase"] in ("bootstrapping", "running")

    def bootstrapped() -> bool:
        registry = node.get_json("/fpai/v1/status")["registry"]
        return bool(registry["leader"] == node_id and registry["members"])

    wait_for(bootstrapped)  # a lone node creates its federation's registry and leads it
    registry = node.get_json("/fpai/v1/status")["registry"]
    assert registry["term"] >= 1 and registry["role"] == "voter"
    assert [(m["node_id"], m["role"]) for m in registry["members"]] == [(node_id, "voter")]

    started = time.monotonic()
    assert node.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    assert not node.home.api_file.exists()
    events = [e for e in node.log_events() if e.get("node_id") == node_id]
    assert [e["event"] for e in events][-2:] == ["stopping", "node stopped"]


def test_sigint_stops_cleanly(node: NodeProcess) -> None:
    started = time.monotonic()
    assert node.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 5


def test_start_auto_inits_a_missing_home(home: Path) -> None:
    with NodeProcess(home, "--api", "127.0.0.1:0", "--no-model") as node:
        assert node.get_json("/fpai/v1/status")["node_id"].startswith("fpn1")
        assert (home / "keys" / "node.key").exists()
        assert node.stop() == 0


def test_status_command_reads_the_running_node(node: NodeProcess) -> None:
    human = run_cli("status", "--home", str(node.home.root))
    assert human.returncode == 0, human.stderr
    node_id = node.get_json("/fpai/v1/status")["node_id"]
    assert f"node     {node_id}" in human.stdout
    assert f"api      {node.url}" in human.stdout
    as_json = json.loads(run_cli("status", "--api", node.url, "--json").stdout)
    assert as_json["node_id"] == node_id


def test_status_without_a_node_says_so(home: Path, tmp_path: Path) -> None:
    assert "no node is running" in one_line_error(run_cli("status", "--home", str(home)))
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = one_line_error(run_cli("status", "--api", f"http://127.0.0.1:{port}"))
    assert "no node answers" in line


def test_a_port_in_use_is_a_one_line_error(node: NodeProcess, tmp_path: Path) -> None:
    port = node.url.rsplit(":", 1)[1]
    run_cli("init", "--home", str(tmp_path / "other"))
    result = run_cli("start", "--home", str(tmp_path / "other"), "--api", f"127.0.0.1:{port}")
    assert "address already in use" in one_line_error(result)


def test_a_second_node_on_the_same_home_is_refused(node: NodeProcess) -> None:
    result = run_cli("start", "--home", str(node.home.root), "--api", "127.0.0.1:0", "--no-model")
    assert "already running" in one_line_error(result)
    assert node.get_json("/healthz") == {"status": "ok"}


def test_a_public_bind_without_an_api_key_is_refused(home: Path) -> None:
    result = run_cli("start", "--home", str(home), "--api", "0.0.0.0:0")
    assert "without an API key" in one_line_error(result)
    assert not home.exists(), "a refused start must not create the home"


def test_request_ids_are_echoed_and_errors_are_openai_shaped(node: NodeProcess) -> None:
    request = urllib.request.Request(node.url + "/healthz", headers={"X-Request-Id": "abc-123"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["X-Request-Id"] == "abc-123"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(node.url + "/nope", timeout=5)
    assert missing.value.code == 404
    body = json.loads(missing.value.read())
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert len(missing.value.headers["X-Request-Id"]) == 32


def test_logs_carry_node_id_and_request_id(home: Path) -> None:
    with NodeProcess(home, "--api", "127.0.0.1:0", "--no-model", "--log-level", "debug") as node:
        request = urllib.request.Request(node.url + "/healthz", headers={"X-Request-Id": "trace-7"})
        urllib.request.urlopen(request, timeout=5).close()
        node_id = node.get_json("/fpai/v1/status")["node_id"]
        assert node.stop() == 0
    logged = [e for e in node.log_events() if e.get("request_id") == "trace-7"]
    assert len(logged) == 1
    assert logged[0]["node_id"] == node_id
    assert (logged[0]["event"], logged[0]["path"], logged[0]["status"]) == (
        "request",
        "/healthz",
        200,
    )
