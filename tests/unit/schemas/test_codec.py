"""Confluent-framed Avro encode/decode, and the errors bad input gets."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kronicle.schemas
from kronicle.schemas import (
    AvroDecodeError,
    BadMagicByteError,
    SchemaDecodeError,
    SchemaEncodeError,
    SchemaRegistry,
    TruncatedRecordError,
    UnexpectedSchemaError,
    UnknownSchemaIdError,
    UnknownSubjectError,
    default_registry,
)

TIMER = "kronicle.TimerFired"
DATUM = {"key": b"wf-1", "timer_id": b"t-1", "due_ms": 1_764_000_000_000, "payload": b"\x00\xff"}


@pytest.fixture
def registry() -> SchemaRegistry:
    return default_registry()


def test_encode_frames_with_magic_byte_and_big_endian_schema_id(registry: SchemaRegistry) -> None:
    data = registry.encode(TIMER, DATUM)
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == registry.schema_id(TIMER) == 2


def test_decode_returns_the_subject_and_the_datum(registry: SchemaRegistry) -> None:
    assert registry.decode(registry.encode(TIMER, DATUM)) == (TIMER, DATUM)


@given(
    key=st.binary(max_size=64),
    timer_id=st.binary(max_size=64),
    due_ms=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    payload=st.binary(max_size=256),
)
def test_timer_fired_round_trips(key: bytes, timer_id: bytes, due_ms: int, payload: bytes) -> None:
    datum = {"key": key, "timer_id": timer_id, "due_ms": due_ms, "payload": payload}
    assert default_registry().decode_as(default_registry().encode(TIMER, datum), TIMER) == datum


@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_a_schema_decode_error(data: bytes) -> None:
    with contextlib.suppress(SchemaDecodeError):
        default_registry().decode(data)


@given(data=st.data())
def test_arbitrary_bodies_behind_any_known_id_decode_or_raise_a_schema_decode_error(data: st.DataObject) -> None:
    # Covers every packaged schema, including the workflow ones once they exist.
    registry = default_registry()
    schema_id = data.draw(st.sampled_from([registry.schema_id(s) for s in registry.subjects()]))
    body = data.draw(st.binary(max_size=64))
    with contextlib.suppress(SchemaDecodeError):
        registry.decode(b"\x00" + schema_id.to_bytes(4, "big") + body)


@pytest.mark.parametrize("size", [0, 1, 4])
def test_a_record_shorter_than_the_header_is_truncated(registry: SchemaRegistry, size: int) -> None:
    with pytest.raises(TruncatedRecordError, match=f"record is {size} bytes"):
        registry.decode(b"\x00" * size)


def test_a_wrong_magic_byte_is_reported_and_json_is_recognised(registry: SchemaRegistry) -> None:
    with pytest.raises(BadMagicByteError, match="0x01"):
        registry.decode(b"\x01\x00\x00\x00\x02abc")
    with pytest.raises(BadMagicByteError, match="looks like JSON"):
        registry.decode(b'{"key": "wf-1"}')


def test_an_unknown_schema_id_names_the_id_and_the_known_ones(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownSchemaIdError) as info:
        registry.decode(b"\x00\x00\x00\x30\x39" + b"\x00")
    assert info.value.schema_id == 12345
    assert "unknown schema id 12345" in str(info.value)
    assert "1-2" in str(info.value)


def test_a_cut_off_body_names_the_schema_and_id(registry: SchemaRegistry) -> None:
    data = registry.encode(TIMER, DATUM)
    with pytest.raises(AvroDecodeError) as info:
        registry.decode(data[:-1])
    assert "kronicle.TimerFired v1 (schema id 2)" in str(info.value)
    assert isinstance(info.value.__cause__, EOFError)


def test_trailing_bytes_after_the_body_are_an_error(registry: SchemaRegistry) -> None:
    with pytest.raises(AvroDecodeError, match="2 bytes left after the Avro body"):
        registry.decode(registry.encode(TIMER, DATUM) + b"zz")


def test_invalid_utf8_in_a_string_is_an_avro_decode_error(registry: SchemaRegistry) -> None:
    # ChangelogKey.cf is a string: length 1 (zigzag 2), then a lone continuation byte.
    with pytest.raises(AvroDecodeError, match="UnicodeDecodeError"):
        registry.decode(b"\x00\x00\x00\x00\x01\x02\xff\x00")


def test_decode_as_refuses_another_record_type(registry: SchemaRegistry) -> None:
    data = registry.encode(TIMER, DATUM)
    with pytest.raises(UnexpectedSchemaError, match=r"expected a kronicle.ChangelogKey record .* kronicle.TimerFired"):
        registry.decode_as(data, "kronicle.ChangelogKey")


def test_encode_error_names_the_field(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaEncodeError, match=r"kronicle.TimerFired.key .* expected bytes"):
        registry.encode(TIMER, {**DATUM, "key": "a string"})
    missing = {k: v for k, v in DATUM.items() if k != "due_ms"}
    with pytest.raises(SchemaEncodeError, match=r"due_ms"):
        registry.encode(TIMER, missing)


def test_encode_error_for_an_out_of_range_long(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaEncodeError, match="due_ms"):
        registry.encode(TIMER, {**DATUM, "due_ms": 2**64})


def test_encoding_an_unknown_subject_says_which_are_known(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownSubjectError, match=r"kronicle.Nope.*known: kronicle.ChangelogKey, kronicle.TimerFired"):
        registry.encode("kronicle.Nope", {})


def test_lookups(registry: SchemaRegistry) -> None:
    assert {"kronicle.ChangelogKey", "kronicle.TimerFired"} <= set(registry.subjects())
    assert registry.subjects() == sorted(registry.subjects())
    assert registry.versions(TIMER) == [1]
    with pytest.raises(UnknownSubjectError, match="has no version 9"):
        registry.schema_id(TIMER, 9)
    with pytest.raises(UnknownSubjectError):
        registry.versions("kronicle.Nope")
    with pytest.raises(UnknownSchemaIdError):
        registry.schema_text(99_999)


def test_schema_text_is_the_schema_file_as_json(registry: SchemaRegistry) -> None:
    path = Path(kronicle.schemas.__file__).parent / "TimerFired.v1.avsc"
    assert json.loads(registry.schema_text(2)) == json.loads(path.read_text())
