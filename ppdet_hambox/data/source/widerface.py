"""WIDER FACE ground truth: the official ``wider_face_*_bbx_gt.txt`` files and
the val ``.mat``, and the registered ``WIDERFaceDataset``.

Command line: ``python -m ppdet_hambox.data.source.widerface FILE`` prints
image and face counts as JSON on its last line.
"""
import itertools
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
import paddle

from ppdet_hambox.core.schema import Range
from ppdet_hambox.core.errors import UserError, run_tool
from ppdet_hambox.core.workspace import register
from ppdet_hambox.utils.cli import ToolParser, existing_file

__all__ = ['WiderAnnotation', 'WiderAnnotationError', 'read_wider_txt', 'read_wider_mat',
           'read_wider_annotation', 'WIDERFaceDataset', 'ATTRIBUTE_NAMES']

ATTRIBUTE_NAMES = ('blur', 'expression', 'illumination', 'invalid', 'occlusion', 'pose')
FIELDS_PER_FACE = 4 + len(ATTRIBUTE_NAMES)
INVALID_COLUMN = ATTRIBUTE_NAMES.index('invalid')
_POWERS_OF_TEN = 10.0 ** np.arange(16)


class WiderAnnotationError(UserError, ValueError):
    """A malformed annotation file; the message names the file and line
    (``line`` 0: the file as a whole)."""

    def __init__(self, path, line, message):
        super().__init__('{}:{}: {}'.format(path, line, message) if line else '{}: {}'.format(path, message))
        self.path, self.line = path, line


@dataclass
class WiderAnnotation:
    """All faces of a split in flat arrays (one row per annotated box line).

    ``files[i]`` is the image path as written (``event/name.jpg``); its boxes
    are rows ``offsets[i]:offsets[i + 1]`` of ``boxes`` (float32 x1 y1 x2 y2,
    as annotated: width or height may be <= 0) and ``attributes`` (int32, the
    columns of ``ATTRIBUTE_NAMES``).
    """
    source: str
    files: list
    offsets: np.ndarray
    boxes: np.ndarray
    attributes: np.ndarray

    @property
    def num_images(self):
        return len(self.files)

    def positive_size(self):
        """bool [M]: boxes with width and height > 0."""
        return (self.boxes[:, 2] > self.boxes[:, 0]) & (self.boxes[:, 3] > self.boxes[:, 1])

    def invalid(self):
        """bool [M]: boxes flagged invalid by the annotators."""
        return self.attributes[:, INVALID_COLUMN] != 0

    def image_index(self):
        """int64 [M]: the image each box belongs to."""
        return np.repeat(np.arange(self.num_images), np.diff(self.offsets))

    def summary(self):
        positive = self.positive_size()
        return {'images': self.num_images, 'faces': int(positive.sum()),
                'valid_faces': int((positive & ~self.invalid()).sum())}


def read_wider_annotation(path):
    """A ``.mat`` (val ground truth) or an official ``.txt`` file."""
    if str(path).lower().endswith('.mat'):
        return read_wider_mat(path)
    return read_wider_txt(path)


def read_wider_txt(path):
    """Parse ``wider_face_{train,val}_bbx_gt.txt``.

    Each image is its path, a face count and that many lines of
    ``x y w h blur expression illumination invalid occlusion pose``. A count
    of 0 may be followed by one all-zero line (the train file does this);
    a count of 1 with an all-zero line (the val file) is kept as a box of
    size 0, which ``positive_size`` excludes.
    """
    path = str(path)
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise WiderAnnotationError(path, 0, 'cannot read: {}'.format(err.strerror or err)) from None
    except UnicodeDecodeError as err:
        raise WiderAnnotationError(path, 0, 'not a text file ({})'.format(err)) from None
    files, ranges = _scan_images(path, lines)
    box_lines = list(itertools.chain.from_iterable(lines[start:end] for start, end in ranges))
    values = _parse_box_lines(path, box_lines, ranges)
    counts = np.array([end - start for start, end in ranges], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return _annotation(path, files, offsets, values[:, :4], values[:, 4:])


def _scan_images(path, lines):
    """(image paths, [(first box line, end line)] 0-based) for every image."""
    files, ranges = [], []
    i, n = 0, len(lines)
    while i < n:
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        if i + 1 >= n:
            raise WiderAnnotationError(path, i + 1, 'image {!r} has no face count line'.format(name))
        count_text = lines[i + 1].strip()
        try:
            count = int(count_text)
        except ValueError:
            raise WiderAnnotationError(path, i + 2, 'expected the face count of {!r}, got {!r}'.format(
                name, count_text)) from None
        if count < 0:
            raise WiderAnnotationError(path, i + 2, 'negative face count {}'.format(count))
        start = i + 2
        if count == 0 and start < n and _is_zero_line(lines[start]):
            start += 1
        end = start + count
        if end > n:
            raise WiderAnnotationError(path, i + 2, 'face count {} of {!r} runs past the end of the '
                                       'file ({} lines left)'.format(count, name, n - start))
        files.append(name)
        ranges.append((start, end))
        i = end
    return files, ranges


def _is_zero_line(line):
    fields = line.split()
    if len(fields) != FIELDS_PER_FACE:
        return False
    try:
        return all(float(v) == 0 for v in fields)
    except ValueError:
        return False


def _parse_box_lines(path, box_lines, ranges):
    """All box lines at once (fast); on any problem, find and name the line."""
    table = _parse_int_table(box_lines, FIELDS_PER_FACE)
    if table is not None:
        return table
    line_numbers = itertools.chain.from_iterable(range(start + 1, end + 1) for start, end in ranges)
    rows = []
    for number, line in zip(line_numbers, box_lines):
        fields = line.split()
        if len(fields) != FIELDS_PER_FACE:
            raise WiderAnnotationError(path, number, 'expected {} numbers (x y w h {}), got {}: {!r}'.format(
                FIELDS_PER_FACE, ' '.join(ATTRIBUTE_NAMES), len(fields), line.strip()))
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            bad = next(v for v in fields if not _is_number(v))
            raise WiderAnnotationError(path, number, 'non-numeric field {!r} in {!r}'.format(
                bad, line.strip())) from None
    return np.array(rows, dtype=np.float64).reshape(-1, FIELDS_PER_FACE)


def _parse_int_table(lines, num_columns):
    """Lines of exactly ``num_columns`` non-negative integers -> int64
    ``[len(lines), num_columns]``, vectorised; None when any line is not of
    that form (the caller then parses line by line to report the error)."""
    try:
        data = np.frombuffer('\n'.join(lines).encode('ascii'), np.uint8)
    except UnicodeEncodeError:
        return None
    if data.size == 0:
        return np.zeros((0, num_columns), dtype=np.int64) if not lines else None
    digit = (data >= ord('0')) & (data <= ord('9'))
    newline = data == ord('\n')
    if not np.all(digit | newline | (data == ord(' ')) | (data == ord('\t'))):
        return None
    starts = digit & ~np.concatenate([[False], digit[:-1]])
    line_of_token = np.cumsum(newline, dtype=np.int32)[starts]
    if not np.all(np.bincount(line_of_token, minlength=len(lines)) == num_columns):
        return None
    token_of_digit = np.cumsum(starts, dtype=np.int32)[digit] - 1
    first_digit = np.flatnonzero(np.diff(token_of_digit, prepend=-1))
    lengths = np.diff(np.append(first_digit, token_of_digit.size))
    if lengths.max() > len(_POWERS_OF_TEN):
        return None
    last_digit = np.repeat(first_digit + lengths - 1, lengths)
    power = last_digit - np.arange(token_of_digit.size)
    weights = (data[digit] - ord('0')) * _POWERS_OF_TEN[power]
    values = np.bincount(token_of_digit, weights=weights, minlength=first_digit.size)
    return values.astype(np.int64).reshape(-1, num_columns)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _annotation(path, files, offsets, xywh, attributes):
    xywh = np.asarray(xywh, dtype=np.float32).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return WiderAnnotation(source=path, files=files, offsets=np.asarray(offsets, dtype=np.int64),
                           boxes=boxes, attributes=np.asarray(attributes, dtype=np.int32).reshape(-1, 6))


def read_wider_mat(path):
    """Parse ``wider_face_val.mat`` (``event_list``, ``file_list``,
    ``face_bbx_list`` and the ``*_label_list`` attributes)."""
    import scipy.io

    path = str(path)
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types (MatReadError, IndexError, ...) for a bad file
        raise WiderAnnotationError(path, 0, 'cannot read as a MATLAB file: {}'.format(err)) from None
    for key in ('event_list', 'file_list', 'face_bbx_list'):
        if key not in mat:
            raise WiderAnnotationError(path, 0, 'no {!r} variable (has: {})'.format(
                key, ', '.join(k for k in mat if not k.startswith('__'))))
    try:
        return _parse_wider_mat(path, mat)
    except (IndexError, TypeError, ValueError) as err:
        raise WiderAnnotationError(path, 0, 'not laid out as wider_face_val.mat (cell arrays of events, '
                                            'files and boxes): {}'.format(err)) from None


def _parse_wider_mat(path, mat):
    files, counts, boxes, attributes = [], [], [], []
    for e, event_cell in enumerate(mat['event_list'][:, 0]):
        event = str(event_cell[0])
        names = mat['file_list'][e, 0][:, 0]
        faces = mat['face_bbx_list'][e, 0][:, 0]
        labels = [_mat_labels(mat, name, e, len(names)) for name in ATTRIBUTE_NAMES]
        for j, name_cell in enumerate(names):
            xywh = np.asarray(faces[j], dtype=np.float32).reshape(-1, 4)
            files.append('{}/{}.jpg'.format(event, str(name_cell[0])))
            counts.append(len(xywh))
            boxes.append(xywh)
            attributes.append(np.stack([_labels_of(lab, j, len(xywh)) for lab in labels], axis=1))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return _annotation(path, files, offsets, np.concatenate(boxes) if boxes else np.zeros((0, 4)),
                       np.concatenate(attributes) if attributes else np.zeros((0, 6)))


def _mat_labels(mat, attribute, event_index, num_images):
    key = '{}_label_list'.format(attribute)
    if key not in mat:
        return None
    cells = mat[key][event_index, 0][:, 0]
    return cells if len(cells) == num_images else None


def _labels_of(cells, image_index, num_faces):
    if cells is None:
        return np.zeros(num_faces, dtype=np.int32)
    values = np.asarray(cells[image_index]).reshape(-1)
    return values.astype(np.int32) if len(values) == num_faces else np.zeros(num_faces, dtype=np.int32)


@register
class WIDERFaceDataset(paddle.io.Dataset):
    """WIDER FACE images with their faces, as records (see docs/architecture.md).

    Boxes with width or height <= 0 are never kept. Faces flagged invalid are
    dropped, or kept with ``gt_ignore`` True when ``keep_invalid``. The
    annotation is parsed on first use, so building a config does not need
    the data. ``sample_num > 0`` keeps only the first images.
    """
    __ranges__ = {'sample_num': Range(-1)}

    def __init__(self, dataset_dir='dataset/wider_face', image_dir='WIDER_train/images',
                 anno_path='wider_face_split/wider_face_train_bbx_gt.txt', keep_invalid=False,
                 sample_num=-1):
        super().__init__()
        self.dataset_dir = dataset_dir
        self.image_dir = image_dir
        self.anno_path = anno_path
        self.keep_invalid = keep_invalid
        self.sample_num = sample_num
        self._index = None

    @property
    def annotation_file(self):
        return os.path.join(self.dataset_dir, self.anno_path)

    def _load(self):
        if self._index is None:
            annotation = read_wider_annotation(self.annotation_file)
            keep = annotation.positive_size()
            invalid = annotation.invalid()
            if not self.keep_invalid:
                keep &= ~invalid
            image_of_box = annotation.image_index()[keep]
            counts = np.bincount(image_of_box, minlength=annotation.num_images)
            num = annotation.num_images if self.sample_num <= 0 else min(self.sample_num, annotation.num_images)
            self._index = dict(files=annotation.files[:num],
                               offsets=np.concatenate([[0], np.cumsum(counts)])[:num + 1],
                               boxes=annotation.boxes[keep], ignore=invalid[keep])
        return self._index

    def __len__(self):
        return len(self._load()['files'])

    def __getitem__(self, idx):
        index = self._load()
        rel = index['files'][idx]
        start, end = index['offsets'][idx], index['offsets'][idx + 1]
        event, base = os.path.split(rel)
        return {
            'im_file': os.path.join(self.dataset_dir, self.image_dir, rel),
            'im_id': int(idx),
            'gt_bbox': index['boxes'][start:end].copy(),
            'gt_ignore': index['ignore'][start:end].copy(),
            'event': event,
            'name': os.path.splitext(base)[0],
        }


def main(argv=None):
    parser = ToolParser(description='Count images and faces of a WIDER FACE ground-truth file.')
    parser.add_argument('file', type=existing_file, help='wider_face_{train,val}_bbx_gt.txt or wider_face_val.mat')
    args = parser.parse_args(argv)
    annotation = read_wider_annotation(args.file)  # a WiderAnnotationError is a UserError: one line, 2
    print(json.dumps(annotation.summary()))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
