"""List and count through the frontend, from a visibility store fed by the projector, on a real engine and broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from kronicle.cli import app
from kronicle.client import Client, WorkflowExecutionStatus
from kronicle.connectors.frontend import Frontend
from kronicle.connectors.visibility import ProjectorConfig, VisibilityProjector, VisibilityStore
from kronicle.engine.service import EngineService
from kronicle.exceptions import RPCError, RPCStatusCode
from tests.integration.conftest import new_id
from tests.integration.frontend.conftest import complete_command, complete_task
from tests.integration.frontend.test_api import assert_error, call
from tests.integration.frontend.test_client import result_bytes

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def listed(
    engine: EngineService, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Frontend, Client]]:
    """A frontend with a visibility store, the projector feeding it, and a client; 3 running and 2 closed runs."""
    url = str(Path(tmp_path_factory.mktemp("vis")) / "visibility.db")
    projector_store = await VisibilityStore.open(url)
    frontend_store = await VisibilityStore.open(url)
    projector = VisibilityProjector(ProjectorConfig(engine.bootstrap_servers, engine.namespace), projector_store)
    await projector.start()
    frontend = Frontend(engine, port=0, visibility=frontend_store)
    await frontend.start()
    client = await Client.connect(frontend.url, namespace=engine.namespace)
    try:
        for i in range(3):
            await client.start_workflow("Lister", i, id=new_id("run"), task_queue="lq")
        for _ in range(2):
            handle = await client.start_workflow("Closer", id=new_id("done"), task_queue="lq")
            await complete_task(engine, handle.id, complete_command(await result_bytes("ok")))
            await asyncio.wait_for(handle.result(), 20)
        await wait_for_count(client, "WorkflowType IN ('Lister', 'Closer')", 5)
        yield frontend, client
    finally:
        await client.close()
        await frontend.stop()
        await projector.stop()
        await projector_store.close()
        await frontend_store.close()


async def wait_for_count(client: Client, query: str, want: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (got := (await client.count_workflows(query)).count) != want:
        assert loop.time() < deadline, f"{query!r}: {got} executions, want {want}"
        await asyncio.sleep(0.1)
    # Closed runs must be visible as closed too.
    while (await client.count_workflows(query + " AND ExecutionStatus = 'Running'")).count > want - 2 and want == 5:
        assert loop.time() < deadline
        await asyncio.sleep(0.1)


def ns_path(engine: EngineService, suffix: str) -> str:
    return f"/api/v1/namespaces/{engine.namespace}/{suffix}"


async def test_list_workflows_iterates_the_matching_executions(listed: tuple[Frontend, Client]) -> None:
    _, client = listed
    running = [e async for e in client.list_workflows("WorkflowType = 'Lister'")]
    assert len(running) == 3
    assert {e.status for e in running} == {WorkflowExecutionStatus.RUNNING}
    assert all(e.workflow_type == "Lister" and e.task_queue == "lq" and e.start_time for e in running)
    closed = [e async for e in client.list_workflows("WorkflowType = 'Closer' AND ExecutionStatus = 'Completed'")]
    assert len(closed) == 2 and all(e.close_time is not None for e in closed)


async def test_list_pages_with_a_token_and_limit_stops_early(listed: tuple[Frontend, Client]) -> None:
    _, client = listed
    query = "WorkflowType IN ('Lister', 'Closer') ORDER BY StartTime DESC"
    paged = [e.run_id async for e in client.list_workflows(query, page_size=2)]
    whole = [e.run_id async for e in client.list_workflows(query, page_size=100)]
    assert paged == whole and len(whole) == 5 and len(set(whole)) == 5
    assert len([e async for e in client.list_workflows(query, page_size=2, limit=3)]) == 3


async def test_count_and_count_grouped_by_status(listed: tuple[Frontend, Client]) -> None:
    _, client = listed
    assert (await client.count_workflows("WorkflowType = 'Lister'")).count == 3
    grouped = await client.count_workflows("WorkflowType IN ('Lister', 'Closer') GROUP BY ExecutionStatus")
    assert grouped.count == 5
    assert sorted((g.group_values[0], g.count) for g in grouped.groups) == [("Completed", 2), ("Running", 3)]


async def test_list_http_contract_and_errors(listed: tuple[Frontend, Client], engine: EngineService) -> None:
    frontend, _ = listed
    status, body = await call(
        frontend, "GET", ns_path(engine, "workflows"), query="WorkflowType = 'Lister'", page_size=2
    )
    assert status == 200 and len(body["executions"]) == 2 and body["next_page_token"]
    assert body["executions"][0]["status"] == "Running"
    status, rest = await call(
        frontend,
        "GET",
        ns_path(engine, "workflows"),
        query="WorkflowType = 'Lister'",
        page_size=2,
        next_page_token=body["next_page_token"],
    )
    assert status == 200 and len(rest["executions"]) == 1 and rest["next_page_token"] == ""
    status, err = await call(frontend, "GET", ns_path(engine, "workflows"), query="WorkflowType = 'x' AND (")
    assert_error(status, err, 400, "InvalidArgument", "query")
    assert err["details"]["position"] == len("WorkflowType = 'x' AND (")
    status, err = await call(frontend, "GET", ns_path(engine, "workflows"), query="Colour = 'red'")
    assert_error(status, err, 400, "InvalidArgument", "query")
    assert err["details"]["position"] == 0 and "Colour" in err["message"]
    status, err = await call(
        frontend,
        "GET",
        ns_path(engine, "workflows"),
        query="WorkflowType = 'Closer'",
        next_page_token=body["next_page_token"],
    )
    assert_error(status, err, 400, "InvalidArgument", "next_page_token")
    status, err = await call(frontend, "GET", ns_path(engine, "workflows"), page_size=0)
    assert_error(status, err, 400, "InvalidArgument", "page_size")


async def test_count_http_contract_and_errors(listed: tuple[Frontend, Client], engine: EngineService) -> None:
    frontend, _ = listed
    status, body = await call(frontend, "GET", ns_path(engine, "workflow-count"), query="WorkflowType = 'Closer'")
    assert status == 200 and body == {"count": 2, "groups": []}
    status, body = await call(
        frontend,
        "GET",
        ns_path(engine, "workflow-count"),
        query="WorkflowType = 'Closer' group by ExecutionStatus",
    )
    assert status == 200 and body == {"count": 2, "groups": [{"group_values": ["Completed"], "count": 2}]}
    status, err = await call(frontend, "GET", ns_path(engine, "workflow-count"), query="GROUP BY WorkflowType")
    assert_error(status, err, 400, "InvalidArgument", "query")
    status, err = await call(frontend, "GET", ns_path(engine, "workflow-count"), query="HistoryLength = 'many'")
    assert_error(status, err, 400, "InvalidArgument", "query")


async def test_a_bad_query_through_the_client_is_invalid_argument(listed: tuple[Frontend, Client]) -> None:
    _, client = listed
    with pytest.raises(RPCError) as info:
        await client.count_workflows("ExecutionStatus > 'Running'")
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    details: dict[str, Any] = getattr(info.value, "details", {})
    assert details["field"] == "query" and isinstance(details["position"], int)


async def test_cli_list_and_count(listed: tuple[Frontend, Client], engine: EngineService) -> None:
    frontend, _ = listed

    async def cli(*args: str) -> Any:
        full = ["workflow", *args, "--address", frontend.url, "--namespace", engine.namespace]
        return await asyncio.to_thread(CliRunner().invoke, app, full)

    out = await cli("list", "-q", "WorkflowType = 'Lister'")
    assert out.exit_code == 0, out.output
    assert out.stdout.count("Running") == 3 and "Lister" in out.stdout
    out = await cli("list", "-q", "WorkflowType IN ('Lister', 'Closer')", "--limit", "4", "-o", "json")
    assert out.exit_code == 0 and len(json.loads(out.stdout)) == 4
    out = await cli("count", "-q", "WorkflowType IN ('Lister', 'Closer') GROUP BY ExecutionStatus")
    assert out.exit_code == 0 and "Total: 5" in out.stdout and "Completed" in out.stdout
    out = await cli("count", "-q", "WorkflowType = 'Closer'", "-o", "json")
    assert json.loads(out.stdout) == {"count": 2, "groups": []}
    out = await cli("list", "-q", "WorkflowType = ")
    assert out.exit_code == 1 and "InvalidArgument" in out.output and "position" in out.output
