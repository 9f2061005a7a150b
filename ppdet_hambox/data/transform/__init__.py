"""Per-sample and batch transforms."""
