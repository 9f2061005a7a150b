"""End-to-end latency of one 640x480 image: the exported model under Paddle
Inference next to the same model in dygraph, in one run.

    python deploy/python/benchmark.py [-c configs/hambox/hambox_r50_lfpn_dh_ssh_pa_640.yml]
        [-o weights=W.pdparams] [--image F] [--repeats 10] [--warmup 2]
        [--cpu_threads 2] [--device cpu|gpu]

The model is built from the config (random initialisation, without the
backbone's ImageNet file, unless ``weights`` is given), exported to a temporary folder with the VGA protocol,
and timed on the same image: pre-processing, network, NMS and reading the
results back, per call. A 640x480 image fits VGA exactly (scale 1). The
last line printed is JSON.
"""
import argparse
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
        raise IOError('cannot read image {}'.format(path))
    return cv2.resize(image, SIZE, interpolation=cv2.INTER_LINEAR)


def time_calls(fn, warmup, repeats):
    """(milliseconds per timed call, last result)."""
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return np.asarray(times), result


def summarise(name, times, dets, threshold):
    return {'backend': name, 'mean_ms': float(times.mean()), 'p50_ms': float(np.percentile(times, 50)),
            'p90_ms': float(np.percentile(times, 90)), 'runs': int(len(times)),
            'detections': int(len(dets)), 'above_threshold': int((dets[:, 4] >= threshold).sum())}


def format_table(rows):
    lines = ['{:<34}{:>10}{:>10}{:>10}{:>8}{:>12}'.format('backend', 'mean ms', 'p50 ms', 'p90 ms', 'runs',
                                                         'detections')]
    lines += ['{:<34}{:>10.1f}{:>10.1f}{:>10.1f}{:>8}{:>12}'.format(
        r['backend'], r['mean_ms'], r['p50_ms'], r['p90_ms'], r['runs'], r['detections']) for r in rows]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Paddle Inference vs dygraph latency at 640x480.')
    parser.add_argument('-c', '--config', default=DEFAULT_CONFIG)
    parser.add_argument('-o', '--opt', nargs='*', default=[], help='config overrides, e.g. weights=...')
    parser.add_argument('--image', help='an image, resized to 640x480 (default: a synthetic one)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--cpu_threads', type=int, default=2)
    parser.add_argument('--device', default='cpu', choices=('cpu', 'gpu'))
    parser.add_argument('--no_mkldnn_run', action='store_true', help='skip the oneDNN Paddle Inference row')
    args = parser.parse_args(argv)

    import paddle
    from infer import Detector
    from ppdet_hambox.engine.export import export_model
    from ppdet_hambox.engine.predictor import Predictor
    from ppdet_hambox.engine.tool_args import build_model
    from ppdet_hambox.core.workspace import load_config

    paddle.set_device(args.device)
    # Latency does not depend on the weights: the backbone's ImageNet file is not needed.
    cfg = load_config(args.config, ['ResNet.pretrained=null'] + list(args.opt))
    image = load_image(args.image)
    paddle.seed(cfg.get('seed') or 0)     # the same random model on every run
    model = build_model(cfg)
    threshold = float(cfg.get('draw_threshold', 0.5))
    rows = []
    with tempfile.TemporaryDirectory() as model_dir:
        export_model(model, cfg, model_dir, protocol='vga')
        variants = [('paddle_inference {} {}t'.format(args.device, args.cpu_threads), False)]
        if args.device == 'cpu' and not args.no_mkldnn_run:
            variants.append(('paddle_inference cpu {}t oneDNN'.format(args.cpu_threads), True))
        for name, mkldnn in variants:
            detector = Detector(model_dir, args.device, args.cpu_threads, mkldnn)
            times, dets = time_calls(lambda: detector.predict(image), args.warmup, args.repeats)
            rows.append(summarise(name, times, dets, threshold))
            del detector
    predictor = Predictor(model, cfg, 'vga')
    times, dets = time_calls(lambda: predictor.detect(image), args.warmup, args.repeats)
    rows.append(summarise('dygraph {}'.format(args.device), times, dets, threshold))
    print('config: {}  weights: {}  image: {} 640x480  Paddle {}'.format(
        os.path.relpath(args.config), cfg.get('weights') or 'random init', args.image or 'synthetic',
        paddle.__version__))
    print(format_table(rows))
    print(json.dumps({'config': args.config, 'weights': cfg.get('weights'), 'size': list(SIZE),
                      'paddle': paddle.__version__, 'results': rows}))
    return rows


if __name__ == '__main__':
    main()
