"""``kronicle server``: run the local development stack."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from kronicle.connectors.local_kafka import BrokerStartError, KafkaSetupError, LocalBroker

app = typer.Typer(no_args_is_help=True, help="Run Kronicle servers.")


@app.command("start-dev")
def start_dev(
    kafka_port: Annotated[int, typer.Option("--kafka-port", help="Port of the local broker (0 = any free port).")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Keep broker data here across restarts (default: temporary).")
    ] = None,
    smoke: Annotated[bool, typer.Option(help="Run a transactional round-trip once the broker is up.")] = True,
    exit_after_smoke: Annotated[bool, typer.Option(help="Stop right after the smoke round-trip.")] = False,
) -> None:
    """Start a local single-broker Kafka and keep it up until Ctrl-C or SIGTERM.

    The engine, frontend and UI join this command as they are built; today it
    runs the broker and a transactional smoke round-trip against it.
    """
    started = time.monotonic()
    try:
        broker = LocalBroker(kafka_port or None, data_dir=data_dir)
        broker.start()
    except (KafkaSetupError, BrokerStartError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        typer.echo(f"Kafka {broker.bootstrap_servers} ready in {time.monotonic() - started:.1f}s")
        typer.echo(f"  broker log: {broker.log_file(1)}")
        if smoke:
            took = smoke_round_trip(broker.bootstrap_servers)
            typer.echo(f"  smoke: transactional produce + read_committed consume OK ({took * 1000:.0f} ms)")
        if not exit_after_smoke:
            typer.echo("Press Ctrl-C to stop.")
            stop.wait()
    finally:
        typer.echo("stopping Kafka ...")
        broker.stop()
        typer.echo("stopped.")


def smoke_round_trip(bootstrap: str, timeout: float = 30.0) -> float:
    """Produce one record in a transaction and read it back with read_committed.

    Returns:
        Seconds the round-trip took.

    Raises:
        RuntimeError: the record did not come back within ``timeout``.
    """
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    started = time.monotonic()
    topic = "kronicle._smoke"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    if topic not in existing:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    payload = uuid.uuid4().bytes
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"kronicle-smoke-{uuid.uuid4()}"})
    producer.init_transactions(timeout)
    producer.begin_transaction()
    producer.produce(topic, value=payload)
    producer.commit_transaction(timeout)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kronicle-smoke-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.value() == payload:
                return time.monotonic() - started
    finally:
        consumer.close()
    raise RuntimeError(f"smoke record did not come back from {bootstrap} within {timeout:.0f}s")
