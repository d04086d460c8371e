from pathlib import Path

import pytest

from fpai_node.errors import ConfigError
from fpai_node.genesis import Genesis, load_genesis

GOOD = (
    'federation_id = "fpai-testnet-1"\n'
    "protocol_version = 1\n"
    'bootstrap = ["127.0.0.1:7100", "[::1]:7101"]\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "genesis.toml"
    path.write_text(text)
    return path


def test_a_valid_genesis(tmp_path: Path) -> None:
    assert load_genesis(write(tmp_path, GOOD)) == Genesis(
        "fpai-testnet-1", 1, ("127.0.0.1:7100", "[::1]:7101")
    )


def test_bootstrap_may_be_empty(tmp_path: Path) -> None:
    text = 'federation_id = "solo"\nprotocol_version = 1\n'
    assert load_genesis(write(tmp_path, text)).bootstrap == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "voters = 3\n", "unknown key 'voters'"),
        ("protocol_version = 1\nbootstrap = []\n", "federation_id must be"),
        ('federation_id = "x"\nprotocol_version = 2\n', "speaks protocol 2, this node speaks 1"),
        ('federation_id = "x"\nprotocol_version = "1"\n', "protocol_version must be an integer"),
        ('federation_id = "x"\nprotocol_version = 1\nbootstrap = "a:1"\n', "must be a list"),
        ('federation_id = "x"\nprotocol_version = 1\nbootstrap = ["nowhere"]\n', "HOST:PORT"),
        ("federation_id = \n", "invalid TOML"),
    ],
)
def test_bad_genesis_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_genesis(write(tmp_path, text))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_genesis(tmp_path / "absent.toml")
