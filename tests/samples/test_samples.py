"""Every sample runs against the real stack (broker, engine, frontend) and does what its docstring says."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from kronicle.exceptions import ApplicationError, CancelledError, RPCError, RPCStatusCode, WorkflowFailureError
from kronicle.testing import WorkflowEnvironment
from kronicle.worker import Worker
from kronicle.worker._history import attrs
from samples import (
    cancellation,
    child_workflows,
    continue_as_new,
    hello_activity,
    saga,
    signals_and_queries,
    timers,
    updates,
)
from samples._common import unique_id

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="package")]


def _unimplemented(err: RPCError) -> bool:
    # TODO(frontend query/update routes): until they are on main, the frontend answers 501 and the
    # query/update checks below are skipped; the rest of each sample still runs.
    return err.status == RPCStatusCode.UNIMPLEMENTED


async def test_hello_activity_returns_the_activity_result(env: WorkflowEnvironment, task_queue: str) -> None:
    assert await hello_activity.main(env.client, task_queue=task_queue) == "Hello, World!"


async def test_signals_are_collected_and_queries_answer_from_the_workflow_state(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    wf = signals_and_queries.GreetingCollector
    async with Worker(env.client, task_queue=task_queue, workflows=[wf]):
        handle = await env.client.start_workflow(wf.run, id=unique_id("sq"), task_queue=task_queue)
        await handle.signal(wf.add_name, "Ada")
        await handle.signal(wf.add_name, "Grace")
        try:
            assert await handle.query(wf.names) == ["Ada", "Grace"]
        except RPCError as err:
            if not _unimplemented(err):
                raise
        await handle.signal(wf.finish)
        assert await handle.result() == "Hello, Ada and Grace!"


async def test_child_workflows_run_in_parallel_and_the_parent_joins_them(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    assert await child_workflows.main(env.client, task_queue=task_queue) == [
        "Hello, Ada!",
        "Hello, Grace!",
        "Hello, Barbara!",
    ]


async def test_the_saga_books_everything_or_compensates_newest_first(env: WorkflowEnvironment, task_queue: str) -> None:
    wf = saga.BookTrip
    async with Worker(env.client, task_queue=task_queue, workflows=[wf], activities=saga.ACTIVITIES):
        booked = await env.client.execute_workflow(
            wf.run, saga.Trip("Ada", "Lisbon"), id=unique_id("saga"), task_queue=task_queue
        )
        assert booked == ["car for Ada", "hotel in Lisbon", "flight to Lisbon"]
        handle = await env.client.start_workflow(
            wf.run, saga.Trip("Grace", "Atlantis"), id=unique_id("saga"), task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TripNotBooked"
    assert "no flights to Atlantis" in cause.message
    assert list(cause.details) == [
        "cancelled flight to Atlantis",
        "cancelled hotel in Atlantis",
        "cancelled car for Grace",
    ]
    history = (await handle.fetch_history()).events
    scheduled = [attrs(e)["activity_type"] for e in history if e["event_type"] == "ActivityTaskScheduled"]
    assert scheduled == ["book_car", "book_hotel", "book_flight", "cancel_flight", "cancel_hotel", "cancel_car"]


async def test_the_saga_sample_program_runs(env: WorkflowEnvironment, task_queue: str) -> None:
    lines = await saga.main(env.client, task_queue=task_queue)
    assert lines[:3] == ["car for Ada", "hotel in Lisbon", "flight to Lisbon"]
    assert "cancelled car for Grace" in lines[3]


async def test_a_30_day_reminder_completes_quickly_under_time_skipping(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    started = time.monotonic()
    result = await timers.main(env.client, task_queue=task_queue, delay=timedelta(days=30))
    wall = time.monotonic() - started
    assert result.startswith("reminder sent: renew the passport (after 30 days")
    assert wall < 10, f"{wall:.1f}s of wall time"


async def test_continue_as_new_follows_the_chain_of_runs_to_the_result(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    wf = continue_as_new.CountInRuns
    async with Worker(env.client, task_queue=task_queue, workflows=[wf]):
        handle = await env.client.start_workflow(
            wf.run, continue_as_new.Progress(target=7), id=unique_id("can"), task_queue=task_queue
        )
        result = await handle.result()
        latest = await env.client.get_workflow_handle(handle.id).describe()
    assert result.done == 7
    assert len(set(result.runs)) == 3  # 3 + 3 + 1 iterations
    assert result.runs[0] == handle.result_run_id and latest.run_id == result.runs[-1]


async def test_updates_change_the_workflow_and_the_validator_rejects_bad_ones(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    wf = updates.Counter
    async with Worker(env.client, task_queue=task_queue, workflows=[wf]):
        handle = await env.client.start_workflow(wf.run, id=unique_id("upd"), task_queue=task_queue)
        expected_total = 0
        try:
            assert await handle.execute_update(wf.add, 5) == 5
            assert await handle.execute_update(wf.add, 3) == 8
            expected_total = 8
            with pytest.raises(Exception) as rejected:
                await handle.execute_update(wf.add, -1)
            # temporalio's shape: WorkflowUpdateFailedError whose cause is the validator's error.
            chain: list[BaseException] = [rejected.value]
            while chain[-1].__cause__ is not None:
                chain.append(chain[-1].__cause__)
            assert any("amount must be positive" in str(e) for e in chain), chain
        except RPCError as err:
            if not _unimplemented(err):
                raise
        await handle.signal(wf.close)
        assert await handle.result() == expected_total
        history = (await handle.fetch_history()).events
    # A rejected update leaves no trace in history; accepted ones do.
    accepted = [e for e in history if e["event_type"] == "WorkflowExecutionUpdateAccepted"]
    assert len(accepted) == (2 if expected_total else 0)


async def test_cancelling_reaches_the_heartbeating_activity_and_the_workflow_cleans_up(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    wf = cancellation.CancellableWork
    activities = [cancellation.process_forever, cancellation.clean_up]
    async with Worker(env.client, task_queue=task_queue, workflows=[wf], activities=activities):
        handle = await env.client.start_workflow(wf.run, id=unique_id("cancel"), task_queue=task_queue)
        await cancellation.wait_until_running(handle)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    events = [e["event_type"] for e in (await handle.fetch_history()).events]
    scheduled = [
        attrs(e)["activity_type"]
        for e in (await handle.fetch_history()).events
        if e["event_type"] == "ActivityTaskScheduled"
    ]
    assert scheduled == ["process_forever", "clean_up"]
    assert "ActivityTaskCompleted" in events  # the cleanup
    assert events[-1] == "WorkflowExecutionCanceled"


@pytest.mark.parametrize(
    "sample",
    [hello_activity, child_workflows, timers, continue_as_new, cancellation],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
async def test_the_sample_program_runs_end_to_end(env: WorkflowEnvironment, task_queue: str, sample: object) -> None:
    assert await sample.main(env.client, task_queue=task_queue)  # type: ignore[attr-defined]
