"""The operator key in the home (specs/0009-treasury.md, TREASURY-1): made without eth_account,
yet the address eth_account derives; 0600; never replaced; imported only when it is a key."""

import stat
from pathlib import Path

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.chain import operator_key
from fpai_node.chain.artifacts import ChainError
from fpai_node.home import Home


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=operator_key.SECP256K1_ORDER - 1))
def test_the_address_is_the_one_eth_account_derives_with_its_checksum(secret: int) -> None:
    assert operator_key.address_of(secret) == Account.from_key(secret.to_bytes(32, "big")).address


def test_a_new_key_is_private_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "operator.key"
    address = operator_key.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Account.from_key(path.read_text().strip()).address == address
    before = path.read_bytes()
    with pytest.raises(ChainError, match="refusing to overwrite"):
        operator_key.create(path)
    assert path.read_bytes() == before


def test_an_imported_key_must_be_private_and_a_key(tmp_path: Path) -> None:
    mine = tmp_path / "mine.key"
    mine.write_text("0x" + "11" * 32 + "\n")
    mine.chmod(0o644)
    with pytest.raises(ChainError, match="chmod 600"):
        operator_key.create(tmp_path / "a.key", imported_from=mine)
    mine.chmod(0o600)
    assert operator_key.create(tmp_path / "a.key", imported_from=mine) == (
        Account.from_key(b"\x11" * 32).address
    )
    for bad, reason in (
        ("0x" + "00" * 32, "not a secp256k1 private key"),
        ("ff" * 32, "not a secp256k1 private key"),  # above the group order
        ("0x1234", "expected 64 hex digits"),
    ):
        mine.write_text(bad)
        with pytest.raises(ChainError, match=reason):
            operator_key.create(tmp_path / "b.key", imported_from=mine)
    assert not (tmp_path / "b.key").exists()


def test_init_imports_an_operator_key_and_a_home_from_before_gets_one(tmp_path: Path) -> None:
    mine = tmp_path / "mine.key"
    mine.write_text("22" * 32)
    mine.chmod(0o600)
    home = Home(tmp_path / "home")
    home.init("local", operator_key=mine)
    assert home.operator_key_file.read_text().strip() == "0x" + "22" * 32
    assert home.ensure_operator_key() is None  # it has one: nothing made
    home.operator_key_file.unlink()  # a home made before operator keys existed
    made = home.ensure_operator_key()
    assert made is not None and made == operator_key.address_of(
        operator_key.read_secret(home.operator_key_file)
    )
