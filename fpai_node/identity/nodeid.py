"""Node ids (specs/0001-identity.md, ID-1..ID-4). Pure: no I/O."""

import base64
import hashlib
from functools import lru_cache
from typing import TypeGuard

NODE_ID_PREFIX = "fpn1"
NODE_ID_DOMAIN = b"FPAI-NODE-ID-V1\x00"
PUBLIC_KEY_LENGTH = 32
_DIGEST_BYTES = 20  # 160 bits: second-preimage resistance far beyond any federation's lifetime
NODE_ID_LENGTH = len(NODE_ID_PREFIX) + 32  # 20 bytes in unpadded base32 is 32 characters
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


@lru_cache(maxsize=4096)
def node_id_from_public_key(public_key: bytes) -> str:
    """ID-2: `fpn1` + lowercase base32 (no padding) of SHA-256(domain || key)[:20]."""
    if len(public_key) != PUBLIC_KEY_LENGTH:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    digest = hashlib.sha256(NODE_ID_DOMAIN + public_key).digest()[:_DIGEST_BYTES]
    return NODE_ID_PREFIX + base64.b32encode(digest).decode("ascii").lower()


def is_node_id(value: object) -> TypeGuard[str]:
    """ID-3: the syntactic form of a node id (it says nothing about which key it names)."""
    return (
        isinstance(value, str)
        and len(value) == NODE_ID_LENGTH
        and value.startswith(NODE_ID_PREFIX)
        and set(value[len(NODE_ID_PREFIX) :]) <= _ALPHABET
    )
