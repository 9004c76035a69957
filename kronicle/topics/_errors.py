"""The topic error tree.

::

    TopicError
    ├── InvalidNameError       a namespace or task queue name Kafka cannot use (also a ValueError)
    ├── TopicNotFoundError     a namespace's topics do not exist yet
    ├── CoPartitioningError    commands/history/changelog partition counts differ
    └── TopicAdminError        the broker refused or could not be reached
"""

from __future__ import annotations

__all__ = ["CoPartitioningError", "InvalidNameError", "TopicAdminError", "TopicError", "TopicNotFoundError"]


class TopicError(Exception):
    """Base of every error raised by :mod:`kronicle.topics`."""


class InvalidNameError(TopicError, ValueError):
    """A namespace or task queue name that cannot be part of a Kafka topic name."""


class TopicNotFoundError(TopicError):
    """Topics a namespace needs do not exist; ``missing`` lists them."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)


class CoPartitioningError(TopicError):
    """Topics that must share a partition count do not; ``counts`` maps topic to partition count."""

    def __init__(self, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.counts = dict(counts)


class TopicAdminError(TopicError):
    """A Kafka admin operation failed (broker unreachable, not authorised, bad config...)."""
