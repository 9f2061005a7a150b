"""Writers for the official WIDER FACE annotation files.

``wider_face_{train,val}_bbx_gt.txt`` and the evaluation ground truth
``wider_face_val.mat`` / ``wider_{easy,medium,hard}_val.mat``, with the quirks
of the official files, so that readers and evaluators written for the real
files run unchanged on generated data:

- a face-less image is written with count 0 in the train txt but count 1 in
  the val txt, both followed by one all-zero line; in the .mat files it holds
  one all-zero box;
- every box line ends with a space;
- in the .mat files the images are grouped per event (``event_list`` order),
  boxes are int32, attribute labels uint8 column vectors, ``gt_list`` holds
  1-based indices (uint8, or uint16 once an index exceeds 255, as MATLAB
  stored them), and an empty ``gt_list`` is 0x0 for an image with one box row
  but 0x1 otherwise (MATLAB's ``find`` on a scalar versus a column).
"""
import io
from dataclasses import dataclass, field

import numpy as np
import scipy.io

# Column order of the attributes in the txt files after `x y w h`.
ATTRIBUTES = ('blur', 'expression', 'illumination', 'invalid', 'occlusion', 'pose')
SETTINGS = ('easy', 'medium', 'hard')
FACELESS_COUNT = {'train': 0, 'val': 1}
_ZERO_LINE = '0 0 0 0 0 0 0 0 0 0 \n'
_MAT_HEADER_BYTES = 116


@dataclass
class ImageAnnotation:
    """One image: ``boxes`` int32 [N, 4] `x y w h` (the face covers columns
    x..x+w-1 and rows y..y+h-1), ``attributes`` uint8 [N, 6] in ATTRIBUTES
    order, ``counted`` a bool [N] mask per setting (val only)."""
    event: str
    name: str
    boxes: np.ndarray
    attributes: np.ndarray
    counted: dict = field(default_factory=dict)

    @property
    def rel_path(self):
        return '{}/{}.jpg'.format(self.event, self.name)


def format_bbx_gt(images, split):
    """The text of ``wider_face_<split>_bbx_gt.txt`` for ``images``."""
    if split not in FACELESS_COUNT:
        raise ValueError('split must be one of {}, got {!r}'.format(sorted(FACELESS_COUNT), split))
    parts = []
    for image in images:
        parts.append(image.rel_path + '\n')
        if len(image.boxes) == 0:
            parts.append('{}\n{}'.format(FACELESS_COUNT[split], _ZERO_LINE))
            continue
        parts.append('{}\n'.format(len(image.boxes)))
        rows = np.concatenate([image.boxes.astype(np.int64), image.attributes.astype(np.int64)], axis=1)
        parts.extend(' '.join(map(str, row)) + ' \n' for row in rows.tolist())
    return ''.join(parts)


def write_bbx_gt(path, images, split):
    with open(path, 'w', encoding='ascii', newline='\n') as f:
        f.write(format_bbx_gt(images, split))


def _column(values, dtype):
    return np.asarray(values, dtype=dtype).reshape(-1, 1)


def _object_column(items):
    """An (n, 1) object array; built element-wise so NumPy never stacks the items."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def _gt_indices(mask, rows):
    indices = np.flatnonzero(mask) + 1
    if indices.size == 0:
        return np.zeros((0, 0) if rows == 1 else (0, 1), dtype=np.uint8)
    dtype = np.uint8 if indices.max() <= np.iinfo(np.uint8).max else np.uint16
    return _column(indices, dtype)


def group_by_event(images):
    """[(event, [images])] in order of first appearance; an event must be contiguous."""
    groups = []
    for image in images:
        if groups and groups[-1][0] == image.event:
            groups[-1][1].append(image)
        elif any(event == image.event for event, _ in groups):
            raise ValueError('images of event {!r} are not contiguous (image {!r})'.format(
                image.event, image.name))
        else:
            groups.append((image.event, [image]))
    return groups


def ground_truth_variables(images):
    """The variables of ``wider_face_val.mat`` and, under key ``gt_list``, the
    per-setting ``gt_list`` cell arrays of ``wider_<setting>_val.mat``."""
    groups = group_by_event(images)
    variables = {'event_list': _object_column([event for event, _ in groups])}
    per_event = {key: [] for key in ['file_list', 'face_bbx_list'] + [a + '_label_list' for a in ATTRIBUTES]}
    gt_lists = {setting: [] for setting in SETTINGS}
    for _, members in groups:
        cells = {key: [] for key in per_event}
        gts = {setting: [] for setting in SETTINGS}
        for image in members:
            boxes, attributes = image.boxes, image.attributes
            if len(boxes) == 0:
                boxes, attributes = np.zeros((1, 4)), np.zeros((1, len(ATTRIBUTES)))
            cells['file_list'].append(image.name)
            cells['face_bbx_list'].append(np.ascontiguousarray(boxes, dtype=np.int32).reshape(-1, 4))
            for column, name in enumerate(ATTRIBUTES):
                cells[name + '_label_list'].append(_column(attributes[:, column], np.uint8))
            for setting in SETTINGS:
                mask = image.counted.get(setting, np.zeros(len(image.boxes), bool))
                gts[setting].append(_gt_indices(mask, len(boxes)))
        for key in per_event:
            per_event[key].append(_object_column(cells[key]))
        for setting in SETTINGS:
            gt_lists[setting].append(_object_column(gts[setting]))
    variables.update({key: _object_column(cells) for key, cells in per_event.items()})
    variables['gt_list'] = {setting: _object_column(cells) for setting, cells in gt_lists.items()}
    return variables


def mat_bytes(variables, header):
    """A compressed MAT 5 file with a fixed header text (scipy would stamp the
    current time, which would make the file differ from run to run)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, dict(sorted(variables.items())), do_compression=True)
    raw = bytearray(buffer.getvalue())
    text = header.encode('ascii')
    if len(text) > _MAT_HEADER_BYTES:
        raise ValueError('MAT header text longer than {} bytes: {!r}'.format(_MAT_HEADER_BYTES, header))
    raw[:_MAT_HEADER_BYTES] = text.ljust(_MAT_HEADER_BYTES, b' ')
    return bytes(raw)


def write_ground_truth(directory, images, header='MATLAB 5.0 MAT-file'):
    """Writes ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``
    into ``directory`` (a pathlib.Path); returns the written paths."""
    variables = ground_truth_variables(images)
    gt_lists = variables.pop('gt_list')
    paths = [directory / 'wider_face_val.mat']
    paths[0].write_bytes(mat_bytes(variables, header))
    for setting in SETTINGS:
        path = directory / 'wider_{}_val.mat'.format(setting)
        path.write_bytes(mat_bytes(dict(variables, gt_list=gt_lists[setting]), header))
        paths.append(path)
    return paths
