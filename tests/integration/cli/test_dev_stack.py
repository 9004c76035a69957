"""DevStack on the session broker: the namespace registered with its retention, visibility wired in, all stopped."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kronicle.client import Client, WorkflowExecutionStatus
from kronicle.connectors.dev_stack import DevStack
from kronicle.connectors.frontend import NamespaceRegistry
from kronicle.state.store import StoreOptions

pytestmark = pytest.mark.timeout(120)


async def test_dev_stack_lists_and_counts_and_reads_retention_from_the_registry(kafka_bootstrap: str) -> None:
    namespace = f"dev{uuid.uuid4().hex[:8]}"
    stack = DevStack(kafka=kafka_bootstrap, port=0, namespace=namespace, partitions=2)
    await stack.start()
    try:
        assert stack.namespaces is not None and stack.engine is not None
        info = stack.namespaces.get(namespace)
        assert info is not None and info.partitions == 2
        client = await Client.connect(stack.frontend_address, namespace=namespace)
        async with client:
            handle = await client.start_workflow("Idle", id="dev-1", task_queue="dev")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while (await client.count_workflows("WorkflowId = 'dev-1'")).count != 1:
                assert loop.time() < deadline, "the projector did not make the run visible"
                await asyncio.sleep(0.1)
            (execution,) = [e async for e in client.list_workflows("WorkflowType = 'Idle'")]
            assert execution.run_id == handle.result_run_id and execution.status is WorkflowExecutionStatus.RUNNING
    finally:
        await stack.stop()
    assert stack.frontend is None and stack.engine is None and stack.projector is None and stack.namespaces is None
    assert not stack.data_dir.exists()

    # A changed retention is what the next start's engine runs with.
    registry = NamespaceRegistry(kafka_bootstrap)
    await asyncio.to_thread(registry.start)
    try:
        await asyncio.to_thread(registry.update, namespace, retention_ms=3_600_000)
    finally:
        await asyncio.to_thread(registry.stop)
    # Another partition count asked for: the registered namespace keeps its own (its topics exist).
    # And the engine's state store takes the stack's RocksDB memory bound.
    small = StoreOptions(block_cache_bytes=16 << 20, memtable_bytes=8 << 20)
    again = DevStack(kafka=kafka_bootstrap, port=0, namespace=namespace, partitions=5, store_options=small)
    await again.start()
    try:
        assert again.engine is not None and again.engine.processor.store._options == small
        assert again.namespace_info is not None and again.namespace_info.retention_ms == 3_600_000
        assert again.engine is not None and again.engine.partition_count == 2
        assert again.engine.handler._cfg.options.retention_ms == 3_600_000  # what the engine really runs with
    finally:
        await again.stop()
