"""The public names of each SDK module are locked: changing them must be a deliberate act."""

from __future__ import annotations

import inspect
import types

import pytest

import kronicle.activity
import kronicle.common
import kronicle.converter
import kronicle.exceptions
import kronicle.workflow

EXPECTED: dict[types.ModuleType, list[str]] = {
    kronicle.workflow: [
        "ActivityCancellationType",
        "ActivityHandle",
        "ChildWorkflowCancellationType",
        "ChildWorkflowHandle",
        "ContinueAsNewError",
        "ExternalWorkflowHandle",
        "Info",
        "LoggerAdapter",
        "ParentClosePolicy",
        "ParentInfo",
        "QueryDefinition",
        "SignalDefinition",
        "UpdateDefinition",
        "UpdateMethod",
        "WorkflowDefinition",
        "continue_as_new",
        "defn",
        "deprecate_patch",
        "execute_activity",
        "execute_child_workflow",
        "get_external_workflow_handle",
        "in_workflow",
        "info",
        "init",
        "logger",
        "now",
        "patched",
        "query",
        "random",
        "run",
        "signal",
        "sleep",
        "start_activity",
        "start_child_workflow",
        "time",
        "unsafe",
        "update",
        "upsert_search_attributes",
        "uuid4",
        "wait_condition",
    ],
    kronicle.activity: [
        "ActivityContext",
        "ActivityDefinition",
        "Info",
        "defn",
        "heartbeat",
        "in_activity",
        "info",
        "is_cancelled",
        "wait_for_cancelled",
    ],
    kronicle.common: [
        "ActivityCancellationType",
        "ChildWorkflowCancellationType",
        "ParentClosePolicy",
        "RetryPolicy",
        "SearchAttributeValue",
        "SearchAttributes",
        "WorkflowIDConflictPolicy",
        "WorkflowIDReusePolicy",
    ],
    kronicle.exceptions: [
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
    ],
    kronicle.converter: [
        "DataConverter",
        "DefaultPayloadConverter",
        "Failure",
        "FailureConverter",
        "JSONPlainPayloadConverter",
        "Payload",
        "PayloadCodec",
        "PayloadConverter",
    ],
}


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.__name__)
def test_exported_names_are_locked_and_sorted(module: types.ModuleType) -> None:
    assert module.__all__ == EXPECTED[module]
    assert module.__all__ == sorted(module.__all__)


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.__name__)
def test_every_exported_name_exists_and_public_ones_are_documented(module: types.ModuleType) -> None:
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, f"{module.__name__}.{name} has no docstring"


def test_no_public_name_leaks_outside_all() -> None:
    public = {n for n in vars(kronicle.workflow) if not n.startswith("_")}
    # Submodules are importable by name but are not part of the API.
    assert public - set(kronicle.workflow.__all__) <= {"annotations"}
