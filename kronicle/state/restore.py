"""Restoring a partition's store from ``kronicle.<ns>.state-changelog``.

A partition's store is restored from its local checkpoint (the store's
``changelog_offset``) to the end of the committed changelog: a fresh or wiped
store replays the whole (compacted) partition, a store that was closed cleanly
replays only the tail written since. Restoring is incremental: the engine calls
:meth:`Restorer.step` from its loop, between batches of partitions it already
serves, and hands a partition to processing once ``step`` reports it finished.

One :class:`Restorer` owns one read_committed consumer for all the partitions
it restores. It writes into the shared :class:`~kronicle.state.store.StateStore`
from the caller's thread, so it needs no locks: a partition is written either by
the restorer (while restoring) or by the engine (after), never both.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, Final

from prometheus_client import Counter, Gauge

from kronicle.state._reader import ChangelogCorruptError, ChangelogReader, ChangelogTopicError
from kronicle.state.store import StateStore

__all__ = [
    "RESTORE_RECORDS",
    "RESTORE_REMAINING",
    "RESTORE_SECONDS",
    "ChangelogCorruptError",
    "ChangelogTopicError",
    "RestoreResult",
    "Restorer",
]

RESTORE_RECORDS = Counter(
    "kronicle_restore_records_total",
    "Changelog records applied while restoring a partition's state store.",
    ["namespace", "partition"],
)
RESTORE_REMAINING = Gauge(
    "kronicle_restore_remaining_records",
    "Changelog records left to read by a restore in progress (an upper bound: it counts open transactions).",
    ["namespace", "partition"],
)
RESTORE_SECONDS = Gauge(
    "kronicle_restore_seconds",
    "Duration of the partition's most recent completed restore.",
    ["namespace", "partition"],
)

# Restore wants to learn quickly that it reached the end: the broker holds an
# empty fetch this long before answering, and that answer is what carries EOF.
_RESTORE_DEFAULTS: Final[dict[str, Any]] = {"fetch.wait.max.ms": 10}


@dataclasses.dataclass(frozen=True, slots=True)
class RestoreResult:
    """How one partition's restore went."""

    partition: int
    start_offset: int
    """The checkpoint the restore started from (0 after a wipe)."""
    end_offset: int
    """The end of the committed changelog it reached: the store's new checkpoint."""
    records: int
    """Changelog records read and applied."""
    seconds: float
    wiped: bool
    """The checkpoint was out of range of the changelog, so the store was wiped first."""


@dataclasses.dataclass(slots=True)
class _Progress:
    start_offset: int
    started: float
    records: int = 0
    wiped: bool = False


class Restorer:
    """Restores partitions' state stores from the changelog, a step at a time.

    Args:
        store: The namespace's store; restored partitions are opened in it and
            left open for the engine.
        bootstrap_servers: Kafka bootstrap servers.
        changelog_topic: ``kronicle.<ns>.state-changelog``.
        consumer_config: Extra librdkafka settings (e.g. security). Settings
            that contradict what restore depends on (read_committed, partition
            EOF, no commits, ``auto.offset.reset=error``) raise ``ValueError``.
    """

    def __init__(
        self,
        store: StateStore,
        bootstrap_servers: str,
        changelog_topic: str,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._reader = ChangelogReader(
            store, bootstrap_servers, changelog_topic, consumer_config, role="restore", defaults=_RESTORE_DEFAULTS
        )
        self._active: dict[int, _Progress] = {}
        self._results: dict[int, RestoreResult] = {}
        # Partitions that finished inside restore() on behalf of another caller;
        # the next step() still reports them, so the engine never misses one.
        self._unreported: set[int] = set()

    def start(self, partition: int) -> None:
        """Begin restoring ``partition`` from its checkpoint (opening its store if needed).

        The partition must not be tailed by a standby replicator at the same time
        (``StandbyReplicator.release`` it first): the store has one writer.

        Raises:
            ChangelogTopicError: The changelog topic does not exist.
        """
        if partition in self._active:
            return
        started = time.monotonic()
        self._store.open(partition)
        wiped = self._reader.assign(partition)
        self._results.pop(partition, None)
        self._active[partition] = _Progress(
            start_offset=self._store.changelog_offset(partition), started=started, wiped=wiped
        )

    def restoring(self) -> set[int]:
        """Partitions whose restore has started and not finished."""
        return set(self._active)

    def step(self, max_records: int = 10_000, max_seconds: float = 0.05) -> set[int]:
        """Apply what the changelog has ready, within a record and time budget.

        Args:
            max_records: Stop after about this many records.
            max_seconds: Stop after about this long (the engine's latency budget).

        Blocks up to ``max_seconds`` waiting for records when none are ready;
        pass 0 to take only what the consumer has already fetched.

        Returns:
            The partitions whose restore finished (reached the end of the
            committed changelog) in this step; their stores are up to date.

        Raises:
            ChangelogCorruptError: A partition's changelog holds a record Kronicle
                did not write. That partition's restore is stopped (its store
                keeps the valid prefix); the others go on, and partitions that
                finished in this step are reported by the next one.
        """
        finished, self._unreported = self._unreported, set()
        deadline = time.monotonic() + max_seconds
        read = 0
        while self._active:
            remaining = deadline - time.monotonic()
            result = self._reader.read(max_records - read, max(0.0, remaining))
            read += result.total
            ns = self._store.namespace
            for partition in result.wiped:
                progress = self._active[partition]
                progress.wiped, progress.start_offset, progress.records = True, 0, 0
            for partition, n in result.records.items():
                self._active[partition].records += n
                RESTORE_RECORDS.labels(ns, str(partition)).inc(n)
            for partition, end in result.eof.items():
                finished.add(partition)
                self._finish(partition, end)
            if result.corrupt:
                for partition in result.corrupt:
                    self._active.pop(partition, None)
                self._unreported |= finished
                self._update_remaining()
                raise next(iter(result.corrupt.values()))
            if read >= max_records or remaining <= 0:
                break
        self._update_remaining()
        return finished

    def restore(self, partition: int, timeout: float) -> RestoreResult:
        """Restore ``partition`` completely, blocking; a convenience for tools and tests.

        Raises:
            TimeoutError: The end was not reached within ``timeout`` seconds (the
                restore stays in progress; call again or :meth:`cancel` it).
        """
        self.start(partition)
        deadline = time.monotonic() + timeout
        while partition in self._active:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"restoring {self._store.namespace}/{partition} from {self._reader.topic} did not finish "
                    f"in {timeout} s (at offset {self._reader.position(partition)}, end about "
                    f"{self._reader.end_offset(partition)}); check the broker, or give it longer"
                )
            done = self.step(max_seconds=min(0.1, max(0.0, deadline - time.monotonic())))
            self._unreported |= done - {partition}
        return self._results[partition]

    def result(self, partition: int) -> RestoreResult | None:
        """The result of the partition's last finished restore, if any."""
        return self._results.get(partition)

    def cancel(self, partition: int) -> None:
        """Stop restoring ``partition``; its store keeps what was applied (a valid checkpoint)."""
        if self._active.pop(partition, None) is None:
            return
        self._reader.unassign(partition)
        self._unreported.discard(partition)
        RESTORE_REMAINING.labels(self._store.namespace, str(partition)).set(0)

    def close(self) -> None:
        """Cancel every restore and close the consumer (idempotent)."""
        for partition in list(self._active):
            self.cancel(partition)
        self._reader.close()

    def _finish(self, partition: int, end: int) -> None:
        progress = self._active.pop(partition)
        self._reader.unassign(partition)
        seconds = time.monotonic() - progress.started
        self._results[partition] = RestoreResult(
            partition=partition,
            start_offset=progress.start_offset,
            end_offset=end,
            records=progress.records,
            seconds=seconds,
            wiped=progress.wiped,
        )
        RESTORE_SECONDS.labels(self._store.namespace, str(partition)).set(seconds)
        RESTORE_REMAINING.labels(self._store.namespace, str(partition)).set(0)

    def _update_remaining(self) -> None:
        for partition in self._active:
            end = self._reader.end_offset(partition)
            position = self._reader.position(partition)
            if end is not None and position is not None:
                RESTORE_REMAINING.labels(self._store.namespace, str(partition)).set(max(0, end - position))
