"""The HTTP handlers of the JSON API (one function per endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from kronicle.connectors.frontend._commands import CommandGateway, CommandOutcome
from kronicle.connectors.frontend._engine import EngineLike
from kronicle.connectors.frontend._errors import ApiError, invalid
from kronicle.connectors.frontend._json import (
    jsonable,
    opt_int,
    opt_str,
    payload_map_json,
    payloads_json,
    read_body,
    req_str,
    wire_failure_json,
    wire_payload_list,
    wire_payload_map,
    wire_retry_policy,
)
from kronicle.engine.service import NotServingError
from kronicle.topics import InvalidNameError

__all__ = [
    "AVRO_HISTORY_CONTENT_TYPE",
    "Api",
    "FrontendConfig",
    "engine_error",
    "path_id",
    "query_bool",
    "query_int",
    "query_str",
    "query_wait",
]

AVRO_HISTORY_CONTENT_TYPE = "application/vnd.kronicle.history+avro"
"""History as Confluent-framed ``kronicle.workflow.HistoryEvent`` records, each after a 4-byte big-endian length."""

_REUSE = ("ALLOW_DUPLICATE", "ALLOW_DUPLICATE_FAILED_ONLY", "REJECT_DUPLICATE", "TERMINATE_IF_RUNNING")
_CONFLICT = ("UNSPECIFIED", "FAIL", "USE_EXISTING", "TERMINATE_EXISTING")
_ENGINE_ERRORS = {
    "WorkflowAlreadyStarted": "WorkflowAlreadyStarted",
    "WorkflowNotFound": "WorkflowNotFound",
    "WorkflowClosed": "WorkflowNotFound",
    "InvalidArgument": "InvalidArgument",
    "ResourceExhausted": "ResourceExhausted",
}
_CLOSING_ATTRS = {
    "WorkflowExecutionCompleted": "workflow_execution_completed_event_attributes",
    "WorkflowExecutionFailed": "workflow_execution_failed_event_attributes",
    "WorkflowExecutionTimedOut": "workflow_execution_timed_out_event_attributes",
    "WorkflowExecutionCanceled": "workflow_execution_canceled_event_attributes",
    "WorkflowExecutionTerminated": "workflow_execution_terminated_event_attributes",
    "WorkflowExecutionContinuedAsNew": "workflow_execution_continued_as_new_event_attributes",
}
_LENGTH = struct.Struct(">I")
MAX_WAIT_S = 60.0
_RESULT_RECHECK_S = 5.0
"""A result long poll re-reads the run this often even if no close woke it (a safety net, not the mechanism)."""
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class FrontendConfig:
    """Limits and timeouts of the frontend."""

    max_payload_bytes: int = 2 * 1024 * 1024
    """Largest total of a request's payloads (inputs, memo, search attributes); larger is 413 PayloadTooLarge."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body aiohttp accepts (JSON and base64 inflate payloads by about 4/3)."""
    command_timeout_s: float = 15.0
    """How long a command waits for the engine's answer before 504 DeadlineExceeded."""
    instance_id: str | None = None
    """Names this frontend's reply topic; a random id when None."""


class Api:
    """The endpoint handlers over one engine and one command gateway."""

    def __init__(
        self,
        engine: EngineLike,
        gateway: CommandGateway,
        config: FrontendConfig,
        is_registered: Callable[[str], bool] = lambda name: False,
    ) -> None:
        self.engine = engine
        self.gateway = gateway
        self.config = config
        self._is_registered = is_registered
        self._queues: set[str] = set()

    # -- helpers ------------------------------------------------------------------

    def namespace_of(self, request: web.Request) -> str:
        """The served namespace named by the path, or 404 NamespaceNotFound."""
        ns = request.match_info["ns"]
        if ns != self.engine.namespace and self._is_registered(ns):
            raise ApiError(
                "NamespaceNotFound",
                f"namespace {ns!r} is registered, but this frontend serves only {self.engine.namespace!r} (an engine"
                f" runs one namespace); use a frontend of an engine started for {ns!r}",
                namespace=ns,
            )
        if ns != self.engine.namespace:
            raise ApiError(
                "NamespaceNotFound",
                f"namespace {ns!r} is not served here; this frontend serves {self.engine.namespace!r}",
                namespace=ns,
            )
        return ns

    def ready(self) -> None:
        if not self.gateway.ready:
            raise ApiError("NotReady", "the frontend is not connected to Kafka yet; retry in a moment")

    def check_size(self, *groups: Any) -> None:
        total = 0
        for group in groups:
            values = group.values() if isinstance(group, dict) else group
            total += sum(len(b) for b in values)
        if total > self.config.max_payload_bytes:
            raise ApiError(
                "PayloadTooLarge",
                f"payloads total {total} bytes, over the limit of {self.config.max_payload_bytes};"
                " pass a reference (e.g. an object-store key) instead of the data",
                size=total,
                limit=self.config.max_payload_bytes,
            )

    async def _send(self, schema: str, workflow_id: str, datum: dict[str, Any], request_id: str) -> CommandOutcome:
        self.ready()
        # The engine's answer is visible once its transaction commits, a moment before its local
        # store has the change. Listening for the commit notification from before the send, and
        # waiting for it after the answer if it has not come yet, makes a describe right after a
        # 2xx see the command.
        with self.engine.watch_change(workflow_id) as applied:
            try:
                outcome = await self.gateway.send(
                    schema, workflow_id, datum, request_id=request_id, timeout=self.config.command_timeout_s
                )
                if outcome is not None and outcome.get("ok") and not applied.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(2.0):
                            await applied.wait()
            except RuntimeError as err:
                raise ApiError("NotReady", f"{err}; retry with the same request_id") from err
        if outcome is None:
            raise ApiError(
                "DeadlineExceeded",
                f"the command is in the log but the engine did not answer within {self.config.command_timeout_s} s;"
                " check that the engine is running, then retry with the same request_id (retries are safe)",
                workflow_id=workflow_id,
                request_id=request_id,
            )
        if not outcome.get("ok"):
            raise engine_error(outcome, workflow_id)
        return outcome

    def _start_fields(self, body: dict[str, Any], workflow_id: str) -> dict[str, Any]:
        task_queue = req_str(body, "task_queue")
        if task_queue not in self._queues:  # a known queue's name was checked when it was created
            try:
                self.engine.topics.task_queue(task_queue, "workflow")
            except InvalidNameError as err:
                raise invalid("task_queue", str(err)) from err
        reuse = opt_str(body, "id_reuse_policy", "ALLOW_DUPLICATE")
        if reuse not in _REUSE:
            raise invalid("id_reuse_policy", f"must be one of {', '.join(_REUSE)}")
        conflict = opt_str(body, "id_conflict_policy", "UNSPECIFIED")
        if conflict not in _CONFLICT:
            raise invalid("id_conflict_policy", f"must be one of {', '.join(_CONFLICT)}")
        fields = {
            "workflow_id": workflow_id,
            "workflow_type": req_str(body, "workflow_type"),
            "task_queue": task_queue,
            "input": wire_payload_list(body, "input"),
            "request_id": opt_str(body, "request_id") or str(uuid.uuid4()),
            "identity": opt_str(body, "identity"),
            "id_reuse_policy": reuse,
            "id_conflict_policy": conflict,
            "execution_timeout_ms": opt_int(body, "execution_timeout_ms"),
            "run_timeout_ms": opt_int(body, "run_timeout_ms"),
            "task_timeout_ms": opt_int(body, "task_timeout_ms"),
            "start_delay_ms": opt_int(body, "start_delay_ms"),
            "cron_schedule": opt_str(body, "cron_schedule"),
            "retry_policy": wire_retry_policy(body, "retry_policy"),
            "memo": wire_payload_map(body, "memo"),
            "search_attributes": wire_payload_map(body, "search_attributes"),
            "header": wire_payload_map(body, "header"),
            "parent": None,
        }
        return fields

    async def _ensure_queue(self, queue: str) -> None:
        # Workers subscribe to the queue's topics; creating them up front saves a start-up race.
        # Once a queue is known, no thread hop per start (a fifth of a start's CPU at saturation).
        if queue in self._queues:
            return
        await asyncio.get_running_loop().run_in_executor(None, self.engine.ensure_task_queue, queue)
        self._queues.add(queue)

    def history_page(
        self, workflow_id: str, run_id: str, first: int, max_events: int, last_chunk: int = 0
    ) -> list[dict[str, Any]]:
        try:
            return self.engine.read_history(workflow_id, run_id, first, max_events, last_chunk)
        except NotServingError as err:
            raise _not_serving(err) from err

    async def after_change(
        self, workflow_id: str, deadline: float, read: Callable[[], _T], *, closed_only: bool = False
    ) -> _T:
        """One step of a long poll: wait for the workflow to change, then ``read()`` again.

        The wait is a slice of at most a second (a change that lands between a read and the
        wait is seen within it) and ends at ``deadline``. ``closed_only`` waits for a commit
        that closed a run. A read that finds the partition restoring (``NotReady``: the engine
        replaced its transactional producer and resynchronises the partition from Kafka, which
        takes moments) waits again instead of failing the poll, until ``deadline``; the engine
        wakes its waiters when the partition is back.
        """
        wait = self.engine.wait_for_close if closed_only else self.engine.wait_for_change
        while True:
            await wait(workflow_id, min(1.0, max(deadline - time.monotonic(), 0.0)))
            try:
                return read()
            except ApiError as err:
                if err.code != "NotReady" or time.monotonic() >= deadline:
                    raise

    def run_state(self, workflow_id: str, run_id: str) -> dict[str, Any]:
        try:
            run = self.engine.describe(workflow_id, run_id)
        except NotServingError as err:
            raise _not_serving(err) from err
        if run is None:
            which = f"run {run_id!r} of workflow" if run_id else "workflow"
            raise ApiError(
                "WorkflowNotFound",
                f"{which} {workflow_id!r} not found in namespace {self.engine.namespace!r}"
                " (never started, or removed after retention)",
                workflow_id=workflow_id,
                run_id=run_id,
            )
        return run

    # -- commands -----------------------------------------------------------------

    async def start(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces/{ns}/workflows[?wait=SECONDS]."""
        self.namespace_of(request)
        wait = query_wait(request)
        body = await read_body(request)
        workflow_id = req_str(body, "workflow_id")
        fields = self._start_fields(body, workflow_id)
        self.check_size(fields["input"], fields["memo"], fields["search_attributes"])
        self.ready()
        await self._ensure_queue(fields["task_queue"])
        if not wait:
            outcome = await self._send("kronicle.workflow.StartWorkflow", workflow_id, fields, fields["request_id"])
            return web.json_response({"workflow_id": workflow_id, "run_id": outcome.get("run_id", "")}, status=201)
        # Start and result in one request (what execute_workflow does): half the HTTP work of a
        # short workflow on both sides. The close watch is registered before the start is sent, so
        # a run that closes at once is not missed, and a run that has not closed yet (the usual
        # case right after its start) is not read until a close wakes the wait.
        with self.engine.watch_change(workflow_id, closed_only=True) as closed:
            outcome = await self._send("kronicle.workflow.StartWorkflow", workflow_id, fields, fields["request_id"])
            run_id = str(outcome.get("run_id", ""))
            deadline = time.monotonic() + wait
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_RESULT_RECHECK_S, wait)):
                    await closed.wait()
        try:
            answer = self._result_json(workflow_id, await self._closed_run(workflow_id, run_id, deadline))
        except ApiError:
            # The start stands: a partition restoring (or the run already removed) is for the result
            # long poll to report, not a reason to fail a start that succeeded.
            answer = {"workflow_id": workflow_id, "run_id": run_id, "closed": False}
        return web.json_response(answer, status=201)

    async def signal_with_start(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces/{ns}/workflows/{workflow_id}/signal-with-start/{signal_name}."""
        self.namespace_of(request)
        body = await read_body(request)
        workflow_id = path_id(request)
        fields = self._start_fields(body, workflow_id)
        fields["signal_name"] = path_id(request, "signal_name")
        fields["signal_input"] = wire_payload_list(body, "signal_input")
        fields["signal_header"] = {}
        self.check_size(fields["input"], fields["signal_input"], fields["memo"], fields["search_attributes"])
        self.ready()
        await self._ensure_queue(fields["task_queue"])
        outcome = await self._send(
            "kronicle.workflow.SignalWithStartWorkflow", workflow_id, fields, fields["request_id"]
        )
        return web.json_response({"workflow_id": workflow_id, "run_id": outcome.get("run_id", "")}, status=201)

    async def signal(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces/{ns}/workflows/{workflow_id}/signal/{signal_name}."""
        self.namespace_of(request)
        body = await read_body(request)
        workflow_id = path_id(request)
        request_id = opt_str(body, "request_id") or str(uuid.uuid4())
        fields = {
            "workflow_id": workflow_id,
            "run_id": opt_str(body, "run_id"),
            "signal_name": path_id(request, "signal_name"),
            "input": wire_payload_list(body, "input"),
            "header": wire_payload_map(body, "header"),
            "request_id": request_id,
            "identity": opt_str(body, "identity"),
        }
        self.check_size(fields["input"])
        wait = query_bool(request, "wait_applied")
        run_id = None if wait else self._running_run_id(workflow_id, opt_str(body, "run_id"))
        if run_id is None:
            # Unknown, closed, or asked to wait: the engine answers, so its errors (404, a closed
            # run's 404, a duplicate of a signal that was applied before the run closed) are exact.
            outcome = await self._send("kronicle.workflow.SignalWorkflow", workflow_id, fields, request_id)
            return web.json_response({"workflow_id": workflow_id, "run_id": outcome.get("run_id", "")})
        # The run is open: acknowledge once the command is durably in the log (acks=all, idempotent
        # producer), as Temporal acknowledges once the signal is recorded; the engine applies it in
        # log order, deduplicated by request id. docs/http-api.md describes the race with the run closing.
        self.ready()
        try:
            await self.gateway.produce(
                "kronicle.workflow.SignalWorkflow", workflow_id, fields, timeout=self.config.command_timeout_s
            )
        except RuntimeError as err:
            raise ApiError("NotReady", f"{err}; retry with the same request_id") from err
        return web.json_response({"workflow_id": workflow_id, "run_id": run_id})

    def _running_run_id(self, workflow_id: str, run_id: str) -> str | None:
        """The id of the run a signal targets if this engine's store has it open, else None."""
        try:
            run = self.engine.describe(workflow_id, run_id)
        except NotServingError:
            return None
        if run is None or run["status"] != "RUNNING":
            return None
        return str(run["run_id"])

    async def cancel(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces/{ns}/workflows/{workflow_id}/cancel."""
        self.namespace_of(request)
        body = await read_body(request)
        workflow_id = path_id(request)
        request_id = opt_str(body, "request_id") or str(uuid.uuid4())
        fields = {
            "workflow_id": workflow_id,
            "run_id": opt_str(body, "run_id"),
            "request_id": request_id,
            "reason": opt_str(body, "reason"),
            "identity": opt_str(body, "identity"),
        }
        outcome = await self._send("kronicle.workflow.RequestCancelWorkflow", workflow_id, fields, request_id)
        return web.json_response({"workflow_id": workflow_id, "run_id": outcome.get("run_id", "")})

    async def terminate(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces/{ns}/workflows/{workflow_id}/terminate."""
        self.namespace_of(request)
        body = await read_body(request)
        workflow_id = path_id(request)
        fields = {
            "workflow_id": workflow_id,
            "run_id": opt_str(body, "run_id"),
            "reason": opt_str(body, "reason"),
            "details": wire_payload_list(body, "details"),
            "identity": opt_str(body, "identity"),
        }
        self.check_size(fields["details"])
        # TerminateWorkflow has no request id: its answer carries "", matched in order per workflow.
        outcome = await self._send("kronicle.workflow.TerminateWorkflow", workflow_id, fields, "")
        return web.json_response({"workflow_id": workflow_id, "run_id": outcome.get("run_id", "")})

    # -- reads --------------------------------------------------------------------

    async def describe(self, request: web.Request) -> web.Response:
        """GET /api/v1/namespaces/{ns}/workflows/{workflow_id}."""
        self.namespace_of(request)
        workflow_id = path_id(request)
        run = self.run_state(workflow_id, query_str(request, "run_id"))
        return web.json_response(describe_json(run))

    async def history(self, request: web.Request) -> web.StreamResponse:
        """GET /api/v1/namespaces/{ns}/workflows/{workflow_id}/history."""
        self.namespace_of(request)
        workflow_id = path_id(request)
        run_id = query_str(request, "run_id")
        first = query_int(request, "first_event_id", 1, 1, 2**62)
        max_events = query_int(request, "max_events", 1000, 1, 10_000)
        wait = query_wait(request)
        run_id = self.run_state(workflow_id, run_id)["run_id"]
        deadline = time.monotonic() + wait
        events = self.history_page(workflow_id, run_id, first, max_events)
        while not events and time.monotonic() < deadline:
            events = await self.after_change(
                workflow_id, deadline, lambda: self.history_page(workflow_id, run_id, first, max_events)
            )
        next_id = events[-1]["event_id"] + 1 if events else first
        if _wants_avro(request):
            body = bytearray()
            for event in events:
                record = self.engine.registry.encode("kronicle.workflow.HistoryEvent", event)
                body += _LENGTH.pack(len(record)) + record
            return web.Response(
                body=bytes(body),
                content_type=AVRO_HISTORY_CONTENT_TYPE,
                headers={"X-Kronicle-Run-Id": run_id, "X-Kronicle-Next-Event-Id": str(next_id)},
            )
        return web.json_response(
            {"workflow_id": workflow_id, "run_id": run_id, "events": jsonable(events), "next_event_id": next_id}
        )

    async def result(self, request: web.Request) -> web.Response:
        """GET /api/v1/namespaces/{ns}/workflows/{workflow_id}/result."""
        self.namespace_of(request)
        workflow_id = path_id(request)
        run_id = query_str(request, "run_id")
        wait = query_wait(request)
        run = await self._closed_run(workflow_id, run_id, time.monotonic() + wait)
        return web.json_response(self._result_json(workflow_id, run))

    def _result_json(self, workflow_id: str, run: dict[str, Any]) -> dict[str, Any]:
        """The Result body of a run's state: its status and, once closed, its closing event's outcome."""
        run_id = run["run_id"]
        out: dict[str, Any] = {"workflow_id": workflow_id, "run_id": run_id, "status": run["status"]}
        if run["status"] == "RUNNING":
            out["closed"] = False
            return out
        out["closed"] = True
        # The closing event is in the run's last chunk: one read of its key (the run state says where).
        last = self.history_page(workflow_id, run_id, run["next_event_id"] - 1, 1, run.get("last_chunk", 0))
        if last:
            out.update(closing_event_json(last[0]))
        return out

    async def _closed_run(self, workflow_id: str, run_id: str, deadline: float) -> dict[str, Any]:
        """The run's state once it is closed, or still running at ``deadline``.

        The watch is registered before each read, so a close that commits between the
        read and the wait wakes the wait: it is woken only when a run of the workflow
        closed (not on each of its commits) or its partition was restored, and re-reads
        at most every few seconds besides. A read that finds the partition restoring
        waits again, as :meth:`after_change` does, except on the first read.
        """
        first = True
        while True:
            with self.engine.watch_change(workflow_id, closed_only=True) as closed:
                try:
                    run = self.run_state(workflow_id, run_id)
                except ApiError as err:
                    if first or err.code != "NotReady" or time.monotonic() >= deadline:
                        raise
                else:
                    run_id = run["run_id"]
                    if run["status"] != "RUNNING" or time.monotonic() >= deadline:
                        return run
                first = False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(_RESULT_RECHECK_S, max(deadline - time.monotonic(), 0.0))):
                        await closed.wait()

    # -- cluster and operations ---------------------------------------------------

    async def cluster(self, request: web.Request) -> web.Response:
        """GET /api/v1/cluster."""
        topics = self.engine.topics
        return web.json_response(
            {
                "kafka_bootstrap_servers": self.engine.bootstrap_servers,
                "namespace": self.engine.namespace,
                "topics": {
                    "commands": topics.commands,
                    "history": topics.history,
                    "visibility": topics.visibility,
                    "dlq": topics.dlq,
                    "state_changelog": topics.changelog,
                    "task_queue_workflow": topics.prefix + ".tq.{queue}.workflow",
                    "task_queue_activity": topics.prefix + ".tq.{queue}.activity",
                },
            }
        )

    async def healthz(self, request: web.Request) -> web.Response:
        """GET /healthz: the process serves requests."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """GET /readyz: connected to Kafka and able to send commands."""
        self.ready()
        return web.json_response({"status": "ready"})


def engine_error(outcome: CommandOutcome, workflow_id: str) -> ApiError:
    """The API error for a ``CommandResult`` in which the engine rejected a command."""
    error_type = str(outcome.get("error_type") or "")
    code = _ENGINE_ERRORS.get(error_type, "InvalidArgument")
    details: dict[str, Any] = {"workflow_id": workflow_id}
    if outcome.get("run_id"):
        details["run_id"] = outcome["run_id"]
    if error_type == "WorkflowClosed":
        details["closed"] = True
    return ApiError(code, str(outcome.get("message") or error_type), **details)


def _not_serving(err: NotServingError) -> ApiError:
    return ApiError("NotReady", f"{err}; the engine is starting or restoring, retry in a moment")


def path_id(request: web.Request, name: str = "workflow_id") -> str:
    value = request.match_info[name]
    if not value or len(value) > 1000:
        raise invalid(name, "must be 1 to 1000 characters")
    return value


def query_str(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if len(value) > 1000:
        raise invalid(name, "at most 1000 characters")
    return value


def query_bool(request: web.Request, name: str) -> bool:
    """A ``true``/``false`` query parameter (absent or empty: false)."""
    raw = request.query.get(name, "").lower()
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise invalid(name, f"must be true or false, not {raw[:50]!r}")


def query_int(request: web.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise invalid(name, f"must be an integer, not {raw[:50]!r}") from err
    if not minimum <= value <= maximum:
        raise invalid(name, f"must be between {minimum} and {maximum}")
    return value


def query_wait(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None or raw == "":
        return 0.0
    if raw.lower() == "true":
        return MAX_WAIT_S
    if raw.lower() == "false":
        return 0.0
    try:
        value = float(raw)
    except ValueError as err:
        raise invalid("wait", f"must be seconds (a number up to {MAX_WAIT_S:g}) or true/false") from err
    if not 0 <= value <= MAX_WAIT_S:  # also rejects nan
        raise invalid("wait", f"must be between 0 and {MAX_WAIT_S:g} seconds")
    return value


def _wants_avro(request: web.Request) -> bool:
    return AVRO_HISTORY_CONTENT_TYPE in request.headers.get("Accept", "")


def describe_json(run: dict[str, Any]) -> dict[str, Any]:
    """A run's stored state as the describe response."""
    activities = []
    for sid, act in sorted((run.get("activities") or {}).items(), key=lambda kv: int(kv[0])):
        activities.append(
            {
                "scheduled_event_id": int(sid),
                "activity_id": act.get("activity_id", ""),
                "activity_type": act.get("activity_type", ""),
                "task_queue": act.get("task_queue", ""),
                "state": act.get("state", ""),
                "attempt": act.get("attempt", 1),
                "scheduled_time_ms": act.get("scheduled_time", 0),
                "last_attempt_time_ms": act.get("attempt_time", 0),
                "cancel_requested": bool(act.get("cancel_requested_event_id")),
                "last_failure": wire_failure_json(act.get("last_failure")),
                "heartbeat_details": payloads_json(act.get("heartbeat_details")),
            }
        )
    timers = [{"timer_id": k, "started_event_id": v} for k, v in sorted((run.get("timers") or {}).items())]
    parent = run.get("parent")
    return {
        "workflow_id": run["workflow_id"],
        "run_id": run["run_id"],
        "first_run_id": run.get("first_run_id", run["run_id"]),
        "workflow_type": run.get("workflow_type", ""),
        "task_queue": run.get("task_queue", ""),
        "status": run["status"],
        "start_time_ms": run.get("start_time") or 0,
        "execution_time_ms": run.get("execution_time") or 0,
        "close_time_ms": run.get("close_time") or 0,
        "history_length": run.get("next_event_id", 1) - 1,
        "execution_timeout_ms": run.get("execution_timeout_ms") or 0,
        "run_timeout_ms": run.get("run_timeout_ms") or 0,
        "task_timeout_ms": run.get("task_timeout_ms") or 0,
        "memo": payload_map_json(run.get("memo")),
        "search_attributes": payload_map_json(run.get("search_attributes")),
        "cancel_requested": bool(run.get("cancel_requested")),
        "workflow_task_outstanding": run.get("wft") is not None,
        "pending_activities": activities,
        "pending_timers": timers,
        "parent": None if not parent else {"workflow_id": parent["workflow_id"], "run_id": parent["run_id"]},
    }


def closing_event_json(event: dict[str, Any]) -> dict[str, Any]:
    """The outcome fields of a run's closing event."""
    etype = event["event_type"]
    attrs = event.get(_CLOSING_ATTRS.get(etype, "")) or {}
    out: dict[str, Any] = {"close_event_type": etype, "close_event_id": event["event_id"]}
    if attrs.get("new_execution_run_id"):
        # Continue-as-new, a cron schedule's next run or a retry: the chain goes on in that run.
        out["new_execution_run_id"] = attrs["new_execution_run_id"]
    if etype == "WorkflowExecutionCompleted":
        out["result"] = payloads_json(attrs.get("result"))
    elif etype == "WorkflowExecutionFailed":
        out["failure"] = wire_failure_json(attrs.get("failure"))
        out["retry_state"] = attrs.get("retry_state", "")
    elif etype == "WorkflowExecutionTimedOut":
        out["retry_state"] = attrs.get("retry_state", "")
    elif etype == "WorkflowExecutionCanceled":
        out["details"] = payloads_json(attrs.get("details"))
    elif etype == "WorkflowExecutionTerminated":
        out["reason"] = attrs.get("reason", "")
        out["details"] = payloads_json(attrs.get("details"))
    elif etype == "WorkflowExecutionContinuedAsNew":
        out.setdefault("new_execution_run_id", "")
    return out
