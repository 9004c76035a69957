"""Search attribute types, the system attributes, and literal conversion.

Values are stored in a few typed columns, so the conversions here are the one
place that decides how a query literal compares with a stored value: times as
Unix milliseconds (UTC), durations as nanoseconds (Temporal's unit),
booleans as 0/1, execution statuses by Temporal's names.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "STATUS_NAMES",
    "SYSTEM_ATTRIBUTES",
    "SearchAttributeType",
    "SystemAttribute",
    "datetime_to_ms",
    "ms_to_rfc3339",
    "parse_duration_ns",
    "status_name",
]


class SearchAttributeType(enum.StrEnum):
    """Temporal's search attribute types (custom attributes are registered with one of these)."""

    KEYWORD = "Keyword"
    TEXT = "Text"
    INT = "Int"
    DOUBLE = "Double"
    BOOL = "Bool"
    DATETIME = "Datetime"
    KEYWORD_LIST = "KeywordList"

    @classmethod
    def parse(cls, value: str | SearchAttributeType) -> SearchAttributeType:
        """Accept a member or its name in any case ("keyword", "KeywordList", "KEYWORD_LIST").

        Raises:
            ValueError: naming the accepted types.
        """
        if isinstance(value, SearchAttributeType):
            return value
        wanted = str(value).replace("_", "").lower()
        for member in cls:
            if member.value.lower() == wanted:
                return member
        raise ValueError(f"unknown search attribute type {value!r}; use one of {', '.join(m.value for m in cls)}")


# Kinds used only by system attributes: the status enum and a duration.
STATUS = "ExecutionStatus"
DURATION = "Duration"

STATUS_NAMES: dict[str, str] = {
    "RUNNING": "Running",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CANCELED": "Canceled",
    "TERMINATED": "Terminated",
    "CONTINUED_AS_NEW": "ContinuedAsNew",
    "TIMED_OUT": "TimedOut",
}
"""The record's enum symbols and the Temporal names the store keeps and queries use."""

_STATUS_LOOKUP = {**{k.replace("_", "").lower(): v for k, v in STATUS_NAMES.items()}}


def status_name(value: str) -> str | None:
    """Temporal's name for a status written in either style ('Running', 'RUNNING', 'timed_out'), or None."""
    return _STATUS_LOOKUP.get(value.replace("_", "").lower())


@dataclasses.dataclass(frozen=True, slots=True)
class SystemAttribute:
    """One built-in attribute: its column in the executions table and its kind."""

    name: str
    column: str
    kind: str
    """A :class:`SearchAttributeType` value, ``ExecutionStatus`` or ``Duration``."""
    nullable: bool = False


SYSTEM_ATTRIBUTES: dict[str, SystemAttribute] = {
    a.name: a
    for a in (
        SystemAttribute("WorkflowId", "workflow_id", SearchAttributeType.KEYWORD),
        SystemAttribute("RunId", "run_id", SearchAttributeType.KEYWORD),
        SystemAttribute("WorkflowType", "workflow_type", SearchAttributeType.KEYWORD),
        SystemAttribute("TaskQueue", "task_queue", SearchAttributeType.KEYWORD),
        SystemAttribute("ExecutionStatus", "status", STATUS),
        SystemAttribute("StartTime", "start_time", SearchAttributeType.DATETIME),
        SystemAttribute("ExecutionTime", "execution_time", SearchAttributeType.DATETIME),
        SystemAttribute("CloseTime", "close_time", SearchAttributeType.DATETIME, nullable=True),
        SystemAttribute("ExecutionDuration", "execution_duration", DURATION, nullable=True),
        SystemAttribute("HistoryLength", "history_length", SearchAttributeType.INT),
        SystemAttribute("FirstRunId", "first_run_id", SearchAttributeType.KEYWORD),
    )
}
"""Built-in attributes by their (case-sensitive, as in Temporal) names."""


def datetime_to_ms(text: str) -> int:
    """Unix milliseconds of an RFC 3339 timestamp; a timestamp without an offset is taken as UTC.

    Raises:
        ValueError: not an RFC 3339 timestamp.
    """
    # fromisoformat accepts at most microseconds; RFC 3339Nano strings (Temporal's) have up to nine digits.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.strip())
    try:
        when = datetime.fromisoformat(trimmed)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp (e.g. '2024-05-01T12:00:00Z')") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def ms_to_rfc3339(ms: int | None) -> str | None:
    """The RFC 3339 (UTC, millisecond) form of Unix milliseconds."""
    if ms is None:
        return None
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration_ns(value: Any) -> int:
    """Nanoseconds of a duration given as an integer (nanoseconds) or a Go-style string ('1h30m', '250ms').

    Raises:
        ValueError: neither.
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of nanoseconds or a string such as '1h30m'")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return round(total)
    raise ValueError(f"{value!r} is not a duration; write nanoseconds or a string such as '1h30m' or '250ms'")
