"""The aiohttp application and the :class:`Frontend` that serves it on a port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from kronicle.connectors.frontend._commands import CommandGateway
from kronicle.connectors.frontend._engine import EngineLike
from kronicle.connectors.frontend._errors import error_middleware, error_response
from kronicle.connectors.frontend._handlers import Api, FrontendConfig
from kronicle.connectors.frontend._interactive import Interactive
from kronicle.connectors.frontend._listing import Listing
from kronicle.connectors.frontend._namespace_api import NamespaceApi
from kronicle.connectors.frontend._namespaces import NamespaceInfo, NamespaceRegistry
from kronicle.connectors.frontend._openapi import openapi_document
from kronicle.connectors.frontend.schema_registry import add_schema_registry_routes
from kronicle.connectors.visibility import VisibilityStore

__all__ = ["DEFAULT_PORT", "MAX_HEADER_BYTES", "Frontend", "create_app"]

DEFAULT_PORT = 7333
MAX_HEADER_BYTES = 64 * 1024
"""Longest request line and header aiohttp parses (its default is 8,190 bytes).

Generous on purpose: a request with an over-long id or list filter must reach
the handlers, which refuse it with a JSON ``InvalidArgument`` naming the field
(ids are at most 1,000 characters, 12 KB percent-encoded; a filter at most
10,000). Past this bound the parser still refuses the request, and
:class:`_JsonErrorRequestHandler` answers that in the JSON error shape too.
"""
API_KEY: web.AppKey[Api] = web.AppKey("api", Api)
METRICS_KEY: web.AppKey[CollectorRegistry] = web.AppKey("metrics", CollectorRegistry)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _metrics_middleware(registry: CollectorRegistry) -> Middleware:
    requests = Counter(
        "kronicle_frontend_requests",
        "HTTP requests answered, by route and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "kronicle_frontend_request_seconds",
        "Time to answer an HTTP request (long polls included), by route.",
        ["method", "route"],
        registry=registry,
    )

    # The labelled children, looked up once: ``labels()`` validates and locks on every call.
    counters: dict[tuple[str, str, int], Any] = {}
    histograms: dict[tuple[str, str], Any] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        method, status = request.method, response.status
        counter = counters.get((method, route, status))
        if counter is None:
            counter = counters[(method, route, status)] = requests.labels(method, route, str(status))
        counter.inc()
        histogram = histograms.get((method, route))
        if histogram is None:
            histogram = histograms[(method, route)] = latency.labels(method, route)
        histogram.observe(time.perf_counter() - started)
        return response

    return middleware


class _JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering requests its HTTP parser refused with the JSON error body.

    Such a request never reaches the application (nor its error middleware):
    aiohttp answers it from ``handle_error`` with a plain-text body.
    """

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs the error, and raises if a response was already under way.
        super().handle_error(request, status, exc, message)
        if status >= 500:
            code, text = "Internal", "internal error; the frontend's log has the details"
        elif isinstance(exc, LineTooLong):
            code = "InvalidArgument"
            text = (
                f"the request line or a header is over {MAX_HEADER_BYTES} bytes; shorten it (ids are at most"
                " 1,000 characters, a list filter at most 10,000; send large data in the body)"
            )
        else:
            code, text = "InvalidArgument", f"malformed HTTP request: {message or exc or 'unparsable'}"
        response = error_response(code, text)
        response.set_status(status)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    """aiohttp's connection factory, making :class:`_JsonErrorRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        # Server keeps the handler settings (timeouts, max_line_size, ...) in _kwargs.
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class _AppRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose server answers HTTP parse errors as JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The application builds a plain Server; only its connection factory differs.
        server.__class__ = _JsonErrorServer
        return server


def create_app(
    engine: EngineLike,
    config: FrontendConfig | None = None,
    *,
    visibility: VisibilityStore | None = None,
    namespaces: NamespaceRegistry | None = None,
) -> web.Application:
    """The frontend's aiohttp application over ``engine``.

    On startup it creates its reply topic and starts the command gateway (the
    producer of commands and the consumer of the answers) and, unless one is
    given, a namespace registry; on cleanup it stops what it started and
    deletes the reply topic.

    Args:
        engine: The namespace's engine (``kronicle.engine.service.EngineService``).
        config: Limits and timeouts; defaults when None.
        visibility: The store that answers list and count; None answers them 501.
        namespaces: A started namespace registry to share; None: the app runs its own.
    """
    config = config or FrontendConfig()
    owns_registry = namespaces is None
    registry = namespaces or NamespaceRegistry(engine.bootstrap_servers)
    gateway = CommandGateway(
        engine.bootstrap_servers,
        engine.topics,
        engine.registry.encode,
        engine.registry.decode,
        instance_id=config.instance_id,
    )
    api = Api(engine, gateway, config, is_registered=lambda name: registry.get(name) is not None)
    interactive = Interactive(api)
    listing = Listing(api, visibility)
    namespace_api = NamespaceApi(registry, engine.namespace)
    metrics_registry = CollectorRegistry()
    # Order matters: metrics see the status the error middleware produced.
    app = web.Application(
        middlewares=[_metrics_middleware(metrics_registry), error_middleware],
        client_max_size=config.max_body_bytes,
        handler_args={"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES},
    )
    app[API_KEY] = api
    app[METRICS_KEY] = metrics_registry

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, gateway.start, loop)
        if owns_registry:
            await loop.run_in_executor(None, registry.start)
        # The namespace this frontend serves is registered (as it is: its topics exist already).
        served = NamespaceInfo(engine.namespace, partitions=gateway.partitions, description="created by its engine")
        await loop.run_in_executor(None, registry.ensure, served)

    async def on_cleanup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, gateway.stop)
        if owns_registry:
            await loop.run_in_executor(None, registry.stop)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)

    async def metrics(request: web.Request) -> web.Response:
        """GET /metrics."""
        # The frontend's own metrics, then the process-wide ones (the engine's and its state store's).
        resp = web.Response(body=generate_latest(metrics_registry) + generate_latest(REGISTRY))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    async def openapi(request: web.Request) -> web.Response:
        """GET /api/v1/openapi.json."""
        return web.json_response(openapi_document())

    ns = "/api/v1/namespaces/{ns}"
    wf = ns + "/workflows/{workflow_id}"
    r = app.router
    # The router tries the resources under one path prefix in registration order, one regex each:
    # the two calls of every workflow (start, then its result) come first.
    r.add_post(ns + "/workflows", api.start)
    r.add_get(ns + "/workflows", listing.list)
    r.add_get(wf + "/result", api.result)
    r.add_get("/healthz", api.healthz)
    r.add_get("/readyz", api.readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/api/v1/openapi.json", openapi)
    r.add_get("/api/v1/cluster", api.cluster)
    r.add_get("/api/v1/namespaces", namespace_api.list)
    r.add_post("/api/v1/namespaces", namespace_api.create)
    r.add_get(ns, namespace_api.describe)
    r.add_patch(ns, namespace_api.update)
    r.add_get(ns + "/workflow-count", listing.count)
    r.add_get(wf, api.describe)
    r.add_get(wf + "/history", api.history)
    r.add_post(wf + "/signal/{signal_name}", api.signal)
    r.add_post(wf + "/signal-with-start/{signal_name}", api.signal_with_start)
    r.add_post(wf + "/cancel", api.cancel)
    r.add_post(wf + "/terminate", api.terminate)
    r.add_post(wf + "/query/{query_name}", interactive.query)
    r.add_post(wf + "/update/{update_name}", interactive.update)
    r.add_get(wf + "/updates/{update_id}", interactive.poll_update)
    add_schema_registry_routes(app, engine.registry, [engine.namespace])
    return app


class Frontend:
    """Runs the frontend application on a host and port, with explicit start and stop.

    ``port=0`` picks a free port; :attr:`port` and :attr:`url` tell which.

    Args:
        engine: The namespace's engine.
        host: Interface to listen on.
        port: TCP port (default 7333).
        config: Limits and timeouts.
        visibility: The store that answers list and count (None: they answer 501).
        namespaces: A started namespace registry to share (None: the frontend runs its own).
    """

    def __init__(
        self,
        engine: EngineLike,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        config: FrontendConfig | None = None,
        visibility: VisibilityStore | None = None,
        namespaces: NamespaceRegistry | None = None,
    ) -> None:
        self._engine = engine
        self._visibility = visibility
        self._namespaces = namespaces
        self._host = host
        self._port = port
        self._config = config
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port it listens on (known after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Connect to Kafka, create the reply topic and start listening.

        Raises:
            RuntimeError: it is already started.
        """
        if self._runner is not None:
            raise RuntimeError("the frontend is already started; stop() it first")
        # Long polls may be in flight: give them a moment on stop, not aiohttp's default of 60 s.
        app = create_app(self._engine, self._config, visibility=self._visibility, namespaces=self._namespaces)
        runner = _AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self._port = int(address[1])
                break

    async def stop(self) -> None:
        """Stop listening, stop the Kafka clients and delete the reply topic (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Frontend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
