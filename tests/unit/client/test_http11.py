"""The client's keep-alive HTTP/1.1 transport against a real (local aiohttp) server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from kronicle.client._http import FrontendError, Transport
from kronicle.exceptions import RPCError, RPCStatusCode


class Server:
    def __init__(self) -> None:
        self.connections: set[object] = set()
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_get("/chunked", self.chunked)
        app.router.add_get("/close", self.close)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/fail", self.fail)
        app.router.add_get("/prefix/echo", self.echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def echo(self, request: web.Request) -> web.Response:
        self.connections.add(request.transport)
        body = await request.read()
        self.seen.append((request.method, request.path_qs, dict(request.headers), body))
        return web.json_response(
            {"method": request.method, "query": dict(request.query), "body": body.decode()},
            headers={"X-Kronicle-Run-Id": "run-1"},
        )

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b'{"parts": ', b"[1, 2, ", b"3]}"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def close(self, request: web.Request) -> web.Response:
        self.connections.add(request.transport)
        return web.json_response({"ok": True}, headers={"Connection": "close"})

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def fail(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"code": "WorkflowNotFound", "message": "no such workflow", "details": {"workflow_id": "w"}}, status=404
        )

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_json_in_and_out_with_query_and_headers(server: Server) -> None:
    t = Transport(f"127.0.0.1:{server.port}")
    try:
        data, headers = await t.request_raw(
            "POST", "/echo", body={"x": "é"}, params={"wait": "50", "q": "a b+c"}, headers={"Accept": "text/x"}
        )
    finally:
        await t.close()
    answer = json.loads(data)
    assert answer == {"method": "POST", "query": {"wait": "50", "q": "a b+c"}, "body": json.dumps({"x": "é"})}
    assert headers["X-Kronicle-Run-Id"] == "run-1"
    _, _, sent, _ = server.seen[0]
    assert sent["Accept"] == "text/x" and sent["Content-Type"] == "application/json"


async def test_calls_reuse_one_kept_alive_connection(server: Server) -> None:
    t = Transport(f"http://127.0.0.1:{server.port}")
    try:
        for _ in range(5):
            assert (await t.request("GET", "/echo"))["method"] == "GET"
    finally:
        await t.close()
    assert len(server.connections) == 1


async def test_concurrent_calls_each_get_a_connection(server: Server) -> None:
    t = Transport(f"127.0.0.1:{server.port}")
    try:
        answers = await asyncio.gather(*(t.request("POST", "/echo", body={"i": i}) for i in range(20)))
    finally:
        await t.close()
    assert sorted(json.loads(a["body"])["i"] for a in answers) == list(range(20))


async def test_a_chunked_answer_is_joined(server: Server) -> None:
    t = Transport(f"127.0.0.1:{server.port}")
    try:
        assert await t.request("GET", "/chunked") == {"parts": [1, 2, 3]}
        assert (await t.request("GET", "/echo"))["method"] == "GET"  # the connection is still in step
    finally:
        await t.close()


async def test_a_connection_the_server_closes_is_not_reused(server: Server) -> None:
    t = Transport(f"127.0.0.1:{server.port}")
    try:
        assert await t.request("GET", "/close") == {"ok": True}
        assert await t.request("GET", "/close") == {"ok": True}
    finally:
        await t.close()
    assert len(server.connections) == 2


async def test_a_kept_connection_dropped_by_a_restarted_server_is_replaced(server: Server) -> None:
    t = Transport(f"127.0.0.1:{server.port}")
    try:
        await t.request("GET", "/echo")
        for transport in list(server.connections):
            transport.close()  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        assert (await t.request("GET", "/echo"))["method"] == "GET"
    finally:
        await t.close()
    assert len(server.connections) == 2


async def test_error_answers_become_frontend_errors(server: Server) -> None:
    t = Transport(f"127.0.0.1:{server.port}")
    try:
        with pytest.raises(FrontendError) as caught:
            await t.request("GET", "/fail")
    finally:
        await t.close()
    assert caught.value.status == RPCStatusCode.NOT_FOUND
    assert caught.value.details == {"workflow_id": "w"}


async def test_no_answer_in_time_is_deadline_exceeded(server: Server) -> None:
    t = Transport(f"127.0.0.1:{server.port}")
    try:
        with pytest.raises(RPCError) as caught:
            await t.request("GET", "/slow", timeout=0.2)
        assert (await t.request("GET", "/echo"))["method"] == "GET"
    finally:
        await t.close()
    assert caught.value.status == RPCStatusCode.DEADLINE_EXCEEDED


async def test_nobody_listening_is_unavailable_with_what_to_do() -> None:
    t = Transport("127.0.0.1:1")
    with pytest.raises(RPCError) as caught:
        await t.request("GET", "/echo")
    await t.close()
    assert caught.value.status == RPCStatusCode.UNAVAILABLE
    assert "kronicle server start-dev" in str(caught.value)


async def test_a_path_prefix_in_the_target_is_kept(server: Server) -> None:
    t = Transport(f"http://127.0.0.1:{server.port}/prefix")
    try:
        assert (await t.request("GET", "/echo"))["method"] == "GET"
    finally:
        await t.close()
