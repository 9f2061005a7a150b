"""Errors raised for bad user input."""


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message names it."""
