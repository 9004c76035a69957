"""Results of activity attempts from workers (completed, failed, heartbeat, cancelled) and activity timers.

A mixin of :class:`~kronicle.engine.workflow.WorkflowHandler`. A result must name
the current, dispatched attempt of an activity of an open run; anything else
(a duplicate, a result that lost a race with a timeout) is ignored and counted.
A result with ``scheduled_event_id`` 0 (from an eager attempt, whose worker does
not know the id yet) names the activity by ``activity_id`` instead.
Worker data over the payload limit never reaches history: an oversize result,
failure or heartbeat fails the activity for good, as Temporal does.
"""

from __future__ import annotations

import collections
from typing import Any

from kronicle.engine.handler import CommandRecord
from kronicle.engine.workflow import _activities as acts
from kronicle.engine.workflow._state import payload_size
from kronicle.engine.workflow._tx import Config, Run, Tx

__all__ = ["ActivityResults"]


class ActivityResults:
    """Applies CompleteActivityTask, FailActivityTask, HeartbeatActivityTask, ReportActivityTaskCanceled
    and the activity timers."""

    _cfg: Config
    stats: collections.Counter[str]

    def _current_attempt(self, tx: Tx, v: dict[str, Any]) -> tuple[Run, dict[str, Any]] | None:
        """The run and activity whose current, dispatched attempt ``v`` names; None if stale."""
        run = tx.load(v.get("run_id") or "")
        if run is None or run["status"] != "RUNNING":
            return None
        sid = v["scheduled_event_id"]
        act = run["activities"].get(str(sid)) if sid else acts.find_activity(run, v.get("activity_id") or "")
        if act is None or act["attempt"] != v["attempt"] or act["state"] != "DISPATCHED":
            return None
        return run, act

    @staticmethod
    def _note_start(act: dict[str, Any], v: dict[str, Any]) -> None:
        if v.get("started_time_ms"):
            act["worker_started_time"] = int(v["started_time_ms"])

    def _on_complete_activity_task(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        found = self._current_attempt(tx, v)
        if found is None:
            self.stats["stale_activity_completion"] += 1
            return
        run, act = found
        started = int(v.get("started_time_ms") or 0)
        self._complete_attempt(tx, run, act, v.get("result") or [], started, v.get("identity") or "")

    def _complete_attempt(
        self, tx: Tx, run: Run, act: dict[str, Any], result: list[bytes], started_time_ms: int, identity: str
    ) -> None:
        """The current attempt of ``act`` succeeded with ``result`` (checked against the payload limit)."""
        if started_time_ms:
            act["worker_started_time"] = started_time_ms
        limit = self._cfg.options.max_payload_bytes
        if (size := payload_size(result)) > limit:
            # Temporal fails the activity (for good) rather than write an oversize result.
            self.stats["oversize_worker_result"] += 1
            failure = acts.oversize_failure("the activity result", size, limit)
            acts.fail_attempt(tx, run, act, failure, "ActivityTaskFailed", retryable=False, identity=identity)
            return
        attrs = {"result": result, "identity": identity}
        acts.close_activity(tx, run, act, "ActivityTaskCompleted", attrs, identity=identity)

    def _on_fail_activity_task(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        found = self._current_attempt(tx, v)
        if found is None:
            self.stats["stale_activity_failure"] += 1
            return
        run, act = found
        self._note_start(act, v)
        limit = self._cfg.options.max_payload_bytes
        failure = dict(v["failure"])
        identity = v.get("identity") or ""
        if (size := payload_size(failure) + payload_size(v.get("last_heartbeat_details"))) > limit:
            self.stats["oversize_worker_result"] += 1
            failure = acts.oversize_failure("the activity failure", size, limit, failure.get("message") or "")
            acts.fail_attempt(tx, run, act, failure, "ActivityTaskFailed", retryable=False, identity=identity)
            return
        if v.get("last_heartbeat_details"):
            act["heartbeat_details"] = v["last_heartbeat_details"]
        acts.fail_attempt(tx, run, act, failure, "ActivityTaskFailed", identity=identity)

    def _on_heartbeat_activity_task(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        reply_to = v.get("reply_to")
        found = self._current_attempt(tx, v)
        if found is None:
            self.stats["stale_activity_heartbeat"] += 1
            if reply_to:
                acts.reply_control(tx, reply_to, v, cancel_requested=False, not_found=True)
            return
        run, act = found
        # The answer names the attempt by its scheduled event id, also when the heartbeat named the activity id.
        ref = {**v, "scheduled_event_id": act["scheduled_event_id"]}
        self._note_start(act, v)
        limit = self._cfg.options.max_payload_bytes
        if (size := payload_size(v.get("details"))) > limit:
            self.stats["oversize_worker_result"] += 1
            failure = acts.oversize_failure("the heartbeat details", size, limit)
            identity = v.get("identity") or ""
            acts.fail_attempt(tx, run, act, failure, "ActivityTaskFailed", retryable=False, identity=identity)
            if reply_to:
                acts.reply_control(tx, reply_to, ref, cancel_requested=False, not_found=True)
            return
        sid = str(act["scheduled_event_id"])
        act["heartbeat_details"] = v.get("details") or []
        act["last_heartbeat_time"] = tx.now
        if reply_to:
            act["reply_to"] = reply_to
        tx.cancel_timer(run, "act_s2s", sid)
        if act["hb"]:
            tx.timer(run, "act_hb", sid, tx.now + act["hb"], attempt=act["attempt"])
        if act["cancel_requested_event_id"] and reply_to:
            acts.reply_control(tx, reply_to, ref, cancel_requested=True, not_found=False)

    def _on_report_activity_task_canceled(self, tx: Tx, command: CommandRecord) -> None:
        v = command.value
        found = self._current_attempt(tx, v)
        if found is None or not found[1]["cancel_requested_event_id"]:
            self.stats["stale_activity_cancellation"] += 1
            return
        run, act = found
        self._note_start(act, v)
        identity = v.get("identity") or ""
        details = v.get("details") or []
        if payload_size(details) > self._cfg.options.max_payload_bytes:
            self.stats["oversize_worker_result"] += 1
            details = []  # the cancellation stands; its details are dropped
        attrs = {
            "details": details,
            "latest_cancel_requested_event_id": act["cancel_requested_event_id"],
            "identity": identity,
        }
        acts.close_activity(tx, run, act, "ActivityTaskCanceled", attrs, identity=identity)

    def _activity_for_timer(self, run: Run, f: dict[str, Any], state: str | None) -> dict[str, Any] | None:
        act: dict[str, Any] | None = run["activities"].get(f["arg"])
        if act is None or (state is not None and (act["attempt"] != f["attempt"] or act["state"] != state)):
            self.stats["stale_timer"] += 1
            return None
        return act

    def _timer_act_retry(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        if (act := self._activity_for_timer(run, f, "BACKOFF")) is not None:
            acts.dispatch_attempt(tx, run, act)

    def _timer_act_stc(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        if (act := self._activity_for_timer(run, f, "DISPATCHED")) is not None:
            acts.timeout_attempt(tx, run, act, "START_TO_CLOSE")

    def _timer_act_hb(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        if (act := self._activity_for_timer(run, f, "DISPATCHED")) is not None:
            acts.timeout_attempt(tx, run, act, "HEARTBEAT")

    def _timer_act_s2s(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        if (act := self._activity_for_timer(run, f, "DISPATCHED")) is not None:
            acts.timeout_attempt(tx, run, act, "SCHEDULE_TO_START")

    def _timer_act_s2c(self, tx: Tx, run: Run, f: dict[str, Any]) -> None:
        if (act := self._activity_for_timer(run, f, None)) is not None:
            acts.timeout_attempt(tx, run, act, "SCHEDULE_TO_CLOSE")
