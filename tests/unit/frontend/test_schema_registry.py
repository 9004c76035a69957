"""The Confluent-compatible schema registry endpoints, driven by the stock Confluent client (no Kafka)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from kronicle.connectors.frontend.schema_registry import (
    COMMAND_SUBJECTS,
    CONTENT_TYPE,
    add_schema_registry_routes,
    schema_registry_openapi_paths,
)
from kronicle.engine.workflow import WorkflowHandler, WorkflowTopics
from kronicle.schemas import default_registry

REGISTRY = default_registry()
START = "kronicle.workflow.StartWorkflow"
COMMANDS = "kronicle.default.commands-value"
START_DATUM = {"workflow_id": "wf-1", "workflow_type": "Greeting", "task_queue": "q", "request_id": "r-1"}


@pytest_asyncio.fixture
async def url() -> AsyncIterator[str]:
    app = web.Application()
    add_schema_registry_routes(app, REGISTRY, ["default"])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def call(url: str, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with aiohttp.ClientSession() as session, session.request(method, url + path, data=data) as resp:
        assert resp.content_type == CONTENT_TYPE
        return resp.status, json.loads(await resp.text())


async def stock(url: str, method: Callable[..., Any] | str, *args: Any) -> Any:
    """Call the stock (synchronous) Confluent client in a thread, as an application would."""
    client = SchemaRegistryClient({"url": url, "max.retries": 0})
    return await asyncio.to_thread(getattr(client, method) if isinstance(method, str) else method, *args)


def pretty(schema_id: int) -> str:
    """The schema of ``schema_id`` as a producer might keep it: indented, docs dropped."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "doc"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(json.loads(REGISTRY.schema_text(schema_id))), indent=2)


async def test_the_stock_client_fetches_the_schema_of_a_record_by_its_id(url: str) -> None:
    record = REGISTRY.encode("kronicle.TimerFired", {"key": b"k", "timer_id": b"t", "due_ms": 1, "payload": b""})
    schema_id = int.from_bytes(record[1:5], "big")
    schema = await stock(url, "get_schema", schema_id)
    assert schema.schema_type == "AVRO"
    assert json.loads(schema.schema_str) == json.loads(REGISTRY.schema_text(schema_id))


async def test_record_name_subjects_have_the_manifest_versions(url: str) -> None:
    subjects = await stock(url, "get_subjects")
    assert set(REGISTRY.subjects()) <= set(subjects)
    latest = await stock(url, "get_latest_version", START)
    assert (latest.schema_id, latest.version, latest.subject) == (
        REGISTRY.schema_id(START),
        REGISTRY.versions(START)[-1],
        START,
    )
    assert await stock(url, "get_versions", START) == REGISTRY.versions(START)
    assert await stock(url, "get_compatibility", START) == "BACKWARD"


async def test_topic_subjects_of_the_namespace(url: str) -> None:
    subjects = await stock(url, "get_subjects")
    topic_subjects = [s for s in subjects if s.startswith("kronicle.default.")]
    assert topic_subjects == [COMMANDS, "kronicle.default.history-value", "kronicle.default.visibility-value"]
    history = await stock(url, "get_latest_version", "kronicle.default.history-value")
    assert history.schema_id == REGISTRY.schema_id("kronicle.workflow.HistoryEventBatch")
    # The commands topic carries several record types: every version of each, ordered by id.
    versions = await stock(url, "get_versions", COMMANDS)
    ids = [(await stock(url, "get_version", COMMANDS, v)).schema_id for v in versions]
    assert ids == sorted(REGISTRY.schema_id(s, v) for s in COMMAND_SUBJECTS for v in REGISTRY.versions(s))
    assert await stock(url, "get_compatibility", COMMANDS) == "NONE"


async def test_an_id_lists_every_subject_version_that_holds_it(url: str) -> None:
    start_id = REGISTRY.schema_id(START)
    pairs = await stock(url, "get_schema_versions", start_id)
    assert {(p.subject, p.version) for p in pairs} == {
        (START, REGISTRY.versions(START)[-1]),
        (COMMANDS, ids_of_commands().index(start_id) + 1),
    }
    assert await stock(url, "get_subjects_by_schema_id", start_id) == sorted([START, COMMANDS])


def ids_of_commands() -> list[int]:
    return sorted(REGISTRY.schema_id(s, v) for s in COMMAND_SUBJECTS for v in REGISTRY.versions(s))


@pytest.mark.parametrize("subject", [START, COMMANDS])
async def test_lookup_finds_a_schema_by_its_canonical_form(url: str, subject: str) -> None:
    start_id = REGISTRY.schema_id(START)
    found = await stock(url, "lookup_schema", subject, Schema(pretty(start_id), "AVRO"))
    assert (found.schema_id, found.subject) == (start_id, subject)


async def test_registering_a_known_schema_answers_its_id_and_a_new_one_is_refused(url: str) -> None:
    start_id = REGISTRY.schema_id(START)
    assert await stock(url, "register_schema", COMMANDS, Schema(pretty(start_id), "AVRO")) == start_id
    other = json.dumps({"type": "record", "name": "StartWorkflow", "namespace": "kronicle.workflow", "fields": []})
    with pytest.raises(SchemaRegistryError) as err:
        await stock(url, "register_schema", START, Schema(other, "AVRO"))
    assert (err.value.http_status_code, err.value.error_code) == (422, 42205)


async def test_the_stock_serializer_writes_what_kronicle_reads(url: str) -> None:
    """A producer's AvroSerializer on the topic subject (its default), with and without auto.register.schemas."""
    start_id = REGISTRY.schema_id(START)
    client = SchemaRegistryClient({"url": url, "max.retries": 0})
    ctx = SerializationContext("kronicle.default.commands", MessageField.VALUE)
    for conf in ({"auto.register.schemas": False}, {"auto.register.schemas": True}):
        serializer = AvroSerializer(client, pretty(start_id), conf=conf)
        data = await asyncio.to_thread(serializer, START_DATUM, ctx)
        assert data is not None and int.from_bytes(data[1:5], "big") == start_id
        subject, datum = REGISTRY.decode(data)
        assert subject == START and datum["workflow_id"] == "wf-1" and datum["id_reuse_policy"] == "ALLOW_DUPLICATE"


async def test_use_latest_version_with_the_record_name_strategy(url: str) -> None:
    from confluent_kafka.schema_registry import record_subject_name_strategy

    client = SchemaRegistryClient({"url": url, "max.retries": 0})
    conf = {
        "auto.register.schemas": False,
        "use.latest.version": True,
        "subject.name.strategy": record_subject_name_strategy,
    }
    serializer = AvroSerializer(client, pretty(REGISTRY.schema_id(START)), conf=conf)
    data = await asyncio.to_thread(serializer, START_DATUM, SerializationContext("any-topic", MessageField.VALUE))
    assert data is not None and REGISTRY.decode(data)[0] == START


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_code"),
    [
        ("GET", "/schemas/ids/99999", None, 404, 40403),
        ("GET", "/schemas/ids/abc", None, 404, 40403),
        ("GET", "/schemas/ids/-1/versions", None, 404, 40403),
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", f"/subjects/{START}/versions/99", None, 404, 40402),
        ("GET", f"/subjects/{START}/versions/0", None, 422, 42202),
        ("GET", f"/subjects/{START}/versions/x'%20OR%201=1", None, 422, 42202),
        ("GET", f"/subjects/{START}/versions/99999999999999999999/schema", None, 422, 42202),
        ("GET", "/config/nope", None, 404, 40401),
        ("POST", f"/subjects/{START}", b"{not json", 400, 400),
        ("POST", f"/subjects/{START}", b"\xff\xfe", 400, 400),
        ("POST", f"/subjects/{START}", b"[" * 100_000, 400, 400),
        ("POST", f"/subjects/{START}", b'{"schema": 5}', 422, 42201),
        ("POST", f"/subjects/{START}", b'{"schema": "not json"}', 422, 42201),
        ("POST", f"/subjects/{START}", b'{"schema": "{\\"type\\": \\"record\\"}"}', 422, 42201),
        ("POST", f"/subjects/{START}", b'{"schema": "\\"string\\"", "schemaType": "PROTOBUF"}', 422, 42201),
        ("POST", f"/subjects/{START}", b'{"schema": "\\"string\\"", "references": [{"name": "x"}]}', 422, 42201),
        ("POST", f"/subjects/{START}", b'{"schema": "\\"string\\""}', 404, 40403),
        ("POST", f"/subjects/{START}/versions", b'{"schema": "\\"string\\""}', 422, 42205),
        ("POST", f"/subjects/{START}", b'{"schema": "' + b"x" * (1024 * 1024) + b'"}', 413, 413),
        ("POST", "/subjects/nope", b'{"schema": "\\"string\\""}', 404, 40401),
        ("PUT", "/config", b'{"compatibility": "NONE"}', 422, 42205),
        ("PUT", f"/config/{START}", b'{"compatibility": "NONE"}', 422, 42205),
        ("PUT", "/mode", b'{"mode": "READWRITE"}', 422, 42205),
        ("DELETE", f"/subjects/{START}", None, 422, 42205),
        ("DELETE", f"/subjects/{START}/versions/1", None, 422, 42205),
    ],
)
async def test_errors_are_in_confluents_shape(
    url: str, method: str, path: str, body: bytes | None, status: int, error_code: int
) -> None:
    got_status, got = await call(url, method, path, raw=body)
    assert (got_status, got["error_code"]) == (status, error_code), got
    assert set(got) == {"error_code", "message"} and got["message"]


async def test_a_deeply_nested_schema_is_an_invalid_schema_not_a_crash(url: str) -> None:
    deep = '{"type": "array", "items": ' * 3000 + '"string"' + "}" * 3000
    status, got = await call(url, "POST", f"/subjects/{START}", {"schema": deep})
    assert status in (404, 422) and got["error_code"] in (40403, 42201)


async def test_small_endpoints(url: str) -> None:
    assert await call(url, "GET", "/schemas/types") == (200, ["AVRO"])
    assert await call(url, "GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
    assert await call(url, "GET", "/mode") == (200, {"mode": "READONLY"})
    status, raw = await call(url, "GET", f"/subjects/{START}/versions/latest/schema")
    assert status == 200 and raw == json.loads(REGISTRY.schema_text(REGISTRY.schema_id(START)))
    status, raw = await call(url, "GET", f"/schemas/ids/{REGISTRY.schema_id(START)}/schema")
    assert status == 200 and raw["name"] == "StartWorkflow"
    assert await call(url, "GET", "/subjects?subjectPrefix=kronicle.default.") == (
        200,
        [COMMANDS, "kronicle.default.history-value", "kronicle.default.visibility-value"],
    )
    assert await call(url, "GET", "/subjects?deletedOnly=true") == (200, [])


def test_the_command_subjects_are_what_the_engine_reads() -> None:
    handler = WorkflowHandler(topics=WorkflowTopics("default"), encode=REGISTRY.encode, decode=REGISTRY.decode)
    # The engine's dispatch table is private; the shell itself reads kronicle.TimerFired.
    accepted = {*handler._commands, "kronicle.TimerFired"}
    assert set(COMMAND_SUBJECTS) == accepted
    assert set(COMMAND_SUBJECTS) <= set(REGISTRY.subjects())


def test_the_openapi_paths_are_the_routes() -> None:
    app = web.Application()
    add_schema_registry_routes(app, REGISTRY, ["default"])
    routed = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource}
    documented = {(m.upper(), p) for p, ops in schema_registry_openapi_paths().items() for m in ops}
    assert routed == documented
