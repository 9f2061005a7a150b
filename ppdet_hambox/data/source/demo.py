"""Embedded demo dataset in the WIDER FACE layout.

``python -m ppdet_hambox.data.source.demo --out DIR [--seed S] [--num-train N]
[--num-val M] [--size WxH]`` writes::

    DIR/WIDER_train/images/<event>/<name>.jpg
    DIR/WIDER_val/images/<event>/<name>.jpg
    DIR/wider_face_split/wider_face_{train,val}_bbx_gt.txt
    DIR/eval_tools/ground_truth/wider_face_val.mat, wider_{easy,medium,hard}_val.mat
    DIR/demo_dataset.json            (parameters and summary; marks DIR as generated)

with the official formats and quirks (see ``widerface_writer``), so training
and evaluation run unchanged on it. Needs scikit-image (the ``demo`` extra).

Faces are the 100 real 25x25 grey face crops of ``skimage.data.lfw_subset()``,
tinted to a skin colour and composited on crops of the photographs bundled
with scikit-image (tinted, flipped, zoomed, some blended with a procedural
texture) or on procedural textures, with clutter and bodies below the faces.
Each image is a crowd (15-45 faces of about 6-30 px in perspective rows, plus
one to three of 30-90 px), a group (3-12 faces of 16-120 px, at most 45% of
the short side), a portrait (one face of 60-180 px but at most 60% of the
short side, or 2-4 faces of 40 px to 40% of the short side) or face-less
(about 2% of each split, at least one). Version 2 (issue 13) has more large
faces than version 1, so that the easy setting is about a fifth of the val
faces, as in WIDER FACE.
The box is the exact extent of the resized crop (x y w h: columns x..x+w-1,
rows y..y+h-1), aspect w/h 0.75-1; a rotated face's box is the tight box of
its drawn (alpha > 0.5) pixels. Face boxes, padded by 20% + 1 px, never overlap, so
nothing drawn for one face touches another.

Attributes, from what was done to each face (size = box height):
- blur: 1 or 2 for a Gaussian blur of sigma 4-8% or 12-20% of the size; also
  1 for faces enlarged more than 8x from the crop (size > 200 px)
- expression: 1 when the lower face (mouth, jaw) was stretched vertically
- illumination: 1 for a side-light ramp, or when face gain x scene gain is
  below 0.5 or above 1.8 (dark faces, washed-out faces, dark scenes)
- occlusion: fraction of the box covered by an occluder (band or blob from
  one edge, plain or textured): 0 none, 1 up to 1/3, 2 more
- pose: 1 for an in-plane rotation of 20-45 degrees
- invalid: 1 when more than 55% is occluded, or size < 8 px with blur 2

Difficulty (``gt_list`` of ``wider_{easy,medium,hard}_val.mat``):
- hard: every valid face (invalid faces count in no setting)
- medium: valid, size >= 10 px, and not both blur 2 and occlusion 2
- easy: valid, size >= 40 px, blur < 2 and occlusion < 2
so easy is a subset of medium, which is a subset of hard.

Everything derives from the seed: per image, one random stream plans the
faces (kind, size, slots, recipes: ``plan_split``) and another draws them, so
the same seed gives byte-identical files (fixed JPEG quality, fixed .mat
header) and the boxes are known without drawing.
"""
import json
import pathlib
import shutil
import sys
import time

import cv2
import numpy as np

from ppdet_hambox.data.source import demo_render
from ppdet_hambox.data.source.widerface_writer import (ATTRIBUTES, SETTINGS, ImageAnnotation,
                                                       write_bbx_gt, write_ground_truth)
from ppdet_hambox.core.errors import UserError, run_tool
from ppdet_hambox.utils.cli import ToolParser, output_dir, positive_int, random_seed
from ppdet_hambox.utils.safe_write import write_image

# Event folders named as in the official zips, with the image kinds they hold.
EVENTS = {
    '0--Parade': {'crowd': 0.6, 'group': 0.3, 'portrait': 0.1},
    '2--Demonstration': {'crowd': 0.5, 'group': 0.3, 'portrait': 0.2},
    '12--Group': {'group': 0.8, 'crowd': 0.1, 'portrait': 0.1},
    '13--Interview': {'portrait': 0.8, 'group': 0.2},
    '20--Family_Group': {'group': 0.6, 'portrait': 0.4},
    '50--Celebration_Or_Party': {'group': 0.5, 'portrait': 0.3, 'crowd': 0.2},
}
SPLITS = ('train', 'val')
FACELESS_FRACTION = 0.02
LONG_SIDE = (256, 400)
SHORT_TO_LONG = (0.75, 1.0)
MIN_SIDE = 100  # a portrait of several faces needs faces of 40 px, at most 40% of the short side
JPEG_QUALITY = 90
EASY_SIZE, MEDIUM_SIZE = 40, 10
SIZE_BUCKETS = (0, 10, 16, 32, 64, 128, 256)
MARKER = 'demo_dataset.json'
# Bumped whenever the same seed would draw a different dataset: a dataset
# written by another version is regenerated, not reused.
VERSION = 2
MANAGED = ('WIDER_train', 'WIDER_val', 'wider_face_split', 'eval_tools')


def difficulty(boxes, attributes):
    """Per setting, the bool [N] mask of faces that count (rules in the module docstring)."""
    column = {name: attributes[:, i].astype(int) for i, name in enumerate(ATTRIBUTES)}
    size = boxes[:, 3]
    hard = column['invalid'] == 0
    medium = hard & (size >= MEDIUM_SIZE) & ~((column['blur'] == 2) & (column['occlusion'] == 2))
    easy = hard & (size >= EASY_SIZE) & (column['blur'] < 2) & (column['occlusion'] < 2)
    return {'easy': easy, 'medium': medium, 'hard': hard}


def image_name(event, number):
    index, label = event.split('--', 1)
    return '{0}_{1}_{1}_{0}_{2}'.format(index, label, number)


def image_size(rng, size):
    if size is not None:
        return size[1], size[0]
    long_side = int(rng.integers(LONG_SIDE[0], LONG_SIDE[1] + 1))
    short_side = round(long_side * rng.uniform(*SHORT_TO_LONG))
    return (short_side, long_side) if rng.random() < 0.6 else (long_side, short_side)


def split_plan(seed, split, count):
    """(event, face-less?) per image index: events balanced, then shuffled."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    names = sorted(EVENTS)
    events = [names[i] for i in rng.permutation(np.arange(count) % len(names))]
    faceless = np.zeros(count, bool)
    if count >= 2:
        faceless[rng.choice(count, max(1, round(FACELESS_FRACTION * count)), replace=False)] = True
    return events, faceless


def plan_split(seed, split, count, size=None):
    """[(event, ImagePlan)] of a split, without drawing: the face boxes of a
    configuration are known in a fraction of the generation time."""
    events, faceless = split_plan(seed, split, count)
    plans = []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLITS.index(split), index, 0])
        kinds = EVENTS[events[index]]
        kind = 'empty' if faceless[index] else str(rng.choice(list(kinds), p=list(kinds.values())))
        height, width = image_size(rng, size)
        plans.append((events[index], demo_render.plan_image(rng, kind, height, width)))
    return plans


def make_split(out_dir, assets, seed, split, count, number_offset, size):
    """Renders and writes the images of one split; returns its ImageAnnotations
    grouped by event (events in string order, as in the official files)."""
    images = []
    for index, (event, plan) in enumerate(plan_split(seed, split, count, size)):
        rng = np.random.default_rng([seed, SPLITS.index(split), index, 1])
        pixels, boxes, labels = demo_render.render_image(rng, assets, plan)
        attributes = np.array([[label[a] for a in ATTRIBUTES] for label in labels], np.uint8)
        attributes = attributes.reshape(-1, len(ATTRIBUTES))
        annotation = ImageAnnotation(event, image_name(event, number_offset + index), boxes, attributes,
                                     difficulty(boxes, attributes))
        path = out_dir / 'WIDER_{}'.format(split) / 'images' / annotation.rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(str(path), pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY], guard=False)  # folder checked
        images.append(annotation)
    order = sorted(range(count), key=lambda i: (images[i].event, i))
    return [images[i] for i in order]


def size_histogram(images):
    heights = np.concatenate([image.boxes[:, 3] for image in images] + [np.zeros(0, np.int32)])
    counts = np.histogram(heights, bins=list(SIZE_BUCKETS) + [np.inf])[0]
    labels = ['{}-{}'.format(a, b) for a, b in zip(SIZE_BUCKETS[:-1], SIZE_BUCKETS[1:])]
    return dict(zip(labels + ['>={}'.format(SIZE_BUCKETS[-1])], counts.tolist()))


def summarise(splits):
    """(the summary printed as JSON, further per-split details)."""
    summary, details = {}, {'faceless_images': {}, 'invalid_faces': {}, 'size_histogram': {}}
    invalid = ATTRIBUTES.index('invalid')
    for split, images in splits.items():
        summary['{}_images'.format(split)] = len(images)
        summary['{}_faces'.format(split)] = sum(len(image.boxes) for image in images)
        details['faceless_images'][split] = sum(len(image.boxes) == 0 for image in images)
        details['invalid_faces'][split] = int(sum(image.attributes[:, invalid].sum() for image in images))
        details['size_histogram'][split] = size_histogram(images)
    for setting in SETTINGS:
        summary[setting] = int(sum(image.counted[setting].sum() for image in splits['val']))
    return summary, details


def prepare_output(out_dir):
    """Clears an earlier generated dataset; refuses to touch any other data."""
    existing = [name for name in MANAGED if (out_dir / name).exists()]
    if existing and not (out_dir / MARKER).is_file():
        raise FileExistsError('{} already holds {} but no {}: not a generated demo dataset, refusing to '
                              'overwrite it'.format(out_dir, ', '.join(existing), MARKER))
    for name in existing:
        shutil.rmtree(out_dir / name)
    (out_dir / MARKER).unlink(missing_ok=True)


def parse_size(text):
    """'WxH' -> (W, H), or None for the default varied sizes."""
    if text is None:
        return None
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ValueError('--size must be WxH, e.g. 320x320, got {!r}'.format(text)) from None
    if min(width, height) < MIN_SIDE:
        raise ValueError('--size {}: both sides must be at least {} px'.format(text, MIN_SIDE))
    return width, height


def generate(out_dir, seed=0, num_train=240, num_val=60, size=None):
    """Writes the demo dataset into ``out_dir``; ``size`` is None (varied
    sizes, long side 256-400) or (W, H). Returns the summary dict."""
    if num_train < 1 or num_val < 1:
        raise ValueError('need at least one image per split, got num_train={}, num_val={}'.format(
            num_train, num_val))
    if isinstance(size, str):
        size = parse_size(size)
    out_dir = pathlib.Path(out_dir)
    assets = demo_render.load_assets()
    out_dir.mkdir(parents=True, exist_ok=True)
    prepare_output(out_dir)
    splits = {'train': make_split(out_dir, assets, seed, 'train', num_train, 0, size),
              'val': make_split(out_dir, assets, seed, 'val', num_val, num_train, size)}
    split_dir = out_dir / 'wider_face_split'
    split_dir.mkdir()
    for split, images in splits.items():
        write_bbx_gt(split_dir / 'wider_face_{}_bbx_gt.txt'.format(split), images, split)
    gt_dir = out_dir / 'eval_tools' / 'ground_truth'
    gt_dir.mkdir(parents=True)
    header = 'MATLAB 5.0 MAT-file, Platform: ppdet_hambox demo, seed {}'.format(seed)
    write_ground_truth(gt_dir, splits['val'], header=header)
    summary, details = summarise(splits)
    record = {'generator': 'ppdet_hambox.data.source.demo', 'version': VERSION, 'seed': seed,
              'num_train': num_train, 'num_val': num_val, 'size': list(size) if size else None,
              'summary': summary, 'details': details}
    (out_dir / MARKER).write_text(json.dumps(record, indent=1) + '\n', encoding='ascii')
    return dict(summary, **details)


def print_summary(summary, seconds, out_dir):
    print('demo dataset written to {} in {:.1f} s'.format(out_dir, seconds))
    for split in SPLITS:
        print('  {:5s}: {:4d} images ({} face-less), {:5d} faces ({} invalid)'.format(
            split, summary['{}_images'.format(split)], summary['faceless_images'][split],
            summary['{}_faces'.format(split)], summary['invalid_faces'][split]))
        buckets = summary['size_histogram'][split].items()
        print('         face heights: ' + ', '.join('{} px: {}'.format(k, v) for k, v in buckets))
    print('  val faces counted: easy {easy}, medium {medium}, hard {hard}'.format(**summary))
    keys = ['train_images', 'val_images', 'train_faces', 'val_faces'] + list(SETTINGS)
    print(json.dumps({key: summary[key] for key in keys}))


def main(argv=None):
    parser = ToolParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, type=output_dir, help='output folder')
    parser.add_argument('--seed', type=random_seed, default=0)
    parser.add_argument('--num-train', type=positive_int, default=240)
    parser.add_argument('--num-val', type=positive_int, default=60)
    parser.add_argument('--size', default=None,
                        help='fixed image size WxH (default: varied, long side 256-400)')
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    try:
        summary = generate(args.out, args.seed, args.num_train, args.num_val, size)
    except FileExistsError as exc:
        raise UserError('--out {}: {}'.format(args.out, exc)) from None
    print_summary(summary, time.perf_counter() - start, args.out)


if __name__ == '__main__':
    sys.exit(run_tool(main))
