"""Testing support, shaped like ``temporalio.testing``.

- :class:`WorkflowEnvironment`: a real local Kronicle (Kafka, engine, frontend)
  with ``env.client``; :meth:`WorkflowEnvironment.start_time_skipping` runs the
  engine off a clock that jumps to the next timer whenever nothing is runnable.
- :class:`ActivityEnvironment`: run an activity function with an activity
  context (info, heartbeats, cancellation) and no Kafka at all.

See ``docs/testing.md``. ``kronicle.testing.history_check`` checks histories
for the engine's invariants (used by the fault tests).
"""

from __future__ import annotations

from kronicle.testing._activity import ActivityEnvironment, default_info
from kronicle.testing._workflow import WorkflowEnvironment

__all__ = ["ActivityEnvironment", "WorkflowEnvironment", "default_info"]
