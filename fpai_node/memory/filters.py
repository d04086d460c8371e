"""The filter language of a memory search or listing, as a small tree (specs/0007-memory.md).
Pure.

Mem0's filters (`{"AND": [{"user_id": "u"}, {"created_at": {"gte": ...}}]}`) are parsed into
this tree at the API; each store translates the tree into its engine's filter, and the
replication layer sends it to peers in its canonical form.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Op = Literal["eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "icontains"]
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Field:
    """One comparison on a payload key (see store.Payload). `in`/`nin` take a tuple of
    scalars; `gt`..`lte` a number; `contains`/`icontains` a string (a substring of the
    value, `icontains` ignoring case); `eq`/`ne` a scalar."""

    key: str
    op: Op
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple["Condition", ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple["Condition", ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: "Condition"


Condition = Field | All | AnyOf | Not


# --- the wire form (MEM-17) ----------------------------------------------------------------

MAX_FILTER_NODES = 64  # MEM-17: Mem0 filters name a few fields; 64 leaves room for long OR lists
MAX_FILTER_DEPTH = 8
MAX_KEY_BYTES = 255
FIELD_OPS: tuple[Op, ...] = (
    "eq",
    "ne",
    "in",
    "nin",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "icontains",
)


class BadFilter(ValueError):
    """A filter outside the language (wrong shape, unknown op, too big)."""


def to_value(condition: Condition) -> "WireValue":
    """MEM-17: ["and", [c...]], ["or", [c...]], ["not", c] or ["field", key, op, value], where
    a float value is ["float", its shortest decimal text] (canonical MessagePack has no
    floats) and an in/nin value is a list."""
    match condition:
        case All(parts):
            return ["and", [to_value(p) for p in parts]]
        case AnyOf(parts):
            return ["or", [to_value(p) for p in parts]]
        case Not(part):
            return ["not", to_value(part)]
        case Field(key, op, value):
            if isinstance(value, tuple):
                return ["field", key, op, [_scalar_value(v) for v in value]]
            return ["field", key, op, _scalar_value(value)]
    raise AssertionError(condition)


WireValue = bool | int | str | bytes | list["WireValue"] | dict[str, "WireValue"] | None


def from_value(value: WireValue) -> Condition:
    """The inverse of `to_value`; raises BadFilter for anything else, within the bounds."""
    budget = [MAX_FILTER_NODES]
    return _from_value(value, 0, budget)


def _from_value(value: WireValue, depth: int, budget: list[int]) -> Condition:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_FILTER_DEPTH:
        raise BadFilter(f"a filter has at most {MAX_FILTER_NODES} parts, {MAX_FILTER_DEPTH} deep")
    match value:
        case ["and" | "or" as kind, list(parts)] if parts:
            children = tuple(_from_value(p, depth + 1, budget) for p in parts)
            return All(children) if kind == "and" else AnyOf(children)
        case ["not", part]:
            return Not(_from_value(part, depth + 1, budget))
        case ["field", str(key), str(op), raw] if 0 < utf8_length(key) <= MAX_KEY_BYTES:
            return field(key, op, raw)
    raise BadFilter("not a filter")


def field(key: str, op: str, raw: WireValue) -> Field:
    """A Field from its wire parts, with the value checked against the op."""
    if op not in FIELD_OPS:
        raise BadFilter(f"unknown filter op {op!r}")
    if op in ("in", "nin"):
        if not isinstance(raw, list) or not raw or len(raw) > MAX_FILTER_NODES:
            raise BadFilter(f"{op} takes a list of 1..{MAX_FILTER_NODES} values")
        return Field(key, op, tuple(_scalar(v) for v in raw))
    scalar = _scalar(raw)
    if op in ("gt", "gte", "lt", "lte") and (
        isinstance(scalar, bool) or not isinstance(scalar, int | float)
    ):
        raise BadFilter(f"{op} compares numbers")
    if op in ("contains", "icontains") and not isinstance(scalar, str):
        raise BadFilter(f"{op} takes a string")
    return Field(key, op, scalar)


def _scalar_value(value: Scalar) -> WireValue:
    if isinstance(value, float):
        return ["float", repr(value)]
    return value


def _scalar(raw: WireValue) -> Scalar:
    match raw:
        case bool():
            return raw
        case int():
            if not _INT_MIN <= raw <= _INT_MAX:
                raise BadFilter("a filter integer is a signed 64-bit integer")
            return raw
        case str():
            if utf8_length(raw) > MAX_KEY_BYTES * 4:
                raise BadFilter("a filter string is at most 1020 bytes")
            return raw
        case ["float", str(text)] if len(text) <= 32:
            try:
                number = float(text)
            except ValueError:
                raise BadFilter("not a float") from None
            if not math.isfinite(number) or repr(number) != text:
                raise BadFilter("a float is finite, in its shortest decimal text")
            return number
    raise BadFilter("a filter value is a string, integer, boolean or float")


def utf8_length(text: str) -> int:
    """Its UTF-8 length; BadFilter for text no UTF-8 can hold (a lone surrogate, which JSON
    allows as an escape)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        raise BadFilter("a filter string is not valid Unicode") from None


def matches(condition: Condition, payload: Mapping[str, object]) -> bool:
    """MEM-17: whether a record's flat payload satisfies the condition. A key the record lacks
    is equal to nothing (so `ne` and `nin` hold); a list value is equal to each of its
    elements; `contains` is a substring of the value or of an element of a list value."""
    match condition:
        case All(parts):
            return all(matches(p, payload) for p in parts)
        case AnyOf(parts):
            return any(matches(p, payload) for p in parts)
        case Not(part):
            return not matches(part, payload)
        case Field(key, op, value):
            held = _lookup(payload, key)
            values = held if isinstance(held, list) else [] if held is None else [held]
            if op in ("eq", "ne", "in", "nin"):
                wanted = value if isinstance(value, tuple) else (value,)
                hit = any(_same(v, w) for v in values for w in wanted)
                return hit if op in ("eq", "in") else not hit
            if op in ("contains", "icontains"):
                folded = op == "icontains"
                needle = _fold(str(value), folded)
                return any(isinstance(v, str) and needle in _fold(v, folded) for v in values)
            return any(_compare(v, op, value) for v in values)
    raise AssertionError(condition)


def _lookup(payload: Mapping[str, object], key: str) -> object:
    """A payload value by its key; `metadata.<name>` is the entry of the `metadata` object."""
    if key.startswith("metadata."):
        metadata = payload.get("metadata")
        return metadata.get(key[len("metadata.") :]) if isinstance(metadata, dict) else None
    return payload.get(key)


def _fold(text: str, folded: bool) -> str:
    return text.casefold() if folded else text


def _same(held: object, wanted: object) -> bool:
    """Equal, without True == 1: a boolean equals only a boolean."""
    return isinstance(held, bool) == isinstance(wanted, bool) and held == wanted


def _compare(held: object, op: str, bound: object) -> bool:
    if isinstance(held, bool) or not isinstance(held, int | float):
        return False
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        return False
    return {
        "gt": held > bound,
        "gte": held >= bound,
        "lt": held < bound,
        "lte": held <= bound,
    }[op]


# --- Mem0's filter language (the client API) -----------------------------------------------

# Record fields a Mem0 filter may name, besides `metadata`; dates compare as ms since the epoch
FILTER_FIELDS = (
    "user_id",
    "agent_id",
    "run_id",
    "created_at",
    "updated_at",
    "hash",
    "kind",
    "memory",
)
_DATE_FIELDS = ("created_at", "updated_at")
_MAX_SECONDS = ((1 << 53) - 1) // 1000  # MEM-3: times are ms below 2^53
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1  # what canonical MessagePack carries signed
# MEM-17: a metadata key a filter can name: plain names, which every store can address as a path
_METADATA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def from_mem0(value: object) -> Condition:
    """Mem0's filters (`{"AND": [{"user_id": "u"}, {"created_at": {"gte": "2026-01-01"}}]}`,
    `{"OR": [...]}`, `{"NOT": [...]}`, `{field: value}`, `{field: {op: value}}`, `"*"` for any
    non-empty value, `{"metadata": {key: value or {op: value}}}`); several keys in one object
    are an AND. Raises BadFilter with a message for the client."""
    budget = [MAX_FILTER_NODES]
    condition = _mem0(value, 0, budget)
    from_value(to_value(condition))  # the same bounds as on the wire
    return condition


def _mem0(value: object, depth: int, budget: list[int]) -> Condition:
    if depth > MAX_FILTER_DEPTH:
        raise BadFilter(f"filters nest at most {MAX_FILTER_DEPTH} levels")
    if not isinstance(value, dict) or not value:
        raise BadFilter("a filter is a non-empty JSON object")
    parts: list[Condition] = []
    for key, inner in value.items():
        budget[0] -= 1
        if budget[0] < 0:
            raise BadFilter(f"a filter has at most {MAX_FILTER_NODES} parts")
        if key in ("AND", "OR", "NOT"):
            if not isinstance(inner, list) or not inner:
                raise BadFilter(f"{key} takes a non-empty list of filters")
            children = tuple(_mem0(child, depth + 1, budget) for child in inner)
            if key == "AND":
                parts.append(All(children))
            elif key == "OR":
                parts.append(AnyOf(children))
            else:
                parts.append(Not(children[0] if len(children) == 1 else AnyOf(children)))
        elif key == "metadata":
            if not isinstance(inner, dict) or not inner:
                raise BadFilter("metadata takes an object of metadata keys")
            parts += [_comparison(_metadata_key(f"metadata.{k}"), v) for k, v in inner.items()]
        elif key in FILTER_FIELDS or key.startswith("metadata."):
            parts.append(
                _comparison(_metadata_key(key) if key.startswith("metadata.") else key, inner)
            )
        else:
            raise BadFilter(f"unknown filter field {key!r}")
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _metadata_key(key: str) -> str:
    name = key[len("metadata.") :]
    if not _METADATA_NAME.fullmatch(name):
        raise BadFilter(f"{key}: a metadata filter names a key of letters, digits, _ and -")
    return key


def _comparison(key: str, value: object) -> Condition:
    if value == "*":  # Mem0's wildcard: any record of some user (agent, run)
        if key not in ("user_id", "agent_id", "run_id"):
            raise BadFilter(f"{key}: the wildcard '*' applies to user_id, agent_id and run_id")
        return Field(key, "ne", "")  # records always hold the three ids, "" when unset
    if isinstance(value, dict):
        if len(value) != 1:
            raise BadFilter(f"{key}: one operator per object ({{'gte': ...}})")
        [(op, operand)] = value.items()
        if op not in FIELD_OPS:
            raise BadFilter(f"{key}: unknown operator {op!r}; use one of {', '.join(FIELD_OPS)}")
        if op in ("in", "nin"):
            if not isinstance(operand, list):
                raise BadFilter(f"{key}: {op} takes a list")
            return field(key, op, [_json_scalar(key, v) for v in operand])
        return field(key, op, _json_scalar(key, operand))
    return field(key, "eq", _json_scalar(key, value))


def _json_scalar(key: str, value: object) -> WireValue:
    if key in _DATE_FIELDS:
        return _date_ms(key, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadFilter(f"{key}: a number is finite")
        return ["float", repr(value)]
    if isinstance(value, bool | int | str):
        _scalar(value)  # the wire's bounds: 64-bit integers, 1020-byte valid strings
        return value
    raise BadFilter(f"{key}: a filter value is a string, number or boolean")


def _date_ms(key: str, value: object) -> int:
    """ISO 8601 text (UTC unless it says otherwise) or Unix seconds, as ms since the epoch."""
    import datetime as dt

    if isinstance(value, bool):
        raise BadFilter(f"{key}: a date is ISO 8601 text or Unix seconds")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and abs(value) <= _MAX_SECONDS):
            raise BadFilter(f"{key}: a date in Unix seconds is within 2^53 ms of the epoch")
        return int(value * 1000)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise BadFilter(f"{key}: {value!r} is not an ISO 8601 date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return int(parsed.timestamp() * 1000)
    raise BadFilter(f"{key}: a date is ISO 8601 text or Unix seconds")
