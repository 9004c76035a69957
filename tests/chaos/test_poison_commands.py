"""10,000 garbage, truncated and valid-but-invalid commands among real workflows: all dead-lettered, with a reason."""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from kronicle.engine.batch import DLQ_HEADER_ERROR_TYPE, DLQ_HEADER_REASON
from kronicle.engine.service import EngineService
from kronicle.schemas import SchemaRegistry
from tests.chaos.conftest import Scale
from tests.chaos.harness import HistoryReader, LoadDriver, ScriptedWorker, new_registry, print_figures, rng
from tests.kafka_helpers import consumer

KINDS = (
    "random-bytes",
    "truncated-frame",
    "unknown-schema-id",
    "bad-magic-byte",
    "empty-value",
    "tombstone",
    "garbled-avro-body",
    "not-a-command",
    "keyed-by-another-workflow",
    "signal-to-unknown-workflow",
    "start-without-type",
)


def poison(kind: str, n: int, registry: SchemaRegistry, random: Any) -> tuple[bytes, bytes | None]:
    """One bad record of ``kind``; ``n`` makes its key (and so its value) unique."""
    key = f"junk-{n}".encode()
    start = registry.encode(
        "kronicle.workflow.StartWorkflow",
        {"workflow_id": f"junk-{n}", "workflow_type": "ChaosWorkflow", "task_queue": "nobody", "request_id": str(n)},
    )
    if kind == "random-bytes":
        return key, bytes([random.randrange(1, 256)]) + random.randbytes(random.randrange(0, 200))
    if kind == "truncated-frame":
        return key, start[: random.randrange(1, len(start) - 1)]
    if kind == "unknown-schema-id":
        return key, b"\x00" + (900_000 + n).to_bytes(4, "big") + random.randbytes(20)
    if kind == "bad-magic-byte":
        return key, b"\x07" + start[1:]
    if kind == "empty-value":
        return key, b""
    if kind == "tombstone":
        return key, None
    if kind == "not-a-command":
        # A well-formed record, but of a schema that is an engine output, not a command.
        answer = {"workflow_id": f"junk-{n}", "run_id": "r", "request_id": str(n), "ok": True}
        return key, registry.encode("kronicle.workflow.CommandResult", answer)
    if kind == "garbled-avro-body":
        task = {"workflow_id": f"junk-{n}", "run_id": "r", "scheduled_event_id": 1, "attempt": 1}
        return key, registry.encode("kronicle.workflow.CompleteActivityTask", task)[:5] + b"\xff" * 3
    if kind == "keyed-by-another-workflow":
        return f"wf-{n % 50}".encode(), start  # names junk-n but is keyed by a real workflow
    if kind == "signal-to-unknown-workflow":
        signal = {"workflow_id": f"junk-{n}", "signal_name": "add", "request_id": f"junk-{n}"}
        return key, registry.encode("kronicle.workflow.SignalWorkflow", signal)
    if kind == "start-without-type":
        bad = {"workflow_id": f"junk-{n}", "workflow_type": "", "task_queue": "", "request_id": str(n)}
        return key, registry.encode("kronicle.workflow.StartWorkflow", bad)
    raise AssertionError(kind)


@pytest.mark.timeout(1800)
def test_poison_commands_all_reach_the_dlq_and_workflows_around_them_complete(
    kafka_bootstrap: str, tmp_path: Path, scale: Scale
) -> None:
    random = rng()
    registry = new_registry()
    namespace = f"chaos{uuid.uuid4().hex[:8]}"
    engine = EngineService(kafka_bootstrap, namespace, state_dir=tmp_path / "state", partitions=4)
    engine.start()
    topics = engine.topics
    queue = f"q{uuid.uuid4().hex[:6]}"
    reader = HistoryReader(kafka_bootstrap, topics, registry).start()
    worker = ScriptedWorker(kafka_bootstrap, topics, queue, registry).start()
    driver = LoadDriver(kafka_bootstrap, topics, queue, registry)
    dead: list[Any] = []
    dlq_done = threading.Event()

    def read_dlq() -> None:
        c = consumer(kafka_bootstrap)
        c.subscribe([topics.dlq])
        while not dlq_done.is_set():
            dead.extend(m for m in c.consume(1000, 0.3) if m.error() is None)
        c.close()

    dlq_thread = threading.Thread(target=read_dlq, daemon=True)
    dlq_thread.start()
    sent: collections.Counter[tuple[bytes | None, bytes | None]] = collections.Counter()
    kind_of: dict[tuple[bytes | None, bytes | None], str] = {}
    raw = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    began = time.monotonic()
    try:
        workflows = scale.workflows
        per_workflow = scale.garbage // workflows
        n = 0
        for i in range(workflows):
            driver.start(i)
            driver.producer.poll(0)
            for _ in range(per_workflow if i < workflows - 1 else scale.garbage - n):
                kind = KINDS[n % len(KINDS)]
                record = poison(kind, n, registry, random)
                sent[record] += 1
                kind_of[record] = kind
                while True:
                    try:
                        raw.produce(topics.commands, record[1], record[0])
                        break
                    except BufferError:
                        raw.poll(0.1)
                n += 1
        driver.flush()
        assert raw.flush(120) == 0
        closed = reader.wait_closed(workflows, scale.wait)
        deadline = time.monotonic() + scale.wait
        while len(dead) < scale.garbage and time.monotonic() < deadline:
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        reader.settle(3.0)
        time.sleep(1.0)  # a last look for DLQ records that should not be there
    finally:
        dlq_done.set()
        dlq_thread.join(30)
        worker.stop()
        reader.stop()
        engine.stop()
    report = reader.check(driver)
    got: collections.Counter[tuple[bytes | None, bytes | None]] = collections.Counter(
        (m.key(), m.value()) for m in dead
    )
    headers = [dict(m.headers() or []) for m in dead]
    without_reason = sum(1 for h in headers if not h.get(DLQ_HEADER_REASON))
    by_type = collections.Counter(h.get(DLQ_HEADER_ERROR_TYPE, b"?").decode() for h in headers)
    missing = collections.Counter({kind_of[r]: c for r, c in (sent - got).items()})
    unexpected = got - sent
    print_figures(
        "poison-commands",
        scale=scale.name,
        workflows=workflows,
        bad_records=sum(sent.values()),
        dead_lettered=len(dead),
        by_error_type=dict(by_type),
        closed=closed,
        problems=len(report.problems),
        seconds=f"{elapsed:.1f}",
    )
    if os.environ.get("KRONICLE_CHAOS_VERBOSE"):
        for h in headers[: len(KINDS)]:
            print(h.get(DLQ_HEADER_REASON))
    assert engine.failure is None, engine.failure
    assert not missing, f"bad records that never reached the DLQ, by kind: {dict(missing)}"
    assert not unexpected, f"records in the DLQ that were not bad: {list(unexpected)[:3]}"
    assert without_reason == 0, f"{without_reason} DLQ records without a reason"
    assert not worker.stats.errors, worker.stats.errors[:5]
    report.raise_if_failed()
    assert report.closed == workflows
