"""The node's Ed25519 key on disk (specs/0001-identity.md, KEY-1..KEY-4)."""

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fpai_node.errors import IdentityError
from fpai_node.identity.nodeid import node_id_from_public_key


@dataclass(frozen=True)
class NodeKey:
    """A node's signing key together with the identity it proves."""

    private_key: Ed25519PrivateKey = field(repr=False)
    public_key: bytes
    node_id: str

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> "NodeKey":
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(private_key, public, node_id_from_public_key(public))

    @classmethod
    def generate(cls) -> "NodeKey":
        return cls.from_private_key(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "NodeKey":
        """A deterministic key from a 32-byte seed (RFC 8032); used for test vectors."""
        return cls.from_private_key(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: Path) -> None:
        """KEY-2: write with mode 0600, never replacing an existing file."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise IdentityError(
                f"a node key already exists at {path}; refusing to overwrite it"
            ) from None
        with os.fdopen(fd, "wb") as f:
            f.write(self.to_pem())
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path) -> "NodeKey":
        """KEY-3: refuse a key that others can read, and name the problem in one line."""
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except FileNotFoundError:
            raise IdentityError(f"no node key at {path}; run `fpai-node init`") from None
        except OSError as exc:
            raise IdentityError(f"cannot read node key {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityError(
                f"node key {path} is accessible by other users (mode {stat.S_IMODE(mode):04o}); "
                f"run `chmod 600 {path}`"
            )
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise IdentityError(
                f"node key {path} is corrupt: not an unencrypted PEM private key"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"node key {path} is not an Ed25519 key")
        return cls.from_private_key(key)
