"""Building state changelogs the way the engine writes them: transactional, keyed by (cf, key)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Producer

from kronicle.state.changelog import encode_changelog_key
from kronicle.state.store import StateStore

Write = tuple[str, bytes, bytes | None]
Model = dict[tuple[str, bytes], bytes]

CFS = ("state", "timers")


class ChangelogWriter:
    """A transactional producer to one changelog topic, plus the state it should produce."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "transactional.id": f"changelog-test-{uuid.uuid4()}",
                "transaction.timeout.ms": 20_000,
                "linger.ms": 1,
            }
        )
        self.producer.init_transactions(30)
        self.expected: dict[int, Model] = {}
        self.committed_records: dict[int, int] = {}

    def transaction(self, partition: int, writes: Iterable[Write], *, commit: bool = True) -> None:
        """Produce ``writes`` to ``partition`` in one transaction, committed or aborted."""
        writes = list(writes)
        self.producer.begin_transaction()
        self._produce(partition, writes)
        # Flush first so an aborted transaction's records really are in the log.
        assert self.producer.flush(30) == 0
        if not commit:
            self.producer.abort_transaction(30)
            return
        self.producer.commit_transaction(30)
        model = self.expected.setdefault(partition, {})
        for cf, key, value in writes:
            if value is None:
                model.pop((cf, key), None)
            else:
                model[(cf, key)] = value
        self.committed_records[partition] = self.committed_records.get(partition, 0) + len(writes)

    def open_transaction(self, partition: int, writes: Iterable[Write]) -> None:
        """Begin a transaction, write to it and leave it open (flushed, neither committed nor aborted)."""
        self.producer.begin_transaction()
        self._produce(partition, list(writes))
        assert self.producer.flush(30) == 0

    def _produce(self, partition: int, writes: list[Write]) -> None:
        for cf, key, value in writes:
            self.producer.produce(self.topic, key=encode_changelog_key(cf, key), value=value, partition=partition)
            self.producer.poll(0)


def puts(n: int, *, prefix: str = "k", cf: str = "state", start: int = 0) -> list[Write]:
    return [(cf, f"{prefix}{i:05d}".encode(), f"value-{prefix}-{i}".encode() * 3) for i in range(start, start + n)]


def store_contents(store: StateStore, partition: int) -> Model:
    return {(cf, k): v for cf in store.column_families for k, v in store.scan(partition, cf)}


def new_store(root: Path, namespace: str | None = None) -> StateStore:
    return StateStore(root, namespace or f"ns-{uuid.uuid4().hex[:8]}", CFS)
