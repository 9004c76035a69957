"""Payloads and failures survive the trip through the engine's wire format."""

from __future__ import annotations

import io

import fastavro
import pytest

from kronicle import exceptions as exc
from kronicle._wire import PAYLOAD_SCHEMA, failure_from_wire, failure_to_wire, payload_from_bytes, payload_to_bytes
from kronicle.converter import DataConverter, Payload


def test_a_payload_keeps_metadata_and_data() -> None:
    p = Payload({"encoding": b"json/plain", "x-codec": b"\x00\x01"}, b'{"a": 1}')
    assert payload_from_bytes(payload_to_bytes(p)) == p


def test_garbage_is_not_a_payload() -> None:
    with pytest.raises(ValueError, match="not a Kronicle payload"):
        payload_from_bytes(b"\xff\xff\xff\xff\xff")


def _fastavro_bytes(p: Payload) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(
        out, fastavro.parse_schema(PAYLOAD_SCHEMA), {"metadata": dict(p.metadata), "data": p.data}
    )
    return out.getvalue()


@pytest.mark.parametrize("encoding", [b"json/plain", b"binary/null", b"binary/plain", b"json/protobuf"])
@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 8191, 8192, 1_000_000])
def test_the_usual_payloads_are_written_and_read_exactly_as_fastavro_does(encoding: bytes, size: int) -> None:
    p = Payload({"encoding": encoding}, bytes(i % 251 for i in range(size)))
    raw = payload_to_bytes(p)
    assert raw == _fastavro_bytes(p)
    assert payload_from_bytes(raw) == p


def test_a_usual_payload_with_bytes_missing_or_left_over_is_not_a_payload() -> None:
    raw = payload_to_bytes(Payload({"encoding": b"json/plain"}, b'"abc"'))
    with pytest.raises(ValueError, match="not a Kronicle payload"):
        payload_from_bytes(raw[:-1])
    with pytest.raises(ValueError, match="not a Kronicle payload"):
        payload_from_bytes(raw + b"x")


async def test_an_activity_error_chain_round_trips_with_its_details() -> None:
    dc = DataConverter()
    try:
        try:
            raise exc.ApplicationError("boom", {"k": 1}, type="Boom", non_retryable=True)
        except exc.ApplicationError as inner:
            raise exc.ActivityError(
                "activity failed",
                scheduled_event_id=5,
                started_event_id=6,
                identity="w",
                activity_type="compose",
                activity_id="1",
                retry_state=exc.RetryState.NON_RETRYABLE_FAILURE,
            ) from inner
    except exc.ActivityError as outer:
        failure = await dc.encode_failure(outer)
    wire = failure_to_wire(failure)
    assert wire["failure_type"] == "activity" and wire["retry_state"] == "NON_RETRYABLE_FAILURE"
    assert wire["cause"]["type"] == "Boom" and wire["cause"]["non_retryable"] is True
    back = await dc.decode_failure(failure_from_wire(wire))
    assert isinstance(back, exc.ActivityError)
    assert back.activity_type == "compose" and back.retry_state is exc.RetryState.NON_RETRYABLE_FAILURE
    cause = back.__cause__
    assert isinstance(cause, exc.ApplicationError)
    assert (cause.message, cause.type, cause.non_retryable, cause.details) == ("boom", "Boom", True, ({"k": 1},))


async def test_timeouts_and_cancellation_keep_their_kind() -> None:
    dc = DataConverter()
    timeout = exc.TimeoutError("late", type=exc.TimeoutType.HEARTBEAT, last_heartbeat_details=["hb"])
    back = await dc.decode_failure(failure_from_wire(failure_to_wire(await dc.encode_failure(timeout))))
    assert isinstance(back, exc.TimeoutError) and back.type is exc.TimeoutType.HEARTBEAT
    assert back.last_heartbeat_details == ("hb",)
    cancelled = await dc.decode_failure(
        failure_from_wire(failure_to_wire(await dc.encode_failure(exc.CancelledError("stop"))))
    )
    assert isinstance(cancelled, exc.CancelledError)
