import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fpai_node.errors import FpaiError, IdentityError
from fpai_node.home import Home, default_home


def test_default_home(tmp_path: Path) -> None:
    assert default_home({"FPAI_HOME": str(tmp_path)}) == tmp_path
    assert default_home({}) == Path.home() / ".fpai"


def test_init_then_refuse_reinit(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    key = home.init("local")
    assert home.is_initialised()
    assert (home.root / "logs").is_dir()
    with pytest.raises(IdentityError, match=key.node_id):
        home.init("local")


def test_api_address_round_trip_and_ownership(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert home.read_api_url() is None
    home.write_api_address("http://127.0.0.1:1234", "fpn1x")
    assert home.read_api_url() == "http://127.0.0.1:1234"
    home.clear_api_address()
    assert not home.api_file.exists()
    # A file written by another process is left alone.
    home.api_file.write_text(f'{{"url": "http://127.0.0.1:1", "pid": {os.getpid() + 1}}}')
    home.clear_api_address()
    assert home.read_api_url() == "http://127.0.0.1:1"


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    home = Home(tmp_path)
    lock = home.lock()
    with pytest.raises(FpaiError, match=f"pid {os.getpid()}"):
        home.lock()
    lock.release()
    home.lock().release()


def test_init_into_a_directory_others_can_write_makes_it_private(tmp_path: Path) -> None:
    """Issue 13 finding 7: `init` into an existing 0777 home left it 0777."""
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    Home(root).init("local")
    assert root.stat().st_mode & 0o777 == 0o700
    assert (root / "node.toml").stat().st_mode & 0o777 == 0o600


def test_init_stores_the_key_as_unencrypted_pkcs8_pem_at_keys_node_key(tmp_path: Path) -> None:
    """KEY-4: the reference node keeps its key at `<home>/keys/node.key` as an unencrypted
    PKCS#8 PEM document."""
    home = Home(tmp_path)
    key = home.init("local")
    assert home.key_file == tmp_path / "keys" / "node.key"
    pem = home.key_file.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert loaded.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) == key.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
