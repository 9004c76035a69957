"""``kronicle workflow``: start, signal, query, update, list, count, describe, show, cancel and terminate workflows.

Mirrors the ``temporal workflow`` commands. Every command takes ``--address``
(the frontend, default ``localhost:7333``), ``--namespace`` and ``--output``
(``table`` for people, ``json`` for scripts). Arguments (``--input``) are JSON
values, one per ``--input``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from kronicle._wire import payload_from_bytes
from kronicle.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from kronicle.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from kronicle.exceptions import RPCError, WorkflowAlreadyStartedError, WorkflowFailureError

__all__ = ["app", "event_details"]

app = typer.Typer(no_args_is_help=True, help="Start, signal, inspect and stop workflows.")

T = TypeVar("T")


class Output(StrEnum):
    """How results are printed."""

    table = "table"
    json = "json"


Address = Annotated[str, typer.Option("--address", help="Frontend address host:port.", envvar="KRONICLE_ADDRESS")]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.", envvar="KRONICLE_NAMESPACE")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]
WorkflowId = Annotated[str, typer.Option("--workflow-id", "-w", help="Workflow id.")]
RunId = Annotated[str, typer.Option("--run-id", "-r", help="Run id (default: the current run).")]
Inputs = Annotated[list[str] | None, typer.Option("--input", "-i", help="A JSON argument; repeat for several.")]

_DEFAULT_ADDRESS = "localhost:7333"


def _console() -> Console:
    return Console(width=200, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _args(inputs: list[str] | None) -> list[Any]:
    values = []
    for raw in inputs or ():
        try:
            values.append(json.loads(raw))
        except json.JSONDecodeError as err:
            raise _fail(f"--input {raw!r} is not JSON ({err}); quote strings, e.g. --input '\"World\"'", 2) from err
    return values


def _run(address: str, namespace: str, fn: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        client = await Client.connect(address, namespace=namespace)
        try:
            return await fn(client)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except (WorkflowAlreadyStartedError, WorkflowQueryFailedError) as err:
        raise _fail(str(err)) from err
    except WorkflowUpdateFailedError as err:
        raise _fail(f"update failed: {type(err.cause).__name__}: {err.cause}") from err
    except RPCError as err:
        raise _fail(f"{err.message} [{err.code or err.status.name}]") from err


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _handle(client: Client, workflow_id: str, run_id: str) -> WorkflowHandle[Any]:
    return client.get_workflow_handle(workflow_id, run_id=run_id or None)


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


@app.command("start")
def start(
    workflow_type: Annotated[str, typer.Option("--type", "-t", help="Workflow type name.")],
    task_queue: Annotated[str, typer.Option("--task-queue", "-q", help="Task queue.")],
    workflow_id: Annotated[str, typer.Option("--workflow-id", "-w", help="Workflow id (default: a new UUID).")] = "",
    inputs: Inputs = None,
    execution_timeout: Annotated[float | None, typer.Option(help="Execution timeout, seconds.")] = None,
    run_timeout: Annotated[float | None, typer.Option(help="Run timeout, seconds.")] = None,
    task_timeout: Annotated[float | None, typer.Option(help="Workflow task timeout, seconds.")] = None,
    start_delay: Annotated[float | None, typer.Option(help="Delay before the first task, seconds.")] = None,
    id_reuse_policy: Annotated[str, typer.Option(help="ALLOW_DUPLICATE, REJECT_DUPLICATE, ...")] = "ALLOW_DUPLICATE",
    id_conflict_policy: Annotated[str, typer.Option(help="FAIL, USE_EXISTING, TERMINATE_EXISTING")] = "UNSPECIFIED",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Start a workflow and print its id and run id."""
    run_id = _start(
        workflow_type,
        task_queue,
        workflow_id or str(uuid.uuid4()),
        inputs,
        execution_timeout,
        run_timeout,
        task_timeout,
        start_delay,
        id_reuse_policy,
        id_conflict_policy,
        address,
        namespace,
        wait=False,
    )[0]
    _print_started(workflow_id, run_id, output)


def _print_started(workflow_id: str, run_id: str, output: Output) -> None:
    if output is Output.json:
        _print_json({"workflow_id": workflow_id, "run_id": run_id})
    else:
        typer.echo(f"Started  workflow_id={workflow_id}  run_id={run_id}")


def _start(
    workflow_type: str,
    task_queue: str,
    workflow_id: str,
    inputs: list[str] | None,
    execution_timeout: float | None,
    run_timeout: float | None,
    task_timeout: float | None,
    start_delay: float | None,
    id_reuse_policy: str,
    id_conflict_policy: str,
    address: str,
    namespace: str,
    *,
    wait: bool,
) -> tuple[str, Any, BaseException | None]:
    try:
        reuse = WorkflowIDReusePolicy[id_reuse_policy.upper()]
        conflict = WorkflowIDConflictPolicy[id_conflict_policy.upper()]
    except KeyError as err:
        raise _fail(f"unknown policy {err}; see --help for the choices", 2) from err
    args = _args(inputs)

    async def go(client: Client) -> tuple[str, Any, BaseException | None]:
        handle = await client.start_workflow(
            workflow_type,
            *args,
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=_seconds(execution_timeout),
            run_timeout=_seconds(run_timeout),
            task_timeout=_seconds(task_timeout),
            start_delay=_seconds(start_delay),
            id_reuse_policy=reuse,
            id_conflict_policy=conflict,
        )
        if not wait:
            return handle.result_run_id or "", None, None
        try:
            return handle.result_run_id or "", await handle.result(), None
        except WorkflowFailureError as err:
            return handle.result_run_id or "", None, err

    return _run(address, namespace, go)


@app.command("execute")
def execute(
    workflow_type: Annotated[str, typer.Option("--type", "-t", help="Workflow type name.")],
    task_queue: Annotated[str, typer.Option("--task-queue", "-q", help="Task queue.")],
    workflow_id: Annotated[str, typer.Option("--workflow-id", "-w", help="Workflow id (default: a new UUID).")] = "",
    inputs: Inputs = None,
    execution_timeout: Annotated[float | None, typer.Option(help="Execution timeout, seconds.")] = None,
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Start a workflow, wait for it to close, and print its result (exit code 1 if it failed)."""
    workflow_id = workflow_id or str(uuid.uuid4())
    run_id, result, error = _start(
        workflow_type,
        task_queue,
        workflow_id,
        inputs,
        execution_timeout,
        None,
        None,
        None,
        "ALLOW_DUPLICATE",
        "UNSPECIFIED",
        address,
        namespace,
        wait=True,
    )
    _print_result(workflow_id, run_id, result, error, output)


def _print_result(workflow_id: str, run_id: str, result: Any, error: BaseException | None, output: Output) -> None:
    if error is None:
        if output is Output.json:
            _print_json({"workflow_id": workflow_id, "run_id": run_id, "status": "COMPLETED", "result": result})
        else:
            typer.echo(f"Completed  workflow_id={workflow_id}  run_id={run_id}")
            typer.echo(f"Result: {json.dumps(result, default=str)}")
        return
    chain = []
    cause: BaseException | None = error.__cause__
    while cause is not None:
        chain.append({"type": type(cause).__name__, "message": str(cause)})
        cause = cause.__cause__
    if output is Output.json:
        _print_json({"workflow_id": workflow_id, "run_id": run_id, "status": "FAILED", "failure": chain})
    else:
        typer.echo(f"Failed  workflow_id={workflow_id}  run_id={run_id}")
        for depth, link in enumerate(chain):
            typer.echo(f"{'  ' * depth}{'caused by ' if depth else ''}{link['type']}: {link['message']}")
    raise typer.Exit(1)


@app.command("result")
def result(
    workflow_id: WorkflowId,
    run_id: RunId = "",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Wait for a workflow to close and print its result (exit code 1 if it failed)."""

    async def go(client: Client) -> tuple[str, Any, BaseException | None]:
        handle = _handle(client, workflow_id, run_id)
        try:
            value = await handle.result()
        except WorkflowFailureError as err:
            return run_id, None, err
        return run_id, value, None

    rid, value, error = _run(address, namespace, go)
    _print_result(workflow_id, rid, value, error, output)


@app.command("signal")
def signal(
    workflow_id: WorkflowId,
    name: Annotated[str, typer.Option("--name", help="Signal name.")],
    inputs: Inputs = None,
    run_id: RunId = "",
    request_id: Annotated[str, typer.Option(help="Dedup id: a retry with the same id is applied once.")] = "",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Send a signal to a workflow."""
    args = _args(inputs)

    async def go(client: Client) -> None:
        await _handle(client, workflow_id, run_id).signal(name, *args, request_id=request_id or None)

    _run(address, namespace, go)
    if output is Output.json:
        _print_json({"workflow_id": workflow_id, "signal": name, "ok": True})
    else:
        typer.echo(f"Signal {name!r} sent to {workflow_id}")


@app.command("cancel")
def cancel(
    workflow_id: WorkflowId,
    run_id: RunId = "",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Request cancellation of a workflow."""
    _run(address, namespace, lambda client: _handle(client, workflow_id, run_id).cancel())
    if output is Output.json:
        _print_json({"workflow_id": workflow_id, "cancel_requested": True})
    else:
        typer.echo(f"Cancellation requested for {workflow_id}")


@app.command("terminate")
def terminate(
    workflow_id: WorkflowId,
    reason: Annotated[str, typer.Option(help="Why (recorded in history).")] = "",
    run_id: RunId = "",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Terminate a workflow at once."""
    _run(address, namespace, lambda client: _handle(client, workflow_id, run_id).terminate(reason=reason or None))
    if output is Output.json:
        _print_json({"workflow_id": workflow_id, "terminated": True})
    else:
        typer.echo(f"Terminated {workflow_id}")


def _time(ms: int) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@app.command("describe")
def describe(
    workflow_id: WorkflowId,
    run_id: RunId = "",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Show a workflow run's status, times and pending activities."""

    async def go(client: Client) -> dict[str, Any]:
        return dict((await _handle(client, workflow_id, run_id).describe()).raw)

    data = _run(address, namespace, go)
    if output is Output.json:
        _print_json(data)
        return
    table = Table(title=f"Workflow {workflow_id}", show_header=False)
    for key in ("workflow_id", "run_id", "workflow_type", "task_queue", "status", "history_length"):
        table.add_row(key, str(data.get(key, "")))
    for key in ("start_time_ms", "execution_time_ms", "close_time_ms"):
        table.add_row(key.removesuffix("_ms"), _time(int(data.get(key) or 0)))
    table.add_row("cancel_requested", str(data.get("cancel_requested", False)))
    console = _console()
    console.print(table)
    activities = data.get("pending_activities") or []
    if activities:
        pending = Table(title="Pending activities")
        for column in ("scheduled", "activity id", "type", "state", "attempt", "last failure"):
            pending.add_column(column)
        for a in activities:
            failure = (a.get("last_failure") or {}).get("message", "")
            pending.add_row(
                str(a["scheduled_event_id"]),
                a["activity_id"],
                a["activity_type"],
                a["state"],
                str(a["attempt"]),
                failure,
            )
        console.print(pending)


def _payload_text(b64: str) -> str:
    try:
        payload = payload_from_bytes(base64.b64decode(b64))
    except ValueError:
        return f"<{len(b64)} b64 chars>"
    if payload.encoding.startswith("json"):
        return payload.data.decode("utf-8", "replace")
    if payload.encoding == "binary/null":
        return "null"
    return f"<{payload.encoding or 'binary'} {len(payload.data)} bytes>"


_SHOWN = (
    "workflow_type",
    "task_queue",
    "signal_name",
    "activity_id",
    "activity_type",
    "timer_id",
    "start_to_fire_timeout_ms",
    "attempt",
    "scheduled_event_id",
    "reason",
    "cause",
    "new_execution_run_id",
    "marker_name",
)


def event_details(event: dict[str, Any]) -> str:
    """One line of the key facts of a history event (from the JSON history API)."""
    attrs: dict[str, Any] = next(
        (v for k, v in event.items() if k.endswith("_event_attributes") and isinstance(v, dict)), {}
    )
    parts = []
    for key in _SHOWN:
        value = attrs.get(key)
        if value not in (None, "", 0):
            parts.append(f"{key}={value}")
    for key in ("input", "result", "details"):
        values = attrs.get(key)
        if isinstance(values, list) and values:
            parts.append(f"{key}=[{', '.join(_payload_text(v) for v in values)}]")
    for key in ("failure", "last_failure"):
        failure = attrs.get(key)
        if isinstance(failure, dict):
            parts.append(f"{key}={failure.get('type') or failure.get('failure_type')}: {failure.get('message')}")
    text = "  ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


@app.command("show")
def show(
    workflow_id: WorkflowId,
    run_id: RunId = "",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Print a workflow run's history: event id, time, type and key details (full JSON with -o json)."""

    async def go(client: Client) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/workflows/{workflow_id}/history"
        events: list[dict[str, Any]] = []
        first, rid = 1, run_id
        while True:
            params = {"first_event_id": str(first), "max_events": "1000"}
            if rid:
                params["run_id"] = rid
            page = await client.request("GET", path, params=params)
            events.extend(page["events"])
            rid = page["run_id"]
            if len(page["events"]) < 1000:
                return events
            first = page["next_event_id"]

    events = _run(address, namespace, go)
    if output is Output.json:
        _print_json(events)
        return
    table = Table(title=f"History of {workflow_id}")
    table.add_column("id", justify="right")
    table.add_column("time")
    table.add_column("type")
    table.add_column("details")
    for event in events:
        table.add_row(str(event["event_id"]), _time(event["event_time"]), event["event_type"], event_details(event))
    _console().print(table)


@app.command("query")
def query(
    workflow_id: WorkflowId,
    name: Annotated[str, typer.Option("--name", help="Query name.")],
    inputs: Inputs = None,
    run_id: RunId = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker's answer (at most 60).")] = 10.0,
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Ask a workflow a query and print the answer (a worker of its task queue must be running)."""
    args = _args(inputs)

    async def go(client: Client) -> Any:
        handle = _handle(client, workflow_id, run_id)
        return await handle.query(name, *args, rpc_timeout=timedelta(seconds=timeout))

    answer = _run(address, namespace, go)
    if output is Output.json:
        _print_json({"workflow_id": workflow_id, "query": name, "result": answer})
    else:
        typer.echo(f"Query result: {json.dumps(answer, default=str)}")


@app.command("update")
def update(
    workflow_id: WorkflowId,
    name: Annotated[str, typer.Option("--name", help="Update name.")],
    inputs: Inputs = None,
    run_id: RunId = "",
    update_id: Annotated[str, typer.Option(help="Update id; a retry with the same id is the same update.")] = "",
    wait_for_stage: Annotated[
        str, typer.Option(help="accepted (return once the validator accepted it) or completed (with the result).")
    ] = "completed",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Send an update to a workflow; print its result (exit code 1 if it was rejected or failed)."""
    args = _args(inputs)
    try:
        stage = WorkflowUpdateStage[wait_for_stage.upper()]
    except KeyError as err:
        raise _fail("--wait-for-stage must be accepted or completed", 2) from err
    if stage == WorkflowUpdateStage.ADMITTED:
        raise _fail("--wait-for-stage must be accepted or completed", 2)
    uid = update_id or str(uuid.uuid4())

    async def go(client: Client) -> Any:
        handle = _handle(client, workflow_id, run_id)
        started = await handle.start_update(name, *args, wait_for_stage=stage, id=uid)
        return await started.result() if stage == WorkflowUpdateStage.COMPLETED else None

    value = _run(address, namespace, go)
    done = stage == WorkflowUpdateStage.COMPLETED
    if output is Output.json:
        out: dict[str, Any] = {"workflow_id": workflow_id, "update_id": uid, "stage": stage.name}
        if done:
            out["result"] = value
        _print_json(out)
    elif done:
        typer.echo(f"Update {uid} completed: {json.dumps(value, default=str)}")
    else:
        typer.echo(f"Update {uid} accepted")


@app.command("list")
def list_(
    query: Annotated[str, typer.Option("--query", "-q", help="List Filter, e.g. \"WorkflowType = 'X'\".")] = "",
    limit: Annotated[int, typer.Option(help="Show at most this many (0 = all).")] = 100,
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """List workflow executions matching a List Filter (from visibility)."""

    async def go(client: Client) -> list[dict[str, Any]]:
        found = client.list_workflows(query or None, limit=limit or None, page_size=min(limit or 1000, 1000))
        return [dict(e.raw) async for e in found]

    rows = _run(address, namespace, go)
    if output is Output.json:
        _print_json(rows)
        return
    table = Table(title=f"Workflows{f' where {query}' if query else ''}")
    for column in ("status", "workflow id", "run id", "type", "task queue", "start time", "close time"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["status"],
            row["workflow_id"],
            row["run_id"],
            row["workflow_type"],
            row["task_queue"],
            row.get("start_time") or "",
            row.get("close_time") or "",
        )
    _console().print(table)


@app.command("count")
def count(
    query: Annotated[
        str, typer.Option("--query", "-q", help="List Filter; end with GROUP BY ExecutionStatus for groups.")
    ] = "",
    address: Address = _DEFAULT_ADDRESS,
    namespace: Namespace = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Count workflow executions matching a List Filter (from visibility)."""

    async def go(client: Client) -> tuple[int, list[tuple[list[Any], int]]]:
        result = await client.count_workflows(query or None)
        return result.count, [(list(g.group_values), g.count) for g in result.groups]

    total, groups = _run(address, namespace, go)
    if output is Output.json:
        _print_json({"count": total, "groups": [{"group_values": v, "count": n} for v, n in groups]})
        return
    typer.echo(f"Total: {total}")
    if groups:
        table = Table()
        table.add_column("group")
        table.add_column("count", justify="right")
        for values, n in groups:
            table.add_row(", ".join(str(v) for v in values), str(n))
        _console().print(table)
