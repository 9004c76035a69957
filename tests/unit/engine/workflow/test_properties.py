"""Property tests: random command sequences keep the history invariants, and replaying them is deterministic."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kronicle.engine.handler import InvalidCommand
from kronicle.engine.workflow import WorkflowOptions, WorkflowTopics, describe
from tests.unit.engine.workflow.harness import CODEC, Bench, attrs, command, failure, schedule_activity

WIDS = ("w1", "w2", "c0", "c1")
CLOSE_EVENTS = {
    "WorkflowExecutionCompleted",
    "WorkflowExecutionFailed",
    "WorkflowExecutionTimedOut",
    "WorkflowExecutionCanceled",
    "WorkflowExecutionTerminated",
    "WorkflowExecutionContinuedAsNew",
}
ACTIVITY_CLOSE = {"ActivityTaskCompleted", "ActivityTaskFailed", "ActivityTaskTimedOut", "ActivityTaskCanceled"}
TIMER_CLOSE = {"TimerFired", "TimerCanceled"}
CHILD_CLOSE = {
    "StartChildWorkflowExecutionFailed",
    "ChildWorkflowExecutionCompleted",
    "ChildWorkflowExecutionFailed",
    "ChildWorkflowExecutionCanceled",
    "ChildWorkflowExecutionTimedOut",
    "ChildWorkflowExecutionTerminated",
}
KINDS = (
    "start",
    "complete",
    "complete",
    "complete",
    "fail_task",
    "act_complete",
    "act_complete",
    "act_fail",
    "act_fail",
    "act_heartbeat",
    "act_canceled",
    "signal",
    "cancel",
    "terminate",
    "advance",
    "advance",
    "deliver",
    "deliver",
    "deliver",
    "update",
    "query",
)

_op = st.tuples(st.sampled_from(KINDS), st.integers(0, 1_000_000), st.integers(0, 1_000_000))
# Both workflows start first, so most generated operations have something to act on.
ops_strategy = st.lists(_op, min_size=10, max_size=60).map(lambda ops: [("start", 0, 0), ("start", 1, 0), *ops])


def _commands(b: Bench, wid: str, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    state = describe(b.get, wid)
    pending = [int(s) for s in state["activities"]] if state else []
    if wid.startswith("c") and rnd.random() < 0.5:
        # Children mostly finish quickly, so their parents see results.
        return [
            rnd.choice(
                [
                    command("CompleteWorkflowExecution", result=[b"c"]),
                    command("FailWorkflowExecution", failure=failure()),
                    command("CancelWorkflowExecution"),
                ]
            )
        ]
    for update_id, update in (state["updates"] if state else {}).items():
        outcome = {"DELIVERED": rnd.choice(["ACCEPTED", "REJECTED", "NONE"]), "ACCEPTED": "COMPLETED"}.get(
            update["state"], "NONE"
        )
        if rnd.random() < 0.2:
            outcome = rnd.choice(["ACCEPTED", "REJECTED", "COMPLETED"])  # sometimes out of order
        if outcome != "NONE":
            out.append(command("UpdateResponse", update_id=update_id, outcome=outcome, result=[b"u"]))
    for _ in range(rnd.randint(0, 3)):
        choice = rnd.randrange(22)
        n = rnd.randrange(3)
        if choice <= 3 or choice >= 18:
            out.append(
                schedule_activity(
                    f"a{n}",
                    start_to_close_timeout_ms=rnd.choice([1_000, 5_000]),
                    heartbeat_timeout_ms=rnd.choice([0, 700]),
                    schedule_to_close_timeout_ms=rnd.choice([0, 8_000]),
                    retry_policy={"maximum_attempts": rnd.randrange(4)},
                )
            )
        elif choice == 4:
            out.append(command("StartTimer", timer_id=f"t{n}", start_to_fire_timeout_ms=rnd.choice([10, 2_000])))
        elif choice == 5:
            out.append(command("CancelTimer", timer_id=f"t{n}"))
        elif choice == 6:
            sid = rnd.choice(pending) if pending and rnd.random() < 0.8 else rnd.randrange(1, 30)
            out.append(command("RequestCancelActivityTask", scheduled_event_id=sid))
        elif choice == 16:
            target = rnd.choice((*WIDS, "nobody"))
            out.append(command("SignalExternalWorkflowExecution", workflow_id=target, signal_name="x"))
        elif choice == 17:
            target = rnd.choice(WIDS)
            out.append(command("RequestCancelExternalWorkflowExecution", workflow_id=target))
        elif choice in (7, 12, 14, 15):
            policy = rnd.choice(["TERMINATE", "ABANDON", "REQUEST_CANCEL"])
            out.append(
                command(
                    "StartChildWorkflowExecution", workflow_id=f"c{n}", workflow_type="C", parent_close_policy=policy
                )
            )
        elif choice == 13:
            out.append(command("RecordMarker", marker_name="SideEffect", details={"d": [b"1"]}))
        elif choice == 8:
            out.append(command("CompleteWorkflowExecution", result=[b"r" * rnd.choice([1, 1, 1, 2_500])]))
        elif choice == 9:
            out.append(command("FailWorkflowExecution", failure=failure()))
        elif choice == 10:
            out.append(command("CancelWorkflowExecution"))
        else:
            out.append(command("ContinueAsNewWorkflowExecution", input=[b"again"]))
    return out


def _pick(items: list[dict[str, Any]], y: int) -> dict[str, Any] | None:
    if not items:
        return None
    # Mostly the latest (the live one), sometimes an old one (stale or duplicate delivery).
    return items[y % len(items)] if y % 4 == 3 else items[-1]


def apply(b: Bench, op: tuple[str, int, int]) -> None:
    kind, x, y = op
    wid = WIDS[x % len(WIDS)]
    try:
        if kind == "start":
            policy = ("UNSPECIFIED", "USE_EXISTING", "TERMINATE_EXISTING")[y % 3]
            retry = {"maximum_attempts": y % 3} if y % 5 == 1 else None
            b.start(
                wid,
                request_id=f"r{y % 4}",
                id_conflict_policy=policy,
                run_timeout_ms=(y % 3) * 20_000,
                retry_policy=retry,
                cron_schedule="* * * * *" if y % 7 == 3 else "",
                input=[b"x" * 3_000] if y % 11 == 5 else [],
            )
        elif kind in ("complete", "fail_task"):
            task = _pick([t for t in b.workflow_tasks() if t["workflow_id"] == wid], y)
            if task is None:
                return
            if kind == "complete":
                b.complete_task(wid, _commands(b, wid, y), task=task)
            else:
                b.fail_task(wid, task=task)
        elif kind.startswith("act_"):
            task = _pick(b.activity_tasks(), y)
            if task is None:
                return
            name, fields = {
                "act_complete": ("CompleteActivityTask", {"result": [b"ok" * (1 + 1_500 * (y % 9 == 4))]}),
                "act_fail": ("FailActivityTask", {"failure": failure(non_retryable=y % 5 == 0)}),
                "act_heartbeat": ("HeartbeatActivityTask", {"details": [b"hb"], "reply_to": "ctl"}),
                "act_canceled": ("ReportActivityTaskCanceled", {}),
            }[kind]
            b.activity_result(name, task, **fields)
        elif kind == "signal":
            b.send("SignalWorkflow", {"workflow_id": wid, "signal_name": "s", "request_id": f"s{y % 5}"})
        elif kind == "cancel":
            b.send("RequestCancelWorkflow", {"workflow_id": wid})
        elif kind == "terminate":
            b.send("TerminateWorkflow", {"workflow_id": wid, "reason": "prop"})
        elif kind == "update":
            b.send("UpdateWorkflow", {"workflow_id": wid, "update_id": f"u{y % 3}", "name": "n", "reply_to": "r"})
        elif kind == "query":
            # Queries are not history: open or closed, nothing but the run's state changes (a query
            # may wait there for the run's outstanding workflow task).
            before = {k: v for k, v in b.ctx.state.items() if k[0] != "wf_runs"}
            b.send("QueryWorkflow", {"workflow_id": wid, "query_id": f"q{y}", "query_type": "t", "reply_to": "r"})
            assert {k: v for k, v in b.ctx.state.items() if k[0] != "wf_runs"} == before
        elif kind == "deliver":
            b.deliver()
        else:
            b.advance(y % 10_000)
    except InvalidCommand:
        pass


def bench() -> Bench:
    # A small payload limit, so oversize inputs and results are generated too.
    return Bench(WorkflowOptions(max_payload_bytes=2_000))


def run_ids(b: Bench) -> list[str]:
    return sorted(key.decode() for cf, key in b.ctx.state if cf == "wf_runs")


def check_invariants(b: Bench) -> None:
    topics = WorkflowTopics("default")
    published: dict[str, list[dict[str, Any]]] = {}
    for batch in b.history_batches():
        published.setdefault(batch["run_id"], []).extend(batch["events"])
    for run_id in run_ids(b):
        run = b.describe_run(run_id)
        events = b.history(run["workflow_id"], run_id)
        # Dense, increasing ids from 1, matching the run's counter and the history topic.
        assert [e["event_id"] for e in events] == list(range(1, len(events) + 1))
        assert run["next_event_id"] == len(events) + 1
        assert published[run_id] == events
        assert events[0]["event_type"] == "WorkflowExecutionStarted"
        # A closed run ends with its closing event and nothing after it.
        closing = [i for i, e in enumerate(events) if e["event_type"] in CLOSE_EVENTS]
        if run["status"] == "RUNNING":
            assert closing == []
        else:
            assert closing == [len(events) - 1]
            assert run["activities"] == {} and run["timers"] == {} and run["wft"] is None
        # Every activity and timer is closed at most once, and only after it was scheduled.
        scheduled = {e["event_id"] for e in events if e["event_type"] == "ActivityTaskScheduled"}
        timers = {e["event_id"] for e in events if e["event_type"] == "TimerStarted"}
        closed_acts = [attrs(e)["scheduled_event_id"] for e in events if e["event_type"] in ACTIVITY_CLOSE]
        started_acts = [attrs(e)["scheduled_event_id"] for e in events if e["event_type"] == "ActivityTaskStarted"]
        closed_timers = [attrs(e)["started_event_id"] for e in events if e["event_type"] in TIMER_CLOSE]
        assert len(closed_acts) == len(set(closed_acts)) and set(closed_acts) <= scheduled
        assert len(started_acts) == len(set(started_acts)) and set(started_acts) <= set(closed_acts)
        assert len(closed_timers) == len(set(closed_timers)) and set(closed_timers) <= timers
        initiated = {e["event_id"] for e in events if e["event_type"] == "StartChildWorkflowExecutionInitiated"}
        closed_children = [attrs(e)["initiated_event_id"] for e in events if e["event_type"] in CHILD_CLOSE]
        started_children = [
            attrs(e)["initiated_event_id"] for e in events if e["event_type"] == "ChildWorkflowExecutionStarted"
        ]
        assert len(closed_children) == len(set(closed_children)) and set(closed_children) <= initiated
        assert len(started_children) == len(set(started_children)) and set(started_children) <= initiated
        accepted = [attrs(e)["update_id"] for e in events if e["event_type"] == "WorkflowExecutionUpdateAccepted"]
        done = [attrs(e)["update_id"] for e in events if e["event_type"] == "WorkflowExecutionUpdateCompleted"]
        assert len(accepted) == len(set(accepted)) and len(done) == len(set(done)) and set(done) <= set(accepted)
        # While running, pending ones are exactly those not closed yet (closing events may wait in the buffer).
        if run["status"] == "RUNNING":
            buffered = [(t, a) for t, a, _ in run["buffer"]]
            closed_acts += [a["scheduled_event_id"] for t, a in buffered if t in ACTIVITY_CLOSE]
            closed_timers += [a["started_event_id"] for t, a in buffered if t in TIMER_CLOSE]
            assert len(closed_acts) == len(set(closed_acts)) and len(closed_timers) == len(set(closed_timers))
            assert {int(s) for s in run["activities"]} == scheduled - set(closed_acts)
            assert set(run["timers"].values()) == timers - set(closed_timers)
        # Workflow tasks: at most one outstanding, and it is the last WorkflowTaskScheduled (or, for a
        # transient retry, the one that will be written next).
        if run["wft"] is not None:
            if run["wft"].get("transient"):
                assert run["wft"]["scheduled_event_id"] == run["next_event_id"] and run["wft"]["attempt"] > 1
            else:
                last = max(e["event_id"] for e in events if e["event_type"] == "WorkflowTaskScheduled")
                assert run["wft"]["scheduled_event_id"] == last
        # Event times never go back.
        times = [e["event_time"] for e in events]
        assert times == sorted(times)
        # Retries are transient: a retried task's events are written only when it completes, so a
        # failing task leaves one WorkflowTaskFailed/TimedOut however often it is retried.
        by_id = {e["event_id"]: e for e in events}
        for e in events:
            if e["event_type"] == "WorkflowTaskScheduled" and attrs(e)["attempt"] > 1:
                following = [by_id.get(e["event_id"] + k, {}).get("event_type") for k in (1, 2)]
                assert following == ["WorkflowTaskStarted", "WorkflowTaskCompleted"]
            if e["event_type"] in ("WorkflowTaskFailed", "WorkflowTaskTimedOut"):
                assert attrs(by_id[attrs(e)["scheduled_event_id"]])["attempt"] == 1
    assert topics.history == "kronicle.default.history"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops_strategy)
def test_random_sequences_keep_history_invariants(ops: list[tuple[str, int, int]]) -> None:
    b = bench()
    for op in ops:
        apply(b, op)
        check_invariants(b)


@settings(max_examples=60, deadline=None)
@given(ops_strategy)
def test_same_sequence_yields_the_same_history_and_records(ops: list[tuple[str, int, int]]) -> None:
    first, second = bench(), bench()
    for op in ops:
        apply(first, op)
    for op in ops:
        apply(second, op)
    assert first.ctx.state == second.ctx.state
    assert [(r.topic, r.key, r.value) for r in first.ctx.effects.outputs] == [
        (r.topic, r.key, r.value) for r in second.ctx.effects.outputs
    ]


@settings(max_examples=60, deadline=None)
@given(ops_strategy, st.integers(0, 61))
def test_closed_run_accepts_nothing(ops: list[tuple[str, int, int]], cut: int) -> None:
    b = bench()
    for op in ops:
        apply(b, op)
    closed = {
        r: len(b.history(b.describe_run(r)["workflow_id"], r))
        for r in run_ids(b)
        if b.describe_run(r)["status"] != "RUNNING"
    }
    for op in ops[cut:] + ops[:cut]:
        apply(b, op)
    for run_id, length in closed.items():
        assert len(b.history(b.describe_run(run_id)["workflow_id"], run_id)) == length
    assert CODEC is not None
