import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fpai_node.errors import IdentityError
from fpai_node.identity import NodeKey, is_node_id, node_id_from_public_key


def test_node_id_is_the_written_rule() -> None:
    """The worked example of specs/0001-identity.md (seed 00..1f): the RFC 8032 public key of
    the seed, 32 bytes (KEY-1), and the node id derived from it (ID-2)."""
    key = NodeKey.from_seed(bytes(range(32)))
    assert key.public_key.hex() == (
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    )
    assert key.node_id == "fpn14dy3dn2fzm3blwzovxh7kdyvsxljdh7v"


def test_distinct_keys_give_distinct_valid_ids() -> None:
    """ID-1: a node id names exactly one public key, and the same key always the same id."""
    key = NodeKey.generate()
    assert node_id_from_public_key(key.public_key) == key.node_id
    assert NodeKey.from_private_key(key.private_key).node_id == key.node_id
    ids = {NodeKey.generate().node_id for _ in range(50)}
    assert len(ids) == 50
    assert all(is_node_id(i) for i in ids)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fpn1",
        "fpn1" + "a" * 31,
        "fpn1" + "a" * 33,
        "fpn2" + "a" * 32,
        "fpn1" + "A" * 32,
        "fpn1" + "1" * 32,
        "fpn1" + "8" * 32,
    ],
)
def test_malformed_node_ids(text: str) -> None:
    """ID-3: 36 characters, `fpn1`, then 32 of `a`-`z` and `2`-`7`; anything else is not one."""
    assert not is_node_id(text)
    assert is_node_id("fpn1" + "a" * 16 + "234567" + "z" * 10)


def test_is_node_id_rejects_non_strings() -> None:
    assert not is_node_id(b"fpn1" + b"a" * 32)
    assert not is_node_id(None)


def test_public_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        node_id_from_public_key(b"\x00" * 31)


def test_saved_key_is_private_and_loads_back(tmp_path: Path) -> None:
    """KEY-2: the key file is readable and writable by its owner only (mode 0600)."""
    key = NodeKey.generate()
    path = tmp_path / "keys" / "node.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = NodeKey.load(path)
    assert loaded.node_id == key.node_id
    assert loaded.sign(b"m") == key.sign(b"m")  # Ed25519 is deterministic: same key


def test_save_never_overwrites(tmp_path: Path) -> None:
    """KEY-2: creating a key never replaces an existing key file."""
    path = tmp_path / "node.key"
    NodeKey.generate().save(path)
    before = path.read_bytes()
    with pytest.raises(IdentityError, match="refusing to overwrite"):
        NodeKey.generate().save(path)
    assert path.read_bytes() == before


def test_load_refuses_group_or_world_access(tmp_path: Path) -> None:
    """KEY-3: a key file other users can read or write is refused, and the error says so."""
    path = tmp_path / "node.key"
    NodeKey.generate().save(path)
    for mode in (0o640, 0o604, 0o660, 0o620, 0o602):
        path.chmod(mode)
        with pytest.raises(IdentityError, match=f"mode {mode:04o}"):
            NodeKey.load(path)


def test_load_missing_corrupt_and_foreign_keys(tmp_path: Path) -> None:
    """KEY-3: a key file that is no Ed25519 private key is refused, and the error says so."""
    with pytest.raises(IdentityError, match="no node key"):
        NodeKey.load(tmp_path / "absent.key")
    corrupt = tmp_path / "corrupt.key"
    corrupt.write_bytes(b"not a key")
    corrupt.chmod(0o600)
    with pytest.raises(IdentityError, match="corrupt"):
        NodeKey.load(corrupt)
    foreign = tmp_path / "ec.key"
    foreign.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    foreign.chmod(0o600)
    with pytest.raises(IdentityError, match="not an Ed25519 key"):
        NodeKey.load(foreign)
