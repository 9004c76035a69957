"""What every sample's ``__main__`` does: connect to the frontend, run ``main``, print its result."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from kronicle.client import Client

__all__ = ["run_sample", "unique_id"]


def unique_id(prefix: str) -> str:
    """A workflow id that does not collide with an earlier run of the sample."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_sample(main: Callable[[Client], Awaitable[Any]]) -> None:
    """Connect to ``$KRONICLE_ADDRESS`` (default ``localhost:7333``, what ``make dev`` serves) and run ``main``."""

    async def run() -> None:
        address = os.environ.get("KRONICLE_ADDRESS", "localhost:7333")
        namespace = os.environ.get("KRONICLE_NAMESPACE", "default")
        client = await Client.connect(address, namespace=namespace)
        try:
            print(await main(client))
        finally:
            await client.close()

    asyncio.run(run())
