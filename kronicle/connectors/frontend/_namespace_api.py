"""The namespace endpoints: create, describe, list and update, over a :class:`NamespaceRegistry`."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiohttp import web

from kronicle.connectors.frontend._errors import ApiError, invalid
from kronicle.connectors.frontend._json import opt_int, opt_str, read_body, req_str
from kronicle.connectors.frontend._namespaces import (
    DEFAULT_NAMESPACE_RETENTION_MS,
    NAMESPACE_STATES,
    NamespaceAlreadyExistsError,
    NamespaceInfo,
    NamespaceNotFoundError,
    NamespaceRegistry,
)
from kronicle.topics import InvalidNameError, TopicError

__all__ = ["NamespaceApi"]

_MAX_RETENTION_MS = 10 * 365 * 24 * 3600 * 1000


class NamespaceApi:
    """HTTP handlers over the registry; ``served`` is the namespace this frontend's engine runs."""

    def __init__(self, registry: NamespaceRegistry, served: str) -> None:
        self.registry = registry
        self.served = served

    def _json(self, info: NamespaceInfo) -> dict[str, Any]:
        return {**info.to_json(), "served_here": info.name == self.served}

    def _get(self, name: str) -> NamespaceInfo:
        info = self.registry.get(name)
        if info is None:
            raise ApiError(
                "NamespaceNotFound",
                f"namespace {name!r} is not registered; create it with POST /api/v1/namespaces"
                " (or `kronicle namespace create`)",
                namespace=name,
            )
        return info

    async def _blocking(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def list(self, request: web.Request) -> web.Response:
        """GET /api/v1/namespaces."""
        return web.json_response({"namespaces": [self._json(i) for i in self.registry.list()]})

    async def describe(self, request: web.Request) -> web.Response:
        """GET /api/v1/namespaces/{ns}."""
        return web.json_response(self._json(self._get(request.match_info["ns"])))

    async def create(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces."""
        body = await read_body(request)
        state = opt_str(body, "state", "REGISTERED")
        if state not in NAMESPACE_STATES:
            raise invalid("state", f"must be one of {', '.join(NAMESPACE_STATES)}")
        info = NamespaceInfo(
            name=req_str(body, "name"),
            description=opt_str(body, "description"),
            owner_email=opt_str(body, "owner_email"),
            retention_ms=opt_int(body, "retention_ms", minimum=0, maximum=_MAX_RETENTION_MS)
            or DEFAULT_NAMESPACE_RETENTION_MS,
            state=state,
            partitions=opt_int(body, "partitions", minimum=0, maximum=1000) or 4,
            data=_data(body),
        )
        try:
            created = await self._blocking(self.registry.create, info)
        except InvalidNameError as err:
            raise invalid("name", str(err)) from err
        except NamespaceAlreadyExistsError as err:
            raise ApiError(
                "NamespaceAlreadyExists",
                f"namespace {info.name!r} already exists; change it with PATCH /api/v1/namespaces/{info.name}",
                namespace=info.name,
            ) from err
        except ValueError as err:
            raise ApiError("InvalidArgument", str(err)) from err
        except (TopicError, TimeoutError, RuntimeError) as err:
            raise ApiError("NotReady", f"could not create namespace {info.name!r}: {err}; retry") from err
        return web.json_response(self._json(created), status=201)

    async def update(self, request: web.Request) -> web.Response:
        """PATCH /api/v1/namespaces/{ns}."""
        name = request.match_info["ns"]
        body = await read_body(request)
        self._get(name)
        changes: dict[str, Any] = {}
        for field in ("description", "owner_email", "state"):
            if field in body:
                changes[field] = opt_str(body, field)
        if "state" in changes and changes["state"] not in NAMESPACE_STATES:
            raise invalid("state", f"must be one of {', '.join(NAMESPACE_STATES)}")
        if "retention_ms" in body:
            changes["retention_ms"] = opt_int(body, "retention_ms", minimum=60_000, maximum=_MAX_RETENTION_MS)
        if "data" in body:
            changes["data"] = _data(body)
        unknown = set(body) - {"description", "owner_email", "state", "retention_ms", "data"}
        if unknown:
            raise invalid(
                sorted(unknown)[0], "cannot be changed; changeable: description, owner_email, state, retention_ms, data"
            )
        try:
            updated = await self._blocking(self.registry.update, name, **changes)
        except NamespaceNotFoundError as err:
            raise ApiError("NamespaceNotFound", f"namespace {name!r} is not registered", namespace=name) from err
        except ValueError as err:
            raise ApiError("InvalidArgument", str(err)) from err
        except (TimeoutError, RuntimeError) as err:
            raise ApiError("NotReady", f"could not update namespace {name!r}: {err}; retry") from err
        return web.json_response(self._json(updated))


def _data(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("data")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid("data", "must be an object of string values")
    return {opt_str({"k": k}, "k"): opt_str(value, k) for k in value}
