"""Load test for deploy/python/serve.py: C clients post one image, N times or for S seconds.

    python deploy/python/loadtest.py --url http://127.0.0.1:8866/detect --image F \\
        [--concurrency 4] [--requests 200 | --duration 30] [--server_pid PID] [--json]

Prints requests per second, p50 / p90 / p99 latency of the answered requests,
the count of each HTTP status (and of connection errors), and, when the server
runs on this machine, its memory (server process plus its workers) before,
at peak and after. Each client keeps one keep-alive connection (standard
library ``http.client``); nothing but the server's answers is timed.
Non-loopback URLs need ``--allow_remote``.
"""
import collections
import http.client
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deploy_io import (DeployError, ToolParser, existing_file, nonneg_int, positive_float,  # noqa: E402
                       positive_int, run_cli)

CONTENT_TYPES = {'.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp',
                 '.bmp': 'image/bmp'}
MIB = 1024.0 * 1024.0


class LoadTestError(DeployError):
    """Bad flags or an unreachable target: one line, exit 2."""


# ----------------------------------------------------------------------------- server memory

def find_server_pid(port):
    """The pid listening on ``port`` on this machine, or None (needs psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        connections = psutil.net_connections(kind='tcp')
    except psutil.AccessDenied:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def server_rss(pid):
    """Resident memory in bytes of ``pid`` and all its descendants, or None."""
    try:
        import psutil
        process = psutil.Process(pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total
    except Exception:  # no psutil, or the server is gone: memory is simply not reported
        return None


class MemorySampler(threading.Thread):
    """Peak server memory, sampled every ``period`` seconds."""

    def __init__(self, pid, period=0.25):
        super().__init__(daemon=True)
        self.pid, self.period, self.peak = pid, period, None
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            rss = server_rss(self.pid)
            if rss is not None:
                self.peak = rss if self.peak is None else max(self.peak, rss)
            self.done.wait(self.period)


# ----------------------------------------------------------------------------- clients

class Target:
    def __init__(self, url, allow_remote):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != 'http' or not parts.hostname:
            raise LoadTestError('--url must be http://HOST:PORT/PATH, got {!r}'.format(url))
        try:
            port = parts.port  # urllib checks the range only here
        except ValueError:
            port = 0
        if port == 0:
            raise LoadTestError('--url {}: the port must be a number between 1 and 65535'.format(url))
        self.host, self.port = parts.hostname, port or 80
        self.path = parts.path or '/'
        if parts.query:
            self.path += '?' + parts.query
        self.local = is_loopback(self.host)
        if not self.local and not allow_remote:
            raise LoadTestError('--url {} is not a loopback address; pass --allow_remote to load a remote server'
                                .format(url))


def is_loopback(host):
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (socket.gaierror, ValueError):
        return False


class Client(threading.Thread):
    """One keep-alive connection; posts until the shared budget is spent."""

    def __init__(self, target, body, headers, budget, timeout):
        super().__init__(daemon=True)
        self.target, self.body, self.headers, self.budget, self.timeout = target, body, headers, budget, timeout
        self.results = []   # (status or exception name, seconds)

    def run(self):
        conn = None
        while self.budget.take():
            if conn is None:
                conn = http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                conn.request('POST', self.target.path, body=self.body, headers=self.headers)
                response = conn.getresponse()
                response.read()
                self.results.append((response.status, time.perf_counter() - started))
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                self.results.append((type(error).__name__, time.perf_counter() - started))
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


class Budget:
    """Either ``requests`` in total or as many as fit in ``duration`` seconds."""

    def __init__(self, requests=None, duration=None):
        self.left, self.deadline = requests, None if duration is None else time.monotonic() + duration
        self.lock = threading.Lock()

    def take(self):
        if self.deadline is not None:
            return time.monotonic() < self.deadline
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def run_clients(target, body, content_type, concurrency, budget, timeout):
    headers = {'Content-Type': content_type}
    clients = [Client(target, body, headers, budget, timeout) for _ in range(concurrency)]
    started = time.perf_counter()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    return [r for c in clients for r in c.results], time.perf_counter() - started


def summarize(results, seconds):
    counts = collections.Counter(str(status) for status, _ in results)
    answered = np.array([s for status, s in results if isinstance(status, int)], np.float64) * 1000.0
    ok = np.array([s for status, s in results if status == 200], np.float64) * 1000.0
    summary = {'requests': len(results), 'seconds': seconds, 'req_per_s': len(results) / seconds if seconds else 0.0,
               'ok_per_s': len(ok) / seconds if seconds else 0.0, 'status_counts': dict(sorted(counts.items()))}
    for name, values in (('latency_ms', answered), ('ok_latency_ms', ok)):
        if len(values):
            summary[name] = {'p50': float(np.percentile(values, 50)), 'p90': float(np.percentile(values, 90)),
                             'p99': float(np.percentile(values, 99)), 'max': float(values.max())}
    return summary


def format_summary(summary):
    rows = ['{requests} requests in {seconds:.1f} s: {req_per_s:.2f} req/s ({ok_per_s:.2f} answered 200 per s)'
            .format(**summary),
            'status: ' + ', '.join('{} x{}'.format(k, v) for k, v in summary['status_counts'].items())]
    for name in ('latency_ms', 'ok_latency_ms'):
        if name in summary:
            rows.append('{:<14} p50 {p50:8.1f}  p90 {p90:8.1f}  p99 {p99:8.1f}  max {max:8.1f}'.format(
                name, **summary[name]))
    memory = summary.get('server_memory_mib')
    if memory:
        rows.append('server memory (pid {pid} + workers, RSS MiB): before {before:.1f}, peak {peak:.1f}, '
                    'after {after:.1f}'.format(**memory))
    elif 'server_memory_note' in summary:
        rows.append('server memory: ' + summary['server_memory_note'])
    return '\n'.join(rows)


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = ToolParser(description='Load test for the HAMBox HTTP service.')
    parser.add_argument('--url', default='http://127.0.0.1:8866/detect')
    parser.add_argument('--image', required=True, type=existing_file, help='image file posted by every request')
    parser.add_argument('--content_type', help='default: from the file extension, else application/octet-stream')
    parser.add_argument('--concurrency', type=positive_int, default=4, help='parallel clients')
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument('--requests', type=positive_int, help='total requests (default 100)')
    budget.add_argument('--duration', type=positive_float, help='seconds to keep sending')
    parser.add_argument('--warmup', type=nonneg_int, default=4, help='untimed requests first, one per client at most')
    parser.add_argument('--timeout', type=positive_float, default=60.0, help='seconds per request')
    parser.add_argument('--server_pid', type=positive_int, help='server pid for memory (default: found by the port)')
    parser.add_argument('--allow_remote', action='store_true', help='allow a non-loopback --url')
    parser.add_argument('--json', action='store_true', help='also print the summary as one JSON line')
    args = parser.parse_args(argv)
    if args.requests is None and args.duration is None:
        args.requests = 100
    return args


def main(argv=None):
    args = parse_args(argv)
    target = Target(args.url, args.allow_remote)
    if not os.path.isfile(args.image):
        raise LoadTestError('--image: no such file {}'.format(args.image))
    with open(args.image, 'rb') as f:
        body = f.read()
    content_type = args.content_type or CONTENT_TYPES.get(os.path.splitext(args.image)[1].lower(),
                                                          'application/octet-stream')
    pid = args.server_pid or (find_server_pid(target.port) if target.local else None)
    before_warmup = server_rss(pid) if pid else None
    if args.warmup:
        warm, _ = run_clients(target, body, content_type, min(args.concurrency, args.warmup),
                              Budget(requests=args.warmup), args.timeout)
        if not any(status == 200 for status, _ in warm):
            raise LoadTestError('{} answered no warm-up request with 200: {}'.format(
                args.url, ', '.join(sorted({str(s) for s, _ in warm}))))
    before = server_rss(pid) if pid else None
    sampler = MemorySampler(pid) if pid else None
    if sampler:
        sampler.start()
    results, seconds = run_clients(target, body, content_type, args.concurrency,
                                   Budget(args.requests, args.duration), args.timeout)
    summary = summarize(results, seconds)
    summary.update({'url': args.url, 'image': args.image, 'image_bytes': len(body), 'concurrency': args.concurrency})
    if sampler:
        sampler.done.set()
        sampler.join()
        after = server_rss(pid)
        if None not in (before_warmup, before, after):
            summary['server_memory_mib'] = {'pid': pid, 'before_warmup': before_warmup / MIB,
                                            'before': before / MIB, 'peak': max(sampler.peak or 0, after) / MIB,
                                            'after': after / MIB}
    if 'server_memory_mib' not in summary:
        summary['server_memory_note'] = ('not measured (server not on this machine, not found by its port, '
                                         'or psutil missing; --server_pid helps)')
    print(format_summary(summary))
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    sys.exit(run_cli(main))
