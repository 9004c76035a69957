"""Public activity API: ``@activity.defn``, ``heartbeat``, ``info``, ``is_cancelled``.

Shaped like ``temporalio.activity``. The worker runs each activity attempt with
an :class:`ActivityContext` set in a context variable (:func:`_set_context`);
the functions here read it, so they work in async activities and, because the
worker copies the context into its thread pool, in sync ones too.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

__all__ = [
    "ActivityContext",
    "ActivityDefinition",
    "Info",
    "defn",
    "heartbeat",
    "in_activity",
    "info",
    "is_cancelled",
    "wait_for_cancelled",
]

CallableT = TypeVar("CallableT", bound=Callable[..., Any])

_DEFN_ATTR = "__kronicle_activity_definition__"


@dataclasses.dataclass(frozen=True)
class Info:
    """What an activity attempt knows about itself (``activity.info()``)."""

    activity_id: str
    """The activity's id within its workflow."""
    activity_type: str
    """The activity type name."""
    attempt: int
    """Attempt number, 1-based."""
    task_queue: str
    """The task queue the activity came from."""
    workflow_id: str
    """Id of the workflow that scheduled it."""
    workflow_run_id: str
    """Run id of that workflow."""
    workflow_type: str
    """Type of that workflow."""
    workflow_namespace: str = "default"
    """Namespace of that workflow."""
    task_token: bytes = b""
    """Opaque token identifying this attempt (for completing it from elsewhere)."""
    heartbeat_details: Sequence[Any] = ()
    """Details of the last heartbeat of a previous attempt (for resuming work)."""
    scheduled_time: datetime | None = None
    """When the activity was first scheduled."""
    current_attempt_scheduled_time: datetime | None = None
    """When this attempt was scheduled."""
    started_time: datetime | None = None
    """When this attempt started."""
    schedule_to_close_timeout: timedelta | None = None
    """Overall timeout, retries included."""
    start_to_close_timeout: timedelta | None = None
    """Timeout of one attempt."""
    heartbeat_timeout: timedelta | None = None
    """Longest allowed gap between heartbeats."""
    is_local: bool = False
    """Always False: Kronicle has no local activities yet."""


@dataclasses.dataclass(frozen=True)
class ActivityDefinition:
    """What ``@activity.defn`` records on the function."""

    name: str | None
    """Activity type name; None for the dynamic activity."""
    fn: Callable[..., Any]
    """The function."""
    is_async: bool
    """Whether it is a coroutine function (else it runs in the worker's thread pool)."""
    arg_types: tuple[Any, ...]
    """Type hints of the arguments."""
    ret_type: Any
    """Type hint of the result."""
    no_thread_cancel_exception: bool = False
    """For sync activities: do not raise the cancellation into the thread."""

    @staticmethod
    def from_callable(fn: Callable[..., Any]) -> ActivityDefinition:
        """The definition stored on ``fn``.

        Raises:
            ValueError: If ``fn`` was not decorated with ``@activity.defn``.
        """
        definition = getattr(fn, _DEFN_ATTR, None)
        if not isinstance(definition, ActivityDefinition):
            raise ValueError(f"{fn!r} is not an activity; decorate it with @activity.defn")
        return definition


@dataclasses.dataclass
class ActivityContext:
    """The state of one running activity attempt, set by the worker."""

    info: Info
    """The attempt's Info."""
    heartbeat: Callable[..., None]
    """Records heartbeat details (the worker batches and sends them)."""
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    """Set when cancellation was requested (a thread-safe flag, for sync activities too)."""
    cancel_reason: str | None = None
    """Why: ``"CANCELLED"``, ``"TIMED_OUT"``, ``"WORKER_SHUTDOWN"``, ..."""


_CONTEXT: contextvars.ContextVar[ActivityContext] = contextvars.ContextVar("kronicle_activity_context")


@contextmanager
def _set_context(ctx: ActivityContext) -> Any:
    """Run a block as the given activity attempt (used by the worker and ActivityEnvironment)."""
    token = _CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _CONTEXT.reset(token)


def _current() -> ActivityContext:
    try:
        return _CONTEXT.get()
    except LookupError:
        raise RuntimeError(
            "Not in an activity: kronicle.activity functions work only inside an activity run by a Kronicle "
            "worker (or kronicle.testing.ActivityEnvironment)"
        ) from None


@overload
def defn(fn: CallableT) -> CallableT: ...


@overload
def defn(
    *, name: str | None = None, no_thread_cancel_exception: bool = False, dynamic: bool = False
) -> Callable[[CallableT], CallableT]: ...


def defn(
    fn: CallableT | None = None,
    *,
    name: str | None = None,
    no_thread_cancel_exception: bool = False,
    dynamic: bool = False,
) -> CallableT | Callable[[CallableT], CallableT]:
    """Declare a function (async, or sync to run in the worker's thread pool) as an activity.

    Args:
        fn: The function (when used without parentheses).
        name: Activity type name; defaults to the function's ``__name__``.
        no_thread_cancel_exception: For sync activities, do not raise the
            cancellation into the thread; the activity polls :func:`is_cancelled`.
        dynamic: Handle every activity type no other activity claims.

    Raises:
        ValueError: For a non-callable, or a dynamic activity with a name.
    """

    def decorate(f: CallableT) -> CallableT:
        if not callable(f):
            raise ValueError(f"@activity.defn goes on a function, not on {f!r}")
        if dynamic and name:
            raise ValueError("A dynamic activity cannot also have a name")
        target = f if inspect.isfunction(f) or inspect.ismethod(f) else type(f).__call__
        from kronicle.workflow._definition import _param_types

        arg_types, ret_type = _param_types(target, skip_self=not (inspect.isfunction(f) or inspect.ismethod(f)))
        activity_name = None if dynamic else (name or getattr(f, "__name__", None) or type(f).__name__)
        is_async = inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(type(f).__call__)
        setattr(
            f,
            _DEFN_ATTR,
            ActivityDefinition(activity_name, f, is_async, arg_types, ret_type, no_thread_cancel_exception),
        )
        return f

    return decorate(fn) if fn is not None else decorate


def in_activity() -> bool:
    """Whether the caller runs inside an activity."""
    return _CONTEXT.get(None) is not None


def info() -> Info:
    """The running activity attempt's Info."""
    return _current().info


def heartbeat(*details: Any) -> None:
    """Report progress; ``details`` are kept and handed to the next attempt after a retry."""
    _current().heartbeat(*details)


def is_cancelled() -> bool:
    """Whether cancellation of this activity was requested."""
    return _current().cancelled.is_set()


async def wait_for_cancelled() -> None:
    """Wait (in an async activity) until cancellation is requested."""
    ctx = _current()
    while not ctx.cancelled.is_set():
        # A threading.Event cannot be awaited; poll at a rate that costs nothing.
        await asyncio.sleep(0.05)
