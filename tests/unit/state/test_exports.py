"""The state package's surface is deliberate: a change to it must change this test."""

from __future__ import annotations

import kronicle.state


def test_exported_names() -> None:
    assert kronicle.state.__all__ == [
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
    assert sorted(kronicle.state.__all__) == kronicle.state.__all__
    for name in kronicle.state.__all__:
        assert getattr(kronicle.state, name) is not None
