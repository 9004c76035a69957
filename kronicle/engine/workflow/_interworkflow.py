"""Answers from other workflows' partitions: child workflow results and external command results.

A mixin of :class:`~kronicle.engine.workflow.WorkflowHandler`. Each answer names
the run and the initiating event it is for; one that no longer matches (the
run closed, a duplicate delivery) is ignored and counted.
"""

from __future__ import annotations

import collections

from kronicle.engine.handler import CommandRecord
from kronicle.engine.workflow._tx import Tx

__all__ = ["InterWorkflowResults"]


class InterWorkflowResults:
    """Applies ChildWorkflowResult and ExternalCommandResult commands."""

    stats: collections.Counter[str]

    def _on_child_workflow_result(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        run = tx.load(v["run_id"])
        child = run["children"].get(str(v["initiated_event_id"])) if run and run["status"] == "RUNNING" else None
        if run is None or child is None or child["workflow_id"] != v["child_workflow_id"]:
            self.stats["stale_child_result"] += 1
            return
        outcome = v["outcome"]
        ref = {
            "workflow_id": child["workflow_id"],
            "run_id": v["child_run_id"],
            "workflow_type": child["workflow_type"],
            "initiated_event_id": v["initiated_event_id"],
        }
        if outcome == "STARTED":
            if child["started"] or child["closing"]:
                self.stats["stale_child_result"] += 1
                return
            child["started"] = True
            child["run_id"] = v["child_run_id"]
            tx.append(run, "ChildWorkflowExecutionStarted", ref)
        elif child["closing"] or (outcome == "START_FAILED" and child["started"]):
            self.stats["stale_child_result"] += 1
            return
        elif outcome == "START_FAILED":
            child["closing"] = True
            del ref["run_id"]
            tx.append(run, "StartChildWorkflowExecutionFailed", {**ref, "cause": v.get("cause") or ""})
        else:
            child["closing"] = True
            event_type, extra = {
                "COMPLETED": ("ChildWorkflowExecutionCompleted", {"result": v.get("result") or []}),
                "FAILED": (
                    "ChildWorkflowExecutionFailed",
                    {"failure": v.get("failure") or {}, "retry_state": v.get("retry_state") or ""},
                ),
                "CANCELED": ("ChildWorkflowExecutionCanceled", {"details": v.get("details") or []}),
                "TIMED_OUT": ("ChildWorkflowExecutionTimedOut", {"retry_state": v.get("retry_state") or ""}),
                "TERMINATED": ("ChildWorkflowExecutionTerminated", {}),
            }[outcome]
            tx.append(run, event_type, {**ref, **extra, "started_event_id": -1})
        tx.ensure_workflow_task(run)

    def _on_external_command_result(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        run = tx.load(v["run_id"])
        key = str(v["initiated_event_id"])
        external = run["externals"].get(key) if run and run["status"] == "RUNNING" else None
        if run is None or external is None or external["workflow_id"] != v["target_workflow_id"]:
            self.stats["stale_external_result"] += 1
            return
        del run["externals"][key]
        ref = {"workflow_id": external["workflow_id"], "initiated_event_id": v["initiated_event_id"]}
        if v["ok"]:
            event_type = (
                "ExternalWorkflowExecutionSignaled"
                if external["kind"] == "signal"
                else "ExternalWorkflowExecutionCancelRequested"
            )
            tx.append(run, event_type, {**ref, "run_id": v.get("target_run_id") or ""})
        else:
            event_type = (
                "SignalExternalWorkflowExecutionFailed"
                if external["kind"] == "signal"
                else "RequestCancelExternalWorkflowExecutionFailed"
            )
            attrs = {
                **ref,
                "run_id": external["run_id"],
                "cause": v.get("cause") or "",
                "workflow_task_completed_event_id": external["workflow_task_completed_event_id"],
            }
            tx.append(run, event_type, attrs)
        tx.ensure_workflow_task(run)
