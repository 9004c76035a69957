"""The frontend's error model: stable codes, JSON bodies, and a middleware that answers every error as JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = ["ApiError", "error_middleware", "error_response"]

_log = logging.getLogger(__name__)

# Stable codes and their HTTP statuses; clients match on the code, never on the message.
STATUS_BY_CODE: dict[str, int] = {
    "InvalidArgument": 400,
    "QueryFailed": 400,
    "UpdateRejected": 400,
    "NamespaceNotFound": 404,
    "WorkflowNotFound": 404,
    "UpdateNotFound": 404,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "WorkflowAlreadyStarted": 409,
    "WorkflowClosed": 409,
    "NamespaceAlreadyExists": 409,
    "UpdateAborted": 409,
    "PayloadTooLarge": 413,
    "UnsupportedMediaType": 415,
    "ResourceExhausted": 429,
    "Internal": 500,
    "Unimplemented": 501,
    "NotReady": 503,
    "DeadlineExceeded": 504,
    "QueryTimeout": 504,
}


class ApiError(Exception):
    """An error answered to the caller as ``{"code", "message", "details"}``.

    Args:
        code: One of the stable codes (``InvalidArgument``, ``WorkflowNotFound``, ...).
        message: What went wrong and what to do next, for a human.
        details: Extra machine-readable facts (e.g. ``{"field": "workflow_id"}``).
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        """The HTTP status of this code."""
        return STATUS_BY_CODE.get(self.code, 500)


def invalid(field: str, message: str) -> ApiError:
    """An ``InvalidArgument`` error naming the offending field."""
    return ApiError("InvalidArgument", f"{field}: {message}", field=field)


def error_response(code: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    """The JSON response for an error."""
    body = {"code": code, "message": message, "details": details or {}}
    return web.json_response(body, status=STATUS_BY_CODE.get(code, 500))


_HTTP_CODES = {
    400: "InvalidArgument",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into the JSON error body; an unexpected exception is a logged 500, never a crash."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.code, err.message, err.details)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = _HTTP_CODES.get(err.status, "InvalidArgument" if err.status < 500 else "Internal")
        message = err.text or err.reason
        if err.status == 413:
            message = f"request body too large: {err.reason}; send smaller payloads"
        elif err.status == 404:
            message = f"no such endpoint: {request.method} {request.path}; see /api/v1/openapi.json"
        elif err.status == 405:
            message = f"method {request.method} is not allowed on {request.path}; see /api/v1/openapi.json"
        response = error_response(code, message)
        response.set_status(err.status)
        return response
    except json.JSONDecodeError as err:  # pragma: no cover - bodies are parsed in _body, kept for safety
        return error_response("InvalidArgument", f"body is not valid JSON: {err}")
    except Exception:  # noqa: BLE001 - the boundary: anything unexpected is a logged 500, never a crash
        _log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response("Internal", "internal error; the frontend's log has the details")
