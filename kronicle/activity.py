"""Public activity API (``@activity.defn``, ``heartbeat``, ``info``). Not built yet: see the SDK issue."""
