"""The visibility store on SQLite and on PostgreSQL: queries, pagination, counts, versions, injection."""

from __future__ import annotations

from typing import Any

import pytest

from kronicle.connectors.visibility import (
    InvalidPageTokenError,
    InvalidQueryError,
    SearchAttributeError,
    SearchAttributeType,
    VisibilityStore,
)
from kronicle.connectors.visibility._attributes import ms_to_rfc3339
from tests.integration.visibility._records import T0, record, update

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def orders() -> list[dict[str, Any]]:
    """Ten Order runs (even ones completed), five failed Refunds; custom attributes on the Orders."""
    out = []
    for i in range(10):
        closed = i % 2 == 0
        out.append(
            record(
                f"o-{i}",
                run_id=f"00000000-0000-0000-0000-00000000000{i}",
                workflow_type="Order",
                status="COMPLETED" if closed else "RUNNING",
                start=T0 + i * MINUTE,
                close=T0 + i * MINUTE + 30_000 if closed else None,
                history_length=10 if closed else 2,
                search={
                    "CustomerId": f"c-{i % 3}",
                    "Amount": i * 1.5,
                    "Priority": i,
                    "Vip": i % 2 == 0,
                    "Due": ms_to_rfc3339(T0 + i * HOUR),
                    "Tags": ["red"] if i % 2 else ["blue", "green"],
                    "Note": f"note {i}",
                },
                memo={"owner": "ops"},
            )
        )
    for i in range(5):
        out.append(
            record(
                f"r-{i}",
                workflow_type="Refund",
                status="FAILED",
                start=T0 + DAY + i,
                close=T0 + DAY + 100 + i,
                history_length=7,
            )
        )
    return out


ATTRIBUTES = {
    "CustomerId": "Keyword",
    "Amount": "Double",
    "Priority": "Int",
    "Vip": "Bool",
    "Due": "Datetime",
    "Tags": "KeywordList",
    "Note": "Text",
}


@pytest.fixture
async def populated(store: VisibilityStore) -> VisibilityStore:
    # Half the attributes are registered after their values arrived: both orders must work.
    for name in ("CustomerId", "Amount", "Priority"):
        await store.register_search_attribute("default", name, ATTRIBUTES[name])
    result = await store.apply([update(r, seq=i + 1) for i, r in enumerate(orders())])
    assert (result.applied, result.stale) == (15, 0)
    await store.apply([update(record(f"x-{i}", workflow_type="Order"), 1, namespace="other") for i in range(3)])
    for name in ("Vip", "Due", "Tags", "Note"):
        await store.register_search_attribute("default", name, ATTRIBUTES[name])
    return store


async def ids(store: VisibilityStore, query: str, namespace: str = "default") -> list[str]:
    rows, token = await store.list(namespace, query, page_size=1000)
    assert token is None
    return [r["workflow_id"] for r in rows]


async def test_the_default_order_is_open_runs_first_then_latest_closed(populated: VisibilityStore) -> None:
    assert await ids(populated, "") == [
        *(f"o-{i}" for i in (9, 7, 5, 3, 1)),
        *(f"r-{i}" for i in (4, 3, 2, 1, 0)),
        *(f"o-{i}" for i in (8, 6, 4, 2, 0)),
    ]


async def test_a_listed_execution_carries_its_fields(populated: VisibilityStore) -> None:
    rows, _ = await populated.list("default", "WorkflowId = 'o-2'")
    assert rows == [
        {
            "workflow_id": "o-2",
            "run_id": "00000000-0000-0000-0000-000000000002",
            "workflow_type": "Order",
            "task_queue": "q",
            "status": "Completed",
            "start_time": "2024-01-01T00:02:00.000Z",
            "execution_time": "2024-01-01T00:02:00.000Z",
            "close_time": "2024-01-01T00:02:30.000Z",
            "execution_duration_ms": 30_000,
            "history_length": 10,
            "first_run_id": "00000000-0000-0000-0000-000000000002",
            "memo": {"owner": {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "Im9wcyI="}},
            "search_attributes": {
                "Amount": 3.0,
                "CustomerId": "c-2",
                "Due": "2024-01-01T02:00:00.000Z",
                "Note": "note 2",
                "Priority": 2,
                "Tags": ["blue", "green"],
                "Vip": True,
            },
        }
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("WorkflowType = 'Order' AND ExecutionStatus = 'Running'", ["o-9", "o-7", "o-5", "o-3", "o-1"]),
        ("WorkflowType = 'Refund' AND ExecutionStatus = 'FAILED' ORDER BY WorkflowId", [f"r-{i}" for i in range(5)]),
        (
            "StartTime BETWEEN '2024-01-01T00:02:00Z' AND '2024-01-01T00:04:00Z' ORDER BY StartTime",
            ["o-2", "o-3", "o-4"],
        ),
        (
            "StartTime >= '2024-01-02T00:00:00Z' AND WorkflowId != 'r-0' ORDER BY StartTime DESC",
            ["r-4", "r-3", "r-2", "r-1"],
        ),
        ("CloseTime < '2024-01-01T00:03:00Z'", ["o-2", "o-0"]),
        ("CloseTime IS NULL ORDER BY WorkflowId", ["o-1", "o-3", "o-5", "o-7", "o-9"]),
        ("ExecutionDuration > '1m' ORDER BY WorkflowId", []),
        (
            "ExecutionDuration = '30s' AND WorkflowType = 'Order' ORDER BY WorkflowId",
            ["o-0", "o-2", "o-4", "o-6", "o-8"],
        ),
        ("HistoryLength = 7 AND WorkflowId IN ('r-1', 'r-3', 'o-1') ORDER BY WorkflowId", ["r-1", "r-3"]),
        ("WorkflowId NOT IN ('o-1') AND ExecutionStatus = 'Running' ORDER BY WorkflowId", ["o-3", "o-5", "o-7", "o-9"]),
        (
            "ExecutionStatus IN ('Completed', 'FAILED') AND WorkflowId STARTS_WITH 'o' ORDER BY WorkflowId",
            ["o-0", "o-2", "o-4", "o-6", "o-8"],
        ),
        ("CustomerId = 'c-1' ORDER BY WorkflowId", ["o-1", "o-4", "o-7"]),
        (
            "CustomerId != 'c-1' AND CustomerId STARTS_WITH 'c-' ORDER BY WorkflowId",
            ["o-0", "o-2", "o-3", "o-5", "o-6", "o-8", "o-9"],
        ),
        ("Amount > 10 ORDER BY WorkflowId", ["o-7", "o-8", "o-9"]),
        ("Priority BETWEEN 2 AND 3 ORDER BY WorkflowId", ["o-2", "o-3"]),
        ("Vip = true AND Priority > 5 ORDER BY WorkflowId", ["o-6", "o-8"]),
        ("Due >= '2024-01-01T08:00:00Z' ORDER BY WorkflowId", ["o-8", "o-9"]),
        ("Tags = 'green' AND Priority < 3 ORDER BY WorkflowId", ["o-0", "o-2"]),
        ("Tags IN ('red', 'nope') AND Priority < 4 ORDER BY WorkflowId", ["o-1", "o-3"]),
        ("Tags != 'red' AND WorkflowType = 'Order' ORDER BY WorkflowId", ["o-0", "o-2", "o-4", "o-6", "o-8"]),
        ("Note = 'note 3'", ["o-3"]),
        ("CustomerId IS NULL ORDER BY WorkflowId", [f"r-{i}" for i in range(5)]),
        (
            "(CustomerId = 'c-0' OR Priority = 1) AND ExecutionStatus = 'Running' ORDER BY WorkflowId",
            ["o-1", "o-3", "o-9"],
        ),
        ("RunId = '00000000-0000-0000-0000-000000000005'", ["o-5"]),
    ],
)
async def test_queries(populated: VisibilityStore, query: str, expected: list[str]) -> None:
    assert await ids(populated, query) == expected
    assert await populated.count("default", query) == len(expected)


async def test_namespaces_do_not_see_each_other(populated: VisibilityStore) -> None:
    assert await ids(populated, "ORDER BY WorkflowId", namespace="other") == ["x-0", "x-1", "x-2"]
    assert await populated.count("other") == 3
    assert await populated.count("nobody") == 0
    with pytest.raises(InvalidQueryError):
        # Custom attributes are registered per namespace.
        await populated.count("other", "CustomerId = 'c-1'")


async def test_count_and_count_by_status(populated: VisibilityStore) -> None:
    assert await populated.count("default") == 15
    assert await populated.count_by_status("default") == {
        "Running": 5,
        "Completed": 5,
        "Failed": 5,
        "Canceled": 0,
        "Terminated": 0,
        "ContinuedAsNew": 0,
        "TimedOut": 0,
    }
    by_status = await populated.count_by_status("default", "WorkflowType = 'Order' AND Priority > 5")
    assert (by_status["Running"], by_status["Completed"], by_status["Failed"]) == (2, 2, 0)


@pytest.mark.parametrize(
    "query",
    ["", "WorkflowType = 'Order' ORDER BY StartTime ASC", "ORDER BY ExecutionStatus, CloseTime DESC", "Priority >= 0"],
)
async def test_pages_cover_every_row_once_in_order(populated: VisibilityStore, query: str) -> None:
    everything = await ids(populated, query)
    seen: list[str] = []
    token: str | None = None
    while True:
        rows, token = await populated.list("default", query, page_size=4, next_page_token=token)
        assert len(rows) <= 4
        seen.extend(r["workflow_id"] for r in rows)
        if token is None:
            break
    assert seen == everything


async def test_pages_stay_stable_when_rows_are_added_behind_the_cursor(populated: VisibilityStore) -> None:
    query = "ORDER BY WorkflowId"
    first, token = await populated.list("default", query, page_size=5)
    await populated.apply([update(record("a-new"), 1)])  # sorts before every row already returned
    second, _ = await populated.list("default", query, page_size=5, next_page_token=token)
    assert [r["workflow_id"] for r in first + second] == [f"o-{i}" for i in range(10)]


async def test_altered_or_foreign_page_tokens_are_refused(populated: VisibilityStore) -> None:
    _, token = await populated.list("default", "ORDER BY WorkflowId", page_size=3)
    assert token is not None
    body, mac = token.split(".")
    for bad in (body + "." + mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB"), body[:-3] + "xyz." + mac, "junk", ""):
        with pytest.raises(InvalidPageTokenError):
            await populated.list("default", "ORDER BY WorkflowId", page_size=3, next_page_token=bad)
    with pytest.raises(InvalidPageTokenError, match="another namespace or query"):
        await populated.list("default", "ORDER BY WorkflowType", page_size=3, next_page_token=token)
    with pytest.raises(InvalidPageTokenError):
        await populated.list("other", "ORDER BY WorkflowId", page_size=3, next_page_token=token)


async def test_page_tokens_survive_reopening_the_store(store_url: str, populated: VisibilityStore) -> None:
    _, token = await populated.list("default", "ORDER BY WorkflowId", page_size=3)
    async with await VisibilityStore.open(store_url) as again:
        rows, _ = await again.list("default", "ORDER BY WorkflowId", page_size=3, next_page_token=token)
    assert [r["workflow_id"] for r in rows] == ["o-3", "o-4", "o-5"]


async def test_invalid_page_size(store: VisibilityStore) -> None:
    for size in (0, 1001):
        with pytest.raises(ValueError, match="page_size"):
            await store.list("default", "", page_size=size)


# -- versions: replays, duplicates and reordering change nothing -------------------------------------


async def test_an_older_state_after_a_newer_one_changes_nothing(store: VisibilityStore) -> None:
    started = record("w", run_id="r1", history_length=2, search={"Stage": "start"})
    closed = {**started, "status": "COMPLETED", "close_time_ms": T0 + 5, "history_length": 5}
    closed["search_attributes"] = record("w", search={"Stage": "done"})["search_attributes"]
    await store.register_search_attribute("default", "Stage", "Keyword")
    assert (await store.apply([update(closed, 9)])).applied == 1
    result = await store.apply([update(started, 3)])
    assert (result.applied, result.stale) == (0, 1)
    rows, _ = await store.list("default")
    assert [(r["status"], r["history_length"], r["search_attributes"]) for r in rows] == [
        ("Completed", 5, {"Stage": "done"})
    ]
    assert await store.count("default", "Stage = 'start'") == 0
    assert await store.count("default", "Stage = 'done'") == 1


async def test_duplicates_and_replays_are_stale(store: VisibilityStore) -> None:
    records = [update(r, i + 1) for i, r in enumerate(orders())]
    await store.apply(records)
    before = await store.list("default", "ORDER BY WorkflowId", page_size=100)
    result = await store.apply(records + records)
    assert (result.applied, result.stale) == (0, 30)
    assert await store.list("default", "ORDER BY WorkflowId", page_size=100) == before


async def test_within_one_batch_the_latest_version_wins_whatever_the_order(store: VisibilityStore) -> None:
    running = record("w", run_id="r1", history_length=3)
    upserted = {**running, "search_attributes": record("w", search={"Stage": "x"})["search_attributes"]}
    # Same history length: the sequence number decides.
    result = await store.apply([update(upserted, 8), update(running, 7)])
    assert (result.applied, result.stale) == (1, 1)
    rows, _ = await store.list("default")
    assert rows[0]["search_attributes"] == {"Stage": "x"}


async def test_an_undecodable_search_attribute_is_left_out_not_fatal(store: VisibilityStore) -> None:
    bad = record("w", run_id="r1", search={"Good": "yes"})
    bad["search_attributes"]["Bad"] = b"\xff\xfe not a payload"
    assert (await store.apply([update(bad, 1)])).applied == 1
    rows, _ = await store.list("default")
    assert rows[0]["search_attributes"] == {"Good": "yes"}


# -- the search attribute registry ----------------------------------------------------------------


async def test_registering_search_attributes(store: VisibilityStore) -> None:
    await store.register_search_attribute("default", "CustomerId", SearchAttributeType.KEYWORD)
    await store.register_search_attribute("default", "CustomerId", "keyword")  # again, same type: fine
    await store.register_search_attribute("default", "Labels", "KEYWORD_LIST")
    assert await store.search_attributes("default") == {
        "CustomerId": SearchAttributeType.KEYWORD,
        "Labels": SearchAttributeType.KEYWORD_LIST,
    }
    assert await store.search_attributes("other") == {}
    with pytest.raises(SearchAttributeError, match="already registered as Keyword"):
        await store.register_search_attribute("default", "CustomerId", "Int")
    with pytest.raises(SearchAttributeError, match="system attribute"):
        await store.register_search_attribute("default", "WorkflowId", "Keyword")
    with pytest.raises(SearchAttributeError, match="letters"):
        await store.register_search_attribute("default", "bad name'; --", "Keyword")
    with pytest.raises(SearchAttributeError, match="unknown search attribute type"):
        await store.register_search_attribute("default", "X", "Blob")


# -- injection through the query string -----------------------------------------------------------

INJECTIONS = [
    "WorkflowId = 'x' OR 1=1",
    "WorkflowId = 'x'; DROP TABLE executions",
    "WorkflowId = 'x' -- comment",
    "WorkflowId = 'x'' OR ''1''=''1'",
    "WorkflowId = '' OR '1'='1'",
    'WorkflowId = "x" UNION SELECT * FROM search_attribute_types',
    "WorkflowId = 'x' ORDER BY (SELECT 1)",
    "WorkflowId = 'x' ORDER BY 1; DELETE FROM executions",
    "`workflow_id` = 'o-1'",
    "`WorkflowId = 'x' OR 1=1 --` = 'y'",
    "executions.workflow_id = 'o-1'",
    "WorkflowId = 'x\\' OR 1=1 --'",
    "WorkflowId IN ('x') OR WorkflowId IN (SELECT workflow_id FROM executions)",
    "WorkflowId STARTS_WITH '%'",
    "CustomerId = 'x' OR CustomerId IS NOT NULL) OR (1=1",
    "1 = 1",
    "ExecutionStatus = 'Running'' OR status = ''Completed'",
]


@pytest.mark.parametrize("query", INJECTIONS)
async def test_injection_attempts_change_nothing(populated: VisibilityStore, query: str) -> None:
    before = await ids(populated, "ORDER BY RunId")
    try:
        rows, _ = await populated.list("default", query, page_size=1000)
        # A query that parses treats the attempt as a value: nothing has that value.
        assert rows == []
        assert await populated.count("default", query) == 0
    except InvalidQueryError:
        pass
    assert await ids(populated, "ORDER BY RunId") == before
    assert await populated.count("other") == 3
    assert len(await populated.search_attributes("default")) == 7


async def test_like_wildcards_in_data_are_literal(store: VisibilityStore) -> None:
    await store.apply([update(record(wid), 1) for wid in ("a%b", "axb", "a_c", "abc", "A%b")])
    assert await ids(store, "WorkflowId STARTS_WITH 'a%' ORDER BY WorkflowId") == ["a%b"]
    assert await ids(store, "WorkflowId STARTS_WITH 'a_' ORDER BY WorkflowId") == ["a_c"]
    assert await ids(store, "WorkflowId STARTS_WITH 'a' ORDER BY WorkflowId") == ["a%b", "a_c", "abc", "axb"]
