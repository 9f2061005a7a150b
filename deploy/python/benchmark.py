"""End-to-end latency of one 640x480 image for every (runtime, precision)
this machine and build can run, in one run, with the model's cost.

    python deploy/python/benchmark.py [-c configs/hambox/hambox_r50_lfpn_dh_ssh_pa_640.yml]
        [-o weights=W.pdparams] [--model_dir EXPORTED_DIR] [--onnx_int8 model_int8.onnx]
        [--image F] [--repeats 10] [--warmup 2] [--cpu_threads N] [--device auto|cpu|gpu]
        [--no_dygraph] [--precision fp32|bf16|fp16|int8] [--rows "oneDNN fp32" onnxruntime ...]

The model is built from the config (random initialisation, without the
backbone's ImageNet file, unless ``weights`` is given) and exported to a
temporary folder with the VGA protocol (or ``--model_dir`` is used as it
is). Rows (those this device/build cannot run are listed with the reason):
Paddle Inference oneDNN fp32 / bf16 and without oneDNN (CPU), fp32 / fp16
and TensorRT fp32 / fp16 (GPU), ONNX Runtime fp32 (and int8 with
``--onnx_int8``), dygraph fp32. A call is pre-processing, network, NMS and
reading the results back. The rows are timed round-robin (one call of each
per round) so that load from other processes falls on all rows alike. The
last line printed is JSON. Bad flags, a damaged --model_dir, an unreadable
--image and config errors are one ``error:`` line and exit status 2; Ctrl-C
is one line and 130.
"""
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'configs', 'hambox',
                              'hambox_r50_lfpn_dh_ssh_pa_640.yml')
SIZE = (640, 480)   # width, height

from deploy_io import DeployError, ToolParser, existing_file, export_dir, nonneg_int, positive_int  # noqa: E402


def synthetic_image(seed=0):
    """A deterministic 640x480 BGR image (smooth gradients plus noise)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(np.float32)
    base = np.stack([xs / SIZE[0], ys / SIZE[1], (xs + ys) / sum(SIZE)], axis=2) * 200
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def load_image(path):
    if not path:
        return synthetic_image()
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DeployError('--image {}: not decodable (corrupt or not an image)'.format(path))
    return cv2.resize(image, SIZE, interpolation=cv2.INTER_LINEAR)


class OnnxDetector:
    """``predict(image)`` with ONNX Runtime on the export's ``model.onnx`` (or
    a quantized copy), the same pre- and post-processing as ``Detector``."""

    def __init__(self, model_dir, onnx_file, cpu_threads):
        import onnxruntime as ort
        from infer import PredictConfig
        self.cfg = PredictConfig(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads
        self.session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def predict(self, image):
        feeds = self.cfg.preprocess(image)
        bbox, bbox_num = self.session.run(None, {k: feeds[k] for k in self.inputs})[:2]
        bbox = np.asarray(bbox, np.float32).reshape(-1, 6)[:int(np.asarray(bbox_num).reshape(-1)[0])]
        dets = np.concatenate([bbox[:, 2:6], bbox[:, 1:2]], axis=1)
        return dets[(dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])]


def paddle_rows(device):
    """[(runtime, precision, Detector kwargs)] this device could run, and
    [(runtime, precision, reason)] it cannot."""
    from infer import check_precision, cpu_supports_bf16, tensorrt_available, DeployError
    rows, skipped = [], []
    if device == 'cpu':
        rows.append(('paddle_inference oneDNN', 'fp32', {'enable_mkldnn': True}))
        if cpu_supports_bf16():
            rows.append(('paddle_inference oneDNN', 'bf16', {'enable_mkldnn': True, 'precision': 'bf16'}))
        else:
            skipped.append(('paddle_inference oneDNN', 'bf16', 'this CPU has no native bfloat16 (AVX512-BF16/AMX)'))
        rows.append(('paddle_inference no oneDNN', 'fp32', {'enable_mkldnn': False}))
        return rows, skipped
    rows += [('paddle_inference gpu', 'fp32', {}), ('paddle_inference gpu', 'fp16', {'precision': 'fp16'})]
    ok, reason = tensorrt_available()
    for precision in ('fp32', 'fp16', 'int8'):
        if ok:
            try:
                check_precision(precision, device, 'trt')
                rows.append(('tensorrt', precision, {'run_mode': 'trt', 'precision': precision}))
            except DeployError as err:
                skipped.append(('tensorrt', precision, str(err)))
        else:
            skipped.append(('tensorrt', precision, reason))
    return rows, skipped


def summarise(runtime, precision, times, dets, threshold):
    times = np.asarray(times)
    return {'runtime': runtime, 'precision': precision, 'mean_ms': float(times.mean()),
            'p50_ms': float(np.percentile(times, 50)), 'p90_ms': float(np.percentile(times, 90)),
            'runs': int(len(times)), 'detections': int(len(dets)),
            'above_threshold': int((dets[:, 4] >= threshold).sum())}


def format_table(rows, skipped, cost):
    lines = ['model: {:.1f} GMACs at {}x{}, {:.2f} M parameters'.format(
        cost['gmacs'], cost['width'], cost['height'], cost['params_m'])]
    lines.append('{:<30}{:<10}{:>10}{:>10}{:>10}{:>6}{:>8}{:>14}'.format(
        'runtime', 'precision', 'p50 ms', 'p90 ms', 'mean ms', 'runs', 'dets', 'vs fastest'))
    fastest = min((r['p50_ms'] for r in rows), default=1.0)
    for r in rows:
        lines.append('{:<30}{:<10}{:>10.1f}{:>10.1f}{:>10.1f}{:>6}{:>8}{:>13.2f}x'.format(
            r['runtime'], r['precision'], r['p50_ms'], r['p90_ms'], r['mean_ms'], r['runs'], r['detections'],
            r['p50_ms'] / fastest))
    lines += ['{:<30}{:<10}not run: {}'.format(runtime, precision, reason) for runtime, precision, reason in skipped]
    return '\n'.join(lines)


def time_round_robin(calls, warmup, repeats):
    """Warm each call up, then time one call of each per round; returns the
    per-call milliseconds and the last result of each."""
    last = [None] * len(calls)
    for index, fn in enumerate(calls):
        for _ in range(warmup):
            last[index] = fn()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for index, fn in enumerate(calls):
            start = time.perf_counter()
            last[index] = fn()
            times[index].append((time.perf_counter() - start) * 1000.0)
    return times, last


def wanted(args, runtime, precision):
    """Whether ``--precision`` and ``--rows`` (words matched against
    "runtime precision") ask for this row."""
    if args.precision and precision != args.precision:
        return False
    name = '{} {}'.format(runtime, precision)
    return not args.rows or any(word in name for word in args.rows)


def build_rows(args, cfg, model, model_dir, image):
    from infer import Detector, resolve_device
    device = resolve_device(args.device)
    specs, skipped = paddle_rows(device)
    calls, names = [], []
    for runtime, precision, kwargs in specs:
        if not wanted(args, runtime, precision):
            continue
        detector = Detector(model_dir, device=device, cpu_threads=args.cpu_threads, **kwargs)
        calls.append(lambda d=detector: d.predict(image))
        names.append((runtime, precision))
    onnx_files = [('fp32', os.path.join(model_dir, 'model.onnx'))]
    if args.onnx_int8:
        onnx_files.append(('int8', args.onnx_int8))
    for precision, path in onnx_files:
        if not wanted(args, 'onnxruntime', precision):
            continue
        try:
            if precision == 'fp32' and not os.path.isfile(path):
                from ppdet_hambox.export.exporter import export_onnx
                export_onnx(model_dir)
            detector = OnnxDetector(model_dir, path, args.cpu_threads or os.cpu_count())
        except ImportError as err:
            skipped.append(('onnxruntime', precision, str(err)))
            continue
        calls.append(lambda d=detector: d.predict(image))
        names.append(('onnxruntime', precision))
    if args.no_dygraph or not wanted(args, 'dygraph', 'fp32'):
        skipped.append(('dygraph', 'fp32', 'not asked for'))
    else:
        from ppdet_hambox.evaluation.predictor import Predictor
        predictor = Predictor(model, cfg, 'vga')
        calls.append(lambda: predictor.detect(image))
        names.append(('dygraph', 'fp32'))
    return calls, names, skipped


def main(argv=None):
    from infer import quiet_paddle
    quiet_paddle()
    parser = ToolParser(description='Latency of every runtime and precision at 640x480.')
    parser.add_argument('-c', '--config', default=DEFAULT_CONFIG)
    parser.add_argument('-o', '--opt', nargs='*', default=[], help='config overrides, e.g. weights=...')
    parser.add_argument('--model_dir', type=export_dir,
                        help='an existing export of this config (default: export to a temporary folder)')
    parser.add_argument('--onnx_int8', type=existing_file,
                        help='a quantized ONNX model (tools/quantize.py) to time as well')
    parser.add_argument('--image', type=existing_file, help='an image, resized to 640x480 (default: a synthetic one)')
    parser.add_argument('--warmup', type=nonneg_int, default=2)
    parser.add_argument('--repeats', type=positive_int, default=10)
    parser.add_argument('--cpu_threads', type=positive_int, help='default: the cores available to this process')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'gpu'))
    parser.add_argument('--no_dygraph', action='store_true', help='skip the dygraph row (slow on CPU)')
    parser.add_argument('--precision', choices=('fp32', 'bf16', 'fp16', 'int8'),
                        help='only rows of this precision (default: every precision available)')
    parser.add_argument('--rows', nargs='+', help='only rows whose "runtime precision" contains one of these, '
                                                  'e.g. --rows "oneDNN fp32" onnxruntime')
    args = parser.parse_args(argv)

    import paddle
    from infer import available_cpus, resolve_device
    from ppdet_hambox.core.workspace import load_config
    from ppdet_hambox.export.exporter import export_model
    from ppdet_hambox.export.model_cost import model_cost
    from ppdet_hambox.utils.cli import build_model

    args.cpu_threads = args.cpu_threads or available_cpus()
    paddle.set_device(resolve_device(args.device))
    # Latency does not depend on the weights: the backbone's ImageNet file is not needed.
    cfg = load_config(args.config, ['ResNet.pretrained=null'] + list(args.opt))
    image = load_image(args.image)
    paddle.seed(cfg.get('seed') or 0)     # the same random model on every run
    model = build_model(cfg)
    cost = model_cost(model, SIZE[1], SIZE[0])
    threshold = float(cfg.get('draw_threshold', 0.5))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if not model_dir:
            model_dir = tmp
            export_model(model, cfg, model_dir, protocol='vga')
        calls, names, skipped = build_rows(args, cfg, model, model_dir, image)
        times, last = time_round_robin(calls, args.warmup, args.repeats)
    rows = [summarise(runtime, precision, t, dets, threshold)
            for (runtime, precision), t, dets in zip(names, times, last)]
    print('config: {}  weights: {}  image: {} 640x480  Paddle {}  {} CPU threads'.format(
        os.path.relpath(args.config), cfg.get('weights') or 'random init', args.image or 'synthetic',
        paddle.__version__, args.cpu_threads))
    print(format_table(rows, skipped, cost))
    print(json.dumps({'config': args.config, 'weights': cfg.get('weights'), 'size': list(SIZE),
                      'paddle': paddle.__version__, 'cpu_threads': args.cpu_threads, 'cost': cost,
                      'results': rows, 'not_run': [list(s) for s in skipped]}))
    return rows


def run(argv=None):
    """``main`` with the project's error style: ``DeployError`` and the
    project's ``UserError`` are one line and exit status 2."""
    from ppdet_hambox.core.errors import UserError, run_tool

    def guarded(args):
        try:
            return main(args)
        except DeployError as err:
            raise UserError(str(err)) from None
    return run_tool(guarded, argv)


if __name__ == '__main__':
    sys.exit(run())
