"""One command's worth of changes to a workflow, staged until the command has been applied.

A :class:`Tx` loads run states from the context, lets the handler change them
and append history events, and collects every other effect (records, timers,
dedup entries) as deferred operations. Nothing reaches the context until
:meth:`Tx.commit`, which is what makes a bad worker command cheap to undo: the
handler takes a :meth:`Tx.savepoint`, and on a bad command rolls back to it and
fails the workflow task instead.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

from kronicle.engine.handler import Context
from kronicle.engine.workflow._events import chunk_events, event_chunks, iter_events, last_chunk_start
from kronicle.engine.workflow._state import (
    CF_CURRENT,
    CF_EVENTS,
    CF_RUNS,
    WorkflowTopics,
    attributes_field,
    copy_state,
    dumps,
    event_key,
    loads,
)

__all__ = ["Config", "EncodeWithItems", "Run", "Tx", "WorkflowOptions"]

Run = dict[str, Any]
"""The mutable state of one run (see ``docs/history.md`` for its fields)."""
Encode = Callable[[str, Any], bytes]
Decode = Callable[[bytes], tuple[str, Any]]
EncodeWithItems = Callable[[str, dict[str, Any], str, list[bytes]], bytes]
"""``(schema, datum, array field, encoded items) -> bytes`` (``SchemaRegistry.encode_with_items``)."""

_ACTIVITY_CLOSE_EVENTS = frozenset(
    {"ActivityTaskCompleted", "ActivityTaskFailed", "ActivityTaskTimedOut", "ActivityTaskCanceled"}
)
_CHILD_CLOSE_EVENTS = frozenset(
    {
        "StartChildWorkflowExecutionFailed",
        "ChildWorkflowExecutionCompleted",
        "ChildWorkflowExecutionFailed",
        "ChildWorkflowExecutionCanceled",
        "ChildWorkflowExecutionTimedOut",
        "ChildWorkflowExecutionTerminated",
    }
)
ACTIVITY_TIMER_KINDS = ("act_s2s", "act_stc", "act_hb", "act_s2c", "act_retry")


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowOptions:
    """Tunables of the workflow state machine."""

    default_workflow_task_timeout_ms: int = 10_000
    """Workflow task timeout when a start does not give one (Temporal's default)."""
    max_workflow_task_timeout_ms: int = 120_000
    """Upper bound on a workflow task timeout (Temporal caps it the same way)."""
    signal_dedup_retention_ms: int = 24 * 3600 * 1000
    """How long a signal's request id is remembered, so a retried signal is applied once."""
    workflow_task_immediate_retries: int = 2
    """Attempts of a failed or timed-out workflow task retried at once; later ones back off."""
    workflow_task_max_backoff_ms: int = 600_000
    """Longest backoff between workflow task attempts."""
    retention_ms: int = 7 * 24 * 3600 * 1000
    """How long a closed run's state and stored events are kept (the namespace's retention)."""
    max_payload_bytes: int = 2 * 1024 * 1024
    """Largest payload data (bytes and strings, see ``payload_size``) of a client input (start, signal, update,
    query) and of a worker result (each command of a completion, an activity result, failure or heartbeat)."""
    max_pending_activities: int = 2000
    """Most activities one run may have pending (Temporal's default limit)."""
    max_signals_per_execution: int = 10_000
    """Most signals one run accepts; continue-as-new starts a fresh count."""
    max_pending_children: int = 2000
    """Most child workflows one run may have pending."""
    max_pending_updates: int = 10
    """Most updates one run may have requested or accepted but not completed (Temporal's default)."""


@dataclasses.dataclass(slots=True)
class Config:
    """What every transaction needs from the handler."""

    topics: WorkflowTopics
    encode: Encode
    decode: Decode
    options: WorkflowOptions
    stats: collections.Counter[str]
    encode_with_items: EncodeWithItems | None = None
    """Builds a workflow task from the stored event bytes; without it events are decoded and encoded again."""
    closed: set[bytes] | None = None
    """Workflow ids (keys) whose run closed, when someone collects them (``WorkflowHandler.take_closed``)."""


class Tx:
    """The staged changes of one command to one workflow id (and its runs)."""

    def __init__(self, cfg: Config, ctx: Context, workflow_id: str) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.workflow_id = workflow_id
        self.key = workflow_id.encode()
        self.now = ctx.now_ms
        self.event_now = self.now
        """Default time of the events written now: ``now``, except while a chained completion is applied,
        whose events carry the worker's step times (``_continuations.py``)."""
        self.runs: dict[str, Run | None] = {}
        self._raw: dict[str, bytes | None] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.ops: list[Callable[[], None]] = []
        self._current: str | None = None
        self._current_loaded = False
        self._current_dirty = False

    # -- loading --------------------------------------------------------------

    def load(self, run_id: str) -> Run | None:
        """The run's state, or None if there is no such run of this workflow."""
        if run_id not in self.runs:
            raw = self.ctx.get(CF_RUNS, run_id.encode())
            self._raw[run_id] = raw
            run: Run | None = loads(raw) if raw is not None else None
            if run is not None and run["workflow_id"] != self.workflow_id:
                run = None
            self.runs[run_id] = run
        return self.runs[run_id]

    @property
    def current_run_id(self) -> str | None:
        """Run id of the workflow's latest run."""
        if not self._current_loaded:
            raw = self.ctx.get(CF_CURRENT, self.key)
            self._current = raw.decode() if raw is not None else None
            self._current_loaded = True
        return self._current

    def current_run(self) -> Run | None:
        """State of the workflow's latest run, if any."""
        run_id = self.current_run_id
        return self.load(run_id) if run_id is not None else None

    def add_run(self, run: Run) -> None:
        """Register a new run and make it the workflow's current run."""
        self.runs[run["run_id"]] = run
        self._current = run["run_id"]
        self._current_loaded = True
        self._current_dirty = True

    # -- savepoints -----------------------------------------------------------

    def savepoint(self) -> tuple[Any, ...]:
        """A point to :meth:`rollback` to."""
        return (
            copy_state(self.runs),
            {k: len(v) for k, v in self.events.items()},
            len(self.ops),
            self._current,
            self._current_dirty,
            self.event_now,
        )

    def rollback(self, point: tuple[Any, ...]) -> None:
        """Undo everything staged since ``point``."""
        runs, lengths, n_ops, current, dirty, self.event_now = point
        self.runs = runs
        self.events = {k: v[: lengths[k]] for k, v in self.events.items() if k in lengths}
        del self.ops[n_ops:]
        self._current, self._current_dirty = current, dirty

    # -- history --------------------------------------------------------------

    def add_event(self, run: Run, event_type: str, attrs: dict[str, Any], time_ms: int | None = None) -> int:
        """Write one event to the run's history now; returns its event id.

        The event's time is ``time_ms`` (default: :attr:`event_now`) but never earlier than the
        previous event's, so event times are non-decreasing with event ids. That
        matters for events written later than they happened (a buffered signal, an
        ActivityTaskStarted at the worker's start time): they get at most the
        time they enter history, and their order is kept.
        """
        event_id: int = run["next_event_id"]
        run["next_event_id"] = event_id + 1
        if event_type in _ACTIVITY_CLOSE_EVENTS and attrs.get("started_event_id") == -1:
            # The attempt's ActivityTaskStarted is always the event just before.
            attrs = {**attrs, "started_event_id": event_id - 1}
        elif event_type == "ChildWorkflowExecutionStarted":
            run["children"][str(attrs["initiated_event_id"])]["started_event_id"] = event_id
        elif event_type in _CHILD_CLOSE_EVENTS:
            # A child leaves the pending set when its closing event is written (not when
            # its result arrives), because until then the result may wait in the buffer.
            child = run["children"].pop(str(attrs["initiated_event_id"]))
            if event_type != "StartChildWorkflowExecutionFailed":
                attrs = {**attrs, "started_event_id": child["started_event_id"]}
        event = self.make_event(run, event_id, event_type, attrs, time_ms)
        run["last_event_time"] = event["event_time"]
        self.events.setdefault(run["run_id"], []).append(event)
        return event_id

    def make_event(
        self, run: Run, event_id: int, event_type: str, attrs: dict[str, Any], time_ms: int | None = None
    ) -> dict[str, Any]:
        """A HistoryEvent datum (not written; :meth:`add_event` writes one)."""
        event_time = max(self.event_now if time_ms is None else time_ms, run.get("last_event_time", 0))
        return {
            "event_id": event_id,
            "event_time": event_time,
            "event_type": event_type,
            "version": 0,
            attributes_field(event_type): attrs,
        }

    def append(self, run: Run, event_type: str, attrs: dict[str, Any], time_ms: int | None = None) -> None:
        """Add an event that the workflow code has not seen yet.

        While a workflow task is outstanding the worker is working from the
        history it was sent, so new events are buffered and written after the
        task ends (as Temporal does); otherwise they are written at once. The
        caller then calls :meth:`ensure_workflow_task`.
        """
        if run["wft"] is not None:
            run["buffer"].append([event_type, attrs, self.now if time_ms is None else time_ms])
        else:
            self.add_event(run, event_type, attrs, time_ms)

    def flush_buffer(self, run: Run) -> int:
        """Write the buffered events; returns how many there were."""
        buffered = run["buffer"]
        run["buffer"] = []
        for event_type, attrs, time_ms in buffered:
            self.add_event(run, event_type, attrs, time_ms)
        return len(buffered)

    # -- workflow tasks -------------------------------------------------------

    def undeliver_updates(self, run: Run) -> None:
        """Updates sent with a task that ended without answering them go out again with the next one."""
        for update in run["updates"].values():
            if update["state"] == "DELIVERED":
                update["state"] = "REQUESTED"

    def has_requested_updates(self, run: Run) -> bool:
        """Whether an update waits to be delivered in a workflow task."""
        return any(u["state"] == "REQUESTED" for u in run["updates"].values())

    def update_result(self, run: Run, update_id: str, stage: str, **fields: Any) -> None:
        """Tell the update's caller how far it got (if it named a reply topic)."""
        reply_to = run["updates"].get(update_id, {}).get("reply_to")
        if reply_to:
            value = {
                "workflow_id": run["workflow_id"],
                "run_id": run["run_id"],
                "update_id": update_id,
                "stage": stage,
                **fields,
            }
            self.emit(reply_to, "kronicle.workflow.UpdateResult", value)

    def ensure_workflow_task(self, run: Run) -> None:
        """Schedule a workflow task unless one is outstanding, backing off, or the run is closed."""
        if run["status"] == "RUNNING" and run["wft"] is None and not run["wft_backoff"]:
            self.schedule_workflow_task(run)

    def schedule_workflow_task(self, run: Run) -> None:
        """Write WorkflowTaskScheduled (unless the task is transient), arm its timeout and dispatch the task.

        A retry of a failed or timed-out task (attempt > 1) is *transient*, as in
        Temporal: while nothing new happened since the failure, its
        WorkflowTaskScheduled is not written but only sent in the task; it is
        written (with WorkflowTaskStarted) when an attempt completes, and a failed
        attempt writes nothing, so a task that keeps failing does not grow history.
        Once new events were written since the failure the task is a normal one
        again, with attempt 1.
        """
        if run["wft_attempt"] > 1 and run["next_event_id"] != run.get("wft_failed_next_event_id"):
            run["wft_attempt"] = 1
        attempt = run["wft_attempt"]
        timeout = run["task_timeout_ms"]
        attrs = {"task_queue": run["task_queue"], "start_to_close_timeout_ms": timeout, "attempt": attempt}
        transient: dict[str, Any] | None = None
        if attempt > 1:
            sid = run["next_event_id"]
            transient = self.make_event(run, sid, "WorkflowTaskScheduled", attrs)
        else:
            sid = self.add_event(run, "WorkflowTaskScheduled", attrs)
        run["wft"] = {"scheduled_event_id": sid, "attempt": attempt, "scheduled_time": self.now}
        if transient is not None:
            run["wft"]["transient"] = True
        updates = []
        for update_id, update in run["updates"].items():
            if update["state"] == "REQUESTED":
                update["state"] = "DELIVERED"
                fields = ("name", "input", "header", "identity")
                updates.append({"update_id": update_id, **{f: update[f] for f in fields}})
        self.timer(run, "wft", "", self.now + timeout, scheduled_event_id=sid, attempt=attempt)
        task = {
            "workflow_id": run["workflow_id"],
            "run_id": run["run_id"],
            "scheduled_event_id": sid,
            "attempt": attempt,
            "workflow_type": run["workflow_type"],
            "task_queue": run["task_queue"],
            "first_event_id": run["wft_first_event_id"],
            "scheduled_time_ms": self.now,
            "start_to_close_timeout_ms": timeout,
            "updates": updates,
        }
        topic = self.cfg.topics.workflow_tasks(run["task_queue"])
        self.ops.append(lambda: self._dispatch_workflow_task(topic, task, transient))

    def write_transient_scheduled(self, run: Run) -> None:
        """Write the outstanding transient task's WorkflowTaskScheduled (an attempt of it completed)."""
        wft = run["wft"]
        if not wft.get("transient"):
            return
        attrs = {"task_queue": run["task_queue"], "start_to_close_timeout_ms": run["task_timeout_ms"]}
        sid = self.add_event(run, "WorkflowTaskScheduled", {**attrs, "attempt": wft["attempt"]}, wft["scheduled_time"])
        # Everything that arrived meanwhile was buffered, so the id is the one the worker was told.
        assert sid == wft["scheduled_event_id"], (sid, wft)
        wft["transient"] = False

    def _dispatch_workflow_task(self, topic: str, task: dict[str, Any], transient: dict[str, Any] | None) -> None:
        # Runs at commit, after this command's events are in the context.
        first, last = task["first_event_id"], task["scheduled_event_id"]
        if transient is not None:
            last -= 1  # the transient WorkflowTaskScheduled is sent, not stored
        stored: list[tuple[int, bytes]] = []
        if first <= last:
            for event_id, raw in iter_events(self.ctx.get, task["run_id"], first):
                stored.append((event_id, raw))
                if event_id >= last:
                    break
        with_items = self.cfg.encode_with_items
        if with_items is not None:
            # The task's history is the events' stored bytes, joined (no decode, no second encode).
            items = [raw for _, raw in stored]
            if transient is not None:
                items.append(self.cfg.encode(_EVENT, transient))
            self.ctx.emit(topic, self.key, with_items("kronicle.workflow.WorkflowTask", task, "history", items))
            return
        # Events of this command are used as they are; only older ones are decoded.
        fresh = {e["event_id"]: e for e in self.events.get(task["run_id"], [])}
        history = [fresh.get(event_id) or self.cfg.decode(raw)[1] for event_id, raw in stored]
        if transient is not None:
            history.append(transient)
        value = self.cfg.encode("kronicle.workflow.WorkflowTask", {**task, "history": history})
        self.ctx.emit(topic, self.key, value)

    # -- timers and records -----------------------------------------------------

    def timer_id(self, run_id: str, kind: str, arg: str) -> bytes:
        """The durable-timer id of one of a run's timers."""
        return f"wf|{run_id}|{kind}|{arg}".encode()

    def timer(self, run: Run, kind: str, arg: str, due_ms: int, **fields: Any) -> None:
        """Arm (or re-arm) a durable timer of the run.

        The run remembers the due time of each armed timer (``timer_due``), so the
        shell needs no timer-id index to replace or cancel it (one state write, not two).
        """
        timer_id = self.timer_id(run["run_id"], kind, arg)
        dues = run.setdefault("timer_due", {})
        previous = dues.get(f"{kind}|{arg}")
        dues[f"{kind}|{arg}"] = due_ms
        payload = dumps({"run_id": run["run_id"], "kind": kind, "arg": arg, **fields, "due": due_ms})
        self.ops.append(lambda: self.ctx.set_timer(timer_id, due_ms, self.key, payload, previous_due_ms=previous))

    def cancel_timer(self, run: Run, kind: str, arg: str = "") -> None:
        """Disarm a durable timer of the run (a no-op if it is not armed)."""
        timer_id = self.timer_id(run["run_id"], kind, arg)
        due = run.get("timer_due", {}).pop(f"{kind}|{arg}", None)
        if due is None:
            # Not armed, or armed before runs remembered due times: ask the shell's index.
            self.ops.append(lambda: self.ctx.cancel_timer(timer_id))
        else:
            self.ops.append(lambda: self.ctx.clear_timer(timer_id, due))

    def timer_fired(self, run: Run, fields: dict[str, Any]) -> None:
        """Forget the due time of a timer that fired (``fields`` is its payload), unless it was re-armed since."""
        dues = run.get("timer_due")
        name = f"{fields['kind']}|{fields['arg']}"
        if dues and "due" in fields and dues.get(name) == fields["due"]:
            del dues[name]

    def emit(self, topic: str, schema: str, value: dict[str, Any], key: bytes | None = b"") -> None:
        """Produce a record at commit (``key`` defaults to the workflow id)."""
        record_key = self.key if key == b"" else key
        self.ops.append(lambda: self.ctx.emit(topic, record_key, self.cfg.encode(schema, value)))

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        """Write a state value at commit."""
        self.ops.append(lambda: self.ctx.put(cf, key, value))

    def delete(self, cf: str, key: bytes) -> None:
        """Delete a state value at commit."""
        self.ops.append(lambda: self.ctx.delete(cf, key))

    def visibility(self, run: Run) -> None:
        """One record on the visibility topic for the run's current state."""
        value = {
            "workflow_id": run["workflow_id"],
            "run_id": run["run_id"],
            "workflow_type": run["workflow_type"],
            "task_queue": run["task_queue"],
            "status": run["status"],
            "start_time_ms": run["start_time"],
            "execution_time_ms": run["execution_time"],
            "close_time_ms": run["close_time"],
            "history_length": run["next_event_id"] - 1,
            "first_run_id": run["first_run_id"],
            "memo": run["memo"],
            "search_attributes": run["search_attributes"],
        }
        key = (run["workflow_id"] + run["run_id"]).encode()
        self.emit(self.cfg.topics.visibility, "kronicle.workflow.VisibilityRecord", value, key=key)

    # -- closing ----------------------------------------------------------------

    def close(self, run: Run, status: str, event_type: str, attrs: dict[str, Any], *, final: bool = True) -> None:
        """Write the buffered events, the run's closing event; disarm its timers; publish its visibility record."""
        self.flush_buffer(run)
        self.add_event(run, event_type, attrs)
        run["status"] = status
        if self.cfg.closed is not None:
            self.cfg.closed.add(self.key)
        run["close_time"] = self.now
        run["wft"] = None
        run["wft_backoff"] = False
        for kind in ("wft", "wft_backoff", "run_timeout", "exec_timeout"):
            self.cancel_timer(run, kind)
        for timer_name in run["timers"]:
            self.cancel_timer(run, "timer", timer_name)
        for sid in run["activities"]:
            for kind in ACTIVITY_TIMER_KINDS:
                self.cancel_timer(run, kind, sid)
        run["timers"] = {}
        run["activities"] = {}
        self._apply_parent_close_policy(run)
        for update_id in list(run["updates"]):
            failure = {"message": f"workflow closed ({status}) before the update completed", "source": "Kronicle"}
            self.update_result(run, update_id, "ABORTED", failure=failure)
        run["updates"] = {}
        if run["parent"] is not None and final and status != "CONTINUED_AS_NEW":
            self.notify_parent(
                run,
                status,
                result=attrs.get("result") or [],
                failure=attrs.get("failure"),
                details=attrs.get("details") or [],
                retry_state=attrs.get("retry_state") or "",
            )
        self.visibility(run)
        self.timer(run, "retention", "", self.now + self.cfg.options.retention_ms)

    def _apply_parent_close_policy(self, run: Run) -> None:
        """Terminate or cancel the children that are still open, as their policy says."""
        for child in run["children"].values():
            if child["closing"]:
                continue
            value = {
                "workflow_id": child["workflow_id"],
                "run_id": child["run_id"],
                "identity": f"parent {run['workflow_id']}",
            }
            if child["parent_close_policy"] == "TERMINATE":
                schema, value = "TerminateWorkflow", {**value, "reason": "by parent close policy"}
            elif child["parent_close_policy"] == "REQUEST_CANCEL":
                schema, value = "RequestCancelWorkflow", {**value, "reason": "by parent close policy"}
            else:
                continue
            self.emit(self.cfg.topics.commands, "kronicle.workflow." + schema, value, key=child["workflow_id"].encode())
        run["children"] = {}

    def notify_parent(self, run: Run, outcome: str, **fields: Any) -> None:
        """Tell the parent's partition that this child run started, failed to start, or closed."""
        parent = run["parent"]
        value = {
            "workflow_id": parent["workflow_id"],
            "run_id": parent["run_id"],
            "initiated_event_id": parent["initiated_event_id"],
            "child_workflow_id": run["workflow_id"],
            "child_run_id": run["run_id"],
            "child_workflow_type": run["workflow_type"],
            "outcome": outcome,
            **fields,
        }
        key = parent["workflow_id"].encode()
        self.emit(self.cfg.topics.commands, "kronicle.workflow.ChildWorkflowResult", value, key=key)

    def purge(self, run: Run) -> None:
        """Remove a closed run past retention: its state, its stored events, and the current pointer to it."""
        run_id = run["run_id"]
        self.delete(CF_RUNS, run_id.encode())
        # One delete per stored chunk (per event for runs stored before chunks): the chunks
        # cover the run's events without gaps, so each one names the next one's key.
        event_id = 1
        while event_id < run["next_event_id"]:
            raw = self.ctx.get(CF_EVENTS, event_key(run_id, event_id))
            if raw is None:
                event_id += 1
                continue
            self.delete(CF_EVENTS, event_key(run_id, event_id))
            event_id += len(chunk_events(raw))
        if self.current_run_id == run_id:
            self.delete(CF_CURRENT, self.key)
        self.runs.pop(run_id, None)

    # -- commit -------------------------------------------------------------------

    # -- queries --------------------------------------------------------------

    def dispatch_query(self, run: Run, query: dict[str, Any]) -> None:
        """Send a query to the run's task queue, answered from its history as it stands now."""
        task = {
            "workflow_id": run["workflow_id"],
            "run_id": run["run_id"],
            "workflow_type": run["workflow_type"],
            "task_queue": run["task_queue"],
            **query,
            "history_length": run["next_event_id"] - 1,
            "closed": run["status"] != "RUNNING",
        }
        self.emit(self.cfg.topics.workflow_tasks(run["task_queue"]), "kronicle.workflow.QueryTask", task)

    def release_queries(self, run: Run) -> None:
        """Dispatch the queries that waited for the run's workflow task, once no task is outstanding."""
        if run.get("queries") and (run["status"] != "RUNNING" or run["wft"] is None):
            for query in run.pop("queries"):
                self.dispatch_query(run, query)

    def commit(self) -> None:
        """Apply everything staged to the context: run states, events, then the deferred operations."""
        for run in self.runs.values():
            if run is not None:
                self.release_queries(run)
        for run_id, events in self.events.items():
            if events and (run := self.runs.get(run_id)) is not None:
                # Where the run's last chunk starts: the closing event (the result) and the events
                # of the latest command are read with one get of a key that exists.
                run["last_chunk"] = last_chunk_start(events)
        for run_id, run in self.runs.items():
            if run is not None and (encoded := dumps(run)) != self._raw.get(run_id):
                self.ctx.put(CF_RUNS, run_id.encode(), encoded)
        if self._current_dirty and self._current is not None:
            self.ctx.put(CF_CURRENT, self.key, self._current.encode())
        encode = self.cfg.encode
        for run_id, events in self.events.items():
            if not events:
                continue
            stored = [encode(_EVENT, event) for event in events]
            # One stored value (and changelog record) per chunk of events, not per event.
            for index, chunk in event_chunks(stored):
                self.ctx.put(CF_EVENTS, event_key(run_id, events[index]["event_id"]), chunk)
            batch = {"workflow_id": self.workflow_id, "run_id": run_id}
            with_items = self.cfg.encode_with_items
            # The batch joins the events' stored bytes: each event is encoded once.
            value = (
                with_items(_BATCH, batch, "events", stored)
                if with_items is not None
                else encode(_BATCH, {**batch, "events": events})
            )
            self.ctx.emit(self.cfg.topics.history, self.key, value)
        for op in self.ops:
            op()


_EVENT = "kronicle.workflow.HistoryEvent"
_BATCH = "kronicle.workflow.HistoryEventBatch"
