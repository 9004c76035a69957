"""Topic names: one set per namespace, plus the cluster-wide namespace registry."""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from kronicle.topics._errors import InvalidNameError

__all__ = ["MAX_TOPIC_NAME_LENGTH", "NAMESPACES_TOPIC", "TOPIC_PREFIX", "NamespaceTopics", "TaskKind"]

TOPIC_PREFIX = "kronicle"
NAMESPACES_TOPIC = "kronicle._namespaces"
"""The compacted namespace registry (key: namespace name)."""
MAX_TOPIC_NAME_LENGTH = 249
"""Kafka's limit on a topic name."""

TaskKind = Literal["workflow", "activity"]

_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
_TASK_KINDS: tuple[TaskKind, ...] = ("workflow", "activity")
# The longest per-namespace suffix; a namespace must leave room for it.
_LONGEST_SUFFIX = ".state-changelog"


def _check_name(what: str, name: str, room: int) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{what} name must be a non-empty string of a-z, A-Z, 0-9, '.', '_' and '-'")
    if not _LEGAL.fullmatch(name):
        bad = sorted({c for c in name if not _LEGAL.fullmatch(c)})
        raise InvalidNameError(
            f"invalid {what} name {name!r}: it contains {''.join(bad)!r}; use only a-z, A-Z, 0-9, '.', '_' and '-'"
            " (Kafka topic name characters)"
        )
    if len(name) > room:
        raise InvalidNameError(
            f"{what} name {name!r} is {len(name)} characters; at most {room} fit in a Kafka topic name"
            f" ({MAX_TOPIC_NAME_LENGTH} characters including Kronicle's prefix and suffix)"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class NamespaceTopics:
    """The topic names of one namespace.

    ``NamespaceTopics("default").commands == "kronicle.default.commands"``.

    Raises:
        InvalidNameError: the namespace is empty, has characters Kafka does not
            allow in topic names, or is too long.
    """

    namespace: str

    def __post_init__(self) -> None:
        room = MAX_TOPIC_NAME_LENGTH - len(TOPIC_PREFIX) - 1 - len(_LONGEST_SUFFIX)
        _check_name("namespace", self.namespace, room)

    @classmethod
    def for_namespace(cls, namespace: str) -> NamespaceTopics:
        """Same as ``NamespaceTopics(namespace)``."""
        return cls(namespace)

    @property
    def prefix(self) -> str:
        """``kronicle.<ns>``: every topic of the namespace starts with it."""
        return f"{TOPIC_PREFIX}.{self.namespace}"

    @property
    def commands(self) -> str:
        """Every input that changes a workflow; keyed by workflow id."""
        return f"{self.prefix}.commands"

    @property
    def history(self) -> str:
        """Workflow histories, the source of truth; keyed by workflow id."""
        return f"{self.prefix}.history"

    @property
    def changelog(self) -> str:
        """Changelog of the engine's RocksDB tables (compacted)."""
        return f"{self.prefix}.state-changelog"

    @property
    def visibility(self) -> str:
        """One record per execution state change (compacted); keyed by workflow id + run id."""
        return f"{self.prefix}.visibility"

    @property
    def dlq(self) -> str:
        """Commands that could not be decoded or applied, with the reason in headers."""
        return f"{self.prefix}.dlq"

    @property
    def copartitioned(self) -> tuple[str, str, str]:
        """The topics that must share a partition count: commands, history, changelog."""
        return (self.commands, self.history, self.changelog)

    @property
    def all(self) -> tuple[str, ...]:
        """Every per-namespace topic except task queues."""
        return (self.commands, self.history, self.changelog, self.visibility, self.dlq)

    def task_queue(self, queue: str, kind: TaskKind) -> str:
        """``kronicle.<ns>.tq.<queue>.<kind>``: workflow or activity tasks of one task queue.

        Raises:
            InvalidNameError: the queue name or kind is not allowed.
        """
        if kind not in _TASK_KINDS:
            raise InvalidNameError(f"task kind must be 'workflow' or 'activity', not {kind!r}")
        room = MAX_TOPIC_NAME_LENGTH - len(self.prefix) - len(".tq.") - 1 - max(map(len, _TASK_KINDS))
        _check_name("task queue", queue, room)
        return f"{self.prefix}.tq.{queue}.{kind}"
