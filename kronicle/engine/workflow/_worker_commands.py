"""Worker commands inside a workflow-task completion, and starting a run (which continue-as-new also does).

A mixin of :class:`~kronicle.engine.workflow.WorkflowHandler`: one ``_cmd_<CommandType>``
method per command, in Temporal's names. Each writes its events at once (the
workflow code produced them, so the worker has seen them) and raises
:class:`BadCommand` for a command that cannot be applied; the handler then rolls
the whole completion back and fails the workflow task with the command's cause.
"""

from __future__ import annotations

import collections
from typing import Any

from kronicle.engine.workflow import _activities as acts
from kronicle.engine.workflow._activities import BadCommand
from kronicle.engine.workflow._cron import InvalidCronSchedule, next_cron_time_ms, validate_cron_schedule
from kronicle.engine.workflow._events import read_event
from kronicle.engine.workflow._state import (
    attributes_field,
    continued_run_id,
    payload_size,
    start_run_id,
)
from kronicle.engine.workflow._tx import Config, Run, Tx

__all__ = ["MAX_REJECTED_UPDATES", "WorkerCommands", "forget_rejection", "remember_rejection"]

MAX_REJECTED_UPDATES = 20
"""Most rejected updates a run remembers (the latest), so a poll can answer the rejection."""
_MAX_REJECTION_BYTES = 4096
"""A remembered rejection's failure larger than this keeps its message and stack trace cut short."""


class WorkerCommands:
    """The run-starting and worker-command half of the workflow handler."""

    _cfg: Config
    stats: collections.Counter[str]

    def _start_run(
        self,
        tx: Tx,
        *,
        run_id: str,
        workflow_type: str,
        task_queue: str,
        input_: list[bytes],
        run_timeout_ms: int,
        task_timeout_ms: int,
        expiration_ms: int,
        execution_timeout_ms: int,
        delay_ms: int,
        memo: dict[str, bytes],
        search_attributes: dict[str, bytes],
        header: dict[str, bytes],
        identity: str = "",
        request_id: str = "",
        first_run_id: str = "",
        continued_from: str = "",
        initiator: str = "",
        signal: dict[str, Any] | None = None,
        parent: dict[str, Any] | None = None,
        retry_policy: dict[str, Any] | None = None,
        attempt: int = 1,
        continued_failure: dict[str, Any] | None = None,
        cron_schedule: str = "",
        last_completion_result: list[bytes] | None = None,
    ) -> Run:
        opts = self._cfg.options
        task_timeout = min(task_timeout_ms or opts.default_workflow_task_timeout_ms, opts.max_workflow_task_timeout_ms)
        run: Run = {
            "workflow_id": tx.workflow_id,
            "run_id": run_id,
            "first_run_id": first_run_id or run_id,
            "workflow_type": workflow_type,
            "task_queue": task_queue,
            "status": "RUNNING",
            "next_event_id": 1,
            "start_time": tx.now,
            "execution_time": tx.now + delay_ms,
            "close_time": None,
            "run_timeout_ms": run_timeout_ms,
            "task_timeout_ms": task_timeout,
            "execution_timeout_ms": execution_timeout_ms,
            "expiration_ms": expiration_ms,
            "memo": memo,
            "search_attributes": search_attributes,
            "wft": None,
            "wft_attempt": 1,
            "wft_backoff": False,
            "wft_first_event_id": 1,
            "buffer": [],
            "activities": {},
            "timers": {},
            "cancel_requested": False,
            "signal_count": 0,
            "parent": parent,
            "children": {},
            "externals": {},
            "updates": {},
            "completed_updates": {},
            "retry_policy": retry_policy,
            "attempt": attempt,
            "cron_schedule": cron_schedule,
        }
        tx.add_run(run)
        tx.add_event(
            run,
            "WorkflowExecutionStarted",
            {
                "workflow_type": workflow_type,
                "task_queue": task_queue,
                "input": input_,
                "workflow_execution_timeout_ms": execution_timeout_ms,
                "workflow_run_timeout_ms": run_timeout_ms,
                "workflow_task_timeout_ms": task_timeout,
                "continued_execution_run_id": continued_from,
                "initiator": initiator,
                "original_execution_run_id": run_id,
                "first_execution_run_id": run["first_run_id"],
                "identity": identity,
                "request_id": request_id,
                "attempt": attempt,
                "continued_failure": continued_failure,
                "workflow_execution_expiration_time_ms": expiration_ms,
                "first_workflow_task_backoff_ms": delay_ms,
                "memo": memo,
                "search_attributes": search_attributes,
                "header": header,
                "parent_workflow_id": parent["workflow_id"] if parent else "",
                "parent_run_id": parent["run_id"] if parent else "",
                "parent_initiated_event_id": parent["initiated_event_id"] if parent else 0,
                "cron_schedule": cron_schedule,
                "last_completion_result": last_completion_result or [],
            },
        )
        if signal is not None:
            run["signal_count"] += 1
            tx.add_event(run, "WorkflowExecutionSignaled", signal)
        if run_timeout_ms:
            # The run timeout counts from the first workflow task, after any delay or backoff.
            tx.timer(run, "run_timeout", "", tx.now + delay_ms + run_timeout_ms)
        if expiration_ms:
            tx.timer(run, "exec_timeout", "", expiration_ms)
        tx.visibility(run)
        if delay_ms:
            run["wft_backoff"] = True
            tx.timer(run, "wft_backoff", "", tx.now + delay_ms)
        else:
            tx.schedule_workflow_task(run)
        return run

    # -- worker commands inside a completion ---------------------------------------------

    def _cmd_ScheduleActivityTask(self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str) -> None:
        limit = self._cfg.options.max_pending_activities
        if len(run["activities"]) >= limit:
            raise BadCommand(
                "PENDING_ACTIVITIES_LIMIT_EXCEEDED", f"{limit} activities are pending; wait for some to finish"
            )
        acts.schedule_activity(tx, run, a, completed)

    def _cmd_RequestCancelActivityTask(
        self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str
    ) -> None:
        act = run["activities"].get(str(a["scheduled_event_id"]))
        if act is None:
            # Already closed; its closing event may be buffered behind this task. Nothing to cancel.
            self.stats["cancel_of_closed_activity"] += 1
            return
        if act["cancel_requested_event_id"]:
            return
        requested = tx.add_event(
            run,
            "ActivityTaskCancelRequested",
            {"scheduled_event_id": act["scheduled_event_id"], "workflow_task_completed_event_id": completed},
        )
        act["cancel_requested_event_id"] = requested
        if act["state"] == "BACKOFF":
            # Between attempts nothing runs, so the cancellation completes at once.
            acts.close_activity(
                tx,
                run,
                act,
                "ActivityTaskCanceled",
                {"details": [], "latest_cancel_requested_event_id": requested, "identity": identity},
                started=False,
            )
        elif act["reply_to"]:
            ref = {"workflow_id": run["workflow_id"], "run_id": run["run_id"], **act}
            acts.reply_control(tx, act["reply_to"], ref, cancel_requested=True, not_found=False)

    def _cmd_StartTimer(self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str) -> None:
        timer_id, duration = a.get("timer_id") or "", int(a.get("start_to_fire_timeout_ms") or 0)
        if not timer_id or duration <= 0:
            raise BadCommand("BAD_START_TIMER_ATTRIBUTES", "timer_id and a positive start_to_fire_timeout are required")
        if timer_id in run["timers"]:
            raise BadCommand("START_TIMER_DUPLICATE_ID", f"timer {timer_id!r} is already pending")
        started = tx.add_event(
            run,
            "TimerStarted",
            {"timer_id": timer_id, "start_to_fire_timeout_ms": duration, "workflow_task_completed_event_id": completed},
        )
        run["timers"][timer_id] = started
        tx.timer(run, "timer", timer_id, tx.now + duration, started_event_id=started)

    def _cmd_CancelTimer(self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str) -> None:
        timer_id = a.get("timer_id") or ""
        started = run["timers"].pop(timer_id, None)
        if started is None:
            # Fired already (its TimerFired may be buffered behind this task), or never started.
            self.stats["cancel_of_unknown_timer"] += 1
            return
        tx.cancel_timer(run, "timer", timer_id)
        tx.add_event(
            run,
            "TimerCanceled",
            {
                "timer_id": timer_id,
                "started_event_id": started,
                "workflow_task_completed_event_id": completed,
                "identity": identity,
            },
        )

    def _cmd_CompleteWorkflowExecution(
        self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str
    ) -> None:
        attrs = {"result": a.get("result") or [], "workflow_task_completed_event_id": completed}
        if not self._cron_continue(tx, run, "COMPLETED", "WorkflowExecutionCompleted", attrs, failure=None):
            tx.close(run, "COMPLETED", "WorkflowExecutionCompleted", attrs)

    def _cmd_FailWorkflowExecution(self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str) -> None:
        if a.get("failure") is None:
            raise BadCommand("BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES", "failure is required")
        attrs = {"failure": a["failure"], "workflow_task_completed_event_id": completed}
        self.close_or_retry(tx, run, "FAILED", "WorkflowExecutionFailed", attrs, failure=a["failure"])

    def close_or_retry(
        self, tx: Tx, run: Run, status: str, event_type: str, attrs: dict[str, Any], *, failure: dict[str, Any] | None
    ) -> None:
        """Close a failed or timed-out run; if its retry policy allows, start the next attempt as a new run."""
        policy = run["retry_policy"]
        if policy is None:
            state = "RETRY_POLICY_NOT_SET" if status == "FAILED" else "TIMEOUT"
            if not self._cron_continue(tx, run, status, event_type, {**attrs, "retry_state": state}, failure):
                tx.close(run, status, event_type, {**attrs, "retry_state": state})
            return
        delay, state = acts.retry_delay(
            {"retry_policy": policy, "attempt": run["attempt"], "s2c": 0, "scheduled_time": 0}, failure, tx.now
        )
        if delay is not None and run["expiration_ms"] and tx.now + delay >= run["expiration_ms"]:
            delay, state = None, "TIMEOUT"
        if delay is None:
            # Retries are used up; a cron schedule still starts its next run (as in Temporal).
            if not self._cron_continue(tx, run, status, event_type, {**attrs, "retry_state": state}, failure):
                tx.close(run, status, event_type, {**attrs, "retry_state": state})
            return
        self._next_run(
            tx, run, status, event_type, {**attrs, "retry_state": state}, "RETRY_POLICY", delay, failure=failure
        )

    def _cron_continue(
        self, tx: Tx, run: Run, status: str, event_type: str, attrs: dict[str, Any], failure: dict[str, Any] | None
    ) -> bool:
        """Close a run of a cron workflow and start the next one at the schedule's next time.

        Returns False (and does nothing) if the run has no schedule or the next time
        falls after the execution timeout, which ends the chain.
        """
        cron = run.get("cron_schedule") or ""
        if not cron:
            return False
        next_ms = next_cron_time_ms(cron, tx.now)
        if run["expiration_ms"] and next_ms >= run["expiration_ms"]:
            return False
        self._next_run(tx, run, status, event_type, attrs, "CRON_SCHEDULE", next_ms - tx.now, failure=failure)
        return True

    def _next_run(
        self,
        tx: Tx,
        run: Run,
        status: str,
        event_type: str,
        attrs: dict[str, Any],
        initiator: str,
        delay: int,
        *,
        failure: dict[str, Any] | None,
    ) -> None:
        """Close ``run`` (not for good: its parent hears only from the last run) and start the next
        run of the chain with the original input, after ``delay``."""
        new_run_id = continued_run_id(run["run_id"])
        tx.close(run, status, event_type, {**attrs, "new_execution_run_id": new_run_id}, final=False)
        raw = read_event(tx.ctx.get, run["run_id"], 1)
        started = self._cfg.decode(raw)[1][attributes_field("WorkflowExecutionStarted")] if raw else {}
        retry = initiator == "RETRY_POLICY"
        # A cron run gets the last successful run's result (carried over failed runs, as in Temporal).
        last_result = attrs.get("result") if status == "COMPLETED" else started.get("last_completion_result")
        self._start_run(
            tx,
            run_id=new_run_id,
            workflow_type=run["workflow_type"],
            task_queue=run["task_queue"],
            input_=started.get("input") or [],
            run_timeout_ms=run["run_timeout_ms"],
            task_timeout_ms=run["task_timeout_ms"],
            expiration_ms=run["expiration_ms"],
            execution_timeout_ms=run["execution_timeout_ms"],
            delay_ms=delay,
            memo=run["memo"],
            search_attributes=run["search_attributes"],
            header=started.get("header") or {},
            first_run_id=run["first_run_id"],
            continued_from=run["run_id"],
            initiator=initiator,
            parent=run["parent"],
            retry_policy=run["retry_policy"],
            attempt=run["attempt"] + 1 if retry else 1,
            continued_failure=failure,
            cron_schedule=run.get("cron_schedule") or "",
            last_completion_result=last_result or [],
        )

    def _cmd_CancelWorkflowExecution(self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str) -> None:
        attrs = {"details": a.get("details") or [], "workflow_task_completed_event_id": completed}
        tx.close(run, "CANCELED", "WorkflowExecutionCanceled", attrs)

    def _cmd_ContinueAsNewWorkflowExecution(
        self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str
    ) -> None:
        new_run_id = continued_run_id(run["run_id"])
        workflow_type = a.get("workflow_type") or run["workflow_type"]
        task_queue = a.get("task_queue") or run["task_queue"]
        run_timeout = int(a.get("workflow_run_timeout_ms") or run["run_timeout_ms"])
        task_timeout = int(a.get("workflow_task_timeout_ms") or run["task_timeout_ms"])
        backoff = int(a.get("backoff_start_interval_ms") or 0)
        if min(run_timeout, task_timeout, backoff) < 0:
            raise BadCommand("BAD_CONTINUE_AS_NEW_ATTRIBUTES", "timeouts and backoff must not be negative")
        memo = a["memo"] if a.get("memo") is not None else run["memo"]
        search = a["search_attributes"] if a.get("search_attributes") is not None else run["search_attributes"]
        tx.close(
            run,
            "CONTINUED_AS_NEW",
            "WorkflowExecutionContinuedAsNew",
            {
                "new_execution_run_id": new_run_id,
                "workflow_type": workflow_type,
                "task_queue": task_queue,
                "input": a.get("input") or [],
                "workflow_run_timeout_ms": run_timeout,
                "workflow_task_timeout_ms": task_timeout,
                "workflow_task_completed_event_id": completed,
                "backoff_start_interval_ms": backoff,
                "initiator": "WORKFLOW",
                "header": a.get("header") or {},
                "memo": memo,
                "search_attributes": search,
            },
        )
        self._start_run(
            tx,
            run_id=new_run_id,
            workflow_type=workflow_type,
            task_queue=task_queue,
            input_=a.get("input") or [],
            run_timeout_ms=run_timeout,
            task_timeout_ms=task_timeout,
            expiration_ms=run["expiration_ms"],
            execution_timeout_ms=run["execution_timeout_ms"],
            delay_ms=backoff,
            memo=memo,
            search_attributes=search,
            header=a.get("header") or {},
            identity=identity,
            first_run_id=run["first_run_id"],
            continued_from=run["run_id"],
            initiator="WORKFLOW",
            parent=run["parent"],
            retry_policy=run["retry_policy"],
            cron_schedule=run.get("cron_schedule") or "",
        )

    def _cmd_RecordMarker(self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str) -> None:
        if not a.get("marker_name"):
            raise BadCommand("BAD_RECORD_MARKER_ATTRIBUTES", "marker_name is required")
        tx.add_event(
            run,
            "MarkerRecorded",
            {
                "marker_name": a["marker_name"],
                "details": a.get("details") or {},
                "workflow_task_completed_event_id": completed,
                "header": a.get("header") or {},
                "failure": a.get("failure"),
            },
        )

    def _cmd_UpsertWorkflowSearchAttributes(
        self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str
    ) -> None:
        search = a.get("search_attributes") or {}
        if not search:
            raise BadCommand("BAD_SEARCH_ATTRIBUTES", "no search attributes to upsert")
        run["search_attributes"] = {**run["search_attributes"], **search}
        tx.add_event(
            run,
            "UpsertWorkflowSearchAttributes",
            {"workflow_task_completed_event_id": completed, "search_attributes": search},
        )
        tx.visibility(run)

    def _cmd_StartChildWorkflowExecution(
        self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str
    ) -> None:
        bad = "BAD_START_CHILD_EXECUTION_ATTRIBUTES"
        workflow_id, workflow_type = a.get("workflow_id") or "", a.get("workflow_type") or ""
        if not workflow_id or not workflow_type:
            raise BadCommand(bad, "workflow_id and workflow_type are required to start a child")
        policy = a.get("parent_close_policy") or "TERMINATE"
        if policy not in ("TERMINATE", "ABANDON", "REQUEST_CANCEL"):
            raise BadCommand(bad, f"parent_close_policy {policy!r} is not TERMINATE, ABANDON or REQUEST_CANCEL")
        if any(c["workflow_id"] == workflow_id for c in run["children"].values()):
            raise BadCommand(bad, f"a child with workflow id {workflow_id!r} is already pending")
        limit = self._cfg.options.max_pending_children
        if len(run["children"]) >= limit:
            raise BadCommand("PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED", f"{limit} child workflows are pending")
        cron = (a.get("cron_schedule") or "").strip()
        if cron:
            try:
                validate_cron_schedule(cron)
            except InvalidCronSchedule as exc:
                raise BadCommand(bad, str(exc)) from exc
        task_queue = a.get("task_queue") or run["task_queue"]
        reuse = a.get("workflow_id_reuse_policy") or "ALLOW_DUPLICATE"
        timeouts = {
            "workflow_execution_timeout_ms": int(a.get("workflow_execution_timeout_ms") or 0),
            "workflow_run_timeout_ms": int(a.get("workflow_run_timeout_ms") or 0),
            "workflow_task_timeout_ms": int(a.get("workflow_task_timeout_ms") or 0),
        }
        initiated = tx.add_event(
            run,
            "StartChildWorkflowExecutionInitiated",
            {
                "workflow_id": workflow_id,
                "workflow_type": workflow_type,
                "task_queue": task_queue,
                "input": a.get("input") or [],
                **timeouts,
                "parent_close_policy": policy,
                "workflow_task_completed_event_id": completed,
                "workflow_id_reuse_policy": reuse,
                "header": a.get("header") or {},
                "memo": a.get("memo") or {},
                "search_attributes": a.get("search_attributes") or {},
                "cron_schedule": cron,
            },
        )
        # The child's run id follows from this request id, so the parent can address
        # the child (close policy) before the child's partition has answered.
        request_id = f"child\x00{run['run_id']}\x00{initiated}"
        run["children"][str(initiated)] = {
            "workflow_id": workflow_id,
            "workflow_type": workflow_type,
            "run_id": start_run_id(workflow_id, request_id),
            "parent_close_policy": policy,
            "started": False,
            "closing": False,
            "started_event_id": 0,
        }
        start = {
            "workflow_id": workflow_id,
            "workflow_type": workflow_type,
            "task_queue": task_queue,
            "input": a.get("input") or [],
            "request_id": request_id,
            "identity": f"parent {run['workflow_id']}",
            "id_reuse_policy": reuse,
            "execution_timeout_ms": timeouts["workflow_execution_timeout_ms"],
            "run_timeout_ms": timeouts["workflow_run_timeout_ms"],
            "task_timeout_ms": timeouts["workflow_task_timeout_ms"],
            "memo": a.get("memo") or {},
            "search_attributes": a.get("search_attributes") or {},
            "header": a.get("header") or {},
            "parent": {"workflow_id": run["workflow_id"], "run_id": run["run_id"], "initiated_event_id": initiated},
            "retry_policy": a.get("retry_policy"),
            "cron_schedule": cron,
        }
        tx.emit(tx.cfg.topics.commands, "kronicle.workflow.StartWorkflow", start, key=workflow_id.encode())

    def _external(self, run: Run, kind: str, a: dict[str, Any], initiated: int, completed: int) -> dict[str, Any]:
        """Remember a command sent to another workflow; returns the ``origin`` it carries."""
        run["externals"][str(initiated)] = {
            "kind": kind,
            "workflow_id": a["workflow_id"],
            "run_id": a.get("run_id") or "",
            "workflow_task_completed_event_id": completed,
        }
        return {"workflow_id": run["workflow_id"], "run_id": run["run_id"], "initiated_event_id": initiated}

    def _cmd_SignalExternalWorkflowExecution(
        self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str
    ) -> None:
        if not a.get("workflow_id") or not a.get("signal_name"):
            raise BadCommand("BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES", "workflow_id and signal_name are required")
        initiated = tx.add_event(
            run,
            "SignalExternalWorkflowExecutionInitiated",
            {
                "workflow_id": a["workflow_id"],
                "run_id": a.get("run_id") or "",
                "signal_name": a["signal_name"],
                "input": a.get("input") or [],
                "header": a.get("header") or {},
                "child_workflow_only": bool(a.get("child_workflow_only")),
                "workflow_task_completed_event_id": completed,
            },
        )
        origin = self._external(run, "signal", a, initiated, completed)
        signal = {
            "workflow_id": a["workflow_id"],
            "run_id": a.get("run_id") or "",
            "signal_name": a["signal_name"],
            "input": a.get("input") or [],
            "header": a.get("header") or {},
            # Deterministic, so a re-sent command is deduplicated by the target.
            "request_id": f"external\x00{run['run_id']}\x00{initiated}",
            "identity": f"workflow {run['workflow_id']}",
            "origin": origin,
        }
        key = a["workflow_id"].encode()
        tx.emit(tx.cfg.topics.commands, "kronicle.workflow.SignalWorkflow", signal, key=key)

    def _cmd_RequestCancelExternalWorkflowExecution(
        self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str
    ) -> None:
        if not a.get("workflow_id"):
            raise BadCommand("BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES", "workflow_id is required")
        initiated = tx.add_event(
            run,
            "RequestCancelExternalWorkflowExecutionInitiated",
            {
                "workflow_id": a["workflow_id"],
                "run_id": a.get("run_id") or "",
                "reason": a.get("reason") or "",
                "child_workflow_only": bool(a.get("child_workflow_only")),
                "workflow_task_completed_event_id": completed,
            },
        )
        origin = self._external(run, "cancel", a, initiated, completed)
        cancel = {
            "workflow_id": a["workflow_id"],
            "run_id": a.get("run_id") or "",
            "request_id": f"external\x00{run['run_id']}\x00{initiated}",
            "reason": a.get("reason") or "",
            "identity": f"workflow {run['workflow_id']}",
            "origin": origin,
        }
        key = a["workflow_id"].encode()
        tx.emit(tx.cfg.topics.commands, "kronicle.workflow.RequestCancelWorkflow", cancel, key=key)

    def _cmd_UpdateResponse(self, tx: Tx, run: Run, a: dict[str, Any], completed: int, identity: str) -> None:
        bad = "BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE"
        update_id, outcome = a.get("update_id") or "", a.get("outcome") or ""
        update = run["updates"].get(update_id)
        if update_id in run["completed_updates"] or (
            update is not None and (update["state"], outcome) == ("ACCEPTED", "ACCEPTED")
        ):
            # A repeated answer (the update is already completed, or already accepted): nothing to do,
            # and nothing the caller has not heard already. The rest of the completion applies.
            self.stats["duplicate_update_response"] += 1
            return
        expected = {"ACCEPTED": "DELIVERED", "REJECTED": "DELIVERED", "COMPLETED": "ACCEPTED"}
        if update is None or outcome not in expected or update["state"] != expected[outcome]:
            state = update["state"] if update else "unknown"
            raise BadCommand(bad, f"update {update_id!r} is {state}; it cannot be answered with {outcome!r}")
        if outcome == "REJECTED":
            # A rejected update leaves no trace in history; its caller hears of it, and the run
            # remembers the latest few rejections (bounded) so a poll can answer them too.
            tx.update_result(run, update_id, "REJECTED", failure=a.get("failure"))
            del run["updates"][update_id]
            remember_rejection(run, update_id, a.get("failure"))
        elif outcome == "ACCEPTED":
            update["state"] = "ACCEPTED"
            update["accepted_event_id"] = tx.add_event(
                run,
                "WorkflowExecutionUpdateAccepted",
                {
                    "update_id": update_id,
                    "name": update["name"],
                    "input": update["input"],
                    "header": update["header"],
                    "identity": update["identity"],
                    "workflow_task_completed_event_id": completed,
                },
            )
            tx.update_result(run, update_id, "ACCEPTED")
        else:
            event_id = tx.add_event(
                run,
                "WorkflowExecutionUpdateCompleted",
                {
                    "update_id": update_id,
                    "accepted_event_id": update["accepted_event_id"],
                    "result": a.get("result") or [],
                    "failure": a.get("failure"),
                },
            )
            tx.update_result(run, update_id, "COMPLETED", result=a.get("result") or [], failure=a.get("failure"))
            del run["updates"][update_id]
            run["completed_updates"][update_id] = event_id


def remember_rejection(run: Run, update_id: str, failure: dict[str, Any] | None) -> None:
    """Keep a rejected update's failure in the run's state, the latest :data:`MAX_REJECTED_UPDATES` of them.

    A list, oldest first (the state codec sorts dict keys, so a dict would lose the order).
    """
    if failure is not None and payload_size(failure) > _MAX_REJECTION_BYTES:
        failure = {
            **failure,
            "message": str(failure.get("message") or "")[:1000],
            "stack_trace": str(failure.get("stack_trace") or "")[:2000],
            "details": [],
            "last_heartbeat_details": [],
            "cause": None,
        }
    kept = [r for r in run.get("rejected_updates") or () if r["update_id"] != update_id]
    kept.append({"update_id": update_id, "failure": failure})
    run["rejected_updates"] = kept[-MAX_REJECTED_UPDATES:]


def forget_rejection(run: Run, update_id: str) -> None:
    """Drop a remembered rejection (the same update id was sent again)."""
    rejected = run.get("rejected_updates")
    if rejected:
        run["rejected_updates"] = [r for r in rejected if r["update_id"] != update_id]
