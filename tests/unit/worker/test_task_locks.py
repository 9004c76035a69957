"""The runner keeps a lock per workflow only while that workflow has a task or query in hand."""

from __future__ import annotations

import asyncio

from tests.unit.worker.memory import MemoryLoop, value
from tests.unit.worker.test_queries import query_task
from tests.unit.worker.workflows import Approval, Greeting


async def test_no_lock_is_kept_for_workflows_that_have_nothing_in_hand() -> None:
    loop = MemoryLoop([Greeting, Approval], {"compose": lambda name: f"Hello, {name}!"})
    for i in range(20):
        loop.start(f"wf-{i}", "Greeting", "ann")
    loop.start("open", "Approval")
    await loop.run_until_idle()
    assert loop.runner.stats["completed"] >= 40
    # Twenty closed runs and one waiting for a signal: none has a task in hand, so no lock is left.
    assert loop.runner._locks == {}
    reply = await loop.runner.query(query_task(loop, "open", "approved_by"))
    assert value(reply["answer"]) == []
    assert loop.runner._locks == {}


async def test_tasks_of_one_workflow_wait_for_each_other_and_the_last_one_drops_the_lock() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    task = query_task(loop, "wf", "approved_by")
    order: list[str] = []
    handle = loop.runner._query

    async def slow_query(t: dict[str, object]) -> dict[str, object]:
        order.append(f"in {t['query_id']}")
        await asyncio.sleep(0.01)
        order.append(f"out {t['query_id']}")
        return await handle(t)  # type: ignore[arg-type]

    loop.runner._query = slow_query  # type: ignore[method-assign,assignment]
    first = asyncio.create_task(loop.runner.query({**task, "query_id": "a"}))
    second = asyncio.create_task(loop.runner.query({**task, "query_id": "b"}))
    await asyncio.sleep(0.005)
    assert list(loop.runner._locks) == ["wf"], "held while the first query runs and the second waits"
    await asyncio.gather(first, second)
    assert order == ["in a", "out a", "in b", "out b"]
    assert loop.runner._locks == {}
