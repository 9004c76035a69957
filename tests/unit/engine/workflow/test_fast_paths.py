"""The handler's CPU shortcuts change no byte of what it writes."""

from __future__ import annotations

from typing import Any

from kronicle.engine.workflow import WorkflowHandler
from kronicle.schemas import default_registry
from tests.unit.engine.workflow.harness import Bench, command, schedule_activity

REGISTRY = default_registry()


def scenario(bench: Bench) -> list[tuple[str, bytes | None, bytes | None]]:
    """Start, a failing (then transient) task, a signal, an activity, a timer, completion: every output record."""
    bench.start("wf", input=[b"in"])
    bench.fail_task("wf")
    bench.fail_task("wf")
    bench.complete_task("wf", [schedule_activity("a1")])
    bench.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "go", "input": [b"s"], "request_id": "r1"})
    bench.activity_result("CompleteActivityTask", bench.activity_tasks()[-1], result=[b"out"])
    bench.complete_task("wf", [command("StartTimer", timer_id="t1", start_to_fire_timeout_ms=5)])
    bench.advance(10)
    bench.complete_task("wf", [command("CompleteWorkflowExecution", result=[b"done"])])
    return [(r.topic, r.key, r.value) for r in bench.ctx.effects.outputs]


def with_handler(encode: Any) -> Bench:
    bench = Bench()
    bench.handler = WorkflowHandler(topics=bench.topics, encode=encode, decode=REGISTRY.decode)
    return bench


def test_workflow_tasks_built_from_stored_event_bytes_equal_the_decoded_and_reencoded_ones() -> None:
    spliced = with_handler(REGISTRY.encode)
    assert spliced.handler._cfg.encode_with_items is not None

    def encode(name: str, datum: Any) -> bytes:  # not the registry's method: no shortcut
        return REGISTRY.encode(name, datum)

    plain = with_handler(encode)
    assert plain.handler._cfg.encode_with_items is None
    fast, slow = scenario(spliced), scenario(plain)
    tasks = [r for r in fast if r[0] == spliced.topics.workflow_tasks("q")]
    assert len(tasks) >= 5
    assert fast == slow
    assert spliced.ctx.state == plain.ctx.state
