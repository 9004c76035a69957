"""Cron schedules of workflows: parsing and the next start time, with Temporal's dialect.

A schedule is a standard 5-field cron expression (minute, hour, day of month,
month, day of week) evaluated in UTC, optionally prefixed with ``CRON_TZ=<IANA
zone>`` (or ``TZ=``) to evaluate it in that zone, or one of the shorthands
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``,
``@hourly``, or ``@every <duration>`` (``@every 1h30m``, units ``d h m s``).
That is the dialect Temporal accepts (robfig/cron's standard parser). Field
parsing and iteration are cronsim's, which follows Debian cron (a day matches
if either day-of-month or day-of-week matches, when both are restricted) and
also takes its extensions (``L`` for the last day, ``5#2`` for the second
Friday). A next time more than 100 years ahead is refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = ["InvalidCronSchedule", "next_cron_time_ms", "validate_cron_schedule"]

_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY = re.compile(r"^@every\s+((?:\d+[dhms])+)$")
_EVERY_PART = re.compile(r"(\d+)([dhms])")
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}
_MAX_AHEAD_MS = 100 * 366 * 86_400_000
"""A next time further ahead than this (100 years) is refused: it is a mistake, and must fit a timer."""


class InvalidCronSchedule(ValueError):
    """A cron schedule that cannot be parsed; the message says what is wrong and what is accepted."""


def _split(schedule: str) -> tuple[ZoneInfo | None, str]:
    text = schedule.strip()
    zone: ZoneInfo | None = None
    for prefix in ("CRON_TZ=", "TZ="):
        if text.startswith(prefix):
            name, _, text = text[len(prefix) :].partition(" ")
            try:
                zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise InvalidCronSchedule(
                    f"cron schedule {schedule!r}: unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'"
                ) from exc
            text = text.strip()
            break
    return zone, _SHORTHANDS.get(text, text)


def _every_ms(expr: str) -> int | None:
    match = _EVERY.match(expr)
    if match is None:
        return None
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _EVERY_PART.findall(match.group(1)))


def validate_cron_schedule(schedule: str) -> None:
    """Check a cron schedule.

    Raises:
        InvalidCronSchedule: it cannot be parsed.
    """
    next_cron_time_ms(schedule, 0)


def next_cron_time_ms(schedule: str, after_ms: int) -> int:
    """The first time of ``schedule`` strictly after ``after_ms`` (milliseconds since the epoch).

    Raises:
        InvalidCronSchedule: the schedule cannot be parsed.
    """
    zone, expr = _split(schedule)
    every = _every_ms(expr)
    if every is not None:
        if not 0 < every <= _MAX_AHEAD_MS:
            raise InvalidCronSchedule(f"cron schedule {schedule!r}: @every needs a duration from 1s to 100 years")
        return after_ms + every
    if len(expr.split()) != 5:
        # cronsim would take a sixth (seconds) field; Temporal's dialect has five.
        raise InvalidCronSchedule(
            f"cron schedule {schedule!r} has {len(expr.split())} fields; use 5 fields 'minute hour day-of-month"
            " month day-of-week' (e.g. '0 */2 * * *'), a shorthand such as '@daily', or '@every 90m'"
        )
    tz = zone or UTC
    start = datetime.fromtimestamp(after_ms / 1000, tz=UTC).astimezone(tz)
    try:
        following = next(CronSim(expr, start))
    except (CronSimError, StopIteration) as exc:
        raise InvalidCronSchedule(
            f"cron schedule {schedule!r} is not valid ({exc}); use 5 fields 'minute hour day-of-month month"
            " day-of-week' (e.g. '0 */2 * * *'), a shorthand such as '@daily', or '@every 90m'"
        ) from exc
    # cronsim steps in whole minutes from the minute of ``start``; never return a time at or before it.
    if following <= start:
        following = next(CronSim(expr, start + timedelta(minutes=1)))
    due = int(following.timestamp() * 1000)
    if due - after_ms > _MAX_AHEAD_MS:
        raise InvalidCronSchedule(f"cron schedule {schedule!r} next matches more than 100 years ahead")
    return due
