"""WIDER FACE val evaluation: easy / medium / hard AP, vectorised with NumPy.

Implements the protocol of docs/evaluation_protocol.md in two labelled modes:

``official`` (default)
    What the MATLAB ``eval_tools`` print (the numbers papers report): boxes of
    a file sorted by score, highest first, stably; scores normalised in single
    precision (min starts at ``realmax('single')``, max at ``realmin('single')``
    as in ``norm_score.m``); the overlap with the int32 ground truth in
    MATLAB integer arithmetic (round half away from zero, int32 saturation,
    the union rounded before the intersection is subtracted, the overlap
    itself rounded, so it is 0 or 1); a prediction matches the first face
    with the largest overlap. A missing file is an image without detections.
``python-port``
    What the common Python port prints: boxes in file order, boxes and scores
    read as Python floats (float64, ``x2 = x + w`` in float64); scores
    normalised in float64 with min starting at 1 and max at 0; the true IoU with the pixel-inclusive ``+1``; the match
    is the face with the highest IoU (first on ties) if it is >= 0.5. A
    missing file is an error. The port's parser crashes (double spaces, blank
    lines, empty files) are not reproduced: both modes share one tolerant
    parser, below.

Both modes then walk the predictions of each image (a face that does not
count in the setting makes its predictions ignored; a counted face is
recalled once), take for each threshold ``t = 1 - k/1000`` the last prediction
with normalised score >= t, sum the (proposal, recall) counts over images and
compute the VOC AP. Images with no ground-truth box or no prediction add
nothing but their counted faces.

Vectorisation: the predictions of all images are concatenated; prediction/face
pairs are generated per image in bounded chunks, the match of each prediction
is a segment arg-max, the per-image walk is a set of segment cumulative sums,
and the 1000-threshold sweep is a difference array over threshold ranges
(``last prediction with score >= t`` is found through the per-image suffix
maximum of the scores, which also covers the unsorted python-port files).

Decisions for odd prediction files (warnings are ``WiderEvalWarning``; each
names the file and, where there is one, the line; at most ten per kind are
shown, then a count; all of them are in ``result['issues']``):

- missing file: official warns and counts no detections (as MATLAB does);
  python-port raises ``FileNotFoundError`` listing the missing files.
- empty file, or no count line: warning, no detections.
- line 1 not the image name (with or without extension or folder): warning.
- count line not a non-negative integer: error.
- count smaller than the number of box lines: warning; official uses the first
  ``count`` boxes (MATLAB reads that many), python-port all of them (the port
  ignores the count).
- count larger than the number of box lines: warning; official counts no
  detections for the image (MATLAB's read fails, "Invalid format"),
  python-port uses the lines present.
- extra whitespace, tabs, CR/LF line ends, trailing blank lines: accepted
  silently (values are unaffected); a blank line between box lines: warning,
  skipped.
- a box line without exactly five numbers, or with a non-number: error.
- a NaN or infinite score or coordinate: error (it cannot be ranked, and
  MATLAB and the port would silently mis-rank it).
- width or height <= 0: warning; the box is kept, as both tools keep it (it
  can never match, so it stays a false positive).
- all scores equal: normalisation is 0/0 and every AP is 0 in official mode:
  warning, not "fixed". In python-port mode min and max start at 1 and 0, so
  equal scores outside [0, 1] still normalise; 0/0 there warns likewise.
- no predictions at all: warning, every AP is 0.
- a file or event folder that is not in the ground truth: warning, ignored.
- a setting that counts no face (possible only with a hand-made ground
  truth): warning, its AP is NaN (0/0 recall, as in MATLAB).
"""
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

# Present while an evaluation writes its predictions (removed when they are all written).
INCOMPLETE_MARKER = '.ppdet_hambox_incomplete'
SETTINGS = ('easy', 'medium', 'hard')
MODES = ('official', 'python-port')
THRESH_NUM = 1000
IOU_THRESH = 0.5
# t_k = 1 - k/1000 for k = 1..1000, in double precision as MATLAB computes it.
THRESHOLDS = 1.0 - np.arange(1, THRESH_NUM + 1, dtype=np.float64) / THRESH_NUM
GT_FILES = {'all': 'wider_face_val.mat', 'easy': 'wider_easy_val.mat',
            'medium': 'wider_medium_val.mat', 'hard': 'wider_hard_val.mat'}
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
PAIR_CHUNK = 1 << 22  # prediction/face pairs processed at once
WARNINGS_PER_KIND = 10


class WiderEvalWarning(UserWarning):
    """Something odd in the predictions or ground truth; the message names the file and line."""


@dataclass
class Issue:
    path: str
    line: object  # int or None
    kind: str
    message: str
    modes: tuple = MODES

    def __str__(self):
        where = self.path if self.line is None else '{}:{}'.format(self.path, self.line)
        return '{}: {}'.format(where, self.message)


@dataclass
class GroundTruth:
    """WIDER FACE val ground truth, faces of all images concatenated."""
    gt_dir: str
    events: list            # event names in .mat order
    image_event: np.ndarray  # int64 [I] event index of each image
    names: list             # [I] image names without extension
    boxes: np.ndarray       # int32 [G, 4] x y w h
    offsets: np.ndarray     # int64 [I + 1] faces of image i: boxes[offsets[i]:offsets[i + 1]]
    counted: dict           # setting -> bool [G], the faces that count in that setting

    @property
    def num_images(self):
        return len(self.names)

    def count_face(self, setting):
        return int(self.counted[setting].sum())

    def subset(self, events):
        """The ground truth of some events only (in their .mat order)."""
        keep_events = [e for e in self.events if e in set(events)]
        unknown = set(events) - set(self.events)
        if unknown:
            raise KeyError('events not in {}: {}'.format(self.gt_dir, sorted(unknown)))
        ev_idx = np.array([self.events.index(e) for e in keep_events])
        images = np.flatnonzero(np.isin(self.image_event, ev_idx))
        face_idx = concat_ranges(self.offsets[images], self.offsets[images + 1])
        counts = self.offsets[images + 1] - self.offsets[images]
        remap = np.full(len(self.events), -1)
        remap[ev_idx] = np.arange(len(ev_idx))
        return GroundTruth(self.gt_dir, keep_events, remap[self.image_event[images]],
                           [self.names[i] for i in images], self.boxes[face_idx],
                           np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
                           {s: m[face_idx] for s, m in self.counted.items()})


@dataclass
class Predictions:
    """Parsed prediction files, rows of all images concatenated (file order inside an image)."""
    pred_dir: str
    image: np.ndarray       # int64 [P] ground-truth image index, non-decreasing
    boxes: np.ndarray       # float64 [P, 4] x y w h as read
    scores: np.ndarray      # float64 [P]
    lines: np.ndarray       # int64 [P] 1-based line in the file
    in_count: np.ndarray    # bool [P] the row is within the declared count
    files: list             # [I] file path, or None when missing
    truncated: np.ndarray   # bool [I] declared count larger than the box lines present
    issues: list = field(default_factory=list)


def concat_ranges(starts, stops):
    """Concatenation of arange(starts[i], stops[i]) over i, without a Python loop."""
    counts = np.asarray(stops - starts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    seg_first = np.cumsum(counts) - counts
    return np.repeat(np.asarray(starts, dtype=np.int64) - seg_first, counts) + np.arange(total)


# ----------------------------------------------------------------------------- ground truth

def _loadmat(path, keys):
    from scipy.io import loadmat
    if not os.path.isfile(path):
        raise FileNotFoundError('WIDER FACE ground-truth file not found: {}'.format(path))
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for a bad file
        raise ValueError('{}: cannot be read as a MATLAB .mat file ({})'.format(path, exc)) from exc
    missing = [k for k in keys if k not in mat]
    if missing:
        raise KeyError('{}: missing variable(s) {} (found {})'.format(
            path, missing, sorted(k for k in mat if not k.startswith('__'))))
    return mat


def _cells(value):
    """The elements of a MATLAB cell array (any shape) as a flat list."""
    return list(np.asarray(value, dtype=object).ravel())


def _cell_str(value):
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError('expected one string, found an array of shape {}'.format(value.shape))
        value = value.ravel()[0]
    return str(value)


def load_ground_truth(gt_dir):
    """Read ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat`` from ``gt_dir``."""
    gt_dir = os.fspath(gt_dir)
    main_path = os.path.join(gt_dir, GT_FILES['all'])
    mat = _loadmat(main_path, ['event_list', 'file_list', 'face_bbx_list'])
    events = [_cell_str(e) for e in _cells(mat['event_list'])]
    file_cells = _cells(mat['file_list'])
    box_cells = _cells(mat['face_bbx_list'])
    if not (len(events) == len(file_cells) == len(box_cells)):
        raise ValueError('{}: event_list, file_list and face_bbx_list have {}, {} and {} events'.format(
            main_path, len(events), len(file_cells), len(box_cells)))
    names, image_event, boxes = [], [], []
    for e, (event, files, bbx) in enumerate(zip(events, file_cells, box_cells)):
        files, bbx = _cells(files), _cells(bbx)
        if len(files) != len(bbx):
            raise ValueError('{}: event {} has {} file names but {} box lists'.format(
                main_path, event, len(files), len(bbx)))
        for name, b in zip(files, bbx):
            b = np.asarray(b)
            if b.size % 4:
                raise ValueError('{}: {}/{} boxes have shape {}, expected N x 4'.format(
                    main_path, event, _cell_str(name), b.shape))
            names.append(_cell_str(name))
            boxes.append(b.reshape(-1, 4).astype(np.int32))
            image_event.append(e)
    counts = np.array([len(b) for b in boxes], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    counted = {}
    for setting in SETTINGS:
        path = os.path.join(gt_dir, GT_FILES[setting])
        smat = _loadmat(path, ['event_list', 'file_list', 'gt_list'])
        s_events = [_cell_str(e) for e in _cells(smat['event_list'])]
        if s_events != events:
            raise ValueError('{}: event_list differs from {}'.format(path, main_path))
        keep = []
        img = 0
        for event, files, gts in zip(events, _cells(smat['file_list']), _cells(smat['gt_list'])):
            files, gts = _cells(files), _cells(gts)
            if len(files) != len(gts) or [_cell_str(f) for f in files] != names[img:img + len(files)]:
                raise ValueError('{}: the images of event {} differ from {}'.format(path, event, main_path))
            for name, idx in zip(files, gts):
                idx = np.asarray(idx).ravel().astype(np.int64)
                n = counts[img]
                if idx.size and (idx.min() < 1 or idx.max() > n):
                    raise ValueError('{}: {}/{}: gt_list index out of 1..{}: {}'.format(
                        path, event, _cell_str(name), n, idx[(idx < 1) | (idx > n)].tolist()))
                keep.append(offsets[img] + idx - 1)
                img += 1
        if img != len(names):
            raise ValueError('{}: {} images, {} has {}'.format(path, img, main_path, len(names)))
        mask = np.zeros(int(offsets[-1]), dtype=bool)
        mask[np.concatenate(keep) if keep else np.zeros(0, np.int64)] = True
        counted[setting] = mask
    return GroundTruth(gt_dir, events, np.array(image_event, dtype=np.int64), names,
                       np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int32), offsets, counted)


# ----------------------------------------------------------------------------- prediction files

def _stem(name):
    base = name.replace('\\', '/').rsplit('/', 1)[-1]
    root, ext = os.path.splitext(base)
    return root if ext.lower() in ('.jpg', '.jpeg', '.png', '.txt') else base


def _parse_count(path, text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value.is_integer()):
        raise ValueError('{}:2: the box count {!r} is not a non-negative integer'.format(path, text))
    return int(value)


def _parse_boxes_slow(path, body):
    """Per line, used only when the fast path saw something wrong: precise messages."""
    rows, lines, issues = [], [], []
    for lineno, line in enumerate(body, start=3):
        fields = line.split()
        if not fields:
            issues.append(Issue(path, lineno, 'blank-line', 'blank line between box lines, skipped'))
            continue
        if len(fields) != 5:
            raise ValueError('{}:{}: expected 5 values "x y w h score", found {}: {!r}'.format(
                path, lineno, len(fields), line.strip()))
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ValueError('{}:{}: not a number in {!r}'.format(path, lineno, line.strip())) from None
        if not np.all(np.isfinite(values)):
            raise ValueError('{}:{}: NaN or infinite value in {!r}; such a box cannot be ranked'.format(
                path, lineno, line.strip()))
        rows.append(values)
        lines.append(lineno)
    return np.array(rows, dtype=np.float64).reshape(-1, 5), np.array(lines, dtype=np.int64), issues


def _parse_boxes(path, body):
    """Box lines to float64 [k, 5]; C-level splitting and conversion per file when all is well:
    with a marker token between lines, a well-formed body is exactly 5 numbers, marker, 5 numbers..."""
    if not body:
        return np.zeros((0, 5)), np.zeros(0, np.int64), []
    marker = '\x00'
    tokens = ' {} '.format(marker).join(body).split()
    n = len(body)
    if len(tokens) == 6 * n - 1 and (n == 1 or set(tokens[5::6]) == {marker}):
        del tokens[5::6]
        try:
            values = np.array(list(map(float, tokens)), dtype=np.float64).reshape(n, 5)
        except ValueError:
            values = None
        if values is not None and np.all(np.isfinite(values)):
            return values, np.arange(3, 3 + n, dtype=np.int64), []
    return _parse_boxes_slow(path, body)


def parse_prediction_file(path, expected_name):
    """One prediction file -> (rows float64 [k, 5], line numbers [k], declared count or None, issues)."""
    try:
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ValueError('{}: not UTF-8 text ({})'.format(path, exc)) from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    empty = np.zeros((0, 5)), np.zeros(0, np.int64)
    if not lines:
        return empty + (None, [Issue(path, None, 'empty', 'empty file: no detections for this image')])
    issues = []
    if _stem(lines[0].strip()) != expected_name:
        issues.append(Issue(path, 1, 'name-mismatch', 'first line {!r} is not the image name {!r}'.format(
            lines[0].strip(), expected_name)))
    if len(lines) < 2:
        issues.append(Issue(path, None, 'no-count', 'no box-count line: no detections for this image'))
        return empty + (None, issues)
    count = _parse_count(path, lines[1].strip())
    rows, line_numbers, box_issues = _parse_boxes(path, lines[2:])
    issues += box_issues
    bad = np.flatnonzero((rows[:, 2] <= 0) | (rows[:, 3] <= 0))
    issues += [Issue(path, int(line_numbers[i]), 'degenerate-box',
                     'width or height <= 0 ({:g} x {:g}); kept, it can only be a false positive'.format(
                         rows[i, 2], rows[i, 3])) for i in bad]
    if count < len(rows):
        issues.append(Issue(path, 2, 'count-smaller',
                            'declares {} boxes but has {} box lines: official mode uses the first {} '
                            '(as MATLAB), python-port all {}'.format(count, len(rows), count, len(rows))))
    elif count > len(rows):
        issues.append(Issue(path, 2, 'count-larger',
                            'declares {} boxes but has only {} box lines: official mode counts no '
                            'detections for this image (MATLAB: "Invalid format"), python-port uses the '
                            '{} present'.format(count, len(rows), len(rows))))
    return rows, line_numbers, count, issues


def _unexpected_files(pred_dir, gt):
    """Issues for files and event folders of pred_dir that are not in the ground
    truth. Hidden entries (a writer's manifest, ``.DS_Store``) are not predictions
    and are passed over silently, as the official tool does."""
    expected = {}
    for e, name in zip(gt.image_event, gt.names):
        expected.setdefault(gt.events[e], set()).add(name + '.txt')
    issues = []
    for entry in sorted(os.scandir(pred_dir), key=lambda d: d.name):
        if entry.name.startswith('.'):
            continue
        if entry.is_dir():
            if entry.name not in expected:
                issues.append(Issue(entry.path, None, 'extra-file',
                                    'event folder not in the ground truth, ignored'))
                continue
            extra = sorted(n for n in set(os.listdir(entry.path)) - expected[entry.name] if not n.startswith('.'))
            issues += [Issue(os.path.join(entry.path, n), None, 'extra-file',
                             'file is not a prediction for an image of the ground truth, ignored')
                       for n in extra]
        else:
            issues.append(Issue(entry.path, None, 'extra-file',
                                'file outside the event folders, ignored'))
    return issues


def load_predictions(pred_dir, gt):
    """Read ``<pred_dir>/<event>/<image name>.txt`` for every image of ``gt``."""
    pred_dir = os.fspath(pred_dir)
    if not os.path.isdir(pred_dir):
        raise FileNotFoundError('prediction folder not found: {}'.format(pred_dir))
    if os.path.exists(os.path.join(pred_dir, INCOMPLETE_MARKER)):
        raise ValueError('{}: the predictions of an evaluation that did not finish (stopped or failed); '
                         'run the evaluation again'.format(pred_dir))
    gt = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    issues = _unexpected_files(pred_dir, gt)
    rows, lines, images, in_count, files = [], [], [], [], []
    truncated = np.zeros(gt.num_images, dtype=bool)
    for i, (e, name) in enumerate(zip(gt.image_event, gt.names)):
        path = os.path.join(pred_dir, gt.events[e], name + '.txt')
        if not os.path.isfile(path):
            files.append(None)
            issues.append(Issue(path, None, 'missing', 'prediction file missing: no detections for '
                                'this image', modes=('official',)))
            continue
        files.append(path)
        r, ln, count, file_issues = parse_prediction_file(path, name)
        issues += file_issues
        if count is None:
            continue
        truncated[i] = count > len(r)
        rows.append(r)
        lines.append(ln)
        images.append(np.full(len(r), i, dtype=np.int64))
        in_count.append(np.arange(len(r)) < count)
    rows = np.concatenate(rows) if rows else np.zeros((0, 5))
    return Predictions(pred_dir, _concat(images, np.int64), rows[:, :4], rows[:, 4], _concat(lines, np.int64),
                       _concat(in_count, bool), files, truncated, issues)


def _concat(parts, dtype):
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def write_predictions(out_dir, event, name, boxes_xywh_score):
    """Write ``<out_dir>/<event>/<name>.txt`` in the official layout.

    ``boxes_xywh_score``: ``[N, 5]`` ``x y w h score`` in original image pixels.
    Line 1 is the image name (``name`` without extension), line 2 the count.
    Values are written with 9 significant digits, exact for float32.
    """
    boxes = np.asarray(boxes_xywh_score, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 5:
        if boxes.size == 0:
            boxes = boxes.reshape(0, 5)
        else:
            raise ValueError('{}/{}: expected boxes of shape [N, 5] (x y w h score), got {}'.format(
                event, name, boxes.shape))
    if not np.all(np.isfinite(boxes)):
        raise ValueError('{}/{}: NaN or infinite box values'.format(event, name))
    name = _stem(name)
    folder = os.path.join(os.fspath(out_dir), event)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + '.txt')
    body = ('%.9g %.9g %.9g %.9g %.9g\n' * len(boxes)) % tuple(boxes.ravel().tolist())
    with open(path, 'w') as f:
        f.write('{}\n{}\n{}'.format(name, len(boxes), body))
    return path


# ----------------------------------------------------------------------------- arithmetic

def round_half_away(x):
    """MATLAB ``round``: halves away from zero (NumPy rounds them to even)."""
    x = np.asarray(x, dtype=np.float64)
    t = np.trunc(x)
    return t + np.sign(x) * (np.abs(x - t) >= 0.5)


def _int32(x):
    """MATLAB conversion of a double to int32: round half away, saturate."""
    return np.clip(round_half_away(x), INT32_MIN, INT32_MAX).astype(np.int64)


def _face_columns(gt, mode):
    """x1, y1, x2, y2 and area (pixel-inclusive) of every face: int64 (official) or float64 (python-port)."""
    b = gt.boxes.astype(np.int64 if mode == 'official' else np.float64)
    x1, y1 = b[:, 0], b[:, 1]
    x2, y2 = x1 + b[:, 2], y1 + b[:, 3]
    return x1, y1, x2, y2, (x2 - x1 + 1) * (y2 - y1 + 1)


def _pred_columns(corners, mode):
    """Per prediction: the corners as they meet the faces (official: MATLAB-rounded to int32) and the
    unrounded pixel-inclusive area."""
    area = (corners[:, 2] - corners[:, 0] + 1) * (corners[:, 3] - corners[:, 1] + 1)
    c = _int32(corners) if mode == 'official' else corners
    return c[:, 0], c[:, 1], c[:, 2], c[:, 3], area


def _pair_overlap(face, pred, f, p, mode):
    """Overlap of face/prediction pairs, computed only where the boxes intersect.

    official: MATLAB ``boxoverlap`` with int32 faces: ``round(inter / (round(area_g + area_p) - inter))``
    in int32 (0 or 1 except for degenerate boxes; x / 0 with x > 0 is intmax).
    python-port: float IoU ``inter / (area_p + area_g - inter)`` with ``+1`` widths.
    Returns (kept pair positions, overlap at them).
    """
    w = np.minimum(f[2][face], p[2][pred]) - np.maximum(f[0][face], p[0][pred]) + 1
    keep = np.flatnonzero(w > 0)
    face, pred, w = face[keep], pred[keep], w[keep]
    h = np.minimum(f[3][face], p[3][pred]) - np.maximum(f[1][face], p[1][pred]) + 1
    keep2 = np.flatnonzero(h > 0)
    keep, face, pred, inter = keep[keep2], face[keep2], pred[keep2], w[keep2] * h[keep2]
    with np.errstate(divide='ignore', invalid='ignore'):
        if mode == 'official':
            union = np.clip(_int32(f[4][face] + p[4][pred]) - inter, INT32_MIN, INT32_MAX)
            ratio = _int32(inter / np.where(union == 0, 1, union))
            return keep, np.where(union == 0, INT32_MAX, ratio)
        return keep, inter / (p[4][pred] + f[4][face] - inter)


def _match(gt, image, corners, mode):
    """Global face index matched by each prediction, -1 if none: the first face of maximal overlap."""
    matched = np.full(len(image), -1, dtype=np.int64)
    if len(image) == 0:
        return matched
    f, p = _face_columns(gt, mode), _pred_columns(corners, mode)
    starts = gt.offsets[image]
    n_faces = gt.offsets[image + 1] - starts
    cum = np.cumsum(n_faces)
    bounds = np.unique(np.concatenate(([0], np.searchsorted(cum, np.arange(PAIR_CHUNK, cum[-1], PAIR_CHUNK)),
                                       [len(image)])))
    for a, b in zip(bounds[:-1], bounds[1:]):
        counts = n_faces[a:b]
        pred = np.repeat(np.arange(a, b), counts)
        face = concat_ranges(starts[a:b], starts[a:b] + counts)
        keep, ov = _pair_overlap(face, pred, f, p, mode)
        hit = np.flatnonzero(ov >= IOU_THRESH)
        if hit.size == 0:
            continue
        pred, face, ov = pred[keep[hit]], face[keep[hit]], ov[hit]
        seg_first = np.unique(pred, return_index=True)[1]
        best = np.maximum.reduceat(ov, seg_first)
        is_best = ov == np.repeat(best, np.diff(np.append(seg_first, len(ov))))
        first_pred, first_idx = np.unique(pred[is_best], return_index=True)
        matched[first_pred] = face[is_best][first_idx]
    return matched


def _normalise(scores, mode, warn):
    if len(scores) == 0:
        return np.zeros(0)
    if mode == 'official':
        s = scores.astype(np.float32)
        lo = min(np.finfo(np.float32).max, s.min())
        hi = max(np.finfo(np.float32).tiny, s.max())
    else:
        s = scores.astype(np.float64)
        lo, hi = min(1.0, s.min()), max(0.0, s.max())
    if hi == lo:
        warn('all {} prediction scores normalise to 0/0 (min = max = {:g}): every AP is 0 in {} mode'
             .format(len(scores), float(lo), mode))
    with np.errstate(divide='ignore', invalid='ignore'):
        return ((s - lo) / (hi - lo)).astype(np.float64)


def _segment_cumsum(values, seg_start):
    c = np.cumsum(values, dtype=np.int64)
    first = np.maximum.accumulate(np.where(seg_start, np.arange(len(values)), 0))
    return c - np.where(first > 0, c[first - 1], 0)


def _threshold_ranges(image, norm):
    """For each prediction, the 0-based threshold indices [lo, hi) for which it is the last one
    with normalised score >= t in its image."""
    n = np.searchsorted(THRESHOLDS[::-1], norm, side='right')  # thresholds <= score
    n[np.isnan(norm)] = 0
    rev_image = image[::-1]
    offset = (THRESH_NUM + 1) * (image[-1] - rev_image)
    suffix = (np.maximum.accumulate(n[::-1] + offset) - offset)[::-1]
    last = np.append(image[1:] != image[:-1], True)
    nxt = np.where(last, 0, np.append(suffix[1:], 0))
    return THRESH_NUM - suffix, THRESH_NUM - nxt


def voc_ap(recall, precision):
    """VOC AP; NaN precision (0/0) is ignored by the running maximum, as MATLAB's ``max`` does."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


# ----------------------------------------------------------------------------- evaluation

def emit_issues(issues, mode):
    by_kind = {}
    for issue in issues:
        if mode in issue.modes:
            by_kind.setdefault(issue.kind, []).append(issue)
    for kind, items in by_kind.items():
        for issue in items[:WARNINGS_PER_KIND]:
            warnings.warn(str(issue), WiderEvalWarning, stacklevel=3)
        if len(items) > WARNINGS_PER_KIND:
            warnings.warn('... and {} more "{}" issues (all are in result["issues"])'.format(
                len(items) - WARNINGS_PER_KIND, kind), WiderEvalWarning, stacklevel=3)


def _select(preds, gt, mode):
    """Rows used by a mode, ordered as the mode walks them: (image, x1y1x2y2, raw score)."""
    if mode == 'python-port':
        missing = [os.path.join(preds.pred_dir, gt.events[gt.image_event[i]], gt.names[i] + '.txt')
                   for i, f in enumerate(preds.files) if f is None]
        if missing:
            raise FileNotFoundError('python-port mode: {} prediction file(s) missing, e.g. {}'.format(
                len(missing), ', '.join(missing[:5])))
        keep = np.ones(len(preds.image), dtype=bool)
    else:
        keep = preds.in_count & ~preds.truncated[preds.image]
    has_faces = (gt.offsets[1:] - gt.offsets[:-1]) > 0
    keep &= has_faces[preds.image]
    image, xywh, scores = preds.image[keep], preds.boxes[keep], preds.scores[keep]
    if mode == 'official':
        order = np.lexsort((-scores, image))  # stable: ties keep file order
        image, xywh, scores = image[order], xywh[order], scores[order]
    corners = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return image, corners, scores


def _pr_counts(counted, image, matched, lo, hi):
    """Summed (proposals, recalled faces) per threshold for one setting."""
    m = matched >= 0
    counts = np.zeros(len(image), dtype=bool)
    counts[m] = counted[matched[m]]
    ignored = m & ~counts
    first = np.zeros(len(image), dtype=bool)
    idx = np.flatnonzero(counts)
    first[idx[np.unique(matched[idx], return_index=True)[1]]] = True
    seg_start = np.append(True, image[1:] != image[:-1])
    recalled = _segment_cumsum(first, seg_start)
    proposals = _segment_cumsum(~ignored, seg_start)
    sel = hi > lo
    out = []
    for values in (proposals, recalled):
        d = (np.bincount(lo[sel], weights=values[sel], minlength=THRESH_NUM + 1)
             - np.bincount(hi[sel], weights=values[sel], minlength=THRESH_NUM + 1))
        out.append(np.cumsum(d)[:THRESH_NUM])
    return out


def evaluate(predictions, gt, mode='official'):
    """AP of easy, medium and hard for a prediction folder (or loaded ``Predictions``).

    ``gt``: the folder of the four .mat files, or a loaded ``GroundTruth``.
    Returns ``dict(easy=, medium=, hard=, mode=, curves={setting: dict(thresholds, precision,
    recall, proposals, recalled, count_face)}, issues=[str])``.
    """
    if mode not in MODES:
        raise ValueError('unknown mode {!r}; choose one of {}'.format(mode, MODES))
    gt = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    preds = predictions if isinstance(predictions, Predictions) else load_predictions(predictions, gt)
    if len(preds.files) != gt.num_images:
        raise ValueError('predictions were loaded for {} images, the ground truth has {}'.format(
            len(preds.files), gt.num_images))
    emit_issues(preds.issues, mode)
    issues = [str(i) for i in preds.issues if mode in i.modes]

    def warn(message):
        issues.append(message)
        warnings.warn(message, WiderEvalWarning, stacklevel=3)

    image, corners, scores = _select(preds, gt, mode)
    if len(image) == 0:
        warn('{}: no detections in any image: every AP is 0'.format(preds.pred_dir))
        image = np.zeros(0, dtype=np.int64)
    norm = _normalise(scores, mode, warn)
    matched = _match(gt, image, corners, mode)
    if len(image):
        lo, hi = _threshold_ranges(image, norm)
    else:
        lo = hi = np.zeros(0, dtype=np.int64)
    result = {'mode': mode, 'curves': {}, 'issues': issues}
    for setting in SETTINGS:
        count_face = gt.count_face(setting)
        if count_face == 0:
            warn('{}: no face counts in the {} setting: its AP is NaN'.format(gt.gt_dir, setting))
        proposals, recalled = _pr_counts(gt.counted[setting], image, matched, lo, hi)
        with np.errstate(divide='ignore', invalid='ignore'):
            precision = recalled / proposals
            recall = recalled / count_face
        result[setting] = voc_ap(recall, precision)
        result['curves'][setting] = {'thresholds': THRESHOLDS, 'precision': precision, 'recall': recall,
                                     'proposals': proposals, 'recalled': recalled, 'count_face': count_face}
    return result


# ----------------------------------------------------------------------------- outputs

def curves_to_json(results):
    """{mode: {setting: {...lists...}}} with NaN as null, for --curves."""
    def clean(a):
        return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=np.float64)]
    out = {}
    for mode, res in results.items():
        out[mode] = {s: {'ap': res[s], 'count_face': res['curves'][s]['count_face'],
                         **{k: clean(res['curves'][s][k])
                            for k in ('thresholds', 'precision', 'recall', 'proposals', 'recalled')}}
                     for s in SETTINGS}
    return out


def format_table(results):
    rows = ['{:<12}{:>9}{:>9}{:>9}'.format('mode', *SETTINGS)]
    rows += ['{:<12}{:>9.4f}{:>9.4f}{:>9.4f}'.format(m, *(r[s] for s in SETTINGS)) for m, r in results.items()]
    return '\n'.join(rows)

