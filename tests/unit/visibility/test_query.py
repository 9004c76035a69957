"""The List Filter language: what parses, what it compiles to, and where errors point."""

from __future__ import annotations

import pytest

from kronicle.connectors.visibility import InvalidQueryError, SearchAttributeType, compile_query, parse_query
from kronicle.connectors.visibility._query import DEFAULT_ORDER, BoolOp, Predicate

T = SearchAttributeType
CUSTOM = {
    "CustomKeyword": T.KEYWORD,
    "CustomText": T.TEXT,
    "CustomInt": T.INT,
    "CustomDouble": T.DOUBLE,
    "CustomBool": T.BOOL,
    "CustomDatetime": T.DATETIME,
    "CustomList": T.KEYWORD_LIST,
}


def sql(query: str) -> tuple[str, tuple[object, ...]]:
    compiled = compile_query(parse_query(query), CUSTOM, "ns")
    return compiled.where, compiled.params


def error(query: str) -> InvalidQueryError:
    with pytest.raises(InvalidQueryError) as info:
        compile_query(parse_query(query), CUSTOM, "ns")
    return info.value


# -- valid queries ----------------------------------------------------------------------------------


def test_an_empty_query_matches_everything_in_the_default_order() -> None:
    compiled = compile_query(parse_query(""), CUSTOM, "ns")
    assert (compiled.where, compiled.params, compiled.order) == ("1 = 1", (), DEFAULT_ORDER)


def test_comparisons_on_system_attributes_become_parameters() -> None:
    where, params = sql("WorkflowType = 'Order' AND ExecutionStatus = 'Running' AND StartTime > '2024-01-01T00:00:00Z'")
    assert where == "(e.workflow_type = ? AND e.status = ? AND e.start_time > ?)"
    assert params == ("Order", "Running", 1_704_067_200_000)


@pytest.mark.parametrize("op", ["=", "!=", "<>", "<", "<=", ">", ">="])
def test_every_comparison_operator(op: str) -> None:
    where, params = sql(f"HistoryLength {op} 10")
    assert where == f"e.history_length {'<>' if op == '!=' else op} ?"
    assert params == (10,)


def test_or_binds_looser_than_and_and_parentheses_override() -> None:
    tree = parse_query("WorkflowId = 'a' OR WorkflowId = 'b' AND RunId = 'c'").where
    assert isinstance(tree, BoolOp) and tree.op == "OR"
    assert isinstance(tree.items[1], BoolOp) and tree.items[1].op == "AND"
    grouped = parse_query("(WorkflowId = 'a' OR WorkflowId = 'b') AND RunId = 'c'").where
    assert isinstance(grouped, BoolOp) and grouped.op == "AND"
    assert isinstance(grouped.items[0], BoolOp) and grouped.items[0].op == "OR"


def test_a_chain_of_ors_is_one_flat_node() -> None:
    tree = parse_query("WorkflowId = 'a' OR WorkflowId = 'b' OR WorkflowId = 'c' OR WorkflowId = 'd'").where
    assert isinstance(tree, BoolOp) and len(tree.items) == 4


def test_keywords_are_case_insensitive() -> None:
    assert sql("HistoryLength between 1 and 5 or WorkflowId in ('a') and CloseTime is not null")[0] == (
        "(e.history_length BETWEEN ? AND ? OR (e.workflow_id IN (?) AND e.close_time IS NOT NULL))"
    )


def test_between_in_and_their_negations() -> None:
    assert sql("StartTime BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-02T00:00:00Z'") == (
        "e.start_time BETWEEN ? AND ?",
        (1_704_067_200_000, 1_704_153_600_000),
    )
    assert sql("HistoryLength NOT BETWEEN 1 AND 2") == ("e.history_length NOT BETWEEN ? AND ?", (1, 2))
    assert sql("WorkflowType IN ('a', 'b', \"c\")") == ("e.workflow_type IN (?, ?, ?)", ("a", "b", "c"))
    assert sql("WorkflowType NOT IN ('a')") == ("e.workflow_type NOT IN (?)", ("a",))


def test_starts_with_escapes_like_wildcards() -> None:
    assert sql("WorkflowId STARTS_WITH 'order_10%'") == ("e.workflow_id LIKE ? ESCAPE '\\'", ("order\\_10\\%%",))


def test_is_null_on_a_nullable_system_attribute() -> None:
    assert sql("CloseTime IS NULL") == ("e.close_time IS NULL", ())


def test_execution_status_accepts_both_case_styles() -> None:
    for spelling in ("Running", "RUNNING", "running"):
        assert sql(f"ExecutionStatus = '{spelling}'")[1] == ("Running",)
    for spelling in ("ContinuedAsNew", "CONTINUED_AS_NEW"):
        assert sql(f"ExecutionStatus = '{spelling}'")[1] == ("ContinuedAsNew",)
    assert sql("ExecutionStatus IN ('TIMED_OUT', 'Failed')")[1] == ("TimedOut", "Failed")


def test_datetimes_are_rfc3339_with_offsets_and_fractions() -> None:
    assert sql("CloseTime < '2024-01-01T01:00:00+01:00'")[1] == (1_704_067_200_000,)
    assert sql("CloseTime < '2024-01-01T00:00:00.123456789Z'")[1] == (1_704_067_200_123,)


def test_execution_duration_takes_go_durations_or_nanoseconds() -> None:
    assert sql("ExecutionDuration > '1h30m'")[1] == (5_400 * 10**9,)
    assert sql("ExecutionDuration <= '250ms'")[1] == (250_000_000,)
    assert sql("ExecutionDuration = 42")[1] == (42,)


def test_custom_attributes_query_the_side_table_by_type() -> None:
    where, params = sql("CustomKeyword = 'x'")
    assert where == (
        "e.run_id IN (SELECT c.run_id FROM custom_attributes c WHERE c.namespace = ? AND c.name = ? AND c.v_text = ?)"
    )
    assert params == ("ns", "CustomKeyword", "x")
    assert "c.v_int > ?" in sql("CustomInt > 3")[0]
    assert sql("CustomDouble >= 2")[1] == ("ns", "CustomDouble", 2.0)
    assert sql("CustomBool = true")[1] == ("ns", "CustomBool", 1)
    assert sql("CustomBool = 'false'")[1] == ("ns", "CustomBool", 0)
    assert sql("CustomDatetime < '1970-01-01T00:00:01Z'")[1] == ("ns", "CustomDatetime", 1000)


def test_keyword_list_inequality_means_does_not_contain() -> None:
    where, params = sql("CustomList != 'red'")
    assert where.startswith("e.run_id NOT IN (SELECT") and "c.v_text = ?" in where
    assert params == ("ns", "CustomList", "red")
    assert sql("CustomList NOT IN ('a', 'b')")[0].endswith("AND c.v_text IN (?, ?))")
    assert sql("CustomList NOT IN ('a', 'b')")[0].startswith("e.run_id NOT IN")


def test_custom_is_null_means_no_value() -> None:
    assert sql("CustomInt IS NULL")[0].startswith("e.run_id NOT IN (SELECT")
    assert sql("CustomInt IS NOT NULL")[0].startswith("e.run_id IN (SELECT")


def test_backquoted_attribute_names() -> None:
    assert sql("`WorkflowId` = 'a'") == ("e.workflow_id = ?", ("a",))


def test_order_by_system_attributes() -> None:
    compiled = compile_query(parse_query("WorkflowType = 'x' ORDER BY StartTime ASC, WorkflowId DESC"), CUSTOM, "ns")
    assert compiled.order == (("e.start_time", False), ("e.workflow_id", True))
    only_order = compile_query(parse_query("order by CloseTime"), CUSTOM, "ns")
    assert only_order.where == "1 = 1"
    assert only_order.order == (("COALESCE(e.close_time, 9223372036854775807)", False),)


def test_string_escapes() -> None:
    predicate = parse_query(r"WorkflowId = 'it\'s'").where
    assert isinstance(predicate, Predicate)
    assert predicate.values[0].value == "it's"


# -- invalid queries: the position and what was expected --------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "expected"),
    [
        ("WorkflowType = ", 15, "expected a value"),
        ("WorkflowType == 'x'", 14, "expected a value"),
        ("WorkflowType 'x'", 13, "comparison operator"),
        ("WorkflowType = 'x' AND", 22, "attribute name"),
        ("(WorkflowType = 'x'", 19, "')'"),
        ("WorkflowType = 'x' ORDER BY", 27, "attribute name"),
        ("WorkflowType = 'x' ORDER StartTime", 25, "BY"),
        ("WorkflowType = 'x' ; DROP TABLE executions", 19, "AND"),
        ("HistoryLength IN (1, 2", 22, "')'"),
        ("WorkflowType = 'unterminated", 15, "unexpected"),
        ("= 'x'", 0, "attribute name"),
    ],
)
def test_syntax_errors_point_at_the_problem(query: str, position: int, expected: str) -> None:
    err = error(query)
    assert err.position == position, str(err)
    assert expected in err.message, str(err)
    assert f"position {position}" in str(err)


def test_an_unknown_attribute_is_named_with_its_position() -> None:
    err = error("WorkflowType = 'x' AND Colour = 'red'")
    assert err.position == 23
    assert "Colour" in err.message and "register" in err.message


def test_attribute_names_are_case_sensitive() -> None:
    assert error("workflowtype = 'x'").position == 0


@pytest.mark.parametrize(
    ("query", "position", "expected"),
    [
        ("HistoryLength = 'many'", 16, "an integer"),
        ("HistoryLength = 1.5", 16, "an integer"),
        ("WorkflowId = 42", 13, "a quoted string"),
        ("StartTime > 'yesterday'", 12, "RFC 3339"),
        ("ExecutionStatus = 'Sleeping'", 18, "'Running'"),
        ("CustomBool = 3", 13, "true or false"),
        ("CustomDouble = 'x'", 15, "a number"),
        ("ExecutionDuration > 'soon'", 20, "duration"),
    ],
)
def test_literals_of_the_wrong_type(query: str, position: int, expected: str) -> None:
    err = error(query)
    assert err.position == position, str(err)
    assert expected in err.message


@pytest.mark.parametrize(
    "query",
    [
        "CustomText > 'a'",
        "CustomBool < true",
        "ExecutionStatus > 'Running'",
        "ExecutionStatus IS NULL",
        "HistoryLength STARTS_WITH '1'",
        "CustomList > 'a'",
    ],
)
def test_operators_the_type_does_not_support(query: str) -> None:
    err = error(query)
    assert err.position == 0
    assert "supports" in err.message


def test_order_by_a_custom_attribute_is_refused() -> None:
    err = error("CustomKeyword = 'x' ORDER BY CustomKeyword")
    assert err.position == 29
    assert "system attribute" in err.message
