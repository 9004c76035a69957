"""``kronicle kafka``: manage the local Kafka runtime used for development."""

from __future__ import annotations

import time

import typer

from kronicle.connectors.local_kafka import KAFKA_VERSION, KafkaRuntime, KafkaSetupError

app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka used by start-dev and the tests.")


@app.command()
def fetch() -> None:
    """Fetch the Kafka jars from Maven Central into the cache (a no-op once cached)."""
    started = time.monotonic()
    try:
        runtime = KafkaRuntime.ensure()
    except KafkaSetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Apache Kafka {KAFKA_VERSION} ready in {runtime.libs} ({time.monotonic() - started:.1f}s)")
