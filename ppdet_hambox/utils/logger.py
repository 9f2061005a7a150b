"""Logging set-up shared by the tools: one format, rank-aware, optional file,
and Paddle's own logging kept out of the way unless asked for."""
import logging
import os
import sys
import warnings

from ppdet_hambox.utils.safe_write import WriteError, describe_os_error

LOGGER_NAME = 'ppdet_hambox'
FORMAT = '[%(asctime)s] %(levelname)s %(name)s: %(message)s'
DATE_FORMAT = '%m/%d %H:%M:%S'

PADDLE_LOG_ENV = 'HAMBOX_PADDLE_LOG'
# Python warnings Paddle raises at start-up, export or training, none of them about
# the user's model or data; matched at the start of the message. No ',' or ':'
# (they separate the fields of PYTHONWARNINGS).
PADDLE_NOISE = ('No ccache found', "Tensor do not have 'place' interface",
                'When training')   # "..., we now always track global mean and variance"


def paddle_log_wanted():
    """True when ``$HAMBOX_PADDLE_LOG`` asks for Paddle's own logging."""
    return os.environ.get(PADDLE_LOG_ENV, '0').strip().lower() not in ('', '0', 'false', 'no')


def quiet_paddle():
    """Hide Paddle's internal logging (glog INFO / WARNING lines, PIR pass
    banners, start-up warnings) unless ``HAMBOX_PADDLE_LOG=1``.

    Must run before ``paddle`` is imported: glog reads ``GLOG_minloglevel``
    when the library loads. The settings go through the environment, so
    child processes (data workers, the deploy script) inherit them. A
    ``GLOG_minloglevel`` the user set is kept. Predictors additionally call
    ``Config.disable_glog_info()`` when this returns True.
    """
    if paddle_log_wanted():
        return False
    os.environ.setdefault('GLOG_minloglevel', '2')
    entries = ['ignore:{}'.format(message) for message in PADDLE_NOISE]
    inherited = [entry for entry in os.environ.get('PYTHONWARNINGS', '').split(',') if entry]
    os.environ['PYTHONWARNINGS'] = ','.join(inherited + [e for e in entries if e not in inherited])
    for message in PADDLE_NOISE:
        warnings.filterwarnings('ignore', message=message)
    return True


class LogFile(logging.FileHandler):
    """The run's log file. A failed write (a full disk) ends the run with one
    ``WriteError`` naming the file, instead of the traceback that logging
    prints and then passes over."""

    def handleError(self, record):
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise WriteError(describe_os_error(err, self.baseFilename)) from None
        super().handleError(record)


def setup_logger(output_file=None, rank=0, level=logging.INFO):
    """Configure the package logger once per process and return it.

    Rank 0 logs at ``level``; other ranks only warnings and errors, so a
    distributed run prints one progress line per step instead of N.
    ``output_file`` (rank 0 only) also receives the log.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level if rank == 0 else logging.WARNING)
    logger.propagate = False
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    if not any(getattr(h, '_hambox_console', False) for h in logger.handlers):
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(formatter)
        console._hambox_console = True
        logger.addHandler(console)
    if output_file and rank == 0:
        output_file = os.path.abspath(output_file)
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            if handler.baseFilename != output_file:  # one log file at a time: the current run's
                logger.removeHandler(handler)
                handler.close()
        if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
            os.makedirs(os.path.dirname(output_file), exist_ok=True)
            handler = LogFile(output_file)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
    return logger


def get_logger(name=None):
    """A child of the package logger (``ppdet_hambox.<name>``)."""
    return logging.getLogger(LOGGER_NAME + ('.' + name if name else ''))
