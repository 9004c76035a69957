"""Topic names, partitioning and admin (creation, co-partitioning checks).

Per namespace ``<ns>``: ``kronicle.<ns>.commands``, ``.history``,
``.state-changelog`` (commands, history and changelog co-partitioned),
``.visibility``, ``.dlq`` and ``kronicle.<ns>.tq.<queue>.workflow|activity``;
cluster-wide, the namespace registry ``kronicle._namespaces``. Records are
placed by :func:`partition_for`, the Java client's default partitioner.
"""

from __future__ import annotations

from kronicle.topics._admin import (
    DEFAULT_TIMEOUT_S,
    ensure_namespace_topics,
    ensure_namespaces_topic,
    ensure_task_queue_topics,
    ensure_topics,
    partition_counts,
    verify_copartitioned,
)
from kronicle.topics._errors import (
    CoPartitioningError,
    InvalidNameError,
    TopicAdminError,
    TopicError,
    TopicNotFoundError,
)
from kronicle.topics._names import MAX_TOPIC_NAME_LENGTH, NAMESPACES_TOPIC, TOPIC_PREFIX, NamespaceTopics, TaskKind
from kronicle.topics._partitioner import partition_for
from kronicle.topics._specs import (
    DAY_MS,
    DEFAULT_COMMANDS_RETENTION_MS,
    DEFAULT_DLQ_RETENTION_MS,
    DEFAULT_HISTORY_RETENTION_MS,
    DEFAULT_TASK_QUEUE_RETENTION_MS,
    TopicSpec,
    namespace_topic_specs,
    namespaces_topic_spec,
    task_queue_topic_specs,
)

__all__ = [
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
