"""List and count workflow executions through the visibility store (``docs/visibility.md``)."""

from __future__ import annotations

import re

from aiohttp import web

from kronicle.connectors.frontend._errors import ApiError
from kronicle.connectors.frontend._handlers import Api, query_int
from kronicle.connectors.visibility import (
    InvalidPageTokenError,
    InvalidQueryError,
    StoreConnectionError,
    VisibilityStore,
)

__all__ = ["Listing", "split_group_by"]

_MAX_QUERY = 10_000
_MAX_TOKEN = 4_000
# Temporal's count query takes a trailing "GROUP BY ExecutionStatus"; nothing else is grouped by.
_GROUP_BY = re.compile(r"\s*\bGROUP\s+BY\s+([A-Za-z_][A-Za-z0-9_]*)\s*$", re.IGNORECASE)


def split_group_by(query: str) -> tuple[str, str | None]:
    """``(filter, group-by attribute or None)`` of a count query.

    Raises:
        ApiError: it groups by anything but ``ExecutionStatus``.
    """
    match = _GROUP_BY.search(query)
    if match is None:
        return query, None
    if match.group(1) != "ExecutionStatus":
        raise ApiError(
            "InvalidArgument",
            f"query: cannot GROUP BY {match.group(1)!r}; only 'GROUP BY ExecutionStatus' is supported",
            field="query",
            position=match.start(1),
        )
    return query[: match.start()], "ExecutionStatus"


class Listing:
    """The list and count endpoints over a :class:`VisibilityStore` (None: answer 501)."""

    def __init__(self, api: Api, store: VisibilityStore | None) -> None:
        self.api = api
        self.store = store

    def _store(self) -> VisibilityStore:
        if self.store is None:
            raise ApiError(
                "Unimplemented",
                "this frontend runs without a visibility store, so it cannot list or count workflows;"
                " start it with one (Frontend(..., visibility=store); `kronicle server start-dev` does)",
            )
        return self.store

    def _query(self, request: web.Request) -> str:
        query = request.query.get("query", "")
        if len(query) > _MAX_QUERY:
            raise ApiError("InvalidArgument", f"query: at most {_MAX_QUERY} characters", field="query")
        return query

    async def list(self, request: web.Request) -> web.Response:
        """GET /api/v1/namespaces/{ns}/workflows."""
        ns = self.api.namespace_of(request)
        store = self._store()
        query = self._query(request)
        page_size = query_int(request, "page_size", 100, 1, 1000)
        token = request.query.get("next_page_token") or None
        if token is not None and len(token) > _MAX_TOKEN:
            raise ApiError("InvalidArgument", "next_page_token: not a token of this API", field="next_page_token")
        try:
            rows, next_token = await store.list(ns, query, page_size, token)
        except InvalidQueryError as err:
            raise _bad_query(err) from err
        except InvalidPageTokenError as err:
            raise ApiError(
                "InvalidArgument",
                f"next_page_token: {err}; pass the token of the previous page of the same query, unchanged",
                field="next_page_token",
            ) from err
        except StoreConnectionError as err:
            raise ApiError("NotReady", f"the visibility store is unavailable: {err}; retry in a moment") from err
        return web.json_response({"executions": rows, "next_page_token": next_token or ""})

    async def count(self, request: web.Request) -> web.Response:
        """GET /api/v1/namespaces/{ns}/workflow-count."""
        ns = self.api.namespace_of(request)
        store = self._store()
        query, group_by = split_group_by(self._query(request))
        try:
            if group_by is None:
                return web.json_response({"count": await store.count(ns, query), "groups": []})
            by_status = await store.count_by_status(ns, query)
        except InvalidQueryError as err:
            raise _bad_query(err) from err
        except StoreConnectionError as err:
            raise ApiError("NotReady", f"the visibility store is unavailable: {err}; retry in a moment") from err
        groups = [{"group_values": [status], "count": n} for status, n in by_status.items() if n]
        return web.json_response({"count": sum(by_status.values()), "groups": groups})


def _bad_query(err: InvalidQueryError) -> ApiError:
    return ApiError("InvalidArgument", f"query: {err}", field="query", position=err.position)
