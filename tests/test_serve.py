"""deploy/python/serve.py and loadtest.py: a real server on a free local port,
a real HTTP client (httpx), the tiny exported model of hambox_eval_helpers."""
import ast
import ctypes
import json
import pathlib
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import cv2
import numpy as np
import pytest

httpx = pytest.importorskip('httpx', reason='the serve tests need httpx (pip install -e .[dev])')
psutil = pytest.importorskip('psutil', reason='the serve tests need psutil (pip install -e .[dev])')
pytest.importorskip('fastapi', reason='serve.py needs fastapi and uvicorn (pip install -e .[serve])')
pytest.importorskip('uvicorn', reason='serve.py needs fastapi and uvicorn (pip install -e .[serve])')

from hambox_eval_helpers import REPO_ROOT, exported_model_dir, val_images  # noqa: E402
from test_export import load_deploy  # noqa: E402

SERVE = REPO_ROOT / 'deploy' / 'python' / 'serve.py'
LOADTEST = REPO_ROOT / 'deploy' / 'python' / 'loadtest.py'
MAX_BYTES = 1024 * 1024
START_TIMEOUT = 120.0
HEADER_TIMEOUT = 2.0


def die_with_parent():
    """Run in the child before exec: the kernel kills the server if pytest dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class Server:
    """serve.py in a subprocess on a free port (``--port 0``, read back from its log)."""

    def __init__(self, tmp_dir, *flags):
        self.log_path = pathlib.Path(tmp_dir) / 'serve.log'
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVE), '--model_dir', str(exported_model_dir()), '--port', '0', *flags],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.base = 'http://127.0.0.1:{}'.format(self._port())
        self.before_ready = self._wait_ready()

    def _port(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = re.search(r'listening on http://127\.0\.0\.1:(\d+)', self.log_path.read_text())
            if match:
                return int(match.group(1))
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            time.sleep(0.02)
        raise AssertionError('serve.py did not start: ' + self.log_path.read_text()[-3000:])

    def _wait_ready(self):
        """The answers of /health and /detect seen before /health said 200."""
        seen = []
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
                try:
                    health = client.get('/health')
                except httpx.TransportError:
                    time.sleep(0.02)
                    continue
                if health.status_code == 200:
                    return seen
                detect = client.post('/detect', content=val_images()[0].read_bytes(),
                                     headers={'Content-Type': 'image/jpeg'})
                seen.append((health.status_code, health.json(), detect.status_code, detect.json()))
                time.sleep(0.05)
        raise AssertionError('serve.py not ready: ' + self.log_path.read_text()[-3000:])

    def rss(self):
        """Resident bytes of the server and its worker processes."""
        process = psutil.Process(self.proc.pid)
        return process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """Two workers, one CPU thread each, room for six waiting requests."""
    srv = Server(tmp_path_factory.mktemp('serve'), '--workers', '2', '--cpu_threads', '1', '--queue', '6',
                 '--max_bytes', '1MB', '--max_pixels', '2M', '--header_timeout', str(HEADER_TIMEOUT))
    yield srv
    srv.stop()


@pytest.fixture(scope='module')
def small_server(tmp_path_factory):
    """One worker and one waiting place: overload and SIGTERM."""
    srv = Server(tmp_path_factory.mktemp('serve_small'), '--workers', '1', '--cpu_threads', '1', '--queue', '1')
    yield srv
    srv.stop()


@pytest.fixture(scope='module')
def client(server):
    with httpx.Client(base_url=server.base, timeout=60) as c:
        yield c


def jpeg(index=0):
    return val_images()[index].read_bytes()


def post(client, body, content_type='image/jpeg', params=None):
    return client.post('/detect', content=body, headers={'Content-Type': content_type}, params=params)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers['content-type'].startswith('application/json')
    payload = response.json()
    assert payload['error'] == code and payload['message'], payload
    return payload


def direct_records(deploy, detector, body, threshold):
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    return deploy.to_records(detector.predict(image), threshold, 'face', ''), image.shape[:2]


def same_detections(got, expected):
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose([r['bbox'] + [r['score']] for r in got],
                               [r['bbox'] + [r['score']] for r in expected], atol=1e-3)
    assert {r['category'] for r in got} == {'face'}


# ----------------------------------------------------------------------------- standalone

@pytest.mark.parametrize('path', [SERVE, LOADTEST], ids=['serve', 'loadtest'])
def test_tools_import_no_project_code(path):
    tree = ast.parse(path.read_text())
    modules = {a.name.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert 'ppdet_hambox' not in modules


def test_bad_flags_are_one_line_errors(tmp_path):
    for flags, needle in ((['--model_dir', str(tmp_path / 'none')], '--model_dir'),
                          (['--model_dir', str(tmp_path)], 'model.json')):
        result = subprocess.run([sys.executable, str(SERVE), *flags], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert result.stderr.startswith('error: ') and needle in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize('flags,needle', [
    (['--port', '99999'], '--port'), (['--port', '-1'], '--port'), (['--workers', '0'], '--workers'),
    (['--threshold', 'nan'], '--threshold'), (['--threshold', '7'], '--threshold'),
    (['--header_timeout', '0'], '--header_timeout'), (['--queue', '-1'], '--queue')])
def test_out_of_range_flags_are_one_line_errors(flags, needle):
    result = subprocess.run([sys.executable, str(SERVE), '--model_dir', str(exported_model_dir()), *flags],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith('error: ' + needle) and len(result.stderr.splitlines()) == 1, result.stderr


# ----------------------------------------------------------------------------- HTTP layer

def raw_exchange(server, data, wait=10.0):
    """Send raw bytes; everything the server answers until it closes (or ``wait`` s)."""
    port = int(server.base.rsplit(':', 1)[1])
    with socket.create_connection(('127.0.0.1', port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b''.join(chunks)


def json_answer(raw):
    head, _, body = raw.partition(b'\r\n\r\n')
    status = int(head.split()[1])
    assert b'application/json' in head.lower(), raw
    return status, json.loads(body)


def test_half_sent_headers_get_408_and_are_closed(server):
    port = int(server.base.rsplit(':', 1)[1])
    started = time.monotonic()
    socks = [socket.create_connection(('127.0.0.1', port), timeout=HEADER_TIMEOUT + 10) for _ in range(20)]
    try:
        for sock in socks:
            sock.sendall(b'POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n')
        answers = []
        for sock in socks:
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            answers.append(b''.join(chunks))
    finally:
        for sock in socks:
            sock.close()
    assert time.monotonic() - started < HEADER_TIMEOUT + 8
    for raw in answers:
        status, payload = json_answer(raw)
        assert status == 408 and payload['error'] == 'header_timeout'
    # the server still answers
    with httpx.Client(base_url=server.base, timeout=60) as c:
        assert c.get('/health').status_code == 200


def test_a_malformed_request_gets_a_json_400(server):
    status, payload = json_answer(raw_exchange(server, b'NOT HTTP AT ALL\r\n\r\n'))
    assert status == 400 and payload['error'] == 'bad_request' and payload['message']


def test_client_text_is_escaped_in_the_log(server, client):
    request = (b'POST /detect?threshold=x HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n'
               b'X-Request-ID: id\x9b31mred\xff\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx')
    status, payload = json_answer(raw_exchange(server, request))
    assert status == 400 and payload['error'] == 'bad_threshold'
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 'id=id' not in server.log_path.read_text(errors='replace'):
        time.sleep(0.05)
    raw = server.log_path.read_bytes()
    line = [ln for ln in raw.splitlines() if b'id=id' in ln][-1]
    assert b'\x9b' not in line and b'\xff' not in line
    assert b'id=id\\x9b31mred\\xff' in line


# ----------------------------------------------------------------------------- answers

def test_not_ready_before_the_model_is_loaded(server):
    assert server.before_ready, 'the server never answered before its model was loaded'
    for health_status, health, detect_status, detect in server.before_ready:
        assert health_status == 503 and health['status'] == 'loading'
        # The workers may have become ready between the two requests.
        assert (detect_status, detect.get('error')) in ((503, 'not_ready'), (200, None))
    assert server.before_ready[0][2] == 503


def test_detect_a_good_image(server, client):
    body = jpeg()
    health = client.get('/health')
    assert health.status_code == 200 and health.json()['status'] == 'ok' and health.json()['workers'] == 2
    response = post(client, body, params={'threshold': '0.3'})
    assert response.status_code == 200, response.text
    payload = response.json()
    height, width = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    assert (payload['width'], payload['height']) == (width, height)
    assert payload['latency_ms'] > 0
    assert payload['detections'] and all(set(d) == {'im_file', 'category', 'bbox', 'score'}
                                         for d in payload['detections'])
    assert min(d['score'] for d in payload['detections']) >= 0.3
    strict = post(client, body, content_type='application/octet-stream', params={'threshold': '0.9'}).json()
    assert len(strict['detections']) < len(payload['detections'])
    png = cv2.imencode('.png', cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()
    assert post(client, png, content_type='image/png').status_code == 200
    log = server.log_path.read_text()
    assert re.search(r'POST /detect 200 bytes={} latency_ms=[0-9.]+ faces='.format(len(body)), log)
    assert re.search(r'ready: model .+, device cpu, precision fp32, 2 workers x 1 CPU threads', log)


def png_header_only(width, height):
    """A PNG whose header declares width x height and whose pixels are absent."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


@pytest.mark.parametrize('case', ['empty', 'garbage', 'truncated', 'gif', 'content_type', 'threshold_text',
                                  'threshold_high', 'threshold_nan', 'pixels'])
def test_bad_input_gets_a_json_error(server, client, case):
    body, content_type, params = jpeg(), 'image/jpeg', None
    expected = (400, 'bad_image')
    if case == 'empty':
        body, expected = b'', (400, 'empty_body')
    elif case == 'garbage':
        body = bytes(range(256)) * 8
    elif case == 'truncated':
        body = body[:len(body) // 2]
    elif case == 'gif':
        body = b'GIF89a' + bytes(100)
    elif case == 'content_type':
        content_type, expected = 'text/plain', (415, 'unsupported_media_type')
    elif case.startswith('threshold'):
        params = {'threshold': {'threshold_text': 'abc', 'threshold_high': '1.5', 'threshold_nan': 'nan'}[case]}
        expected = (400, 'bad_threshold')
    elif case == 'pixels':
        body, content_type, expected = png_header_only(40000, 40000), 'image/png', (413, 'image_too_large')
    before = server.rss()
    message = assert_error(post(client, body, content_type, params), *expected)['message']
    if case == 'pixels':
        assert '1600000000 pixels' in message
        assert server.rss() - before < 64 * 2 ** 20, 'a 1.6 Gpx image was decoded'
    assert post(client, jpeg(1)).status_code == 200


def raw_request(port, head, chunks=(), timeout=20):
    """Send ``head`` and ``chunks`` on a raw socket; the status line and JSON body of the answer."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b''
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
    head_text, _, payload = data.partition(b'\r\n\r\n')
    return head_text.decode('latin-1'), json.loads(payload)


def test_body_over_max_bytes_is_refused_without_reading_it(server):
    port = int(server.base.rsplit(':', 1)[1])
    # Declared too large: answered at once, though not one body byte was sent.
    started = time.monotonic()
    head, payload = raw_request(port, b'POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n'
                                      b'Content-Length: 1000000000\r\n\r\n')
    assert head.startswith('HTTP/1.1 413') and payload['error'] == 'body_too_large'
    assert time.monotonic() - started < 10
    # Chunked, no length: counted while it streams and cut at the limit.
    chunk = b'\xff' * 65536
    chunks = [b'%x\r\n' % len(chunk) + chunk + b'\r\n'] * (2 * MAX_BYTES // len(chunk)) + [b'0\r\n\r\n']
    head, payload = raw_request(port, b'POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n'
                                      b'Transfer-Encoding: chunked\r\n\r\n', chunks)
    assert head.startswith('HTTP/1.1 413') and payload['error'] == 'body_too_large'
    assert httpx.post(server.base + '/detect', content=jpeg(), headers={'Content-Type': 'image/jpeg'},
                      timeout=60).status_code == 200


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get('/nothing'), 404, 'not_found')
    assert_error(client.get('/detect'), 405, 'method_not_allowed')


# ----------------------------------------------------------------------------- load

def test_concurrent_clients_get_the_direct_detectors_answer(server):
    deploy = load_deploy()
    detector = deploy.Detector(str(exported_model_dir()), device='cpu', cpu_threads=1)
    bodies = [p.read_bytes() for p in val_images()]
    expected = [direct_records(deploy, detector, body, 0.3) for body in bodies]
    answers, errors = [], []

    def client_loop(offset):
        with httpx.Client(base_url=server.base, timeout=60) as c:
            for i in range(2 * len(bodies)):
                index = (offset + i) % len(bodies)
                response = post(c, bodies[index], params={'threshold': '0.3'})
                (answers if response.status_code == 200 else errors).append((index, response))

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, [r.text for _, r in errors]
    assert len(answers) == 6 * 2 * len(bodies)
    for index, response in answers:
        payload = response.json()
        records, (height, width) = expected[index]
        assert (payload['height'], payload['width']) == (height, width)
        same_detections(payload['detections'], records)


def burst(base, body, count):
    """``count`` clients post at the same moment: [(status, seconds, response)]."""
    barrier, results = threading.Barrier(count), []

    def one():
        with httpx.Client(base_url=base, timeout=60) as c:
            c.get('/health')     # connected before the burst
            barrier.wait()
            started = time.perf_counter()
            response = post(c, body)
            results.append((response.status_code, time.perf_counter() - started, response))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_overload_is_refused_at_once_with_retry_after(small_server):
    results = burst(small_server.base, jpeg(), 24)
    statuses = [status for status, _, _ in results]
    assert set(statuses) == {200, 503}, statuses
    refused = [(seconds, r) for status, seconds, r in results if status == 503]
    served = [seconds for status, seconds, _ in results if status == 200]
    for _, response in refused:
        assert_error(response, 503, 'overloaded')
        assert response.headers['retry-after'] == '1'
    assert np.median([s for s, _ in refused]) < np.median(served)
    health = httpx.get(small_server.base + '/health', timeout=10).json()
    assert health['in_flight'] == 0 and health['busy'] == 0


def test_memory_is_steady_under_sustained_load(server):
    """After warm-up the server's RSS stays put over 300 requests; keeping
    each ~100 KB body would add 30 MB."""
    image = cv2.resize(cv2.imread(str(val_images()[0])), (900, 700))
    bodies = [cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes() for q in (97, 96, 95)]
    assert min(map(len, bodies)) > 90_000

    def run(count):
        def loop():
            with httpx.Client(base_url=server.base, timeout=60) as c:
                for i in range(count // 3):
                    assert post(c, bodies[i % 3]).status_code == 200
        threads = [threading.Thread(target=loop) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    run(60)
    before = server.rss()
    run(300)
    growth = server.rss() - before
    assert growth < 12 * 2 ** 20, 'server RSS grew by {:.1f} MiB over 300 requests'.format(growth / 2 ** 20)


def test_loadtest_reports_rate_latency_statuses_and_memory(server):
    result = subprocess.run([sys.executable, str(LOADTEST), '--url', server.base + '/detect',
                             '--image', str(val_images()[0]), '--concurrency', '2', '--requests', '16',
                             '--warmup', '2', '--json'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary['status_counts'] == {'200': 16} and summary['req_per_s'] > 0
    latency = summary['latency_ms']
    assert 0 < latency['p50'] <= latency['p90'] <= latency['p99'] <= latency['max']
    memory = summary['server_memory_mib']
    assert memory['pid'] == server.proc.pid and memory['before'] > 50 and memory['after'] > 50
    assert 'req/s' in result.stdout and 'p99' in result.stdout
    refused = subprocess.run([sys.executable, str(LOADTEST), '--url', 'http://192.0.2.1:8866/detect',
                              '--image', str(val_images()[0])], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and '--allow_remote' in refused.stderr


def is_alive(process):
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_worker_is_replaced(server, client):
    workers = [p for p in psutil.Process(server.proc.pid).children() if 'spawn_main' in ' '.join(p.cmdline())]
    assert len(workers) == 2
    workers[0].kill()
    deadline = time.monotonic() + 10
    while is_alive(workers[0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    for index in range(3):
        response = post(client, jpeg(index))
        assert response.status_code == 200, (response.text, server.log_path.read_text()[-3000:])
    deadline = time.monotonic() + START_TIMEOUT
    while client.get('/health').json()['ready_workers'] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get('/health').json()['ready_workers'] == 2
    assert 'restarting it' in server.log_path.read_text()


def test_a_worker_dying_on_a_request_answers_it_500_and_is_replaced(small_server):
    """The request may have killed the worker, so it is not retried."""
    worker = next(p for p in psutil.Process(small_server.proc.pid).children()
                  if 'spawn_main' in ' '.join(p.cmdline()))
    big = cv2.imencode('.jpg', cv2.resize(cv2.imread(str(val_images()[0])), (6000, 5000)))[1].tobytes()
    answers = []

    def cpu_seconds():
        return sum(worker.cpu_times()[:2])
    idle = cpu_seconds()
    with httpx.Client(base_url=small_server.base, timeout=60) as c:
        thread = threading.Thread(target=lambda: answers.append(post(c, big)))
        thread.start()
        deadline = time.monotonic() + 30    # an idle worker uses no CPU: this one is running the request
        while cpu_seconds() < idle + 0.05 and time.monotonic() < deadline:
            time.sleep(0.002)
        worker.kill()
        thread.join()
        payload = assert_error(answers[0], 500, 'inference_failed')
        assert 'died on this request' in payload['message']
        deadline = time.monotonic() + START_TIMEOUT
        while c.get('/health').json()['ready_workers'] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert post(c, jpeg(0)).status_code == 200


# ----------------------------------------------------------------------------- shutdown

def sigterm_while_busy(server, count):
    """``count`` requests with a large photo (decoding and resizing it keeps
    them in flight a while); SIGTERM once all are admitted. Returns their
    answers, the exit code and the seconds from SIGTERM to exit."""
    body = cv2.imencode('.jpg', cv2.resize(cv2.imread(str(val_images()[0])), (3000, 2400)))[1].tobytes()
    answers = []

    def one():
        with httpx.Client(base_url=server.base, timeout=60) as c:
            answers.append(post(c, body))

    threads = [threading.Thread(target=one) for _ in range(count)]
    with httpx.Client(base_url=server.base, timeout=10) as monitor:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while monitor.get('/health').json()['in_flight'] < count and time.monotonic() < deadline:
            time.sleep(0.002)
        server.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = server.proc.wait(15)
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join()
    return answers, code, elapsed


def test_sigterm_finishes_in_flight_requests_and_exits_0(small_server):
    workers = psutil.Process(small_server.proc.pid).children(recursive=True)
    assert workers
    answers, code, elapsed = sigterm_while_busy(small_server, 2)
    assert code == 0 and elapsed < 10
    assert [r.status_code for r in answers] == [200, 200]
    deadline = time.monotonic() + 5     # multiprocessing's resource tracker ends on its own
    while any(is_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(is_alive(p) for p in workers)
    assert 'stopped' in small_server.log_path.read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(small_server.base + '/health', timeout=5)


def test_sigterm_answers_503_past_the_drain_timeout(tmp_path):
    server = Server(tmp_path, '--workers', '1', '--cpu_threads', '1', '--queue', '4', '--drain_timeout', '0.01')
    try:
        answers, code, elapsed = sigterm_while_busy(server, 4)
    finally:
        server.stop()
    assert code == 0 and elapsed < 10
    cut = [r for r in answers if r.status_code != 200]
    assert cut and len(answers) == 4
    for response in cut:
        assert_error(response, 503, 'stopping')


@pytest.mark.parametrize('url', ['http://127.0.0.1:99999/predict', 'http://127.0.0.1:0/predict',
                                 'http://127.0.0.1:x/predict'])
def test_loadtest_url_with_a_bad_port_is_one_line(url, tmp_path):
    image = tmp_path / 'a.png'
    image.write_bytes(b'x')
    result = subprocess.run([sys.executable, str(LOADTEST), '--url', url, '--image', str(image)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith('error: --url ') and 'Traceback' not in result.stderr
    assert 'between 1 and 65535' in result.stderr and len(result.stderr.splitlines()) == 1
