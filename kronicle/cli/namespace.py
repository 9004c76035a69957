"""``kronicle namespace``: create, describe, list and update namespaces through the frontend.

Mirrors ``temporal operator namespace``. Durations (``--retention``) are
written like ``72h``, ``7d``, ``30m`` or ``1d12h``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from kronicle.client._http import Transport
from kronicle.exceptions import RPCError

__all__ = ["app", "parse_duration_ms"]

app = typer.Typer(no_args_is_help=True, help="Create, describe, list and update namespaces.")

T = TypeVar("T")

Address = Annotated[str, typer.Option("--address", help="Frontend address host:port.", envvar="KRONICLE_ADDRESS")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table or json.")]
Retention = Annotated[
    str | None, typer.Option("--retention", help="How long closed runs are kept, e.g. 72h or 7d (min 1m).")
]

_DEFAULT_ADDRESS = "localhost:7333"
_UNITS_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}
_DURATION = re.compile(r"(\d+)([dhms])")


def parse_duration_ms(text: str) -> int:
    """``72h``, ``7d``, ``1d12h``, ``90s`` in milliseconds.

    Raises:
        ValueError: it is not such a duration.
    """
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration; write it like 72h, 7d, 30m or 1d12h")
    return sum(int(n) * _UNITS_MS[u] for n, u in parts)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _call(address: str, fn: Callable[[Transport], Awaitable[T]]) -> T:
    async def main() -> T:
        transport = Transport(address)
        try:
            return await fn(transport)
        finally:
            await transport.close()

    try:
        return asyncio.run(main())
    except RPCError as err:
        raise _fail(f"{err.message} [{err.code or err.status.name}]") from err


def _retention_ms(retention: str | None) -> int | None:
    if retention is None:
        return None
    try:
        return parse_duration_ms(retention)
    except ValueError as err:
        raise _fail(str(err), 2) from err


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds") if ms else ""


def _duration(ms: int) -> str:
    days, rest = divmod(ms, 86_400_000)
    hours = rest // 3_600_000
    return f"{days}d{hours}h" if hours else f"{days}d"


def _show(namespaces: list[dict[str, Any]], output: str, title: str, *, single: bool = True) -> None:
    if output == "json":
        typer.echo(json.dumps(namespaces[0] if single else namespaces, indent=2))
        return
    table = Table(title=title)
    for column in ("name", "state", "retention", "partitions", "owner", "description", "created", "served here"):
        table.add_column(column)
    for ns in namespaces:
        table.add_row(
            ns["name"],
            ns["state"],
            _duration(int(ns["retention_ms"])),
            str(ns["partitions"]),
            ns.get("owner_email", ""),
            ns.get("description", ""),
            _time(int(ns.get("created_time_ms") or 0)),
            "yes" if ns.get("served_here") else "",
        )
    Console(width=200, soft_wrap=True).print(table)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Namespace name (a-z, A-Z, 0-9, '.', '_', '-').")],
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    owner_email: Annotated[str, typer.Option("--owner-email", "--email", help="Who owns it.")] = "",
    retention: Retention = None,
    partitions: Annotated[int, typer.Option(help="Partitions of its commands, history and changelog topics.")] = 4,
    address: Address = _DEFAULT_ADDRESS,
    output: OutputOpt = "table",
) -> None:
    """Register a namespace and create its topics."""
    body: dict[str, Any] = {"name": name, "description": description, "owner_email": owner_email}
    body["partitions"] = partitions
    retention_ms = _retention_ms(retention)
    if retention_ms is not None:
        body["retention_ms"] = retention_ms

    async def go(t: Transport) -> dict[str, Any]:
        answer: dict[str, Any] = await t.request("POST", "/api/v1/namespaces", body=body)
        return answer

    _show([_call(address, go)], output, f"Created namespace {name}")


@app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(help="Namespace name.")],
    address: Address = _DEFAULT_ADDRESS,
    output: OutputOpt = "table",
) -> None:
    """Show one namespace."""

    async def go(t: Transport) -> dict[str, Any]:
        answer: dict[str, Any] = await t.request("GET", "/api/v1/namespaces/" + quote(name, safe=""))
        return answer

    _show([_call(address, go)], output, f"Namespace {name}")


@app.command("list")
def list_(address: Address = _DEFAULT_ADDRESS, output: OutputOpt = "table") -> None:
    """List every registered namespace."""

    async def go(t: Transport) -> list[dict[str, Any]]:
        answer = await t.request("GET", "/api/v1/namespaces")
        return list(answer["namespaces"])

    _show(_call(address, go), output, "Namespaces", single=False)


@app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="Namespace name.")],
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    owner_email: Annotated[str | None, typer.Option("--owner-email", "--email", help="Who owns it.")] = None,
    retention: Retention = None,
    state: Annotated[str | None, typer.Option(help="REGISTERED or DEPRECATED.")] = None,
    address: Address = _DEFAULT_ADDRESS,
    output: OutputOpt = "table",
) -> None:
    """Change a namespace's description, owner, retention or state."""
    body: dict[str, Any] = {}
    if description is not None:
        body["description"] = description
    if owner_email is not None:
        body["owner_email"] = owner_email
    if state is not None:
        body["state"] = state.upper()
    retention_ms = _retention_ms(retention)
    if retention_ms is not None:
        body["retention_ms"] = retention_ms
    if not body:
        raise _fail("nothing to change; pass --description, --owner-email, --retention or --state", 2)

    async def go(t: Transport) -> dict[str, Any]:
        answer: dict[str, Any] = await t.request("PATCH", "/api/v1/namespaces/" + quote(name, safe=""), body=body)
        return answer

    _show([_call(address, go)], output, f"Updated namespace {name}")
