"""The Client's connection pool under more concurrent calls than aiohttp's default cap (100).

At 200 closed-loop callers the benchmark saw 100 of them stall for the whole
run: a capped aiohttp pool gives a released connection to whoever asks next,
not to the oldest waiter, so the callers that held connections kept them and
the rest starved. These tests hold more long polls open than that cap and
check that other calls still go through at once.
"""

from __future__ import annotations

import asyncio

import pytest

from kronicle import workflow
from kronicle.client import Client
from kronicle.engine.service import EngineService
from kronicle.exceptions import TerminatedError, WorkflowFailureError
from tests.integration.conftest import new_id

pytestmark = pytest.mark.asyncio(loop_scope="module")

_OPEN_POLLS = 150
"""More than aiohttp's default connection cap of 100."""


@workflow.defn(name="PoolWaiter")
class WaiterWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_open_result_long_polls_do_not_starve_other_calls(client: Client, engine: EngineService) -> None:
    workflow_id = new_id("pool")
    handle = await client.start_workflow(WaiterWorkflow.run, id=workflow_id, task_queue="pool-nobody-polls")
    # No worker runs the workflow: every result call long-polls (50 s) until the run closes.
    waiting = [asyncio.ensure_future(handle.result()) for _ in range(_OPEN_POLLS)]
    try:
        await asyncio.sleep(0.5)  # let the long polls take their connections
        assert not any(w.done() for w in waiting)
        # With a capped pool this call waits behind the long polls for their whole 50 s.
        await asyncio.wait_for(handle.terminate("pool test"), timeout=10)
        results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), timeout=20)
    finally:
        for w in waiting:
            w.cancel()
    assert len(results) == _OPEN_POLLS
    for result in results:
        assert isinstance(result, WorkflowFailureError), result
        assert isinstance(result.cause, TerminatedError)
