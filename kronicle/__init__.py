"""Kronicle: durable execution for Python on Apache Kafka.

The public API lives in the subpackages: ``kronicle.workflow``,
``kronicle.activity``, ``kronicle.client``, ``kronicle.worker``,
``kronicle.testing``, ``kronicle.common`` and ``kronicle.exceptions``.
"""

from __future__ import annotations

__version__ = "0.1.0"
