"""The error tree, with the same names, meaning and ``cause`` chaining as temporalio.

::

    KronicleError
    ├── FailureError                      a failure that crosses the wire (has .failure)
    │   ├── ApplicationError              raised by user code; non_retryable, type, details
    │   ├── CancelledError                an activity, child or workflow was cancelled
    │   ├── TerminatedError               a workflow was terminated
    │   ├── TimeoutError                  an activity/child/workflow timed out (.type)
    │   ├── ServerError                   the engine failed something on its own
    │   ├── ActivityError                 wraps why an activity failed (.cause)
    │   └── ChildWorkflowError            wraps why a child workflow failed (.cause)
    ├── WorkflowFailureError              client side: the workflow failed (.cause)
    ├── WorkflowAlreadyStartedError       a start collided with the id policies
    ├── NondeterminismError               replay produced different commands
    ├── WorkflowDeadlockError             workflow code did not yield in time
    └── RPCError                          a call to the frontend failed (.status)

``cause`` is the Python ``__cause__``: an :class:`ActivityError` raised in a
workflow has the :class:`ApplicationError` the activity raised as its cause, and
awaiting the result of a workflow that failed raises
:class:`WorkflowFailureError` whose cause is that :class:`ActivityError`.

The conversion of this tree to and from a serialisable failure dict lives with
the data converter (:class:`kronicle.converter.FailureConverter`), because the
details of a failure are payloads.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

__all__ = [
    "ActivityError",
    "ApplicationError",
    "CancelledError",
    "ChildWorkflowError",
    "FailureError",
    "KronicleError",
    "NondeterminismError",
    "RPCError",
    "RPCStatusCode",
    "RetryState",
    "ServerError",
    "TerminatedError",
    "TimeoutError",
    "TimeoutType",
    "WorkflowAlreadyStartedError",
    "WorkflowDeadlockError",
    "WorkflowFailureError",
    "is_cancelled_exception",
]


class KronicleError(Exception):
    """Base of every error Kronicle raises."""

    @property
    def message(self) -> str:
        """The message the error was created with."""
        return str(self.args[0]) if self.args else ""


class FailureError(KronicleError):
    """Base of the errors that are carried as a failure across the wire.

    Raising one of these from workflow code fails the workflow (any other
    exception fails only the workflow task, which is retried, as in Temporal).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self._failure: dict[str, Any] | None = None

    @property
    def failure(self) -> dict[str, Any] | None:
        """The failure dict this error was decoded from, if it came from the wire."""
        return self._failure

    @property
    def cause(self) -> BaseException | None:
        """The error that caused this one (``__cause__``)."""
        return self.__cause__


class ApplicationError(FailureError):
    """An error raised by user code, in an activity or a workflow.

    Args:
        message: What went wrong.
        *details: Values that travel with the error (converted to payloads).
        type: A type name for retry-policy matching; defaults to the class name
            of the exception when converted from a plain exception.
        non_retryable: If True, an activity raising this is not retried.
        next_retry_delay: Overrides the retry policy's delay before the next attempt.
    """

    def __init__(
        self,
        message: str,
        *details: Any,
        type: str | None = None,
        non_retryable: bool = False,
        next_retry_delay: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self._details = details
        self._type = type
        self._non_retryable = non_retryable
        self._next_retry_delay = next_retry_delay

    @property
    def details(self) -> Sequence[Any]:
        """The details given at construction (or decoded from the wire)."""
        return self._details

    @property
    def type(self) -> str | None:
        """The error's type name, used by ``RetryPolicy.non_retryable_error_types``."""
        return self._type

    @property
    def non_retryable(self) -> bool:
        """Whether the error must not be retried whatever the retry policy says."""
        return self._non_retryable

    @property
    def next_retry_delay(self) -> timedelta | None:
        """Delay before the next retry, overriding the retry policy."""
        return self._next_retry_delay


class CancelledError(FailureError):
    """An activity, child workflow or workflow was cancelled.

    Inside workflow code, cancellation is delivered as :class:`asyncio.CancelledError`;
    this is what the cancellation looks like once it becomes a failure (e.g. the
    cause of an :class:`ActivityError`).
    """

    def __init__(self, message: str = "Cancelled", *details: Any) -> None:
        super().__init__(message)
        self._details = details

    @property
    def details(self) -> Sequence[Any]:
        """Details given with the cancellation."""
        return self._details


class TerminatedError(FailureError):
    """A workflow was terminated."""

    def __init__(self, message: str, *details: Any) -> None:
        super().__init__(message)
        self._details = details

    @property
    def details(self) -> Sequence[Any]:
        """Details given with the termination."""
        return self._details


class TimeoutType(enum.IntEnum):
    """Which timeout expired."""

    START_TO_CLOSE = 1
    SCHEDULE_TO_START = 2
    SCHEDULE_TO_CLOSE = 3
    HEARTBEAT = 4


class TimeoutError(FailureError):
    """An activity, child workflow or workflow timed out.

    Args:
        message: What timed out.
        type: Which timeout expired.
        last_heartbeat_details: The details of the last heartbeat (activities).
    """

    def __init__(
        self,
        message: str,
        *,
        type: TimeoutType | None,
        last_heartbeat_details: Sequence[Any] = (),
    ) -> None:
        super().__init__(message)
        self._type = type
        self._last_heartbeat_details = tuple(last_heartbeat_details)

    @property
    def type(self) -> TimeoutType | None:
        """Which timeout expired."""
        return self._type

    @property
    def last_heartbeat_details(self) -> Sequence[Any]:
        """Details of the last heartbeat before the timeout."""
        return self._last_heartbeat_details


class ServerError(FailureError):
    """The engine failed something on its own (not caused by user code)."""

    def __init__(self, message: str, *, non_retryable: bool = False) -> None:
        super().__init__(message)
        self._non_retryable = non_retryable

    @property
    def non_retryable(self) -> bool:
        """Whether the failure must not be retried."""
        return self._non_retryable


class RetryState(enum.IntEnum):
    """Why retrying stopped (carried by activity and child workflow errors)."""

    UNSPECIFIED = 0
    IN_PROGRESS = 1
    NON_RETRYABLE_FAILURE = 2
    TIMEOUT = 3
    MAXIMUM_ATTEMPTS_REACHED = 4
    RETRY_POLICY_NOT_SET = 5
    INTERNAL_SERVER_ERROR = 6
    CANCEL_REQUESTED = 7


class ActivityError(FailureError):
    """An activity failed; ``cause`` says why (an ApplicationError, a TimeoutError, ...)."""

    def __init__(
        self,
        message: str,
        *,
        scheduled_event_id: int,
        started_event_id: int,
        identity: str,
        activity_type: str,
        activity_id: str,
        retry_state: RetryState | None,
    ) -> None:
        super().__init__(message)
        self.scheduled_event_id = scheduled_event_id
        """History event id of the ActivityTaskScheduled event."""
        self.started_event_id = started_event_id
        """History event id of the ActivityTaskStarted event (0 if never started)."""
        self.identity = identity
        """Identity of the worker that ran the last attempt."""
        self.activity_type = activity_type
        """The activity's type name."""
        self.activity_id = activity_id
        """The activity's id within its workflow."""
        self.retry_state = retry_state
        """Why retrying stopped."""


class ChildWorkflowError(FailureError):
    """A child workflow failed; ``cause`` says why."""

    def __init__(
        self,
        message: str,
        *,
        namespace: str,
        workflow_id: str,
        run_id: str,
        workflow_type: str,
        initiated_event_id: int,
        started_event_id: int,
        retry_state: RetryState | None,
    ) -> None:
        super().__init__(message)
        self.namespace = namespace
        """Namespace of the child."""
        self.workflow_id = workflow_id
        """Workflow id of the child."""
        self.run_id = run_id
        """Run id of the child."""
        self.workflow_type = workflow_type
        """Workflow type of the child."""
        self.initiated_event_id = initiated_event_id
        """Parent history event id of StartChildWorkflowExecutionInitiated."""
        self.started_event_id = started_event_id
        """Parent history event id of ChildWorkflowExecutionStarted."""
        self.retry_state = retry_state
        """Why retrying stopped."""


class WorkflowFailureError(KronicleError):
    """Raised to a client awaiting a workflow's result when the workflow failed.

    ``cause`` is the failure: an :class:`ApplicationError`, an :class:`ActivityError`,
    a :class:`CancelledError`, a :class:`TerminatedError`, a :class:`TimeoutError`...
    """

    def __init__(self, *, cause: BaseException) -> None:
        super().__init__("Workflow execution failed")
        self.__cause__ = cause

    @property
    def cause(self) -> BaseException:
        """The failure that ended the workflow."""
        assert self.__cause__ is not None
        return self.__cause__


class WorkflowAlreadyStartedError(KronicleError):
    """A start request collided with a workflow id under the reuse/conflict policies."""

    def __init__(self, workflow_id: str, workflow_type: str, *, run_id: str | None = None) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} ({workflow_type}) is already started; pick another id or "
            "change id_reuse_policy / id_conflict_policy"
        )
        self.workflow_id = workflow_id
        """The id that collided."""
        self.workflow_type = workflow_type
        """The type of the workflow that was being started."""
        self.run_id = run_id
        """Run id of the existing execution, when known."""


class NondeterminismError(KronicleError):
    """Replaying a workflow produced commands that disagree with its history.

    Args:
        message: What disagreed, naming the history event and the command.
        event: A description of the history event (or recorded command) expected.
        command: A description of the command the workflow code produced instead.
    """

    def __init__(self, message: str, *, event: str | None = None, command: str | None = None) -> None:
        super().__init__(message)
        self.event = event
        """The history side of the disagreement (None: the workflow produced an extra command)."""
        self.command = command
        """The code side of the disagreement (None: the workflow no longer produces that command)."""


class WorkflowDeadlockError(KronicleError):
    """Workflow code ran for longer than the deadlock threshold without yielding.

    Unlike Temporal's fixed 2 s limit, the threshold is configurable on the worker.
    """

    def __init__(self, message: str, *, stack: str = "") -> None:
        super().__init__(message)
        self.stack = stack
        """Where the workflow code was when the threshold passed."""


class RPCStatusCode(enum.IntEnum):
    """Status of a failed call to the frontend (gRPC codes, as temporalio uses)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RPCError(KronicleError):
    """A call to the Kronicle frontend failed.

    Args:
        message: The frontend's human message.
        status: The status code.
        code: The frontend's stable error code (e.g. ``"workflow_not_found"``).
        http_status: The HTTP status of the response, when there was one.
    """

    def __init__(self, message: str, status: RPCStatusCode, *, code: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The status code."""
        self.code = code
        """The frontend's stable error code."""
        self.http_status = http_status
        """The HTTP status, if any."""


def is_cancelled_exception(exc: BaseException) -> bool:
    """Whether ``exc`` means "cancelled", as temporalio's helper of the same name.

    True for :class:`asyncio.CancelledError` and for an activity or child
    workflow error caused by a :class:`CancelledError`.
    """
    if isinstance(exc, (asyncio.CancelledError, CancelledError)):
        return True
    return isinstance(exc, (ActivityError, ChildWorkflowError)) and isinstance(exc.cause, CancelledError)
