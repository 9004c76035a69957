"""Long polls across a producer replacement: the engine resynchronises a partition and the waiters hear of it.

After a fatal producer error the engine replaces its transactional producer, and the batch's
outcome is unknown to it: the partition goes back to restoring from the changelog and the
committed offsets (``kronicle/engine/_transactions.py``, ``Processor._resync``). If the batch had
in fact committed, the restore brings its changes without any commit notification. The test
makes exactly that happen on the real broker: the batch with the workflow's terminate commits
for real, then the producer is replaced (``TransactionalProducer._replace``, what a fatal
error in ``commit_transaction`` does) so the processor resynchronises; the restore is held for
1.5 s, longer than a long poll's one-second wait slice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from kronicle.client import Client
from kronicle.connectors.frontend import Frontend
from kronicle.engine import metrics
from kronicle.engine.batch import PartitionBatch
from kronicle.engine.service import EngineService
from tests.integration.conftest import new_id
from tests.integration.frontend.test_api import call, wf

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

_HOLD_RESTORE_S = 1.5


def lose_the_outcome_of_the_commit_with(
    engine: EngineService, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Make the first batch with a command for ``key`` commit, then replace the producer; hold its restore.

    Returns a list that gets ``"replaced"`` once it happened and ``"restored"`` when the restore ran.
    """
    processor = engine.processor
    txn = processor._txn
    restorer = processor._restorer
    assert txn is not None and restorer is not None
    happened: list[str] = []
    real_commit = processor._commit
    real_txn_commit = txn.commit
    real_step = restorer.step
    hold_until = [0.0]

    def commit_then_replace(offsets: Any, group_metadata: Any) -> None:
        real_txn_commit(offsets, group_metadata)  # the batch is committed, for real
        happened.append("replaced")
        hold_until[0] = time.monotonic() + _HOLD_RESTORE_S
        txn._replace(KafkaError(KafkaError._FATAL, "injected by the test after the commit"), "commit_transaction")

    def commit(batches: dict[int, PartitionBatch]) -> None:
        if not happened and any(key in b.keys for b in batches.values()):
            txn.commit = commit_then_replace  # type: ignore[method-assign]
            try:
                real_commit(batches)
            finally:
                txn.commit = real_txn_commit  # type: ignore[method-assign]
        else:
            real_commit(batches)

    def step(*args: Any, **kwargs: Any) -> set[int]:
        if time.monotonic() < hold_until[0]:
            return set()
        done = real_step(*args, **kwargs)
        if done and happened and "restored" not in happened:
            happened.append("restored")
        return done

    monkeypatch.setattr(processor, "_commit", commit)
    monkeypatch.setattr(restorer, "step", step)
    return happened


async def _eventually(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_long_polls_see_a_change_that_a_resynchronised_partition_restored(
    frontend: Frontend, engine: EngineService, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = await client.start_workflow("Nobody", id=new_id("resync"), task_queue=f"nobody{uuid.uuid4().hex[:6]}")
    workflow_id = handle.id
    next_event = (await handle.describe()).history_length + 1
    replaced = metrics.TRANSACTIONS.labels(engine.namespace, "replaced")
    replaced_before = replaced._value.get()
    happened = lose_the_outcome_of_the_commit_with(engine, workflow_id.encode(), monkeypatch)

    closed = asyncio.ensure_future(engine.wait_for_close(workflow_id, 10))
    result = asyncio.ensure_future(call(frontend, "GET", wf(engine, workflow_id, "/result"), wait="20"))
    history = asyncio.ensure_future(
        call(frontend, "GET", wf(engine, workflow_id, "/history"), first_event_id=str(next_event), wait="20")
    )
    await asyncio.sleep(0.3)  # the long polls are waiting
    started = time.monotonic()
    status, body = await call(frontend, "POST", wf(engine, workflow_id, "/terminate"), {"reason": "resync"})
    assert status == 200, body

    # The engine wakes waiters when the partition is back, though no commit announced the close.
    assert await closed, "wait_for_close was not woken by the restore that brought the close"
    assert happened == ["replaced", "restored"], happened
    assert replaced._value.get() == replaced_before + 1
    status, body = await asyncio.wait_for(result, 20)
    assert status == 200 and body["status"] == "TERMINATED", body  # not 503 NotReady from mid-restore
    status, body = await asyncio.wait_for(history, 20)
    assert status == 200, body
    assert "WorkflowExecutionTerminated" in [e["event_type"] for e in body["events"]]
    print(f"terminate to every long poll answered across the resync: {time.monotonic() - started:.2f} s")
    # The engine goes on: the next command to the workflow is applied (and refused: the run is closed).
    status, body = await call(frontend, "POST", wf(engine, workflow_id, "/cancel"), {})
    assert status == 404 and body["code"] == "WorkflowNotFound", body
    await _eventually(lambda: engine.failure is None, 1)
