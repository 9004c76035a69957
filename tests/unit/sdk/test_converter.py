"""Data conversion round trips, the payload codec, and failures crossing the wire."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
import zlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from kronicle.converter import DataConverter, DefaultPayloadConverter, Payload, PayloadCodec
from kronicle.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
    TimeoutType,
    WorkflowFailureError,
)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Line:
    sku: str
    qty: int


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    placed: datetime
    due: date
    colour: Colour
    lines: list[Line]
    note: str | None = None
    wait: timedelta = timedelta(0)


ORDER = Order(
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    datetime(2026, 11, 25, 19, 0, 1, 500, tzinfo=UTC),
    date(2026, 12, 1),
    Colour.BLUE,
    [Line("a", 1), Line("b", 2)],
    wait=timedelta(minutes=3),
)

PC = DefaultPayloadConverter()


def test_dataclasses_datetimes_uuids_and_enums_round_trip_with_type_hints() -> None:
    payload = PC.to_payload(ORDER)
    assert payload.encoding == "json/plain"
    assert json.loads(payload.data)["colour"] == "blue"
    assert PC.from_payload(payload, Order) == ORDER
    assert PC.from_payload(payload)["lines"] == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (None, None),
        (b"\x00raw", bytes),
        ({"k": [1, 2]}, dict[str, list[int]]),
        ((1, "x"), tuple[int, str]),
        ([Line("z", 9)], list[Line]),
        (None, Line | None),
        (2.0, float),
        (Colour.RED, Colour),
    ],
)
def test_round_trip(value: object, hint: object) -> None:
    assert PC.from_payload(PC.to_payload(value), hint) == value


def test_encodings_for_none_and_bytes() -> None:
    assert PC.to_payload(None).encoding == "binary/null"
    assert PC.to_payload(b"x") == Payload({"encoding": b"binary/plain"}, b"x")


def test_unconvertible_value_says_what_to_do() -> None:
    with pytest.raises(TypeError, match="dataclass, a pydantic model"):
        PC.to_payload(object())


def test_unknown_encoding_is_reported() -> None:
    with pytest.raises(ValueError, match="Unknown payload encoding 'x/y'"):
        PC.from_payload(Payload({"encoding": b"x/y"}, b""))


def test_payload_dict_form_is_json_serialisable() -> None:
    p = PC.to_payload(ORDER)
    assert Payload.from_dict(json.loads(json.dumps(p.to_dict()))) == p


class ZlibCodec(PayloadCodec):
    def __init__(self) -> None:
        self.seen = 0

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.seen += len(payloads)
        return [Payload({"encoding": b"binary/zlib"}, zlib.compress(p.to_dict().__repr__().encode())) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            assert p.encoding == "binary/zlib"
            out.append(Payload.from_dict(eval(zlib.decompress(p.data).decode())))  # test-only codec
        return out


async def test_codec_is_applied_to_every_payload() -> None:
    codec = ZlibCodec()
    dc = DataConverter(payload_codec=codec)
    payloads = await dc.to_payloads([ORDER, "x", None])
    assert {p.encoding for p in payloads} == {"binary/zlib"}
    assert await dc.from_payloads(payloads, [Order, str]) == [ORDER, "x", None]
    assert await dc.decode(await dc.encode([1])) == [1]
    assert codec.seen == 4


async def test_failure_round_trips_with_cause_chain_and_codec_on_details() -> None:
    codec = ZlibCodec()
    dc = DataConverter(payload_codec=codec)
    app = ApplicationError("card declined", {"amount": 12}, type="Payment", non_retryable=True)
    act = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="w1",
        activity_type="charge",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    try:
        raise act from app
    except ActivityError as raised:
        failure = await dc.encode_failure(raised)
    wire = json.loads(json.dumps(failure))
    assert wire["cause"]["details"][0]["metadata"]["encoding"] != ""  # encoded by the codec
    assert "test_converter.py" in wire["stack_trace"]
    back = await dc.decode_failure(wire)
    assert isinstance(back, ActivityError)
    assert (back.activity_type, back.scheduled_event_id, back.retry_state) == (
        "charge",
        5,
        RetryState.NON_RETRYABLE_FAILURE,
    )
    cause = back.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.message, cause.type, cause.non_retryable, list(cause.details)) == (
        "card declined",
        "Payment",
        True,
        [{"amount": 12}],
    )
    # A decoded failure is forwarded unchanged (the chain is not re-derived).
    assert dc.failure_converter.to_failure(back, dc.payload_converter)["cause"]["type"] == "Payment"


def test_plain_exceptions_become_application_failures_named_by_class() -> None:
    dc = DataConverter.default
    f = dc.failure_converter.to_failure(KeyError("k"), dc.payload_converter)
    assert (f["kind"], f["type"]) == ("application", "KeyError")
    back = dc.failure_converter.from_failure(f, dc.payload_converter)
    assert isinstance(back, ApplicationError)
    assert back.type == "KeyError"


@pytest.mark.parametrize(
    "error",
    [
        CancelledError("stop", "why"),
        TimeoutError("late", type=TimeoutType.HEARTBEAT, last_heartbeat_details=[3]),
        ApplicationError("retry later", next_retry_delay=timedelta(seconds=7)),
    ],
)
def test_each_failure_kind_round_trips(error: Exception) -> None:
    dc = DataConverter.default
    back = dc.failure_converter.from_failure(
        dc.failure_converter.to_failure(error, dc.payload_converter), dc.payload_converter
    )
    assert type(back) is type(error)
    assert back.message == error.args[0]
    for attr in ("details", "type", "last_heartbeat_details", "next_retry_delay"):
        if hasattr(error, attr):
            assert _norm(getattr(back, attr)) == _norm(getattr(error, attr)), attr


def _norm(v: object) -> object:
    return list(v) if isinstance(v, tuple | list) else v


def test_workflow_failure_error_carries_its_cause() -> None:
    cause = ApplicationError("x")
    err = WorkflowFailureError(cause=cause)
    assert err.cause is cause
    assert err.__cause__ is cause


def test_pydantic_models_are_used_when_pydantic_is_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic is not a dependency; a stand-in with the same two methods exercises the hook.
    import sys
    import types

    from kronicle import converter

    class BaseModel:
        def __init__(self, **data: object) -> None:
            self.__dict__.update(data)

        def model_dump(self, mode: str) -> dict[str, object]:
            assert mode == "json"
            return dict(self.__dict__)

        @classmethod
        def model_validate(cls, data: dict[str, object]) -> BaseModel:
            return cls(**data)

        def __eq__(self, other: object) -> bool:
            return type(other) is type(self) and other.__dict__ == self.__dict__

        __hash__ = None  # type: ignore[assignment]

    class User(BaseModel):
        pass

    fake = types.ModuleType("pydantic")
    fake.BaseModel = BaseModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pydantic", fake)
    converter._pydantic_base.cache_clear()
    try:
        p = PC.to_payload(User(name="ann", age=3))
        assert json.loads(p.data) == {"name": "ann", "age": 3}
        assert PC.from_payload(p, User) == User(name="ann", age=3)
    finally:
        converter._pydantic_base.cache_clear()
