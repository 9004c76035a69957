"""``@workflow.defn`` and the method decorators: they only validate and record.

Each method decorator marks the function with a small record; ``@workflow.defn``
then walks the class, checks everything at once (raising one ``ValueError``
listing every problem) and stores a frozen :class:`WorkflowDefinition` on the
class. There is no global registry: workers receive explicit lists of classes.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, overload

__all__ = [
    "QueryDefinition",
    "SignalDefinition",
    "UpdateDefinition",
    "UpdateMethod",
    "WorkflowDefinition",
    "defn",
    "init",
    "query",
    "run",
    "signal",
    "update",
]

ClassT = TypeVar("ClassT", bound=type)
CallableT = TypeVar("CallableT", bound=Callable[..., Any])

_RUN_ATTR = "__kronicle_workflow_run__"
_INIT_ATTR = "__kronicle_workflow_init__"
_SIGNAL_ATTR = "__kronicle_signal_definition__"
_QUERY_ATTR = "__kronicle_query_definition__"
_UPDATE_ATTR = "__kronicle_update_definition__"
_DEFN_ATTR = "__kronicle_workflow_definition__"


def _param_types(fn: Callable[..., Any], *, skip_self: bool = True) -> tuple[tuple[Any, ...], Any]:
    """Argument type hints (None where missing) and the return hint of ``fn``."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations just mean "no hint"
        hints = {}
    params = list(inspect.signature(fn).parameters.values())
    if skip_self and params:
        params = params[1:]
    args = tuple(
        hints.get(p.name) for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    )
    return args, hints.get("return")


@dataclasses.dataclass(frozen=True)
class SignalDefinition:
    """A signal handler of a workflow class."""

    name: str | None
    """Signal name; None for the dynamic handler (receives every unhandled name)."""
    fn: Callable[..., Any]
    """The method (unbound)."""
    arg_types: tuple[Any, ...] = ()
    """Type hints of the arguments, used to decode payloads."""

    @property
    def is_async(self) -> bool:
        """Whether the handler is a coroutine function."""
        return inspect.iscoroutinefunction(self.fn)


@dataclasses.dataclass(frozen=True)
class QueryDefinition:
    """A query handler of a workflow class (always synchronous)."""

    name: str | None
    """Query name; None for the dynamic handler."""
    fn: Callable[..., Any]
    """The method (unbound)."""
    arg_types: tuple[Any, ...] = ()
    """Type hints of the arguments."""
    ret_type: Any = None
    """Type hint of the result."""


@dataclasses.dataclass(frozen=True)
class UpdateDefinition:
    """An update handler of a workflow class, with its optional validator."""

    name: str | None
    """Update name; None for the dynamic handler."""
    fn: Callable[..., Any]
    """The method (unbound)."""
    arg_types: tuple[Any, ...] = ()
    """Type hints of the arguments."""
    ret_type: Any = None
    """Type hint of the result."""
    validator: Callable[..., None] | None = None
    """Synchronous check run before the update is accepted; raising rejects it."""


@dataclasses.dataclass(frozen=True)
class WorkflowDefinition:
    """Everything a worker needs to know about a workflow class, checked once."""

    cls: type
    """The workflow class."""
    name: str | None
    """Workflow type name; None for a dynamic workflow."""
    run_fn: Callable[..., Any]
    """The ``@workflow.run`` method (unbound)."""
    arg_types: tuple[Any, ...]
    """Type hints of the run method's arguments."""
    ret_type: Any
    """Type hint of the run method's result."""
    init_takes_args: bool
    """Whether ``__init__`` is ``@workflow.init`` and receives the run arguments."""
    signals: Mapping[str | None, SignalDefinition]
    """Signal handlers by name (None: the dynamic one)."""
    queries: Mapping[str | None, QueryDefinition]
    """Query handlers by name (None: the dynamic one)."""
    updates: Mapping[str | None, UpdateDefinition]
    """Update handlers by name (None: the dynamic one)."""
    failure_exception_types: tuple[type[BaseException], ...] = ()
    """Exception types that fail the workflow (besides FailureError) instead of the task."""

    @staticmethod
    def from_class(klass: type) -> WorkflowDefinition:
        """The definition ``@workflow.defn`` stored on ``klass``.

        Raises:
            ValueError: If ``cls`` was not decorated with ``@workflow.defn``.
        """
        defn = klass.__dict__.get(_DEFN_ATTR) if isinstance(klass, type) else None
        if not isinstance(defn, WorkflowDefinition):
            raise ValueError(f"{klass!r} is not a workflow class; decorate it with @workflow.defn")
        return defn

    @staticmethod
    def from_run_fn(fn: Callable[..., Any]) -> WorkflowDefinition | None:
        """The definition whose run method is ``fn`` (e.g. ``MyWorkflow.run``), if any."""
        defn = getattr(fn, _DEFN_ATTR, None)
        return defn if isinstance(defn, WorkflowDefinition) else None


@overload
def defn(cls: ClassT) -> ClassT: ...


@overload
def defn(
    *,
    name: str | None = None,
    sandboxed: bool = True,
    dynamic: bool = False,
    failure_exception_types: Sequence[type[BaseException]] = (),
) -> Callable[[ClassT], ClassT]: ...


def defn(
    cls: ClassT | None = None,
    *,
    name: str | None = None,
    sandboxed: bool = True,
    dynamic: bool = False,
    failure_exception_types: Sequence[type[BaseException]] = (),
) -> ClassT | Callable[[ClassT], ClassT]:
    """Declare a workflow class.

    Args:
        cls: The class (when used without parentheses).
        name: Workflow type name; defaults to the class name.
        sandboxed: Accepted for temporalio compatibility and ignored: Kronicle
            does not sandbox workflow code; determinism comes from the event loop.
        dynamic: The workflow handles every workflow type no other class claims
            (its run method takes ``Sequence[RawValue]``-like args).
        failure_exception_types: Exception types that fail the workflow rather
            than the workflow task.

    Raises:
        ValueError: Listing every problem found in the class at once.
    """
    del sandboxed  # no sandbox in Kronicle; accepted so temporalio code ports as-is

    def decorate(c: ClassT) -> ClassT:
        definition = _build_definition(c, None if dynamic else (name or getattr(c, "__name__", "")), dynamic, name)
        if failure_exception_types:
            definition = dataclasses.replace(definition, failure_exception_types=tuple(failure_exception_types))
        setattr(c, _DEFN_ATTR, definition)
        # Lets workflow.execute_child_workflow(Child.run, ...) find the definition.
        setattr(definition.run_fn, _DEFN_ATTR, definition)
        return c

    return decorate(cls) if cls is not None else decorate


def _build_definition(cls: Any, wf_name: str | None, dynamic: bool, given_name: str | None) -> WorkflowDefinition:
    problems: list[str] = []
    if not isinstance(cls, type):
        raise ValueError(f"@workflow.defn goes on a class, not on {cls!r}")
    if dynamic and given_name:
        problems.append("a dynamic workflow cannot also have a name")
    runs: list[Callable[..., Any]] = []
    signals: dict[str | None, SignalDefinition] = {}
    queries: dict[str | None, QueryDefinition] = {}
    updates: dict[str | None, UpdateDefinition] = {}
    for attr in dir(cls):
        member = inspect.getattr_static(cls, attr, None)
        if getattr(member, _RUN_ATTR, False):
            runs.append(member)
        if (sig := getattr(member, _SIGNAL_ATTR, None)) is not None:
            _add_handler(signals, sig, "signal", attr, problems)
        if (qry := getattr(member, _QUERY_ATTR, None)) is not None:
            if inspect.iscoroutinefunction(qry.fn):
                problems.append(f"query {attr!r} must be a plain def, not async: queries cannot wait")
            _add_handler(queries, qry, "query", attr, problems)
        if (upd := getattr(member, _UPDATE_ATTR, None)) is not None:
            validator = getattr(member, "__kronicle_update_validator__", None)
            if validator is not None:
                if inspect.iscoroutinefunction(validator):
                    problems.append(f"validator of update {attr!r} must be a plain def, not async")
                upd = dataclasses.replace(upd, validator=validator)
            _add_handler(updates, upd, "update", attr, problems)
    run_fn: Callable[..., Any] | None = None
    if not runs:
        problems.append("no @workflow.run method; mark exactly one async method with @workflow.run")
    elif len(runs) > 1:
        names = ", ".join(sorted(r.__name__ for r in runs))
        problems.append(f"more than one @workflow.run method ({names}); keep exactly one")
    else:
        run_fn = runs[0]
        if not inspect.iscoroutinefunction(run_fn):
            problems.append(f"@workflow.run method {run_fn.__name__!r} must be async def")
    init = cls.__dict__.get("__init__")
    init_takes_args = bool(getattr(init, _INIT_ATTR, False))
    if init is not None and init_takes_args and run_fn is not None:
        init_params = [p.name for p in list(inspect.signature(init).parameters.values())[1:]]
        run_params = [p.name for p in list(inspect.signature(run_fn).parameters.values())[1:]]
        if init_params != run_params:
            problems.append(
                f"@workflow.init __init__ parameters {init_params} must match the run method's {run_params}"
            )
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ValueError(f"Invalid workflow class {cls.__qualname__}:\n{listed}")
    assert run_fn is not None
    arg_types, ret_type = _param_types(run_fn)
    return WorkflowDefinition(
        cls=cls,
        name=wf_name,
        run_fn=run_fn,
        arg_types=arg_types,
        ret_type=ret_type,
        init_takes_args=init_takes_args,
        signals=signals,
        queries=queries,
        updates=updates,
    )


def _add_handler(table: dict[str | None, Any], definition: Any, kind: str, attr: str, problems: list[str]) -> None:
    key = definition.name
    if key in table and table[key].fn is not definition.fn:
        what = "dynamic handler" if key is None else f"name {key!r}"
        problems.append(f"{kind} {what} is used by both {table[key].fn.__name__!r} and {attr!r}")
        return
    table[key] = definition


def run(fn: CallableT) -> CallableT:
    """Mark the workflow's entry point (an ``async def`` method; exactly one per class)."""
    setattr(fn, _RUN_ATTR, True)
    return fn


def init(init_fn: CallableT) -> CallableT:
    """Mark ``__init__`` as receiving the workflow's arguments (same parameters as the run method)."""
    if init_fn.__name__ != "__init__":
        raise ValueError(f"@workflow.init goes on __init__, not on {init_fn.__name__!r}")
    setattr(init_fn, _INIT_ATTR, True)
    return init_fn


@overload
def signal(fn: CallableT) -> CallableT: ...


@overload
def signal(*, name: str | None = None, dynamic: bool = False) -> Callable[[CallableT], CallableT]: ...


def signal(
    fn: CallableT | None = None, *, name: str | None = None, dynamic: bool = False
) -> CallableT | Callable[[CallableT], CallableT]:
    """Mark a method as a signal handler (sync or async; its return value is ignored).

    Args:
        fn: The method (when used without parentheses).
        name: Signal name; defaults to the method name.
        dynamic: Handle every signal no other handler claims; the method takes
            ``(self, name: str, *args)``.
    """

    def decorate(f: CallableT) -> CallableT:
        _check_dynamic("signal", f, name, dynamic)
        arg_types, _ = _param_types(f)
        setattr(f, _SIGNAL_ATTR, SignalDefinition(None if dynamic else (name or f.__name__), f, arg_types))
        return f

    return decorate(fn) if fn is not None else decorate


@overload
def query(fn: CallableT) -> CallableT: ...


@overload
def query(*, name: str | None = None, dynamic: bool = False) -> Callable[[CallableT], CallableT]: ...


def query(
    fn: CallableT | None = None, *, name: str | None = None, dynamic: bool = False
) -> CallableT | Callable[[CallableT], CallableT]:
    """Mark a method as a query handler: a plain ``def`` that reads state and returns a value.

    Args:
        fn: The method (when used without parentheses).
        name: Query name; defaults to the method name.
        dynamic: Handle every query no other handler claims.
    """

    def decorate(f: CallableT) -> CallableT:
        _check_dynamic("query", f, name, dynamic)
        arg_types, ret_type = _param_types(f)
        setattr(f, _QUERY_ATTR, QueryDefinition(None if dynamic else (name or f.__name__), f, arg_types, ret_type))
        return f

    return decorate(fn) if fn is not None else decorate


_P = typing.ParamSpec("_P")
_R_co = TypeVar("_R_co", covariant=True)


class UpdateMethod(Protocol[_P, _R_co]):
    """An ``@workflow.update`` method: callable as before, plus ``.validator``."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...

    def validator(self, vfn: Callable[_P, None]) -> Callable[_P, None]:
        """Register a synchronous validator; raising from it rejects the update."""
        ...


@overload
def update(fn: Callable[_P, _R_co]) -> UpdateMethod[_P, _R_co]: ...


@overload
def update(
    *, name: str | None = None, dynamic: bool = False
) -> Callable[[Callable[_P, _R_co]], UpdateMethod[_P, _R_co]]: ...


def update(
    fn: Callable[_P, _R_co] | None = None, *, name: str | None = None, dynamic: bool = False
) -> UpdateMethod[_P, _R_co] | Callable[[Callable[_P, _R_co]], UpdateMethod[_P, _R_co]]:
    """Mark a method as an update handler (sync or async; may change state and return a value).

    Use ``@my_update.validator`` on a plain ``def`` with the same parameters to
    reject bad updates before they are accepted (and before they reach history).

    Args:
        fn: The method (when used without parentheses).
        name: Update name; defaults to the method name.
        dynamic: Handle every update no other handler claims.
    """

    def decorate(f: Callable[_P, _R_co]) -> UpdateMethod[_P, _R_co]:
        _check_dynamic("update", f, name, dynamic)
        arg_types, ret_type = _param_types(f)
        setattr(f, _UPDATE_ATTR, UpdateDefinition(None if dynamic else (name or f.__name__), f, arg_types, ret_type))

        def validator(vfn: Callable[_P, None]) -> Callable[_P, None]:
            setattr(f, "__kronicle_update_validator__", vfn)  # noqa: B010 - attribute on a function
            return vfn

        setattr(f, "validator", validator)  # noqa: B010
        return typing.cast("UpdateMethod[_P, _R_co]", f)

    return decorate(fn) if fn is not None else decorate


def _check_dynamic(kind: str, fn: Callable[..., Any], name: str | None, dynamic: bool) -> None:
    if dynamic and name:
        raise ValueError(f"{kind} {fn.__name__!r}: a dynamic handler cannot also have a name")
