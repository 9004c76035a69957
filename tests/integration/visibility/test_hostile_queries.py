"""Hostile List Filters against the store on both databases: an InvalidQueryError or an answer, never a crash.

The largest filters the parser accepts (``MAX_CONDITIONS`` conditions in one chain or custom-attribute
subqueries, ``MAX_NESTING`` parentheses, ``MAX_VALUES`` IN values) must still run on SQLite and
PostgreSQL, whose own limits (SQLite: expression depth 1000, about 100 nested parentheses) are lower
than what an unbounded parser would let through.
"""

from __future__ import annotations

import time

import pytest

from kronicle.connectors.visibility import InvalidQueryError, VisibilityStore
from kronicle.connectors.visibility._query import MAX_CONDITIONS, MAX_NESTING, MAX_QUERY_LENGTH, MAX_VALUES

pytestmark = pytest.mark.timeout(120)


def chain(op: str, n: int, attr: str = "WorkflowId") -> str:
    return f" {op} ".join(f"{attr} = 'w{i}'" for i in range(n))


def nested(depth: int, attr: str = "WorkflowType") -> str:
    # Alternate AND and OR so that every level is a real subexpression in the SQL.
    text = "WorkflowId = 'x'"
    for level in range(depth):
        op = "AND" if level % 2 else "OR"
        text = f"({attr} = 't{level}' {op} {text})"
    return text


ACCEPTED = {
    "longest OR chain": chain("OR", MAX_CONDITIONS),
    "longest AND chain": chain("AND", MAX_CONDITIONS),
    "custom attribute chain": chain("OR", MAX_CONDITIONS, attr="CustomerId"),
    "deepest nesting": nested(MAX_NESTING),
    "deepest nesting of custom attributes": nested(MAX_NESTING, attr="CustomerId"),
    "largest IN list": "WorkflowId IN (" + ", ".join(f"'w{i}'" for i in range(MAX_VALUES)) + ")",
}
REFUSED = {
    "too many conditions": chain("OR", MAX_CONDITIONS + 1),
    "thousands of terms": chain("AND", 3000),
    "too deep": nested(MAX_NESTING + 1),
    "unbalanced parentheses": "(" * 100_000,
    "too many values": "WorkflowId IN (" + ", ".join(str(i) for i in range(MAX_VALUES + 1)) + ")",
    "too long": "WorkflowId = '" + "a" * MAX_QUERY_LENGTH + "'",
    "statement injection": "WorkflowId = 'x'; DROP TABLE executions; --",
    "subquery": "WorkflowId IN (SELECT run_id FROM executions)",
    "comment": "WorkflowId = 'x' /* */",
    "nul": "WorkflowId = 'x'\x00",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
async def test_the_largest_accepted_filters_run(store: VisibilityStore, name: str) -> None:
    await store.register_search_attribute("default", "CustomerId", "Keyword")
    started = time.monotonic()
    rows, token = await store.list("default", ACCEPTED[name], page_size=10)
    assert (rows, token) == ([], None)
    assert await store.count("default", ACCEPTED[name]) == 0
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_hostile_filters_are_invalid_queries(store: VisibilityStore, name: str) -> None:
    with pytest.raises(InvalidQueryError) as err:
        await store.list("default", REFUSED[name])
    assert 0 <= err.value.position <= len(REFUSED[name])
    with pytest.raises(InvalidQueryError):
        await store.count("default", REFUSED[name])
