"""Errors raised for bad user input, and the one way every tool reports them.

A ``UserError`` is a file, key, flag or value that cannot be used; its
message names it. Tools run their ``main`` through ``run_tool``: a user error
becomes one line on stderr and exit status 2, anything else keeps its
traceback (a traceback means a bug). Three more things are not bugs and get
one line too: the machine refusing a file (a full disk, a read-only folder,
a path that is a file; exit 2), running out of memory for the sizes asked
(exit 2) and Ctrl-C (exit 130, as a shell reports it).
"""
import errno
import signal
import sys

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
# OSErrors that describe the user's disk or paths, not a bug of the tool.
ENVIRONMENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    'ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'ENOTDIR', 'EISDIR', 'EFBIG', 'ENAMETOOLONG', 'ENOENT',
    'ELOOP')
    if hasattr(errno, name))


class UserError(Exception):
    """Bad user input; the message names the file, key or flag."""


class ConfigError(UserError, ValueError):
    """A config file, key or value that cannot be used; the message names it."""


def one_line(text):
    """``text`` with line breaks and control characters escaped, so it stays one line."""
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _stop_signal_behind(err):
    """The signal number when ``err`` was raised while a stop (Ctrl-C, or an
    exception carrying ``signum`` such as the trainer's) was being handled."""
    seen = set()
    context = err.__context__
    while context is not None and id(context) not in seen:
        seen.add(id(context))
        if isinstance(context, KeyboardInterrupt):
            return signal.SIGINT.value
        if isinstance(getattr(context, 'signum', None), int):
            return context.signum
        context = context.__context__
    return None


def run_tool(main, argv=None):
    """Call ``main(argv)``; return its int status (0 for any other result).
    A ``UserError`` or an ``OSError`` of the user's disk (``ENVIRONMENT_ERRNOS``)
    is one ``error:`` line and ``EXIT_USER_ERROR``; Ctrl-C (``KeyboardInterrupt``,
    or a ``SystemExit`` carrying a message such as ``TrainingInterrupted``)
    is one ``stopped:`` line and its status (130 for Ctrl-C), and so is an
    error raised while such a stop was being handled."""
    try:
        result = main(argv)
    except UserError as err:
        print('error: {}'.format(one_line(err)), file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS or (err.errno == errno.ENOENT and err.filename is None):
            raise
        where = err.filename if err.filename is not None else ''
        print('error: {}{}'.format('{}: '.format(where) if where else '', one_line(err.strerror or err)),
              file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError as err:  # sizes the machine cannot hold (a huge batch, image or count), like a full disk
        print('error: out of memory{}; use smaller sizes (batch, images, counts)'.format(
            ': {}'.format(one_line(err)) if str(err) else ''), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print('stopped: interrupted by Ctrl-C (SIGINT); files being written were left out', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        signum = _stop_signal_behind(err)
        if signum is None:
            raise
        # e.g. Paddle's DataLoader reporting a worker that the same SIGTERM to the group ended
        print('stopped: interrupted by {}; files being written were left out'.format(
            signal.Signals(signum).name), file=sys.stderr)
        return 128 + signum
    except SystemExit as stop:  # argparse (its one line is printed), or a stop such as TrainingInterrupted
        message = getattr(stop, 'message', None)
        if message is not None:
            print('stopped: {}'.format(one_line(message)), file=sys.stderr)
        if isinstance(stop.code, int) or stop.code is None:
            return stop.code or 0
        raise
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
