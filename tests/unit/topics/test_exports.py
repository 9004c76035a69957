"""The public surface of kronicle.topics is locked."""

from __future__ import annotations

import kronicle.topics


def test_exported_names() -> None:
    assert kronicle.topics.__all__ == [
        "DAY_MS",
        "DEFAULT_COMMANDS_RETENTION_MS",
        "DEFAULT_DLQ_RETENTION_MS",
        "DEFAULT_HISTORY_RETENTION_MS",
        "DEFAULT_TASK_QUEUE_RETENTION_MS",
        "DEFAULT_TIMEOUT_S",
        "MAX_TOPIC_NAME_LENGTH",
        "NAMESPACES_TOPIC",
        "TOPIC_PREFIX",
        "CoPartitioningError",
        "InvalidNameError",
        "NamespaceTopics",
        "TaskKind",
        "TopicAdminError",
        "TopicError",
        "TopicNotFoundError",
        "TopicSpec",
        "ensure_namespace_topics",
        "ensure_namespaces_topic",
        "ensure_task_queue_topics",
        "ensure_topics",
        "namespace_topic_specs",
        "namespaces_topic_spec",
        "partition_counts",
        "partition_for",
        "task_queue_topic_specs",
        "verify_copartitioned",
    ]
    for name in kronicle.topics.__all__:
        assert hasattr(kronicle.topics, name)
