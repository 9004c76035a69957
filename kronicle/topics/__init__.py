"""Topic names, partitioning and admin (creation, co-partitioning checks)."""
