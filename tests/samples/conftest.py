"""One time-skipping environment (on the session broker) shared by every sample test, for speed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from kronicle.testing import WorkflowEnvironment


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def env(kafka_bootstrap: str) -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(kafka=kafka_bootstrap) as environment:
        yield environment


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own, so no worker of another test picks its tasks up."""
    return f"sample-{uuid.uuid4().hex[:8]}"
