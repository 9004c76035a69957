"""Drive the engine with the counter handler against a real broker, and check what it did."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from kronicle.connectors.local_kafka import die_with_parent
from kronicle.engine.counter import COUNTER_ADD, COUNTER_OUTPUT, counter_registry
from kronicle.schemas import SchemaRegistry
from kronicle.topics import NamespaceTopics, ensure_namespace_topics
from tests.kafka_helpers import consumer

REPO = Path(__file__).resolve().parents[1]


def counter_codec() -> SchemaRegistry:
    return counter_registry()


@dataclass(frozen=True)
class Add:
    key: str
    request_id: str
    amount: int
    delay_ms: int = 0


def new_namespace(bootstrap: str, partitions: int = 4) -> NamespaceTopics:
    ns = f"t{uuid.uuid4().hex[:10]}"
    ensure_namespace_topics(AdminClient({"bootstrap.servers": bootstrap}), ns, partitions)
    return NamespaceTopics(ns)


def make_adds(n: int, keys: int = 20, delay_ms: int = 0, prefix: str = "r") -> list[Add]:
    return [Add(f"k{i % keys}", f"{prefix}{i}", (i % 7) + 1, delay_ms) for i in range(n)]


def produce_adds(bootstrap: str, topics: NamespaceTopics, adds: Iterable[Add], codec: SchemaRegistry) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    for add in adds:
        value = codec.encode(
            COUNTER_ADD, {"request_id": add.request_id, "amount": add.amount, "delay_ms": add.delay_ms, "padding": b""}
        )
        while True:
            try:
                producer.produce(topics.commands, value, add.key.encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def produce_raw(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value in records:
        producer.produce(topic, value, key)
    assert producer.flush(60) == 0


class OutputReader:
    """Follows the counter's outputs (read_committed) and remembers all of them."""

    def __init__(self, bootstrap: str, topics: NamespaceTopics, codec: SchemaRegistry) -> None:
        self._consumer = consumer(bootstrap)
        self._consumer.subscribe([topics.history])
        self._codec = codec
        self.outputs: list[dict[str, Any]] = []
        self.headers: list[dict[str, bytes]] = []

    def read_until(self, count: int, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.outputs) < count and time.monotonic() < deadline:
            self.poll(0.5)
        return self.outputs

    def poll(self, timeout: float) -> None:
        for msg in self._consumer.consume(1000, timeout):
            if msg.error() is not None:
                continue
            value = msg.value()
            assert value is not None
            name, datum = self._codec.decode(value)
            assert name == COUNTER_OUTPUT
            self.outputs.append(datum)
            self.headers.append(dict(msg.headers() or []))  # type: ignore[arg-type]

    def settle(self, quiet: float = 3.0) -> None:
        """Keep reading until nothing new arrives for ``quiet`` seconds (to catch late duplicates)."""
        last = len(self.outputs)
        since = time.monotonic()
        while time.monotonic() - since < quiet:
            self.poll(0.3)
            if len(self.outputs) != last:
                last, since = len(self.outputs), time.monotonic()

    def close(self) -> None:
        self._consumer.close()


def check_exactly_once(adds: list[Add], outputs: list[dict[str, Any]]) -> None:
    """Every add produced exactly one output, and every key's outputs are its running totals."""
    counts = collections.Counter(o["request_id"] for o in outputs)
    duplicated = {r: c for r, c in counts.items() if c > 1}
    missing = {a.request_id for a in adds} - set(counts)
    assert not duplicated, f"applied more than once: {sorted(duplicated.items())[:10]}"
    assert not missing, f"lost: {sorted(missing)[:10]} ({len(missing)} in all)"
    assert len(outputs) == len(adds)
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for o in outputs:
        by_key[o["key"]].append(o["total"])
    amounts = {a.request_id: a.amount for a in adds}
    for key, totals in by_key.items():
        expected_final = sum(a.amount for a in adds if a.key == key)
        assert max(totals) == expected_final, f"{key}: final total {max(totals)} != {expected_final}"
        # Totals of one key are strictly increasing prefix sums, each one distinct.
        assert len(set(totals)) == len(totals), f"{key}: a total appears twice"
    assert sum(amounts.values()) == sum(max(t) for t in by_key.values())


class EngineProcess:
    """``kronicle engine run`` with the counter handler, as a subprocess that can be killed -9."""

    def __init__(
        self, bootstrap: str, topics: NamespaceTopics, state_dir: Path, instance_id: str, *, standby: bool = False
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.state_dir = state_dir
        self.instance_id = instance_id
        self.standby = standby
        self.log = state_dir.parent / f"engine-{instance_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EngineProcess:
        cmd = [
            sys.executable, "-m", "kronicle", "engine", "run",
            "--kafka", self.bootstrap,
            "--state-dir", str(self.state_dir),
            "--namespace", self.topics.namespace,
            "--instance-id", self.instance_id,
        ]  # fmt: skip
        if self.standby:
            cmd.append("--standby")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(die_with_parent(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
