"""Store and projector lifecycles, without a broker."""

from __future__ import annotations

import pytest

from kronicle.connectors.visibility import (
    ProjectorConfig,
    StoreConnectionError,
    VisibilityProjector,
    VisibilityStore,
)


async def test_a_stopped_projector_cannot_be_reused_and_stop_is_idempotent() -> None:
    async with await VisibilityStore.open("sqlite://:memory:") as store:
        projector = VisibilityProjector(ProjectorConfig("127.0.0.1:1", "ns"), store)
        assert projector.config.group == "kronicle-visibility-ns"
        assert projector.config.topic == "kronicle.ns.visibility"
        assert projector.assignment() == []
        await projector.stop()
        await projector.stop()
        with pytest.raises(RuntimeError, match="create a new one"):
            await projector.run_once()
        with pytest.raises(RuntimeError, match="create a new one"):
            await projector.start()


async def test_a_closed_store_refuses_work_and_close_is_idempotent() -> None:
    store = await VisibilityStore.open("sqlite://:memory:")
    assert store.dialect == "sqlite"
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.count("ns")


async def test_an_unreachable_database_says_what_to_check() -> None:
    with pytest.raises(StoreConnectionError, match="check the path"):
        await VisibilityStore.open("sqlite:////nonexistent-dir/x/visibility.db")
    with pytest.raises(StoreConnectionError, match="check the URL"):
        await VisibilityStore.open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
