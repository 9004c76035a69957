"""Runnable samples of the Kronicle SDK, shaped like Temporal's Python samples.

Each module is one small program: start the local stack with ``make dev``, then
run ``python -m samples.<name>`` (``KRONICLE_ADDRESS`` overrides
``localhost:7333``). ``tests/samples/`` runs every sample against a real stack
in ``make test``.
"""
