"""The projector: ``kronicle.<ns>.visibility`` into a :class:`VisibilityStore`, at least once.

Each step consumes a batch (read_committed, so aborted engine transactions are
never seen), decodes it with the schema registry, upserts it in one database
transaction, and only then commits the consumer offsets. A crash anywhere in
between re-delivers the batch, and the store's version-ordered upsert makes
the second application a no-op. Undecodable records are counted and logged
with their offset and skipped; they never stop the projector.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kronicle.connectors.visibility._rows import ExecutionUpdate
from kronicle.connectors.visibility._store import VisibilityStore
from kronicle.schemas import SchemaDecodeError, SchemaRegistry, default_registry
from kronicle.topics import NamespaceTopics

__all__ = ["ProjectorConfig", "ProjectorStats", "VisibilityProjector"]

log = logging.getLogger(__name__)

RECORD_NAME = "kronicle.workflow.VisibilityRecord"
HEADER_SEQUENCE = "kronicle.seq"
_RETRY_BACKOFF_S = 1.0


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
    """Where the projector reads from and how it batches."""

    bootstrap_servers: str
    namespace: str
    batch_size: int = 1000
    """Most records applied in one database transaction."""
    poll_timeout_s: float = 0.2
    """How long one step waits for records when the topic is idle."""
    min_batch_interval_s: float = 0.02
    """In the background loop, the least time from one step's start to the next while records keep coming.

    Records that arrive meanwhile join one batch: one database transaction and one
    offset commit instead of several. A step after an empty one, or after a full
    batch (a backlog), starts at once, so this adds at most this much to the
    visibility lag, and only under a steady stream.
    """
    group_id: str = ""
    """Consumer group; empty means ``kronicle-visibility-<namespace>``."""
    consumer_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Extra librdkafka settings (they win over the projector's)."""

    @property
    def group(self) -> str:
        return self.group_id or f"kronicle-visibility-{self.namespace}"

    @property
    def topic(self) -> str:
        return NamespaceTopics(self.namespace).visibility


@dataclasses.dataclass
class ProjectorStats:
    """Counters since the projector was created."""

    consumed: int = 0
    """Records read from the topic (including the undecodable ones)."""
    applied: int = 0
    """Records that changed a row."""
    stale: int = 0
    """Records ignored because the row already had that state version or a later one (replays, duplicates)."""
    undecodable: int = 0
    """Records skipped because they could not be decoded."""
    batches: int = 0
    """Database transactions committed."""
    close_lag_ms: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=100_000)
    )
    """For closed runs: from the close time in the record to the row being durable (the latest 100,000)."""

    def lag_percentile(self, q: float) -> float | None:
        """The q-quantile (0..1) of :attr:`close_lag_ms`, or None when there is no sample."""
        if not self.close_lag_ms:
            return None
        ordered = sorted(self.close_lag_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class VisibilityProjector:
    """Keeps a :class:`VisibilityStore` up to date with one namespace's visibility topic.

    Either ``async with VisibilityProjector(config, store):`` (or :meth:`start` /
    :meth:`stop`) to run in the background, or call :meth:`run_once` yourself
    (tests, tools) without starting it.
    """

    def __init__(self, config: ProjectorConfig, store: VisibilityStore, registry: SchemaRegistry | None = None) -> None:
        self.config = config
        self.store = store
        self.registry = registry or default_registry()
        self.stats = ProjectorStats()
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._positions: dict[tuple[str, int], int] = {}
        """Next offset per partition after the applied batches (their asynchronous commits may be in flight)."""

    # -- lifecycle ----------------------------------------------------------------------------------

    def _ensure_consumer(self) -> Consumer:
        if self._closed:
            raise RuntimeError("this projector was stopped; create a new one")
        if self._consumer is None:
            conf: dict[str, Any] = {
                "bootstrap.servers": self.config.bootstrap_servers,
                "group.id": self.config.group,
                "client.id": f"kronicle-visibility-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "on_commit": _on_commit,
            }
            conf.update(self.config.consumer_config)
            self._consumer = Consumer(conf)
            self._consumer.subscribe([self.config.topic])
        return self._consumer

    async def start(self) -> None:
        """Join the consumer group and project in the background until :meth:`stop`."""
        if self._task is not None:
            raise RuntimeError("the projector is already running")
        self._ensure_consumer()
        self._task = asyncio.create_task(self._loop(), name=f"visibility-projector-{self.config.namespace}")

    async def stop(self) -> None:
        """Finish the current step, leave the consumer group and close the consumer (idempotent).

        The store is not closed: it belongs to the caller.
        """
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None and not self._closed:
            await asyncio.to_thread(self._close, self._consumer)
        self._closed = True

    def _close(self, consumer: Consumer) -> None:
        # The offsets are committed asynchronously after each batch; commit the last ones once more,
        # synchronously, so a restart in the same group does not re-apply what was applied.
        # Only for partitions still ours: a partition a rebalance moved may have gone further since.
        with contextlib.suppress(KafkaException):
            owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._positions.items() if (t, p) in owned]
            if offsets:
                consumer.commit(offsets=offsets, asynchronous=False)
        consumer.close()

    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this projector currently owns (empty before it joined the group)."""
        if self._consumer is None or self._closed:
            return []
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    async def __aenter__(self) -> VisibilityProjector:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.min_batch_interval_s
        while not self._stopping:
            began = loop.time()
            try:
                consumed = await self.run_once()
            except Exception:
                log.exception("visibility projector step failed; retrying in %.0f s", _RETRY_BACKOFF_S)
                await asyncio.sleep(_RETRY_BACKOFF_S)
                continue
            # Under a steady stream, let records gather: each step has a fixed cost (a database
            # transaction with its fsync, an offset commit to the broker, two thread hand-offs).
            rest = began + interval - loop.time()
            if 0 < consumed < self.config.batch_size and rest > 0:
                await asyncio.sleep(rest)

    # -- one step -----------------------------------------------------------------------------------

    async def run_once(self, timeout: float | None = None) -> int:
        """Consume one batch, apply it, then commit its offsets; returns the number of records consumed.

        Raises:
            Exception: whatever the store raised; the consumer was rewound to the
                batch's first records, so the next step retries them.
        """
        consumer = self._ensure_consumer()
        wait = self.config.poll_timeout_s if timeout is None else timeout
        # What the client has already fetched is taken here, on the loop (no thread hand-off);
        # only an empty queue waits for the first record on a thread.
        messages = consumer.consume(self.config.batch_size, 0)
        if not messages:
            messages = await asyncio.to_thread(_fetch, consumer, self.config.batch_size, wait)
        updates: list[ExecutionUpdate] = []
        first: dict[tuple[str, int], int] = {}
        last: dict[tuple[str, int], int] = {}
        for msg in messages:
            error = msg.error()
            if error is not None:
                log.warning("visibility consumer: %s", error)
                continue
            tp = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            first.setdefault(tp, offset)
            last[tp] = offset
            self.stats.consumed += 1
            update = self._decode(msg)
            if update is not None:
                updates.append(update)
        if not last:
            return 0
        try:
            result = await self.store.apply(updates)
        except BaseException:
            for (topic, partition), offset in first.items():
                with contextlib.suppress(KafkaException):
                    consumer.seek(TopicPartition(topic, partition, offset))
            raise
        now_ms = time.time() * 1000
        self.stats.applied += result.applied
        self.stats.stale += result.stale
        self.stats.batches += 1
        for u in updates:
            close = u.record.get("close_time_ms")
            if close is not None:
                self.stats.close_lag_ms.append(now_ms - close)
        # Rows are durable: now the offsets may move past them. Asynchronously: a commit that fails
        # (logged by _on_commit) only means the batch is applied again, which is harmless.
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
            self._positions.update(((t, p), o + 1) for (t, p), o in last.items())
        except KafkaException as exc:
            # E.g. a rebalance took the partitions away: the next owner re-applies the batch, which is harmless.
            log.warning("visibility projector: offset commit failed (%s); the batch will be re-applied", exc)
        return len(messages)

    def _decode(self, msg: Message) -> ExecutionUpdate | None:
        value = msg.value()
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        if value is None:
            # Nothing the engine writes; a tombstone from someone else compacting the topic.
            log.info("visibility record %s has no value (tombstone); ignored", where)
            return None
        try:
            datum = self.registry.decode_as(value, RECORD_NAME)
        except SchemaDecodeError as exc:
            self.stats.undecodable += 1
            log.warning("visibility record %s cannot be decoded and is skipped: %s", where, exc)
            return None
        return ExecutionUpdate(self.config.namespace, datum, _sequence(msg))


def _fetch(consumer: Consumer, limit: int, wait: float) -> list[Message]:
    """Up to ``limit`` records: wait up to ``wait`` for the first, then take only what is already fetched.

    ``Consumer.consume(limit, wait)`` would wait the whole ``wait`` unless ``limit``
    records arrive, which puts ``wait`` on every record's latency when traffic is light.
    """
    first = consumer.poll(wait)
    if first is None:
        return []
    return [first, *consumer.consume(limit - 1, 0)] if limit > 1 else [first]


def _on_commit(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    # Runs inside the consumer's poll: the result of an asynchronous offset commit.
    failed = [p for p in partitions if p.error is not None]
    if err is not None or failed:
        log.warning(
            "visibility projector: offset commit failed (%s); those records will be re-applied",
            err or ", ".join(f"{p.topic}[{p.partition}]: {p.error}" for p in failed),
        )


def _sequence(msg: Message) -> int:
    raw = msg.headers() or []
    for name, value in raw.items() if isinstance(raw, dict) else raw:
        if name == HEADER_SEQUENCE and value is not None:
            try:
                return int(value.decode() if isinstance(value, bytes) else value)
            except ValueError:
                return 0
    return 0
