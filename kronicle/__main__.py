"""``python -m kronicle`` runs the CLI."""

from kronicle.cli import main

main()
