"""What each Kronicle topic looks like: partitions, replication and config."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

from kronicle.topics._names import NAMESPACES_TOPIC, NamespaceTopics

__all__ = [
    "DAY_MS",
    "DEFAULT_COMMANDS_RETENTION_MS",
    "DEFAULT_DLQ_RETENTION_MS",
    "DEFAULT_HISTORY_RETENTION_MS",
    "DEFAULT_TASK_QUEUE_RETENTION_MS",
    "TopicSpec",
    "namespace_topic_specs",
    "namespaces_topic_spec",
    "task_queue_topic_specs",
]

DAY_MS = 86_400_000
DEFAULT_COMMANDS_RETENTION_MS = 7 * DAY_MS
"""Commands are consumed within seconds; a week leaves room to replay after an incident."""
DEFAULT_DLQ_RETENTION_MS = 7 * DAY_MS
DEFAULT_TASK_QUEUE_RETENTION_MS = DAY_MS
"""A task nobody picked up in a day has long been retried or timed out by the engine."""
DEFAULT_HISTORY_RETENTION_MS = -1
"""Forever. The history topic is the source of truth; an event must outlive its
workflow's whole run plus the namespace retention, and a workflow may run for
months. Pass a finite value (>= the namespace retention) only where runs are
known to be shorter than ``retention - namespace retention``."""

_MIN_ISR_FROM_RF = 3  # with RF >= 3, acks=all writes survive the loss of one replica


@dataclasses.dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic Kronicle needs: its name, partition count, replication factor and config."""

    name: str
    partitions: int
    """Number of partitions (> 0)."""
    replication_factor: int = -1
    """Replicas per partition; -1 takes the broker's ``default.replication.factor``."""
    config: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Topic-level configs (``cleanup.policy``, ``retention.ms``, ...)."""
    copartitioned: bool = False
    """Whether its partition count must equal the namespace's (commands, history, changelog)."""

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partition count must be at least 1, got {self.partitions}")
        if self.replication_factor == 0 or self.replication_factor < -1:
            raise ValueError(
                f"{self.name}: replication factor must be -1 (broker default) or >= 1, got {self.replication_factor}"
            )
        object.__setattr__(self, "config", types.MappingProxyType(dict(self.config)))

    def new_topic_args(self) -> dict[str, Any]:
        """Keyword arguments for ``confluent_kafka.admin.NewTopic``."""
        return {
            "topic": self.name,
            "num_partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "config": dict(self.config),
        }


def _config(cleanup: str, replication_factor: int, retention_ms: int | None = None) -> dict[str, str]:
    config = {"cleanup.policy": cleanup}
    if retention_ms is not None:
        if retention_ms != -1 and retention_ms <= 0:
            raise ValueError(f"retention must be positive milliseconds or -1 (forever), got {retention_ms}")
        config["retention.ms"] = str(retention_ms)
    if replication_factor >= _MIN_ISR_FROM_RF:
        config["min.insync.replicas"] = "2"
    return config


def namespace_topic_specs(
    namespace: str,
    partitions: int,
    replication_factor: int = -1,
    *,
    history_retention_ms: int = DEFAULT_HISTORY_RETENTION_MS,
    commands_retention_ms: int = DEFAULT_COMMANDS_RETENTION_MS,
    dlq_retention_ms: int = DEFAULT_DLQ_RETENTION_MS,
) -> list[TopicSpec]:
    """The topics of a namespace: commands, history, state-changelog, visibility, dlq.

    Commands, history and changelog are co-partitioned (same partition count);
    visibility and the DLQ get the same count for an even spread, but nothing
    depends on it.

    Raises:
        InvalidNameError: the namespace name is not allowed.
        ValueError: a count or retention is out of range.
    """
    names = NamespaceTopics(namespace)
    rf = replication_factor
    return [
        TopicSpec(names.commands, partitions, rf, _config("delete", rf, commands_retention_ms), copartitioned=True),
        TopicSpec(names.history, partitions, rf, _config("delete", rf, history_retention_ms), copartitioned=True),
        TopicSpec(names.changelog, partitions, rf, _config("compact", rf), copartitioned=True),
        TopicSpec(names.visibility, partitions, rf, _config("compact", rf)),
        TopicSpec(names.dlq, partitions, rf, _config("delete", rf, dlq_retention_ms)),
    ]


def task_queue_topic_specs(
    namespace: str,
    queue: str,
    partitions: int,
    replication_factor: int = -1,
    *,
    retention_ms: int = DEFAULT_TASK_QUEUE_RETENTION_MS,
) -> list[TopicSpec]:
    """The workflow-task and activity-task topics of one task queue.

    Raises:
        InvalidNameError: the namespace or queue name is not allowed.
        ValueError: a count or retention is out of range.
    """
    names = NamespaceTopics(namespace)
    config = _config("delete", replication_factor, retention_ms)
    return [
        TopicSpec(names.task_queue(queue, "workflow"), partitions, replication_factor, config),
        TopicSpec(names.task_queue(queue, "activity"), partitions, replication_factor, config),
    ]


def namespaces_topic_spec(replication_factor: int = -1) -> TopicSpec:
    """The compacted, single-partition namespace registry ``kronicle._namespaces``."""
    return TopicSpec(NAMESPACES_TOPIC, 1, replication_factor, _config("compact", replication_factor))
