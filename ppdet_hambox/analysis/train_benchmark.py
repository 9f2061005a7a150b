"""A WIDER-shaped stress run of the real training step (``tools/benchmark_train.py``).

The ``crowded`` images of a WIDER FACE annotation file with the most faces
go through the config's own ``TrainReader`` (its transforms, batch size and
workers; in order, most crowded first, no shuffle) and the config's own
training step: model forward, assignment, loss, backward, optimizer update
(with the LR step and, when on, the EMA update). One warm-up step is not
timed; then ``steps`` steps are, cycling over the images.

Without an image folder the pixels are synthetic (a blank image of the size
read from the image headers or estimated from the annotation, as the
``train`` protocol of ``anchor_stats`` does): timing and memory do not depend
on pixel values.

Stage times are wall-clock, each stage synchronised with the device at both
ends (a no-op on a CPU), so a stage is not charged for work queued before
it. ``forward`` is the model's training call minus the time spent inside the
assigners and the losses; ``assign`` covers every assigner call (the main
one and the pyramid-anchor branches'), ``loss`` the losses without their
assigners; ``data`` is the wait for the next batch; ``total`` their sum and
``wall`` the whole step timed at once (the two agree up to the face
counting between stages). Memory: the main
process's peak RSS over the whole run (warm-up included, where the most
crowded batch goes) and, on an accelerator, its peak allocated memory.
"""
import time

import numpy as np
import paddle

from ppdet_hambox.analysis.train_faces import (DEFAULT_ASSUMED_SIZE, BlankDecode, estimate_image_sizes,
                                              header_image_sizes)
from ppdet_hambox.core.errors import UserError
from ppdet_hambox.core.workspace import create
from ppdet_hambox.data.source.widerface import WIDERFaceDataset, read_wider_annotation
from ppdet_hambox.data.transform.decode import Decode
from ppdet_hambox.engine.ema import ModelEMA
from ppdet_hambox.utils.memory import PeakMemory, on_accelerator, synchronize

__all__ = ['STAGES', 'crowded_images', 'StageTimer', 'run_benchmark']

STAGES = ('data', 'forward', 'assign', 'loss', 'backward', 'optimizer')


def crowded_images(annotation, keep_invalid, count):
    """Indices of the ``count`` images with the most training faces (ties: file
    order), most crowded first, and every image's face count."""
    keep = annotation.positive_size()
    if not keep_invalid:
        keep &= ~annotation.invalid()
    faces = np.bincount(annotation.image_index()[keep], minlength=annotation.num_images)
    order = np.argsort(-faces, kind='stable')[:count]
    return order, faces


class _Subset(paddle.io.Dataset):
    """Records of ``indices`` of ``dataset``, renumbered 0..n-1 (``im_id``)."""

    def __init__(self, dataset, indices):
        super().__init__()
        self.dataset, self.indices = dataset, [int(i) for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return dict(self.dataset[self.indices[index]], im_id=index)


class StageTimer:
    """Wraps a callable; adds up the synchronised wall time of its calls (ms)."""

    def __init__(self, fn):
        self.fn, self.ms = fn, 0.0

    def __getattr__(self, name):  # the wrapped assigner's / loss's attributes
        return getattr(self.fn, name)

    def __call__(self, *args, **kwargs):
        synchronize()
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        synchronize()
        self.ms += (time.perf_counter() - start) * 1000
        return out


def _timed(fn):
    synchronize()
    start = time.perf_counter()
    out = fn()
    synchronize()
    return out, (time.perf_counter() - start) * 1000


def _check(value, flag, low=1):
    if int(value) < low:
        raise UserError('{} must be at least {}, got {}'.format(flag, low, value))
    return int(value)


def _build_reader(cfg, sizes, image_dir):
    reader = create('TrainReader', cfg)
    reader.shuffle = False
    if not image_dir:
        if not any(isinstance(op, Decode) for op in reader.sample_transforms):
            raise UserError('TrainReader.sample_transforms has no Decode: cannot tell where synthetic '
                            'images enter the pipeline')
        reader.sample_transforms = [BlankDecode(sizes) if isinstance(op, Decode) else op
                                    for op in reader.sample_transforms]
    return reader


def _instrument(model):
    """Timers around the assigners and losses of ``model`` (replaced in place)."""
    timers = {'assign': [], 'loss': []}
    model.assigner = StageTimer(model.assigner)
    timers['assign'].append(model.assigner)
    model.loss = StageTimer(model.loss)
    timers['loss'].append(model.loss)
    if getattr(model, 'pa_loss', None) is not None:
        model.pa_loss.assigner = StageTimer(model.pa_loss.assigner)
        timers['assign'].append(model.pa_loss.assigner)
        model.pa_loss = StageTimer(model.pa_loss)
        timers['loss'].append(model.pa_loss)
    return timers


def run_benchmark(cfg, anno, image_dir=None, crowded=4, steps=1, assumed_size=DEFAULT_ASSUMED_SIZE,
                  log=print):
    """The stress run; returns the result dict (see the module docstring)."""
    crowded = _check(crowded, '--crowded')
    steps = _check(steps, '--steps')
    annotation = read_wider_annotation(anno)
    keep_invalid = bool((cfg.get('TrainDataset') or {}).get('keep_invalid', False))
    chosen, faces = crowded_images(annotation, keep_invalid, crowded)
    if image_dir:
        try:
            sizes = header_image_sizes(annotation, image_dir)[chosen]
        except FileNotFoundError as err:
            raise UserError('--image-dir: {}'.format(err)) from None
    else:
        sizes = estimate_image_sizes(annotation, assumed_size)[chosen]
    dataset = _Subset(WIDERFaceDataset(dataset_dir='', image_dir=image_dir or '', anno_path=str(anno),
                                       keep_invalid=keep_invalid), chosen)
    reader = _build_reader(cfg, sizes, image_dir)
    if len(dataset) < reader.batch_size:
        raise UserError('--crowded {} is fewer images than one batch (TrainReader.batch_size {})'.format(
            len(dataset), reader.batch_size))
    loader = reader.build_loader(dataset, nranks=1, rank=0)

    if cfg.get('seed') is not None:
        paddle.seed(int(cfg['seed']))
    model = create(cfg['architecture'], cfg)
    model.train()
    lr = create('LearningRate', cfg)(reader.batch_size)
    optimizer = create('OptimizerBuilder', cfg)(lr, model)
    ema = ModelEMA(model, cfg.get('ema_decay', 0.9998)) if cfg.get('use_ema') else None
    timers = _instrument(model)

    def batches():
        while True:
            yield from loader

    stream = batches()
    totals = dict.fromkeys(STAGES, 0.0)
    wall_total = 0.0
    faces_per_image, batch_faces, shapes = [], [], set()
    log('{} crowded images ({} to {} annotated faces), batch {}, {} timed step(s) after 1 warm-up; '
        'device {}'.format(len(chosen), int(faces[chosen].min()), int(faces[chosen].max()),
                           reader.batch_size, steps, paddle.get_device()))
    with PeakMemory() as peak:
        for step in range(steps + 1):
            marks = {key: sum(t.ms for t in group) for key, group in timers.items()}
            step_start = time.perf_counter()
            batch, data_ms = _timed(lambda: next(stream))
            batch.pop('num_skipped', None)
            counts = batch['gt_mask'].numpy().sum(axis=1).astype(int).tolist()
            faces_per_image.extend(counts)
            batch_faces.append(max(counts))
            shapes.add(tuple(int(v) for v in batch['image'].shape[2:]))
            (losses, _), model_ms = _timed(lambda: model(batch))
            _, backward_ms = _timed(lambda: losses['loss'].backward())

            def update():
                optimizer.step()
                optimizer.clear_grad()
                lr.step()
                if ema is not None:
                    ema.update(model)
            _, optimizer_ms = _timed(update)
            wall_ms = (time.perf_counter() - step_start) * 1000
            inner = {key: sum(t.ms for t in group) - marks[key] for key, group in timers.items()}
            stage = dict(data=data_ms, forward=model_ms - inner['assign'] - inner['loss'], assign=inner['assign'],
                         loss=inner['loss'], backward=backward_ms, optimizer=optimizer_ms)
            log('{} step: {} faces max, {}'.format(
                'warm-up' if step == 0 else 'timed', max(counts),
                ', '.join('{} {:.0f} ms'.format(k, v) for k, v in stage.items())))
            if step > 0:
                for key in STAGES:
                    totals[key] += stage[key]
                wall_total += wall_ms
            del losses, batch
    step_ms = {key: round(totals[key] / steps, 1) for key in STAGES}
    step_ms['total'] = round(sum(totals.values()) / steps, 1)
    step_ms['wall'] = round(wall_total / steps, 1)  # the whole step timed at once: total's check
    return {
        'config': cfg.get('__source__'),
        'annotation': str(anno),
        'pixels': 'images in {}'.format(image_dir) if image_dir else 'synthetic (blank, size estimated)',
        'device': paddle.get_device(),
        'batch_size': reader.batch_size,
        'num_workers': reader.num_workers,
        'input_shapes': sorted(shapes),
        'crowded_images': [{'file': annotation.files[i], 'faces': int(faces[i])} for i in chosen],
        'max_faces_in_batch': int(max(batch_faces)),
        'faces_per_image': faces_per_image,
        'peak_rss_gb': round(peak.host_gb, 3),
        'peak_device_gb': None if peak.device_gb is None else round(peak.device_gb, 3),
        'on_accelerator': on_accelerator(),
        'steps': steps,
        'step_ms': step_ms,
    }
