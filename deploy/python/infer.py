"""Standalone Paddle Inference predictor for an exported HAMBox model.

Needs only paddlepaddle (with its Pillow), numpy, opencv and pyyaml (not
ppdet_hambox): the pre-processing comes from the export's ``infer_cfg.yml``.
Images are decoded as OpenCV does by default (a JPEG's EXIF orientation is
applied), as in training and evaluation.

    python deploy/python/infer.py --model_dir output_inference/hambox \\
        --image_file F | --image_dir D | --video_file V [--device auto|cpu|gpu] \\
        [--cpu_threads N] [--disable_mkldnn] [--precision fp32|bf16|fp16|int8] \\
        [--run_mode paddle|trt] \\
        [--output_dir output] [--threshold 0.5] [--save_json] [--max_pixels 40M] [--run_benchmark]

--image_dir searches sub-folders. An unreadable image, or one whose header
declares more than --max_pixels pixels, is skipped with a warning. Exit
status: 0 done, 1 some image skipped, 2 bad input or a failed write (one
``error:`` line naming the file or flag), 130 Ctrl-C. A file in --output_dir
this project did not write (an input photo) is never replaced.
"""
import argparse
import collections
import io
import json
import os
import re
import sys
import threading
import time
import warnings

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deploy_io import (INFER_CFG, MODEL_FILE, PARAMS_FILE, DeployError, ToolParser,  # noqa: E402,F401
                       check_export, claim, export_dir, nonneg_int, output_dir,
                       output_folder, positive_int, probability, run_cli, write_bytes, write_image, write_json)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
MAX_PIXELS = 40 * 10 ** 6    # default --max_pixels (width x height), here and in serve.py
COUNT_UNITS = {'': 1, 'K': 10 ** 3, 'M': 10 ** 6, 'G': 10 ** 9}
RUN_MODES = ('paddle', 'trt', 'trt_fp32', 'trt_fp16')
PRECISIONS = ('fp32', 'bf16', 'fp16', 'int8')
MKLDNN_CACHE_CAPACITY = 10   # input shapes whose oneDNN kernels are kept
TIMING_WINDOW = 1000         # calls whose timings a Detector keeps
PADDLE_LOG_ENV = 'HAMBOX_PADDLE_LOG'   # 1: show Paddle's own logging
PADDLE_NOISE = ('No ccache found', "Tensor do not have 'place' interface")


def paddle_log_wanted():
    """True when ``$HAMBOX_PADDLE_LOG`` asks for Paddle's own logging."""
    return os.environ.get(PADDLE_LOG_ENV, '0').strip().lower() not in ('', '0', 'false', 'no')


def quiet_paddle():
    """Unless ``HAMBOX_PADDLE_LOG=1``: hide glog INFO / WARNING lines and
    Paddle's start-up warnings, through the environment so that child
    processes inherit it. Call before paddle is imported (the same rule as
    ``ppdet_hambox.utils.logger.quiet_paddle``; this script stands alone)."""
    if paddle_log_wanted():
        return False
    os.environ.setdefault('GLOG_minloglevel', '2')
    inherited = [entry for entry in os.environ.get('PYTHONWARNINGS', '').split(',') if entry]
    entries = ['ignore:{}'.format(message) for message in PADDLE_NOISE]
    os.environ['PYTHONWARNINGS'] = ','.join(inherited + [e for e in entries if e not in inherited])
    for message in PADDLE_NOISE:
        warnings.filterwarnings('ignore', message=message)
    return True


# ----------------------------------------------------------------------------- pre-processing

class Resize:
    """``rule: fit``: the largest size that fits ``target_size`` [long, short]
    in the image's own orientation; ``rule: cap``: original size, shrunk so
    the long side is at most ``max_side``. Records the exact scale factor."""

    def __init__(self, rule, target_size=(640, 480), max_side=0, interp='linear', **_):
        if rule not in ('fit', 'cap'):
            raise ValueError('{}: Resize.rule must be fit or cap, got {!r}'.format(INFER_CFG, rule))
        if interp != 'linear':
            raise ValueError('{}: Resize.interp {!r} is not supported (linear)'.format(INFER_CFG, interp))
        self.rule, self.target_size, self.max_side = rule, list(target_size), max_side

    def scale(self, height, width):
        if self.rule == 'fit':
            long_t, short_t = max(self.target_size), min(self.target_size)
            return min(long_t / max(height, width), short_t / min(height, width))
        return min(1.0, self.max_side / max(height, width)) if self.max_side > 0 else 1.0

    def __call__(self, image, info):
        height, width = image.shape[:2]
        scale = self.scale(height, width)
        new_h, new_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
        if (new_h, new_w) != (height, width):
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        info['im_shape'] = np.array([new_h, new_w], np.float32)
        info['scale_factor'] = np.array([new_h / height, new_w / width], np.float32)
        return image, info


class NormalizeImage:
    """``(image / 255 - mean) / std`` (no ``/ 255`` without ``is_scale``),
    channels reversed first with ``to_rgb``."""

    def __init__(self, mean, std, is_scale=True, to_rgb=True, **_):
        scale = 1.0 / 255.0 if is_scale else 1.0
        self.multiplier = (scale / np.asarray(std, np.float32)).astype(np.float32)
        self.offset = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).astype(np.float32)
        self.to_rgb = to_rgb

    def __call__(self, image, info):
        if self.to_rgb:
            image = image[:, :, ::-1]
        return image.astype(np.float32) * self.multiplier - self.offset, info


class Permute:
    def __init__(self, **_):
        pass

    def __call__(self, image, info):
        return np.ascontiguousarray(image.transpose(2, 0, 1)), info


class PadStride:
    """Pad a CHW image at the bottom and right to multiples of ``stride``."""

    def __init__(self, stride=0, fill_value=0.0, **_):
        self.stride, self.fill_value = int(stride), float(fill_value)

    def __call__(self, image, info):
        if self.stride <= 0:
            return image, info
        channels, height, width = image.shape
        new_h = -(-height // self.stride) * self.stride
        new_w = -(-width // self.stride) * self.stride
        if (new_h, new_w) != (height, width):
            padded = np.full((channels, new_h, new_w), self.fill_value, np.float32)
            padded[:, :height, :width] = image
            image = padded
        return image, info


OPS = {'Resize': Resize, 'NormalizeImage': NormalizeImage, 'Permute': Permute, 'PadStride': PadStride}


class PredictConfig:
    """``infer_cfg.yml`` of an export: pre-processing ops, threshold, labels."""

    def __init__(self, model_dir):
        path = os.path.join(model_dir, INFER_CFG)
        cfg = check_export(model_dir)
        self.ops = []
        for index, step in enumerate(cfg['Preprocess']):
            step = dict(step)
            kind = step.pop('type', None)
            if kind not in OPS:
                raise DeployError('{}: Preprocess[{}] has unknown type {!r} (known: {})'.format(
                    path, index, kind, ', '.join(OPS)))
            try:
                self.ops.append(OPS[kind](**step))
            except (TypeError, ValueError) as err:
                raise DeployError('{}: Preprocess[{}] ({}): {}'.format(path, index, kind, err)) from None
        self.draw_threshold = float(cfg['draw_threshold'])
        self.label_list = list(cfg['label_list'])
        self.protocol = cfg.get('protocol', '')
        self.arch = cfg.get('arch', '')

    def preprocess(self, image):
        info = {'im_shape': np.array(image.shape[:2], np.float32),
                'scale_factor': np.ones(2, np.float32)}
        for op in self.ops:
            image, info = op(image, info)
        return {'image': image[None].astype(np.float32),
                'im_shape': info['im_shape'][None], 'scale_factor': info['scale_factor'][None]}


# ----------------------------------------------------------------------------- predictor

def tensorrt_available():
    """(available, reason): TensorRT needs a CUDA build of Paddle compiled with it."""
    import paddle
    if not paddle.is_compiled_with_cuda():
        return False, 'this Paddle build has no CUDA (TensorRT needs paddlepaddle-gpu built with TensorRT)'
    version = paddle.inference.get_trt_compile_version()
    if not any(version):
        return False, 'this Paddle build was compiled without TensorRT'
    return True, 'TensorRT {} (compiled in)'.format('.'.join(map(str, version)))


def resolve_device(device):
    """``auto``: ``gpu`` when this Paddle build has CUDA and sees a GPU, else ``cpu``."""
    if device != 'auto':
        return device
    import paddle
    return 'gpu' if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else 'cpu'


def available_cpus():
    """The cores this process may run on (its CPU affinity where the OS has
    one, e.g. a container's cpuset), not the machine's total."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def cpu_supports_bf16():
    """True when oneDNN can run bfloat16 natively here (AVX512-BF16 or AMX)."""
    from paddle.base import core
    return bool(core.supports_bfloat16())


def check_precision(precision, device, run_mode='paddle'):
    """Refuse, with one line naming the flag, a precision this device or build
    cannot run; otherwise return it. int8 needs TensorRT (GPU)."""
    if precision not in PRECISIONS:
        raise DeployError('--precision must be one of {}, got {!r}'.format(', '.join(PRECISIONS), precision))
    if device == 'cpu':
        if precision == 'bf16' and not cpu_supports_bf16():
            raise DeployError('--precision bf16: this CPU has no native bfloat16 support (needs AVX512-BF16 '
                              'or AMX); use --precision fp32')
        if precision in ('fp16', 'int8'):
            raise DeployError('--precision {} runs on a GPU (Paddle Inference{}); on CPU use fp32 or bf16'.format(
                precision, ' with TensorRT' if precision == 'int8' else ''))
    elif device == 'gpu':
        if precision == 'bf16':
            raise DeployError('--precision bf16 is the CPU (oneDNN) low precision; on a GPU use fp16')
        if precision == 'int8' and run_mode != 'trt':
            raise DeployError('--precision int8 on a GPU needs TensorRT: add --run_mode trt')
    return precision


def split_run_mode(run_mode, precision):
    """``trt_fp32`` / ``trt_fp16`` (older spelling) -> (``trt``, precision)."""
    if run_mode not in RUN_MODES:
        raise DeployError('--run_mode must be one of {}, got {!r}'.format(', '.join(RUN_MODES), run_mode))
    if run_mode.startswith('trt_'):
        implied = run_mode[len('trt_'):]
        if precision not in ('fp32', implied):
            raise DeployError('--run_mode {} and --precision {} disagree; use --run_mode trt --precision {}'.format(
                run_mode, precision, precision))
        return 'trt', implied
    return run_mode, precision


def make_config(model_dir, device='auto', cpu_threads=None, enable_mkldnn=True, run_mode='paddle',
                precision='fp32', mkldnn_cache_capacity=MKLDNN_CACHE_CAPACITY, trt_min_size=128, trt_max_size=1536):
    """The ``paddle.inference.Config`` of the fastest correct settings: on CPU
    oneDNN (unless ``enable_mkldnn=False``) with a bounded per-shape cache and
    ``cpu_threads`` (default: the cores available to the process); ``bf16``
    through oneDNN; on GPU ``fp16`` as Paddle's half precision or, with
    ``run_mode='trt'``, TensorRT fp32 / fp16 / int8."""
    import paddle.inference as paddle_infer
    device = resolve_device(device)
    run_mode, precision = split_run_mode(run_mode, precision)
    model_file, params_file = os.path.join(model_dir, MODEL_FILE), os.path.join(model_dir, PARAMS_FILE)
    for path in (model_file, params_file):
        if not os.path.isfile(path):
            raise FileNotFoundError('{} not found (a Paddle 3 PIR export: model.json + model.pdiparams)'.format(path))
    if device not in ('cpu', 'gpu'):
        raise ValueError('--device must be auto, cpu or gpu, got {!r}'.format(device))
    if run_mode == 'trt':
        ok, reason = tensorrt_available()
        if not ok or device != 'gpu':
            raise RuntimeError('--run_mode trt needs --device gpu and TensorRT: {}'.format(
                reason if not ok else 'device is {}'.format(device)))
    check_precision(precision, device, run_mode)
    config = paddle_infer.Config(model_file, params_file)
    if device == 'gpu':
        import paddle
        if not paddle.is_compiled_with_cuda():
            raise RuntimeError('--device gpu: this Paddle build has no CUDA; use --device cpu')
        half = precision == 'fp16' and run_mode == 'paddle'
        config.enable_use_gpu(200, 0, paddle_infer.PrecisionType.Half if half else paddle_infer.PrecisionType.Float32)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(cpu_threads or available_cpus()))
        if precision == 'bf16' and not enable_mkldnn:
            raise DeployError('--precision bf16 runs through oneDNN: drop --disable_mkldnn')
        if enable_mkldnn:
            config.enable_mkldnn()
            # oneDNN caches kernels per input shape (and calling thread): bound it.
            config.set_mkldnn_cache_capacity(int(mkldnn_cache_capacity))
            if precision == 'bf16':
                config.enable_mkldnn_bfloat16()
        else:
            config.disable_mkldnn()
    if run_mode == 'trt':
        modes = {'fp32': paddle_infer.PrecisionType.Float32, 'fp16': paddle_infer.PrecisionType.Half,
                 'int8': paddle_infer.PrecisionType.Int8}
        # int8: TensorRT calibrates on the first inputs (use_calib_mode).
        config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                                      precision_mode=modes[precision], use_static=False,
                                      use_calib_mode=precision == 'int8')
        config.set_trt_dynamic_shape_info(
            {'image': [1, 3, trt_min_size, trt_min_size]}, {'image': [1, 3, trt_max_size, trt_max_size]},
            {'image': [1, 3, 480, 640]})
    config.switch_ir_optim(True)
    if not paddle_log_wanted():
        config.disable_glog_info()  # the PIR pass banners and glog lines of predictor creation
    return config


class Detector:
    """Runs an exported model: ``predict(image)`` -> ``[N, 5]`` (x1 y1 x2 y2
    score, original pixels, every detection the model keeps; ``threshold``
    is the caller's cut, default ``infer_cfg.yml`` ``draw_threshold``).

    Defaults are the fastest correct ones: on CPU oneDNN on
    (``enable_mkldnn=False`` turns it off), ``cpu_threads`` = the cores
    available to the process, a oneDNN cache of ``mkldnn_cache_capacity``
    input shapes; ``precision`` ``fp32`` (``bf16`` on CPUs with native
    support, ``fp16`` / TensorRT ``int8`` on GPUs). ``self.times`` keeps the
    per-stage seconds of the last ``timing_window`` calls only. A predictor is
    not thread-safe: calls on one Detector are serialised by a lock.
    """

    def __init__(self, model_dir, device='auto', cpu_threads=None, enable_mkldnn=True, run_mode='paddle',
                 precision='fp32', threshold=None, mkldnn_cache_capacity=MKLDNN_CACHE_CAPACITY,
                 timing_window=TIMING_WINDOW):
        import paddle.inference as paddle_infer
        self.cfg = PredictConfig(model_dir)
        self.device = resolve_device(device)
        self.run_mode, self.precision = split_run_mode(run_mode, precision)
        self.cpu_threads = int(cpu_threads or available_cpus())
        self.enable_mkldnn = bool(enable_mkldnn) and self.device == 'cpu'
        self.threshold = self.cfg.draw_threshold if threshold is None else float(threshold)
        config = make_config(model_dir, self.device, self.cpu_threads, enable_mkldnn, run_mode, precision,
                             mkldnn_cache_capacity)
        try:
            self.predictor = paddle_infer.create_predictor(config)
        except (RuntimeError, OSError, ValueError) as err:  # Paddle's C++ errors for a damaged file
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise DeployError('--model_dir {}: cannot load {} + {} (damaged or from another program? re-export '
                              'with tools/export.py): {}'.format(model_dir, MODEL_FILE, PARAMS_FILE, reason)) from None
        self.input_names = self.predictor.get_input_names()
        self.timing_window = int(timing_window)
        self._lock = threading.Lock()
        self.reset_times()

    def reset_times(self):
        """Forget the recorded timings (e.g. after warm-up runs)."""
        self.times = {stage: collections.deque(maxlen=self.timing_window)
                      for stage in ('preprocess', 'inference', 'postprocess')}

    def run(self, feeds):
        """Raw outputs, by position: ``bbox [N, 6]``, ``bbox_num [B]``."""
        for name in self.input_names:
            if name not in feeds:
                raise KeyError('the model takes input {!r}, which infer_cfg.yml pre-processing does not make'
                               .format(name))
        with self._lock:
            for name in self.input_names:
                self.predictor.get_input_handle(name).copy_from_cpu(feeds[name])
            self.predictor.run()
            return [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.predictor.get_output_names()]

    def predict(self, image):
        t0 = time.perf_counter()
        feeds = self.cfg.preprocess(image)
        t1 = time.perf_counter()
        bbox, bbox_num = self.run(feeds)[:2]
        t2 = time.perf_counter()
        count = int(np.asarray(bbox_num).reshape(-1)[0])
        bbox = np.asarray(bbox, np.float32).reshape(-1, 6)[:count]
        dets = np.concatenate([bbox[:, 2:6], bbox[:, 1:2]], axis=1)
        height, width = image.shape[:2]
        dets[:, [0, 2]] = np.clip(dets[:, [0, 2]], 0, width)
        dets[:, [1, 3]] = np.clip(dets[:, [1, 3]], 0, height)
        dets = dets[(dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])]
        t3 = time.perf_counter()
        with self._lock:
            for key, seconds in zip(self.times, (t1 - t0, t2 - t1, t3 - t2)):
                self.times[key].append(seconds)
        return dets


# ----------------------------------------------------------------------------- outputs

def draw(image, dets, threshold):
    out = image.copy()
    thickness = max(1, int(round(max(out.shape[:2]) / 500)))
    keep = dets[dets[:, 4] >= threshold]
    for (x1, y1, x2, y2), score in zip(np.round(keep[:, :4]).astype(int).tolist(), keep[:, 4].tolist()):
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), thickness)
        cv2.putText(out, '{:.2f}'.format(score), (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35 * thickness, (0, 255, 0), 1, cv2.LINE_AA)
    return out


def to_records(dets, threshold, label, source):
    keep = dets[dets[:, 4] >= threshold].astype(np.float64)
    return [{'im_file': source, 'category': label, 'bbox': [x1, y1, x2 - x1, y2 - y1], 'score': s}
            for x1, y1, x2, y2, s in keep.tolist()]


def latency_summary(times):
    """{stage: {mean, p50, p90} in milliseconds} plus the total per image."""
    out = {}
    stages = dict(times)
    stages['total'] = [sum(v) for v in zip(*times.values())]
    for stage, values in stages.items():
        ms = np.asarray(values, np.float64) * 1000.0
        out[stage] = {'mean': float(ms.mean()), 'p50': float(np.percentile(ms, 50)),
                      'p90': float(np.percentile(ms, 90)), 'runs': int(len(ms))}
    return out


def format_latency(summary):
    rows = ['{:<12}{:>10}{:>10}{:>10}'.format('stage (ms)', 'mean', 'p50', 'p90')]
    rows += ['{:<12}{:>10.2f}{:>10.2f}{:>10.2f}'.format(k, v['mean'], v['p50'], v['p90'])
             for k, v in summary.items()]
    return '\n'.join(rows)


def list_images(image_file, image_dir):
    """``[(path, output name)]``: ``image_file`` with its file name, or every
    image in ``image_dir`` and its sub-folders with its path relative to it."""
    if image_file:
        if not os.path.isfile(image_file):
            raise DeployError('--image_file {}: no such file'.format(image_file))
        return [(image_file, os.path.basename(image_file))]
    if not os.path.isdir(image_dir):
        raise DeployError('--image_dir {}: no such folder'.format(image_dir))
    images, ignored = [], []
    for root, folders, names in os.walk(image_dir):
        folders.sort()
        for name in sorted(names):
            (images if name.lower().endswith(IMAGE_EXTENSIONS) else ignored).append(os.path.join(root, name))
    if ignored:
        print('warning: --image_dir {}: ignored {} file(s) without an image extension ({}): {}{}'.format(
            image_dir, len(ignored), ', '.join(IMAGE_EXTENSIONS), ', '.join(ignored[:5]),
            ', ...' if len(ignored) > 5 else ''), file=sys.stderr)
    if not images:
        raise DeployError('--image_dir {} holds no image ({}), in sub-folders neither'.format(
            image_dir, ', '.join(IMAGE_EXTENSIONS)))
    return sorted((path, os.path.relpath(path, image_dir)) for path in images)


def parse_size(text, units, flag):
    """``40M``, ``20MB``, ... -> int, with ``units`` {suffix: multiplier}; an
    ``argparse.ArgumentTypeError`` naming ``flag`` otherwise."""
    match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*', str(text))
    unit = match.group(2).upper() if match else None
    if unit not in units:
        raise argparse.ArgumentTypeError('{}: {!r} is not a size like 20MB / 40M (units: {})'.format(
            flag, text, ', '.join(u for u in units if u)))
    value = int(float(match.group(1)) * units[unit])
    if value <= 0:
        raise argparse.ArgumentTypeError('{} must be positive, got {!r}'.format(flag, text))
    return value


def declared_size(data, formats=None):
    """``(width, height)`` that the header of the encoded image ``data``
    declares; no pixel is decoded. Pillow's errors pass through."""
    with Image.open(io.BytesIO(data), formats=formats) as image:
        return image.size


def decode_image(data):
    """Encoded bytes -> BGR ``uint8`` image with the EXIF orientation applied
    (OpenCV's default), or None when they do not decode."""
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:   # e.g. over OpenCV's own pixel limit
        return None


def read_image(path, max_pixels=None):
    """``(BGR image, '')``, or ``(None, reason)`` when the file cannot be read
    or its header declares more than ``max_pixels`` pixels (checked before
    decoding)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as error:
        return None, 'cannot read it: {}'.format(error.strerror or error)
    if not data:
        return None, 'empty file'
    if max_pixels is not None:
        try:
            width, height = declared_size(data)
        except Exception as error:  # any failure to parse a header: not a readable image
            return None, 'unreadable image header: {}: {}'.format(type(error).__name__, error)
        if width * height > max_pixels:
            return None, 'image of {}x{} = {} pixels is over the limit of {} pixels (--max_pixels)'.format(
                width, height, width * height, max_pixels)
    image = decode_image(data)
    if image is None:
        return None, 'not decodable (corrupt or not an image)'
    return image, ''


def skip_summary(total, skipped, named=3):
    """``N images, K skipped: a, b, c, ...``."""
    line = '{} images, {} skipped'.format(total, len(skipped))
    if skipped:
        line += ': ' + ', '.join(p for p, _ in skipped[:named]) + (', ...' if len(skipped) > named else '')
    return line


def run_images(detector, images, args, threshold):
    """Detect, draw to ``<output_dir>/<output name>``; an unreadable image is
    skipped with a warning. Returns (records, skipped [(path, reason)])."""
    records, skipped = [], []
    for path, rel in images:
        image, reason = read_image(path, args.max_pixels)
        if image is None:
            skipped.append((path, reason))
            print('warning: skipped {}: {}'.format(path, reason), file=sys.stderr)
            continue
        if args.run_benchmark:
            for _ in range(args.warmup):
                detector.predict(image)
            for values in detector.times.values():
                for _ in range(min(args.warmup, len(values))):
                    values.pop()
            for _ in range(args.repeats):
                dets = detector.predict(image)
        else:
            dets = detector.predict(image)
        out_path = os.path.join(args.output_dir, rel)
        write_image(out_path, draw(image, dets, threshold))
        records.extend(to_records(dets, threshold, detector.cfg.label_list[0], path))
        print('{}: {} faces >= {:.2f} -> {}'.format(path, int((dets[:, 4] >= threshold).sum()), threshold, out_path))
    print(skip_summary(len(images), skipped), file=sys.stderr if skipped else sys.stdout)
    return records, skipped


def run_video(detector, path, args, threshold):
    if not os.path.isfile(path):
        raise DeployError('--video_file {}: no such file'.format(path))
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise DeployError('--video_file {}: cannot open it as a video'.format(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out_path = claim(os.path.join(args.output_dir, os.path.splitext(os.path.basename(path))[0] + '.mp4'))
    tmp = os.path.join(args.output_dir, '.{}.tmp.mp4'.format(os.path.basename(out_path)))
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        raise DeployError('cannot write {}: OpenCV cannot open an mp4 writer for {}x{} frames at {:g} fps'.format(
            out_path, width, height, fps))
    records, frame_index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        dets = detector.predict(frame)
        writer.write(draw(frame, dets, threshold))
        records.extend(to_records(dets, threshold, detector.cfg.label_list[0], '{}#{}'.format(path, frame_index)))
        frame_index += 1
    capture.release()
    writer.release()
    try:
        with open(tmp, 'rb') as f:
            data = f.read()
    finally:
        os.remove(tmp)
    if not data:
        raise DeployError('cannot write {}: the video writer wrote nothing (a full disk?)'.format(out_path))
    write_bytes(out_path, data)
    print('{}: {} frames -> {}'.format(path, frame_index, out_path))
    return records


def parse_args(argv=None):
    parser = ToolParser(description='HAMBox face detection with Paddle Inference.')
    parser.add_argument('--model_dir', required=True, type=export_dir,
                        help='folder of model.json, model.pdiparams, infer_cfg.yml')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image_file', help='one image (checked after the model folder and --device)')
    source.add_argument('--image_dir', help='a folder of images, sub-folders included (drawings keep '
                                            'the relative layout under --output_dir)')
    source.add_argument('--video_file')
    parser.add_argument('--device', default='auto', choices=('auto', 'cpu', 'gpu'),
                        help='auto: gpu when this Paddle build has CUDA and sees a GPU, else cpu')
    parser.add_argument('--cpu_threads', type=positive_int, help='default: the cores available to this process')
    mkldnn = parser.add_mutually_exclusive_group()
    mkldnn.add_argument('--disable_mkldnn', action='store_true', help='turn oneDNN off on CPU (it is on by default)')
    mkldnn.add_argument('--enable_mkldnn', action='store_true', help='oneDNN on CPU (the default; kept for old scripts)')
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS,
                        help='fp32; bf16 on CPUs with native bfloat16; fp16 on GPUs; int8 with TensorRT')
    parser.add_argument('--run_mode', default='paddle', choices=RUN_MODES,
                        help='trt* need a GPU build of Paddle compiled with TensorRT (trt_fp16 = trt + fp16)')
    parser.add_argument('--output_dir', default='output', type=output_dir)
    parser.add_argument('--threshold', type=probability,
                        help='lowest score kept (default: infer_cfg.yml draw_threshold)')
    parser.add_argument('--save_json', action='store_true', help='write <output_dir>/bbox.json')
    parser.add_argument('--max_pixels', type=lambda t: parse_size(t, COUNT_UNITS, '--max_pixels'), default=MAX_PIXELS,
                        help='skip images whose header declares more pixels, width x height (K/M/G = '
                             '1e3/1e6/1e9; default 40M, as serve.py)')
    parser.add_argument('--run_benchmark', action='store_true',
                        help='time pre-process, inference and post-process over repeated runs per image')
    parser.add_argument('--warmup', type=nonneg_int, default=3, help='untimed runs per image with --run_benchmark')
    parser.add_argument('--repeats', type=positive_int, default=20, help='timed runs per image with --run_benchmark')
    return parser.parse_args(argv)


def check_model_dir(model_dir):
    """The export's files and infer_cfg.yml are usable, else a DeployError naming them."""
    check_export(model_dir)


def check_outputs(images, args):
    """Before any work: --output_dir can be written and replaces no file this project did not write."""
    output_folder(args.output_dir)
    for _, rel in images or []:
        claim(os.path.join(args.output_dir, rel))
    if args.save_json:
        claim(os.path.join(args.output_dir, 'bbox.json'), '--save_json')


def check_device(device):
    import paddle
    if device == 'gpu' and not paddle.is_compiled_with_cuda():
        raise DeployError('--device gpu: this Paddle build has no CUDA; use --device cpu (or auto)')


def main(argv=None):
    """Exit status: 0 done, 1 some image skipped, 2 bad input (see run_cli)."""
    quiet_paddle()
    args = parse_args(argv)
    # --max_pixels is checked from each header first; Pillow's own bomb limit would refuse earlier.
    Image.MAX_IMAGE_PIXELS = None
    check_model_dir(args.model_dir)
    check_device(args.device)
    images = None if args.video_file else list_images(args.image_file, args.image_dir)
    check_outputs(images, args)
    device = resolve_device(args.device)
    detector = Detector(args.model_dir, device=device, cpu_threads=args.cpu_threads,
                        enable_mkldnn=not args.disable_mkldnn, run_mode=args.run_mode, precision=args.precision)
    threshold = detector.cfg.draw_threshold if args.threshold is None else args.threshold
    skipped = []
    if args.video_file:
        records = run_video(detector, args.video_file, args, threshold)
    else:
        records, skipped = run_images(detector, images, args, threshold)
    if args.save_json:
        json_path = write_json(os.path.join(args.output_dir, 'bbox.json'), records)
        print('detections written to {}'.format(json_path))
    if args.run_benchmark:
        summary = latency_summary(detector.times)
        print('latency over {} timed runs ({}, {} threads{}, run_mode {}, {}):'.format(
            summary['total']['runs'], device, detector.cpu_threads,
            ', oneDNN' if detector.enable_mkldnn else '', detector.run_mode, detector.precision))
        print(format_latency(summary))
        print(json.dumps({'latency_ms': summary}))
    return 1 if skipped else 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
