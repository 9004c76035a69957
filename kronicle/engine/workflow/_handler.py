"""The workflow state machine: a :class:`~kronicle.engine.handler.Handler` for workflow commands.

One method per command (``_on_<command>``) and one per timer kind
(``_timer_<kind>``); the worker commands inside a workflow-task completion
(``_cmd_<CommandType>``) and starting a run live in the
:class:`~kronicle.engine.workflow._worker_commands.WorkerCommands` mixin, results
of activity attempts in :class:`~kronicle.engine.workflow._activity_results.ActivityResults`,
the continuation steps of a chained completion in
:class:`~kronicle.engine.workflow._continuations.Continuations`, and activity
mechanics in :mod:`kronicle.engine.workflow._activities`. All of them work on a
:class:`Tx`, which is committed to the context only when the command has been
applied.

Stale input from workers (a completion, failure or heartbeat naming a workflow
task or activity attempt that is no longer current, or a closed run) is
normal under at-least-once delivery: it is ignored, changes nothing, and is
counted in :attr:`WorkflowHandler.stats`. Client commands that cannot be
applied (a start that conflicts, a signal to a closed workflow) are answered
on their ``reply_to`` topic if they named one, and otherwise raise
:class:`~kronicle.engine.handler.InvalidCommand` so the shell dead-letters them.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kronicle.engine.handler import CommandRecord, Context, Handler, InvalidCommand
from kronicle.engine.workflow import _activities as acts
from kronicle.engine.workflow._activities import BadCommand
from kronicle.engine.workflow._activity_results import ActivityResults
from kronicle.engine.workflow._continuations import Continuations
from kronicle.engine.workflow._cron import InvalidCronSchedule, next_cron_time_ms
from kronicle.engine.workflow._events import read_event
from kronicle.engine.workflow._interworkflow import InterWorkflowResults
from kronicle.engine.workflow._state import (
    CF_DEDUP,
    COLUMN_FAMILIES,
    WorkflowTopics,
    attributes_field,
    loads,
    payload_size,
    start_run_id,
)
from kronicle.engine.workflow._tx import Config, Decode, Encode, EncodeWithItems, Run, Tx, WorkflowOptions
from kronicle.engine.workflow._worker_commands import WorkerCommands, forget_rejection
from kronicle.schemas import SchemaRegistry
from kronicle.topics import InvalidNameError, NamespaceTopics

__all__ = ["WorkflowHandler"]

_NS = "kronicle.workflow."
_RESULT = "kronicle.workflow.CommandResult"
_CLOSE_COMMANDS = frozenset(
    {
        "CompleteWorkflowExecution",
        "FailWorkflowExecution",
        "CancelWorkflowExecution",
        "ContinueAsNewWorkflowExecution",
    }
)
_MAX_WAITING_QUERIES = 50
"""Queries held per run while its workflow task is outstanding; more go out at once."""
_FAILED_STATUSES = frozenset({"FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"})
# The WorkflowTaskFailed cause for a command whose payloads are over the limit (Temporal's names).
_OVERSIZE_CAUSES = {
    "ScheduleActivityTask": "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES",
    "RequestCancelActivityTask": "BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES",
    "StartTimer": "BAD_START_TIMER_ATTRIBUTES",
    "CancelTimer": "BAD_CANCEL_TIMER_ATTRIBUTES",
    "CompleteWorkflowExecution": "BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES",
    "FailWorkflowExecution": "BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES",
    "CancelWorkflowExecution": "BAD_CANCEL_WORKFLOW_EXECUTION_ATTRIBUTES",
    "ContinueAsNewWorkflowExecution": "BAD_CONTINUE_AS_NEW_ATTRIBUTES",
    "RecordMarker": "BAD_RECORD_MARKER_ATTRIBUTES",
    "UpsertWorkflowSearchAttributes": "BAD_SEARCH_ATTRIBUTES",
    "StartChildWorkflowExecution": "BAD_START_CHILD_EXECUTION_ATTRIBUTES",
    "SignalExternalWorkflowExecution": "BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES",
    "RequestCancelExternalWorkflowExecution": "BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES",
    "UpdateResponse": "BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE",
}


class _Rejected(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class WorkflowHandler(WorkerCommands, InterWorkflowResults, ActivityResults, Continuations):
    """Applies workflow commands to one partition's state; pure (no I/O, no clock).

    Args:
        topics: topic names of the namespace.
        encode: ``(schema full name, datum) -> bytes`` for every record and
            stored event (``SchemaRegistry.encode``).
        decode: ``bytes -> (schema full name, datum)``, used to read stored
            events back when a workflow task is built (``SchemaRegistry.decode``).
        options: tunables.
        encode_with_items: builds a workflow task from the stored events' bytes
            (``SchemaRegistry.encode_with_items``; taken from ``encode``'s registry
            when that is a registry's method). Without it a task's events are
            decoded and encoded again: the same bytes, more CPU.
    """

    column_families: Sequence[str] = COLUMN_FAMILIES

    def __init__(
        self,
        *,
        topics: WorkflowTopics,
        encode: Encode,
        decode: Decode,
        options: WorkflowOptions | None = None,
        encode_with_items: EncodeWithItems | None = None,
    ) -> None:
        self.stats: collections.Counter[str] = collections.Counter()
        """Counts of ignored input by reason (stale completions, duplicate signals...)."""
        if encode_with_items is None:
            owner = getattr(encode, "__self__", None)
            if isinstance(owner, SchemaRegistry):
                encode_with_items = owner.encode_with_items
        self._cfg = Config(topics, encode, decode, options or WorkflowOptions(), self.stats, encode_with_items)
        self._commands: dict[str, Callable[[Tx, CommandRecord], None]] = {
            _NS + "StartWorkflow": self._on_start_workflow,
            _NS + "SignalWorkflow": self._on_signal_workflow,
            _NS + "SignalWithStartWorkflow": self._on_signal_with_start_workflow,
            _NS + "RequestCancelWorkflow": self._on_request_cancel_workflow,
            _NS + "TerminateWorkflow": self._on_terminate_workflow,
            _NS + "CompleteWorkflowTask": self._on_complete_workflow_task,
            _NS + "FailWorkflowTask": self._on_fail_workflow_task,
            _NS + "CompleteActivityTask": self._on_complete_activity_task,
            _NS + "FailActivityTask": self._on_fail_activity_task,
            _NS + "HeartbeatActivityTask": self._on_heartbeat_activity_task,
            _NS + "ReportActivityTaskCanceled": self._on_report_activity_task_canceled,
            _NS + "ChildWorkflowResult": self._on_child_workflow_result,
            _NS + "ExternalCommandResult": self._on_external_command_result,
            _NS + "UpdateWorkflow": self._on_update_workflow,
            _NS + "QueryWorkflow": self._on_query_workflow,
        }

    def take_closed(self) -> set[bytes]:
        """Keys (workflow ids) of the runs closed since the last call; the first call starts the tracking.

        Called after each commit (on the processor thread) so that only callers waiting
        for a result are woken when a workflow closes. A key from a batch that was then
        aborted may be reported too: a waiter reads the state again, so it only wakes early.
        """
        closed = self._cfg.closed
        self._cfg.closed = set()
        return closed or set()

    # -- Handler protocol ------------------------------------------------------------

    def handle(self, ctx: Context, command: CommandRecord) -> None:
        """Apply one workflow command.

        Raises:
            InvalidCommand: the command is not a workflow command, is keyed by
                another workflow id than it names, or is a client command that
                cannot be applied and has no ``reply_to``.
        """
        method = self._commands.get(command.schema)
        if method is None:
            raise InvalidCommand(f"{command.schema} is not a workflow command; produce one of {sorted(self._commands)}")
        workflow_id = command.value.get("workflow_id") or ""
        if not workflow_id:
            raise InvalidCommand("workflow_id is empty; every workflow command names its workflow")
        if command.key is not None and command.key != workflow_id.encode():
            raise InvalidCommand(
                f"record key {command.key!r} is not the workflow id {workflow_id!r}; key commands by workflow id"
                " so they reach the workflow's partition"
            )
        tx = Tx(self._cfg, ctx, workflow_id)
        try:
            method(tx, command)
        except (KeyError, TypeError, ValueError) as exc:
            # Nothing was committed yet; dead-letter the record rather than stop the partition.
            raise InvalidCommand(
                f"malformed {command.schema} ({type(exc).__name__}: {exc}); check the producer against the schema"
            ) from exc
        except _Rejected as exc:
            tx = Tx(self._cfg, ctx, workflow_id)
            parent = command.value.get("parent")
            if parent is not None:
                # A child that cannot start: its parent records StartChildWorkflowExecutionFailed.
                self._child_start_failed(tx, command, exc)
            elif command.value.get("reply_to") or command.value.get("origin"):
                self._reply(tx, command, ok=False, error_type=exc.error_type, message=exc.message)
            else:
                raise InvalidCommand(f"{exc.error_type}: {exc.message}") from exc
        tx.commit()

    def _child_start_failed(self, tx: Tx, command: CommandRecord, exc: _Rejected) -> None:
        v = command.value
        run: Run = {"workflow_id": v["workflow_id"], "run_id": "", "workflow_type": v["workflow_type"]}
        run["parent"] = v["parent"]
        cause = "WORKFLOW_ALREADY_EXISTS" if exc.error_type == "WorkflowAlreadyStarted" else exc.error_type
        tx.notify_parent(run, "START_FAILED", cause=cause)

    def on_timer(self, ctx: Context, key: bytes, timer_id: bytes, payload: bytes) -> None:
        """Apply a fired timer of a workflow (stale ones change nothing)."""
        fields: dict[str, Any] = loads(payload)
        tx = Tx(self._cfg, ctx, key.decode())
        kind = fields["kind"]
        if kind == "dedup":
            tx.delete(CF_DEDUP, bytes.fromhex(fields["arg"]))
            tx.commit()
            return
        run = tx.load(fields["run_id"])
        if run is not None:
            tx.timer_fired(run, fields)
        if kind == "retention" and run is not None:
            tx.purge(run)
            tx.commit()
            return
        if run is None or run["status"] != "RUNNING":
            self.stats["stale_timer"] += 1
            return
        method = getattr(self, f"_timer_{kind}", None)
        if method is None:
            self.stats["unknown_timer"] += 1
            return
        method(tx, run, fields)
        tx.commit()

    # -- helpers -----------------------------------------------------------------------

    def _reply(self, tx: Tx, command: CommandRecord, *, ok: bool, run_id: str = "", **fields: str) -> None:
        origin = command.value.get("origin")
        if origin is not None:
            # Sent by another workflow: its history records the outcome.
            result = {
                "workflow_id": origin["workflow_id"],
                "run_id": origin["run_id"],
                "initiated_event_id": origin["initiated_event_id"],
                "target_workflow_id": tx.workflow_id,
                "target_run_id": run_id,
                "ok": ok,
                "cause": "" if ok else "EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND",
            }
            key = origin["workflow_id"].encode()
            tx.emit(tx.cfg.topics.commands, "kronicle.workflow.ExternalCommandResult", result, key=key)
        v = command.value
        reply_to = v.get("reply_to")
        if reply_to:
            value = {
                "workflow_id": tx.workflow_id,
                "run_id": run_id,
                # Updates and queries have no request id; their own id lets the caller match a rejection.
                "request_id": v.get("request_id") or v.get("update_id") or v.get("query_id") or "",
                "ok": ok,
                **fields,
            }
            tx.emit(reply_to, _RESULT, value)

    def _target(self, tx: Tx, value: dict[str, Any]) -> Run:
        """The open run a client command is for."""
        run_id = value.get("run_id") or tx.current_run_id
        run = tx.load(run_id) if run_id else None
        if run is None:
            raise _Rejected("WorkflowNotFound", f"workflow {tx.workflow_id!r} run {run_id or '(current)'} not found")
        if run["status"] != "RUNNING":
            raise _Rejected(
                "WorkflowClosed",
                f"workflow {tx.workflow_id!r} run {run['run_id']} is already closed ({run['status']}); only queries"
                " reach a closed workflow",
            )
        return run

    def _wft_retry(self, tx: Tx, run: Run) -> None:
        """After a failed or timed-out workflow task: flush, then retry now or after a backoff.

        The retry is transient (see :meth:`Tx.schedule_workflow_task`) unless events
        are written before it is scheduled; buffered events written here make it a
        normal task with attempt 1 at once, as in Temporal.
        """
        tx.cancel_timer(run, "wft")
        run["wft"] = None
        tx.release_queries(run)  # a failing task may never complete: answer from the history as it is
        run["wft_attempt"] += 1
        run["wft_failed_next_event_id"] = run["next_event_id"]
        tx.undeliver_updates(run)
        if tx.flush_buffer(run):
            run["wft_attempt"] = 1
            tx.schedule_workflow_task(run)
            return
        opts = self._cfg.options
        extra = run["wft_attempt"] - 1 - opts.workflow_task_immediate_retries
        if extra <= 0:
            tx.schedule_workflow_task(run)
            return
        delay = min(1000 * 2 ** min(extra - 1, 30), opts.workflow_task_max_backoff_ms)
        run["wft_backoff"] = True
        tx.timer(run, "wft_backoff", "", tx.now + delay)

    def _terminate(self, tx: Tx, run: Run, reason: str, details: list[bytes], identity: str) -> None:
        tx.flush_buffer(run)
        tx.close(
            run,
            "TERMINATED",
            "WorkflowExecutionTerminated",
            {"reason": reason, "details": details, "identity": identity},
        )

    # -- client commands ---------------------------------------------------------------

    def _on_start_workflow(self, tx: Tx, command: CommandRecord) -> None:
        run_id = self._start(tx, command, None)
        self._reply(tx, command, ok=True, run_id=run_id)
        if command.value.get("parent") is not None:
            run = tx.load(run_id)
            assert run is not None
            tx.notify_parent(run, "STARTED")

    def _start(self, tx: Tx, command: CommandRecord, signal: dict[str, Any] | None) -> str:
        """Start a run for a StartWorkflow or SignalWithStartWorkflow; returns the run id it resolved to."""
        v = command.value
        request_id = v.get("request_id") or f"offset:{command.partition}:{command.offset}"
        run_id = start_run_id(tx.workflow_id, request_id)
        if not v.get("workflow_type") or not v.get("task_queue"):
            raise _Rejected("InvalidArgument", "workflow_type and task_queue are required to start a workflow")
        try:
            NamespaceTopics(self._cfg.topics.namespace).task_queue(v["task_queue"], "workflow")
        except InvalidNameError as err:
            raise _Rejected("InvalidArgument", f"task_queue: {err}") from err
        timeouts = ("execution_timeout_ms", "run_timeout_ms", "task_timeout_ms", "start_delay_ms")
        if any(int(v.get(t) or 0) < 0 for t in timeouts):
            raise _Rejected("InvalidArgument", f"{', '.join(timeouts)} must not be negative")
        self._check_payloads(v.get("input"), "input")
        if tx.load(run_id) is not None:
            # A retried start: the run it started already exists.
            self.stats["duplicate_start"] += 1
            return run_id
        current = tx.current_run()
        reuse, conflict = v.get("id_reuse_policy") or "ALLOW_DUPLICATE", v.get("id_conflict_policy") or "UNSPECIFIED"
        if current is not None and current["status"] == "RUNNING":
            if conflict == "USE_EXISTING":
                return str(current["run_id"])
            if conflict == "TERMINATE_EXISTING" or (conflict == "UNSPECIFIED" and reuse == "TERMINATE_IF_RUNNING"):
                self._terminate(tx, current, "terminated by a new start of the same workflow id", [], v["identity"])
            else:
                raise _Rejected(
                    "WorkflowAlreadyStarted",
                    f"workflow {tx.workflow_id!r} is already running (run {current['run_id']}); use another id,"
                    " or id_conflict_policy USE_EXISTING or TERMINATE_EXISTING",
                )
        elif current is not None and (
            reuse == "REJECT_DUPLICATE"
            or (reuse == "ALLOW_DUPLICATE_FAILED_ONLY" and current["status"] not in _FAILED_STATUSES)
        ):
            raise _Rejected(
                "WorkflowAlreadyStarted",
                f"workflow id {tx.workflow_id!r} was already used (run {current['run_id']} is"
                f" {current['status']}) and id_reuse_policy is {reuse}",
            )
        execution_timeout = int(v.get("execution_timeout_ms") or 0)
        try:
            retry_policy = acts.normalize_retry_policy(v["retry_policy"]) if v.get("retry_policy") else None
        except BadCommand as exc:
            raise _Rejected("InvalidArgument", exc.message) from exc
        cron = (v.get("cron_schedule") or "").strip()
        delay = int(v.get("start_delay_ms") or 0)
        if cron:
            if delay:
                raise _Rejected("InvalidArgument", "start_delay cannot be combined with cron_schedule; use one")
            try:
                # As in Temporal, the first run waits for the schedule's next time.
                delay = next_cron_time_ms(cron, tx.now) - tx.now
            except InvalidCronSchedule as exc:
                raise _Rejected("InvalidArgument", str(exc)) from exc
        self._start_run(
            tx,
            run_id=run_id,
            workflow_type=v["workflow_type"],
            task_queue=v["task_queue"],
            input_=v.get("input") or [],
            run_timeout_ms=int(v.get("run_timeout_ms") or 0),
            task_timeout_ms=int(v.get("task_timeout_ms") or 0),
            expiration_ms=tx.now + execution_timeout if execution_timeout else 0,
            execution_timeout_ms=execution_timeout,
            delay_ms=delay,
            memo=v.get("memo") or {},
            search_attributes=v.get("search_attributes") or {},
            header=v.get("header") or {},
            identity=v.get("identity") or "",
            request_id=request_id,
            signal=signal,
            parent=v.get("parent"),
            retry_policy=retry_policy,
            cron_schedule=cron,
        )
        return run_id

    def _signal_seen(self, tx: Tx, request_id: str) -> bool:
        """Whether a signal with this request id was applied already (and is still remembered)."""
        if request_id and tx.ctx.get(CF_DEDUP, tx.key + b"\x00" + request_id.encode()) is not None:
            self.stats["duplicate_signal"] += 1
            return True
        return False

    def _remember_signal(self, tx: Tx, request_id: str) -> None:
        if not request_id:
            return
        dedup_key = tx.key + b"\x00" + request_id.encode()
        expiry = tx.now + self._cfg.options.signal_dedup_retention_ms
        tx.put(CF_DEDUP, dedup_key, str(expiry).encode())
        timer_id = b"wf-dedup|" + dedup_key
        payload = b'{"arg":"%s","kind":"dedup"}' % dedup_key.hex().encode()
        # A request id is remembered once (a retry within the window changes nothing), so the
        # timer is never re-armed and needs no index to find it.
        tx.ops.append(lambda: tx.ctx.set_timer(timer_id, expiry, tx.key, payload, previous_due_ms=None))

    def _signal(self, tx: Tx, run: Run, signal: dict[str, Any]) -> None:
        if run["signal_count"] >= self._cfg.options.max_signals_per_execution:
            raise _Rejected(
                "ResourceExhausted",
                f"workflow {tx.workflow_id!r} has received {run['signal_count']} signals, the limit per run;"
                " continue it as new to reset the count",
            )
        run["signal_count"] += 1
        tx.append(run, "WorkflowExecutionSignaled", signal)
        tx.ensure_workflow_task(run)

    def _check_payloads(self, payloads: Any, what: str) -> None:
        size = sum(len(p) for p in payloads or [])
        limit = self._cfg.options.max_payload_bytes
        if size > limit:
            raise _Rejected(
                "InvalidArgument",
                f"{what} is {size} bytes, over the limit of {limit}; store large data elsewhere and pass a reference",
            )

    def _on_signal_workflow(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        request_id = v.get("request_id") or ""
        if self._signal_seen(tx, request_id):
            self._reply(tx, command, ok=True, run_id=tx.current_run_id or "")
            return
        if not v.get("signal_name"):
            raise _Rejected("InvalidArgument", "signal_name is required")
        self._check_payloads(v.get("input"), "signal input")
        run = self._target(tx, v)
        self._signal(
            tx,
            run,
            {
                "signal_name": v["signal_name"],
                "input": v.get("input") or [],
                "identity": v.get("identity") or "",
                "header": v.get("header") or {},
                "request_id": request_id,
            },
        )
        self._remember_signal(tx, request_id)
        self._reply(tx, command, ok=True, run_id=run["run_id"])

    def _on_signal_with_start_workflow(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        request_id = v.get("request_id") or ""
        if self._signal_seen(tx, request_id):
            self._reply(tx, command, ok=True, run_id=tx.current_run_id or "")
            return
        if not v.get("signal_name"):
            raise _Rejected("InvalidArgument", "signal_name is required")
        self._check_payloads(v.get("signal_input"), "signal input")
        signal = {
            "signal_name": v["signal_name"],
            "input": v.get("signal_input") or [],
            "identity": v.get("identity") or "",
            "header": v.get("signal_header") or {},
            "request_id": request_id,
        }
        current = tx.current_run()
        if current is not None and current["status"] == "RUNNING":
            self._signal(tx, current, signal)
            run_id = str(current["run_id"])
        else:
            run_id = self._start(tx, command, signal)
        self._remember_signal(tx, request_id)
        self._reply(tx, command, ok=True, run_id=run_id)

    def _on_request_cancel_workflow(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        run = self._target(tx, v)
        if run["cancel_requested"]:
            self.stats["duplicate_cancel_request"] += 1
        else:
            run["cancel_requested"] = True
            tx.append(
                run,
                "WorkflowExecutionCancelRequested",
                {
                    "cause": v.get("reason") or "",
                    "identity": v.get("identity") or "",
                    "request_id": v.get("request_id") or "",
                },
            )
            tx.ensure_workflow_task(run)
        self._reply(tx, command, ok=True, run_id=run["run_id"])

    def _on_update_workflow(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        update_id = v.get("update_id") or ""
        if not update_id or not v.get("name"):
            raise _Rejected("InvalidArgument", "update_id and name are required")
        self._check_payloads(v.get("input"), "update input")
        run = self._target(tx, v)
        if update_id in run["updates"]:
            # A retried request: it is in progress; answer the latest caller when it moves on.
            self.stats["duplicate_update"] += 1
            if v.get("reply_to"):
                run["updates"][update_id]["reply_to"] = v["reply_to"]
            return
        if update_id in run["completed_updates"]:
            self.stats["duplicate_update"] += 1
            self._reply_completed_update(tx, run, update_id, v.get("reply_to"))
            return
        if len(run["updates"]) >= self._cfg.options.max_pending_updates:
            raise _Rejected(
                "ResourceExhausted",
                f"workflow {tx.workflow_id!r} already has {len(run['updates'])} updates in flight; retry later",
            )
        # An id the validator rejected before may be sent again (as in Temporal): it is a new request.
        forget_rejection(run, update_id)
        run["updates"][update_id] = {
            "state": "REQUESTED",
            "name": v["name"],
            "input": v.get("input") or [],
            "header": v.get("header") or {},
            "identity": v.get("identity") or "",
            "reply_to": v.get("reply_to"),
        }
        tx.ensure_workflow_task(run)

    def _reply_completed_update(self, tx: Tx, run: Run, update_id: str, reply_to: str | None) -> None:
        if not reply_to:
            return
        raw = read_event(tx.ctx.get, run["run_id"], run["completed_updates"][update_id], run.get("last_chunk", 0))
        attrs = self._cfg.decode(raw)[1][attributes_field("WorkflowExecutionUpdateCompleted")] if raw else {}
        value = {
            "workflow_id": run["workflow_id"],
            "run_id": run["run_id"],
            "update_id": update_id,
            "stage": "COMPLETED",
            "result": attrs.get("result") or [],
            "failure": attrs.get("failure"),
        }
        tx.emit(reply_to, "kronicle.workflow.UpdateResult", value)

    def _on_query_workflow(self, tx: Tx, command: CommandRecord) -> None:
        """Forward a query to the worker that owns the workflow; the worker answers the caller directly.

        Queries are not history. A closed run is queried too (the worker replays it),
        which is the one thing a closed run accepts. While a workflow task is
        outstanding the query waits in the run's state and goes out when the task
        ends (:meth:`Tx.release_queries`), as in Temporal: a query sent after a
        signal sees the workflow's state after that signal was handled.
        """
        v = command.value
        run_id = v.get("run_id") or tx.current_run_id
        run = tx.load(run_id) if run_id else None
        if run is None:
            raise _Rejected("WorkflowNotFound", f"workflow {tx.workflow_id!r} run {run_id or '(current)'} not found")
        if not v.get("query_id") or not v.get("query_type"):
            raise _Rejected("InvalidArgument", "query_id and query_type are required")
        self._check_payloads(v.get("query_args"), "query args")
        query = {
            "query_id": v["query_id"],
            "query_type": v["query_type"],
            "query_args": v.get("query_args") or [],
            "header": v.get("header") or {},
            "reply_to": v["reply_to"],
        }
        waiting = run.get("queries") or []
        if run["status"] == "RUNNING" and run["wft"] is not None and len(waiting) < _MAX_WAITING_QUERIES:
            run["queries"] = [*waiting, query]
        else:
            tx.dispatch_query(run, query)

    def _on_terminate_workflow(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        run = self._target(tx, v)
        self._terminate(tx, run, v.get("reason") or "", v.get("details") or [], v.get("identity") or "")
        self._reply(tx, command, ok=True, run_id=run["run_id"])

    # -- workflow tasks -------------------------------------------------------------------

    def _current_task_run(self, tx: Tx, v: dict[str, Any]) -> Run | None:
        """The run whose outstanding workflow task ``v`` names, or None if ``v`` is stale."""
        run = tx.load(v.get("run_id") or "")
        if run is None or run["status"] != "RUNNING" or run["wft"] is None:
            return None
        wft = run["wft"]
        if wft["scheduled_event_id"] != v["scheduled_event_id"] or wft["attempt"] != v["attempt"]:
            return None
        return run

    def _write_wft_started(self, tx: Tx, run: Run, v: dict[str, Any]) -> int:
        wft = run["wft"]
        if not wft.get("chained"):  # a continuation step's task has no timeout timer
            tx.cancel_timer(run, "wft")
        tx.write_transient_scheduled(run)
        started_time = min(max(int(v.get("started_time_ms") or 0), wft["scheduled_time"]), tx.now)
        return tx.add_event(
            run,
            "WorkflowTaskStarted",
            {"scheduled_event_id": wft["scheduled_event_id"], "identity": v.get("identity") or "", "request_id": ""},
            started_time,
        )

    def _fail_wft(self, tx: Tx, run: Run, v: dict[str, Any], cause: str, failure: dict[str, Any] | None) -> None:
        if run["wft"].get("transient"):
            # A retry that failed again: no event (Temporal's transient attempts); only the count grows.
            self.stats["transient_workflow_task_failure"] += 1
            self._wft_retry(tx, run)
            return
        started = self._write_wft_started(tx, run, v)
        tx.add_event(
            run,
            "WorkflowTaskFailed",
            {
                "scheduled_event_id": run["wft"]["scheduled_event_id"],
                "started_event_id": started,
                "cause": cause,
                "failure": failure,
                "identity": v.get("identity") or "",
            },
        )
        self._wft_retry(tx, run)

    def _on_complete_workflow_task(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        run = self._current_task_run(tx, v)
        steps = v.get("continuations") or []
        if run is None:
            self.stats["stale_workflow_task_completion"] += 1
            if steps and (run := tx.load(v.get("run_id") or "")) is not None:
                # The eager activities' results still count where they name a current attempt.
                self._apply_continuations(tx, run["run_id"], steps, v.get("identity") or "", stale=True)
            return
        self._complete_task(tx, run, v)
        if steps:
            self._apply_continuations(tx, run["run_id"], steps, v.get("identity") or "")

    def _complete_task(self, tx: Tx, run: Run, v: dict[str, Any]) -> None:
        """Complete the run's outstanding task with ``v``'s commands, or fail it if one of them is bad."""
        point = tx.savepoint()
        try:
            self._apply_completion(tx, run, v)
        except BadCommand as exc:
            tx.rollback(point)
            restored = tx.load(run["run_id"])
            assert restored is not None
            self.stats["bad_workflow_task_completion"] += 1
            failure = {"message": exc.message, "source": "Kronicle", "failure_type": "server"}
            self._fail_wft(tx, restored, v, exc.cause, failure)

    def _apply_completion(self, tx: Tx, run: Run, v: dict[str, Any]) -> None:
        scheduled = run["wft"]["scheduled_event_id"]
        chained = bool(v.get("continuations")) or bool(run["wft"].get("chained"))
        started = self._write_wft_started(tx, run, v)
        if chained:
            # Later steps' events carry the worker's times, so these must not be later (see _continuations).
            tx.event_now = run["last_event_time"]
        completed = tx.add_event(
            run,
            "WorkflowTaskCompleted",
            {"scheduled_event_id": scheduled, "started_event_id": started, "identity": v.get("identity") or ""},
        )
        # The task stays outstanding while its commands apply, so events they cause
        # (an activity cancelled before it ran) are buffered behind them.
        unseen = len(run["buffer"])
        for command in v.get("commands") or []:
            if run["status"] != "RUNNING":
                raise BadCommand(
                    "BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES",
                    "a command follows the command that closed the workflow; the closing command must be last",
                )
            command_type = command.get("command_type") or ""
            attrs = command.get(attributes_field(command_type, "command")) if command_type else None
            method = getattr(self, f"_cmd_{command_type}", None)
            if attrs is None or method is None:
                raise BadCommand("BAD_COMMAND", f"command {command_type!r} has no attributes or is unknown")
            if (size := payload_size(attrs)) > self._cfg.options.max_payload_bytes:
                limit = self._cfg.options.max_payload_bytes
                raise BadCommand(
                    _OVERSIZE_CAUSES.get(command_type, "BAD_COMMAND"),
                    f"{command_type} carries {size} bytes, over the payload limit of {limit}; store large data"
                    " elsewhere and pass a reference",
                )
            if command_type in _CLOSE_COMMANDS and unseen:
                raise BadCommand(
                    "UNHANDLED_COMMAND",
                    f"{unseen} new events arrived while the task ran; the workflow must see them first",
                )
            method(tx, run, attrs, completed, v.get("identity") or "")
        if run["status"] == "RUNNING":
            run["wft"] = None
            run["wft_attempt"] = 1
            run["wft_first_event_id"] = started
            tx.undeliver_updates(run)
            if tx.flush_buffer(run) or tx.has_requested_updates(run):
                tx.ensure_workflow_task(run)

    def _on_fail_workflow_task(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        run = self._current_task_run(tx, v)
        if run is None:
            self.stats["stale_workflow_task_failure"] += 1
            return
        failure = v.get("failure")
        if (size := payload_size(failure)) > self._cfg.options.max_payload_bytes:
            self.stats["oversize_worker_result"] += 1
            failure = acts.oversize_failure(
                "the workflow task failure", size, self._cfg.options.max_payload_bytes, failure["message"]
            )
        self._fail_wft(tx, run, v, v.get("cause") or "WORKFLOW_WORKER_UNHANDLED_FAILURE", failure)

    # -- timers ---------------------------------------------------------------------------

    def _timer_wft(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        wft = run["wft"]
        if wft is None or (wft["scheduled_event_id"], wft["attempt"]) != (f["scheduled_event_id"], f["attempt"]):
            self.stats["stale_timer"] += 1
            return
        if not wft.get("transient"):
            attrs = {"scheduled_event_id": wft["scheduled_event_id"], "started_event_id": 0}
            tx.add_event(run, "WorkflowTaskTimedOut", {**attrs, "timeout_type": "START_TO_CLOSE"})
        self._wft_retry(tx, run)

    def _timer_wft_backoff(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        run["wft_backoff"] = False
        tx.ensure_workflow_task(run)

    def _timer_run_timeout(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        # A run timeout may be retried by the workflow's retry policy; the execution timeout is final.
        self.close_or_retry(tx, run, "TIMED_OUT", "WorkflowExecutionTimedOut", {}, failure=None)

    def _timer_exec_timeout(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        tx.close(run, "TIMED_OUT", "WorkflowExecutionTimedOut", {"retry_state": "TIMEOUT"})

    def _timer_timer(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        timer_id = f["arg"]
        if run["timers"].get(timer_id) != f["started_event_id"]:
            self.stats["stale_timer"] += 1
            return
        del run["timers"][timer_id]
        tx.append(run, "TimerFired", {"timer_id": timer_id, "started_event_id": f["started_event_id"]})
        tx.ensure_workflow_task(run)


if TYPE_CHECKING:

    def _conforms(handler: WorkflowHandler) -> Handler:
        # mypy proves the handler implements the engine's Handler protocol.
        return handler
