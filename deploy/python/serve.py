"""HTTP face-detection service over Paddle Inference (FastAPI + uvicorn).

    python deploy/python/serve.py --model_dir DIR [--host 127.0.0.1] [--port 8866] \\
        [--workers N] [--device auto|cpu|gpu] [--precision fp32|bf16|fp16] \\
        [--max_bytes 20MB] [--max_pixels 40M] [--queue 32] [--threshold 0.5]

``POST /detect`` takes the image bytes as the body and answers
``{"detections": [...], "width": W, "height": H, "latency_ms": T}``;
``GET /health`` answers 200 once every worker has loaded the model, 503 before
that and while stopping. docs/serving.md has the limits and every error.

HTTP layer: uvicorn's h11 protocol with a deadline for a request's line and
headers (``--header_timeout``: a client sending them slowly, or never, is
answered 408 and closed) and JSON bodies for requests h11 cannot parse;
client-supplied text (``X-Request-ID``, error details) is escaped before it
reaches the log, so a log line stays one line.

Paddle predictors are not thread-safe and one process's predictors do not run
in parallel, so each worker is a process owning one predictor; one dispatcher
thread per worker feeds it through a pipe. Standalone: it uses infer.py's
``Detector``, pre-processing and image decoding (EXIF orientation applied)
and nothing from ppdet_hambox.
"""
import asyncio
import contextlib
import ctypes
import json
import logging
import math
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
import uuid

import numpy as np
from PIL import Image, UnidentifiedImageError

from infer import (COUNT_UNITS, INFER_CFG, MAX_PIXELS, MODEL_FILE, PARAMS_FILE, PRECISIONS, DeployError, Detector,
                   PredictConfig, available_cpus, declared_size, decode_image, parse_size, resolve_device, run_cli,
                   to_records)
from deploy_io import (ToolParser, export_dir, listen_port, nonneg_int, one_line, positive_float, positive_int,
                       probability)

LOG = logging.getLogger('serve')
MEDIA_TYPES = ('image/jpeg', 'image/png', 'image/webp', 'image/bmp', 'image/x-ms-bmp', 'application/octet-stream')
IMAGE_FORMATS = ('JPEG', 'PNG', 'WEBP', 'BMP')   # PIL's names; its JPEG reader also opens MPO
BYTE_UNITS = {'': 1, 'B': 1, 'K': 1024, 'KB': 1024, 'M': 1024 ** 2, 'MB': 1024 ** 2, 'G': 1024 ** 3, 'GB': 1024 ** 3}
WARMUP_SHAPE = (480, 640, 3)
STARTED = "started"        # a worker's acknowledgement of a job, sent before running it


class ServiceError(Exception):
    """An answer other than 200: HTTP status, short code, message, extra headers."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


# ----------------------------------------------------------------------------- worker process

def _die_with_parent():
    """Linux: the kernel kills this process when the process that started it dies."""
    if sys.platform.startswith('linux'):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_main(conn, model_dir, device, precision, cpu_threads, enable_mkldnn):
    """One predictor, one image at a time. Signals go to the server process,
    which drains and then stops the workers; a closed pipe also ends them."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        device = resolve_device(device)
        detector = Detector(model_dir, device=device, cpu_threads=cpu_threads, precision=precision,
                            enable_mkldnn=enable_mkldnn)
        detector.predict(np.zeros(WARMUP_SHAPE, np.uint8))
    except Exception as error:  # reported to the server, which stops with this message
        conn.send(('error', str(error) if isinstance(error, DeployError) else '{}: {}'.format(
            type(error).__name__, error)))
        return
    conn.send(('ready', device))
    label = detector.cfg.label_list[0]
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            os._exit(0)     # skips the interpreter's slow teardown of Paddle
        try:
            conn.send(STARTED)
            conn.send(run_job(detector, label, *job))
        except (BrokenPipeError, OSError):
            return


def run_job(detector, label, body, threshold, source):
    """('ok', answer) | ('bad_image', message) | ('error', message)."""
    image = decode_image(body)
    if image is None:
        return 'bad_image', 'the body could not be decoded as an image (corrupt or truncated)'
    try:
        dets = detector.predict(image)
    except Exception as error:  # one bad request must not end the worker
        traceback.print_exc()
        return 'error', 'inference failed: {}: {}'.format(type(error).__name__, error)
    height, width = image.shape[:2]
    return 'ok', {'detections': to_records(dets, threshold, label, source), 'width': width, 'height': height}


# ----------------------------------------------------------------------------- worker pool (server side)

class Job:
    def __init__(self, loop, body, threshold, source):
        self.loop, self.args = loop, (body, threshold, source)
        self.future = loop.create_future()

    def resolve(self, reply):
        """From any thread."""
        self.loop.call_soon_threadsafe(self.set, reply)

    def set(self, reply):
        """From the event-loop thread."""
        if not self.future.done():
            self.future.set_result(reply)


class WorkerPool:
    """``workers`` processes, each fed by its own dispatcher thread from one
    job queue. Admission is bounded by the caller (``capacity``), so the queue
    never holds more than ``queue_size`` waiting jobs.

    Stopping: ``begin_drain`` (on SIGTERM) makes the service not ready; jobs
    still unanswered ``drain_timeout`` seconds later are answered 503; then
    ``stop`` ends the workers at once, killing any still busy."""

    def __init__(self, model_dir, workers, device, precision, cpu_threads, enable_mkldnn, queue_size, drain_timeout):
        self.model_dir, self.workers, self.device, self.precision = model_dir, workers, device, precision
        self.enable_mkldnn = enable_mkldnn
        self.cpu_threads, self.capacity, self.drain_timeout = cpu_threads, workers + queue_size, drain_timeout
        self.jobs = queue.Queue()
        self.admitted = 0           # requests between admission and answer (event-loop thread only)
        self.pending = set()        # submitted jobs not answered yet (event-loop thread only)
        self.busy = 0
        self.ready_workers = 0
        self.started = False        # every worker has loaded the model once
        self.draining = False
        self.stopping = False
        self.fatal = None
        self.on_fatal = None
        self._lock = threading.Lock()
        self._threads = []
        self._processes = {}
        self._context = multiprocessing.get_context('spawn')

    @property
    def ready(self):
        return self.started and not self.draining and self.fatal is None

    def start(self, loop):
        self.loop = loop
        self._threads = [threading.Thread(target=self._dispatch, args=(i,), name='worker-{}'.format(i), daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, body, threshold, source):
        job = Job(self.loop, body, threshold, source)
        self.pending.add(job)
        job.future.add_done_callback(lambda _: self.pending.discard(job))
        self.jobs.put(job)
        return job.future

    def begin_drain(self):
        """Called from the signal handler."""
        if not self.draining:
            self.draining = True
            self.loop.call_soon_threadsafe(self.loop.call_later, self.drain_timeout, self._cut_pending)

    def _cut_pending(self):
        for job in list(self.pending):
            job.set(('stopping', 'the service stopped before answering (--drain_timeout {:g} s)'.format(
                self.drain_timeout)))

    def stop(self, timeout=0.3):
        """Ends the workers (those still busy after ``timeout`` are killed); jobs still
        queued are answered 503."""
        self.stopping = True
        for _ in self._threads:
            self.jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for process in list(self._processes.values()):
            if process.is_alive():
                process.kill()
        for thread in self._threads:
            thread.join(1.0)
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.resolve(('stopping', 'the service is stopping'))

    def _spawn(self, index):
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=worker_main, name='hambox-worker-{}'.format(index), daemon=True,
            args=(child, self.model_dir, self.device, self.precision, self.cpu_threads, self.enable_mkldnn))
        process.start()
        self._processes[index] = process
        child.close()
        try:
            kind, info = parent.recv()
        except EOFError:
            process.join(5)
            kind, info = 'error', 'the worker process exited (exit code {})'.format(process.exitcode)
        if kind != 'ready':
            self._fail('worker could not load {}: {}'.format(self.model_dir, info))
            return None, None
        with self._lock:
            self.device = info
            self.ready_workers += 1
            if self.started:
                LOG.info('worker %d restarted (pid %d)', index, process.pid)
            elif self.ready_workers == self.workers:
                self.started = True
                LOG.info('ready: model %s, device %s, precision %s, %d workers x %d CPU threads, queue %d',
                         self.model_dir, self.device, self.precision, self.workers, self.cpu_threads,
                         self.capacity - self.workers)
        return process, parent

    def _restart(self, index, process, why):
        LOG.error('worker %d (pid %d): %s; restarting it', index, process.pid, why)
        with self._lock:
            self.ready_workers -= 1
        process.kill()
        process.join()
        return self._spawn(index)

    def _fail(self, message):
        LOG.error(message)
        with self._lock:
            if self.fatal is None:
                self.fatal = message
                if self.on_fatal is not None:
                    self.loop.call_soon_threadsafe(self.on_fatal)

    def _dispatch(self, index):
        process, conn = self._spawn(index)
        while process is not None:
            job = self.jobs.get()
            if job is None:
                break
            if job.future.done():       # cut by the drain timeout
                continue
            with self._lock:
                self.busy += 1
            try:
                process, conn, reply = self._run(index, process, conn, job)
            finally:
                with self._lock:
                    self.busy -= 1
            job.resolve(reply)
            if self.stopping and reply[0] == 'stopping':
                return
        if process is not None:
            with contextlib.suppress(OSError):
                conn.send(None)
            process.join(1.0)

    def _run(self, index, process, conn, job):
        """Returns (process, conn, reply), the process being a replacement when
        the worker died. The worker acknowledges each job before running it: a
        worker that died before that (killed while idle, even if the kernel has
        not finished tearing it down) never saw the job, which goes to its
        replacement; one that died after it may have died of the job, which is
        answered 500 and not retried."""
        while True:
            started = False
            try:
                conn.send(job.args)
                started = conn.recv() == STARTED
                return process, conn, conn.recv()
            except (EOFError, OSError):
                process.join(1)
                if self.stopping:
                    return process, conn, ('stopping', 'the service is stopping')
                why = 'died {} (exit code {})'.format(
                    'on this request' if started else 'before reading a request', process.exitcode)
                process, conn = self._restart(index, process, why)
                if process is None:
                    return None, None, ('error', self.fatal)
                if started:
                    return process, conn, ('error', 'the worker process ' + why)


# ----------------------------------------------------------------------------- request checks

def parse_threshold(text, default):
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ServiceError(400, 'bad_threshold', 'threshold must be a number in [0, 1], got {!r}'.format(text))
    return value


def check_content_type(header):
    """A missing Content-Type is taken as application/octet-stream."""
    media = (header or 'application/octet-stream').split(';')[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise ServiceError(415, 'unsupported_media_type', 'Content-Type {!r} is not accepted; send the image bytes '
                           'as one of {}'.format(media, ', '.join(MEDIA_TYPES)))


def declared_length(header, max_bytes):
    if header is None:
        return None
    if not header.strip().isdigit():
        raise ServiceError(400, 'bad_content_length', 'Content-Length {!r} is not a byte count'.format(header))
    length = int(header)
    if length > max_bytes:
        raise ServiceError(413, 'body_too_large', 'body of {} bytes is over the limit of {} bytes (--max_bytes)'
                           .format(length, max_bytes))
    return length


async def read_body(request, max_bytes, timeout):
    """The body, counted while it streams in: never more than ``max_bytes`` held."""
    from starlette.requests import ClientDisconnect
    chunks, size = [], 0

    async def consume():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise ServiceError(413, 'body_too_large', 'body is over the limit of {} bytes (--max_bytes)'
                                   .format(max_bytes))
            chunks.append(chunk)

    try:
        await asyncio.wait_for(consume(), timeout)
    except asyncio.TimeoutError:
        raise ServiceError(408, 'body_timeout', 'the body did not arrive within {:g} s (--read_timeout)'
                           .format(timeout)) from None
    except ClientDisconnect:
        raise ServiceError(400, 'client_disconnected', 'the client closed the connection while sending') from None
    body = b''.join(chunks)
    if not body:
        raise ServiceError(400, 'empty_body', 'the body is empty: send the image bytes as the request body')
    return body


def image_size(body, max_pixels):
    """(width, height) from the image header only; the pixels are decoded later, in a worker."""
    try:
        width, height = declared_size(body, IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise ServiceError(400, 'bad_image', 'the body is not a JPEG, PNG, WebP or BMP image') from None
    except Exception as error:  # any failure to parse an untrusted header is a bad request
        raise ServiceError(400, 'bad_image', 'unreadable image header: {}: {}'.format(
            type(error).__name__, error)) from None
    if width * height > max_pixels:
        raise ServiceError(413, 'image_too_large', 'image of {}x{} = {} pixels is over the limit of {} pixels '
                           '(--max_pixels)'.format(width, height, width * height, max_pixels))
    return width, height


WORKER_REPLIES = {'bad_image': (400, 'bad_image', {}), 'error': (500, 'inference_failed', {}),
                  'stopping': (503, 'stopping', {'Retry-After': '1'})}


# ----------------------------------------------------------------------------- app

MAX_REQUEST_ID = 128


def log_text(value, limit=MAX_REQUEST_ID):
    """Client-supplied text as it may appear in a log line or a header:
    printable ASCII (anything else escaped), quotes escaped, at most ``limit`` characters."""
    text = one_line(value).encode('ascii', 'backslashreplace').decode('ascii').replace('"', '\\"')
    return text if len(text) <= limit else text[:limit] + '...'


def json_bytes_response(status, reason, code, message):
    """A complete HTTP/1.1 response with a JSON error body, as raw bytes (for
    the protocol layer, where no request was parsed)."""
    body = json.dumps({'error': code, 'message': message}).encode('ascii')
    return ('HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n'
            .format(status, reason, len(body)).encode('ascii') + body)


def http_protocol(header_timeout):
    """uvicorn's h11 protocol with a header deadline and JSON 400 answers."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self._header_timer = None
            self._arm_header_timer()

        def _arm_header_timer(self):
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _cancel_header_timer(self):
            if getattr(self, '_header_timer', None) is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self):
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                LOG.info('connection closed: no complete request line and headers within %g s (--header_timeout)',
                         header_timeout)
                self.transport.write(json_bytes_response(
                    408, 'Request Timeout', 'header_timeout', 'the request line and headers did not arrive within '
                    '{:g} s'.format(header_timeout)))
                self.transport.close()

        def data_received(self, data):
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._cancel_header_timer()

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_header_timer()  # the next request's deadline (a pipelined one already arrived)

        def connection_lost(self, exc):
            self._cancel_header_timer()
            super().connection_lost(exc)

        def send_400_response(self, msg):
            self.transport.write(json_bytes_response(400, 'Bad Request', 'bad_request',
                                                     '{} (not a valid HTTP/1.1 request)'.format(msg)))
            self.transport.close()

    return Protocol


def error_response(error, close=False):
    from fastapi.responses import JSONResponse
    headers = dict(error.headers)
    if close:
        headers['Connection'] = 'close'
    return JSONResponse({'error': error.code, 'message': error.message}, status_code=error.status, headers=headers)


def create_app(pool, max_bytes, max_pixels, threshold, read_timeout):
    # FastAPI and uvicorn are imported here, not at the top, so that worker
    # processes (which import this module) do not load them.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @contextlib.asynccontextmanager
    async def lifespan(_):
        pool.start(asyncio.get_running_loop())
        yield
        await asyncio.to_thread(pool.stop)

    app = FastAPI(title='HAMBox face detection', lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        code = {404: 'not_found', 405: 'method_not_allowed'}.get(error.status_code, 'http_error')
        return error_response(ServiceError(error.status_code, code, '{} {}: {}'.format(
            request.method, request.url.path, error.detail), getattr(error, 'headers', None)))

    @app.exception_handler(Exception)
    async def internal_error(request, error):
        LOG.error('%s %s: internal error', request.method, request.url.path, exc_info=error)
        return error_response(ServiceError(500, 'internal_error', '{}: {}'.format(type(error).__name__, error)))

    @app.get('/health')
    async def health():
        status = 'ok' if pool.ready else 'stopping' if pool.draining else 'failed' if pool.fatal else 'loading'
        body = {'status': status, 'model': pool.model_dir, 'device': pool.device, 'precision': pool.precision,
                'workers': pool.workers, 'ready_workers': pool.ready_workers, 'busy': pool.busy,
                'in_flight': pool.admitted}
        return JSONResponse(body, status_code=200 if pool.ready else 503,
                            headers={} if pool.ready else {'Retry-After': '1'})

    @app.post('/detect')
    async def detect(request: Request):
        started = time.perf_counter()
        request_id = log_text(request.headers.get('x-request-id') or uuid.uuid4().hex[:16])
        size, faces, body_read = 0, 0, False
        try:
            score = parse_threshold(request.query_params.get('threshold'), threshold)
            check_content_type(request.headers.get('content-type'))
            size = declared_length(request.headers.get('content-length'), max_bytes) or 0
            if not pool.ready:
                reason = pool.fatal or ('the service is stopping' if pool.draining else 'the model is loading')
                raise ServiceError(503, 'not_ready', reason, {'Retry-After': '1'})
            if pool.admitted >= pool.capacity:
                raise ServiceError(503, 'overloaded', 'all {} workers are busy and {} requests wait (--queue); '
                                   'retry later'.format(pool.workers, pool.capacity - pool.workers),
                                   {'Retry-After': '1'})
            pool.admitted += 1
            try:
                body = await read_body(request, max_bytes, read_timeout)
                size, body_read = len(body), True
                image_size(body, max_pixels)
                kind, answer = await pool.submit(body, score, request_id)
            finally:
                pool.admitted -= 1
            if kind != 'ok':
                status, code, headers = WORKER_REPLIES[kind]
                raise ServiceError(status, code, answer, headers)
            answer['latency_ms'] = (time.perf_counter() - started) * 1000.0
            faces = len(answer['detections'])
            response = JSONResponse(answer, headers={'X-Request-ID': request_id})
        except ServiceError as error:
            response = error_response(error, close=not body_read)
            response.headers['X-Request-ID'] = request_id
            faces = error.message
        LOG.info('POST /detect %d bytes=%d latency_ms=%.1f %s id=%s', response.status_code, size,
                 (time.perf_counter() - started) * 1000.0,
                 'faces={}'.format(faces) if response.status_code == 200 else 'error="{}"'.format(log_text(faces, 500)),
                 request_id)
        return response

    return app


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = ToolParser(description='HAMBox face detection over HTTP (Paddle Inference).')
    parser.add_argument('--model_dir', required=True, type=export_dir,
                        help='exported model: model.json, model.pdiparams, infer_cfg.yml')
    parser.add_argument('--host', default='127.0.0.1', help='0.0.0.0 to listen on every interface')
    parser.add_argument('--port', type=listen_port, default=8866, help='1-65535 (0: any free port, logged)')
    parser.add_argument('--workers', type=positive_int, default=1, help='worker processes, one predictor each')
    parser.add_argument('--cpu_threads', type=nonneg_int, default=0,
                        help='CPU math threads per worker (default: available cores / workers, at least 1)')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'gpu'))
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS,
                        help='bf16 needs a CPU with native bfloat16; fp16 / int8 need a GPU')
    parser.add_argument('--disable_mkldnn', action='store_true', help='CPU without oneDNN')
    parser.add_argument('--max_bytes', type=lambda t: parse_size(t, BYTE_UNITS, '--max_bytes'), default='20MB',
                        help='largest request body (K/M/G = KiB/MiB/GiB)')
    parser.add_argument('--max_pixels', type=lambda t: parse_size(t, COUNT_UNITS, '--max_pixels'), default=MAX_PIXELS,
                        help='largest image, width x height read from its header (K/M/G = 1e3/1e6/1e9; '
                             'default 40M)')
    parser.add_argument('--queue', type=nonneg_int, default=32,
                        help='requests that may wait while every worker is busy')
    parser.add_argument('--threshold', type=probability,
                        help='lowest score returned (default: infer_cfg.yml draw_threshold)')
    parser.add_argument('--read_timeout', type=positive_float, default=30.0,
                        help='seconds a client may take to send its body')
    parser.add_argument('--header_timeout', type=positive_float, default=10.0,
                        help='seconds a client may take to send its request line and headers')
    parser.add_argument('--drain_timeout', type=positive_float, default=7.0,
                        help='on SIGTERM, requests still waiting after this many seconds get 503')
    return parser.parse_args(argv)


def load_predict_config(model_dir):
    if not os.path.isdir(model_dir):
        raise DeployError('--model_dir: no such folder {}'.format(model_dir))
    for name in (MODEL_FILE, PARAMS_FILE, INFER_CFG):
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise DeployError('--model_dir: {} not found in {} (export the model with tools/export.py)'.format(
                name, model_dir))
    try:
        return PredictConfig(model_dir)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DeployError('--model_dir {}: {}'.format(model_dir, error)) from None


def listen(host, port):
    """The listening socket, bound here so that a taken port is a one-line error
    (and ``--port 0`` picks a free one, logged at start)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        raise DeployError('--host {} --port {}: cannot listen: {}'.format(host, port, error)) from None
    return sock


def main(argv=None):
    from infer import quiet_paddle
    quiet_paddle()
    import uvicorn

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    predict_cfg = load_predict_config(args.model_dir)
    sock = listen(args.host, args.port)
    threshold = predict_cfg.draw_threshold if args.threshold is None else args.threshold
    cpu_threads = args.cpu_threads or max(1, available_cpus() // args.workers)
    # Our --max_pixels check reads the header first; PIL's own bomb limit would only warn earlier.
    Image.MAX_IMAGE_PIXELS = None
    Image.init()
    pool = WorkerPool(os.path.abspath(args.model_dir), args.workers, args.device, args.precision, cpu_threads,
                      not args.disable_mkldnn, args.queue, args.drain_timeout)
    app = create_app(pool, args.max_bytes, args.max_pixels, threshold, args.read_timeout)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            pool.begin_drain()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None, access_log=False,
                                   http=http_protocol(args.header_timeout),
                                   timeout_graceful_shutdown=args.drain_timeout + 1.0))
    pool.on_fatal = lambda: setattr(server, 'should_exit', True)
    host, port = sock.getsockname()[:2]
    LOG.info('starting: model %s, device %s, precision %s, %d workers x %d CPU threads, listening on http://%s:%d',
             args.model_dir, args.device, args.precision, args.workers, cpu_threads, host, port)
    # uvicorn re-raises the signal it stopped on once it restores these handlers:
    # with Python's defaults a drained, clean stop would still die of SIGTERM.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    if pool.fatal:
        raise DeployError(pool.fatal)
    LOG.info('stopped')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
