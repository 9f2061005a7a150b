"""Stop a distributed training run whose peers are gone.

A collective waits for every process, so when a node dies (power, network,
``kill -9``) the others may wait a long time: gloo gives up after about
30 s, NCCL only after ``PADDLE_PG_TIMEOUT`` (30 min by default) or never.
``PeerWatchdog`` bounds that wait on every backend with heartbeats through
the rendezvous store that ``paddle.distributed.launch`` already runs on
global rank 0 (``PADDLE_MASTER``): every rank bumps its counter every
``timeout / 10`` s; global rank 0 watches every counter, the other ranks
watch rank 0's. A counter that does not move for ``timeout`` s, or a store
that does not answer for that long, ends this process at once (exit status
``EXIT_LOST_PEER``) after logging which rank was lost and the checkpoint to
resume from. Rank 0 ending takes its store with it, so the other ranks
follow within a few seconds. The heartbeats run in their own threads, so a
rank blocked in a collective or busy evaluating still beats.

A peer's connection that closes (the peer was killed) can make gloo abort
this process from C++ before Python sees an error, so the line about the
checkpoint to resume from is written by a small reporter process that
reads a pipe from this one: on end of file without ``done`` (this process
died abnormally) it prints the last status line, naming the newest
checkpoint it finds, and exits.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

from ppdet_hambox.utils.checkpoint import CHECKPOINT_SUFFIX, latest_checkpoint
from ppdet_hambox.utils.logger import get_logger

__all__ = ['PeerWatchdog', 'EXIT_LOST_PEER', 'is_communication_error', 'lost_peer_message']

EXIT_LOST_PEER = 4
KEY = 'ppdet_hambox/heartbeat/{}'
STORE_GRACE_S = 10  # a store that fails (rank 0 ended) is a loss only if this process is still training
# What gloo, NCCL and the TCP store say when a peer is gone (gloo's and NCCL's
# messages carry their names: '[.../gloo/transport/tcp/pair.cc:584] TIMEOUT').
COMMUNICATION_MARKERS = ('gloo', 'nccl', 'connection reset', 'connection closed', 'connection refused',
                         'broken pipe', 'tcp receive error', 'tcp send error')

logger = get_logger('engine')


def store_endpoint():
    """``(host, port)`` of the rendezvous store, found as ``init_parallel_env`` finds it."""
    if os.environ.get('MASTER_ADDR') and os.environ.get('MASTER_PORT'):
        return os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT'])
    endpoint = (os.environ.get('PADDLE_MASTER')
                or os.environ.get('PADDLE_TRAINER_ENDPOINTS', '').split(',')[0])
    if ':' not in endpoint:
        return None
    host, port = endpoint.rsplit(':', 1)
    return host, int(port)


def is_communication_error(err):
    """True for the errors a collective raises when a peer is gone."""
    text = str(err).lower()
    return any(marker in text for marker in COMMUNICATION_MARKERS)


RESUME_FROM = 'the last complete checkpoint is {0} (resume the whole run with -r {0})'
NO_CHECKPOINT = 'no checkpoint in {} on this node (global rank 0 writes them)'
# The reporter: stdlib only (starts in milliseconds), reads status lines until
# 'done' (a normal end: silent) or end of file (its parent died: print the last).
# Ctrl-C reaches it with its parent, which then ends it with 'done'.
REPORTER = """
import glob, json, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
status = None
for line in sys.stdin:
    if line.strip() == 'done':
        sys.exit(0)
    status = json.loads(line)
if status:
    found = sorted(glob.glob(status['pattern']))
    where = status['found'].format(found[-1]) if found else status['none']
    sys.stderr.write('error: ' + status['text'].replace('{where}', where) + '\\n')
"""


def _where(save_dir):
    last = latest_checkpoint(save_dir)
    return RESUME_FROM.format(last) if last else NO_CHECKPOINT.format(save_dir)


def lost_peer_message(rank, iteration, save_dir, reason, where=None):
    """One line: what was lost, where this process stopped, what to resume."""
    return 'distributed training stopped on global rank {} ({}) after iteration {}: {}; {}'.format(
        rank, socket.gethostname(), iteration, reason, _where(save_dir) if where is None else where)


class PeerWatchdog:
    """Heartbeats of global rank ``rank`` of ``world_size``; ``iteration()``
    tells where training is, ``save_dir`` holds the checkpoints. ``start()``,
    then ``stop()`` once this rank leaves its training loop."""

    def __init__(self, rank, world_size, timeout, iteration, save_dir):
        self.rank, self.world_size, self.timeout = rank, world_size, float(timeout)
        self.interval = max(0.5, self.timeout / 10)
        self.iteration, self.save_dir = iteration, save_dir
        self.reporter = None
        self.send_lock = threading.Lock()
        self.watched = list(range(1, world_size)) if rank == 0 else [0]
        self.stopped = threading.Event()
        self.seen = {}           # rank -> (counter, when it last moved)
        self.last_answer = None  # when the store last answered
        self.store_error = None  # (when, text) of the first failed store call
        self.store = None

    def start(self):
        endpoint = store_endpoint()
        if endpoint is None:
            logger.warning('no rendezvous store in the environment (PADDLE_MASTER): no heartbeat '
                           'watchdog; a lost node is noticed only by the collectives\' own timeouts')
            return self
        from paddle.base import core
        try:
            self.store = core.TCPStore(endpoint[0], endpoint[1], False, self.world_size, int(self.timeout) + 60)
        except Exception as err:  # paddle raises several types
            logger.warning('cannot reach the rendezvous store %s:%d (%s): no heartbeat watchdog',
                           endpoint[0], endpoint[1], err)
            return self
        self.reporter = subprocess.Popen([sys.executable, '-c', REPORTER], stdin=subprocess.PIPE, text=True)
        self._report()
        now = time.time()
        self.last_answer = now
        self.seen = {r: (None, now) for r in self.watched}
        for target in (self._beat, self._judge):
            threading.Thread(target=target, name='peer-watchdog', daemon=True).start()
        logger.info('peer watchdog: a process silent for %g s stops the run', self.timeout)
        return self

    def stop(self):
        self.stopped.set()
        if self.reporter is not None:
            self._send('done')
            with self.send_lock:
                self.reporter.stdin.close()
            self.reporter.wait()

    def _send(self, line):
        with self.send_lock:
            try:
                self.reporter.stdin.write(line + '\n')
                self.reporter.stdin.flush()
            except (OSError, ValueError):  # the reporter is gone or closed
                pass

    def _report(self):
        """The line the reporter prints if this process dies now."""
        text = lost_peer_message(self.rank, self.iteration(), self.save_dir,
                                 'this process ended abnormally (the lines above say why: a failed '
                                 'collective means a lost peer)', where='{where}')
        self._send(json.dumps({'text': text, 'pattern': os.path.join(self.save_dir, '*' + CHECKPOINT_SUFFIX),
                               'found': RESUME_FROM, 'none': NO_CHECKPOINT.format(self.save_dir)}))

    def _beat(self):
        """Store calls only: they may block for as long as a frozen peer does."""
        try:
            while not self.stopped.is_set():
                self.store.add(KEY.format(self.rank), 1)
                for rank in self.watched:
                    count = self.store.add(KEY.format(rank), 0)
                    if count != self.seen[rank][0]:
                        self.seen[rank] = (count, time.time())
                self.last_answer = time.time()
                self.stopped.wait(self.interval)
        except Exception as err:  # the store's host ended: paddle raises ValueError / RuntimeError
            self.store_error = (time.time(), str(err).strip().splitlines()[0])

    def _judge(self):
        """Never blocks on the network, so it notices a store that hangs."""
        while not self.stopped.wait(self.interval):
            reason = self._verdict(time.time())
            if self.stopped.is_set():
                break
            if reason:
                self._end(reason)
            self._report()

    def _verdict(self, now):
        if self.store_error and now - self.store_error[0] >= min(STORE_GRACE_S, self.timeout):
            return 'the rendezvous store on global rank 0 failed ({}): that process or its node is ' \
                   'gone'.format(self.store_error[1])
        if now - self.last_answer > self.timeout:
            return 'the rendezvous store on global rank 0 did not answer for {:.0f} s'.format(
                now - self.last_answer)
        silent = sorted(r for r, (_, moved) in self.seen.items() if now - moved > self.timeout)
        if silent:
            return 'no heartbeat from global rank(s) {} for {:g} s (node lost, frozen or cut off)'.format(
                ', '.join(map(str, silent)), self.timeout)
        return None

    def _end(self, reason):
        self._send('done')
        logger.error('%s', lost_peer_message(self.rank, self.iteration(), self.save_dir, reason))
        for handler in logger.parent.handlers:
            handler.flush()
        sys.stdout.flush()
        os._exit(EXIT_LOST_PEER)  # the main thread may be stuck in a collective: no unwinding
