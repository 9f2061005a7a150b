"""Clean stop of a training run on SIGINT (Ctrl-C) or SIGTERM (a scheduler's
preemption, ``kill``, ``paddle.distributed.launch`` stopping the other ranks).

Inside ``stop_on_signals`` either signal interrupts the run at once (between
two Python operations), unwinds it through its ``finally`` blocks (the data
workers are stopped; a checkpoint being written is abandoned, and since
checkpoints are written to a temporary file and renamed, the newest complete
one stays as it was) and raises ``TrainingInterrupted``. That is a
``SystemExit`` with status 128 + the signal number (130, 143): a tool that
does not catch it exits quietly with the conventional status. A signal
ignored when the block starts (``nohup``) stays ignored; outside the main
thread nothing is installed (Python delivers signals to the main thread only).

A process forked inside the block (a data worker) inherits the handler until
it installs its own; there the handler does not raise: SIGINT is left to the
training process, which stops its workers, and SIGTERM ends the child as it
would by default. A signal to the whole process group (Ctrl-C in a terminal)
then gives one line, whenever it comes.
"""
import contextlib
import os
import signal
import threading

__all__ = ['TrainingInterrupted', 'stop_on_signals', 'STOP_SIGNALS']

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(SystemExit):
    """Training stopped by ``signum`` after ``iteration`` completed steps;
    ``last_checkpoint``: the newest complete checkpoint (None if none)."""

    def __init__(self, signum, iteration, last_checkpoint):
        super().__init__(128 + int(signum))
        self.signum, self.iteration, self.last_checkpoint = int(signum), iteration, last_checkpoint
        where = ('the last complete checkpoint is {0} (resume with -r {0})'.format(last_checkpoint)
                 if last_checkpoint else 'no checkpoint was written yet')
        self.message = 'training stopped by {} after iteration {}; {}'.format(
            signal.Signals(self.signum).name, iteration, where)

    def __str__(self):
        return self.message


class _Stop(BaseException):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _stop_handler(owner_pid):
    def handle(signum, frame):
        if os.getpid() == owner_pid:
            raise _Stop(signum)
        if signum != signal.SIGINT:   # a forked child: SIGTERM ends it, SIGINT is the owner's
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
    return handle


@contextlib.contextmanager
def stop_on_signals(make_error):
    """SIGINT / SIGTERM inside the block raise ``make_error(signum)`` (a
    ``TrainingInterrupted``); the previous handlers are restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    handler = _stop_handler(os.getpid())
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)

    def restore():
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
    try:
        yield
    except _Stop as stop:
        restore()
        raise make_error(stop.signum) from None
    finally:
        restore()
