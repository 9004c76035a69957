"""Shared public types: ``RetryPolicy``, id policies and the enums the API needs.

Names, fields and defaults follow the Temporal Python SDK (``temporalio.common``
and ``temporalio.workflow``), so code moves between the two unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

__all__ = [
    "ActivityCancellationType",
    "ChildWorkflowCancellationType",
    "ParentClosePolicy",
    "RetryPolicy",
    "SearchAttributeValue",
    "SearchAttributes",
    "WorkflowIDConflictPolicy",
    "WorkflowIDReusePolicy",
]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How an activity (or a workflow) is retried after a failure.

    Raises:
        ValueError: From the constructor, when a field is out of range (the
            message names the field and the allowed range).
    """

    initial_interval: timedelta = timedelta(seconds=1)
    """Backoff for the first retry."""

    backoff_coefficient: float = 2.0
    """Factor the backoff grows by on each further retry (at least 1.0)."""

    maximum_interval: timedelta | None = None
    """Cap on the backoff; None means 100 times ``initial_interval``."""

    maximum_attempts: int = 0
    """Total attempts allowed, the first included; 0 means unlimited."""

    non_retryable_error_types: Sequence[str] | None = None
    """``ApplicationError.type`` names that stop retrying at once."""

    def __post_init__(self) -> None:
        if isinstance(self.non_retryable_error_types, list):
            # Keep the policy hashable, as a frozen value should be.
            object.__setattr__(self, "non_retryable_error_types", tuple(self.non_retryable_error_types))
        problems = []
        if self.initial_interval <= timedelta(0):
            problems.append(f"initial_interval must be positive, got {self.initial_interval}")
        if self.backoff_coefficient < 1.0:
            problems.append(f"backoff_coefficient must be at least 1.0, got {self.backoff_coefficient}")
        if self.maximum_interval is not None and self.maximum_interval < self.initial_interval:
            problems.append(
                f"maximum_interval ({self.maximum_interval}) must not be below initial_interval "
                f"({self.initial_interval})"
            )
        if self.maximum_attempts < 0:
            problems.append(f"maximum_attempts must be 0 (unlimited) or more, got {self.maximum_attempts}")
        if isinstance(self.non_retryable_error_types, str):
            problems.append("non_retryable_error_types must be a list of type names, not one string")
        if problems:
            raise ValueError("Invalid RetryPolicy: " + "; ".join(problems))

    @property
    def effective_maximum_interval(self) -> timedelta:
        """``maximum_interval``, or 100 times ``initial_interval`` when it is None."""
        return self.maximum_interval if self.maximum_interval is not None else self.initial_interval * 100

    def backoff(self, attempt: int) -> timedelta:
        """Delay before retrying after attempt number ``attempt`` (1-based) failed."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        delay = self.initial_interval * (self.backoff_coefficient ** (attempt - 1))
        return min(delay, self.effective_maximum_interval)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (intervals in seconds as floats)."""
        return {
            "initial_interval": self.initial_interval.total_seconds(),
            "backoff_coefficient": self.backoff_coefficient,
            "maximum_interval": None if self.maximum_interval is None else self.maximum_interval.total_seconds(),
            "maximum_attempts": self.maximum_attempts,
            "non_retryable_error_types": (
                None if self.non_retryable_error_types is None else list(self.non_retryable_error_types)
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        """The inverse of :meth:`to_dict`."""
        maximum_interval = data.get("maximum_interval")
        errors = data.get("non_retryable_error_types")
        return cls(
            initial_interval=timedelta(seconds=data.get("initial_interval", 1.0)),
            backoff_coefficient=data.get("backoff_coefficient", 2.0),
            maximum_interval=None if maximum_interval is None else timedelta(seconds=maximum_interval),
            maximum_attempts=data.get("maximum_attempts", 0),
            non_retryable_error_types=None if errors is None else tuple(errors),
        )


class WorkflowIDReusePolicy(enum.IntEnum):
    """Whether a workflow id may be used again once its previous run has closed."""

    ALLOW_DUPLICATE = 1
    """Always allowed (the default)."""
    ALLOW_DUPLICATE_FAILED_ONLY = 2
    """Allowed only if the previous run failed, was cancelled, terminated or timed out."""
    REJECT_DUPLICATE = 3
    """Never allowed."""
    TERMINATE_IF_RUNNING = 4
    """Deprecated in Temporal; terminate a running run and start anew."""


class WorkflowIDConflictPolicy(enum.IntEnum):
    """What to do when a workflow with the same id is still running."""

    UNSPECIFIED = 0
    """The server default, which is FAIL."""
    FAIL = 1
    """Reject the start with WorkflowAlreadyStartedError."""
    USE_EXISTING = 2
    """Return a handle to the running workflow instead of starting one."""
    TERMINATE_EXISTING = 3
    """Terminate the running workflow, then start the new one."""


class ActivityCancellationType(enum.IntEnum):
    """How a workflow waits when it cancels an activity."""

    TRY_CANCEL = 0
    """Request cancellation and resolve the activity as cancelled at once (the default)."""
    WAIT_CANCELLATION_COMPLETED = 1
    """Wait until the activity acknowledges the cancellation (or finishes)."""
    ABANDON = 2
    """Do not request cancellation; resolve as cancelled at once."""


class ChildWorkflowCancellationType(enum.IntEnum):
    """How a parent waits when it cancels a child workflow."""

    ABANDON = 0
    """Do not request cancellation."""
    TRY_CANCEL = 1
    """Request cancellation and resolve at once."""
    WAIT_CANCELLATION_COMPLETED = 2
    """Request cancellation and wait until the child closes (the default)."""
    WAIT_CANCELLATION_REQUESTED = 3
    """Request cancellation and wait until the request is delivered."""


class ParentClosePolicy(enum.IntEnum):
    """What happens to a child workflow when its parent closes."""

    UNSPECIFIED = 0
    """The default, which is TERMINATE."""
    TERMINATE = 1
    """Terminate the child."""
    ABANDON = 2
    """Leave the child running."""
    REQUEST_CANCEL = 3
    """Request cancellation of the child."""


SearchAttributeValue: TypeAlias = str | int | float | bool | datetime | Sequence[str]
"""The value types a search attribute can hold (keyword lists are sequences of str)."""

SearchAttributes: TypeAlias = Mapping[str, Sequence[SearchAttributeValue]]
"""Search attributes by name, each a list of values (Temporal's untyped form)."""
