"""Kafka-native ingress with stock Confluent tooling pointed at the frontend's schema registry endpoint.

Commands produced by ``examples/kafka_ingress.py`` (a plain confluent-kafka producer and the stock
``AvroSerializer``) start and signal workflows that a real Worker completes; the engine's history,
visibility and command records decode with the stock ``AvroDeserializer``; malformed commands land
in the DLQ with their reason while the workflows around them complete.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from examples.kafka_ingress import CommandProducer, payload
from kronicle.client import Client
from kronicle.connectors.frontend import Frontend
from kronicle.engine.batch import DLQ_HEADER_ERROR_TYPE, DLQ_HEADER_REASON
from kronicle.engine.service import EngineService
from kronicle.worker import Worker
from tests.integration.conftest import new_id
from tests.kafka_helpers import consumer
from tests.unit.worker.workflows import Approval, Greeting, compose

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


def stock_deserializer(frontend: Frontend) -> AvroDeserializer:
    return AvroDeserializer(SchemaRegistryClient({"url": frontend.url}))


def records_of(engine: EngineService, topic: str, keys: set[bytes], want: int) -> list[Any]:
    """Records of ``topic`` whose key starts with one of ``keys``, read from the start until ``want`` arrived."""
    c = consumer(engine.bootstrap_servers)
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < want and time.monotonic() < deadline:
            for msg in c.consume(500, 0.5):
                if msg.error() is None and any((msg.key() or b"").startswith(k) for k in keys):
                    out.append(msg)
    finally:
        c.close()
    return out


async def wait_started(engine: EngineService, *workflow_ids: str, timeout: float = 30) -> None:
    """Wait until the engine applied each workflow's start (a producer's flush means only "in the log")."""
    deadline = time.monotonic() + timeout
    for wf in workflow_ids:
        while not await asyncio.to_thread(engine.read_history, wf):
            assert time.monotonic() < deadline, f"{wf} never started"
            await engine.wait_for_change(wf, 0.5)


async def test_a_plain_producer_starts_and_signals_workflows_that_a_worker_completes(
    engine: EngineService, frontend: Frontend, client: Client
) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    greet, approval = new_id("greet"), new_id("approval")
    producer = await asyncio.to_thread(CommandProducer, engine.bootstrap_servers, frontend.url, engine.namespace)

    def send() -> None:
        # In a thread: the serializer asks the registry (served by this very event loop) for ids.
        producer.start(greet, "Greeting", queue, "Kafka", request_id="start-1")
        producer.start(greet, "Greeting", queue, "Kafka", request_id="start-1")  # a retry: no second run
        producer.start(approval, "Approval", queue, request_id="start-2")
        producer.signal(approval, "approve", "alice", request_id="approve-alice")
        producer.signal(approval, "approve", "alice", request_id="approve-alice")  # a retry: applied once
        producer.signal(approval, "approve", "bob", request_id="approve-bob")
        producer.flush()

    async with Worker(client, task_queue=queue, workflows=[Greeting, Approval], activities=[compose]):
        await asyncio.to_thread(send)
        await wait_started(engine, greet, approval)
        assert await client.get_workflow_handle(greet).result() == "Hello, Kafka!"
        assert await client.get_workflow_handle(approval).result() == ["alice", "bob"]
    events = engine.read_history(greet)
    assert sum(e["event_type"] == "WorkflowExecutionStarted" for e in events) == 1


async def test_the_hand_encoded_record_of_the_kcat_example_starts_a_workflow(
    engine: EngineService, frontend: Frontend, client: Client
) -> None:
    """examples/kcat_start.sh writes the record; a plain producer sends it as kcat would (key, murmur2)."""
    queue = f"q{uuid.uuid4().hex[:8]}"
    wf = new_id("kcat")
    script = Path(__file__).parents[3] / "examples" / "kcat_start.sh"
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(script),
        wf,
        "Greeting",
        queue,
        f"req-{wf}",
        '"shell"',
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "REGISTRY": frontend.url},
    )
    record, _ = await proc.communicate()
    assert proc.returncode == 0
    subject, datum = engine.registry.decode(record)
    assert (subject, datum["workflow_id"], datum["request_id"]) == ("kronicle.workflow.StartWorkflow", wf, f"req-{wf}")
    producer = Producer({"bootstrap.servers": engine.bootstrap_servers, "partitioner": "murmur2_random"})
    async with Worker(client, task_queue=queue, workflows=[Greeting], activities=[compose]):
        producer.produce(engine.topics.commands, record, wf.encode())
        producer.produce(engine.topics.commands, record, wf.encode())  # sent twice: one run
        assert producer.flush(10) == 0
        await wait_started(engine, wf)
        assert await client.get_workflow_handle(wf).result() == "Hello, shell!"
    assert sum(e["event_type"] == "WorkflowExecutionStarted" for e in engine.read_history(wf)) == 1


async def test_engine_records_decode_with_the_stock_deserializer(engine: EngineService, frontend: Frontend) -> None:
    """History, visibility and command records, each read by AvroDeserializer against the frontend."""
    wf = new_id("decode")
    producer = await asyncio.to_thread(CommandProducer, engine.bootstrap_servers, frontend.url, engine.namespace)
    await asyncio.to_thread(producer.start, wf, "Nobody", "no-worker-here", {"n": 1}, request_id="decode-1")
    await asyncio.to_thread(producer.flush)
    deserializer = stock_deserializer(frontend)
    topics = engine.topics
    for topic, want in ((topics.commands, 1), (topics.history, 1), (topics.visibility, 1)):
        msgs = await asyncio.to_thread(records_of, engine, topic, {wf.encode()}, want)
        assert len(msgs) >= want, topic
        for msg in msgs:
            value = msg.value()
            stock = await asyncio.to_thread(deserializer, value, SerializationContext(topic, MessageField.VALUE))
            subject, ours = engine.registry.decode(value)
            assert stock == ours, (topic, subject)
            assert stock["workflow_id"] == wf
    history = await asyncio.to_thread(records_of, engine, topics.history, {wf.encode()}, 1)
    batch = await asyncio.to_thread(
        deserializer, history[0].value(), SerializationContext(topics.history, MessageField.VALUE)
    )
    assert [e["event_type"] for e in batch["events"]][:2] == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"]


async def test_malformed_commands_go_to_the_dlq_with_a_reason_and_workflows_around_them_complete(
    engine: EngineService, frontend: Frontend, client: Client
) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:6]
    good = [new_id(f"good-{tag}") for _ in range(5)]

    def produce_all() -> dict[str, tuple[bytes, str, str]]:
        """Bad records between good starts, from a plain producer: key -> (value, error type, reason words)."""
        registry = SchemaRegistryClient({"url": frontend.url})
        ctx = SerializationContext(engine.topics.commands, MessageField.VALUE)
        serializers = {
            name: AvroSerializer(
                registry,
                registry.get_latest_version(f"kronicle.workflow.{name}").schema.schema_str,
                conf={"auto.register.schemas": False},
            )
            for name in ("StartWorkflow", "SignalWorkflow")
        }

        def command(name: str, **datum: Any) -> bytes:
            out = serializers[name](datum, ctx)
            assert out is not None
            return out

        def start(workflow_id: str, **fields: Any) -> bytes:
            datum = {"workflow_id": workflow_id, "workflow_type": "Greeting", "task_queue": queue}
            return command("StartWorkflow", **{**datum, "request_id": workflow_id, **fields})

        bad = {
            f"bad-{tag}-garbage": (b"\x17not avro at all", "decode", "expected 0x00"),
            f"bad-{tag}-json": (b'{"workflow_id": "x"}', "decode", "looks like JSON"),
            f"bad-{tag}-truncated": (b"\x00\x00\x00", "decode", "at least 5"),
            f"bad-{tag}-unknown-id": (b"\x00\x00\x0f\x42\x40\x02x", "decode", "unknown schema id 1000000"),
            f"bad-{tag}-empty-id": (start(""), "invalid", "workflow_id is empty"),
            f"bad-{tag}-empty-type": (start(f"bad-{tag}-empty-type", workflow_type=""), "invalid", "workflow_type"),
            f"bad-{tag}-bad-queue": (start(f"bad-{tag}-bad-queue", task_queue="no spaces!"), "invalid", "task_queue"),
            f"bad-{tag}-negative": (start(f"bad-{tag}-negative", run_timeout_ms=-5), "invalid", "must not be negative"),
            f"bad-{tag}-unknown-wf": (
                command("SignalWorkflow", workflow_id=f"bad-{tag}-unknown-wf", signal_name="approve", request_id="s"),
                "invalid",
                "WorkflowNotFound",
            ),
        }
        raw = Producer({"bootstrap.servers": engine.bootstrap_servers, "partitioner": "murmur2_random"})
        for i, (key, (value, _, _)) in enumerate(bad.items()):
            if i % 2 == 0:
                wf = good[i // 2]
                raw.produce(engine.topics.commands, start(wf, input=[payload(wf)]), wf.encode())
            raw.produce(engine.topics.commands, value, key.encode())
        assert raw.flush(10) == 0
        return bad

    async with Worker(client, task_queue=queue, workflows=[Greeting], activities=[compose]):
        bad = await asyncio.to_thread(produce_all)
        dead = await asyncio.to_thread(records_of, engine, engine.topics.dlq, {f"bad-{tag}".encode()}, len(bad))
        await wait_started(engine, *good)
        for wf in good:
            assert await client.get_workflow_handle(wf).result() == f"Hello, {wf}!"
    got = {m.key().decode(): dict(m.headers() or []) for m in dead}
    assert set(got) == set(bad), f"missing from the DLQ: {set(bad) - set(got)}"
    for key, (_, error_type, words) in bad.items():
        reason = got[key][DLQ_HEADER_REASON].decode()
        assert got[key][DLQ_HEADER_ERROR_TYPE].decode() == error_type, (key, reason)
        assert words in reason, (key, reason)
    # The original record is kept as it was produced.
    assert [m.value() for m in dead if m.key().decode() == f"bad-{tag}-garbage"] == [b"\x17not avro at all"]
