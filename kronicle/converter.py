"""Data conversion: Python values to payloads and back, failures to dicts and back.

Three layers, as in temporalio:

1. :class:`PayloadConverter` (sync): value <-> :class:`Payload`. The default
   writes JSON (``json/plain``), with ``binary/null`` for None and
   ``binary/plain`` for bytes, and understands dataclasses, datetimes, dates,
   timedeltas, UUIDs, enums, lists/dicts/tuples of those and, if pydantic is
   importable, pydantic models. Decoding is guided by the type hint of the
   receiving parameter.
2. :class:`PayloadCodec` (async): bytes -> bytes over whole payloads
   (encryption, compression). Applied to every payload the SDK writes and reads.
3. :class:`FailureConverter`: exceptions <-> serialisable failure dicts, keeping
   the ``cause`` chain and the error-specific fields.

Workflow code never awaits the codec: the worker decodes an activation's
payloads before handing it to the deterministic instance and encodes the
completion afterwards, so the instance only uses the sync payload converter.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import functools
import json
import traceback
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from kronicle import exceptions as exc

__all__ = [
    "DataConverter",
    "DefaultPayloadConverter",
    "Failure",
    "FailureConverter",
    "JSONPlainPayloadConverter",
    "Payload",
    "PayloadCodec",
    "PayloadConverter",
]

Failure: TypeAlias = dict[str, Any]
"""A failure as a JSON-serialisable dict: ``message``, ``type``, ``stack_trace``,
``non_retryable``, ``details`` (payload dicts), ``kind``, ``info`` and ``cause``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Payload:
    """One converted value: metadata (at least ``encoding``) and the bytes."""

    metadata: Mapping[str, bytes]
    """Describes ``data``; ``encoding`` says which converter wrote it."""
    data: bytes
    """The encoded value."""

    @property
    def encoding(self) -> str:
        """The ``encoding`` metadata entry, decoded ("" if absent)."""
        return self.metadata.get("encoding", b"").decode()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (bytes as base64)."""
        return {
            "metadata": {k: base64.b64encode(v).decode() for k, v in self.metadata.items()},
            "data": base64.b64encode(self.data).decode(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Payload:
        """The inverse of :meth:`to_dict`."""
        return cls(
            metadata={k: base64.b64decode(v) for k, v in data.get("metadata", {}).items()},
            data=base64.b64decode(data.get("data", "")),
        )


class PayloadConverter:
    """Converts values to payloads and back, synchronously. Subclass to customise."""

    def to_payload(self, value: Any) -> Payload:
        """Convert one value."""
        raise NotImplementedError

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        """Convert one payload; ``type_hint`` (None: anything) shapes the result."""
        raise NotImplementedError

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        """Convert several values."""
        return [self.to_payload(v) for v in values]

    def from_payloads(self, payloads: Sequence[Payload], type_hints: Sequence[Any] | None = None) -> list[Any]:
        """Convert several payloads; ``type_hints`` aligns with them (missing hints mean Any)."""
        hints = list(type_hints or [])
        return [self.from_payload(p, hints[i] if i < len(hints) else None) for i, p in enumerate(payloads)]


@functools.cache
def _pydantic_base() -> type | None:
    try:
        import pydantic  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return pydantic.BaseModel  # type: ignore[no-any-return, unused-ignore]


def _to_jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _to_jsonable(value.value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    base = _pydantic_base()
    if base is not None and isinstance(value, base):
        return value.model_dump(mode="json")  # type: ignore[attr-defined]
    if isinstance(value, Mapping):
        return {str(_to_jsonable(k)): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(
        f"Cannot convert a {type(value).__name__} to JSON; use a dataclass, a pydantic model or "
        "plain JSON types, or give the DataConverter a custom PayloadConverter"
    )


def _from_jsonable(value: Any, hint: Any) -> Any:
    if hint is None or hint is Any or hint is object:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _from_jsonable(value, arg)
            except (TypeError, ValueError, KeyError):
                continue
        return value
    if origin is typing.Literal:
        return value
    if origin in (list, Sequence, typing.MutableSequence, set, frozenset):
        (item,) = typing.get_args(hint) or (None,)
        items = [_from_jsonable(v, item) for v in value]
        return origin(items) if origin in (set, frozenset) else items
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_jsonable(v, args[0]) for v in value)
        return tuple(_from_jsonable(v, a) for v, a in zip(value, args, strict=False))
    if origin in (dict, Mapping, typing.MutableMapping):
        kt, vt = typing.get_args(hint) or (None, None)
        return {_from_jsonable(k, kt): _from_jsonable(v, vt) for k, v in value.items()}
    if origin is not None:
        return value
    if not isinstance(hint, type):
        return value
    if value is None:
        return None
    if issubclass(hint, enum.Enum):
        return hint(value)
    if hint is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if hint is dt.date:
        return dt.date.fromisoformat(value)
    if hint is dt.timedelta:
        return dt.timedelta(seconds=value)
    if hint is uuid.UUID:
        return uuid.UUID(value)
    if hint is bytes:
        return base64.b64decode(value)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        kwargs = {
            f.name: _from_jsonable(value[f.name], hints.get(f.name))
            for f in dataclasses.fields(hint)
            if f.name in value and f.init
        }
        return hint(**kwargs)
    base = _pydantic_base()
    if base is not None and issubclass(hint, base):
        return hint.model_validate(value)  # type: ignore[attr-defined]
    if hint is float and isinstance(value, int):
        return float(value)
    return value


class JSONPlainPayloadConverter(PayloadConverter):
    """Writes ``json/plain`` payloads (compact JSON, UTF-8)."""

    encoding = "json/plain"

    def to_payload(self, value: Any) -> Payload:
        data = json.dumps(_to_jsonable(value), separators=(",", ":"), sort_keys=False).encode()
        return Payload({"encoding": self.encoding.encode()}, data)

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        return _from_jsonable(json.loads(payload.data), type_hint)


class DefaultPayloadConverter(PayloadConverter):
    """None as ``binary/null``, bytes as ``binary/plain``, everything else as JSON."""

    def __init__(self) -> None:
        self._json = JSONPlainPayloadConverter()

    def to_payload(self, value: Any) -> Payload:
        if value is None:
            return Payload({"encoding": b"binary/null"}, b"")
        if isinstance(value, (bytes, bytearray)):
            return Payload({"encoding": b"binary/plain"}, bytes(value))
        return self._json.to_payload(value)

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        encoding = payload.encoding
        if encoding == "binary/null":
            return None
        if encoding == "binary/plain":
            return payload.data
        if encoding == "json/plain":
            return self._json.from_payload(payload, type_hint)
        raise ValueError(
            f"Unknown payload encoding {encoding!r}; was it written with a custom converter or codec "
            "that this DataConverter does not have?"
        )


class PayloadCodec:
    """Transforms whole payloads on their way out (``encode``) and in (``decode``).

    Subclass and override both; ``decode(encode(p)) == p`` must hold. Typical
    uses are encryption and compression; the codec sees every payload the SDK
    writes and reads, failure details included.
    """

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encode payloads (one out for each in)."""
        raise NotImplementedError

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decode payloads (one out for each in)."""
        raise NotImplementedError


_KIND_BY_CLASS: tuple[tuple[type[exc.FailureError], str], ...] = (
    (exc.ApplicationError, "application"),
    (exc.CancelledError, "cancelled"),
    (exc.TerminatedError, "terminated"),
    (exc.TimeoutError, "timeout"),
    (exc.ServerError, "server"),
    (exc.ActivityError, "activity"),
    (exc.ChildWorkflowError, "child_workflow"),
)


class FailureConverter:
    """Exceptions to failure dicts and back, keeping the ``cause`` chain.

    A plain Python exception (not a :class:`~kronicle.exceptions.FailureError`)
    becomes an ``application`` failure whose ``type`` is the class name, as
    temporalio does, so retry policies can name it.
    """

    def to_failure(self, error: BaseException, payload_converter: PayloadConverter) -> Failure:
        """Convert ``error`` and its ``__cause__`` chain."""
        if isinstance(error, exc.FailureError) and error.failure is not None:
            # Came from the wire unchanged: forward it as it was.
            return dict(error.failure)
        stack = "".join(traceback.format_tb(error.__traceback__)) if error.__traceback__ else ""
        failure: Failure = {
            "message": str(error.args[0]) if error.args else str(error),
            "type": type(error).__name__,
            "stack_trace": stack,
            "source": "kronicle-python",
            "non_retryable": False,
            "details": [],
            "kind": "application",
            "info": {},
            "cause": None,
        }
        to = payload_converter.to_payloads
        match error:
            case exc.ApplicationError():
                failure["type"] = error.type  # None stays None, as in temporalio
                failure["non_retryable"] = error.non_retryable
                failure["details"] = [p.to_dict() for p in to(error.details)]
                delay = error.next_retry_delay
                failure["info"] = {"next_retry_delay": None if delay is None else delay.total_seconds()}
            case exc.CancelledError() | exc.TerminatedError():
                failure["details"] = [p.to_dict() for p in to(error.details)]
            case exc.TimeoutError():
                failure["info"] = {
                    "timeout_type": None if error.type is None else int(error.type),
                    "last_heartbeat_details": [p.to_dict() for p in to(error.last_heartbeat_details)],
                }
            case exc.ServerError():
                failure["non_retryable"] = error.non_retryable
            case exc.ActivityError():
                failure["info"] = {
                    "scheduled_event_id": error.scheduled_event_id,
                    "started_event_id": error.started_event_id,
                    "identity": error.identity,
                    "activity_type": error.activity_type,
                    "activity_id": error.activity_id,
                    "retry_state": None if error.retry_state is None else int(error.retry_state),
                }
            case exc.ChildWorkflowError():
                failure["info"] = {
                    "namespace": error.namespace,
                    "workflow_id": error.workflow_id,
                    "run_id": error.run_id,
                    "workflow_type": error.workflow_type,
                    "initiated_event_id": error.initiated_event_id,
                    "started_event_id": error.started_event_id,
                    "retry_state": None if error.retry_state is None else int(error.retry_state),
                }
        for cls, kind in _KIND_BY_CLASS:
            if isinstance(error, cls):
                failure["kind"] = kind
                break
        if error.__cause__ is not None:
            failure["cause"] = self.to_failure(error.__cause__, payload_converter)
        return failure

    def from_failure(self, failure: Failure, payload_converter: PayloadConverter) -> exc.FailureError:
        """Rebuild the exception (and its cause chain) a failure dict describes."""
        message = failure.get("message", "")
        info = failure.get("info") or {}
        kind = failure.get("kind", "application")

        def details(key: str = "details", source: Mapping[str, Any] = failure) -> list[Any]:
            return payload_converter.from_payloads([Payload.from_dict(p) for p in source.get(key) or []])

        def retry_state() -> exc.RetryState | None:
            value = info.get("retry_state")
            return None if value is None else exc.RetryState(value)

        error: exc.FailureError
        if kind == "cancelled":
            error = exc.CancelledError(message, *details())
        elif kind == "terminated":
            error = exc.TerminatedError(message, *details())
        elif kind == "timeout":
            tt = info.get("timeout_type")
            error = exc.TimeoutError(
                message,
                type=None if tt is None else exc.TimeoutType(tt),
                last_heartbeat_details=details("last_heartbeat_details", info),
            )
        elif kind == "server":
            error = exc.ServerError(message, non_retryable=bool(failure.get("non_retryable")))
        elif kind == "activity":
            error = exc.ActivityError(
                message,
                scheduled_event_id=info.get("scheduled_event_id", 0),
                started_event_id=info.get("started_event_id", 0),
                identity=info.get("identity", ""),
                activity_type=info.get("activity_type", ""),
                activity_id=info.get("activity_id", ""),
                retry_state=retry_state(),
            )
        elif kind == "child_workflow":
            error = exc.ChildWorkflowError(
                message,
                namespace=info.get("namespace", ""),
                workflow_id=info.get("workflow_id", ""),
                run_id=info.get("run_id", ""),
                workflow_type=info.get("workflow_type", ""),
                initiated_event_id=info.get("initiated_event_id", 0),
                started_event_id=info.get("started_event_id", 0),
                retry_state=retry_state(),
            )
        else:
            delay = info.get("next_retry_delay")
            error = exc.ApplicationError(
                message,
                *details(),
                type=failure.get("type"),
                non_retryable=bool(failure.get("non_retryable")),
                next_retry_delay=None if delay is None else dt.timedelta(seconds=delay),
            )
        error._failure = dict(failure)
        cause = failure.get("cause")
        if cause:
            error.__cause__ = self.from_failure(cause, payload_converter)
        return error


@dataclasses.dataclass(frozen=True)
class DataConverter:
    """Everything that turns values and errors into bytes and back.

    ``to_payloads``/``from_payloads`` apply the payload converter and then the
    codec (if any); ``encode``/``decode`` are the same under temporalio's names.
    """

    payload_converter: PayloadConverter = dataclasses.field(default_factory=DefaultPayloadConverter)
    """Value <-> payload conversion (sync, usable inside workflows)."""
    payload_codec: PayloadCodec | None = None
    """Optional bytes -> bytes transform applied to every payload."""
    failure_converter: FailureConverter = dataclasses.field(default_factory=FailureConverter)
    """Exception <-> failure dict conversion."""

    default: typing.ClassVar[DataConverter]
    """The default converter: JSON, no codec."""

    async def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        """Convert values to payloads, then encode them with the codec."""
        return await self.encode_payloads(self.payload_converter.to_payloads(values))

    async def from_payloads(self, payloads: Sequence[Payload], type_hints: Sequence[Any] | None = None) -> list[Any]:
        """Decode payloads with the codec, then convert them to values shaped by ``type_hints``."""
        return self.payload_converter.from_payloads(await self.decode_payloads(payloads), type_hints)

    async def encode(self, values: Sequence[Any]) -> list[Payload]:
        """Same as :meth:`to_payloads` (temporalio's name)."""
        return await self.to_payloads(values)

    async def decode(self, payloads: Sequence[Payload], type_hints: Sequence[Any] | None = None) -> list[Any]:
        """Same as :meth:`from_payloads` (temporalio's name)."""
        return await self.from_payloads(payloads, type_hints)

    async def encode_payloads(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Apply only the codec's encode (a no-op without a codec)."""
        if self.payload_codec is None:
            return list(payloads)
        return await self.payload_codec.encode(payloads)

    async def decode_payloads(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Apply only the codec's decode (a no-op without a codec)."""
        if self.payload_codec is None:
            return list(payloads)
        return await self.payload_codec.decode(payloads)

    async def encode_failure(self, error: BaseException) -> Failure:
        """Convert an exception to a failure dict, with every payload in it codec-encoded."""
        failure = self.failure_converter.to_failure(error, self.payload_converter)
        await self._map_failure_payloads(failure, self.encode_payloads)
        return failure

    async def decode_failure(self, failure: Failure) -> exc.FailureError:
        """Decode every payload in a failure dict with the codec, then rebuild the exception."""
        failure = json.loads(json.dumps(failure))  # deep copy; the caller's dict stays as it was
        await self._map_failure_payloads(failure, self.decode_payloads)
        return self.failure_converter.from_failure(failure, self.payload_converter)

    async def _map_failure_payloads(self, failure: Failure | None, fn: Any) -> None:
        while failure:
            for holder, key in ((failure, "details"), (failure.get("info") or {}, "last_heartbeat_details")):
                if holder.get(key):
                    done = await fn([Payload.from_dict(p) for p in holder[key]])
                    holder[key] = [p.to_dict() for p in done]
            failure = failure.get("cause")


DataConverter.default = DataConverter()
