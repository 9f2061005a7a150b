"""Registry, config loading and config errors."""
