import tomllib
from pathlib import Path

import pytest

from fpai_node.config import (
    FIELDS,
    Settings,
    check_safe_binds,
    load_settings,
    render_node_toml,
)
from fpai_node.errors import ConfigError
from fpai_node.hostport import HostPort, parse_host_port

KEY = "k" * 24


def write_toml(home: Path, text: str, mode: int = 0o600) -> None:
    """node.toml as `init` writes it: 0600 (it may hold API keys)."""
    home.mkdir(exist_ok=True)
    (home / "node.toml").write_text(text)
    (home / "node.toml").chmod(mode)


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings == Settings(home=tmp_path)
    assert settings.api == HostPort("127.0.0.1", 8100)
    assert settings.preset == "local"


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    write_toml(tmp_path, 'api = "127.0.0.1:1001"\nlog_level = "debug"\nlog_format = "json"\n')
    env = {"FPAI_API": "127.0.0.1:1002", "FPAI_LOG_LEVEL": "warning"}
    settings = load_settings(tmp_path, cli={"api": HostPort("127.0.0.1", 1003)}, environ=env)
    assert settings.api == HostPort("127.0.0.1", 1003)  # flag beats env and file
    assert settings.log_level == "warning"  # env beats file
    assert settings.log_format == "json"  # file beats default
    assert load_settings(tmp_path, environ=env).api.port == 1002


def test_preset_precedence_and_validation(tmp_path: Path) -> None:
    write_toml(tmp_path, 'preset = "testnet"\n')
    assert load_settings(tmp_path, environ={}).preset == "testnet"
    assert load_settings(tmp_path, environ={"FPAI_PRESET": "federation"}).preset == "federation"
    assert load_settings(tmp_path, cli={"preset": "local"}, environ={}).preset == "local"
    with pytest.raises(ConfigError, match="FPAI_PRESET: expected one of local, testnet"):
        load_settings(tmp_path, environ={"FPAI_PRESET": "mainnet"})


def test_list_and_bool_values_from_env_and_file(tmp_path: Path) -> None:
    env = {"FPAI_API_KEYS": f"{KEY}, {KEY}x", "FPAI_INSECURE_PUBLIC": "yes"}
    settings = load_settings(tmp_path, environ=env)
    assert settings.api_keys == (KEY, KEY + "x")
    assert settings.insecure_public is True
    write_toml(tmp_path, f'api_keys = ["{KEY}"]\ninsecure_public = false\n')
    settings = load_settings(tmp_path, environ={})
    assert settings.api_keys == (KEY,) and settings.insecure_public is False


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("bogus = 1", "unknown key 'bogus'"),
        ("api = 8100", "api: expected a str"),
        ('api = "localhost"', "api: expected HOST:PORT"),
        ('api = "127.0.0.1:70000"', "api: port 70000 is above 65535"),
        ('api_keys = "one"', "api_keys: expected a list of strings"),
        ('api_keys = ["short"]', "api_keys: an API key needs at least 16 characters"),
        ('insecure_public = "yes"', "insecure_public: expected a bool"),
        ('log_level = "loud"', "log_level: expected one of debug, info"),
        ('preset = "mainnet"', "preset: expected one of local, testnet, federation"),
        ("api = ", "invalid TOML"),
    ],
)
def test_bad_file_values_are_one_line_errors_naming_the_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    write_toml(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path, environ={})
    text = str(raised.value)
    assert message in text
    assert "\n" not in text
    assert str(tmp_path / "node.toml") in text


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FPAI_INSECURE_PUBLIC: expected true or false"):
        load_settings(tmp_path, environ={"FPAI_INSECURE_PUBLIC": "maybe"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8100", HostPort("127.0.0.1", 8100)),
        ("localhost:0", HostPort("localhost", 0)),
        ("[::1]:7100", HostPort("::1", 7100)),
        ("0.0.0.0:80", HostPort("0.0.0.0", 80)),
    ],
)
def test_parse_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected
    assert parse_host_port(str(expected)) == expected


@pytest.mark.parametrize("text", ["8100", ":8100", "host:", "host:http", "::1:8100", "h:99999"])
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert HostPort(host, 1).is_loopback is loopback


def test_public_bind_needs_a_key_or_explicit_insecure_flag(tmp_path: Path) -> None:
    public = HostPort("0.0.0.0", 8100)
    with pytest.raises(ConfigError, match="without an API key"):
        check_safe_binds(Settings(home=tmp_path, api=public))
    check_safe_binds(Settings(home=tmp_path, api=public, api_keys=(KEY,)))
    check_safe_binds(Settings(home=tmp_path, api=public, insecure_public=True))
    check_safe_binds(Settings(home=tmp_path))


def test_rendered_node_toml_documents_every_key_and_parses(tmp_path: Path) -> None:
    text = render_node_toml("testnet")
    write_toml(tmp_path, text)
    assert load_settings(tmp_path, environ={}) == Settings(home=tmp_path, preset="testnet")
    for f in FIELDS:
        assert f.rationale in text and f.env in text
    # Uncommenting every example line must give the same, default settings.
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line and not line.endswith("...") else line
        for line in text.splitlines()
    )
    unset = {f.name for f in FIELDS if getattr(Settings(home=tmp_path), f.name) is None}
    assert set(tomllib.loads(uncommented)) == {"preset", *(f.name for f in FIELDS)} - unset
    assert all(f"# {name} = ..." in text for name in unset)
    write_toml(tmp_path, uncommented)
    assert load_settings(tmp_path, environ={}) == Settings(home=tmp_path, preset="testnet")


def test_a_node_toml_with_api_keys_that_others_can_read_is_refused(tmp_path: Path) -> None:
    """Issue 13 finding 7: a node.toml holding API keys at 0644 was accepted silently."""
    write_toml(tmp_path, f'api_keys = ["{KEY}"]\n', mode=0o644)
    with pytest.raises(ConfigError, match=r"holds API keys and others may read it \(mode 0644\)"):
        load_settings(tmp_path, environ={})
    write_toml(tmp_path, 'log_level = "debug"\n', mode=0o644)  # no secret in it: fine
    assert load_settings(tmp_path, environ={}).log_level == "debug"
