"""Runs remember their timers' due times, so the shell keeps no timer-id index for them."""

from __future__ import annotations

import struct

from kronicle.engine.workflow._state import dumps, loads
from tests.unit.engine.workflow.harness import Bench, command, schedule_activity


def _indexed(b: Bench) -> set[bytes]:
    return {k for (cf, k) in b.ctx.state if cf == "timer_ids"}


def test_a_one_activity_workflow_writes_no_timer_index_and_keeps_only_its_retention_timer() -> None:
    b = Bench()
    run_id = b.start("wf")
    assert b.timer_ids() == {f"wf|{run_id}|wft|".encode()}
    assert b.run("wf")["timer_due"] == {"wft|": b.now + 10_000}
    b.complete_task("wf", [schedule_activity()])
    assert b.timer_ids() == {f"wf|{run_id}|act_stc|5".encode()}
    task = b.activity_tasks()[-1]
    b.send(
        "CompleteActivityTask",
        {"workflow_id": "wf", "run_id": run_id, "scheduled_event_id": task["scheduled_event_id"], "attempt": 1},
    )
    b.complete_task("wf", [command("CompleteWorkflowExecution")])
    assert b.timer_ids() == b.retention_timers() == {f"wf|{run_id}|retention|".encode()}
    assert _indexed(b) == set()


def test_a_fired_timer_is_forgotten_and_its_re_armed_successor_is_replaced_in_place() -> None:
    b = Bench()
    run_id = b.start("wf")
    b.advance(10_000)  # the workflow task times out; a new attempt is scheduled after its backoff
    dues = b.run("wf")["timer_due"]
    assert "wft|" in dues and dues["wft|"] > b.now
    assert b.timer_ids() == {f"wf|{run_id}|wft|".encode()}
    b.complete_task("wf", [command("CompleteWorkflowExecution")])
    assert b.run("wf")["timer_due"] == {"retention|": b.now + 7 * 24 * 3600 * 1000}
    assert b.timer_ids() == {f"wf|{run_id}|retention|".encode()}


def test_timers_armed_with_an_index_by_an_older_version_are_cancelled_through_it() -> None:
    b = Bench()
    run_id = b.start("wf")
    # Make the state what an older version wrote: an index entry per timer, no due times in the run.
    for cf, key in list(b.ctx.state):
        if cf == "timers":
            b.ctx.state[("timer_ids", key[8:])] = struct.pack(">q", struct.unpack(">q", key[:8])[0])
    run = loads(b.ctx.state[("wf_runs", run_id.encode())])
    del run["timer_due"]
    b.ctx.state[("wf_runs", run_id.encode())] = dumps(run)
    assert _indexed(b) == {f"wf|{run_id}|wft|".encode()}

    b.complete_task("wf", [schedule_activity()])
    assert _indexed(b) == set()
    assert b.timer_ids() == {f"wf|{run_id}|act_stc|5".encode()}
