"""Throughput of the training sample transforms in one process (= one
DataLoader worker), on real photos when available, else on generated ones."""
import os
import tempfile
import time

import cv2
import numpy as np

from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.data.image_io import IMAGE_EXTENSIONS
from ppdet_hambox.data.pipeline import sample_rng
from ppdet_hambox.data.reader import init_worker
from ppdet_hambox.data.source.widerface import read_wider_txt
from ppdet_hambox.utils.safe_write import write_image

__all__ = ['find_photos', 'generate_photos', 'benchmark_transforms', 'run']

GENERATED_SIZE = (768, 1024)
GENERATED_FACES = 30


def find_photos(data_dir):
    """Records of every image below ``data_dir/samples`` (or ``data_dir``),
    with faces from any ``*_bbx_gt*.txt`` there (matched by file name)."""
    root = os.path.join(data_dir, 'samples')
    root = root if os.path.isdir(root) else data_dir
    images, faces = [], {}
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                images.append(path)
            elif name.endswith('.txt') and '_bbx_gt' in name:
                annotation = read_wider_txt(path)
                keep = annotation.positive_size() & ~annotation.invalid()
                for i, rel in enumerate(annotation.files):
                    rows = np.arange(annotation.offsets[i], annotation.offsets[i + 1])
                    faces[os.path.basename(rel)] = annotation.boxes[rows[keep[rows]]]
    return [_record(i, path, faces.get(os.path.basename(path), np.zeros((0, 4), np.float32)))
            for i, path in enumerate(images)]


def generate_photos(out_dir, num_images=6, seed=0):
    """JPEGs of noise-textured scenes with filled ellipse 'faces' of 8-200 px."""
    rng = np.random.default_rng(seed)
    height, width = GENERATED_SIZE
    records = []
    for i in range(num_images):
        image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)
        sizes = np.exp(rng.uniform(np.log(8), np.log(200), GENERATED_FACES))
        x1 = rng.uniform(0, width - sizes)
        y1 = rng.uniform(0, height - sizes)
        boxes = np.stack([x1, y1, x1 + sizes, y1 + sizes], axis=1).astype(np.float32)
        for box, colour in zip(boxes, rng.integers(60, 230, (GENERATED_FACES, 3))):
            centre = (int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2))
            axes = (int((box[2] - box[0]) / 2), int((box[3] - box[1]) / 2))
            cv2.ellipse(image, centre, axes, 0, 0, 360, tuple(int(c) for c in colour), -1)
        path = os.path.join(out_dir, 'generated_{}.jpg'.format(i))
        write_image(path, image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        records.append(_record(i, path, boxes))
    return records


def _record(index, path, boxes):
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return {'im_file': path, 'im_id': index, 'gt_bbox': boxes, 'gt_ignore': np.zeros(len(boxes), bool),
            'event': '', 'name': os.path.splitext(os.path.basename(path))[0]}


def benchmark_transforms(records, transforms, num_samples, seed=0, warmup=3):
    """Run ``transforms`` on ``num_samples`` samples (cycling over ``records``)
    in this process; returns the throughput (wall clock), the CPU time per
    sample (less sensitive to a busy machine), time per operator and output
    shape."""
    init_worker(0)
    per_op = np.zeros(len(transforms))
    shape, cpu = None, 0.0
    for i in range(warmup + num_samples):
        sample = dict(records[i % len(records)])
        rng = sample_rng(seed, 0, i)
        cpu_start = time.process_time()
        for k, op in enumerate(transforms):
            start = time.perf_counter()
            sample = op(sample, rng)
            if i >= warmup:
                per_op[k] += time.perf_counter() - start
        if i >= warmup:
            cpu += time.process_time() - cpu_start
        shape = list(sample['image'].shape)
    total = per_op.sum()
    return {
        'samples_per_sec_per_worker': round(num_samples / total, 2),
        'ms_per_sample': round(1000 * total / num_samples, 2),
        'cpu_ms_per_sample': round(1000 * cpu / num_samples, 2),
        'ms_per_op': {type(op).__name__: round(1000 * t / num_samples, 3) for op, t in zip(transforms, per_op)},
        'num_samples': num_samples,
        'output_shape': shape,
    }


def run(config, data_dir=None, num_samples=200, seed=0):
    """Benchmark ``TrainReader.sample_transforms`` of ``config``."""
    cfg = load_config(config)
    transforms = create('TrainReader', cfg).sample_transforms
    records = find_photos(data_dir) if data_dir and os.path.isdir(data_dir) else []
    source = 'photos in {}'.format(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if not records:
            records, source = generate_photos(tmp, seed=seed), 'generated'
        result = benchmark_transforms(records, transforms, num_samples, seed)
    result.update({'images': len(records), 'faces': int(sum(len(r['gt_bbox']) for r in records)),
                   'image_source': source, 'config': config})
    return result
