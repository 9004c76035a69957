"""Scale of the fault tests: bounded in ``make test``, long in ``make chaos``.

``KRONICLE_CHAOS_SCALE=long`` (what ``make chaos`` sets) runs thousands of
workflows and many faults; the default is the bounded variant that the normal
suite runs in a few minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Scale:
    name: str
    workflows: int
    """Workflows per scenario."""
    kills: int
    """Process kills in the kill -9 scenario, broker kills in the cluster scenario."""
    garbage: int
    """Bad records in the DLQ scenario."""
    wait: float
    """Seconds to wait for every workflow to close."""


SHORT = Scale("short", workflows=120, kills=3, garbage=10_000, wait=240)
LONG = Scale("long", workflows=5000, kills=25, garbage=10_000, wait=1200)


@pytest.fixture(scope="session")
def scale() -> Scale:
    return LONG if os.environ.get("KRONICLE_CHAOS_SCALE", "short") == "long" else SHORT
