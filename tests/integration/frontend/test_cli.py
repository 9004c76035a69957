"""``kronicle workflow ...`` against a running frontend (typer's CliRunner, run in a thread beside the server)."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner, Result

from kronicle._wire import payload_from_bytes
from kronicle.cli import app
from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService
from tests.integration.conftest import new_id
from tests.integration.frontend.conftest import complete_command, complete_task, wait_event
from tests.integration.frontend.test_client import result_bytes

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def cli(frontend: Frontend, engine: EngineService, *args: str) -> Result:
    # The CLI runs its own event loop; the frontend serves on this one, so the CLI gets a thread.
    full = [*args, "--address", frontend.url, "--namespace", engine.namespace]
    return await asyncio.to_thread(CliRunner().invoke, app, ["workflow", *full])


async def test_start_then_describe_and_show(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    out = await cli(
        frontend, engine, "start", "--type", "Greeter", "-q", "cli-q", "-w", workflow_id, "-i", '"World"', "-o", "json"
    )
    assert out.exit_code == 0, out.output
    started = json.loads(out.stdout)
    assert started["workflow_id"] == workflow_id
    event = engine.read_history(workflow_id)[0]
    assert event["workflow_execution_started_event_attributes"]["workflow_type"] == "Greeter"
    assert payload_from_bytes(event["workflow_execution_started_event_attributes"]["input"][0]).data == b'"World"'

    out = await cli(frontend, engine, "describe", "-w", workflow_id)
    assert out.exit_code == 0, out.output
    assert "RUNNING" in out.stdout and started["run_id"] in out.stdout
    out = await cli(frontend, engine, "describe", "-w", workflow_id, "-o", "json")
    assert json.loads(out.stdout)["status"] == "RUNNING"

    out = await cli(frontend, engine, "show", "-w", workflow_id)
    assert out.exit_code == 0, out.output
    assert "WorkflowExecutionStarted" in out.stdout and "WorkflowTaskScheduled" in out.stdout
    assert '"World"' in out.stdout and "workflow_type=Greeter" in out.stdout
    out = await cli(frontend, engine, "show", "-w", workflow_id, "-o", "json")
    assert [e["event_id"] for e in json.loads(out.stdout)] == [1, 2]


async def test_signal_cancel_and_terminate(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    assert (await cli(frontend, engine, "start", "-t", "Greeter", "-q", "cli-q", "-w", workflow_id)).exit_code == 0
    await complete_task(engine, workflow_id)
    await wait_event(engine, workflow_id, "WorkflowTaskCompleted")
    out = await cli(frontend, engine, "signal", "-w", workflow_id, "--name", "approve", "-i", "1", "-i", '{"a": 2}')
    assert out.exit_code == 0, out.output
    signaled = await wait_event(engine, workflow_id, "WorkflowExecutionSignaled")
    inputs = signaled["workflow_execution_signaled_event_attributes"]["input"]
    assert [payload_from_bytes(b).data for b in inputs] == [b"1", b'{"a":2}']
    out = await cli(frontend, engine, "cancel", "-w", workflow_id)
    assert out.exit_code == 0, out.output
    assert engine.describe(workflow_id)["cancel_requested"] is True  # type: ignore[index]
    out = await cli(frontend, engine, "terminate", "-w", workflow_id, "--reason", "done testing")
    assert out.exit_code == 0, out.output
    assert engine.describe(workflow_id)["status"] == "TERMINATED"  # type: ignore[index]
    out = await cli(frontend, engine, "result", "-w", workflow_id)
    assert out.exit_code == 1 and "TerminatedError: done testing" in out.stdout


async def test_execute_waits_for_the_result(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    running = asyncio.create_task(
        cli(frontend, engine, "execute", "-t", "Greeter", "-q", "cli-q", "-w", workflow_id, "-o", "json")
    )
    await wait_event(engine, workflow_id, "WorkflowTaskScheduled")
    await complete_task(engine, workflow_id, complete_command(await result_bytes({"greeting": "hi"})))
    out = await asyncio.wait_for(running, 30)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["result"] == {"greeting": "hi"}
    out = await cli(frontend, engine, "result", "-w", workflow_id)
    assert out.exit_code == 0 and '{"greeting": "hi"}' in out.stdout


async def test_errors_exit_non_zero_with_the_reason(frontend: Frontend, engine: EngineService) -> None:
    out = await cli(frontend, engine, "describe", "-w", new_id())
    assert out.exit_code == 1 and "WorkflowNotFound" in out.output
    out = await cli(frontend, engine, "start", "-t", "Greeter", "-q", "q", "-i", "not-json")
    assert out.exit_code == 2 and "is not JSON" in out.output
    workflow_id = new_id()
    await cli(frontend, engine, "start", "-t", "Greeter", "-q", "q", "-w", workflow_id)
    out = await cli(frontend, engine, "start", "-t", "Greeter", "-q", "q", "-w", workflow_id)
    assert out.exit_code == 1 and "already started" in out.output


async def test_list_and_count_without_visibility_exit_non_zero(frontend: Frontend, engine: EngineService) -> None:
    for command in ("list", "count"):
        out = await cli(frontend, engine, command)
        assert out.exit_code == 1 and "visibility store" in out.output
