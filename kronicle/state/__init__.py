"""RocksDB state stores, changelog, checkpoints and restore."""
