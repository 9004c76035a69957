"""Public worker API (``Worker``, ``Replayer``). Not built yet: see the SDK issue."""
