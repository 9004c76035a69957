"""Standby replicas: warm copies of partitions this process does not own.

A :class:`StandbyReplicator` tails the changelog partitions of partitions
another engine process owns, applying them into the same
:class:`~kronicle.state.store.StateStore` layout the engine uses. When this
process takes such a partition over, its store is already at (or near) the
changelog's end, so the takeover restore reads only the tail instead of the
whole partition.

No threads: :meth:`StandbyReplicator.poll_once` is driven by the engine's own
loop. A rocksdict handle must have one writer, and the engine, its restorer and
the replicator share one ``StateStore``; calling them all from one thread, each
on partitions the others do not touch, is what keeps that true without locks.

Ownership of a partition's store handle: while a partition is tailed, the
replicator owns it (opens it in :meth:`~StandbyReplicator.set_partitions`, closes
it when the partition is removed). :meth:`~StandbyReplicator.release` hands it
over to the engine still open, since the engine's next move is to restore the
tail into it and serve it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from kronicle.state._reader import ChangelogReader
from kronicle.state.store import StateStore

__all__ = ["STANDBY_LAG", "STANDBY_RECORDS", "StandbyReplicator"]

STANDBY_RECORDS = Counter(
    "kronicle_standby_records_total",
    "Changelog records applied to standby replicas.",
    ["namespace", "partition"],
)
STANDBY_LAG = Gauge(
    "kronicle_standby_lag_records",
    "Changelog records a standby replica is behind (an upper bound: it counts open transactions).",
    ["namespace", "partition"],
)

# Many records per poll: a standby is throughput-bound, and the engine bounds
# the time with the poll timeout.
_MAX_RECORDS_PER_POLL = 10_000


class StandbyReplicator:
    """Tails the changelog of partitions this process does not own into its state store.

    Args:
        store: The namespace's store (the same object the engine uses).
        bootstrap_servers: Kafka bootstrap servers.
        changelog_topic: ``kronicle.<ns>.state-changelog``.
        consumer_config: Extra librdkafka settings (e.g. security); settings
            that contradict what the replicator depends on raise ``ValueError``.
    """

    def __init__(
        self,
        store: StateStore,
        bootstrap_servers: str,
        changelog_topic: str,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._reader = ChangelogReader(store, bootstrap_servers, changelog_topic, consumer_config, role="standby")

    def partitions(self) -> set[int]:
        """The partitions being tailed."""
        return self._reader.assigned()

    def set_partitions(self, partitions: set[int]) -> None:
        """Tail exactly ``partitions``: start the new ones, stop the others.

        ``partitions`` must not include any partition this process owns (or is
        restoring): the store has one writer per partition. A newly tailed
        partition's store is opened and tailing starts at its checkpoint. A
        partition no longer tailed has its store closed but kept on disk, so it
        is warm if it comes back here (as standby or active); deleting it is the
        engine's call (``store.destroy``).
        """
        current = self._reader.assigned()
        for partition in sorted(current - partitions):
            self._reader.unassign(partition)
            self._store.close(partition)
            STANDBY_LAG.remove(self._store.namespace, str(partition))
        for partition in sorted(partitions - current):
            self._store.open(partition)
            self._reader.assign(partition)

    def poll_once(self, timeout: float) -> int:
        """Apply what the changelog has ready, waiting up to ``timeout`` seconds for it.

        Returns:
            The number of changelog records applied.

        Raises:
            ChangelogCorruptError: A partition's changelog holds a record Kronicle
                did not write; that partition is no longer tailed and its store is
                closed (keeping the valid prefix); the others were applied and go on.
        """
        result = self._reader.read(_MAX_RECORDS_PER_POLL, timeout)
        ns = self._store.namespace
        for partition, n in result.records.items():
            STANDBY_RECORDS.labels(ns, str(partition)).inc(n)
        for partition in self._reader.assigned():
            lag = self.lag(partition)
            if lag is not None:
                STANDBY_LAG.labels(ns, str(partition)).set(lag)
        for partition in result.corrupt:
            STANDBY_LAG.remove(ns, str(partition))
            self._store.close(partition)
        for error in result.corrupt.values():
            raise error
        return result.total

    def release(self, partition: int) -> None:
        """Stop tailing ``partition`` because this process takes it over.

        The store is left OPEN and becomes the engine's: the engine's next step
        is to restore the (short) tail with a ``Restorer`` and serve the
        partition, and reopening the DB in between would only cost time.
        """
        self._reader.unassign(partition)
        STANDBY_LAG.remove(self._store.namespace, str(partition))

    def lag(self, partition: int) -> int | None:
        """How many changelog records the replica is behind, or None if unknown or not tailed.

        Measured against the partition end the consumer saw in its last fetch, so
        it is unknown (None) until the first fetch and does not see records
        produced since. 0 once the replica reached the end of the committed
        data and the partition has not grown since; otherwise the distance to
        the high watermark, which also counts records of a transaction still open.
        """
        return self._reader.lag(partition)

    def close(self) -> None:
        """Stop tailing and close the stores of the partitions still tailed (idempotent)."""
        for partition in self._reader.assigned():
            self._store.close(partition)
        self._reader.close()
