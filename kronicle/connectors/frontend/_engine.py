"""What the frontend needs from the engine (``kronicle.engine.service.EngineService`` provides it)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

from kronicle.schemas import SchemaRegistry
from kronicle.topics import NamespaceTopics

__all__ = ["EngineLike"]


class EngineLike(Protocol):
    """The read side and the Kafka coordinates of one namespace's engine."""

    @property
    def bootstrap_servers(self) -> str:
        """Kafka bootstrap servers."""
        ...

    @property
    def namespace(self) -> str:
        """The namespace the engine runs."""
        ...

    @property
    def topics(self) -> NamespaceTopics:
        """The namespace's topic names."""
        ...

    @property
    def registry(self) -> SchemaRegistry:
        """Every Kronicle schema."""
        ...

    def describe(self, workflow_id: str, run_id: str = "") -> dict[str, Any] | None:
        """A run's state, or None."""
        ...

    def read_history(
        self,
        workflow_id: str,
        run_id: str = "",
        first_event_id: int = 1,
        max_events: int = 1000,
        last_chunk: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of a run's decoded history events (``last_chunk``: the run state's hint, 0 if unknown)."""
        ...

    async def wait_for_change(self, workflow_id: str, timeout: float) -> bool:
        """Wait until a batch touching the workflow committed; False on timeout."""
        ...

    def watch_change(
        self, workflow_id: str, *, closed_only: bool = False
    ) -> contextlib.AbstractContextManager[asyncio.Event]:
        """While in the block, an event set once a batch touching the workflow (closing a run of it) committed."""
        ...

    async def wait_for_close(self, workflow_id: str, timeout: float) -> bool:
        """Wait until a batch that closed a run of the workflow committed; False on timeout."""
        ...

    def ensure_task_queue(self, queue: str) -> None:
        """Create a task queue's topics if missing."""
        ...
