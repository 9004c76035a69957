"""From records to rows: search attribute decoding, typed side-table values, durations, exports."""

from __future__ import annotations

import pytest

from kronicle._wire import payload_to_bytes
from kronicle.connectors import visibility
from kronicle.connectors.visibility._attributes import (
    SearchAttributeType,
    datetime_to_ms,
    ms_to_rfc3339,
    parse_duration_ns,
    status_name,
)
from kronicle.connectors.visibility._rows import (
    ExecutionUpdate,
    attribute_rows,
    decode_search_attributes,
    execution_info,
    execution_row,
)
from kronicle.converter import DataConverter

_to_payload = DataConverter().payload_converter.to_payload


def test_the_public_names_are_fixed() -> None:
    assert visibility.__all__ == sorted(visibility.__all__, key=lambda n: (not n.isupper(), n))
    assert set(visibility.__all__) == {
        "STATUS_NAMES",
        "SYSTEM_ATTRIBUTES",
        "ApplyResult",
        "ExecutionUpdate",
        "InvalidPageTokenError",
        "InvalidQueryError",
        "ProjectorConfig",
        "ProjectorStats",
        "Query",
        "SearchAttributeError",
        "SearchAttributeType",
        "StoreConnectionError",
        "VisibilityProjector",
        "VisibilityStore",
        "compile_query",
        "parse_query",
    }


def test_search_attribute_values_are_decoded_from_payload_bytes() -> None:
    raw = {name: payload_to_bytes(_to_payload(v)) for name, v in {"a": "x", "n": 3, "l": ["p", "q"]}.items()}
    raw["broken"] = b"\x07garbage"
    assert decode_search_attributes(raw) == {"a": "x", "n": 3, "l": ["p", "q"]}


def test_each_value_is_kept_in_every_column_it_compares_as() -> None:
    rows = attribute_rows(
        "ns", "r", {"b": True, "i": 7, "f": 1.5, "s": "hi", "t": "2024-01-01T00:00:01Z", "l": ["x", "y"]}
    )
    assert sorted(rows) == sorted(
        [
            ("ns", "r", "b", None, 1, None),
            ("ns", "r", "i", None, 7, 7.0),
            ("ns", "r", "f", None, None, 1.5),
            ("ns", "r", "s", "hi", None, None),
            ("ns", "r", "t", "2024-01-01T00:00:01Z", 1_704_067_201_000, None),
            ("ns", "r", "l", "x", None, None),
            ("ns", "r", "l", "y", None, None),
        ]
    )
    assert attribute_rows("ns", "r", {"obj": {"a": 1}, "none": None}) == []


def test_a_row_round_trips_to_an_execution_info() -> None:
    datum = {
        "workflow_id": "w",
        "run_id": "r",
        "workflow_type": "T",
        "task_queue": "q",
        "status": "TIMED_OUT",
        "start_time_ms": 1000,
        "execution_time_ms": 0,
        "close_time_ms": 4000,
        "history_length": 9,
        "first_run_id": "r",
        "memo": {},
        "search_attributes": {},
    }
    row = execution_row(ExecutionUpdate("ns", datum, 5), {"k": "v"})
    info = execution_info(dict(zip(visibility._rows.EXECUTION_COLUMNS, row, strict=True)))
    assert info["status"] == "TimedOut"
    assert info["execution_time"] == info["start_time"] == "1970-01-01T00:00:01.000Z"
    assert info["execution_duration_ms"] == 3000
    assert info["search_attributes"] == {"k": "v"}
    assert ExecutionUpdate("ns", datum, 5).version == (9, 5)


def test_times_durations_statuses_and_types() -> None:
    assert datetime_to_ms("1970-01-01T00:00:01.5Z") == 1500
    assert datetime_to_ms("1970-01-01T00:00:01") == 1000
    assert ms_to_rfc3339(1500) == "1970-01-01T00:00:01.500Z"
    assert parse_duration_ns("1h2m3s") == 3_723 * 10**9
    assert parse_duration_ns("1.5s") == 1_500_000_000
    assert parse_duration_ns("100") == 100
    for bad in ("", "1x", "h", True, 1.5):
        with pytest.raises(ValueError):
            parse_duration_ns(bad)
    assert status_name("continuedasnew") == "ContinuedAsNew"
    assert status_name("Sleeping") is None
    assert SearchAttributeType.parse("keyword_list") is SearchAttributeType.KEYWORD_LIST
