"""The worker's compiled record decoder gives exactly what fastavro gives, or lets the registry decide."""

from __future__ import annotations

from typing import Any

import pytest

from kronicle.schemas import SchemaDecodeError, default_registry
from kronicle.worker._decoder import _CHECKED, TaskDecoder, UnsupportedSchemaError, compile_reader
from tests.unit.worker.memory import MemoryLoop
from tests.unit.worker.test_history_adapter import greet
from tests.unit.worker.workflows import Approval, Child, Parent, Sleeper, TwoSteps

REGISTRY = default_registry()


async def _records() -> list[bytes]:
    """Every record a small engine run emitted (tasks, history batches, visibility, ...), as bytes."""
    loop = MemoryLoop([TwoSteps, Approval, Parent, Child, Sleeper], {"compose": greet})
    loop.start("two", "TwoSteps", "T")
    loop.start("approval", "Approval")
    loop.start("parent", "Parent", 21)
    loop.start("sleeper", "Sleeper", 1)
    await loop.run_until_idle()
    loop.signal("approval", "approve", "ann")
    loop.signal("approval", "approve", "bob")
    for _ in range(20):
        await loop.run_until_idle()
        loop.bench.advance(1_000)
        if loop.bench.deliver() == 0 and not await loop.step():
            break
    return [rec.value for rec in loop.bench.ctx.effects.outputs if rec.value is not None]


async def test_compiled_readers_decode_every_engine_record_exactly_as_fastavro() -> None:
    records = await _records()
    subjects: set[str] = set()
    for raw in records:
        subject, expected = REGISTRY.decode(raw)
        reader = REGISTRY._readers[int.from_bytes(raw[1:5], "big")]
        datum, end = compile_reader(reader.writer)(raw, 5)
        assert end == len(raw)
        assert datum == expected, subject
        subjects.add(subject)
    assert {"kronicle.workflow.WorkflowTask", "kronicle.workflow.ActivityTask"} <= subjects
    assert len(subjects) >= 4


async def test_the_decoder_answers_like_the_registry_before_and_after_its_check() -> None:
    decoder = TaskDecoder(REGISTRY)
    records = await _records()
    for _ in range(_CHECKED + 2):  # past the checked records of every schema id
        for raw in records:
            assert decoder.decode(raw) == REGISTRY.decode(raw)
    assert decoder._readers and all(v is not None for v in decoder._readers.values())
    assert not any(decoder._unchecked.values())


def _task() -> bytes:
    return REGISTRY.encode(
        "kronicle.workflow.ActivityTaskControl",
        {"workflow_id": "w", "run_id": "r", "scheduled_event_id": 5, "attempt": 1, "cancel_requested": True},
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_task()[:-1], id="truncated"),
        pytest.param(_task() + b"\x00", id="trailing byte"),
        pytest.param(b"\x01" + _task()[1:], id="bad magic"),
        pytest.param(b"\x00\x7f\xff\xff\xff" + _task()[5:], id="unknown schema id"),
        pytest.param(b"\x00\x00", id="too short"),
    ],
)
def test_a_bad_record_raises_the_registrys_own_error(raw: bytes) -> None:
    decoder = TaskDecoder(REGISTRY)
    with pytest.raises(SchemaDecodeError) as expected:
        REGISTRY.decode(raw)
    with pytest.raises(type(expected.value)):
        decoder.decode(raw)


def test_a_disagreement_during_the_check_hands_the_schema_to_the_registry() -> None:
    decoder = TaskDecoder(REGISTRY)
    raw = _task()
    schema_id = int.from_bytes(raw[1:5], "big")
    decoder.decode(raw)
    subject, _ = decoder._readers[schema_id] or ("", None)

    def wrong(buf: bytes, pos: int) -> tuple[Any, int]:
        return {"not": "it"}, len(buf)

    decoder._readers[schema_id] = (subject, wrong)
    assert decoder.decode(raw) == REGISTRY.decode(raw)
    assert decoder._readers[schema_id] is None
    assert decoder.decode(raw) == REGISTRY.decode(raw)


def test_schemas_with_features_it_does_not_compile_are_refused() -> None:
    with pytest.raises(UnsupportedSchemaError):
        compile_reader({"type": "long", "logicalType": "timestamp-millis"})
    with pytest.raises(UnsupportedSchemaError):
        compile_reader({"type": "fixed", "name": "f", "size": 4})
    with pytest.raises(UnsupportedSchemaError):
        compile_reader("some.unknown.Name")


def test_varints_maps_arrays_unions_and_doubles_round_trip() -> None:
    import io

    from fastavro import parse_schema, schemaless_writer

    schema = parse_schema(
        {
            "type": "record",
            "name": "t.R",
            "fields": [
                {"name": "n", "type": "long"},
                {"name": "m", "type": {"type": "map", "values": "int"}},
                {"name": "a", "type": {"type": "array", "items": ["null", "string", "double"]}},
                {"name": "b", "type": "boolean"},
                {"name": "o", "type": ["null", "t.R"]},
                {"name": "e", "type": {"type": "enum", "name": "t.E", "symbols": ["X", "Y"]}},
                {"name": "raw", "type": "bytes"},
            ],
        }
    )
    datum = {
        "n": -(2**40),
        "m": {"k": 2**30, "é": -1},
        "a": [None, "zß", 1.5, -0.0],
        "b": True,
        "o": {"n": 1, "m": {}, "a": [], "b": False, "o": None, "e": "X", "raw": b""},
        "e": "Y",
        "raw": bytes(range(256)),
    }
    buf = io.BytesIO()
    schemaless_writer(buf, schema, datum)
    decoded, end = compile_reader(schema)(buf.getvalue(), 0)
    assert end == len(buf.getvalue())
    assert decoded == datum
