"""``kronicle engine``: run an engine process (the partition processors of a namespace)."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from kronicle._memory import AllocatorOptions, start_tuning

app = typer.Typer(no_args_is_help=True, help="Run the engine's partition processors.")

_ALLOCATOR = AllocatorOptions()


@app.command("run")
def run(
    bootstrap: Annotated[str, typer.Option("--kafka", help="Kafka bootstrap servers.")],
    state_dir: Annotated[Path, typer.Option(help="Directory for the RocksDB state stores.")],
    namespace: Annotated[str, typer.Option(help="Namespace whose commands this process applies.")] = "default",
    instance_id: Annotated[
        str, typer.Option(help="Stable name of this process; its transactional id derives from it.")
    ] = "",
    handler: Annotated[
        str, typer.Option(help="Logic to run: 'counter' (the reference handler) or 'workflow'.")
    ] = "counter",
    standby: Annotated[bool, typer.Option(help="Keep warm standby copies of partitions owned by others.")] = False,
    max_batch_records: Annotated[int, typer.Option(help="Most commands per transaction.")] = 1000,
    partitions: Annotated[
        int, typer.Option(help="Partitions of the namespace's topics if the workflow engine must create them.")
    ] = 4,
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "INFO",
    malloc_arena_max: Annotated[
        int, typer.Option(min=0, help="Most glibc malloc arenas of this process (0: glibc's default).")
    ] = _ALLOCATOR.arena_max,
    malloc_trim_seconds: Annotated[
        float,
        typer.Option(min=0, help="Give freed heap memory back to the OS (glibc malloc_trim) this often (0: never)."),
    ] = _ALLOCATOR.trim_interval_s,
) -> None:
    """Apply a namespace's commands until SIGTERM or Ctrl-C."""
    # First, before any thread exists: glibc fixes a thread's malloc arena at its first allocation.
    start_tuning(AllocatorOptions(arena_max=malloc_arena_max, trim_interval_s=malloc_trim_seconds))
    from kronicle.engine.counter import CounterHandler, counter_registry
    from kronicle.engine.processor import Processor, ProcessorConfig
    from kronicle.topics import NamespaceTopics

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if handler not in ("counter", "workflow"):
        typer.echo(f"error: unknown handler {handler!r}; available: counter, workflow", err=True)
        raise typer.Exit(2)
    name = instance_id or socket.gethostname()
    if handler == "workflow":
        _run_workflow_engine(bootstrap, state_dir, namespace, name, standby, max_batch_records, partitions)
        return
    codec = counter_registry()
    config = ProcessorConfig(
        bootstrap_servers=bootstrap,
        namespace=namespace,
        state_dir=state_dir,
        instance_id=name,
        standby_replicas=standby,
        max_batch_records=max_batch_records,
    )
    processor = Processor(config, CounterHandler(NamespaceTopics(namespace).history, codec.encode), codec)

    def _stop(signum: int, frame: FrameType | None) -> None:
        processor.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    processor.start()
    typer.echo(f"engine {config.instance_id} running namespace {namespace!r} on {bootstrap}", err=True)
    processor.run_forever()


def _run_workflow_engine(
    bootstrap: str,
    state_dir: Path,
    namespace: str,
    instance_id: str,
    standby: bool,
    max_batch_records: int,
    partitions: int,
) -> None:
    # EngineService, not a bare Processor: it creates missing namespace topics and the
    # task-queue topics the workflow handler dispatches to.
    from kronicle.engine.service import EngineService

    service = EngineService(
        bootstrap,
        namespace,
        state_dir=state_dir,
        partitions=partitions,
        instance_id=instance_id,
        standby_replicas=standby,
        max_batch_records=max_batch_records,
    )
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Another process may own every partition (it has standbys only here), so do not wait for all.
    service.start(wait_for_all_partitions=False, timeout=120)
    typer.echo(f"workflow engine {instance_id} running namespace {namespace!r} on {bootstrap}", err=True)
    while not stopping.wait(0.5):
        if service.failure is not None:
            typer.echo(f"error: the engine stopped: {service.failure}", err=True)
            raise typer.Exit(1)
    service.stop()
