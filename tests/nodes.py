"""Multi-node ``paddle.distributed.launch`` runs on one machine, for tests.

Each "node" is a launcher started with ``--nnodes N --master 127.0.0.1:PORT
--rank R`` in its own working folder (``<root>/node<R>``, logs in its
``log/``), as on separate machines without a shared disk. Every process of
the run (launchers, ranks, data workers) is tracked while it lives, so
``stop()`` kills all of them even after a launcher died; use ``Nodes`` as a
context manager.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import psutil


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Nodes:
    """``nnodes`` launchers of ``nproc`` processes running ``tools/train.py ARGS``;
    ``node_args[r]`` (optional) are extra arguments for node ``r`` only and
    ``node_code[r]`` another copy of the repository (``tools/`` and the
    package) for node ``r`` to run."""

    def __init__(self, root, repo_root, args, nnodes=2, nproc=1, node_args=None, node_code=None):
        self.root, self.repo_root = root, repo_root
        self.port = free_port()
        self.launchers, self.seen = [], {}
        try:
            self._start(args, nnodes, nproc, node_args or {}, node_code or {})
        except BaseException:
            self.stop()
            raise
        self.track()

    def _start(self, args, nnodes, nproc, node_args, node_code):
        for rank in range(nnodes):
            cwd = self.node_dir(rank)
            cwd.mkdir(parents=True, exist_ok=True)
            code = node_code.get(rank, self.repo_root)
            command = [sys.executable, '-m', 'paddle.distributed.launch', '--nnodes', str(nnodes),
                       '--master', '127.0.0.1:{}'.format(self.port), '--rank', str(rank),
                       '--nproc_per_node', str(nproc), '--log_dir', 'log',
                       str(code / 'tools' / 'train.py')] + list(args) + list(node_args.get(rank, []))
            env = dict(os.environ, PYTHONPATH=str(code))
            with open(str(cwd / 'launcher.out'), 'w') as out:
                self.launchers.append(subprocess.Popen(command, cwd=str(cwd), env=env, stdout=out,
                                                       stderr=subprocess.STDOUT))

    def node_dir(self, rank):
        return self.root / 'node{}'.format(rank)

    def worker_log(self, node, local=0):
        path = self.node_dir(node) / 'log' / 'workerlog.{}'.format(local)
        return path.read_text() if path.exists() else ''

    def track(self):
        """Remember every live process of the run (launchers and descendants)."""
        for launcher in self.launchers:
            try:
                proc = psutil.Process(launcher.pid)
                for p in [proc] + proc.children(recursive=True):
                    self.seen.setdefault(p.pid, p)
            except psutil.NoSuchProcess:
                pass

    def node_processes(self, node):
        """Live processes of one node: its launcher and everything under it."""
        try:
            proc = psutil.Process(self.launchers[node].pid)
            return [p for p in [proc] + proc.children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            return []

    def alive(self, processes=None):
        """The tracked (or given) processes still running (zombies count as ended)."""
        live = []
        for p in (self.seen.values() if processes is None else processes):
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    live.append(p)
            except psutil.NoSuchProcess:
                pass
        return live

    def wait(self, timeout, until=None):
        """Wait until every launcher ended (or ``until()`` is true); returns
        the launchers' exit codes (None for those still running)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.track()
            for launcher in self.launchers:
                launcher.poll()
            if until is not None and until():
                break
            if until is None and all(launcher.returncode is not None for launcher in self.launchers):
                break
            time.sleep(0.3)
        return [launcher.poll() for launcher in self.launchers]

    def kill_node(self, node, sig=signal.SIGKILL):
        """Send ``sig`` to a node's launcher and everything under it at once."""
        processes = self.node_processes(node)
        for p in processes:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        return processes

    def stop(self):
        self.track()
        for p in self.alive():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        for launcher in self.launchers:
            if launcher.poll() is None:
                launcher.kill()
            launcher.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
