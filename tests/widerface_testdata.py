"""Hand-made WIDER FACE ground truth (.mat files with the official nesting) and prediction files."""
import os

import numpy as np
from scipy.io import savemat

SETTINGS = ('easy', 'medium', 'hard')


def _cell(items):
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def write_ground_truth(folder, images, counted=None):
    """Write the four val .mat files.

    ``images``: list of ``(event, name, boxes)`` with ``boxes`` ``[N, 4]`` ``x y w h``.
    ``counted``: ``{setting: [1-based face indices per image]}``; default every face in every setting.
    """
    os.makedirs(folder, exist_ok=True)
    events = list(dict.fromkeys(e for e, _, _ in images))
    per_event = {e: [i for i, im in enumerate(images) if im[0] == e] for e in events}
    boxes = [np.asarray(b, dtype=np.int32).reshape(-1, 4) for _, _, b in images]
    base = {
        'event_list': _cell(events),
        'file_list': _cell([_cell([images[i][1] for i in per_event[e]]) for e in events]),
        'face_bbx_list': _cell([_cell([boxes[i] for i in per_event[e]]) for e in events]),
    }
    savemat(os.path.join(folder, 'wider_face_val.mat'), base)
    for setting in SETTINGS:
        idx = counted[setting] if counted else [list(range(1, len(b) + 1)) for b in boxes]
        gt_list = _cell([_cell([np.asarray(idx[i], dtype=np.float64).reshape(-1, 1) for i in per_event[e]])
                         for e in events])
        savemat(os.path.join(folder, 'wider_{}_val.mat'.format(setting)), dict(base, gt_list=gt_list))
    return folder


def write_raw(pred_dir, event, name, text):
    """A prediction file with exactly this text."""
    folder = os.path.join(pred_dir, event)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + '.txt')
    with open(path, 'w', newline='') as f:
        f.write(text)
    return path


def box_file(name, rows, count=None):
    """Text of a prediction file from ``[x, y, w, h, score]`` rows."""
    lines = [name, str(len(rows) if count is None else count)]
    lines += [' '.join(repr(float(v)) for v in row) for row in rows]
    return '\n'.join(lines) + '\n'
