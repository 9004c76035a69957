"""Queries: answered from a replay of the run's history, for running and closed runs."""

from __future__ import annotations

from typing import Any

from tests.unit.worker.memory import MemoryLoop, value
from tests.unit.worker.workflows import Approval


def query_task(loop: MemoryLoop, workflow_id: str, query_type: str, *, closed: bool = False) -> dict[str, Any]:
    run = loop.bench.run(workflow_id)
    return {
        "workflow_id": workflow_id,
        "run_id": run["run_id"],
        "workflow_type": "Approval",
        "task_queue": "q",
        "query_id": "q-1",
        "query_type": query_type,
        "query_args": [],
        "header": {},
        "reply_to": "replies",
        "history_length": len(loop.history(workflow_id)),
        "closed": closed,
    }


async def test_query_sees_the_state_after_the_last_completed_task() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    loop.signal("wf", "approve", "ann")
    await loop.run_until_idle()
    reply = await loop.runner.query(query_task(loop, "wf", "approved_by"))
    assert reply["failure"] is None and value(reply["answer"]) == ["ann"]
    assert reply["query_id"] == "q-1"
    # The cached run was not touched: the workflow carries on.
    loop.signal("wf", "approve", "bob")
    await loop.run_until_idle()
    assert loop.types("wf")[-1] == "WorkflowExecutionCompleted"
    assert loop.runner.stats["cache_hit"] >= 2


async def test_query_on_a_closed_run() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    loop.signal("wf", "approve", "ann")
    loop.signal("wf", "approve", "bob")
    await loop.run_until_idle()
    reply = await loop.runner.query(query_task(loop, "wf", "approved_by", closed=True))
    assert value(reply["answer"]) == ["ann", "bob"]


async def test_unknown_query_is_answered_with_a_failure() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    reply = await loop.runner.query(query_task(loop, "wf", "nope"))
    assert reply["answer"] == [] and "nope" in reply["failure"]["message"]
