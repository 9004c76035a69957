"""The ``kronicle`` command line: one small module per command group."""

from __future__ import annotations

import typer

from kronicle.cli import engine, kafka, namespace, server, workflow

app = typer.Typer(no_args_is_help=True, help="Kronicle: durable execution on Apache Kafka.")
app.add_typer(server.app, name="server")
app.add_typer(kafka.app, name="kafka")
app.add_typer(engine.app, name="engine")
app.add_typer(workflow.app, name="workflow")
app.add_typer(namespace.app, name="namespace")


def main() -> None:
    """Entry point of the ``kronicle`` console script."""
    app()
