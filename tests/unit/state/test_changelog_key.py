"""The changelog key codec is the Confluent-framed Avro encoding, byte for byte."""

from __future__ import annotations

import io
import struct

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kronicle.state.changelog import (
    CHANGELOG_KEY_SCHEMA,
    CHANGELOG_KEY_SCHEMA_ID,
    decode_changelog_key,
    encode_changelog_key,
)

_PARSED = fastavro.parse_schema(CHANGELOG_KEY_SCHEMA)


def _fastavro_encode(cf: str, key: bytes) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", CHANGELOG_KEY_SCHEMA_ID))
    fastavro.schemaless_writer(buf, _PARSED, {"cf": cf, "key": key})
    return buf.getvalue()


def _fastavro_decode(data: bytes) -> tuple[str, bytes]:
    assert data[:5] == b"\x00\x00\x00\x00\x01"
    record = fastavro.schemaless_reader(io.BytesIO(data[5:]), _PARSED, _PARSED)
    assert isinstance(record, dict)
    return record["cf"], record["key"]


def test_schema_is_the_shared_changelog_key() -> None:
    assert CHANGELOG_KEY_SCHEMA_ID == 1
    assert _PARSED["name"] == "kronicle.ChangelogKey"
    assert [(f["name"], f["type"]) for f in CHANGELOG_KEY_SCHEMA["fields"]] == [("cf", "string"), ("key", "bytes")]


def test_known_encoding() -> None:
    # magic, id 1, len("state")=5 -> zigzag 10, "state", len 3 -> 6, b"abc"
    assert encode_changelog_key("state", b"abc") == b"\x00\x00\x00\x00\x01\x0astate\x06abc"


# Lengths around the 1-, 2- and 3-byte varint boundaries (63/64, 8191/8192) matter most.
_lengths = st.sampled_from([0, 1, 62, 63, 64, 65, 127, 128, 8191, 8192, 8193, 70_000])


@given(
    cf=st.text(max_size=80),
    key=st.one_of(st.binary(max_size=300), _lengths.map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256))),
)
def test_encoding_is_byte_identical_to_fastavro(cf: str, key: bytes) -> None:
    ours = encode_changelog_key(cf, key)
    assert ours == _fastavro_encode(cf, key)
    assert decode_changelog_key(ours) == (cf, key)
    assert _fastavro_decode(ours) == (cf, key)


@given(cf_len=_lengths, key=st.binary(max_size=10))
def test_long_column_family_names_match_fastavro(cf_len: int, key: bytes) -> None:
    cf = "é" * (cf_len // 2) + "x" * (cf_len % 2)
    assert encode_changelog_key(cf, key) == _fastavro_encode(cf, key)


@given(cf=st.text(max_size=40), key=st.binary(max_size=200))
def test_decodes_what_fastavro_writes(cf: str, key: bytes) -> None:
    assert decode_changelog_key(_fastavro_encode(cf, key)) == (cf, key)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than the 5-byte"),
        (b"\x00\x00\x00", "shorter than the 5-byte"),
        (b"\x01\x00\x00\x00\x01\x00\x00", "magic byte 1"),
        (b"\x00\x00\x00\x00\x02\x00\x00", "schema id 2"),
        (b"\x00\x00\x00\x00\x01", "truncated inside a length"),
        (b"\x00\x00\x00\x00\x01\x0astat", "needs 5 bytes"),
        (b"\x00\x00\x00\x00\x01\x01\x00", "negative length"),
        (b"\x00\x00\x00\x00\x01\x00\x02a!", "trailing bytes"),
        (b"\x00\x00\x00\x00\x01\x00", "truncated inside a length"),
        (b"\x00\x00\x00\x00\x01" + b"\xff" * 11, "over-long varint"),
        (b"\x00\x00\x00\x00\x01\x02\xff\x00", "not valid UTF-8"),
    ],
)
def test_malformed_input_raises_a_clear_value_error(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_changelog_key(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x00\x01\x0astate\x06ab",  # key shorter than its length
        b"\x00\x00\x00\x00\x01\x0astate\x06abcd",  # trailing byte
        b"\x00\x00\x00\x00\x02\x0astate\x06abc",  # wrong schema id
        b"\x00\x00\x00\x00\x01\x0astate\x07abc",  # negative key length
    ],
)
def test_malformed_input_is_rejected_even_for_a_known_column_family(data: bytes) -> None:
    # Decoding a good key first puts "state" on the fast path.
    assert decode_changelog_key(encode_changelog_key("state", b"abc")) == ("state", b"abc")
    with pytest.raises(ValueError):
        decode_changelog_key(data)
