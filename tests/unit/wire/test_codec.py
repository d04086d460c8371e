"""Canonical MessagePack (specs/0002-wire.md CANON-1..CANON-7): exact bytes and rejections."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpai_node.wire.codec import (
    MAX_DEPTH,
    EncodeError,
    array_header,
    decode,
    encode,
    encode_map,
)
from fpai_node.wire.errors import MalformedFrame, WireError

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


def nested_arrays(count: int, inner: bytes = b"\x90") -> bytes:
    """`count` arrays in total, each holding the next; the innermost is `inner`."""
    return b"\x91" * (count - 1) + inner


def nested_list(count: int) -> list[object]:
    value: list[object] = []
    for _ in range(count - 1):
        value = [value]
    return value


def same(a: object, b: object) -> bool:
    """Equality that also tells bool from int and list from tuple (== does not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


# --- exact encodings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"),
        (2**64 - 1, "cfffffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-(2**31), "d280000000"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (-(2**63), "d38000000000000000"),
    ],
)
def test_integers_use_the_shortest_form(value: int, expected: str) -> None:
    assert encode(value).hex() == expected
    assert decode(bytes.fromhex(expected)) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "c0"),
        (False, "c2"),
        (True, "c3"),
        ("", "a0"),
        ("a", "a161"),
        ("é", "a2c3a9"),
        ("x" * 31, "bf" + "78" * 31),
        ("x" * 32, "d920" + "78" * 32),
        ("x" * 256, "da0100" + "78" * 256),
        (b"", "c400"),
        (b"\x00\xff", "c40200ff"),
        (b"\x01" * 256, "c50100" + "01" * 256),
        ([], "90"),
        ([1, [2, [3, []]], "x"], "93019202920390a178"),
        ({}, "80"),
        (list(range(16)), "dc0010" + "".join(f"{i:02x}" for i in range(16))),
    ],
)
def test_exact_encodings(value: object, expected: str) -> None:
    assert encode(value).hex() == expected  # type: ignore[arg-type]
    assert same(decode(bytes.fromhex(expected)), value)


def test_tuples_encode_as_arrays() -> None:
    assert encode((1, "a", (b"",))) == encode([1, "a", [b""]]) == bytes.fromhex("9301a161 91c400")


def test_map_keys_are_sorted_by_utf8_bytes_whatever_the_insertion_order() -> None:
    # "\u30ce" is KATAKANA LETTER NO (UTF-8 e3 83 8e), the last key of the CANON-5 example.
    keys = ["\u30ce", "z", "b", "é", "aa", "a", "B"]
    expected = (
        b"\x87"
        + b"\xa1B\x00"
        + b"\xa1a\x01"
        + b"\xa2aa\x02"
        + b"\xa1b\x03"
        + b"\xa1z\x04"
        + b"\xa2\xc3\xa9\x05"
        + b"\xa3\xe3\x83\x8e\x06"
    )
    order = ["B", "a", "aa", "b", "z", "é", "\u30ce"]
    forward = {k: order.index(k) for k in keys}
    backward = {k: order.index(k) for k in reversed(keys)}
    assert encode(forward) == expected
    assert encode(backward) == expected
    assert list(decode(expected)) == order  # type: ignore[arg-type]


def test_nested_maps_are_sorted_too() -> None:
    assert encode({"b": {"y": 1, "x": 2}, "a": [{"d": None, "c": True}]}) == (
        b"\x82\xa1a\x91\x82\xa1c\xc3\xa1d\xc0\xa1b\x82\xa1x\x02\xa1y\x01"
    )


def test_sorting_is_by_utf8_bytes_not_utf16_code_units() -> None:
    # U+FFFF sorts before U+10000 in UTF-8, but after it in UTF-16 (surrogate d800 < ffff).
    encoded = encode({"\U00010000": 1, "\uffff": 2})
    assert encoded == b"\x82\xa3\xef\xbf\xbf\x02\xa4\xf0\x90\x80\x80\x01"


# --- encode rejections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.5,
        float("nan"),
        msgpack.Timestamp(1, 0),
        {1: "a"},
        {b"k": 1},
        {None: 1},
        {"ok": {2: 3}},
        [1, 2.5],
        INT_MAX + 1,
        INT_MIN - 1,
        2**100,
        {1, 2},
        object(),
        bytearray(b"x"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_encode_rejects_values_without_a_canonical_form(value: object) -> None:
    with pytest.raises(EncodeError):
        encode(value)  # type: ignore[arg-type]


def test_encode_rejects_ext_types() -> None:
    # msgpack.ExtType is a namedtuple: it must not silently become the array [code, data].
    with pytest.raises(EncodeError):
        encode(msgpack.ExtType(1, b"x"))  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        encode([msgpack.ExtType(5, b"\x00" * 4)])  # type: ignore[list-item]


def test_encode_error_is_a_value_error_not_a_wire_error() -> None:
    assert issubclass(EncodeError, ValueError)
    assert not issubclass(EncodeError, WireError)


def test_encode_depth_limit_is_exactly_max_depth() -> None:
    assert MAX_DEPTH == 32
    deepest = nested_list(MAX_DEPTH + 1)  # the top array and 32 nested below it
    assert encode(deepest) == nested_arrays(MAX_DEPTH + 1)
    with pytest.raises(EncodeError):
        encode([deepest])
    deep_map: dict[str, object] = {}
    for _ in range(MAX_DEPTH):
        deep_map = {"k": deep_map}
    assert decode(encode(deep_map)) == deep_map  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        encode({"k": deep_map})  # type: ignore[dict-item]


def test_encode_rejects_very_deep_nesting_without_recursion_error() -> None:
    with pytest.raises(EncodeError):
        encode(nested_list(10_000))


# --- decode rejections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xcc\x05", id="uint8-for-fixint"),
        pytest.param(b"\xcc\x7f", id="uint8-for-127"),
        pytest.param(b"\xcd\x00\xff", id="uint16-for-255"),
        pytest.param(b"\xce\x00\x00\xff\xff", id="uint32-for-65535"),
        pytest.param(b"\xcf\x00\x00\x00\x00\xff\xff\xff\xff", id="uint64-for-2p32-1"),
        pytest.param(b"\xd0\x05", id="int8-for-positive"),
        pytest.param(b"\xd0\xff", id="int8-for-fixint-negative"),
        pytest.param(b"\xd1\x00\x05", id="int16-for-positive"),
        pytest.param(b"\xd1\xff\xdf", id="int16-for-int8"),
        pytest.param(b"\xd3" + (5).to_bytes(8, "big"), id="int64-for-positive"),
        pytest.param(b"\x82\xa1b\x01\xa1a\x02", id="unsorted-keys"),
        pytest.param(b"\x82\xa2aa\x01\xa1a\x02", id="prefix-after-longer-key"),
        pytest.param(b"\x82\xa1a\x01\xa1a\x02", id="duplicate-keys"),
        pytest.param(b"\x82\xa1a\x01\xa1a\x01", id="duplicate-keys-same-value"),
        pytest.param(b"\xd9\x01a", id="str8-for-short-string"),
        pytest.param(b"\xda\x00\x01a", id="str16-for-short-string"),
        pytest.param(b"\xc5\x00\x01a", id="bin16-for-short-bytes"),
        pytest.param(b"\xdc\x00\x00", id="array16-for-empty"),
        pytest.param(b"\xde\x00\x00", id="map16-for-empty"),
        pytest.param(b"\xdd\x00\x00\x00\x01\x00", id="array32-for-one"),
        pytest.param(b"\x00\x00", id="trailing-byte"),
        pytest.param(b"\x90\xc0", id="trailing-nil"),
        pytest.param(b"\xcd\x01", id="truncated-uint16"),
        pytest.param(b"\x92\x01", id="truncated-array"),
        pytest.param(b"\xa3ab", id="truncated-str"),
        pytest.param(b"\xc4\x05ab", id="truncated-bin"),
        pytest.param(b"\x81\xa1a", id="truncated-map"),
        pytest.param(b"\xa1\xff", id="invalid-utf8"),
        pytest.param(b"\xa2\xc3\x28", id="invalid-utf8-continuation"),
        pytest.param(b"\xa3\xed\xa0\x80", id="utf8-surrogate"),
        pytest.param(b"\xa2\xc0\x80", id="utf8-overlong-nul"),
        pytest.param(b"\x81\xa1\xff\x01", id="invalid-utf8-key"),
        pytest.param(b"\xd4\x01\x00", id="fixext1"),
        pytest.param(b"\xc7\x01\x05x", id="ext8"),
        pytest.param(b"\xd6\xff\x00\x00\x00\x00", id="timestamp-ext"),
        pytest.param(b"\x91\xd4\x01\x00", id="ext-inside-array"),
        pytest.param(b"\xca\x00\x00\x00\x00", id="float32"),
        pytest.param(b"\xcb" + b"\x00" * 8, id="float64"),
        pytest.param(b"\x91\xcb" + b"\x00" * 8, id="float64-inside-array"),
        pytest.param(b"\xc1", id="never-used"),
        pytest.param(b"\x81\xc4\x01a\x01", id="bin-key"),
        pytest.param(b"\x81\x01\x01", id="int-key"),
        pytest.param(b"\x81\xc0\x01", id="nil-key"),
        pytest.param(b"\x81\x90\x01", id="array-key"),
        pytest.param(b"\x81\x80\x01", id="map-key"),
        pytest.param(b"\xdd\xff\xff\xff\xff", id="huge-array-header"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="huge-map-header"),
        pytest.param(b"\xc6\xff\xff\xff\xff", id="huge-bin-header"),
        pytest.param(b"\xdb\xff\xff\xff\xff", id="huge-str-header"),
    ],
)
def test_decode_rejects_non_canonical_input(data: bytes) -> None:
    with pytest.raises(MalformedFrame) as info:
        decode(data)
    assert info.value.reason == "malformed"


def test_decode_depth_limit_is_exactly_max_depth() -> None:
    assert decode(nested_arrays(MAX_DEPTH + 1)) == nested_list(MAX_DEPTH + 1)
    with pytest.raises(MalformedFrame):
        decode(nested_arrays(MAX_DEPTH + 2))
    with pytest.raises(MalformedFrame):
        decode(b"\x81\xa1k" * (MAX_DEPTH + 1) + b"\x80")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 2, 100, 1_000, 10_000, 100_000])
def test_decode_very_deep_nesting_is_malformed_not_recursion_error(depth: int) -> None:
    with pytest.raises(MalformedFrame):
        decode(nested_arrays(depth))
    with pytest.raises(MalformedFrame):
        decode(b"\x81\xa1k" * depth + b"\xc0")


def test_decode_returns_plain_python_types() -> None:
    value = decode(bytes.fromhex("93019202920390a178"))
    assert same(value, [1, [2, [3, []]], "x"])
    assert same(decode(b"\xc4\x01a"), b"a")
    assert same(decode(b"\xc3"), True)


# --- properties -------------------------------------------------------------------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,  # also bounds the depth far below MAX_DEPTH
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip_and_idempotent_encoding(value: object) -> None:
    encoded = encode(value)  # type: ignore[arg-type]
    decoded = decode(encoded)
    assert same(decoded, _sorted(value))
    assert encode(decoded) == encoded


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6), st.integers(0, 3), min_size=2, max_size=8), st.randoms()
)
def test_encoding_of_a_map_does_not_depend_on_insertion_order(
    mapping: dict[str, int], rnd: object
) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert encode(dict(items)) == encode(mapping)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=20))
def test_a_map_of_encoded_values_encodes_as_the_map_of_values(mapping: dict[str, object]) -> None:
    fields = {key: encode(value) for key, value in mapping.items()}  # type: ignore[arg-type]
    assert encode_map(fields) == encode(mapping)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [15, 16, 65_535, 65_536])
def test_encode_map_uses_each_header_at_its_size(size: int) -> None:
    """fixmap up to 15 entries, map16 up to 65,535, then map32 (CANON-1: the shortest)."""
    mapping = {f"k{i}": i for i in range(size)}
    assert encode_map({key: encode(value) for key, value in mapping.items()}) == encode(mapping)


@pytest.mark.parametrize("size", [0, 15, 16, 65_535, 65_536])
def test_array_header_is_the_shortest_at_each_size(size: int) -> None:
    assert array_header(size) + b"\xc0" * size == encode([None] * size)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_decode_of_arbitrary_bytes_is_canonical_or_malformed(data: bytes) -> None:
    """Paired with valid input read back (the bytes as a bin, in a list): a decoder that
    refused everything would pass."""
    assert decode(encode([data, len(data)])) == [data, len(data)]
    try:
        value = decode(data)
    except MalformedFrame:
        return
    assert encode(value) == data


@settings(max_examples=300, deadline=None)
@given(values)
def test_decode_of_the_non_canonical_msgpack_encoding_is_rejected_or_identical(
    value: object,
) -> None:
    """The stock encoder without sorting: accepted only when it happens to be canonical."""
    loose = msgpack.packb(value, use_bin_type=True)
    try:
        decoded = decode(loose)
    except MalformedFrame:
        assert loose != encode(value)  # type: ignore[arg-type]
        return
    assert loose == encode(value)  # type: ignore[arg-type]
    assert same(decoded, _sorted(value))


def _sorted(value: object) -> object:
    """The value as decode returns it: maps in canonical key order."""
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=lambda k: k.encode("utf-8"))}
    return value
