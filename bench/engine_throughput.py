"""Commands per second through one partition processor, against the raw Kafka ceiling.

Both measurements run in one invocation on the same broker and the same kind
of topics, so machine drift affects both:

* ``raw_ceiling_per_s``: a plain confluent-kafka consume-produce loop with the
  same transactional shape as the engine (batches of up to ``--batch``
  records, ``send_offsets_to_transaction``, commit), writing per command the
  engine's worst-case records (a 40-byte output and a 16-byte changelog
  record) and doing nothing else: the physical ceiling;
* ``commands_per_s``: :class:`kronicle.engine.processor.Processor` running the
  counter handler (decode, state read and write through the overlay, an Avro
  output record per command, the changelog (one record per key written in the
  batch), RocksDB write batches after each commit).

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

_OUTPUT_BYTES = 40
_CHANGELOG_BYTES = 16


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
            "partitioner": "murmur2_random",  # as the engine's producer
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
            # The engine's record shape at most: one small output and one changelog
            # record per command (it writes one changelog record per key per batch).
            producer.produce(topics.history, value[:_OUTPUT_BYTES] if value else value, m.key())
            producer.produce(
                topics.changelog, value[:_CHANGELOG_BYTES] if value else value, m.key(), partition=m.partition()
            )
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
    parser.add_argument("--rounds", type=int, default=2, help="alternating raw/engine rounds; best of each")
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

        def fresh(kind: str) -> tuple[NamespaceTopics, int]:
            topics = NamespaceTopics(f"bench{kind}{uuid.uuid4().hex[:6]}")
            ensure_namespace_topics(admin, topics.namespace, args.partitions)
            n = args.commands if kind != "warmup" else min(args.commands, 10_000)
            size = _produce_commands(bootstrap, topics.commands, n, keys=args.keys, padding=args.padding, codec=codec)
            return topics, size

        # A fresh broker JVM is slow until its hot paths are compiled: warm it up,
        # then alternate the two loops so drift affects both; best run of each.
        warm, size = fresh("warmup")
        raw_ceiling(bootstrap, warm, min(args.commands, 10_000), args.batch)
        ceilings: list[float] = []
        rates: list[tuple[float, dict[str, Any]]] = []
        for _ in range(args.rounds):
            ceilings.append(raw_ceiling(bootstrap, fresh("raw")[0], args.commands, args.batch))
            with tempfile.TemporaryDirectory(prefix="kronicle-bench-") as state_dir:
                rates.append(engine(bootstrap, fresh("engine")[0], args.commands, args.batch, Path(state_dir)))
        ceiling = max(ceilings)
        rate, detail = max(rates, key=lambda r: r[0])
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
        "raw_runs_per_s": [round(c, 1) for c in ceilings],
        "engine_runs_per_s": [round(r, 1) for r, _ in rates],
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
