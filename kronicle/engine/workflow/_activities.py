"""Activities: scheduling, dispatch of attempts, retries with backoff, the four timeouts, cancellation.

A retry is not a history event. Each attempt is dispatched as an ActivityTask
record; when an attempt fails and the RetryPolicy allows another, the next one
is dispatched after a backoff timer. An activity scheduled with
``request_eager_execution`` has no ActivityTask for attempt 1: the worker that
completed the workflow task runs it (see ``docs/history.md``); its retries are
dispatched as usual. Only when the activity ends (completed,
failed for good, timed out, cancelled) are ActivityTaskStarted (with the last
attempt's number and the failure of the attempt before it) and the closing
event written, as Temporal does.
"""

from __future__ import annotations

from typing import Any

from kronicle.engine.workflow._tx import Run, Tx

__all__ = [
    "BadCommand",
    "close_activity",
    "dispatch_attempt",
    "fail_attempt",
    "find_activity",
    "normalize_retry_policy",
    "oversize_failure",
    "retry_delay",
    "schedule_activity",
    "timeout_attempt",
]

_ACT = "kronicle.workflow.ActivityTask"
_CONTROL = "kronicle.workflow.ActivityTaskControl"


class BadCommand(Exception):
    """A worker command that cannot be applied; the workflow task fails with ``cause``."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(f"{cause}: {message}")
        self.cause = cause
        self.message = message


def oversize_failure(what: str, size: int, limit: int, original: str = "") -> dict[str, Any]:
    """The non-retryable server failure that replaces a worker result over the payload limit (as Temporal does)."""
    message = (
        f"{what} is {size} bytes, over the payload limit of {limit} bytes; store large data elsewhere"
        " (a blob store) and pass a reference"
    )
    if original:
        message += f" (original message: {original[:200]})"
    return {
        "message": message,
        "source": "Kronicle",
        "failure_type": "server",
        "type": "PayloadSizeLimitExceeded",
        "non_retryable": True,
    }


def normalize_retry_policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    """Fill Temporal's defaults into a RetryPolicy datum and check it.

    Raises:
        BadCommand: the policy is inconsistent.
    """
    p = dict(policy or {})
    initial = int(p.get("initial_interval_ms") or 1000)
    coefficient = float(p.get("backoff_coefficient") or 2.0)
    maximum = int(p.get("maximum_interval_ms") or 100 * initial)
    attempts = int(p.get("maximum_attempts") or 0)
    if initial < 0 or coefficient < 1.0 or maximum < initial or attempts < 0:
        raise BadCommand(
            "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES",
            "retry policy needs initial_interval >= 0, backoff_coefficient >= 1, maximum_interval >= initial_interval"
            " and maximum_attempts >= 0",
        )
    return {
        "initial_interval_ms": initial,
        "backoff_coefficient": coefficient,
        "maximum_interval_ms": maximum,
        "maximum_attempts": attempts,
        "non_retryable_error_types": list(p.get("non_retryable_error_types") or []),
    }


def retry_delay(act: dict[str, Any], failure: dict[str, Any] | None, now: int) -> tuple[int | None, str]:
    """(backoff before the next attempt or None, Temporal's RetryState) after the current attempt failed."""
    policy = act["retry_policy"]
    if failure is not None and (
        failure.get("non_retryable") or (failure.get("type") or "") in policy["non_retryable_error_types"]
    ):
        return None, "NON_RETRYABLE_FAILURE"
    if policy["maximum_attempts"] and act["attempt"] >= policy["maximum_attempts"]:
        return None, "MAXIMUM_ATTEMPTS_REACHED"
    delay = float(policy["initial_interval_ms"])
    for _ in range(act["attempt"] - 1):
        delay *= policy["backoff_coefficient"]
        if delay >= policy["maximum_interval_ms"]:
            break
    backoff = int(min(delay, policy["maximum_interval_ms"]))
    if act["s2c"] and now + backoff >= act["scheduled_time"] + act["s2c"]:
        return None, "TIMEOUT"
    return backoff, "IN_PROGRESS"


def find_activity(run: Run, activity_id: str) -> dict[str, Any] | None:
    """The run's pending activity with ``activity_id`` (ids are unique among pending activities), or None."""
    if not activity_id:
        return None
    for act in run["activities"].values():
        if act["activity_id"] == activity_id:
            found: dict[str, Any] = act
            return found
    return None


def schedule_activity(tx: Tx, run: Run, attrs: dict[str, Any], completed_event_id: int) -> None:
    """Apply a ScheduleActivityTask command: ActivityTaskScheduled, then dispatch attempt 1.

    With ``request_eager_execution`` attempt 1 is started without an ActivityTask
    (the completing worker runs it): it is DISPATCHED with its start-to-close and
    heartbeat timeouts armed from now, and no schedule-to-start timeout.

    Raises:
        BadCommand: the attributes are invalid or the activity id is already pending.
    """
    bad = "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES"
    activity_id, activity_type = attrs.get("activity_id") or "", attrs.get("activity_type") or ""
    if not activity_id or not activity_type:
        raise BadCommand(bad, "activity_id and activity_type are required")
    if any(a["activity_id"] == activity_id for a in run["activities"].values()):
        raise BadCommand("SCHEDULE_ACTIVITY_DUPLICATE_ID", f"activity id {activity_id!r} is already pending")
    s2c = int(attrs.get("schedule_to_close_timeout_ms") or 0)
    s2s = int(attrs.get("schedule_to_start_timeout_ms") or 0)
    stc = int(attrs.get("start_to_close_timeout_ms") or 0)
    hb = int(attrs.get("heartbeat_timeout_ms") or 0)
    if min(s2c, s2s, stc, hb) < 0:
        raise BadCommand(bad, "timeouts must not be negative")
    if not s2c and not stc:
        raise BadCommand(bad, "set schedule_to_close_timeout or start_to_close_timeout")
    stc = stc or s2c
    if s2c and stc > s2c:
        stc = s2c
    if s2s and s2c and s2s >= s2c:
        s2s = 0  # never fires before schedule-to-close does
    policy = normalize_retry_policy(attrs.get("retry_policy"))
    task_queue = attrs.get("task_queue") or run["task_queue"]
    sid = tx.add_event(
        run,
        "ActivityTaskScheduled",
        {
            "activity_id": activity_id,
            "activity_type": activity_type,
            "task_queue": task_queue,
            "header": attrs.get("header") or {},
            "input": attrs.get("input") or [],
            "schedule_to_close_timeout_ms": s2c,
            "schedule_to_start_timeout_ms": s2s,
            "start_to_close_timeout_ms": stc,
            "heartbeat_timeout_ms": hb,
            "workflow_task_completed_event_id": completed_event_id,
            "retry_policy": policy,
        },
    )
    act: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_type": activity_type,
        "task_queue": task_queue,
        "input": attrs.get("input") or [],
        "header": attrs.get("header") or {},
        "scheduled_event_id": sid,
        "scheduled_time": tx.now,
        "s2c": s2c,
        "s2s": s2s,
        "stc": stc,
        "hb": hb,
        "retry_policy": policy,
        "attempt": 1,
        "state": "BACKOFF",
        "attempt_time": tx.now,
        "worker_started_time": 0,
        "last_failure": None,
        "heartbeat_details": [],
        "last_heartbeat_time": 0,
        "reply_to": None,
        "cancel_requested_event_id": 0,
    }
    run["activities"][str(sid)] = act
    if s2c:
        tx.timer(run, "act_s2c", str(sid), tx.now + s2c, attempt=0)
    if attrs.get("request_eager_execution"):
        act["eager"] = True
        dispatch_attempt(tx, run, act, eager=True)
    else:
        dispatch_attempt(tx, run, act)


def dispatch_attempt(tx: Tx, run: Run, act: dict[str, Any], *, eager: bool = False) -> None:
    """Send the current attempt to the activity task queue and arm its timeouts.

    The engine learns that an attempt started only from its first heartbeat or
    its end, so start-to-close and heartbeat timeouts run from dispatch (the
    queueing delay counts against them) and schedule-to-start is disarmed by
    the first heartbeat. An ``eager`` attempt is already running on the worker
    that asked for it: nothing is sent and there is no schedule-to-start timeout.
    """
    sid = str(act["scheduled_event_id"])
    act["state"] = "DISPATCHED"
    act["attempt_time"] = tx.now
    act["worker_started_time"] = 0
    act["reply_to"] = None
    attempt = act["attempt"]
    tx.timer(run, "act_stc", sid, tx.now + act["stc"], attempt=attempt)
    if act["s2s"] and not eager:
        tx.timer(run, "act_s2s", sid, tx.now + act["s2s"], attempt=attempt)
    if act["hb"]:
        tx.timer(run, "act_hb", sid, tx.now + act["hb"], attempt=attempt)
    if eager:
        return
    task = {
        "workflow_id": run["workflow_id"],
        "run_id": run["run_id"],
        "scheduled_event_id": act["scheduled_event_id"],
        "attempt": attempt,
        "workflow_type": run["workflow_type"],
        "activity_id": act["activity_id"],
        "activity_type": act["activity_type"],
        "task_queue": act["task_queue"],
        "input": act["input"],
        "header": act["header"],
        "scheduled_time_ms": act["scheduled_time"],
        "current_attempt_scheduled_time_ms": tx.now,
        "schedule_to_close_timeout_ms": act["s2c"],
        "schedule_to_start_timeout_ms": act["s2s"],
        "start_to_close_timeout_ms": act["stc"],
        "heartbeat_timeout_ms": act["hb"],
        "heartbeat_details": act["heartbeat_details"],
    }
    tx.emit(tx.cfg.topics.activity_tasks(act["task_queue"]), _ACT, task, key=None)


def _disarm_attempt(tx: Tx, run: Run, act: dict[str, Any]) -> None:
    sid = str(act["scheduled_event_id"])
    for kind in ("act_stc", "act_s2s", "act_hb", "act_retry"):
        tx.cancel_timer(run, kind, sid)


def close_activity(
    tx: Tx,
    run: Run,
    act: dict[str, Any],
    event_type: str,
    attrs: dict[str, Any],
    *,
    started: bool = True,
    identity: str = "",
    schedule: bool = True,
) -> None:
    """End the activity: ActivityTaskStarted (unless it never started) and the closing event.

    Then a workflow task is scheduled, unless ``schedule`` is false (a
    continuation step schedules its own, see ``_continuations.py``).
    """
    sid = str(act["scheduled_event_id"])
    _disarm_attempt(tx, run, act)
    tx.cancel_timer(run, "act_s2c", sid)
    del run["activities"][sid]
    if started:
        ran_attempt = act["attempt"] if act["state"] == "DISPATCHED" else act["attempt"] - 1
        last_failure = act["last_failure"] if act["state"] == "DISPATCHED" else act.get("previous_failure")
        start_time = act["worker_started_time"] or act["attempt_time"]
        tx.append(
            run,
            "ActivityTaskStarted",
            {
                "scheduled_event_id": act["scheduled_event_id"],
                "identity": identity,
                "attempt": max(ran_attempt, 1),
                "last_failure": last_failure,
            },
            min(max(start_time, act["attempt_time"]), tx.event_now),
        )
        attrs = {**attrs, "started_event_id": -1}
    tx.append(run, event_type, {"scheduled_event_id": act["scheduled_event_id"], **attrs})
    if schedule:
        tx.ensure_workflow_task(run)


def fail_attempt(
    tx: Tx,
    run: Run,
    act: dict[str, Any],
    failure: dict[str, Any],
    event_type: str,
    *,
    retryable: bool = True,
    identity: str = "",
) -> None:
    """The current attempt failed (``ActivityTaskFailed``) or timed out (``ActivityTaskTimedOut``): retry or end."""
    if act["cancel_requested_event_id"]:
        delay, state = None, "CANCEL_REQUESTED"
    elif not retryable:
        delay, state = None, "NON_RETRYABLE_FAILURE"
    else:
        delay, state = retry_delay(act, failure if event_type == "ActivityTaskFailed" else None, tx.now)
    if delay is None:
        attrs: dict[str, Any] = {"failure": {**failure, "retry_state": state}, "retry_state": state}
        if event_type == "ActivityTaskFailed":
            attrs["identity"] = identity
        close_activity(tx, run, act, event_type, attrs, identity=identity)
        return
    _disarm_attempt(tx, run, act)
    act["previous_failure"] = act["last_failure"]
    act["last_failure"] = failure
    act["attempt"] += 1
    act["state"] = "BACKOFF"
    tx.timer(run, "act_retry", str(act["scheduled_event_id"]), tx.now + delay, attempt=act["attempt"])


def timeout_attempt(tx: Tx, run: Run, act: dict[str, Any], timeout_type: str) -> None:
    """A timeout timer of the activity fired (already checked to be current)."""
    failure = {
        "message": f"activity {timeout_type} timeout",
        "source": "Kronicle",
        "failure_type": "timeout",
        "timeout_type": timeout_type,
        "last_heartbeat_details": act["heartbeat_details"],
        "activity_id": act["activity_id"],
        "activity_type": act["activity_type"],
        "scheduled_event_id": act["scheduled_event_id"],
        "cause": act["last_failure"] if timeout_type == "SCHEDULE_TO_CLOSE" else None,
    }
    if timeout_type in ("START_TO_CLOSE", "HEARTBEAT"):
        fail_attempt(tx, run, act, failure, "ActivityTaskTimedOut")
        return
    # Schedule-to-start and schedule-to-close end the activity for good.
    failure["retry_state"] = "TIMEOUT" if timeout_type == "SCHEDULE_TO_CLOSE" else "NON_RETRYABLE_FAILURE"
    started = timeout_type == "SCHEDULE_TO_CLOSE" and (act["state"] == "DISPATCHED" or act["attempt"] > 1)
    close_activity(
        tx,
        run,
        act,
        "ActivityTaskTimedOut",
        {"failure": failure, "retry_state": failure["retry_state"]},
        started=started,
    )


def reply_control(tx: Tx, topic: str, ref: dict[str, Any], *, cancel_requested: bool, not_found: bool) -> None:
    """Answer a heartbeat on the worker's reply topic.

    ``ref`` names the attempt: the heartbeat itself, or the activity it resolved
    to (so a heartbeat sent by activity id is answered with the attempt's
    scheduled event id).
    """
    value = {
        "workflow_id": ref["workflow_id"],
        "run_id": ref["run_id"],
        "scheduled_event_id": ref["scheduled_event_id"],
        "attempt": ref["attempt"],
        "cancel_requested": cancel_requested,
        "not_found": not_found,
    }
    tx.emit(topic, _CONTROL, value)
