"""The SDK's values on the engine's wire: payloads and failures.

The engine's Avro records (``kronicle/schemas/workflow/``) carry payloads as
opaque ``bytes`` and failures as the Avro record ``kronicle.workflow.Failure``.
The SDK (``kronicle.converter``) works with :class:`~kronicle.converter.Payload`
objects and failure dicts. This module is the one place that maps between the
two, shared by the client, the worker and the frontend.

A payload's bytes are the Avro binary encoding (no framing: the enclosing
record is framed) of ``kronicle.Payload {metadata: map<bytes>, data: bytes}``,
so a payload keeps its metadata (``encoding``, codec markers) end to end.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import fastavro

from kronicle import exceptions as exc
from kronicle.converter import Failure, Payload
from kronicle.schemas._fastpath import avro_long

if TYPE_CHECKING:
    from kronicle.common import RetryPolicy

__all__ = [
    "PAYLOAD_SCHEMA",
    "duration_to_ms",
    "failure_from_wire",
    "failure_to_wire",
    "payload_from_bytes",
    "payload_to_bytes",
    "payloads_from_bytes",
    "payloads_to_bytes",
    "retry_policy_to_wire",
]

PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Payload",
    "namespace": "kronicle",
    "doc": "One value converted by the SDK: metadata (at least 'encoding') and the bytes.",
    "fields": [
        {"name": "metadata", "type": {"type": "map", "values": "bytes"}, "default": {}},
        {"name": "data", "type": "bytes", "default": ""},
    ],
}
_PARSED = fastavro.parse_schema(PAYLOAD_SCHEMA)

# The SDK's failure kinds and the engine's failure_type values (Temporal's names).
_KIND_TO_WIRE = {
    "application": "application",
    "cancelled": "canceled",
    "terminated": "terminated",
    "timeout": "timeout",
    "server": "server",
    "activity": "activity",
    "child_workflow": "child_workflow",
}
_KIND_FROM_WIRE = {v: k for k, v in _KIND_TO_WIRE.items()}


def _write_payload(metadata: Mapping[str, bytes], data: bytes) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _PARSED, {"metadata": dict(metadata), "data": data})
    return out.getvalue()


# Nearly every payload is one of the default converter's: its metadata is {"encoding": X}. The
# bytes of that map are the same every time, so fastavro writes them once, here, and such a
# payload is those bytes, its data's length and its data (Avro writes a record as its fields in
# order, and bytes as a zig-zag varint length and the bytes). Reading checks for the same prefix
# and the exact length; anything else goes through fastavro.
_ENCODING_PREFIXES: dict[bytes, bytes] = {
    encoding: _write_payload({"encoding": encoding}, b"")[:-1]  # [:-1]: the varint 0 of the empty data
    for encoding in (b"json/plain", b"binary/null", b"binary/plain")
}


def _read_data(data: bytes, pos: int) -> bytes | None:
    """The Avro bytes at ``pos`` if they end exactly where ``data`` ends; None otherwise."""
    n = shift = 0
    while pos < len(data) and shift < 63:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if n & 1 or pos + (n >> 1) != len(data):
                return None  # a negative length, or not the whole rest: fastavro says what is wrong
            return data[pos:]
        shift += 7
    return None


def payload_to_bytes(payload: Payload) -> bytes:
    """The wire bytes of one payload."""
    metadata = payload.metadata
    if len(metadata) == 1:
        prefix = _ENCODING_PREFIXES.get(metadata.get("encoding", b""))
        if prefix is not None and type(payload.data) is bytes:
            return prefix + avro_long(len(payload.data)) + payload.data
    return _write_payload(metadata, payload.data)


def payload_from_bytes(data: bytes) -> Payload:
    """Read a payload written by :func:`payload_to_bytes`.

    Raises:
        ValueError: the bytes are not a payload.
    """
    for encoding, prefix in _ENCODING_PREFIXES.items():
        if data.startswith(prefix):
            value = _read_data(data, len(prefix))
            if value is not None:
                return Payload(metadata={"encoding": encoding}, data=value)
            break
    buf = io.BytesIO(data)
    try:
        datum: Any = fastavro.schemaless_reader(buf, _PARSED, None)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as err:
        raise ValueError(f"not a Kronicle payload ({len(data)} bytes): {err}") from err
    if buf.tell() != len(data):
        raise ValueError(f"not a Kronicle payload: {len(data) - buf.tell()} bytes left over")
    return Payload(metadata=datum["metadata"], data=datum["data"])


def payloads_to_bytes(payloads: Iterable[Payload]) -> list[bytes]:
    return [payload_to_bytes(p) for p in payloads]


def payloads_from_bytes(items: Iterable[bytes]) -> list[Payload]:
    return [payload_from_bytes(b) for b in items]


def _dict_payloads_to_bytes(items: Sequence[Mapping[str, Any]] | None) -> list[bytes]:
    return [payload_to_bytes(Payload.from_dict(p)) for p in items or ()]


def _bytes_to_dict_payloads(items: Sequence[bytes] | None) -> list[dict[str, Any]]:
    return [payload_from_bytes(b).to_dict() for b in items or ()]


def failure_to_wire(failure: Failure) -> dict[str, Any]:
    """An SDK failure dict (and its cause chain) as a ``kronicle.workflow.Failure`` datum."""
    info: Mapping[str, Any] = failure.get("info") or {}
    timeout_type = info.get("timeout_type")
    retry_state = info.get("retry_state")
    cause = failure.get("cause")
    return {
        "message": failure.get("message") or "",
        "source": failure.get("source") or "",
        "stack_trace": failure.get("stack_trace") or "",
        "failure_type": _KIND_TO_WIRE.get(failure.get("kind") or "application", "application"),
        "type": failure.get("type") or "",
        "non_retryable": bool(failure.get("non_retryable")),
        "details": _dict_payloads_to_bytes(failure.get("details")),
        "timeout_type": "" if timeout_type is None else exc.TimeoutType(timeout_type).name,
        "last_heartbeat_details": _dict_payloads_to_bytes(info.get("last_heartbeat_details")),
        "retry_state": "" if retry_state is None else exc.RetryState(retry_state).name,
        "activity_id": info.get("activity_id") or "",
        "activity_type": info.get("activity_type") or "",
        "scheduled_event_id": int(info.get("scheduled_event_id") or 0),
        "started_event_id": int(info.get("started_event_id") or 0),
        "cause": None if not cause else failure_to_wire(cause),
    }


def failure_from_wire(wire: Mapping[str, Any]) -> Failure:
    """A ``kronicle.workflow.Failure`` datum as an SDK failure dict (for ``FailureConverter.from_failure``)."""
    kind = _KIND_FROM_WIRE.get(wire.get("failure_type") or "application", "application")
    info: dict[str, Any] = {}
    timeout_type = wire.get("timeout_type") or ""
    retry_state = wire.get("retry_state") or ""
    if kind == "timeout":
        info["timeout_type"] = (
            int(exc.TimeoutType[timeout_type]) if timeout_type in exc.TimeoutType.__members__ else None
        )
        info["last_heartbeat_details"] = _bytes_to_dict_payloads(wire.get("last_heartbeat_details"))
    if kind in ("activity", "child_workflow"):
        info["retry_state"] = int(exc.RetryState[retry_state]) if retry_state in exc.RetryState.__members__ else None
    if kind == "activity":
        info.update(
            scheduled_event_id=wire.get("scheduled_event_id", 0),
            started_event_id=wire.get("started_event_id", 0),
            activity_type=wire.get("activity_type", ""),
            activity_id=wire.get("activity_id", ""),
            identity="",
        )
    cause = wire.get("cause")
    return {
        "message": wire.get("message", ""),
        "type": wire.get("type") or None,
        "stack_trace": wire.get("stack_trace", ""),
        "source": wire.get("source", ""),
        "non_retryable": bool(wire.get("non_retryable")),
        "details": _bytes_to_dict_payloads(wire.get("details")),
        "kind": kind,
        "info": info,
        "cause": None if not cause else failure_from_wire(cause),
    }


def duration_to_ms(value: timedelta | None) -> int:
    """A duration in whole milliseconds; None (unset) and negatives are 0."""
    return 0 if value is None else max(0, int(value.total_seconds() * 1000))


def retry_policy_to_wire(policy: RetryPolicy | None) -> dict[str, Any] | None:
    """A retry policy as the engine's ``RetryPolicy`` record (also the HTTP API's JSON shape)."""
    if policy is None:
        return None
    return {
        "initial_interval_ms": duration_to_ms(policy.initial_interval),
        "backoff_coefficient": float(policy.backoff_coefficient),
        "maximum_interval_ms": duration_to_ms(policy.maximum_interval),
        "maximum_attempts": int(policy.maximum_attempts),
        "non_retryable_error_types": list(policy.non_retryable_error_types or ()),
    }
