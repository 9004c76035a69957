"""CPU of the engine's batch + workflow handler per one-activity workflow, without Kafka.

Drives :class:`~kronicle.engine.batch.PartitionBatch` with the real
:class:`~kronicle.engine.workflow.WorkflowHandler` and schema registry over an
in-memory store, the way the processor does at saturation: ``--concurrency``
workflows advance together, each step of all of them in one batch (start,
workflow-task completion scheduling the activity, activity completion,
workflow-task completion closing the workflow), and the batch's writes are
applied to the store before the next one. Commands are encoded as a worker and
the frontend encode them and the batch decodes them, so the figure covers
decode, handler, state and event codecs, and building every output record.

    python -m bench.workflow_cpu [--workflows 2000] [--concurrency 200] [--repeat 3]

With ``--worker`` it times the other side instead: a real :class:`~kronicle.worker.Worker`
(not started, its producer replaced by one that keeps the records) decodes the task
records this engine makes, runs the workflow and the activity, and encodes its answers,
which go back to the engine; only the worker's part is timed (``--profile FILE`` writes
cProfile stats of it)::

    python -m bench.workflow_cpu --worker [--workflows 2000] [--concurrency 200] [--profile /tmp/w.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from kronicle.engine.batch import InputRecord, PartitionBatch
from kronicle.engine.workflow import WorkflowHandler, WorkflowTopics
from kronicle.schemas import default_registry

__all__ = ["main", "run"]

_NS = "kronicle.workflow."
_PAYLOAD = b'\x00\x00\x00\x1a{"encoding":"json/plain"}"sat-abc123-1"'


def _cmd(command_type: str, **attrs: Any) -> dict[str, Any]:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in command_type).lstrip("_")
    return {"command_type": command_type, f"{snake}_command_attributes": attrs}


class _MemoryEngine:
    """The workflow handler on one in-memory partition: batches of (key, command bytes) in, outputs out."""

    def __init__(self, observe: Callable[[PartitionBatch], None] | None = None) -> None:
        self.registry = default_registry()
        self.topics = WorkflowTopics("bench")
        self.handler = WorkflowHandler(topics=self.topics, encode=self.registry.encode, decode=self.registry.decode)
        self.store: dict[tuple[str, bytes], bytes] = {}
        self.offset = 0
        self.observe = observe

    def apply(self, records: list[tuple[bytes, bytes]]) -> list[Any]:
        """One batch: every record applied, the writes kept; returns the batch's output records."""
        store = self.store
        batch = PartitionBatch(
            partition=0,
            now_ms=time.time_ns() // 1_000_000,
            handler=self.handler,
            codec=self.registry,
            read=lambda cf, key: store.get((cf, key)),
            commands_topic=self.topics.commands,
            dlq_topic="kronicle.bench.dlq",
        )
        for key, raw in records:
            batch.add(InputRecord(0, self.offset, key, raw, (), batch.now_ms))
            self.offset += 1
        assert not batch.dead_lettered, batch.effects.outputs[-1].headers
        if self.observe is not None:
            self.observe(batch)
        for k, val in batch.effects.writes.items():
            if val is None:
                store.pop(k, None)
            else:
                store[k] = val
        return batch.effects.outputs


def run(workflows: int, concurrency: int, observe: Callable[[PartitionBatch], None] | None = None) -> float:
    """Microseconds of CPU per workflow (process time) for ``workflows`` one-activity workflows.

    ``observe`` is called with every batch after it ran and before its writes reach the store
    (``bench.write_count`` counts what the processor would produce from it).
    """
    engine = _MemoryEngine(observe)
    registry, topics = engine.registry, engine.topics
    wf_tasks = topics.workflow_tasks("bench")
    act_tasks = topics.activity_tasks("bench")

    def encoded(values: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any], bytes]]:
        # Encoded before the clock starts: the frontend and the worker do that, not the engine.
        return [(name, value, registry.encode(_NS + name, value)) for name, value in values]

    def batch_of(values: list[tuple[str, dict[str, Any], bytes]]) -> list[Any]:
        return engine.apply([(value["workflow_id"].encode(), raw) for _name, value, raw in values])

    def tasks(outputs: list[Any], topic: str) -> list[dict[str, Any]]:
        return [registry.decode(o.value)[1] for o in outputs if o.topic == topic]

    def answer(task: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        """A worker's answer to ``task`` (a workflow or activity task), with ``fields`` added."""
        return {
            "workflow_id": task["workflow_id"],
            "run_id": task["run_id"],
            "scheduled_event_id": task["scheduled_event_id"],
            "attempt": task["attempt"],
            "started_time_ms": task["scheduled_time_ms"],
            "identity": "worker",
            **fields,
        }

    def timed(commands: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], float]:
        """Apply ``commands`` as one batch; its outputs and the CPU seconds the batch took (encoding excluded)."""
        raw = encoded(commands)
        t0 = time.process_time()
        out = batch_of(raw)
        return out, time.process_time() - t0

    cpu = 0.0
    done = 0
    while done < workflows:
        n = min(concurrency, workflows - done)
        ids = [f"wf-{done + i}" for i in range(n)]
        starts = [
            (
                "StartWorkflow",
                {
                    "workflow_id": wid,
                    "workflow_type": "OneActivity",
                    "task_queue": "bench",
                    "input": [_PAYLOAD],
                    "request_id": f"req-{wid}",
                    "identity": "bench",
                    "reply_to": "kronicle.bench.replies.x",
                },
            )
            for wid in ids
        ]
        out, spent = timed(starts)
        cpu += spent
        schedule = _cmd(
            "ScheduleActivityTask",
            activity_id="1",
            activity_type="echo",
            task_queue="bench",
            header={},
            input=[_PAYLOAD],
            schedule_to_close_timeout_ms=0,
            schedule_to_start_timeout_ms=0,
            start_to_close_timeout_ms=30_000,
            heartbeat_timeout_ms=0,
            retry_policy=None,
        )
        # The worker's three answers: schedule the activity, its result, complete the workflow.
        for name, topic, fields in (
            ("CompleteWorkflowTask", wf_tasks, {"commands": [schedule]}),
            ("CompleteActivityTask", act_tasks, {"result": [_PAYLOAD]}),
            ("CompleteWorkflowTask", wf_tasks, {"commands": [_cmd("CompleteWorkflowExecution", result=[_PAYLOAD])]}),
        ):
            out, spent = timed([(name, answer(t, fields)) for t in tasks(out, topic)])
            cpu += spent
        closed = sum(1 for o in out if o.topic == topics.visibility)
        assert closed == n, f"{closed} of {n} workflows closed"
        done += n
    return cpu * 1e6 / workflows


class _Message:
    """What the worker's handlers read of a ``confluent_kafka.Message``."""

    __slots__ = ("_topic", "_value")

    def __init__(self, topic: str, value: bytes) -> None:
        self._topic = topic
        self._value = value

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return self._topic


class _CapturingProducer:
    """Stands in for the worker's Kafka producer: keeps what the worker produced for the engine."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.records.append((topic, key, value))


class _OfflineClient:
    """The part of ``kronicle.client.Client`` a worker uses, without a frontend."""

    namespace = "bench"
    identity = "bench-worker"
    kafka_bootstrap_servers = "unused:9092"

    def __init__(self) -> None:
        from kronicle.converter import DataConverter

        self.data_converter = DataConverter.default

    async def fetch_history_events(self, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
        raise AssertionError("the offline worker never misses its cache")


async def run_worker(workflows: int, concurrency: int, profile: Any = None) -> float:
    """Microseconds of CPU per workflow the worker spends, records in and records out, without Kafka.

    The engine (batch + handler, as in :func:`run`) makes the real task records; a real
    :class:`~kronicle.worker.Worker` (not started: no consumers, a producer that captures) decodes
    them, runs the workflow and the activity and encodes its answers, which go back to the engine.
    Only the worker's part is timed (process time, so its workflow threads count too), the way
    its event loop runs it: each step of ``concurrency`` workflows as concurrent handler tasks.
    """
    from bench import _wf_kronicle as wf
    from kronicle import _wire
    from kronicle.converter import DataConverter
    from kronicle.worker import Worker

    engine = _MemoryEngine()
    registry, topics = engine.registry, engine.topics
    wf_tasks = topics.workflow_tasks("bench")
    act_tasks = topics.activity_tasks("bench")
    worker = Worker(
        _OfflineClient(),  # type: ignore[arg-type]
        task_queue="bench",
        workflows=[wf.OneActivity],
        activities=[wf.echo],
        max_concurrent_activities=concurrency,
        max_concurrent_workflow_tasks=concurrency,
    )
    producer = _CapturingProducer()
    worker._producer = producer  # type: ignore[assignment]

    batch_of = engine.apply

    async def answer(outputs: list[Any], topic: str) -> tuple[list[tuple[bytes, bytes]], float]:
        messages = [_Message(o.topic, o.value) for o in outputs if o.topic == topic]
        on_task = worker._on_workflow_task if topic == wf_tasks else worker._on_activity_task
        producer.records.clear()
        t0 = time.process_time()
        if profile is not None:
            profile.enable()
        await asyncio.gather(*(asyncio.ensure_future(on_task(m)) for m in messages))  # type: ignore[arg-type]
        if profile is not None:
            profile.disable()
        spent = time.process_time() - t0
        return [(key or b"", value) for _topic, key, value in producer.records], spent

    cpu = 0.0
    done = 0
    converter = DataConverter.default.payload_converter
    try:
        while done < workflows:
            n = min(concurrency, workflows - done)
            ids = [f"wf-{done + i}" for i in range(n)]
            starts = [
                (
                    wid.encode(),
                    registry.encode(
                        _NS + "StartWorkflow",
                        {
                            "workflow_id": wid,
                            "workflow_type": "BenchOneActivity",
                            "task_queue": "bench",
                            "input": _wire.payloads_to_bytes(converter.to_payloads([wid])),
                            "request_id": f"req-{wid}",
                            "identity": "bench",
                            "reply_to": "kronicle.bench.replies.x",
                        },
                    ),
                )
                for wid in ids
            ]
            out = batch_of(starts)
            for topic in (wf_tasks, act_tasks, wf_tasks):
                answers, spent = await answer(out, topic)
                cpu += spent
                assert len(answers) == n, f"{len(answers)} answers to {n} tasks on {topic}"
                out = batch_of(answers)
            closed = sum(1 for o in out if o.topic == topics.visibility)
            assert closed == n, f"{closed} of {n} workflows closed"
            done += n
    finally:
        worker._workflow_threads.shutdown(wait=True)
    return cpu * 1e6 / workflows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help="time the worker's side instead of the engine's")
    parser.add_argument("--profile", help="with --worker: write cProfile stats of the worker's part here")
    args = parser.parse_args()
    if args.worker:
        import cProfile

        profile = cProfile.Profile() if args.profile else None
        asyncio.run(run_worker(args.concurrency, args.concurrency))  # imports, first-use caches
        figures = sorted(asyncio.run(run_worker(args.workflows, args.concurrency, profile)) for _ in range(args.repeat))
        if profile is not None:
            profile.dump_stats(args.profile)
        label = "worker CPU per one-activity workflow (records in, records out)"
    else:
        figures = sorted(run(args.workflows, args.concurrency) for _ in range(args.repeat))
        label = "handler CPU per one-activity workflow"
    best, median = figures[0], figures[len(figures) // 2]
    print(f"{label}: best {best:.0f} us, median {median:.0f} us")


if __name__ == "__main__":
    main()
