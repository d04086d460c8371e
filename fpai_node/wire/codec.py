"""Canonical MessagePack (specs/0002-wire.md, CANON-1..CANON-7). Pure: no I/O.

One value has exactly one encoding: integers in their shortest form, strings as UTF-8 `str`,
byte strings as `bin`, map keys are strings sorted by their UTF-8 bytes, no floats, no extension
types, bounded nesting. `decode` accepts only bytes that `encode` would produce, so a signature
over bytes and a signature over a value can never disagree.
"""

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import msgpack

from fpai_node.wire.errors import MalformedFrame

Value: TypeAlias = bool | int | str | bytes | list["Value"] | dict[str, "Value"] | None

MAX_DEPTH = 32  # CANON-6: deep enough for any message we define, shallow enough to walk safely
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1


class EncodeError(ValueError):
    """The value has no canonical encoding (a float, a non-string key, an unsupported type)."""


def encode(value: Value, depth: int = 0) -> bytes:
    """The canonical encoding of `value` (tuples are encoded as arrays); `depth`: how deep it
    sits in a value encoded in parts (`encode_map`), as CANON-6 counts nesting from the top."""
    return msgpack.packb(_canonical(value, depth), use_bin_type=True)  # type: ignore[no-any-return]


def pack_ordered(value: object) -> bytes:
    """Pack a value the caller built canonical already (sorted keys, allowed types only): the
    fast path for fixed-shape messages. Anything built from outside input goes through `encode`."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def canonical(value: Value, depth: int = 0) -> Value:
    """`value` as `encode` packs it (maps in key order), checked as `encode` checks it, for a
    value nested `depth` deep in one the caller packs with `pack_ordered`."""
    return _canonical(value, depth)  # type: ignore[no-any-return]


def encode_map(fields: Mapping[str, bytes]) -> bytes:
    """The canonical encoding of a map whose values the caller has encoded already, each
    canonically and at its depth (`encode(value, depth + 1)` for a map at `depth`): the same
    bytes as `encode` of the map of decoded values. For a large value built canonical by
    construction and packed at C speed (`pack_ordered`)."""
    head = _header(len(fields), 0x80, b"\xde", b"\xdf")
    return head + b"".join(encode(key) + fields[key] for key in sorted(fields))


def array_header(n: int) -> bytes:
    """The shortest header of an array of `n` items (CANON-1): what precedes their encodings."""
    return _header(n, 0x90, b"\xdc", b"\xdd")


def _header(n: int, fix: int, marker16: bytes, marker32: bytes) -> bytes:
    if n < 16:
        return bytes([fix | n])
    if n < 1 << 16:
        return marker16 + n.to_bytes(2, "big")
    return marker32 + n.to_bytes(4, "big")


def _canonical(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise EncodeError(f"nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise EncodeError(f"integer {value} outside the int64/uint64 range")
        return value
    if type(value) in (list, tuple):  # exact types: msgpack.ExtType is a tuple subclass
        return [_canonical(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise EncodeError("map keys must be strings")
        return {k: _canonical(value[k], depth + 1) for k in sorted(value)}  # code point = UTF-8
    raise EncodeError(f"no canonical encoding for {type(value).__name__}")


def decode(data: bytes) -> Value:
    """Decode canonical bytes, raising MalformedFrame for anything `encode` would not produce."""
    try:
        value = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True, ext_hook=_reject_ext
        )
    except Exception as exc:
        # The unpacker raises a dozen types (ExtraData, FormatError, StackError, OutOfData,
        # UnicodeDecodeError, TypeError for unhashable keys...): all of them mean malformed input.
        raise MalformedFrame(f"not valid MessagePack: {type(exc).__name__}") from None
    _check_canonical(value, 0)
    if msgpack.packb(value, use_bin_type=True) != data:
        raise MalformedFrame("not canonical: a shorter or different encoding exists")
    return value  # type: ignore[no-any-return]


_SCALARS = frozenset({type(None), bool, int, str, bytes})


def _reject_ext(code: int, data: bytes) -> object:
    raise MalformedFrame(f"extension type {code} is not allowed")


def _check_canonical(value: object, depth: int) -> None:
    """CANON-1, -5, -6 over a decoded value. Hot path: exact-type dispatch, no recursion for
    scalars. Python orders str by code point, which is the UTF-8 byte order CANON-5 asks for."""
    kind = type(value)
    children: Iterable[object]
    if kind is list:
        children = value  # type: ignore[assignment]
    elif kind is dict:
        previous = None
        for key in value:  # type: ignore[attr-defined]
            if type(key) is not str:
                raise MalformedFrame("map keys must be strings")
            if previous is not None and key <= previous:
                raise MalformedFrame("map keys not in ascending order")
            previous = key
        children = value.values()  # type: ignore[attr-defined]
    elif kind in _SCALARS:
        return
    else:
        raise MalformedFrame(f"type {kind.__name__} is not allowed")
    if depth >= MAX_DEPTH and len(value):  # type: ignore[arg-type]
        raise MalformedFrame(f"nesting deeper than {MAX_DEPTH}")
    for child in children:
        if type(child) not in _SCALARS:
            _check_canonical(child, depth + 1)
