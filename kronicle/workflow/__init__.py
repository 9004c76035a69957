"""Public workflow API: ``@workflow.defn`` and the functions workflow code calls.

Shaped like ``temporalio.workflow``: the same names, signatures and defaults.
Everything is implemented in the ``_private`` modules of this package; this
module only re-exports, and ``tests/unit/sdk/test_exports.py`` locks the list.
"""

from __future__ import annotations

from kronicle.common import ActivityCancellationType, ChildWorkflowCancellationType, ParentClosePolicy
from kronicle.workflow._api import (
    ActivityHandle,
    ChildWorkflowHandle,
    ExternalWorkflowHandle,
    LoggerAdapter,
    continue_as_new,
    deprecate_patch,
    execute_activity,
    execute_child_workflow,
    get_external_workflow_handle,
    in_workflow,
    info,
    logger,
    now,
    patched,
    random,
    sleep,
    start_activity,
    start_child_workflow,
    time,
    unsafe,
    upsert_search_attributes,
    uuid4,
    wait_condition,
)
from kronicle.workflow._definition import (
    QueryDefinition,
    SignalDefinition,
    UpdateDefinition,
    UpdateMethod,
    WorkflowDefinition,
    defn,
    init,
    query,
    run,
    signal,
    update,
)
from kronicle.workflow._runtime import ContinueAsNewError, Info, ParentInfo

__all__ = [
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
]
