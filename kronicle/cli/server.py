"""``kronicle server``: run the local development stack."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from kronicle._memory import AllocatorOptions, tune_allocator
from kronicle.connectors.dev_stack import DevStack
from kronicle.connectors.local_kafka import BrokerStartError, KafkaSetupError
from kronicle.state.store import StoreOptions

app = typer.Typer(no_args_is_help=True, help="Run Kronicle servers.")

_ALLOCATOR = AllocatorOptions()


@app.command("start-dev")
def start_dev(
    port: Annotated[int, typer.Option(help="Port of the HTTP frontend.")] = 7333,
    kafka: Annotated[
        str | None, typer.Option(help="Use this Kafka (HOST:PORT) instead of starting a local broker.")
    ] = None,
    kafka_port: Annotated[int, typer.Option(help="Port of the local broker (0 = any free port).")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep broker data and engine state here across restarts (default: temporary).")
    ] = None,
    namespace: Annotated[str, typer.Option(help="The namespace to create and serve.")] = "default",
    partitions: Annotated[int, typer.Option(help="Partitions of the namespace's topics.")] = 4,
    state_cache_mb: Annotated[
        int,
        typer.Option(
            min=8,
            help="RocksDB memory of the engine's state in MiB (block cache, half of it for memtables).",
        ),
    ] = 64,
    malloc_arena_max: Annotated[
        int,
        typer.Option(
            min=0,
            help="Most glibc malloc arenas of this process (0: glibc's default, 8 per core); fewer keep freed"
            " memory reusable across threads instead of resident per thread.",
        ),
    ] = _ALLOCATOR.arena_max,
    malloc_trim_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="Give freed heap memory back to the OS (glibc malloc_trim) this often (0: never).",
        ),
    ] = _ALLOCATOR.trim_interval_s,
    demo: Annotated[bool, typer.Option(help="Run a demo workflow once up and print its history.")] = False,
    exit_after_demo: Annotated[bool, typer.Option(help="Stop once the demo has run (for scripts and tests).")] = False,
) -> None:
    """Run the whole local stack: Kafka (unless --kafka), the engine, visibility and the frontend, until Ctrl-C."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        store = StoreOptions(block_cache_bytes=state_cache_mb << 20, memtable_bytes=state_cache_mb << 19)
        # Before anything starts a thread: glibc fixes a thread's arena at its first allocation.
        with tune_allocator(AllocatorOptions(arena_max=malloc_arena_max, trim_interval_s=malloc_trim_seconds)):
            asyncio.run(_serve(port, kafka, kafka_port, data_dir, namespace, partitions, store, demo, exit_after_demo))
    except (KafkaSetupError, BrokerStartError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


async def _serve(
    port: int,
    kafka: str | None,
    kafka_port: int,
    data_dir: Path | None,
    namespace: str,
    partitions: int,
    store_options: StoreOptions,
    demo: bool,
    exit_after_demo: bool,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    stack = DevStack(
        kafka=kafka, kafka_port=kafka_port or None, data_dir=data_dir, port=port, namespace=namespace,
        partitions=partitions, store_options=store_options,
    )  # fmt: skip
    await stack.start()
    try:
        typer.echo(f"Kronicle is up in {time.monotonic() - started:.1f}s")
        typer.echo(f"  frontend   http://{stack.frontend_address}  (Client.connect({stack.frontend_address!r}))")
        typer.echo(f"  kafka      {stack.kafka_bootstrap_servers}")
        typer.echo(f"  namespace  {namespace}")
        typer.echo(f"  metrics    http://{stack.frontend_address}/metrics")
        typer.echo(f"  visibility {stack.visibility_url}  (kronicle workflow list / count)")
        typer.echo(f"  data       {stack.data_dir}")
        if demo:
            from kronicle.cli import workflow as workflow_cli
            from kronicle.cli._demo import run_demo

            workflow_id, result = await run_demo(stack.frontend_address, namespace)
            typer.echo(f"demo workflow {workflow_id} returned {result!r}; its history:")
            await loop.run_in_executor(
                None,
                functools.partial(workflow_cli.show, workflow_id, address=stack.frontend_address, namespace=namespace),
            )
        if not exit_after_demo:
            typer.echo("Press Ctrl-C to stop.")
            await stop.wait()
    finally:
        typer.echo("stopping ...")
        await stack.stop()
        typer.echo("stopped.")
