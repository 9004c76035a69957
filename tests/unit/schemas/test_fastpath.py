"""The registry's faster writers (sparse records, spliced arrays) write exactly fastavro's bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

import kronicle.schemas
from kronicle.schemas import SchemaRegistry, default_registry
from kronicle.schemas._fastpath import avro_long, sparse_writer

REGISTRY = default_registry()
EVENT = "kronicle.workflow.HistoryEvent"
TASK = "kronicle.workflow.WorkflowTask"
SCHEMAS = Path(kronicle.schemas.__file__).parent


def sample(schema: Any, named: dict[str, Any], depth: int = 0, pick: int = -1) -> Any:
    """A value of every field for an Avro type (the non-null branch of unions, unless nested too deep)."""
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if depth > 3 or not branches:
            return None
        return sample(branches[pick % len(branches)], named, depth + 1)
    if isinstance(schema, str):
        primitives = {
            "string": "s-ü",
            "bytes": b"\x00b\xff",
            "long": -(2**40) + depth,
            "int": 7,
            "boolean": True,
            "double": 1.5,
            "float": 0.5,
            "null": None,
        }
        if schema in primitives:
            return primitives[schema]
        return sample(named[schema], named, depth + 1)
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: sample(f["type"], named, depth + 1) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][-1]
    if kind == "array":
        return [sample(schema["items"], named, depth + 1)] * 2
    if kind == "map":
        return {"k": sample(schema["values"], named, depth + 1)}
    if kind == "fixed":
        return b"\x01" * schema["size"]
    return sample(kind, named, depth)


def plain(registry: SchemaRegistry, name: str, datum: Any) -> bytes:
    writer = registry._writers[name]
    buf = io.BytesIO()
    buf.write(writer.header)
    schemaless_writer(buf, writer.parsed, datum)
    return buf.getvalue()


def optional_fields(name: str) -> list[str]:
    sparse = REGISTRY._writers[name].sparse
    assert sparse is not None
    return sorted(sparse.optional)


def test_history_events_and_worker_commands_get_the_sparse_writer() -> None:
    assert REGISTRY._writers[EVENT].sparse is not None
    assert REGISTRY._writers["kronicle.TimerFired"].sparse is None  # no optional records: one fastavro call


@pytest.mark.parametrize("field", optional_fields(EVENT))
def test_every_history_event_kind_encodes_to_fastavros_bytes(field: str) -> None:
    registry = default_registry()
    parsed = registry._writers[EVENT].parsed
    named = parsed["__named_schemas"]
    branch = next(f for f in parsed["fields"] if f["name"] == field)["type"][1]
    attrs = sample(branch if isinstance(branch, dict) else named[branch], named)
    datum = {"event_id": 3, "event_time": 1_700_000_000_000, "event_type": "TimerFired", "version": 2, field: attrs}
    full = {f["name"]: None for f in parsed["fields"][4:]} | datum
    assert registry.encode(EVENT, datum) == plain(registry, EVENT, full)
    assert registry.decode(registry.encode(EVENT, datum))[1] == full


def test_each_subject_encodes_a_full_sample_to_fastavros_bytes() -> None:
    for name in REGISTRY.subjects():
        parsed = REGISTRY._writers[name].parsed
        for pick in (0, 1):
            datum = sample(parsed, parsed["__named_schemas"], pick=pick)
            assert REGISTRY.encode(name, datum) == plain(REGISTRY, name, datum), name


def test_a_sparse_writer_that_disagrees_once_is_switched_off_for_the_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = SchemaRegistry()
    registry.load_dir(SCHEMAS)
    writer = registry._writers[EVENT]
    assert writer.sparse is not None
    datum = {"event_id": 1, "event_time": 2, "event_type": "TimerFired", "version": 0}
    datum["timer_fired_event_attributes"] = {"timer_id": "t", "started_event_id": 1}

    def wrong(buf: io.BytesIO, d: dict[str, Any]) -> str:
        buf.write(b"\x01")
        return "timer_fired_event_attributes,"

    monkeypatch.setattr(writer.sparse.__class__, "write", lambda self, buf, d: wrong(buf, d))
    expected = plain(registry, EVENT, {f["name"]: None for f in writer.parsed["fields"][4:]} | datum)
    assert registry.encode(EVENT, datum) == expected
    assert EVENT in registry._plain
    assert registry.encode(EVENT, datum) == expected


def test_a_record_with_few_optional_records_has_no_sparse_writer() -> None:
    schema = {
        "type": "record",
        "name": "t.Small",
        "fields": [{"name": "a", "type": ["null", {"type": "record", "name": "t.A", "fields": []}], "default": None}],
    }
    assert sparse_writer(parse_schema(schema, named_schemas={})) is None


def event(event_id: int) -> dict[str, Any]:
    attrs = {"task_queue": "q", "start_to_close_timeout_ms": 10_000, "attempt": 1}
    return {
        "event_id": event_id,
        "event_time": 1_700_000_000_000 + event_id,
        "event_type": "WorkflowTaskScheduled",
        "version": 0,
        "workflow_task_scheduled_event_attributes": attrs,
    }


TASK_DATUM: dict[str, Any] = {
    "workflow_id": "wf",
    "run_id": "r",
    "scheduled_event_id": 3,
    "attempt": 1,
    "workflow_type": "T",
    "task_queue": "q",
    "first_event_id": 1,
    "scheduled_time_ms": 5,
    "start_to_close_timeout_ms": 10_000,
    "updates": [{"update_id": "u", "name": "n", "input": [b"x"], "header": {}, "identity": "i"}],
}


@pytest.mark.parametrize("count", [0, 1, 3, 70])
def test_a_task_built_from_stored_events_is_the_task_encoded_with_them(count: int) -> None:
    events = [event(i) for i in range(1, count + 1)]
    stored = [REGISTRY.encode(EVENT, e) for e in events]
    expected = REGISTRY.encode(TASK, {**TASK_DATUM, "history": events})
    assert REGISTRY.encode_with_items(TASK, TASK_DATUM, "history", stored) == expected


def test_an_event_stored_with_an_older_schema_is_rewritten_in_the_latest() -> None:
    v1_id = REGISTRY.schema_id(EVENT, 1)
    assert v1_id != REGISTRY.schema_id(EVENT)
    manifest = json.loads((SCHEMAS / "workflow/ids.json").read_text())
    v1_file = next(v["file"] for v in manifest[EVENT] if v["version"] == 1)
    v1 = parse_schema(
        json.loads((SCHEMAS / "workflow" / v1_file).read_text()),
        named_schemas={},
    )
    buf = io.BytesIO()
    buf.write(b"\x00" + v1_id.to_bytes(4, "big"))
    schemaless_writer(buf, v1, event(2))
    old = buf.getvalue()
    new = REGISTRY.encode(EVENT, event(1))
    expected = REGISTRY.encode(TASK, {**TASK_DATUM, "history": [event(1), REGISTRY.decode(old)[1]]})
    assert REGISTRY.encode_with_items(TASK, TASK_DATUM, "history", [new, old]) == expected


def test_avro_long_is_zigzag_varint() -> None:
    assert [avro_long(n) for n in (0, -1, 1, 63, 64, -65)] == [
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x7e",
        b"\x80\x01",
        b"\x81\x01",
    ]
