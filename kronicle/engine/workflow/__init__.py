"""The workflow state machine: Temporal's workflow semantics as a pure engine handler.

:class:`WorkflowHandler` applies workflow commands (start, signal, cancel,
terminate, workflow-task and activity results from workers, fired timers) to a
partition's state, writes Temporal-shaped history to ``kronicle.<ns>.history``,
dispatches workflow and activity tasks, and publishes visibility records. The
protocol (schemas, events, task records) is described in ``docs/history.md``.
"""

from __future__ import annotations

from kronicle.engine.workflow._handler import WorkflowHandler
from kronicle.engine.workflow._read import describe, read_history
from kronicle.engine.workflow._state import COLUMN_FAMILIES, WorkflowTopics, continued_run_id, start_run_id
from kronicle.engine.workflow._tx import WorkflowOptions

__all__ = [
    "COLUMN_FAMILIES",
    "WorkflowHandler",
    "WorkflowOptions",
    "WorkflowTopics",
    "continued_run_id",
    "describe",
    "read_history",
    "start_run_id",
]
