"""The projector on a real broker, into SQLite and PostgreSQL: records in, rows out, at least once, idempotent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from kronicle.connectors.visibility import (
    ApplyResult,
    ExecutionUpdate,
    ProjectorConfig,
    VisibilityProjector,
    VisibilityStore,
)
from kronicle.engine.service import EngineService
from kronicle.schemas import default_registry
from kronicle.topics import NamespaceTopics
from tests.integration.visibility._records import T0, record
from tests.kafka_helpers import create_topics

REGISTRY = default_registry()


@pytest.fixture
def namespace(kafka_bootstrap: str) -> str:
    ns = f"vis{uuid.uuid4().hex[:10]}"
    create_topics(kafka_bootstrap, {NamespaceTopics(ns).visibility: 2})
    return ns


def produce(bootstrap: str, namespace: str, items: Sequence[tuple[dict[str, Any] | bytes, int]]) -> None:
    """Write (record or raw bytes, kronicle.seq) pairs the way the engine does: framed Avro, keyed, with headers."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True})
    for value, seq in items:
        if isinstance(value, bytes):
            payload, key = value, b"junk"
        else:
            payload = REGISTRY.encode("kronicle.workflow.VisibilityRecord", value)
            key = (value["workflow_id"] + value["run_id"]).encode()
        producer.produce(
            NamespaceTopics(namespace).visibility,
            payload,
            key,
            headers=[("kronicle.seq", str(seq).encode()), ("kronicle.version", b"0")],
        )
    assert producer.flush(10) == 0


def projector(bootstrap: str, namespace: str, store: VisibilityStore, group: str = "") -> VisibilityProjector:
    return VisibilityProjector(ProjectorConfig(bootstrap, namespace, batch_size=50, group_id=group), store)


async def run_until(p: VisibilityProjector, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, f"projector stats: {p.stats}"
        await p.run_once(timeout=0.5)


def runs(n: int, prefix: str = "w") -> list[dict[str, Any]]:
    return [
        record(f"{prefix}-{i}", workflow_type="Order" if i % 2 else "Refund", start=T0 + i, history_length=2)
        for i in range(n)
    ]


async def snapshot(store: VisibilityStore, namespace: str) -> list[dict[str, Any]]:
    rows, token = await store.list(namespace, "ORDER BY RunId", page_size=1000)
    assert token is None
    return rows


async def test_projected_records_are_listed_and_counted(
    kafka_bootstrap: str, namespace: str, store: VisibilityStore
) -> None:
    produce(kafka_bootstrap, namespace, [(r, 1) for r in runs(12)])
    p = projector(kafka_bootstrap, namespace, store)
    await run_until(p, lambda: p.stats.consumed >= 12)
    await p.stop()
    assert (p.stats.applied, p.stats.stale, p.stats.undecodable) == (12, 0, 0)
    assert await store.count(namespace) == 12
    assert await store.count(namespace, "WorkflowType = 'Order' AND ExecutionStatus = 'Running'") == 6
    rows, _ = await store.list(namespace, "WorkflowType = 'Refund' ORDER BY StartTime", page_size=2)
    assert [r["workflow_id"] for r in rows] == ["w-0", "w-2"]


async def test_restart_resumes_and_replay_from_the_start_leaves_the_same_rows(
    kafka_bootstrap: str, namespace: str, store: VisibilityStore
) -> None:
    first = runs(10)
    produce(kafka_bootstrap, namespace, [(r, 1) for r in first])
    closed = [{**r, "status": "COMPLETED", "close_time_ms": T0 + 100, "history_length": 5} for r in first[:4]]
    produce(kafka_bootstrap, namespace, [(r, 2) for r in closed])
    p = projector(kafka_bootstrap, namespace, store)
    await run_until(p, lambda: p.stats.consumed >= 14)
    await p.stop()
    rows = await snapshot(store, namespace)

    # Restart in the same group: only what is new is read, the offsets were committed.
    produce(kafka_bootstrap, namespace, [(r, 1) for r in runs(3, prefix="late")])
    again = projector(kafka_bootstrap, namespace, store)
    await run_until(again, lambda: again.stats.consumed >= 3)
    await asyncio.sleep(0.5)
    await again.run_once(timeout=0.5)
    await again.stop()
    assert again.stats.consumed == 3
    rows_after_restart = await snapshot(store, namespace)
    assert len(rows_after_restart) == 13
    assert [r for r in rows_after_restart if not r["workflow_id"].startswith("late")] == rows

    # Replay everything from the start (a new group): every record is stale, the rows do not move.
    replay = projector(kafka_bootstrap, namespace, store, group=f"replay-{uuid.uuid4().hex[:6]}")
    await run_until(replay, lambda: replay.stats.consumed >= 17)
    await replay.stop()
    assert (replay.stats.applied, replay.stats.stale) == (0, 17)
    assert await snapshot(store, namespace) == rows_after_restart
    assert await store.count(namespace, "ExecutionStatus = 'Completed'") == 4


async def test_duplicates_and_out_of_order_versions_change_nothing(
    kafka_bootstrap: str, namespace: str, store: VisibilityStore
) -> None:
    started = record("w", run_id=str(uuid.uuid4()), history_length=2)
    closed = {**started, "status": "TERMINATED", "close_time_ms": T0 + 9, "history_length": 4}
    produce(kafka_bootstrap, namespace, [(closed, 20), (started, 10), (closed, 20), (started, 10)])
    p = projector(kafka_bootstrap, namespace, store)
    await run_until(p, lambda: p.stats.consumed >= 4)
    await p.stop()
    assert (p.stats.applied, p.stats.stale) == (1, 3)
    rows = await snapshot(store, namespace)
    assert [(r["status"], r["history_length"]) for r in rows] == [("Terminated", 4)]


async def test_undecodable_records_are_counted_and_skipped(
    kafka_bootstrap: str, namespace: str, store: VisibilityStore
) -> None:
    other_schema = REGISTRY.encode("kronicle.TimerFired", {"key": b"k", "timer_id": b"t", "due_ms": 0, "payload": b""})
    good = record("good")
    produce(kafka_bootstrap, namespace, [(b"not avro at all", 1), (other_schema, 2), (b"\x00\x00\x00\x00", 3)])
    produce(kafka_bootstrap, namespace, [(good, 4)])
    p = projector(kafka_bootstrap, namespace, store)
    await run_until(p, lambda: p.stats.consumed >= 4)
    await p.stop()
    assert (p.stats.undecodable, p.stats.applied) == (3, 1)
    assert [r["workflow_id"] for r in await snapshot(store, namespace)] == ["good"]


class FlakyStore(VisibilityStore):
    """Fails the first apply, as a database that went away for a moment."""

    failures = 1

    async def apply(self, updates: Sequence[ExecutionUpdate]) -> ApplyResult:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unavailable")
        return await super().apply(updates)


async def test_a_failed_write_commits_no_offsets_and_the_batch_is_retried(
    kafka_bootstrap: str, namespace: str, store_url: str
) -> None:
    store = await FlakyStore.open(store_url)
    async with store:
        produce(kafka_bootstrap, namespace, [(r, 1) for r in runs(5)])
        p = projector(kafka_bootstrap, namespace, store)
        with pytest.raises(ConnectionError):
            await run_until(p, lambda: p.stats.consumed >= 5)
        # The consumer was rewound: the same records come again and land.
        await run_until(p, lambda: p.stats.applied >= 5)
        await p.stop()
        assert await store.count(namespace) == 5
        # And a new projector in the group finds nothing left to do.
        fresh = projector(kafka_bootstrap, namespace, store)
        await asyncio.sleep(0.2)
        for _ in range(6):
            await fresh.run_once(timeout=0.5)
        await fresh.stop()
        assert fresh.stats.consumed == 0


async def test_workflows_started_on_the_engine_show_up(
    kafka_bootstrap: str, store: VisibilityStore, tmp_path: Path
) -> None:
    engine = EngineService(kafka_bootstrap, f"vise{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "state", partitions=2)
    engine.start()
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
        for i in range(3):
            datum = {"workflow_id": f"wf-{i}", "workflow_type": "Greeter", "task_queue": "vq", "request_id": f"r{i}"}
            producer.produce(
                engine.topics.commands,
                engine.registry.encode("kronicle.workflow.StartWorkflow", datum),
                datum["workflow_id"].encode(),
            )
        assert producer.flush(10) == 0
        config = ProjectorConfig(kafka_bootstrap, engine.namespace, poll_timeout_s=0.1)
        async with VisibilityProjector(config, store) as p:
            deadline = asyncio.get_running_loop().time() + 30
            while await store.count(engine.namespace, "WorkflowType = 'Greeter' AND ExecutionStatus = 'Running'") < 3:
                assert asyncio.get_running_loop().time() < deadline, f"projector stats: {p.stats}"
                await asyncio.sleep(0.1)
        rows, _ = await store.list(engine.namespace, "TaskQueue = 'vq' ORDER BY WorkflowId")
        assert [(r["workflow_id"], r["status"]) for r in rows] == [(f"wf-{i}", "Running") for i in range(3)]
        assert all(r["history_length"] >= 1 for r in rows)
        assert p.stats.undecodable == 0
    finally:
        engine.stop()
    assert engine.failure is None


async def test_under_a_steady_stream_the_background_loop_gathers_records_into_fewer_steps(
    kafka_bootstrap: str, namespace: str, store: VisibilityStore
) -> None:
    interval = 3.0
    config = ProjectorConfig(kafka_bootstrap, namespace, poll_timeout_s=0.05, min_batch_interval_s=interval)
    p = VisibilityProjector(config, store)
    await p.start()
    # One producer, connected before the bursts, flushing off the loop: on a loaded machine a
    # producer per burst took longer to start than the interval, and a blocking flush held the
    # projector's loop, so the bursts did not arrive as a steady stream.
    writer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    try:
        await asyncio.sleep(3)  # joined the group and idle: the first record is taken at once
        begun = asyncio.get_running_loop().time()
        for i in range(5):
            for r in runs(4, prefix=f"b{i}"):
                writer.produce(
                    NamespaceTopics(namespace).visibility,
                    REGISTRY.encode("kronicle.workflow.VisibilityRecord", r),
                    (r["workflow_id"] + r["run_id"]).encode(),
                    headers=[("kronicle.seq", b"1"), ("kronicle.version", b"0")],
                )
            assert await asyncio.to_thread(writer.flush, 10) == 0
            await asyncio.sleep(0.1)
        span = asyncio.get_running_loop().time() - begun
        deadline = asyncio.get_running_loop().time() + 30
        while p.stats.consumed < 20:
            assert asyncio.get_running_loop().time() < deadline, f"projector stats: {p.stats}"
            await asyncio.sleep(0.05)
    finally:
        await p.stop()
    # Five bursts well within the interval: the first step takes the first burst, the next one
    # starts an interval after it and takes the rest (a step per burst without the interval).
    assert span < interval, f"the bursts took {span:.1f} s, longer than the interval: the test cannot tell"
    assert p.stats.batches <= 3, p.stats
    assert (p.stats.consumed, p.stats.applied) == (20, 20)
    assert await store.count(namespace) == 20

    # stop() committed the last offsets: the group resumes after them.
    produce(kafka_bootstrap, namespace, [(r, 1) for r in runs(2, prefix="late")])
    again = VisibilityProjector(ProjectorConfig(kafka_bootstrap, namespace, min_batch_interval_s=0), store)
    await run_until(again, lambda: again.stats.consumed >= 2)
    await again.run_once(timeout=0.5)
    await again.stop()
    assert again.stats.consumed == 2
