"""Public client API: connect to a Kronicle frontend, start workflows, and work with their handles.

Shaped like ``temporalio.client``::

    client = await Client.connect("localhost:7333", namespace="default")
    handle = await client.start_workflow(GreetingWorkflow.run, "World", id="greet-1", task_queue="greetings")
    await handle.signal(GreetingWorkflow.approve)
    assert await handle.query(GreetingWorkflow.approved)
    print(await handle.result())
    async for execution in client.list_workflows("WorkflowType = 'GreetingWorkflow'"):
        print(execution.id, execution.status)

Everything is implemented in private modules; ``tests/unit/client/test_exports.py``
locks this list.
"""

from __future__ import annotations

from kronicle.client._client import Client, WorkflowHandle
from kronicle.client._http import FrontendError
from kronicle.client._types import (
    PendingActivityInfo,
    WorkflowContinuedAsNewError,
    WorkflowExecution,
    WorkflowExecutionCount,
    WorkflowExecutionCountAggregationGroup,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from kronicle.client._update import WorkflowExecutionAsyncIterator, WorkflowUpdateHandle

__all__ = [
    "Client",
    "FrontendError",
    "PendingActivityInfo",
    "WorkflowContinuedAsNewError",
    "WorkflowExecution",
    "WorkflowExecutionAsyncIterator",
    "WorkflowExecutionCount",
    "WorkflowExecutionCountAggregationGroup",
    "WorkflowExecutionDescription",
    "WorkflowExecutionStatus",
    "WorkflowHandle",
    "WorkflowHistory",
    "WorkflowQueryFailedError",
    "WorkflowUpdateFailedError",
    "WorkflowUpdateHandle",
    "WorkflowUpdateStage",
]
