"""The operator's Ethereum key in the node's home (specs/0009-treasury.md, TREASURY-1).

A node's operator votes on treasury proposals with a secp256k1 key, `keys/operator.key` in the
home: `0x` and 64 hex digits, mode 0600, like the deployer key `fpai-node chain deploy` reads.
`init` creates it (or imports one the operator already has) and nothing ever overwrites it: the
operator's votes and rewards are bound to it.

This module stays light: `init` and `id` use it, and every node signs and checks operator
bindings (TREASURY-2) as it starts, where importing eth_account would cost half a second of CPU
(py_ecc's pairing tables, which a binding never needs). The key is made and its address
computed with `cryptography` and a Keccak-256 from pycryptodome; an EIP-191 signature is made
and recovered with eth_keys alone (which eth_account itself signs with), imported on first
use. Transactions and EIP-712 ballots are fpai_node.chain.keys' and governance's (eth_account).
"""

import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from fpai_node.chain.artifacts import ChainError

# The order of secp256k1's group: a private key is an integer from 1 to n - 1.
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
KEY_BYTES = 32
SIGNATURE_BYTES = 65  # r and s (32 bytes each), then v
V_OFFSET = 27  # EIP-191 signatures carry the recovery id (0 or 1) plus 27, as Ethereum's do
PERSONAL_PREFIX = b"\x19Ethereum Signed Message:\n"  # EIP-191 version 0x45 (personal_sign)


def keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak  # 35 ms, paid only by the commands that show an address

    digest: bytes = keccak.new(data=data, digest_bits=256).digest()
    return digest


def personal_digest(text: str) -> bytes:
    """What EIP-191's `personal_sign` signs: Keccak-256 of the prefix, the decimal length of
    the UTF-8 text, and the text."""
    data = text.encode()
    return keccak256(PERSONAL_PREFIX + str(len(data)).encode() + data)


def personal_sign(secret: int, text: str) -> bytes:
    """The key's EIP-191 signature of `text`: r, s, v (27 or 28). The nonce is RFC 6979's,
    derived from the key and the digest, so a key signs the same text alike every time (as
    eth_account and wallets do)."""
    from eth_keys.datatypes import PrivateKey

    signature = PrivateKey(secret.to_bytes(KEY_BYTES, "big")).sign_msg_hash(personal_digest(text))
    r, s, v = int(signature.r), int(signature.s), int(signature.v)
    return r.to_bytes(KEY_BYTES, "big") + s.to_bytes(KEY_BYTES, "big") + bytes([v + V_OFFSET])


def personal_signer(text: str, signature: bytes) -> str | None:
    """The checksummed address whose key made `signature` over `text` (EIP-191), or None if
    it is not a signature: not 65 bytes, v not 27 or 28, r or s out of range, or no key
    recovered."""
    from eth_keys.datatypes import Signature
    from eth_keys.exceptions import BadSignature
    from eth_utils.exceptions import ValidationError

    if len(signature) != SIGNATURE_BYTES or signature[64] not in (V_OFFSET, V_OFFSET + 1):
        return None
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    try:
        signed = Signature(vrs=(signature[64] - V_OFFSET, r, s))
        public = signed.recover_public_key_from_msg_hash(personal_digest(text))
    except (BadSignature, ValidationError):
        return None
    return checksum_address(public.to_canonical_address())


def parse_secret(text: str) -> int:
    """The private key in `text` (64 hex digits, `0x` optional); ValueError otherwise."""
    digits = text.strip().removeprefix("0x")
    if len(digits) != 2 * KEY_BYTES:
        raise ValueError(f"expected 64 hex digits, got {len(digits)} characters")
    secret = int(digits, 16)
    if not 0 < secret < SECP256K1_ORDER:
        raise ValueError("not a secp256k1 private key (0, or not below the group order)")
    return secret


def checksum_address(address: bytes) -> str:
    """EIP-55: `0x` and the 40 hex digits, upper case where the hash of the lower-case hex has
    a nibble of 8 or more."""
    lower = address.hex()
    digest = keccak256(lower.encode()).hex()
    return "0x" + "".join(
        c.upper() if int(h, 16) >= 8 else c for c, h in zip(lower, digest[:40], strict=True)
    )


def address_of(secret: int) -> str:
    """The Ethereum address of a private key: the last 20 bytes of Keccak-256 of the
    uncompressed public key's 64 coordinate bytes."""
    public = ec.derive_private_key(secret, ec.SECP256K1()).public_key().public_numbers()
    point = public.x.to_bytes(KEY_BYTES, "big") + public.y.to_bytes(KEY_BYTES, "big")
    return checksum_address(keccak256(point)[-20:])


def read_secret(path: Path) -> int:
    """The key in `path`, which only its owner may read; a ChainError in one line otherwise."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise ChainError(
            f"no operator key at {path} (`fpai-node init` creates one, "
            "`fpai-node init --operator-key FILE` imports yours)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChainError(f"cannot read operator key {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ChainError(f"operator key {path} is open to other users (chmod 600 {path})")
    try:
        return parse_secret(text)
    except ValueError as exc:
        raise ChainError(f"{path} does not hold an operator key: {exc}") from None


def create(path: Path, imported_from: Path | None = None) -> str:
    """Write a new operator key to `path` (or the one in `imported_from`, checked the same way
    as the home's own), never replacing a file there; returns its address."""
    if imported_from is None:
        secret = 1 + secrets.randbelow(SECP256K1_ORDER - 1)
    else:
        secret = read_secret(imported_from)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ChainError(
            f"an operator key already exists at {path}; refusing to overwrite it"
        ) from None
    except OSError as exc:
        raise ChainError(f"cannot write operator key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"0x{secret:064x}\n")
        f.flush()
        os.fsync(f.fileno())
    return address_of(secret)
