"""State layout of the workflow handler: column families, keys, the state codec, topic names.

Mutable state is a plain JSON-able dict per run, encoded as canonical JSON
(sorted keys, no whitespace) with ``bytes`` as ``{"$b": base64}``. It is
deterministic (the same state always encodes to the same bytes, so the
changelog is reproducible) and self-describing, which keeps the state easy to
evolve while the shape still changes every week. It is larger than Avro would be;
once the shape settles, an Avro ``RunState`` schema is the planned replacement.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import json
import re
import struct
import threading
import uuid
from typing import Any

import orjson

__all__ = [
    "CF_CURRENT",
    "CF_DEDUP",
    "CF_EVENTS",
    "CF_RUNS",
    "COLUMN_FAMILIES",
    "WorkflowTopics",
    "attributes_field",
    "continued_run_id",
    "copy_state",
    "dumps",
    "event_key",
    "loads",
    "payload_size",
    "start_run_id",
]

CF_RUNS = "wf_runs"
"""run id -> mutable state of the run (JSON, see module docstring)."""
CF_CURRENT = "wf_current"
"""workflow id -> run id of its current (latest) run."""
CF_EVENTS = "wf_events"
"""run id + first event id (8 bytes big-endian) -> a chunk of the run's events (see ``_events.py``)."""
CF_DEDUP = "wf_dedup"
"""workflow id + NUL + request id -> expiry (ms) of a signal's dedup entry."""
COLUMN_FAMILIES = (CF_RUNS, CF_CURRENT, CF_EVENTS, CF_DEDUP)

_RUN_NS = uuid.UUID("6b726f6e-6963-6c65-2d77-6f726b666c6f")
_EVENT_ID = struct.Struct(">Q")


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowTopics:
    """Topic names of one namespace (until ``kronicle.topics`` provides them)."""

    namespace: str
    """The namespace, e.g. ``default``."""

    @property
    def commands(self) -> str:
        """``kronicle.<ns>.commands``."""
        return f"kronicle.{self.namespace}.commands"

    @property
    def history(self) -> str:
        """``kronicle.<ns>.history``."""
        return f"kronicle.{self.namespace}.history"

    @property
    def visibility(self) -> str:
        """``kronicle.<ns>.visibility``."""
        return f"kronicle.{self.namespace}.visibility"

    def workflow_tasks(self, task_queue: str) -> str:
        """``kronicle.<ns>.tq.<queue>.workflow``."""
        return f"kronicle.{self.namespace}.tq.{task_queue}.workflow"

    def activity_tasks(self, task_queue: str) -> str:
        """``kronicle.<ns>.tq.<queue>.activity``."""
        return f"kronicle.{self.namespace}.tq.{task_queue}.activity"


def start_run_id(workflow_id: str, request_id: str) -> str:
    """The run id a start with ``request_id`` gets: a retried start finds its run instead of starting another."""
    return str(uuid.uuid5(_RUN_NS, f"start\x00{workflow_id}\x00{request_id}"))


def continued_run_id(run_id: str) -> str:
    """The run id of the run that continues ``run_id`` as new."""
    return str(uuid.uuid5(_RUN_NS, f"continue\x00{run_id}"))


def event_key(run_id: str, event_id: int) -> bytes:
    """Key of the :data:`CF_EVENTS` chunk whose first event is ``event_id`` (in event order within a run)."""
    return run_id.encode() + _EVENT_ID.pack(event_id)


def _bytes_to_json(obj: Any) -> Any:
    # Called by the C encoder for what JSON has no type for; only bytes belong in the state.
    if isinstance(obj, bytes):
        return {"$b": base64.b64encode(obj).decode("ascii")}
    raise TypeError(f"{type(obj).__name__} is not allowed in workflow state (dicts, lists, scalars and bytes are)")


def _json_to_bytes(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$b" in obj:
        return base64.b64decode(obj["$b"])
    return obj


# The C encoder and scanner do the walking; a Python walk over the state before and after
# them cost three times as much as the JSON itself.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_bytes_to_json)
_decoders = threading.local()


def dumps(obj: Any) -> bytes:
    """Canonical JSON of ``obj`` (dicts with str keys, lists, scalars, bytes)."""
    # orjson writes the same bytes as the json encoder above (sorted keys, no spaces) about
    # four times faster, except for what it writes differently or refuses, which goes through
    # json: text that is not ASCII (orjson writes UTF-8 where json writes \u escapes) or holds
    # DEL (0x7f: ASCII, but json escapes it as \u007f and orjson writes it as it is), keys
    # that are not strings, integers over 64 bits, and what ``_bytes_to_json`` rejects (json
    # then raises its TypeError). Floats (a retry policy's backoff coefficient, 0 or 1-1000)
    # are written alike between 1e-4 and 1e16; outside it orjson writes other digits for the
    # same value (1e-05 as 0.00001), and NaN as null (validation keeps NaN out of the state).
    try:
        out = orjson.dumps(obj, default=_bytes_to_json, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is one, as is its integer range error
        return _ENCODER.encode(obj).encode()
    return out if out.isascii() and b"\x7f" not in out else _ENCODER.encode(obj).encode()


def loads(data: bytes) -> Any:
    """The inverse of :func:`dumps`."""
    decoder = getattr(_decoders, "decoder", None)
    if decoder is None:
        # One per thread: the scanner keeps a key memo while it runs, and the hook may switch threads.
        decoder = _decoders.decoder = json.JSONDecoder(object_hook=_json_to_bytes)
    return decoder.decode(data.decode())


def copy_state(obj: Any) -> Any:
    """A deep copy of state made of dicts, lists and immutable scalars (several times faster than deepcopy)."""
    kind = type(obj)
    if kind is dict:
        return {k: copy_state(v) for k, v in obj.items()}
    if kind is list:
        return [copy_state(v) for v in obj]
    if kind in _IMMUTABLE:
        return obj
    return copy.deepcopy(obj)


_IMMUTABLE = frozenset({str, int, bytes, float, bool, type(None)})


def payload_size(value: Any) -> int:
    """Size of the data a datum carries: the length of every bytes and string value in it, recursively.

    Strings count because a failure's message and stack trace are as much data as a
    payload; ids and names are small next to the limit.
    """
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, dict):
        return sum(payload_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(payload_size(v) for v in value)
    return 0


@functools.cache
def attributes_field(type_name: str, suffix: str = "event") -> str:
    """The field of an event (or worker command) that holds the attributes of ``type_name``.

    ``WorkflowTaskScheduled`` -> ``workflow_task_scheduled_event_attributes``, as in Temporal.
    """
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type_name).lower()
    return f"{snake}_{suffix}_attributes"
