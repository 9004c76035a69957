"""Temporal's List Filter language: parse with lark, compile into parameterised SQL.

Why lark and not a hand-written parser: the grammar below is the whole
language in thirty lines, LALR(1) parsing is linear, and lark's errors already
carry the offending position and the set of terminals that would have been
accepted, which is exactly what an error message needs. A hand-written
recursive-descent parser would be about as long as this module on its own.

Values never enter the SQL text: every literal becomes a ``?`` parameter, and
identifiers come only from :data:`SYSTEM_ATTRIBUTES` (columns) or, for custom
attributes, are themselves parameters of a lookup in the side table.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any, cast

import lark

from kronicle.connectors.visibility._attributes import (
    DURATION,
    STATUS,
    SYSTEM_ATTRIBUTES,
    SearchAttributeType,
    datetime_to_ms,
    parse_duration_ns,
    status_name,
)

__all__ = [
    "MAX_CONDITIONS",
    "MAX_NESTING",
    "MAX_QUERY_LENGTH",
    "MAX_VALUES",
    "CompiledQuery",
    "InvalidQueryError",
    "Literal",
    "Predicate",
    "Query",
    "SortKey",
    "compile_query",
    "parse_query",
]

_GRAMMAR = r"""
start: [expr] [order]

?expr: conj
     | expr OR conj -> or_
?conj: atom
     | conj AND atom -> and_
?atom: LPAR expr RPAR -> group
     | attr OP value -> compare
     | attr [NOT] BETWEEN value AND value -> between
     | attr [NOT] IN LPAR value (COMMA value)* RPAR -> in_
     | attr STARTS_WITH value -> starts_with
     | attr IS [NOT] NULL -> is_null

attr: NAME | QUOTED_NAME
value: STRING | NUMBER | TRUE | FALSE

order: ORDER BY sort_key (COMMA sort_key)*
sort_key: attr [DIRECTION]

OR.2: /or\b/i
AND.2: /and\b/i
NOT.2: /not\b/i
BETWEEN.2: /between\b/i
IN.2: /in\b/i
STARTS_WITH.2: /starts_with\b/i
IS.2: /is\b/i
NULL.2: /null\b/i
ORDER.2: /order\b/i
BY.2: /by\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
DIRECTION.2: /(asc|desc)\b/i
OP: /!=|<>|<=|>=|=|<|>/
LPAR: "("
RPAR: ")"
COMMA: ","
NAME: /[A-Za-z_][A-Za-z0-9_]*/
QUOTED_NAME: /`[^`]+`/
STRING: /'(?:[^'\\]|\\.)*'/ | /"(?:[^"\\]|\\.)*"/
NUMBER: /-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/

%ignore /\s+/
"""

_EXPECTED_NAMES = {
    "OR": "OR",
    "AND": "AND",
    "NOT": "NOT",
    "BETWEEN": "BETWEEN",
    "IN": "IN",
    "STARTS_WITH": "STARTS_WITH",
    "IS": "IS",
    "NULL": "NULL",
    "ORDER": "ORDER BY",
    "BY": "BY",
    "TRUE": "a value",
    "FALSE": "a value",
    "STRING": "a value",
    "NUMBER": "a value",
    "DIRECTION": "ASC or DESC",
    "OP": "a comparison operator (=, !=, <, <=, >, >=)",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "NAME": "an attribute name",
    "QUOTED_NAME": "an attribute name",
    "$END": "the end of the query",
}

_MAX_BIGINT = 9223372036854775807

# Bounds that keep a hostile filter from reaching the databases' own limits (SQLite refuses an
# expression deeper than 1000, and its parser overflows at about 27 nested parenthesised conditions)
# or Python's recursion limit.
MAX_QUERY_LENGTH = 65_536
"""Longest list filter accepted, in characters."""
MAX_NESTING = 16
"""Deepest nesting of parentheses accepted."""
MAX_CONDITIONS = 500
"""Most conditions (comparisons, IN, BETWEEN, ...) in one filter."""
MAX_VALUES = 5_000
"""Most literal values in one filter (IN lists included)."""
_NESTING_TOKENS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|[()]")


class InvalidQueryError(ValueError):
    """A list filter that cannot be run; ``position`` is the 0-based character offset of the problem."""

    def __init__(self, query: str, position: int, message: str) -> None:
        self.query = query
        self.position = position
        self.message = message
        caret = " " * position + "^"
        super().__init__(f"invalid query at position {position}: {message}\n  {query}\n  {caret}")


@dataclasses.dataclass(frozen=True, slots=True)
class Literal:
    """A value written in the query."""

    value: str | int | float | bool
    position: int


@dataclasses.dataclass(frozen=True, slots=True)
class Predicate:
    """``attribute <op> values``; op is a comparison or BETWEEN, NOT BETWEEN, IN, NOT IN, STARTS_WITH, IS (NOT) NULL."""

    attribute: str
    position: int
    op: str
    values: tuple[Literal, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class BoolOp:
    """AND or OR of two or more conditions."""

    op: str
    items: tuple[Predicate | BoolOp, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class SortKey:
    """One ORDER BY term."""

    attribute: str
    position: int
    descending: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """A parsed list filter: the condition (None: every execution) and the ORDER BY terms."""

    text: str
    where: Predicate | BoolOp | None
    order: tuple[SortKey, ...]


@functools.cache
def _parser() -> lark.Lark:
    return lark.Lark(_GRAMMAR, parser="lalr", maybe_placeholders=True)


def parse_query(text: str) -> Query:
    """Parse a list filter such as ``WorkflowType = 'Order' AND StartTime > '2024-01-01T00:00:00Z'``.

    Raises:
        InvalidQueryError: with the position and what was expected there, or when the query is
            over :data:`MAX_QUERY_LENGTH`, :data:`MAX_NESTING`, :data:`MAX_CONDITIONS` or :data:`MAX_VALUES`.
    """
    _check_size(text)
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedEOF as exc:
        raise InvalidQueryError(text, len(text), f"the query ends early; expected {_expected(exc.expected)}") from None
    except lark.UnexpectedToken as exc:
        at_end = exc.token.type == "$END" or exc.token.start_pos is None
        pos = len(text) if at_end else int(exc.token.start_pos or 0)
        found = "the end of the query" if at_end else repr(str(exc.token))
        raise InvalidQueryError(text, pos, f"unexpected {found}; expected {_expected(exc.expected)}") from None
    except lark.UnexpectedCharacters as exc:
        allowed = _expected(exc.allowed) if exc.allowed else "something else"
        pos = int(exc.pos_in_stream or 0)
        raise InvalidQueryError(text, pos, f"unexpected {text[pos]!r}; expected {allowed}") from None
    where_tree, order_tree = cast("list[Any]", tree.children)
    where = None if where_tree is None else _condition(where_tree)
    if where is not None:
        _check_counts(text, where)
    order = () if order_tree is None else tuple(_sort_key(k) for k in order_tree.children if isinstance(k, lark.Tree))
    return Query(text, where, order)


def _check_size(text: str) -> None:
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidQueryError(
            text[:200] + "...", 200, f"the query is {len(text)} characters, over the limit of {MAX_QUERY_LENGTH}"
        )
    depth = 0
    for match in _NESTING_TOKENS.finditer(text):
        token = match.group()
        if token == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise InvalidQueryError(
                    text, match.start(), f"parentheses nest deeper than {MAX_NESTING}; simplify the query"
                )
        elif token == ")":
            depth -= 1


def _check_counts(text: str, where: Predicate | BoolOp) -> None:
    conditions = values = 0
    stack: list[Predicate | BoolOp] = [where]
    while stack:
        node = stack.pop()
        if isinstance(node, BoolOp):
            stack.extend(reversed(node.items))
            continue
        conditions += 1
        values += len(node.values)
        if conditions > MAX_CONDITIONS:
            raise InvalidQueryError(
                text, node.position, f"more than {MAX_CONDITIONS} conditions; split the query or use IN lists"
            )
        if values > MAX_VALUES:
            raise InvalidQueryError(text, node.position, f"more than {MAX_VALUES} values; split the query")


def _expected(names: Any) -> str:
    words = sorted({_EXPECTED_NAMES.get(str(n), str(n)) for n in names})
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _attr(tree: lark.Tree[Any]) -> tuple[str, int]:
    token = cast("lark.Token", tree.children[0])
    name = str(token)
    return (name[1:-1] if name.startswith("`") else name), token.start_pos or 0


def _literal(tree: lark.Tree[Any]) -> Literal:
    token = cast("lark.Token", tree.children[0])
    pos, raw = token.start_pos or 0, str(token)
    if token.type == "STRING":
        return Literal(re.sub(r"\\(.)", r"\1", raw[1:-1]), pos)
    if token.type == "NUMBER":
        is_int = re.fullmatch(r"-?\d+", raw) is not None
        return Literal(int(raw) if is_int else float(raw), pos)
    return Literal(token.type == "TRUE", pos)


def _values(children: list[Any]) -> tuple[Literal, ...]:
    return tuple(_literal(c) for c in children if isinstance(c, lark.Tree) and c.data == "value")


def _condition(tree: lark.Tree[Any]) -> Predicate | BoolOp:
    kind, kids = tree.data, tree.children
    if kind == "group":
        return _condition(kids[1])
    if kind in ("or_", "and_"):
        # A chain "a OR b OR c" parses left-deep; walk its spine in a loop (not by recursion, which a
        # long chain would exhaust) and make it one flat node.
        rights: list[lark.Tree[Any]] = []
        node = tree
        while node.data == kind:
            rights.append(node.children[2])
            node = node.children[0]
        items = [_condition(side) for side in (node, *reversed(rights))]
        return BoolOp("OR" if kind == "or_" else "AND", tuple(items))
    name, pos = _attr(kids[0])
    if kind == "compare":
        op = "<>" if str(kids[1]) in ("!=", "<>") else str(kids[1])
        return Predicate(name, pos, op, _values(kids))
    if kind == "between":
        return Predicate(name, pos, "NOT BETWEEN" if kids[1] is not None else "BETWEEN", _values(kids))
    if kind == "in_":
        return Predicate(name, pos, "NOT IN" if kids[1] is not None else "IN", _values(kids))
    if kind == "starts_with":
        return Predicate(name, pos, "STARTS_WITH", _values(kids))
    return Predicate(name, pos, "IS NOT NULL" if kids[2] is not None else "IS NULL", ())


def _sort_key(tree: lark.Tree[Any]) -> SortKey:
    name, pos = _attr(tree.children[0])
    direction = tree.children[1]
    return SortKey(name, pos, direction is not None and str(direction).lower() == "desc")


# -- compilation ---------------------------------------------------------------------------------------

_T = SearchAttributeType
_ORDERED = ("=", "<>", "<", "<=", ">", ">=", "BETWEEN", "NOT BETWEEN", "IN", "NOT IN")
_NULLS = ("IS NULL", "IS NOT NULL")
_ALLOWED_OPS: dict[str, tuple[str, ...]] = {
    _T.KEYWORD: (*_ORDERED, "STARTS_WITH", *_NULLS),
    _T.TEXT: ("=", "<>", *_NULLS),
    _T.INT: (*_ORDERED, *_NULLS),
    _T.DOUBLE: (*_ORDERED, *_NULLS),
    _T.BOOL: ("=", "<>", *_NULLS),
    _T.DATETIME: (*_ORDERED, *_NULLS),
    _T.KEYWORD_LIST: ("=", "<>", "IN", "NOT IN", "STARTS_WITH", *_NULLS),
    STATUS: ("=", "<>", "IN", "NOT IN"),
    DURATION: (*_ORDERED, *_NULLS),
}
_VALUE_COLUMN: dict[str, str] = {
    _T.KEYWORD: "v_text",
    _T.TEXT: "v_text",
    _T.KEYWORD_LIST: "v_text",
    _T.INT: "v_int",
    _T.BOOL: "v_int",
    _T.DATETIME: "v_int",
    _T.DOUBLE: "v_double",
}
# Uncorrelated on purpose: both planners turn "run_id IN (subquery)" into an index range scan of the
# side table plus primary-key lookups, where a correlated EXISTS would probe once per execution.
_CUSTOM = "e.run_id {neg}IN (SELECT c.run_id FROM custom_attributes c WHERE c.namespace = ? AND c.name = ?{cond})"

DEFAULT_ORDER: tuple[tuple[str, bool], ...] = ((f"COALESCE(e.close_time, {_MAX_BIGINT})", True), ("e.start_time", True))
"""Temporal's default order: open executions first, then the latest closed; newest start first."""


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledQuery:
    """SQL over the executions table aliased ``e``: a WHERE condition, its parameters and the ORDER BY keys."""

    where: str
    params: tuple[Any, ...]
    order: tuple[tuple[str, bool], ...]
    """(SQL expression, descending) for each key; every expression is non-null, so it can drive keyset paging."""


def compile_query(query: Query, custom: Mapping[str, SearchAttributeType], namespace: str) -> CompiledQuery:
    """Turn a parsed query into SQL, checking attributes, operators and literal types.

    Args:
        query: from :func:`parse_query`.
        custom: the namespace's registered custom search attributes.
        namespace: the namespace (custom attribute lookups are limited to it).

    Raises:
        InvalidQueryError: an unknown attribute, an operator the attribute's type does not
            support, or a literal of the wrong type, with its position.
    """
    params: list[Any] = []
    where = "1 = 1" if query.where is None else _compile(query, query.where, custom, namespace, params)
    order: list[tuple[str, bool]] = []
    for key in query.order:
        system = SYSTEM_ATTRIBUTES.get(key.attribute)
        if system is None:
            what = "a custom search attribute" if key.attribute in custom else "not a known attribute"
            raise InvalidQueryError(
                query.text, key.position, f"cannot ORDER BY {key.attribute!r} ({what}); order by a system attribute"
            )
        column = f"e.{system.column}"
        order.append((f"COALESCE({column}, {_MAX_BIGINT})" if system.nullable else column, key.descending))
    return CompiledQuery(where, tuple(params), tuple(order) or DEFAULT_ORDER)


def _compile(
    query: Query, node: Predicate | BoolOp, custom: Mapping[str, SearchAttributeType], namespace: str, out: list[Any]
) -> str:
    if isinstance(node, BoolOp):
        return "(" + f" {node.op} ".join(_compile(query, item, custom, namespace, out) for item in node.items) + ")"
    system = SYSTEM_ATTRIBUTES.get(node.attribute)
    kind = system.kind if system is not None else custom.get(node.attribute)
    if kind is None:
        raise InvalidQueryError(
            query.text,
            node.position,
            f"unknown search attribute {node.attribute!r}; names are case-sensitive, and a custom attribute "
            "must be registered first (register_search_attribute)",
        )
    if node.op not in _ALLOWED_OPS[kind]:
        raise InvalidQueryError(
            query.text,
            node.position,
            f"{node.attribute} is of type {kind}, which supports {', '.join(_ALLOWED_OPS[kind])}, not {node.op}",
        )
    values = [_convert(query, node.attribute, kind, v) for v in node.values]
    if system is not None:
        return _condition_sql(f"e.{system.column}", node.op, values, out)
    out.extend((namespace, node.attribute))
    if node.op in _NULLS:
        return _CUSTOM.format(neg="NOT " if node.op == "IS NULL" else "", cond="")
    column = "c." + _VALUE_COLUMN[kind]
    if kind == _T.KEYWORD_LIST and node.op in ("<>", "NOT IN"):
        # A list "!= x" means "does not contain x": no element matches.
        positive = "=" if node.op == "<>" else "IN"
        return _CUSTOM.format(neg="NOT ", cond=" AND " + _condition_sql(column, positive, values, out))
    return _CUSTOM.format(neg="", cond=" AND " + _condition_sql(column, node.op, values, out))


def _condition_sql(column: str, op: str, values: list[Any], out: list[Any]) -> str:
    if op in _NULLS:
        return f"{column} {op}"
    if op in ("BETWEEN", "NOT BETWEEN"):
        out.extend(values)
        return f"{column} {op} ? AND ?"
    if op in ("IN", "NOT IN"):
        out.extend(values)
        return f"{column} {op} ({', '.join('?' * len(values))})"
    if op == "STARTS_WITH":
        out.append(re.sub(r"([\\%_])", r"\\\1", str(values[0])) + "%")
        return f"{column} LIKE ? ESCAPE '\\'"
    out.append(values[0])
    return f"{column} {op} ?"


def _convert(query: Query, name: str, kind: str, literal: Literal) -> Any:
    value = literal.value

    def bad(expected: str) -> InvalidQueryError:
        return InvalidQueryError(query.text, literal.position, f"{name} is of type {kind}: expected {expected}")

    if kind in (_T.KEYWORD, _T.TEXT, _T.KEYWORD_LIST):
        if not isinstance(value, str):
            raise bad("a quoted string")
        return value
    if kind == STATUS:
        status = status_name(value) if isinstance(value, str) else None
        if status is None:
            raise bad("one of 'Running', 'Completed', 'Failed', 'Canceled', 'Terminated', 'ContinuedAsNew', 'TimedOut'")
        return status
    if kind == _T.BOOL:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return int(value.lower() == "true")
        if not isinstance(value, bool):
            raise bad("true or false")
        return int(value)
    if kind == _T.DATETIME:
        if not isinstance(value, str):
            raise bad("an RFC 3339 timestamp in quotes, e.g. '2024-05-01T12:00:00Z'")
        try:
            return datetime_to_ms(value)
        except ValueError:
            raise bad("an RFC 3339 timestamp in quotes, e.g. '2024-05-01T12:00:00Z'") from None
    if kind == DURATION:
        try:
            return parse_duration_ns(value)
        except ValueError:
            raise bad("nanoseconds or a duration such as '1h30m' or '250ms'") from None
    number: int | float
    try:
        if isinstance(value, bool):
            raise ValueError
        number = value if isinstance(value, (int, float)) else (float(value) if kind == _T.DOUBLE else int(value))
    except ValueError:
        raise bad("an integer" if kind == _T.INT else "a number") from None
    if kind == _T.INT:
        if isinstance(number, float) and not number.is_integer():
            raise bad("an integer")
        return int(number)
    return float(number)
