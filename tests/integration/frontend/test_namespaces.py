"""Namespaces: the HTTP API, the registry on ``kronicle._namespaces``, and the CLI, on a real broker."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner, Result

from kronicle.cli import app
from kronicle.cli.namespace import parse_duration_ms
from kronicle.connectors.frontend import Frontend, NamespaceInfo, NamespaceRegistry
from kronicle.engine.service import EngineService
from kronicle.topics import NamespaceTopics
from tests.integration.frontend.test_api import HELLO, assert_error, call

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

DAY_MS = 86_400_000


def new_ns() -> str:
    return f"ns{uuid.uuid4().hex[:10]}"


async def cli(frontend: Frontend, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, ["namespace", *args, "--address", frontend.url])


async def test_the_served_namespace_is_registered_at_startup(frontend: Frontend, engine: EngineService) -> None:
    status, body = await call(frontend, "GET", f"/api/v1/namespaces/{engine.namespace}")
    assert status == 200 and body["name"] == engine.namespace and body["served_here"] is True
    assert body["partitions"] == 2 and body["state"] == "REGISTERED" and body["created_time_ms"] > 0


async def test_create_registers_the_namespace_and_creates_its_topics(frontend: Frontend, engine: EngineService) -> None:
    name = new_ns()
    status, body = await call(
        frontend,
        "POST",
        "/api/v1/namespaces",
        {"name": name, "description": "orders", "owner_email": "a@b.c", "retention_ms": 3 * DAY_MS, "partitions": 3},
    )
    assert status == 201, body
    assert (body["name"], body["description"], body["owner_email"], body["retention_ms"]) == (
        name,
        "orders",
        "a@b.c",
        3 * DAY_MS,
    )
    assert body["partitions"] == 3 and body["served_here"] is False and body["created_time_ms"] > 0
    topics = AdminClient({"bootstrap.servers": engine.bootstrap_servers}).list_topics(timeout=10).topics
    for topic in NamespaceTopics(name).all:
        assert topic in topics and len(topics[topic].partitions) == 3
    status, described = await call(frontend, "GET", f"/api/v1/namespaces/{name}")
    assert status == 200 and described == body
    status, listed = await call(frontend, "GET", "/api/v1/namespaces")
    assert status == 200 and name in [n["name"] for n in listed["namespaces"]]
    status, err = await call(frontend, "POST", "/api/v1/namespaces", {"name": name})
    assert_error(status, err, 409, "NamespaceAlreadyExists")


async def test_update_changes_only_the_given_fields(frontend: Frontend) -> None:
    name = new_ns()
    assert (await call(frontend, "POST", "/api/v1/namespaces", {"name": name, "description": "d"}))[0] == 201
    status, body = await call(
        frontend, "PATCH", f"/api/v1/namespaces/{name}", {"retention_ms": DAY_MS, "state": "DEPRECATED"}
    )
    assert status == 200 and body["retention_ms"] == DAY_MS and body["state"] == "DEPRECATED"
    assert body["description"] == "d" and body["updated_time_ms"] >= body["created_time_ms"]
    assert (await call(frontend, "GET", f"/api/v1/namespaces/{name}"))[1]["state"] == "DEPRECATED"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("POST", "/api/v1/namespaces", {"name": "has space"}, 400, "InvalidArgument", "name"),
        ("POST", "/api/v1/namespaces", {}, 400, "InvalidArgument", "name"),
        ("POST", "/api/v1/namespaces", {"name": "okname", "retention_ms": 5}, 400, "InvalidArgument", None),
        ("POST", "/api/v1/namespaces", {"name": "okname", "state": "GONE"}, 400, "InvalidArgument", "state"),
        ("POST", "/api/v1/namespaces", {"name": "okname", "data": {"k": 1}}, 400, "InvalidArgument", "data"),
        ("GET", "/api/v1/namespaces/never-made", None, 404, "NamespaceNotFound", None),
        ("PATCH", "/api/v1/namespaces/never-made", {"description": "x"}, 404, "NamespaceNotFound", None),
    ],
)
async def test_namespace_errors(
    frontend: Frontend, method: str, path: str, body: object, status: int, code: str, field: str | None
) -> None:
    got, answer = await call(frontend, method, path, body)
    assert_error(got, answer, status, code, field)


async def test_update_refuses_unchangeable_fields(frontend: Frontend, engine: EngineService) -> None:
    status, body = await call(frontend, "PATCH", f"/api/v1/namespaces/{engine.namespace}", {"partitions": 9})
    assert_error(status, body, 400, "InvalidArgument", "partitions")
    status, body = await call(frontend, "PATCH", f"/api/v1/namespaces/{engine.namespace}", {"retention_ms": 10})
    assert_error(status, body, 400, "InvalidArgument", "retention_ms")


async def test_workflows_of_a_namespace_this_frontend_does_not_serve_are_404(frontend: Frontend) -> None:
    name = new_ns()
    assert (await call(frontend, "POST", "/api/v1/namespaces", {"name": name}))[0] == 201
    body = {"workflow_id": "w", "workflow_type": "T", "task_queue": "q", "input": [HELLO]}
    status, err = await call(frontend, "POST", f"/api/v1/namespaces/{name}/workflows", body)
    assert_error(status, err, 404, "NamespaceNotFound")
    assert "is registered, but this frontend serves only" in err["message"]


async def test_another_registry_reads_the_namespaces_from_kafka(frontend: Frontend, engine: EngineService) -> None:
    name = new_ns()
    assert (await call(frontend, "POST", "/api/v1/namespaces", {"name": name, "retention_ms": 2 * DAY_MS}))[0] == 201
    other = NamespaceRegistry(engine.bootstrap_servers)
    await asyncio.to_thread(other.start)
    try:
        info = other.get(name)
        assert info is not None and info.retention_ms == 2 * DAY_MS
        # ... and a change made through it reaches the frontend's registry.
        await asyncio.to_thread(other.update, name, description="changed elsewhere")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (await call(frontend, "GET", f"/api/v1/namespaces/{name}"))[1]["description"] != "changed elsewhere":
            assert loop.time() < deadline
            await asyncio.sleep(0.1)
        assert other.ensure(NamespaceInfo(name, retention_ms=DAY_MS)).retention_ms == 2 * DAY_MS  # kept as is
    finally:
        await asyncio.to_thread(other.stop)


async def test_cli_create_describe_list_update(frontend: Frontend) -> None:
    name = new_ns()
    out = await cli(frontend, "create", name, "--description", "from the cli", "--retention", "3d", "-o", "json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["retention_ms"] == 3 * DAY_MS
    out = await cli(frontend, "describe", name)
    assert out.exit_code == 0 and name in out.stdout and "from the cli" in out.stdout and "3d" in out.stdout
    out = await cli(frontend, "list", "-o", "json")
    assert out.exit_code == 0 and name in [n["name"] for n in json.loads(out.stdout)]
    out = await cli(frontend, "update", name, "--retention", "36h", "--state", "deprecated", "-o", "json")
    assert out.exit_code == 0, out.output
    updated = json.loads(out.stdout)
    assert updated["retention_ms"] == 36 * 3_600_000 and updated["state"] == "DEPRECATED"
    out = await cli(frontend, "create", name)
    assert out.exit_code == 1 and "NamespaceAlreadyExists" in out.output
    out = await cli(frontend, "update", name, "--retention", "soon")
    assert out.exit_code == 2 and "not a duration" in out.output
    out = await cli(frontend, "describe", new_ns())
    assert out.exit_code == 1 and "NamespaceNotFound" in out.output


async def test_durations() -> None:
    assert parse_duration_ms("72h") == 72 * 3_600_000
    assert parse_duration_ms("1d12h") == 36 * 3_600_000
    assert parse_duration_ms("90s") == 90_000
    for bad in ("", "3", "3 days", "h", "1d-2h"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration_ms(bad)
