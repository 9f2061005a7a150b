"""Logging set-up shared by the tools: one format, rank-aware, optional file."""
import logging
import os
import sys

LOGGER_NAME = 'ppdet_hambox'
FORMAT = '[%(asctime)s] %(levelname)s %(name)s: %(message)s'
DATE_FORMAT = '%m/%d %H:%M:%S'


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
            handler = logging.FileHandler(output_file)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
    return logger


def get_logger(name=None):
    """A child of the package logger (``ppdet_hambox.<name>``)."""
    return logging.getLogger(LOGGER_NAME + ('.' + name if name else ''))
