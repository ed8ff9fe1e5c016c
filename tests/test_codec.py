"""The default codec's read (pickle, CRC32 tag): what a Redis or disk hit decodes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twat_cache._types import MISSING
from twat_cache.exceptions import SerializationError
from twat_cache.serializers import Codec, JsonSerializer, PickleSerializer

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
keys = st.text(min_size=1, max_size=80)


@given(value=values, key=keys, compress=st.booleans(), expire=st.sampled_from([0.0, 1e12]))
def test_a_stored_value_reads_back_equal(
    value: Any, key: str, compress: bool, expire: float
) -> None:
    """Any picklable value framed under a key (compressed or not, with or without a
    future deadline) decodes to an equal value under that key."""
    codec = Codec(PickleSerializer(), compress, None)
    assert codec.decode(key, codec.encode(key, value, expire)) == value


@given(value=values, key=keys, compress=st.booleans(), data=st.data())
def test_any_changed_byte_is_refused(value: Any, key: str, compress: bool, data: Any) -> None:
    """Changing any one byte of a stored entry makes its read raise SerializationError:
    a damaged entry is never unpickled into a wrong value."""
    codec = Codec(PickleSerializer(), compress, None)
    stored = bytearray(codec.encode(key, value))
    at = data.draw(st.integers(0, len(stored) - 1))
    stored[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SerializationError):
        codec.decode(key, bytes(stored))


@given(value=values, key=keys, other=keys)
def test_an_entry_copied_to_another_key_is_refused(value: Any, key: str, other: str) -> None:
    """An entry read under a key other than its own raises SerializationError."""
    codec = Codec(PickleSerializer(), False, None)
    if other != key:
        with pytest.raises(SerializationError, match="integrity"):
            codec.decode(other, codec.encode(key, value))


def test_a_truncated_or_foreign_entry_is_refused() -> None:
    """A cut entry, and bytes that are not an entry, raise SerializationError."""
    codec = Codec(PickleSerializer(), False, None)
    stored = codec.encode("k", {"a": 1})
    for cut in (0, 5, 17, 18, len(stored) - 1):
        with pytest.raises(SerializationError):
            codec.decode("k", stored[:cut])
    with pytest.raises(SerializationError, match="header"):
        codec.decode("k", b"x" * 40)


def test_an_expired_entry_is_missing() -> None:
    """An entry whose deadline has passed reads as MISSING, not as its value."""
    codec = Codec(PickleSerializer(), False, None)
    assert codec.decode("k", codec.encode("k", 1, time.time() - 1)) is MISSING


def test_entries_of_another_codec_are_refused_both_ways() -> None:
    """A signed entry is refused by the default codec and an unsigned one by a signed codec."""
    plain = Codec(PickleSerializer(), False, None)
    signed = Codec(PickleSerializer(), False, b"secret")
    with pytest.raises(SerializationError, match="signed differently"):
        plain.decode("k", signed.encode("k", 1))
    with pytest.raises(SerializationError, match="signed differently"):
        signed.decode("k", plain.encode("k", "x" * 100))  # longer than a signed frame's tag
    assert signed.decode("k", signed.encode("k", [1])) == [1]


def test_a_payload_that_does_not_unpickle_is_a_serialization_error() -> None:
    """Bytes with a valid frame but no pickle inside raise SerializationError, and a JSON
    codec's entry read by the pickle codec does too."""
    codec = Codec(PickleSerializer(), False, None)
    with pytest.raises(SerializationError, match="cannot deserialize"):
        codec.decode("k", codec.frame("k", b"not a pickle"))
    json_entry = Codec(JsonSerializer(), False, None).encode("k", [1, 2])
    with pytest.raises(SerializationError, match="cannot deserialize"):
        codec.decode("k", json_entry)
