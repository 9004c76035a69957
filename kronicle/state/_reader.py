"""The changelog-reading core shared by restore and standby replication.

:class:`ChangelogReader` owns one read_committed consumer, manually assigned
(no consumer group membership, no offset commits: the store's own
``changelog_offset`` is the only checkpoint). Each :meth:`ChangelogReader.read`
consumes what is available, folds each partition's records into one write
batch, and applies it with the offset after the last record, so the
checkpoint always matches the data and a crash mid-restore resumes exactly
where it stopped. A read may end inside a transaction's records, so the store
is one of the engine's committed states only once the end is reached; that is
why a partition is served only after its restore finished.

The end of a partition is found through ``enable.partition.eof``: under
read_committed, librdkafka reports EOF at the last stable offset (LSO), which
is where the committed data ends; aborted records and transaction markers
below it are skipped by the consumer and never seen here. The EOF offset is
stored as the checkpoint, so the next read does not even revisit them.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from kronicle.state.changelog import decode_changelog_key
from kronicle.state.store import StateStore, StateStoreError

__all__ = ["ChangelogCorruptError", "ChangelogReader", "ChangelogTopicError", "ReadResult"]

_log = logging.getLogger(__name__)

# Settings the reader's correctness depends on; a caller's config may not contradict them.
_REQUIRED: Final[dict[str, Any]] = {
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    # An out-of-range checkpoint must be seen (and the store wiped), not papered
    # over by jumping to the log's start or end.
    "auto.offset.reset": "error",
}


class ChangelogCorruptError(StateStoreError):
    """A changelog record is not one Kronicle's engine writes (bad or missing key).

    The partition it was read from is no longer read (its store keeps the valid
    prefix before the record); the other partitions are unaffected.
    """

    def __init__(self, message: str, partition: int, offset: int | None) -> None:
        super().__init__(message)
        self.partition = partition
        self.offset = offset


class ChangelogTopicError(StateStoreError):
    """The changelog topic cannot be used (it does not exist, or cannot be described)."""


@dataclasses.dataclass(slots=True)
class ReadResult:
    """What one :meth:`ChangelogReader.read` did, per partition."""

    records: dict[int, int] = dataclasses.field(default_factory=dict)
    """Changelog records applied, per partition."""
    eof: dict[int, int] = dataclasses.field(default_factory=dict)
    """Partitions that reached the end of their committed data, and the offset of that end."""
    wiped: set[int] = dataclasses.field(default_factory=set)
    """Partitions whose checkpoint was out of range: store wiped, reading restarted at the beginning."""
    corrupt: dict[int, ChangelogCorruptError] = dataclasses.field(default_factory=dict)
    """Partitions that hit a record Kronicle did not write; they are no longer read."""

    @property
    def total(self) -> int:
        return sum(self.records.values())


class ChangelogReader:
    """One consumer of a changelog topic, applying what it reads to a :class:`StateStore`.

    Single-threaded by design: it writes into the store from the caller's thread.
    """

    def __init__(
        self,
        store: StateStore,
        bootstrap_servers: str,
        changelog_topic: str,
        consumer_config: Mapping[str, Any] | None,
        *,
        role: str,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._topic = changelog_topic
        for name, value in (consumer_config or {}).items():
            if name in _REQUIRED and str(value).lower() != str(_REQUIRED[name]).lower():
                raise ValueError(
                    f"consumer setting {name}={value!r} would break changelog reading, which needs "
                    f"{name}={_REQUIRED[name]!r}; remove it from consumer_config"
                )
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            # librdkafka insists on a group id even for manual assignment; this one
            # is never joined and never committed to.
            "group.id": f"kronicle-{role}-{uuid.uuid4().hex[:12]}",
            "client.id": f"kronicle-{role}-{store.namespace}",
            **(defaults or {}),
            **(consumer_config or {}),
            **_REQUIRED,
        }
        self._consumer = Consumer(conf)
        # The admin client only describes the topic (for its id); it gets the
        # caller's settings (security) but none of the consumer's own.
        self._admin = AdminClient({"bootstrap.servers": bootstrap_servers, **(consumer_config or {})})
        self._next: dict[int, int] = {}
        # Per partition: the EOF offset last reached and the high watermark seen then.
        self._eof: dict[int, tuple[int, int | None]] = {}
        self._families = frozenset(store.column_families)
        self._warned_cfs: set[str] = set()
        self._closed = False

    @property
    def topic(self) -> str:
        return self._topic

    def assigned(self) -> set[int]:
        """Partitions being read."""
        return set(self._next)

    def position(self, partition: int) -> int | None:
        """The next offset to read of an assigned partition."""
        return self._next.get(partition)

    def assign(self, partition: int) -> bool:
        """Start reading ``partition`` from its store's checkpoint (the store must be open).

        If the store was built from an earlier topic of the same name (the
        changelog was deleted and created again), it is wiped first, since its
        checkpoint says nothing about the new topic's offsets.

        Returns:
            Whether the store was wiped.

        Raises:
            ChangelogTopicError: The changelog topic does not exist.
        """
        if partition in self._next:
            raise ValueError(f"changelog partition {partition} is already being read")
        wiped = False
        topic_id = self._topic_id()
        recorded = self._store.changelog_topic_id(partition)
        if topic_id is not None and recorded != topic_id:
            if recorded is not None:
                _log.warning(
                    "state of %s/%s was built from an earlier topic named %s (id %s, now %s); the changelog "
                    "was recreated, so the local store is wiped and restored from the beginning",
                    self._store.namespace,
                    partition,
                    self._topic,
                    recorded,
                    topic_id,
                )
                self._store.destroy(partition)
                self._store.open(partition)
                wiped = True
            self._store.set_changelog_topic_id(partition, topic_id)
        offset = self._store.changelog_offset(partition)
        self._consumer.incremental_assign([TopicPartition(self._topic, partition, offset)])
        self._next[partition] = offset
        return wiped

    def _topic_id(self) -> str | None:
        future = self._admin.describe_topics(TopicCollection([self._topic]), request_timeout=10)[self._topic]
        try:
            description = future.result()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise ChangelogTopicError(
                    f"the changelog topic {self._topic} does not exist; create the namespace's topics "
                    "before starting its engine"
                ) from exc
            # Without the id (e.g. no DESCRIBE permission) a recreated topic is only
            # caught when the checkpoint is out of range; that is worth a warning, not a stop.
            _log.warning("cannot describe changelog topic %s to check its id: %s", self._topic, exc)
            return None
        return str(description.topic_id)

    def unassign(self, partition: int) -> None:
        """Stop reading ``partition``; a no-op if it is not being read."""
        self._eof.pop(partition, None)
        if self._next.pop(partition, None) is None:
            return
        self._consumer.incremental_unassign([TopicPartition(self._topic, partition)])

    def end_offset(self, partition: int) -> int | None:
        """The partition's end as of the last fetch (the high watermark: it counts open transactions)."""
        try:
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, partition), cached=True)
        except KafkaException:
            return None
        return int(high) if high >= 0 else None

    def lag(self, partition: int) -> int | None:
        """Records between the read position and the partition end, as of the last fetch.

        0 right after reaching EOF, as long as the partition has not grown since
        (the end may then sit above the position only by transaction markers,
        aborted records or a transaction still open). Otherwise the distance to
        the high watermark, which counts records of open transactions too. None
        before the first fetch or for a partition not being read.
        """
        position = self._next.get(partition)
        end = self.end_offset(partition)
        if position is None or end is None:
            return None
        if self._eof.get(partition) == (position, end):
            return 0
        return max(0, end - position)

    def read(self, max_records: int, timeout: float) -> ReadResult:
        """Consume up to ``max_records`` events for up to ``timeout`` seconds and apply them."""
        result = ReadResult()
        if not self._next:
            return result
        messages = self._fetched(max(1, max_records), max(0.0, timeout))
        pending: dict[int, dict[tuple[str, bytes], bytes | None]] = {}
        # Locals: this loop runs once per changelog record during a restore.
        next_offsets = self._next
        families = self._families
        counts = result.records
        for msg in messages:
            err = msg.error()
            partition = msg.partition()
            if partition is None:
                # Not about one partition (e.g. all brokers down): librdkafka
                # recovers from these by itself unless they are fatal.
                if err is not None and err.fatal():
                    raise KafkaException(err)
                _log.warning("changelog %s consumer: %s", self._topic, err)
                continue
            expected = next_offsets.get(partition)
            if expected is None:
                continue  # fetched before the partition was unassigned
            if err is not None:
                self._on_error(partition, msg, err, pending, result)
                continue
            offset = msg.offset()
            if offset is None or offset < expected:
                continue  # a duplicate from before a re-assignment
            raw = msg.key()
            try:
                if type(raw) is not bytes:
                    raise ValueError("the record has no key")
                cf, key = decode_changelog_key(raw)
            except ValueError as exc:
                # Keep the valid prefix, stop reading the partition, and let the
                # caller raise once the rest of this read is accounted for.
                writes = pending.pop(partition, None)
                if writes is not None:
                    self._store.apply(partition, writes, changelog_offset=expected)
                self.unassign(partition)
                error = self._corrupt(msg, partition, str(exc))
                error.__cause__ = exc
                result.corrupt[partition] = error
                continue
            if cf in families:
                writes = pending.get(partition)
                if writes is None:
                    writes = pending[partition] = {}
                writes[(cf, key)] = msg.value()
            else:
                self._warn_unknown_cf(cf, partition, offset)
            next_offsets[partition] = offset + 1
            counts[partition] = counts.get(partition, 0) + 1
        self._apply(pending)
        return result

    def _fetched(self, max_records: int, timeout: float) -> list[Message]:
        # consume() with a timeout waits for the whole timeout unless max_records
        # arrive, which would make every step cost its full time budget. Take what
        # is queued; only if nothing is, wait for the first event, then take the rest.
        messages: list[Message] = self._consumer.consume(num_messages=max_records, timeout=0)
        if messages or timeout <= 0:
            return messages
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        rest: list[Message] = self._consumer.consume(num_messages=max_records - 1, timeout=0) if max_records > 1 else []
        return [first, *rest]

    def _apply(self, pending: dict[int, dict[tuple[str, bytes], bytes | None]]) -> None:
        for partition, writes in pending.items():
            self._store.apply(partition, writes, changelog_offset=self._next[partition])

    def close(self) -> None:
        """Close the consumer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._next.clear()
        self._eof.clear()
        self._consumer.close()

    def _on_error(
        self,
        partition: int,
        msg: Message,
        err: KafkaError,
        pending: dict[int, dict[tuple[str, bytes], bytes | None]],
        result: ReadResult,
    ) -> None:
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            end = max(msg.offset() or 0, self._next[partition])
            writes = pending.pop(partition, {})
            # Also advance past transaction markers and aborted records at the end,
            # so the next restore starts exactly at the end of committed data.
            if writes or end > self._store.changelog_offset(partition):
                self._store.apply(partition, writes, changelog_offset=end)
            self._next[partition] = end
            self._eof[partition] = (end, self.end_offset(partition))
            result.eof[partition] = end
        elif code == KafkaError._AUTO_OFFSET_RESET:
            self._wipe(partition, err)
            pending.pop(partition, None)
            result.records.pop(partition, None)
            result.eof.pop(partition, None)
            result.wiped.add(partition)
        elif err.fatal():
            raise KafkaException(err)
        else:
            # librdkafka retries transient errors itself; they are only worth a log line.
            _log.warning("changelog %s[%s]: %s", self._topic, partition, err)

    def _wipe(self, partition: int, err: KafkaError) -> None:
        stored = self._store.changelog_offset(partition)
        _log.warning(
            "state of %s/%s: checkpoint offset %d is out of range of %s[%d] (%s); the changelog was "
            "recreated or truncated, so the local store is wiped and restored from the beginning",
            self._store.namespace,
            partition,
            stored,
            self._topic,
            partition,
            err.str(),
        )
        self._consumer.incremental_unassign([TopicPartition(self._topic, partition)])
        self._eof.pop(partition, None)
        topic_id = self._store.changelog_topic_id(partition)
        self._store.destroy(partition)
        self._store.open(partition)
        if topic_id is not None:
            self._store.set_changelog_topic_id(partition, topic_id)
        self._consumer.incremental_assign([TopicPartition(self._topic, partition, OFFSET_BEGINNING)])
        self._next[partition] = 0

    def _corrupt(self, msg: Message, partition: int, reason: str) -> ChangelogCorruptError:
        return ChangelogCorruptError(
            f"record {self._topic}[{partition}]@{msg.offset()} is not a Kronicle changelog record: {reason}. "
            "Only the engine may produce to the changelog topic; find the other producer, then delete "
            "the record (or recreate the topic) before restoring this partition.",
            partition,
            msg.offset(),
        )

    def _warn_unknown_cf(self, cf: str, partition: int, offset: int) -> None:
        # A family the handler no longer declares still has records in the
        # compacted changelog; restore must not fail on them forever.
        if cf not in self._warned_cfs:
            self._warned_cfs.add(cf)
            _log.warning(
                "changelog %s[%d]@%d writes column family %r, which the %s store does not have; "
                "records of that family are skipped",
                self._topic,
                partition,
                offset,
                cf,
                self._store.namespace,
            )
