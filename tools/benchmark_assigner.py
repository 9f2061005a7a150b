"""Time the anchor assigners on 640x640 images (34,125 anchors each).

For 10, 100 and 1000 faces per image of WIDER-like sizes, on a batch of
``--batch`` such images, measures side by side: ``SMSAssigner``,
``HAMBoxAssigner`` (vectorised, Paddle), their peak memory (host RSS, and
device memory on a GPU) over one call each, and with ``--batch 1`` the slow
literal reference of Algorithm 1 (``tests/reference_assigners.py``). Decoded
boxes imitate a trained regressor (anchors that overlap a face regress onto
it with a few percent of noise, the others are jittered anchors), so the
mining really compensates. The last line printed is JSON.

    python tools/benchmark_assigner.py [--faces 10 100 1000] [--batch 1] [--repeats 5]
        [--tile-bytes N] [--ref-max-faces 1000] [--config configs/demo/hambox_demo.yml --steps 3]
"""
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tests'))  # the slow reference lives beside the tests

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
import paddle  # noqa: E402

from ppdet_hambox.modeling.anchors import AnchorGenerator  # noqa: E402
from ppdet_hambox.core.errors import UserError, run_tool  # noqa: E402
from ppdet_hambox.utils.memory import PeakMemory  # noqa: E402
from ppdet_hambox.modeling.assigners import HAMBoxAssigner, SMSAssigner  # noqa: E402
from ppdet_hambox.modeling.assigners.matching import DEFAULT_TILE_BYTES  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, existing_file, nonneg_int, positive_int  # noqa: E402

IMAGE_SIZE = 640


def make_anchors():
    generator = AnchorGenerator()
    return generator(generator.feature_shapes(IMAGE_SIZE, IMAGE_SIZE)).numpy()


def make_faces(rng, num_faces):
    """WIDER-like faces: log-normal widths (median 24 px, most under 64 px),
    height 1.1-1.4 x width, anywhere inside the image."""
    w = np.clip(np.exp(rng.normal(np.log(24), 0.8, num_faces)), 4, 400)
    h = w * rng.uniform(1.1, 1.4, num_faces)
    x1 = rng.uniform(0, IMAGE_SIZE - w)
    y1 = rng.uniform(0, np.maximum(IMAGE_SIZE - h, 1))
    return np.stack([x1, y1, x1 + w, y1 + h], 1).astype('float32')


def make_decoded(rng, anchors, faces, chunk=2048):
    """Anchors whose centre lies in a face (the smallest such face) regress
    onto it with 4% noise; all others are anchors jittered by 10%."""
    size = anchors[:, 2:] - anchors[:, :2]
    pred = anchors + rng.normal(0, 0.1, anchors.shape).astype('float32') * np.tile(size, 2)
    centre = (anchors[:, :2] + anchors[:, 2:]) / 2
    area = (faces[:, 2] - faces[:, 0]) * (faces[:, 3] - faces[:, 1])
    for start in range(0, len(anchors), chunk):  # setup only, chunked for memory
        c = centre[start:start + chunk, None, :]
        inside = (c[..., 0] > faces[:, 0]) & (c[..., 0] < faces[:, 2]) & \
                 (c[..., 1] > faces[:, 1]) & (c[..., 1] < faces[:, 3])
        # only anchors of a comparable scale learn to regress onto the face
        scale = np.sqrt(area)[None, :] / size[start:start + chunk, :1]
        inside &= (scale > 0.5) & (scale < 3)
        hit = inside.any(1)
        face = np.where(inside, area[None, :], np.inf).argmin(1)[hit]
        fsize = np.tile(faces[face, 2:] - faces[face, :2], 2)
        pred[start:start + chunk][hit] = faces[face] + rng.normal(0, 0.04, fsize.shape) * fsize
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    return pred.astype('float32')


def time_interleaved(fns, repeats):
    """Median wall and CPU (process) time in ms of each function, called in
    turn ``repeats`` times after one warm-up call each: interleaving keeps a
    busy machine's load drift out of the comparison. Returns
    ``{name: (wall_ms, cpu_ms, last_result)}``."""
    results = {name: fn() for name, fn in fns.items()}
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            results[name] = fn()
            wall[name].append((time.perf_counter() - w) * 1000)
            cpu[name].append((time.process_time() - c) * 1000)
    return {name: (float(np.median(wall[name])), float(np.median(cpu[name])), results[name]) for name in fns}


def make_batch(anchors, num_faces, batch, seed=0):
    """``batch`` images of ``num_faces`` faces each: (gt_bbox [B, G, 4], decoded boxes [B, A, 4])."""
    rng = np.random.default_rng(seed)
    faces, preds = [], []
    for _ in range(batch):
        faces.append(make_faces(rng, num_faces))
        preds.append(make_decoded(rng, anchors, faces[-1]))
    return np.stack(faces), np.stack(preds)


def peak_of(fn):
    """(host peak GB, device peak GB or None) over one call of ``fn``."""
    with PeakMemory() as peak:
        fn()
    return round(peak.host_gb, 3), None if peak.device_gb is None else round(peak.device_gb, 3)


def bench_faces(anchors, num_faces, repeats, with_reference, batch=1, tile_bytes=DEFAULT_TILE_BYTES, seed=0):
    faces, pred = make_batch(anchors, num_faces, batch, seed)
    args = [paddle.to_tensor(anchors), paddle.to_tensor(pred), paddle.to_tensor(faces),
            paddle.ones([batch, num_faces], dtype='float32')]
    sms = SMSAssigner(tile_bytes=tile_bytes)
    hambox = HAMBoxAssigner(tile_bytes=tile_bytes)
    calls = {'sms': lambda: sms(args[0], None, *args[2:]), 'hambox': lambda: hambox(*args)}
    peaks = {name: peak_of(fn) for name, fn in calls.items()}
    times = time_interleaved(calls, repeats)
    (sms_ms, sms_cpu, _), (ham_ms, ham_cpu, fast) = times['sms'], times['hambox']
    labels = fast.labels.numpy()
    row = dict(faces=num_faces, batch=batch, sms_ms=round(sms_ms, 1), hambox_ms=round(ham_ms, 1),
               hambox_over_sms=round(ham_ms / sms_ms, 2), sms_cpu_ms=round(sms_cpu, 1),
               hambox_cpu_ms=round(ham_cpu, 1), hambox_over_sms_cpu=round(ham_cpu / sms_cpu, 2),
               sms_peak_gb=peaks['sms'][0], hambox_peak_gb=peaks['hambox'][0],
               sms_device_peak_gb=peaks['sms'][1], hambox_device_peak_gb=peaks['hambox'][1],
               mining_rounds=fast.rounds, positives=int((labels == 1).sum()),
               compensated=int((labels == 2).sum()), ignored=int((labels == -1).sum()),
               reference_ms=None, reference_agrees=None)
    if with_reference and batch == 1:
        from reference_assigners import hambox_ref
        start = time.perf_counter()
        ref = hambox_ref(anchors, pred[0], faces[0])
        row['reference_ms'] = round((time.perf_counter() - start) * 1000, 1)
        row['reference_agrees'] = bool(all(np.array_equal(getattr(fast, k).numpy()[0], ref[k])
                                           for k in ('labels', 'gt_index')))
    return row


class _Timed:
    """Wraps an assigner and adds up the wall time of its calls."""

    def __init__(self, assigner):
        self.assigner, self.ms, self.calls = assigner, 0.0, 0

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.assigner(*args)
        self.ms += (time.perf_counter() - start) * 1000
        self.calls += 1
        return out


def time_training_step(config, steps, overrides=(), faces_per_image=30):
    """TRAINING-STEP TIMING (SMS vs HAMBox): forward, assign, loss and
    backward of the config's model on one synthetic batch of the config's
    batch size and training resolution, the same batch and weights for each
    assigner. ``hambox_T0.3`` lowers T so that the untrained head's decoded
    boxes (about the anchors) do get compensated. Returns step and assign
    times (ms, medians over ``steps`` interleaved steps after a warm-up)."""
    from ppdet_hambox.core.workspace import create, load_config, parse_overrides
    from ppdet_hambox.modeling.assigners import SMSAssigner

    cfg = load_config(config, parse_overrides(list(overrides)))
    paddle.seed(0)
    model = create(cfg.architecture)
    model.train()
    batch = _synthetic_batch(cfg, faces_per_image)
    hambox = model.assigner
    variants = (('sms', SMSAssigner(hambox.pos_iou)), ('hambox', hambox),
                ('hambox_T0.3', HAMBoxAssigner(hambox.pos_iou, hambox.K, 0.3, hambox.ignore_iou)))
    result = dict(config=config, batch_size=int(batch['image'].shape[0]), size=int(batch['image'].shape[-1]),
                  faces_per_image=faces_per_image)
    timers = {name: _Timed(assigner) for name, assigner in variants}
    outputs = {}

    def step(name):
        model.assigner = timers[name]
        losses, stats = model(batch)
        losses['loss'].backward()
        model.clear_gradients()
        outputs[name] = stats
    times = time_interleaved({name: (lambda name=name: step(name)) for name, _ in variants}, steps)
    for name, _ in variants:
        wall, cpu, _ = times[name]
        result[name] = dict(step_ms=round(wall, 1), step_cpu_ms=round(cpu, 1),
                            assign_ms=round(timers[name].ms / timers[name].calls, 1),
                            num_compensated=round(_mean(outputs[name]['num_compensated']), 2))
    model.assigner = hambox
    for name in ('hambox', 'hambox_T0.3'):
        result[name + '_over_sms'] = round(result[name]['step_ms'] / result['sms']['step_ms'], 3)
        result[name + '_over_sms_cpu'] = round(result[name]['step_cpu_ms'] / result['sms']['step_cpu_ms'], 3)
    return result


def _mean(stat):
    total, count = stat
    return float(total) / max(float(count), 1.0)


def _synthetic_batch(cfg, faces_per_image, seed=0):
    """A batch of the config's size and resolution: noise images (only the
    timing matters) with WIDER-like faces."""
    rng = np.random.default_rng(seed)
    reader = cfg.get('TrainReader', {})
    batch_size = int(reader.get('batch_size', 2))
    size = _train_size(reader)
    gt = np.stack([make_faces(rng, faces_per_image) * (size / IMAGE_SIZE) for _ in range(batch_size)])
    return dict(image=paddle.to_tensor(rng.normal(0, 1, (batch_size, 3, size, size)).astype('float32')),
                gt_bbox=paddle.to_tensor(gt), gt_mask=paddle.ones([batch_size, faces_per_image]))


def _train_size(reader):
    """The square training size: the last ``Resize.target_size`` of the
    sample transforms, else 640."""
    size = IMAGE_SIZE
    for item in reader.get('sample_transforms', []) or []:
        if isinstance(item, dict) and 'Resize' in item:
            target = (item['Resize'] or {}).get('target_size', size)
            size = int(target[0] if isinstance(target, (list, tuple)) else target)
    return size


def main(argv=None):
    parser = ToolParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--faces', type=positive_int, nargs='+', default=[10, 100, 1000])
    parser.add_argument('--batch', type=positive_int, default=1, help='images per assigner call (reference only at 1)')
    parser.add_argument('--repeats', type=positive_int, default=5)
    parser.add_argument('--tile-bytes', type=positive_int, default=DEFAULT_TILE_BYTES,
                        help='the assigners\' tile_bytes (most bytes of one [B, a, G] temporary)')
    parser.add_argument('--ref-max-faces', type=nonneg_int, default=1000,
                        help='skip the slow reference above this many faces')
    parser.add_argument('--config', default=None, type=existing_file, help='also time a training step (SMS vs HAMBox)')
    parser.add_argument('--steps', type=positive_int, default=3)
    parser.add_argument('-o', '--opt', nargs='*', default=[], help='config overrides for --config')
    args = parser.parse_args(argv)
    for flag, value in (('--batch', args.batch), ('--tile-bytes', args.tile_bytes), ('--repeats', args.repeats)):
        if value < 1:
            raise UserError('{} must be at least 1, got {}'.format(flag, value))

    anchors = make_anchors()
    report = dict(image=IMAGE_SIZE, anchors=int(len(anchors)), device=paddle.get_device(),
                  tile_bytes=args.tile_bytes, rows=[])
    for num_faces in args.faces:
        row = bench_faces(anchors, num_faces, args.repeats, num_faces <= args.ref_max_faces, args.batch,
                          args.tile_bytes)
        print(' '.join('{}={}'.format(k, v) for k, v in row.items()), flush=True)
        report['rows'].append(row)
    if args.config:
        report['train_step'] = time_training_step(args.config, args.steps, args.opt)
        print('train_step', json.dumps(report['train_step']), flush=True)
    print(json.dumps(report))


if __name__ == '__main__':
    sys.exit(run_tool(main))
