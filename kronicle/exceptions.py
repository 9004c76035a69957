"""Public error tree. Not built yet: see the SDK issue."""
