"""A real engine, a frontend over it (the schema registry endpoint) and a client, shared per test module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def engine_namespace_prefix() -> str:
    return "in"
