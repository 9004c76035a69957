"""Reading request bodies strictly, and writing engine data as JSON.

Every check here raises :class:`ApiError` (``InvalidArgument`` naming the
field), so nothing a caller sends reaches the engine unchecked.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from kronicle._wire import failure_from_wire, payload_from_bytes, payload_to_bytes
from kronicle.connectors.frontend._errors import ApiError, invalid
from kronicle.converter import Payload

__all__ = [
    "jsonable",
    "opt_int",
    "opt_str",
    "payload_json",
    "payload_map_json",
    "payloads_json",
    "read_body",
    "req_str",
    "wire_failure_json",
    "wire_payload",
    "wire_payload_list",
    "wire_payload_map",
    "wire_retry_policy",
]

MAX_ID_LENGTH = 1000


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body ({} for an empty body)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError("InvalidArgument", f"body is not valid UTF-8 (byte {err.start}); send UTF-8 JSON") from err
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as err:
        # ValueError besides JSONDecodeError: an integer of more than 4,300 digits.
        raise ApiError("InvalidArgument", f"body is not valid JSON: {str(err)[:200]}") from err
    if not isinstance(body, dict):
        raise ApiError("InvalidArgument", f"body must be a JSON object, not {type(body).__name__}")
    return body


def req_str(body: Mapping[str, Any], field: str) -> str:
    """A required non-empty string field."""
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise invalid(field, "required, a non-empty string")
    return _check_str(field, value)


def opt_str(body: Mapping[str, Any], field: str, default: str = "") -> str:
    """An optional string field."""
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(field, f"must be a string, not {type(value).__name__}")
    return _check_str(field, value)


def _check_str(field: str, value: str) -> str:
    if len(value) > MAX_ID_LENGTH and field not in ("reason",):
        raise invalid(field, f"at most {MAX_ID_LENGTH} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # lone surrogates from "\ud800" escapes
        raise invalid(field, "contains a lone surrogate; send valid Unicode") from err
    return value


def opt_int(body: Mapping[str, Any], field: str, *, minimum: int = 0, maximum: int = 2**62) -> int:
    """An optional integer field (0 when absent)."""
    value = body.get(field)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, f"must be an integer, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise invalid(field, f"must be between {minimum} and {maximum}")
    return value


def _b64(field: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise invalid(field, "must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise invalid(field, f"is not valid base64: {err}") from err


def wire_payload(field: str, value: Any) -> bytes:
    """A JSON payload ``{"metadata": {k: b64}, "data": b64}`` as the engine's payload bytes."""
    if not isinstance(value, dict):
        raise invalid(field, 'a payload must be an object {"metadata": {key: base64}, "data": base64}')
    unknown = set(value) - {"metadata", "data"}
    if unknown:
        raise invalid(field, f"unknown payload keys {sorted(unknown)}; a payload has only metadata and data")
    metadata = value.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise invalid(f"{field}.metadata", "must be an object of base64 strings")
    meta = {_check_str(f"{field}.metadata", k): _b64(f"{field}.metadata.{k}", v) for k, v in metadata.items()}
    return payload_to_bytes(Payload(metadata=meta, data=_b64(f"{field}.data", value.get("data", ""))))


def wire_payload_list(body: Mapping[str, Any], field: str) -> list[bytes]:
    """An optional list of JSON payloads."""
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(field, "must be a list of payloads")
    return [wire_payload(f"{field}[{i}]", item) for i, item in enumerate(value)]


def wire_payload_map(body: Mapping[str, Any], field: str) -> dict[str, bytes]:
    """An optional map of name to JSON payload (memo, search attributes)."""
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "must be an object of name to payload")
    return {_check_str(field, k): wire_payload(f"{field}.{k}", v) for k, v in value.items()}


def payload_json(data: bytes) -> dict[str, Any]:
    """Engine payload bytes as a JSON payload (raw bytes as ``data`` if they are not a Kronicle payload)."""
    try:
        return payload_from_bytes(data).to_dict()
    except ValueError:
        return {"metadata": {}, "data": base64.b64encode(data).decode()}


def payloads_json(items: list[bytes] | None) -> list[dict[str, Any]]:
    """A list of engine payloads as JSON payloads."""
    return [payload_json(b) for b in items or ()]


def payload_map_json(items: Mapping[str, bytes] | None) -> dict[str, dict[str, Any]]:
    """A map of engine payloads as JSON payloads."""
    return {k: payload_json(v) for k, v in (items or {}).items()}


def wire_failure_json(failure: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A ``kronicle.workflow.Failure`` datum as the SDK's failure dict (payloads as JSON payloads)."""
    return None if failure is None else failure_from_wire(failure)


def jsonable(value: Any) -> Any:
    """Engine data (dicts, lists, bytes) as JSON: bytes become base64 strings."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


_RETRY_INTS = ("initial_interval_ms", "maximum_interval_ms", "maximum_attempts")


def wire_retry_policy(body: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    """An optional retry policy object, as the engine's ``RetryPolicy`` record (None when absent).

    Zero or absent fields mean Temporal's defaults (1 s, 2.0, 100x the initial interval, unlimited).
    """
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(field, "must be an object with initial_interval_ms, backoff_coefficient, ...")
    known = {*_RETRY_INTS, "backoff_coefficient", "non_retryable_error_types"}
    unknown = set(value) - known
    if unknown:
        raise invalid(field, f"unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(known))}")
    policy: dict[str, Any] = {}
    for name in _RETRY_INTS:
        path = f"{field}.{name}"  # the error names the nested field
        policy[name] = opt_int(
            {path: value.get(name)}, path, maximum=2**31 - 1 if name == "maximum_attempts" else 2**62
        )
    coefficient = value.get("backoff_coefficient", 0)
    if isinstance(coefficient, bool) or not isinstance(coefficient, int | float):
        raise invalid(f"{field}.backoff_coefficient", f"must be a number, not {type(coefficient).__name__}")
    if coefficient != 0 and not 1.0 <= coefficient <= 1000.0:
        raise invalid(f"{field}.backoff_coefficient", "must be 0 (the default, 2.0) or between 1.0 and 1000")
    policy["backoff_coefficient"] = float(coefficient)
    types = value.get("non_retryable_error_types") or []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise invalid(f"{field}.non_retryable_error_types", "must be a list of strings")
    policy["non_retryable_error_types"] = [_check_str(f"{field}.non_retryable_error_types", t) for t in types]
    if policy["maximum_interval_ms"] and policy["maximum_interval_ms"] < policy["initial_interval_ms"]:
        raise invalid(f"{field}.maximum_interval_ms", "must not be less than initial_interval_ms")
    return policy
