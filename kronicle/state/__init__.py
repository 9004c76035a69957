"""RocksDB state stores, their changelog, restore and standby replicas.

The engine keeps each (namespace, partition)'s mutable state in a
:class:`StateStore`; every write also goes, inside the batch's Kafka
transaction, to ``kronicle.<ns>.state-changelog`` keyed by
:func:`encode_changelog_key`. A :class:`Restorer` rebuilds a partition's store
from that changelog (from its local checkpoint on), and a
:class:`StandbyReplicator` keeps warm copies of partitions owned elsewhere.
"""

from __future__ import annotations

from kronicle.state._reader import ChangelogCorruptError, ChangelogTopicError
from kronicle.state.changelog import CHANGELOG_KEY_SCHEMA_ID, decode_changelog_key, encode_changelog_key
from kronicle.state.restore import Restorer, RestoreResult
from kronicle.state.standby import StandbyReplicator
from kronicle.state.store import (
    MemoryUsage,
    PartitionNotOpenError,
    StateStore,
    StateStoreError,
    StoreOptions,
    UnknownColumnFamilyError,
)

__all__ = [
    "CHANGELOG_KEY_SCHEMA_ID",
    "ChangelogCorruptError",
    "ChangelogTopicError",
    "MemoryUsage",
    "PartitionNotOpenError",
    "RestoreResult",
    "Restorer",
    "StandbyReplicator",
    "StateStore",
    "StateStoreError",
    "StoreOptions",
    "UnknownColumnFamilyError",
    "decode_changelog_key",
    "encode_changelog_key",
]
