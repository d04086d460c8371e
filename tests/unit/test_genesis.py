import tomllib
from pathlib import Path

import pytest

from fpai_node.config import Settings
from fpai_node.errors import ConfigError
from fpai_node.genesis import (
    MAX_PARAMETER_BYTES,
    Genesis,
    load_genesis,
    registry_electors,
    registry_voters,
)
from fpai_node.hostport import HostPort
from fpai_node.registry.state import MAX_TEXT

REPO = Path(__file__).resolve().parents[2]
GOOD = (
    'federation_id = "fpai-testnet-1"\n'
    "protocol_version = 1\n"
    'bootstrap = ["127.0.0.1:7100", "[::1]:7101"]\n'
)
HEAD = 'federation_id = "x"\nprotocol_version = 1\n'


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


def test_voters_default_to_three_and_parameters_to_none(tmp_path: Path) -> None:
    genesis = load_genesis(write(tmp_path, GOOD))
    assert genesis.registry_voters == 3 and dict(genesis.parameters) == {}


def test_voters_and_parameters(tmp_path: Path) -> None:
    text = GOOD + (
        "registry_voters = 5\n"
        "[parameters]\n"
        'motd = "welcome"\n'
        "max_tokens = 512\n"
        "open = false\n"
        '"quoted.key" = -1\n'
        "dotted.key = 2\n"
        "[parameters.table]\n"
        "key = true\n"
    )
    genesis = load_genesis(write(tmp_path, text))
    assert genesis.registry_voters == 5
    assert dict(genesis.parameters) == {
        "dotted.key": 2,
        "max_tokens": 512,
        "motd": "welcome",
        "open": False,
        "quoted.key": -1,
        "table.key": True,
    }
    assert list(genesis.parameters) == sorted(genesis.parameters)  # proposed in a stable order


def test_a_parameter_of_the_longest_allowed_key(tmp_path: Path) -> None:
    key = "k" * MAX_TEXT
    genesis = load_genesis(write(tmp_path, HEAD + f'[parameters]\n{key} = ""\n'))
    assert dict(genesis.parameters) == {key: ""}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "voters = 3\n", "unknown key 'voters'"),
        ("protocol_version = 1\nbootstrap = []\n", "federation_id must be"),
        ('federation_id = " "\nprotocol_version = 1\n', "federation_id must be"),
        ('federation_id = "x"\nprotocol_version = 2\n', "speaks protocol 2, this node speaks 1"),
        ('federation_id = "x"\nprotocol_version = "1"\n', "protocol_version must be an integer"),
        (HEAD + 'bootstrap = "a:1"\n', "must be a list"),
        (HEAD + 'bootstrap = ["nowhere"]\n', "HOST:PORT"),
        ("federation_id = \n", "invalid TOML"),
        (HEAD + "registry_voters = 4\n", "registry_voters must be 3 or 5 (an integer), got 4"),
        (HEAD + "registry_voters = 1\n", "registry_voters must be 3 or 5"),
        (HEAD + "registry_voters = 7\n", "registry_voters must be 3 or 5"),
        (HEAD + 'registry_voters = "3"\n', "registry_voters must be 3 or 5 (an integer), got '3'"),
        (HEAD + "registry_voters = true\n", "registry_voters must be 3 or 5"),
        (HEAD + "registry_voters = 3.0\n", "registry_voters must be 3 or 5"),
        (HEAD + "parameters = 1\n", "parameters must be a table"),
        (HEAD + "[parameters]\nratio = 0.5\n", "parameters.ratio: 0.5 is a floating-point"),
        (HEAD + "[parameters]\nratio = nan\n", "parameters.ratio: nan is a floating-point"),
        (HEAD + "[parameters]\nlist = [1, 2]\n", "parameters.list: must be a string, an int"),
        (HEAD + "[parameters]\nwhen = 2024-01-01\n", "parameters.when: must be a string"),
        (HEAD + "[parameters]\nempty = {}\n", "parameters.empty: must be a string"),
        (HEAD + '[parameters]\n"" = 1\n', "parameters.: a parameter key has 1 to 255 bytes"),
        (HEAD + f"[parameters]\n{'k' * 256} = 1\n", "a parameter key has 1 to 255 bytes"),
        (
            HEAD + f'[parameters]\nbig = "{"x" * MAX_PARAMETER_BYTES}"\n',
            f"parameters.big: too long: a parameter and its key take at most "
            f"{MAX_PARAMETER_BYTES} bytes",
        ),
        (HEAD + '[parameters]\n"a.b" = 1\na.b = 2\n', "parameters.a.b: defined twice"),
        (
            HEAD + "[parameters]\nregistry.voters = 5\n",
            "parameters.registry.voters: set the top-level registry_voters instead",
        ),
    ],
)
def test_bad_genesis_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_genesis(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"genesis file {path}")


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_genesis(tmp_path / "absent.toml")


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "genesis.toml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot read") as raised:
        load_genesis(path)
    assert "\n" not in str(raised.value)


# ---- which voter target a node gives the registry it creates ----------------------------------


def genesis_with(voters: int) -> Genesis:
    return Genesis("x", 1, (), voters)


@pytest.mark.parametrize(
    ("setting", "genesis", "expected"),
    [
        (None, None, 3),  # nothing chosen: REG-13's default
        (5, None, 5),  # no genesis: the node's setting
        (None, genesis_with(5), 5),  # the genesis decides
        (5, genesis_with(5), 5),  # a setting that agrees is fine
        (None, genesis_with(3), 3),
    ],
)
def test_registry_voters(
    tmp_path: Path, setting: int | None, genesis: Genesis | None, expected: int
) -> None:
    settings = Settings(home=tmp_path, registry_voters=setting, genesis="g.toml")
    assert registry_voters(settings, genesis) == expected


@pytest.mark.parametrize(("setting", "in_genesis"), [(3, 5), (5, 3), (1, 3), (7, 5)])
def test_a_setting_that_contradicts_the_genesis_is_one_line(
    tmp_path: Path, setting: int, in_genesis: int
) -> None:
    settings = Settings(home=tmp_path, registry_voters=setting, genesis="/etc/fpai/genesis.toml")
    with pytest.raises(ConfigError) as raised:
        registry_voters(settings, genesis_with(in_genesis))
    message = str(raised.value)
    assert message.startswith("genesis file /etc/fpai/genesis.toml: registry_voters is ")
    assert f"setting (--registry-voters, FPAI_REGISTRY_VOTERS or node.toml) is {setting}" in message
    assert "\n" not in message


# ---- the example files under testnet/ ----------------------------------------------------------


def test_the_public_testnet_example_is_a_valid_genesis() -> None:
    path = REPO / "testnet" / "genesis" / "public-testnet.toml"
    genesis = load_genesis(path)
    assert genesis.federation_id and genesis.registry_voters in (3, 5)
    assert genesis.bootstrap and all(
        b.startswith(("203.0.113.", "198.51.100.", "192.0.2.")) or ".example." in b
        for b in genesis.bootstrap
    )  # documentation addresses only: nobody dials a real host by copying the example
    assert "EXAMPLE" in path.read_text()


def test_the_readme_example_genesis_is_valid(tmp_path: Path) -> None:
    """The first TOML block of testnet/README.md is the reference example: it must load."""
    readme = (REPO / "testnet" / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    tomllib.loads(block)
    genesis = load_genesis(write(tmp_path, block))
    assert genesis.parameters


ALICE = "fpn1" + "a" * 32
BOB = "fpn1" + "b" * 32


def test_electors_come_from_the_genesis_in_their_order_without_repeats(tmp_path: Path) -> None:
    text = GOOD + f'registry_electors = ["{ALICE}", "{BOB}", "{ALICE}"]\n'
    assert load_genesis(write(tmp_path, text)).registry_electors == (ALICE, BOB)
    assert load_genesis(write(tmp_path, GOOD)).registry_electors is None


@pytest.mark.parametrize("value", ["[]", '"fpn1x"', '["not-a-node"]', "3"])
def test_bad_electors_are_one_line_errors(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="registry_electors must be a non-empty list of node"):
        load_genesis(write(tmp_path, GOOD + f"registry_electors = {value}\n"))
    with pytest.raises(ConfigError, match="set the top-level registry_electors instead"):
        load_genesis(write(tmp_path, GOOD + '[parameters]\n"registry.electors" = "x"\n'))


def test_who_may_vote_in_a_registry_this_node_creates(tmp_path: Path) -> None:
    """REG-13: the genesis decides; else anyone where only certified nodes or this machine can
    join; else only the creator until the voters elect others."""
    public = HostPort("0.0.0.0", 7100)
    genesis = Genesis("x", 1, (), registry_electors=(BOB,))
    assert registry_electors(Settings(home=tmp_path, peer=public), genesis, ALICE) == (BOB,)
    assert registry_electors(Settings(home=tmp_path), None, ALICE) is None  # loopback
    federation = Settings(home=tmp_path, peer=public, preset="federation")
    assert registry_electors(federation, None, ALICE) is None
    assert registry_electors(Settings(home=tmp_path, peer=public), None, ALICE) == (ALICE,)
