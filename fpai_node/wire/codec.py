"""Canonical MessagePack (specs/0002-wire.md, CANON-1..CANON-7). Pure: no I/O.

One value has exactly one encoding: integers in their shortest form, strings as UTF-8 `str`,
byte strings as `bin`, map keys are strings sorted by their UTF-8 bytes, no floats, no extension
types, bounded nesting. `decode` accepts only bytes that `encode` would produce, so a signature
over bytes and a signature over a value can never disagree.
"""

from typing import Any, TypeAlias

import msgpack

from fpai_node.wire.errors import MalformedFrame

Value: TypeAlias = bool | int | str | bytes | list["Value"] | dict[str, "Value"] | None

MAX_DEPTH = 32  # CANON-6: deep enough for any message we define, shallow enough to walk safely
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1


class EncodeError(ValueError):
    """The value has no canonical encoding (a float, a non-string key, an unsupported type)."""


def encode(value: Value) -> bytes:
    """The canonical encoding of `value` (tuples are encoded as arrays)."""
    return msgpack.packb(_canonical(value, 0), use_bin_type=True)  # type: ignore[no-any-return]


def _canonical(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise EncodeError(f"nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise EncodeError(f"integer {value} outside the int64/uint64 range")
        return value
    if isinstance(value, list | tuple):
        return [_canonical(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise EncodeError("map keys must be strings")
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return {k: _canonical(value[k], depth + 1) for k in keys}
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


def _reject_ext(code: int, data: bytes) -> object:
    raise MalformedFrame(f"extension type {code} is not allowed")


def _check_canonical(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MalformedFrame(f"nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, list):
        for item in value:
            _check_canonical(item, depth + 1)
        return
    if isinstance(value, dict):
        previous: bytes | None = None
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedFrame("map keys must be strings")
            raw = key.encode("utf-8")
            if previous is not None and raw <= previous:
                raise MalformedFrame("map keys not in ascending order")
            previous = raw
            _check_canonical(item, depth + 1)
        return
    raise MalformedFrame(f"type {type(value).__name__} is not allowed")
