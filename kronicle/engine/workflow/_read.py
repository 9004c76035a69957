"""Read side of the workflow state: describe a run, page through its history.

These read the handler's column families through a plain ``get`` function (a
RocksDB store, or a test's dict), for the frontend's describe and history APIs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kronicle.engine.workflow._events import iter_events
from kronicle.engine.workflow._state import CF_CURRENT, CF_RUNS, loads

__all__ = ["describe", "read_history"]

Getter = Callable[[str, bytes], bytes | None]


def describe(get: Getter, workflow_id: str, run_id: str = "") -> dict[str, Any] | None:
    """The state of a run (the current one if ``run_id`` is empty), or None if there is none.

    The result holds the status, times, the next event id, the pending
    activities (with attempt and last failure), pending timers and whether a
    workflow task is outstanding, as stored by the handler.
    """
    if not run_id:
        current = get(CF_CURRENT, workflow_id.encode())
        if current is None:
            return None
        run_id = current.decode()
    raw = get(CF_RUNS, run_id.encode())
    if raw is None:
        return None
    run: dict[str, Any] = loads(raw)
    return run if run["workflow_id"] == workflow_id else None


def read_history(
    get: Getter,
    decode: Callable[[bytes], tuple[str, Any]],
    run_id: str,
    first_event_id: int = 1,
    max_events: int = 1000,
    last_chunk: int = 0,
) -> list[dict[str, Any]]:
    """Up to ``max_events`` events of a run from ``first_event_id`` on (one page).

    The next page starts at the last returned event id + 1; an empty page means
    there are no newer events yet. ``last_chunk`` is the run state's field of that
    name if the caller has the state (0 if not): it saves probing for the chunk of
    an event in the run's latest write.
    """
    events: list[dict[str, Any]] = []
    if max_events <= 0:
        return events
    for _event_id, raw in iter_events(get, run_id, first_event_id, last_chunk):
        events.append(decode(raw)[1])
        if len(events) >= max_events:
            break
    return events
