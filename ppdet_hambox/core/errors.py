"""Errors raised for bad user input, and the one way every tool reports them.

A ``UserError`` is a file, key, flag or value that cannot be used; its
message names it. Tools run their ``main`` through ``run_tool``: a user error
becomes one line on stderr and exit status 2, anything else keeps its
traceback (a traceback means a bug).
"""
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad user input; the message names the file, key or flag."""


class ConfigError(UserError, ValueError):
    """A config file, key or value that cannot be used; the message names it."""


def run_tool(main, argv=None):
    """Call ``main(argv)``; return its int status (0 for any other result),
    or print a ``UserError`` as one line and return ``EXIT_USER_ERROR``."""
    try:
        result = main(argv)
    except UserError as err:
        print('error: {}'.format(err), file=sys.stderr)
        return EXIT_USER_ERROR
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
