"""Payloads and failures survive the trip through the engine's wire format."""

from __future__ import annotations

import pytest

from kronicle import exceptions as exc
from kronicle._wire import failure_from_wire, failure_to_wire, payload_from_bytes, payload_to_bytes
from kronicle.converter import DataConverter, Payload


def test_a_payload_keeps_metadata_and_data() -> None:
    p = Payload({"encoding": b"json/plain", "x-codec": b"\x00\x01"}, b'{"a": 1}')
    assert payload_from_bytes(payload_to_bytes(p)) == p


def test_garbage_is_not_a_payload() -> None:
    with pytest.raises(ValueError, match="not a Kronicle payload"):
        payload_from_bytes(b"\xff\xff\xff\xff\xff")


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
