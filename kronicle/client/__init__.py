"""Public client API (``Client``, ``WorkflowHandle``). Not built yet: see the SDK issue."""
