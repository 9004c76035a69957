"""The activity bodies every engine runs: plain functions, registered by each SDK's ``activity.defn``.

Keeping them here, outside both adapters, is what makes "same activity bodies"
literal: both workers call these very functions.
"""

from __future__ import annotations

__all__ = ["ACTIVITY_TIMEOUT_S", "SIGNAL_COUNT", "STEP_COUNT", "echo_body"]

ACTIVITY_TIMEOUT_S = 30
"""start_to_close_timeout of every activity in the workloads."""
SIGNAL_COUNT = 100
"""Signals the signal workload sends before the workflow completes."""
STEP_COUNT = 10
"""Activities, one after the other, in the sequential workload."""


async def echo_body(value: str) -> str:
    """A no-op activity: returns its argument (the work measured is the engine's, not the activity's)."""
    return value
