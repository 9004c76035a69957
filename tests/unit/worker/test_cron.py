"""Cron workflows through the worker and the real engine handler (in memory): runs at the schedule's times."""

from __future__ import annotations

from kronicle import workflow
from kronicle.engine.workflow._cron import next_cron_time_ms
from tests.unit.engine.workflow.harness import attrs
from tests.unit.worker.memory import MemoryLoop, value


@workflow.defn(name="Tick")
class Tick:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"{name} at {workflow.now():%H:%M} ({workflow.info().cron_schedule})"


@workflow.defn(name="CronParent")
class CronParent:
    @workflow.run
    async def run(self) -> str:
        await workflow.start_child_workflow("Tick", "child", id="tick-child", cron_schedule="@hourly")
        return "started"


async def test_each_run_starts_at_the_next_time_and_sees_its_schedule() -> None:
    loop = MemoryLoop([Tick])
    bench = loop.bench
    first = loop.start("wf", "Tick", "tick", cron_schedule="*/10 * * * *")
    await loop.run_until_idle()
    assert bench.workflow_tasks() == []  # waiting for the first time
    bench.advance(next_cron_time_ms("*/10 * * * *", bench.now) - bench.now)
    await loop.run_until_idle()
    completed = bench.history("wf", first)[-1]
    assert completed["event_type"] == "WorkflowExecutionCompleted"
    assert value(attrs(completed)["result"]).endswith("(*/10 * * * *)")
    second = attrs(completed)["new_execution_run_id"]
    assert bench.run("wf")["run_id"] == second and bench.run("wf")["status"] == "RUNNING"
    bench.advance(600_000)
    await loop.run_until_idle()
    assert bench.run("wf", second)["status"] == "COMPLETED"


async def test_a_child_workflow_gets_its_cron_schedule() -> None:
    loop = MemoryLoop([CronParent, Tick])
    loop.start("p", "CronParent")
    for _ in range(3):
        await loop.run_until_idle()
        loop.bench.deliver()
    child = loop.bench.run("tick-child")
    assert child["cron_schedule"] == "@hourly"
