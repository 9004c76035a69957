"""The partition processor: exactly-once command processing on Kafka transactions.

One :class:`Processor` per engine process serves every commands partition the
consumer group gives it (Kafka Streams' EOS v2 / KIP-447 model):

* a ``read_committed`` consumer in the group ``kronicle-engine-<ns>``, using the
  KIP-848 ``consumer`` group protocol;
* one transactional producer per process whose transactional id is stable
  across restarts of the same instance, so a restart aborts the transaction its
  predecessor left open instead of waiting for it to time out;
* per loop: consume up to ``max_batch_records`` for at most ``max_batch_ms``,
  fire due timers, apply every command through the handler into per-partition
  overlays, then ONE transaction carrying every output record, every changelog
  record and the consumed offsets (``send_offsets_to_transaction`` with the
  group metadata, which fences zombies after a rebalance);
* only after the commit succeeds are the writes applied to RocksDB, in one
  write batch per partition that also records the changelog offset reached. On
  an abort the overlays are dropped and the consumer rewinds to the first
  offset of the batch.

Broker failures are survived the way Kafka Streams survives them
(:mod:`kronicle.engine._transactions`): every transactional call is bounded and
retried while its error is retriable, an abortable error aborts and rewinds,
and a producer that failed fatally without another instance behind it (e.g.
the transaction coordinator timed out a batch held up by a dead partition
leader) is replaced by a new one with the same transactional id. The outcome
of that batch is then unknown here, so its partitions resynchronise from Kafka:
the store restores the changelog tail it may have missed and the consumer goes
back to the group's committed offsets. A real fencing by another live process
with the same instance id stops the processor with
:class:`ProcessorFencedError`.

Partitions start paused when assigned and are resumed once their store is
restored from the changelog (from the local checkpoint, so usually only the
tail); restoration is interleaved with processing of the other partitions.
``on_commit`` is told the keys of every committed batch, ``on_restored`` every
partition that finished restoring (readers waiting for a change are woken by
either).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from kronicle.engine import metrics
from kronicle.engine._transactions import (
    ProcessorFencedError,
    ProducerReplaced,
    TransactionAborted,
    TransactionalProducer,
    TransactionRecoveryError,
)
from kronicle.engine.batch import Codec, InputRecord, PartitionBatch
from kronicle.engine.handler import TIMER_COLUMN_FAMILIES, Handler
from kronicle.state.changelog import encode_changelog_key
from kronicle.state.restore import Restorer
from kronicle.state.standby import StandbyReplicator
from kronicle.state.store import StateStore, StoreOptions
from kronicle.topics import NamespaceTopics

__all__ = [
    "ENGINE_COLUMN_FAMILY",
    "HEADER_SEQUENCE",
    "HEADER_VERSION",
    "Processor",
    "ProcessorConfig",
    "ProcessorFencedError",
    "TransactionRecoveryError",
]

log = logging.getLogger(__name__)

ENGINE_COLUMN_FAMILY = "engine"
"""Column family for the shell's own per-partition values (the output sequence number)."""
HEADER_SEQUENCE = "kronicle.seq"
HEADER_VERSION = "kronicle.version"

_SEQ_KEY = b"seq"
_MISSING_TOPIC_RECHECK_S = 10.0
_Headers = list[tuple[str, str | bytes | None]]
_RESYNC_PAUSE_S = 0.2


@dataclasses.dataclass(frozen=True)
class ProcessorConfig:
    """How one engine process runs its partitions."""

    bootstrap_servers: str
    namespace: str
    state_dir: Path
    """RocksDB stores live in ``<state_dir>/<namespace>/<partition>/``."""
    instance_id: str
    """Stable name of this process (e.g. ``engine-0``); its transactional id derives from it."""
    max_batch_records: int = 1000
    """Most commands in one transaction."""
    max_batch_ms: float = 2.0
    """How long a batch waits to fill after its first command arrived, when the engine is busy.

    The wait only happens when commands were already waiting when the engine turned to
    the log after its previous commit, or more than one arrived together: then more are
    coming, and waiting lets them share one transaction. A lone command reaching an idle
    engine is committed at once (waiting on every batch cost ~2 ms per transaction, four
    per one-activity workflow). Never waiting widened the tail under load: a command
    arriving just after the batch closed waits for a whole commit. docs/benchmarks.md
    has the figures.
    """
    idle_poll_ms: float = 100.0
    """Poll timeout when idle (shortened to the next due timer)."""
    timer_fire_limit: int = 500
    """Most timers fired per partition per batch, so a burst of timers cannot stall commands."""
    transaction_timeout_ms: int = 10_000
    """Broker-side abort of a transaction left open by a crashed process of another instance."""
    operation_timeout_s: float = 30.0
    """How long one transactional call (or a committed-offsets fetch) is retried while it fails retriably."""
    max_producer_replacements: int = 5
    """Producer replacements in a row, without a commit in between, before the processor gives up."""
    failover_version: int = 0
    """Namespace failover version written in every output record's headers."""
    standby_replicas: bool = False
    """Tail the changelog of partitions this process does not own, for fast takeover."""
    store_options: StoreOptions = dataclasses.field(default_factory=StoreOptions)
    """RocksDB tuning of the process's stores (its memory bound: ``block_cache_bytes``)."""
    consumer_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    producer_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def group_id(self) -> str:
        return f"kronicle-engine-{self.namespace}"

    @property
    def transactional_id(self) -> str:
        return f"kronicle-engine-{self.namespace}-{self.instance_id}"


class _Phase(enum.Enum):
    RESTORING = "restoring"
    ACTIVE = "active"


@dataclasses.dataclass
class _Partition:
    phase: _Phase
    seq: int = 0
    next_due: int | None = None
    """Due time of the earliest timer in the store (None: no timers)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Processor:
    """Runs a :class:`~kronicle.engine.handler.Handler` over a namespace's commands partitions.

    Use ``start()``, then ``run()`` (blocks until ``stop()``), then ``close()``;
    or ``run_forever(stop_event)`` for the three together.
    """

    def __init__(
        self,
        config: ProcessorConfig,
        handler: Handler,
        codec: Codec,
        *,
        clock: Callable[[], int] = _now_ms,
        topic_guard: Callable[[str], bool] | None = None,
        on_commit: Callable[[set[bytes]], None] | None = None,
        on_restored: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self.topics = NamespaceTopics(config.namespace)
        self._handler = handler
        self._codec = codec
        self._clock = clock
        cfs = [*handler.column_families, *TIMER_COLUMN_FAMILIES, ENGINE_COLUMN_FAMILY]
        self.store = StateStore(config.state_dir, config.namespace, cfs, options=config.store_options)
        self._partitions: dict[int, _Partition] = {}
        self._stop = threading.Event()
        self._started = False
        self._closed = False
        self._ns = config.namespace
        self._consumer: Consumer | None = None
        self._txn: TransactionalProducer | None = None
        self._restorer: Restorer | None = None
        self._standby: StandbyReplicator | None = None
        self._partition_count = 0
        self._version_header = str(config.failover_version).encode()
        self._lag_updated = 0.0
        self._topic_guard = topic_guard
        self._topics_checked: dict[str, tuple[bool, float]] = {}
        self._on_commit = on_commit
        self._on_restored = on_restored
        self.store_lock = threading.Lock()
        """Held while a partition's store is opened or closed; readers in other threads take it too."""
        clash = set(handler.column_families) & {*TIMER_COLUMN_FAMILIES, ENGINE_COLUMN_FAMILY}
        if clash:
            raise ValueError(f"handler column families {sorted(clash)} are reserved for the engine shell")

    # -- lifecycle -----------------------------------------------------

    def start(self) -> None:
        """Check the topics, initialise transactions and join the consumer group."""
        if self._started:
            raise RuntimeError("processor already started")
        self._started = True
        from confluent_kafka.admin import AdminClient

        from kronicle.topics import verify_copartitioned

        cfg = self.config
        admin = AdminClient({"bootstrap.servers": cfg.bootstrap_servers})
        self._partition_count = verify_copartitioned(admin, self._ns)
        self._txn = TransactionalProducer(
            {
                "bootstrap.servers": cfg.bootstrap_servers,
                "transactional.id": cfg.transactional_id,
                "transaction.timeout.ms": cfg.transaction_timeout_ms,
                "partitioner": "murmur2_random",  # the Java client's placement, see kronicle.topics
                # commit_transaction sends at once, so this costs no latency; it lets a batch's
                # records share produce requests (0 made the tail worse, docs/benchmarks.md).
                "linger.ms": 2,
                "queue.buffering.max.messages": 1_000_000,
                # A transaction that follows the previous one within a few ms finds the coordinator
                # still writing that one's markers (CONCURRENT_TRANSACTIONS); librdkafka retries
                # after retry.backoff.ms, 100 ms by default: the sequential benchmark's p99.
                "retry.backoff.ms": 5,
                **cfg.producer_config,
            },
            transaction_timeout_ms=cfg.transaction_timeout_ms,
            retry_s=cfg.operation_timeout_s,
            max_replacements=cfg.max_producer_replacements,
            on_event=lambda kind: metrics.TRANSACTIONS.labels(self._ns, kind).inc(),
        )
        self._txn.start()
        self._restorer = Restorer(self.store, cfg.bootstrap_servers, self.topics.changelog)
        if cfg.standby_replicas:
            self._standby = StandbyReplicator(self.store, cfg.bootstrap_servers, self.topics.changelog)
            self._standby.set_partitions(set(range(self._partition_count)))
        self._consumer = Consumer(
            {
                "bootstrap.servers": cfg.bootstrap_servers,
                "group.id": cfg.group_id,
                "group.protocol": "consumer",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **cfg.consumer_config,
            }
        )
        self._consumer.subscribe(
            [self.topics.commands], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def stop(self) -> None:
        """Ask ``run()`` to return after the current batch (thread- and signal-safe)."""
        self._stop.set()

    def run(self) -> None:
        """Process batches until :meth:`stop`. Raises :class:`ProcessorFencedError` if fenced."""
        if not self._started:
            self.start()
        while not self._stop.is_set():
            self.run_once()

    def run_forever(self) -> None:
        """``start()``, ``run()`` and ``close()``."""
        try:
            self.run()
        finally:
            self.close()

    def close(self) -> None:
        """Leave the group and close stores and clients; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._consumer is not None:
            try:
                self._consumer.close()  # triggers on_revoke, which closes the stores
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the consumer: %s", exc)
        if self._restorer is not None:
            self._restorer.close()
        if self._standby is not None:
            self._standby.close()
        self.store.close_all()

    # -- partitions ----------------------------------------------------

    @property
    def partition_count(self) -> int:
        """Partitions of the namespace's commands topic (known after :meth:`start`)."""
        return self._partition_count

    def owned_partitions(self) -> set[int]:
        return set(self._partitions)

    def active_partitions(self) -> set[int]:
        return {p for p, st in self._partitions.items() if st.phase is _Phase.ACTIVE}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._restorer is not None
        for tp in partitions:
            p = tp.partition
            if self._standby is not None:
                self._standby.release(p)
            with self.store_lock:
                if not self.store.is_open(p):
                    self.store.open(p)
            self._partitions[p] = _Partition(_Phase.RESTORING)
            self._restorer.start(p)
        # Assign ourselves (instead of letting the client do it after this callback)
        # so the partitions can be paused until their stores are restored.
        consumer.incremental_assign(partitions)
        consumer.pause(partitions)
        log.info("assigned %s", sorted(tp.partition for tp in partitions))
        self._update_partition_gauges()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # No transaction is open here: callbacks run inside consume(), and every
        # batch is committed or aborted before the next consume().
        for tp in partitions:
            p = tp.partition
            if self._partitions.pop(p, None) is None:
                continue
            if self._restorer is not None:
                self._restorer.cancel(p)
            with self.store_lock:
                self.store.close(p)
            with contextlib.suppress(KeyError):
                metrics.LAG.remove(self._ns, str(p))
        if self._standby is not None:
            self._standby.set_partitions(set(range(self._partition_count)) - set(self._partitions))
        log.info("revoked %s", sorted(tp.partition for tp in partitions))
        self._update_partition_gauges()

    def _update_partition_gauges(self) -> None:
        for phase in _Phase:
            n = sum(1 for st in self._partitions.values() if st.phase is phase)
            metrics.PARTITIONS.labels(self._ns, phase.value).set(n)

    def _restore_step(self) -> None:
        assert self._restorer is not None and self._consumer is not None
        if not self._restorer.restoring():
            return
        for p in self._restorer.step():
            st = self._partitions.get(p)
            if st is None:
                continue
            raw_seq = self.store.get(p, ENGINE_COLUMN_FAMILY, _SEQ_KEY)
            st.seq = int.from_bytes(raw_seq, "big") if raw_seq else 0
            st.next_due = self._earliest_timer(p)
            st.phase = _Phase.ACTIVE
            self._consumer.resume([TopicPartition(self.topics.commands, p)])
            if self._on_restored is not None:
                # The restore may have brought changes no commit announced: after a producer
                # replacement, the batch whose outcome was unknown had in fact committed.
                self._on_restored(p)
            result = self._restorer.result(p)
            log.info(
                "partition %d restored: %d changelog records read, at offset %d%s",
                p,
                result.records if result else -1,
                self.store.changelog_offset(p),
                " (store was wiped)" if result and result.wiped else "",
            )
        self._update_partition_gauges()

    def _earliest_timer(self, partition: int) -> int | None:
        for tkey, _ in self.store.scan(partition, "timers", limit=1):
            return int.from_bytes(tkey[:8], "big", signed=True)
        return None

    # -- the loop ------------------------------------------------------

    def run_once(self) -> int:
        """One iteration: restore a little, consume a batch, fire timers, commit. Returns commands applied."""
        assert self._consumer is not None
        self._restore_step()
        if self._standby is not None:
            self._standby.poll_once(0)
        msgs = self._poll()
        now = self._clock()
        batches: dict[int, PartitionBatch] = {}
        for p, st in self._partitions.items():
            if st.phase is _Phase.ACTIVE and st.next_due is not None and st.next_due <= now:
                batches[p] = self._new_batch(p, now)
                batches[p].fire_due_timers(self._scanner(p), self.config.timer_fire_limit)
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            partition = msg.partition()
            assert partition is not None
            owned = self._partitions.get(partition)
            if owned is None or owned.phase is not _Phase.ACTIVE:
                continue  # revoked during this consume(): the next owner reads it from the committed offset
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._new_batch(partition, now)
            batch.add(_input(msg))
        if batches:
            self._commit(batches)
        self._update_lag()
        return sum(b.applied for b in batches.values())

    def _poll(self) -> list[Message]:
        """Wait for the first command (or the next timer), then take what else is there.

        Records already fetched are taken at once. Only when the engine is busy
        (commands were already waiting when it turned to the log, or more than one
        arrived together) does the batch wait up to ``max_batch_ms`` to fill, so that
        under load the commands arriving during a commit share the next transaction,
        while a lone command reaching an idle engine pays no wait.
        """
        assert self._consumer is not None
        if any(st.phase is _Phase.RESTORING for st in self._partitions.values()):
            wait = 0.0
        else:
            wait = self.config.idle_poll_ms / 1000
            dues = [st.next_due for st in self._partitions.values() if st.next_due is not None]
            if dues:
                wait = min(wait, max(0.0, (min(dues) - self._clock()) / 1000))
        room = self.config.max_batch_records
        # consume() with a timeout waits until the batch is full; with none it takes what is fetched.
        msgs = self._consumer.consume(room, 0)
        busy = bool(msgs)  # commands were waiting while the engine committed: more are coming
        if not busy:
            first = self._consumer.poll(wait)
            if first is None:
                return []
            msgs = [first, *self._consumer.consume(room - 1, 0)] if room > 1 else [first]
        if (busy or len(msgs) > 1) and len(msgs) < room:
            msgs.extend(self._consumer.consume(room - len(msgs), self.config.max_batch_ms / 1000))
        return msgs

    def _update_lag(self) -> None:
        assert self._consumer is not None
        now = time.monotonic()
        if now - self._lag_updated < 1.0:
            return
        self._lag_updated = now
        tps = [TopicPartition(self.topics.commands, p) for p in self.active_partitions()]
        if not tps:
            return
        for tp in self._consumer.position(tps):
            if tp.offset < 0:
                continue
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                metrics.LAG.labels(self._ns, str(tp.partition)).set(max(0, high - tp.offset))

    def _new_batch(self, partition: int, now: int) -> PartitionBatch:
        store = self.store

        def read(cf: str, key: bytes) -> bytes | None:
            return store.get(partition, cf, key)

        return PartitionBatch(
            partition=partition,
            now_ms=now,
            handler=self._handler,
            codec=self._codec,
            read=read,
            commands_topic=self.topics.commands,
            dlq_topic=self.topics.dlq,
            namespace=self._ns,
        )

    def _scanner(self, partition: int) -> Callable[[str, bytes, bytes | None, int], Iterator[tuple[bytes, bytes]]]:
        def scan(cf: str, start: bytes, end: bytes | None, limit: int) -> Iterator[tuple[bytes, bytes]]:
            return self.store.scan(partition, cf, start, end, limit)

        return scan

    def _commit(self, batches: dict[int, PartitionBatch]) -> None:
        assert self._txn is not None and self._consumer is not None
        txn = self._txn
        started = time.monotonic()
        delivered: dict[int, int] = {}
        try:
            txn.begin()
            offsets: list[TopicPartition] = []
            timer_only: list[TopicPartition] = []
            for p, batch in batches.items():
                self._produce_batch(p, batch, delivered)
                if batch.next_offset is not None:
                    offsets.append(TopicPartition(self.topics.commands, p, batch.next_offset))
                else:
                    timer_only.append(TopicPartition(self.topics.commands, p))
            # A batch that only fired timers commits its partition's current position
            # again: the offsets are what lets the group coordinator fence a zombie
            # that lost the partition, so no transaction may go without them.
            try:
                if timer_only:
                    offsets.extend(tp for tp in self._consumer.position(timer_only) if tp.offset >= 0)
                metadata = self._consumer.consumer_group_metadata()
            except KafkaException as exc:
                txn.abandon(exc, "reading the consumer's positions")
            txn.commit(offsets, metadata)
        except TransactionAborted as exc:
            log.warning("transaction aborted, rewinding %d partition(s): %s", len(batches), exc)
            self._rewind(batches)
            return
        except ProducerReplaced as exc:
            log.warning("producer replaced, resynchronising %d partition(s) from Kafka: %s", len(batches), exc)
            self._resync(batches)
            return
        except (ProcessorFencedError, TransactionRecoveryError):
            self._stop.set()
            raise
        txn.poll(0)  # serve the delivery reports that carry the changelog offsets
        metrics.TRANSACTION_SECONDS.labels(self._ns).observe(time.monotonic() - started)
        metrics.TRANSACTIONS.labels(self._ns, "committed").inc()
        applied = 0
        for p, batch in batches.items():
            st = self._partitions.get(p)
            if batch.effects.writes:
                if p not in delivered:
                    raise RuntimeError(f"no delivery report for the changelog of partition {p} after commit")
                if st is not None:  # still ours: a revoke cannot happen between commit and here
                    self.store.apply(p, batch.effects.writes, changelog_offset=delivered[p] + 1)
            if st is not None and (batch.effects.timer_ops or batch.timers_fired):
                # One RocksDB seek: the timers family is ordered by due time.
                st.next_due = self._earliest_timer(p)
            applied += batch.applied
            for error_type in batch.dead_lettered:
                metrics.DLQ.labels(self._ns, error_type).inc()
            if batch.timers_fired:
                metrics.TIMERS_FIRED.labels(self._ns).inc(batch.timers_fired)
            metrics.BATCH_SIZE.labels(self._ns).observe(batch.applied + len(batch.dead_lettered))
        metrics.COMMANDS.labels(self._ns).inc(applied)
        if self._on_commit is not None:
            self._on_commit({key for batch in batches.values() for key in batch.keys})

    def _produce_batch(self, partition: int, batch: PartitionBatch, delivered: dict[int, int]) -> None:
        """Produce a partition's outputs and changelog; every record gets the next sequence number."""
        st = self._partitions[partition]
        seq = st.seq
        version = self._version_header
        for out in batch.effects.outputs:
            if not self._may_produce(out.topic):
                log.warning("dropping a record for %s: the topic does not exist", out.topic)
                continue
            seq += 1
            headers: _Headers = [*out.headers, (HEADER_SEQUENCE, str(seq).encode()), (HEADER_VERSION, version)]
            if out.partition is None:
                self._produce(out.topic, out.key, out.value, headers)
            else:
                self._produce(out.topic, out.key, out.value, headers, partition=out.partition)
        writes = batch.effects.writes
        if not writes and seq == st.seq:
            return
        # The sequence number is state too (it must survive restarts), and its own
        # changelog record takes the last number of the batch.
        writes.pop((ENGINE_COLUMN_FAMILY, _SEQ_KEY), None)
        final = seq + len(writes) + 1
        writes[(ENGINE_COLUMN_FAMILY, _SEQ_KEY)] = final.to_bytes(8, "big")
        last = len(writes) - 1

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            offset = msg.offset()
            if err is None and offset is not None:
                delivered[partition] = offset

        for i, ((cf, key), value) in enumerate(writes.items()):
            seq += 1
            self._produce(
                self.topics.changelog,
                encode_changelog_key(cf, key),
                value,
                [(HEADER_SEQUENCE, str(seq).encode()), (HEADER_VERSION, version)],
                partition=partition,
                on_delivery=on_delivery if i == last else None,
            )
        st.seq = seq

    def _may_produce(self, topic: str) -> bool:
        """Whether ``topic`` exists (or the guard created it); cached per topic.

        A record for a missing topic would fail the transaction again on every
        retry and wedge the partition, so such records (e.g. a reply to a client
        that has gone) are dropped instead.
        """
        known = self._topics_checked.get(topic)
        now = time.monotonic()
        if known is not None and (known[0] or now - known[1] < _MISSING_TOPIC_RECHECK_S):
            return known[0]
        ok = True if self._topic_guard is None else self._topic_guard(topic)
        self._topics_checked[topic] = (ok, now)  # a missing topic is asked about again later
        return ok

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: _Headers, **kwargs: Any) -> None:
        assert self._txn is not None
        self._txn.produce(topic, key, value, headers=headers, **kwargs)

    def _rewind(self, batches: dict[int, PartitionBatch]) -> None:
        """After an abort: drop the batch's effects and read its commands again."""
        assert self._consumer is not None
        for p, batch in batches.items():
            st = self._partitions.get(p)
            if st is None:
                continue
            # The sequence numbers of the aborted batch were never seen: reuse them.
            raw_seq = self.store.get(p, ENGINE_COLUMN_FAMILY, _SEQ_KEY)
            st.seq = int.from_bytes(raw_seq, "big") if raw_seq else 0
            if batch.first_offset is not None:
                try:
                    self._consumer.seek(TopicPartition(self.topics.commands, p, batch.first_offset))
                except KafkaException as seek_exc:
                    log.warning("rewinding partition %d: %s", p, seek_exc)
            st.next_due = self._earliest_timer(p)

    def _resync(self, batches: dict[int, PartitionBatch]) -> None:
        """After a producer replacement: the batch may have committed or not, so ask Kafka.

        The new producer's ``init_transactions`` settled the batch's transaction, so
        the group's committed offsets and the changelog are final: each partition of
        the batch goes back to restoring (the restorer reads the changelog tail the
        store may lack, and sequence number and timers are reloaded when it is done)
        and its consumer position to the committed offset.
        """
        assert self._consumer is not None and self._restorer is not None
        owned = [p for p in batches if p in self._partitions]
        if not owned:
            return
        tps = [TopicPartition(self.topics.commands, p) for p in owned]
        self._consumer.pause(tps)
        for tp in self._committed(tps):
            st = self._partitions.get(tp.partition)
            if st is None:
                continue
            st.phase = _Phase.RESTORING
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self._consumer.seek(TopicPartition(self.topics.commands, tp.partition, offset))
            self._restorer.start(tp.partition)
        self._update_partition_gauges()

    def _committed(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets, retried while the group coordinator is unavailable."""
        assert self._consumer is not None
        deadline = time.monotonic() + self.config.operation_timeout_s
        while True:
            try:
                return self._consumer.committed(tps, timeout=max(0.5, deadline - time.monotonic()))
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    self._stop.set()
                    raise TransactionRecoveryError(
                        f"cannot read the committed offsets of {self.config.group_id} after replacing the "
                        f"producer: {exc}; check the brokers (the group coordinator)"
                    ) from exc
                log.info("fetching committed offsets: %s; trying again", exc)
                time.sleep(_RESYNC_PAUSE_S)


def _input(msg: Message) -> InputRecord:
    offset = msg.offset()
    partition = msg.partition()
    assert offset is not None and partition is not None
    _, ts = msg.timestamp()
    return InputRecord(
        partition=partition,
        offset=offset,
        key=msg.key(),
        value=msg.value(),
        headers=msg.headers() or (),  # type: ignore[arg-type]
        timestamp_ms=ts,
    )
