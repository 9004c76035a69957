"""Fixtures for visibility: a throwaway PostgreSQL server, and a store on SQLite and on PostgreSQL.

Every test that takes ``store`` runs twice, once per database. Without the
PostgreSQL server binaries the PostgreSQL half fails (it does not skip) with a
message that says what to install.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kronicle.connectors.visibility import VisibilityStore
from kronicle.connectors.visibility.local_postgres import LocalPostgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """One PostgreSQL server for the session; stopped (and its files deleted) even when tests fail."""
    with LocalPostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty visibility database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/visibility.db"
    server: LocalPostgres = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[VisibilityStore]:
    store = await VisibilityStore.open(store_url)
    async with store:
        yield store
