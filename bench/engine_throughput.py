"""Commands per second through one partition processor, against the raw Kafka ceiling.

Both measurements run in one invocation on the same broker and the same kind
of topics, so machine drift affects both:

* ``raw_ceiling_per_s``: a plain confluent-kafka consume-transform-produce loop
  with the same transactional shape as the engine (batches of up to
  ``--batch`` records; per consumed record one output record and one
  changelog-sized record; ``send_offsets_to_transaction``; commit);
* ``commands_per_s``: :class:`kronicle.engine.processor.Processor` running the
  counter handler (decode, state read and write through the overlay, an Avro
  output record, the changelog, RocksDB write batches after each commit).

Usage::

    python -m bench.engine_throughput [--json] [--commands 50000] [--kafka HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from kronicle.connectors.local_kafka import KAFKA_VERSION, LocalBroker
from kronicle.engine.counter import COUNTER_ADD, CounterHandler, counter_registry
from kronicle.engine.processor import Processor, ProcessorConfig
from kronicle.schemas import SchemaRegistry
from kronicle.topics import NamespaceTopics, ensure_namespace_topics


def _produce_commands(bootstrap: str, topic: str, n: int, *, keys: int, padding: int, codec: SchemaRegistry) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})
    size = 0
    for i in range(n):
        value = codec.encode(
            COUNTER_ADD, {"request_id": f"r{i}", "amount": 1, "delay_ms": 0, "padding": b"x" * padding}
        )
        size = len(value)
        while True:
            try:
                producer.produce(topic, value, f"wf-{i % keys}".encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return size


def raw_ceiling(bootstrap: str, topics: NamespaceTopics, n: int, batch: int) -> float:
    """Transactional consume-produce over the commands topic: records per second."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "group.protocol": "consumer",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"raw-{uuid.uuid4()}",
            "linger.ms": 2,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    producer.init_transactions(30)
    consumer.subscribe([topics.commands])
    done = 0
    started: float | None = None
    while done < n:
        first = consumer.poll(1.0)
        if first is None:
            continue
        msgs = [first, *consumer.consume(batch - 1, 0.002)]
        if started is None:
            started = time.perf_counter()
        producer.begin_transaction()
        for m in msgs:
            if m.error() is not None:
                continue
            value = m.value()
            producer.produce(topics.history, value, m.key())
            producer.produce(topics.changelog, value, m.key(), partition=m.partition())
            done += 1
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return n / elapsed


def engine(
    bootstrap: str, topics: NamespaceTopics, n: int, batch: int, state_dir: Path
) -> tuple[float, dict[str, Any]]:
    codec = counter_registry()
    config = ProcessorConfig(
        bootstrap, topics.namespace, state_dir, f"bench-{uuid.uuid4().hex[:6]}", max_batch_records=batch
    )
    processor = Processor(config, CounterHandler(topics.history, codec.encode), codec)
    processor.start()
    done = 0
    started: float | None = None
    iterations = 0
    try:
        while done < n:
            applied = processor.run_once()
            if applied and started is None:
                started = time.perf_counter()
            done += applied
            iterations += 1 if applied else 0
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        processor.close()
    return n / elapsed, {"transactions": iterations, "mean_batch": n / max(1, iterations)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=50_000)
    parser.add_argument("--keys", type=int, default=1000, help="distinct workflow ids (keys)")
    parser.add_argument("--padding", type=int, default=300, help="bytes of padding per command (realistic size)")
    parser.add_argument("--batch", type=int, default=1000, help="most records per transaction (both loops)")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the namespace (one processor)")
    parser.add_argument("--kafka", help="use this broker instead of starting one")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    broker = None
    bootstrap = args.kafka
    if not bootstrap:
        broker = LocalBroker()
        broker.start()
        bootstrap = broker.bootstrap_servers
    try:
        codec = counter_registry()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        raw_topics = NamespaceTopics(f"benchraw{uuid.uuid4().hex[:6]}")
        eng_topics = NamespaceTopics(f"benchengine{uuid.uuid4().hex[:6]}")
        for t in (raw_topics, eng_topics):
            ensure_namespace_topics(admin, t.namespace, args.partitions)
        size = _produce_commands(
            bootstrap, raw_topics.commands, args.commands, keys=args.keys, padding=args.padding, codec=codec
        )
        _produce_commands(
            bootstrap, eng_topics.commands, args.commands, keys=args.keys, padding=args.padding, codec=codec
        )
        ceiling = raw_ceiling(bootstrap, raw_topics, args.commands, args.batch)
        with tempfile.TemporaryDirectory(prefix="kronicle-bench-") as state_dir:
            rate, detail = engine(bootstrap, eng_topics, args.commands, args.batch, Path(state_dir))
    finally:
        if broker is not None:
            broker.stop()
    result = {
        "commands_per_s": round(rate, 1),
        "raw_ceiling_per_s": round(ceiling, 1),
        "fraction_of_ceiling": round(rate / ceiling, 3),
        "commands": args.commands,
        "record_bytes": size,
        "partitions": args.partitions,
        "max_batch": args.batch,
        **detail,
        "kafka": KAFKA_VERSION,
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
