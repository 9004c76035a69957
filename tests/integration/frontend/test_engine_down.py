"""What callers see when the engine behind the frontend is not answering."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from kronicle.connectors.frontend import Frontend, FrontendConfig
from kronicle.engine.service import EngineService

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_stopped_engine_gives_deadline_exceeded_and_not_ready(kafka_bootstrap: str, tmp_path: Path) -> None:
    engine = EngineService(kafka_bootstrap, f"down{uuid.uuid4().hex[:8]}", state_dir=tmp_path, partitions=1)
    engine.start()
    frontend = Frontend(engine, port=0, config=FrontendConfig(command_timeout_s=1.0))
    await frontend.start()
    try:
        engine.stop()
        base = f"{frontend.url}/api/v1/namespaces/{engine.namespace}/workflows"
        async with aiohttp.ClientSession() as session:
            start = {"workflow_id": "w", "workflow_type": "T", "task_queue": "q", "request_id": "r"}
            async with session.post(base, json=start) as resp:
                body = await resp.json()
                assert resp.status == 504 and body["code"] == "DeadlineExceeded", body
                assert body["details"]["request_id"] == "r" and "retry" in body["message"]
            async with session.get(base + "/w") as resp:
                body = await resp.json()
                assert resp.status == 503 and body["code"] == "NotReady", body
    finally:
        await frontend.stop()


async def test_stop_does_not_wait_for_long_polls(engine: EngineService) -> None:
    import asyncio
    import time

    frontend = Frontend(engine, port=0)
    await frontend.start()
    base = f"{frontend.url}/api/v1/namespaces/{engine.namespace}/workflows"
    async with aiohttp.ClientSession() as session:
        start = {"workflow_id": f"lp-{uuid.uuid4().hex[:8]}", "workflow_type": "T", "task_queue": "q"}
        async with session.post(base, json=start) as resp:
            assert resp.status == 201

        async def poll() -> int:
            async with session.get(f"{base}/{start['workflow_id']}/result", params={"wait": "60"}) as resp:
                return resp.status

        polling = asyncio.create_task(poll())
        await asyncio.sleep(0.3)
        began = time.monotonic()
        await frontend.stop()
        assert time.monotonic() - began < 10
        with pytest.raises(aiohttp.ClientError):
            await polling
