"""A small HTTP/1.1 client with keep-alive connections, for the client's calls to one plain-HTTP frontend.

aiohttp's client spent about 200 µs of CPU per call (URL objects, a response
object with a payload stream, tracing hooks, a timer context, a connector
with waiters); a workflow run by ``execute_workflow`` is two calls, and that
was a quarter of the benchmark process's CPU. The frontend answers small JSON
bodies with a ``Content-Length``, so this needs little: write the request,
read the status line, headers and body from a pooled connection, put the
connection back. Chunked bodies and ``Connection: close`` are handled too;
anything else (TLS) stays with aiohttp (see :class:`~kronicle.client._http.Transport`).

Errors are raised as ``OSError`` (connection), ``asyncio.IncompleteReadError``
(the server closed mid-answer), ``ValueError`` (not HTTP) and ``TimeoutError``;
the transport translates them.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

__all__ = ["ConnectionPool", "Response"]

_IDLE_S = 30.0
"""An idle connection older than this is closed rather than reused (aiohttp's server drops them after 75 s)."""


class Response:
    """A complete answer: status, headers (as the server spelled them) and body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class ConnectionPool:
    """Keep-alive connections to one ``http://host:port[/prefix]`` and requests over them.

    Args:
        base_url: The server's base URL (``http`` only).
        limit: Connections open at once; more concurrent requests wait for one.
    """

    def __init__(self, base_url: str, *, limit: int = 1000) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// URL")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self._host_header = f"Host: {netloc}\r\n".encode("latin-1")
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = asyncio.Semaphore(limit)
        self._closed = False

    async def close(self) -> None:
        """Close the idle connections; requests in flight close theirs when done."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Response:
        """Send one request and read its whole answer (see the module docstring for the errors)."""
        target = self._prefix + path
        if params:
            target += "?" + urlencode(params)
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_header]
        if body is not None:
            head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        elif method in ("POST", "PUT", "PATCH"):
            head.append(b"Content-Length: 0\r\n")
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(b"\r\n")
        if body:
            head.append(body)
        request = b"".join(head)
        async with self._slots, asyncio.timeout(timeout):
            conn = self._reusable()
            if conn is not None:
                try:
                    return await self._exchange(conn, request, method)
                except (OSError, asyncio.IncompleteReadError) as err:
                    if isinstance(err, asyncio.IncompleteReadError) and err.partial:
                        raise
                    # The server closed the kept-alive connection before answering a byte (e.g. it
                    # restarted): the request did not reach it; send it once more on a new connection.
            reader, writer = await asyncio.open_connection(self._host, self._port)
            return await self._exchange(_Connection(reader, writer), request, method)

    def _reusable(self) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if conn.reader.at_eof() or conn.writer.is_closing() or now - conn.idle_since > _IDLE_S:
                conn.close()
                continue
            return conn
        return None

    async def _exchange(self, conn: _Connection, request: bytes, method: str) -> Response:
        done = False
        try:
            conn.writer.write(request)
            reader = conn.reader
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, _, raw_headers = head.partition(b"\r\n")
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ValueError(f"not an HTTP answer: {status_line[:60]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in raw_headers.split(b"\r\n"):
                if line:
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip()] = value.strip()
            lower = {k.lower(): v for k, v in headers.items()}
            keep = parts[0] == b"HTTP/1.1" and lower.get("connection", "").lower() != "close"
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                data = b""
            elif "chunked" in lower.get("transfer-encoding", "").lower():
                data = await _read_chunked(reader)
            elif "content-length" in lower:
                data = await reader.readexactly(int(lower["content-length"]))
            else:
                data = await reader.read()
                keep = False
            done = keep
            return Response(status, headers, data)
        finally:
            if done and not self._closed:
                conn.idle_since = asyncio.get_running_loop().time()
                self._idle.append(conn)
            else:
                conn.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers (rare) end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
