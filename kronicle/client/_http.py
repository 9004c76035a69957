"""The client's HTTP transport to the frontend, and the translation of its errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from kronicle.exceptions import RPCError, RPCStatusCode

__all__ = ["FrontendError", "Transport"]

_STATUS_BY_CODE = {
    "InvalidArgument": RPCStatusCode.INVALID_ARGUMENT,
    "QueryFailed": RPCStatusCode.INVALID_ARGUMENT,
    "UpdateRejected": RPCStatusCode.INVALID_ARGUMENT,
    "UpdateNotFound": RPCStatusCode.NOT_FOUND,
    "NamespaceAlreadyExists": RPCStatusCode.ALREADY_EXISTS,
    "UpdateAborted": RPCStatusCode.ABORTED,
    "QueryTimeout": RPCStatusCode.DEADLINE_EXCEEDED,
    "NamespaceNotFound": RPCStatusCode.NOT_FOUND,
    "WorkflowNotFound": RPCStatusCode.NOT_FOUND,
    "NotFound": RPCStatusCode.NOT_FOUND,
    "MethodNotAllowed": RPCStatusCode.UNIMPLEMENTED,
    "WorkflowAlreadyStarted": RPCStatusCode.ALREADY_EXISTS,
    "PayloadTooLarge": RPCStatusCode.RESOURCE_EXHAUSTED,
    "ResourceExhausted": RPCStatusCode.RESOURCE_EXHAUSTED,
    "Unimplemented": RPCStatusCode.UNIMPLEMENTED,
    "NotReady": RPCStatusCode.UNAVAILABLE,
    "DeadlineExceeded": RPCStatusCode.DEADLINE_EXCEEDED,
    "Internal": RPCStatusCode.INTERNAL,
}
_JSON_HEADERS = {"Content-Type": "application/json"}
_NO_HEADERS: Mapping[str, str] = {}
_STATUS_BY_HTTP = {
    400: RPCStatusCode.INVALID_ARGUMENT,
    404: RPCStatusCode.NOT_FOUND,
    409: RPCStatusCode.ALREADY_EXISTS,
    413: RPCStatusCode.RESOURCE_EXHAUSTED,
    429: RPCStatusCode.RESOURCE_EXHAUSTED,
    501: RPCStatusCode.UNIMPLEMENTED,
    503: RPCStatusCode.UNAVAILABLE,
    504: RPCStatusCode.DEADLINE_EXCEEDED,
}


class FrontendError(RPCError):
    """An :class:`RPCError` answered by the frontend, with the error body's ``details``."""

    def __init__(
        self, message: str, status: RPCStatusCode, *, code: str, http_status: int, details: Mapping[str, Any]
    ) -> None:
        super().__init__(message, status, code=code, http_status=http_status)
        self.details = dict(details)
        """Machine-readable facts from the frontend (e.g. ``field``, ``run_id``)."""


def _base_url(target: str) -> str:
    target = target.strip().rstrip("/")
    if not target:
        raise ValueError("target must be the frontend's address, e.g. 'localhost:7333'")
    return target if "://" in target else f"http://{target}"


class Transport:
    """JSON over HTTP to one frontend; every failure becomes an :class:`RPCError`.

    Args:
        target: ``host:port`` or a URL of the frontend.
    """

    def __init__(self, target: str) -> None:
        self.base_url = _base_url(target)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # One keep-alive connection per concurrent call, and no cap: result() long polls hold theirs
            # for as long as the workflow runs, and a capped aiohttp pool hands a released connection to
            # whichever request asks next rather than to the oldest waiter, so calls beyond the cap
            # (starts, a worker's history fetches) starved until the others stopped (the bench's 31.8 s
            # p99 at 200 callers with the default cap of 100). Concurrency is the caller's to bound.
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """Send a request and return the decoded JSON answer.

        Raises:
            RPCError: the frontend answered with an error, or could not be reached.
        """
        data, _ = await self._send(method, path, body, params, None, timeout, want_headers=False)
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RPCError(
                f"{method} {path}: the frontend answered with something that is not JSON; is {self.base_url}"
                " a Kronicle frontend?",
                RPCStatusCode.UNKNOWN,
            ) from err

    async def request_raw(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[bytes, Mapping[str, str]]:
        """Send a request and return the raw body and headers of a successful answer.

        Raises:
            RPCError: the frontend answered with an error, or could not be reached.
        """
        return await self._send(method, path, body, params, headers, timeout, want_headers=True)

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        timeout: float,
        *,
        want_headers: bool,
    ) -> tuple[bytes, Mapping[str, str]]:
        # Every call of a workflow goes through here (two per execute_workflow), so the parts aiohttp
        # would redo per call are done once or cheaply: the URL arrives encoded (paths are quoted by
        # the callers, the query here) so yarl does not parse and re-quote it, the body is serialised
        # by the C encoder in one go, and the timeout objects are shared.
        url = self.base_url + path
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        if data is not None:
            headers = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._get_session().request(
                method, URL(url, encoded=True), data=data, headers=headers, timeout=client_timeout
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw, method, path)
                return raw, (dict(resp.headers) if want_headers else _NO_HEADERS)
        except aiohttp.ClientError as err:
            raise self._unreachable(err) from err
        except TimeoutError as err:
            raise self._deadline(method, path, timeout) from err

    def _unreachable(self, err: BaseException) -> RPCError:
        return RPCError(
            f"cannot reach the Kronicle frontend at {self.base_url} ({err or type(err).__name__}); is it running?"
            " Start one with `kronicle server start-dev`",
            RPCStatusCode.UNAVAILABLE,
        )

    def _deadline(self, method: str, path: str, timeout: float) -> RPCError:
        return RPCError(
            f"{method} {path}: no answer from {self.base_url} within {timeout} s", RPCStatusCode.DEADLINE_EXCEEDED
        )


def _error(http_status: int, data: bytes, method: str, path: str) -> FrontendError:
    try:
        body = json.loads(data)
        code = str(body["code"])
        message = str(body["message"])
        details = body.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "", f"{method} {path}: HTTP {http_status}: {data[:200]!r}", {}
    status = _STATUS_BY_CODE.get(code) or _STATUS_BY_HTTP.get(http_status, RPCStatusCode.UNKNOWN)
    if not isinstance(details, dict):
        details = {}
    return FrontendError(message, status, code=code, http_status=http_status, details=details)
