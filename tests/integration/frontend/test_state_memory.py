"""/metrics reports the engine's RocksDB memory, so an operator can tell the state store's share of the RSS."""

from __future__ import annotations

import re

import aiohttp
import pytest

from kronicle.client import Client
from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService
from tests.integration.conftest import new_id
from tests.integration.frontend.conftest import wait_event

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _state_memory(frontend: Frontend, namespace: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(frontend.url + "/metrics") as resp:
        text = await resp.text()
    memory: dict[str, float] = {}
    for m in re.finditer(r"^kronicle_state_memory_bytes\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("namespace") == namespace:
            memory[labels["kind"]] = float(m.group(2))
    return memory


async def test_metrics_report_the_state_stores_memory(
    frontend: Frontend, engine: EngineService, client: Client
) -> None:
    workflow_id = new_id("mem")
    await client.start_workflow("MemoryProbe", id=workflow_id, task_queue="mem-q")
    await wait_event(engine, workflow_id, "WorkflowTaskScheduled")
    memory = await _state_memory(frontend, engine.namespace)
    assert set(memory) == {"block_cache", "memtables", "pinned"}
    # The workflow's state sits in memtables, which are charged to the block cache.
    assert memory["memtables"] > 0
    assert memory["block_cache"] >= memory["memtables"]
    usage = engine.processor.store.memory_usage()
    assert usage.memtable_bytes > 0
