"""The embedded demo dataset: WIDER FACE layout and formats, determinism,
boxes exactly on the drawn faces, difficulty settings."""
import contextlib
import io
import json
import re
import sys

import cv2
import numpy as np
import pytest
import scipy.io

from ppdet_hambox.data.source import demo, demo_render

SMALL = dict(num_train=12, num_val=6)
ATTRIBUTE_RANGES = {'blur': 2, 'expression': 1, 'illumination': 1, 'invalid': 1, 'occlusion': 2, 'pose': 1}
GT_FILES = ['wider_face_val.mat'] + ['wider_{}_val.mat'.format(s) for s in ('easy', 'medium', 'hard')]
LABEL_LISTS = ['blur_label_list', 'expression_label_list', 'illumination_label_list',
               'invalid_label_list', 'occlusion_label_list', 'pose_label_list']


def run_cli(out, seed, num_train, num_val):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        demo.main(['--out', str(out), '--seed', str(seed), '--num-train', str(num_train),
                   '--num-val', str(num_val)])
    return stdout.getvalue()


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo') / 'widerface'
    printed = run_cli(out, 0, **SMALL)
    summary = json.loads(printed.strip().splitlines()[-1])
    assert sorted(summary) == sorted(['train_images', 'val_images', 'train_faces', 'val_faces',
                                      'easy', 'medium', 'hard'])
    return out, summary


def parse_bbx_gt(path):
    """Strict reader of the official txt format: {rel_path: (count, int rows [n, 10])}."""
    lines = path.read_text(encoding='ascii').split('\n')
    assert lines[-1] == '', 'file must end with a newline'
    images, i = {}, 0
    while i < len(lines) - 1:
        assert re.fullmatch(r'\d+--[A-Za-z_]+/\d+_[A-Za-z_]+_\d+_\d+\.jpg', lines[i]), lines[i]
        count = int(lines[i + 1])
        rows = lines[i + 2:i + 2 + max(count, 1)]
        assert all(row.endswith(' ') and len(row.split()) == 10 for row in rows), rows
        images[lines[i]] = (count, np.array([row.split() for row in rows], np.int64).reshape(-1, 10))
        i += 2 + max(count, 1)
    return images


def faces(entry):
    """The face rows of an image: a face-less image has one all-zero placeholder line."""
    count, rows = entry
    rows = rows[:count]
    return rows[rows.any(axis=1)]


def test_layout_and_official_txt_format(small):
    out, summary = small
    for split, faceless_count in (('train', 0), ('val', 1)):
        annotations = parse_bbx_gt(out / 'wider_face_split' / 'wider_face_{}_bbx_gt.txt'.format(split))
        image_dir = out / 'WIDER_{}'.format(split) / 'images'
        on_disk = {p.relative_to(image_dir).as_posix() for p in image_dir.rglob('*.jpg')}
        assert on_disk == set(annotations)
        assert len(annotations) == summary['{}_images'.format(split)] == SMALL['num_{}'.format(split)]
        events = [p.split('/')[0] for p in annotations]
        assert events == sorted(events), 'images must be grouped by event in string order'
        faceless = [p for p, (count, rows) in annotations.items() if len(faces((count, rows))) == 0]
        assert faceless, 'each split has a face-less image'
        for path in faceless:
            count, rows = annotations[path]
            assert count == faceless_count and rows.tolist() == [[0] * 10]
        assert sum(len(faces(a)) for a in annotations.values()) == summary['{}_faces'.format(split)]
        for path, entry in annotations.items():
            height, width = cv2.imread(str(image_dir / path)).shape[:2]
            rows = faces(entry)
            x, y, w, h = rows[:, :4].T
            assert (w > 0).all() and (h > 0).all() and (x >= 0).all() and (y >= 0).all()
            assert (x + w <= width).all() and (y + h <= height).all(), path
            for column, (name, high) in enumerate(ATTRIBUTE_RANGES.items()):
                assert ((rows[:, 4 + column] >= 0) & (rows[:, 4 + column] <= high)).all(), name


def test_project_reader_reads_the_demo_dataset(small):
    widerface = pytest.importorskip('ppdet_hambox.data.source.widerface')
    out, summary = small
    for split in ('train', 'val'):
        path = out / 'wider_face_split' / 'wider_face_{}_bbx_gt.txt'.format(split)
        mine, read = parse_bbx_gt(path), widerface.read_wider_txt(path)
        assert read.files == list(mine)
        assert read.summary()['faces'] == summary['{}_faces'.format(split)]
        positive, image_of_box = read.positive_size(), read.image_index()
        for i, rel in enumerate(read.files):
            rows, keep = faces(mine[rel]), positive & (image_of_box == i)
            assert np.array_equal(read.boxes[keep], np.hstack([rows[:, :2], rows[:, :2] + rows[:, 2:4]]))
            assert np.array_equal(read.attributes[keep], rows[:, 4:])
    from_mat = widerface.read_wider_mat(out / 'eval_tools' / 'ground_truth' / 'wider_face_val.mat')
    assert from_mat.files == read.files
    assert np.array_equal(from_mat.boxes, read.boxes) and np.array_equal(from_mat.attributes, read.attributes)
    dataset = widerface.WIDERFaceDataset(dataset_dir=str(out), image_dir='WIDER_val/images',
                                         anno_path='wider_face_split/wider_face_val_bbx_gt.txt')
    records = [dataset[i] for i in range(len(dataset))]
    assert len(records) == summary['val_images']
    assert sum(len(r['gt_bbox']) for r in records) == summary['hard'], 'training faces = valid faces'
    assert all(cv2.imread(r['im_file']) is not None for r in records)


def structure(value, path, out):
    """Adds (path pattern, kind, dtype, ndim, trailing shape) of every nested cell to ``out``."""
    if value.dtype == object:
        out.add((path, 'cell', value.ndim, value.shape[1:]))
        for item in value.flat:
            structure(item, path + '/*', out)
    elif value.dtype.kind == 'U':
        out.add((path, 'str', value.ndim, value.shape))
    else:
        out.add((path, str(value.dtype), value.ndim, value.shape if value.size == 0 else value.shape[1:]))
    return out


def load_mats(directory):
    return {name: scipy.io.loadmat(str(directory / name)) for name in GT_FILES}


@pytest.fixture(scope='module')
def official_mats(shared_data):
    return load_mats(shared_data / 'widerface')


def mat_structure(mat):
    assert mat['__version__'] == '1.0'
    return {key: structure(value, key, set()) for key, value in mat.items() if not key.startswith('__')}


def test_mat_structure_matches_official(small, official_mats):
    mats = load_mats(small[0] / 'eval_tools' / 'ground_truth')
    for name in GT_FILES:
        ours, official = mat_structure(mats[name]), mat_structure(official_mats[name])
        assert sorted(ours) == sorted(official), name
        for key in official:
            # The official gt_list also holds uint16 indices (images with more than 255 faces)
            # and empty 0x1 lists, which a small set need not contain.
            if key == 'gt_list':
                assert ours[key] <= official[key], (name, ours[key] - official[key])
            else:
                assert ours[key] == official[key], (name, key, ours[key] ^ official[key])


def empty_gt_list_rule(mats):
    """Every empty gt_list is 0x0 exactly when its image has one box row (checked, and counted)."""
    boxes = mats['wider_face_val.mat']['face_bbx_list']
    checked = 0
    for setting in ('easy', 'medium', 'hard'):
        gt_list = mats['wider_{}_val.mat'.format(setting)]['gt_list']
        for event_boxes, event_gt in zip(boxes[:, 0], gt_list[:, 0]):
            for image_boxes, indices in zip(event_boxes[:, 0], event_gt[:, 0]):
                if indices.size == 0:
                    assert indices.shape == ((0, 0) if image_boxes.shape[0] == 1 else (0, 1))
                    checked += 1
    return checked


def test_empty_gt_lists_shaped_like_official(small, official_mats):
    assert empty_gt_list_rule(official_mats) > 0
    assert empty_gt_list_rule(load_mats(small[0] / 'eval_tools' / 'ground_truth')) > 0


def test_mat_agrees_with_val_txt_and_difficulty_rules(small):
    out, summary = small
    gt_dir = out / 'eval_tools' / 'ground_truth'
    annotations = parse_bbx_gt(out / 'wider_face_split' / 'wider_face_val_bbx_gt.txt')
    base = scipy.io.loadmat(str(gt_dir / 'wider_face_val.mat'))
    settings = {s: scipy.io.loadmat(str(gt_dir / 'wider_{}_val.mat'.format(s)))
                for s in ('easy', 'medium', 'hard')}
    listed, totals = [], {s: 0 for s in settings}
    for e, event in enumerate(base['event_list'][:, 0]):
        for i, name in enumerate(base['file_list'][e, 0][:, 0]):
            path = '{}/{}.jpg'.format(event[0], name[0])
            listed.append(path)
            rows = faces(annotations[path])
            boxes = base['face_bbx_list'][e, 0][i, 0]
            labels = np.hstack([base[key][e, 0][i, 0] for key in LABEL_LISTS]).astype(np.int64)
            if len(rows) == 0:
                assert boxes.tolist() == [[0, 0, 0, 0]] and not labels.any()
            else:
                assert np.array_equal(boxes, rows[:, :4]) and np.array_equal(labels, rows[:, 4:])
            counted = {}
            for s, mat in settings.items():
                indices = mat['gt_list'][e, 0][i, 0].ravel().astype(np.int64)
                assert np.array_equal(mat['face_bbx_list'][e, 0][i, 0], boxes)
                mask = np.zeros(len(rows), bool)
                mask[indices - 1] = True
                assert np.array_equal(np.flatnonzero(mask) + 1, indices), 'sorted, unique, 1-based'
                counted[s] = mask
                totals[s] += len(indices)
            blur, occlusion, height = rows[:, 4], rows[:, 8], rows[:, 3]
            valid = rows[:, 7] == 0
            assert not (counted['easy'] & ~counted['medium']).any()
            assert not (counted['medium'] & ~counted['hard']).any()
            assert np.array_equal(counted['hard'], valid)
            heavy = (blur == 2) & (occlusion == 2)
            assert np.array_equal(counted['medium'], valid & (height >= 10) & ~heavy)
            assert np.array_equal(counted['easy'], valid & (height >= 40) & (blur < 2) & (occlusion < 2))
    assert listed == list(annotations)
    assert totals == {s: summary[s] for s in settings}
    assert 0 < summary['easy'] < summary['medium'] < summary['hard'] <= summary['val_faces']


def file_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_same_seed_gives_identical_files_other_seed_differs(small, tmp_path):
    first = file_bytes(small[0])
    again = tmp_path / 'again'
    demo.generate(again, seed=1, **SMALL)
    other = file_bytes(again)
    txt = 'wider_face_split/wider_face_train_bbx_gt.txt'
    assert other[txt] != first[txt]
    jpegs = [{data for name, data in files.items() if name.endswith('.jpg')} for files in (first, other)]
    assert not jpegs[0] & jpegs[1]
    # Regenerating over the seed-1 set clears it and reproduces seed 0 byte for byte.
    demo.generate(again, seed=0, **SMALL)
    second = file_bytes(again)
    assert sorted(second) == sorted(first)
    assert [name for name in first if first[name] != second[name]] == []


def face_correlation(grey, box, reference, mask):
    x, y, w, h = box
    window = grey[y:y + h, x:x + w][mask]
    a, b = window - window.mean(), reference - reference.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-9))


def test_boxes_lie_exactly_on_the_drawn_faces(small):
    """For every clean face of 16 px or more, the box content correlates with
    a real LFW crop (>= 0.85), and the box beats every window shifted by up
    to 2 px (exact placement) and by half the box (the face is not background)."""
    out = small[0]
    crops = demo_render.load_assets().faces
    crops = np.concatenate([crops, crops[:, :, ::-1]])
    checked = 0
    for split in ('train', 'val'):
        annotations = parse_bbx_gt(out / 'wider_face_split' / 'wider_face_{}_bbx_gt.txt'.format(split))
        for path, entry in annotations.items():
            image = cv2.imread(str(out / 'WIDER_{}'.format(split) / 'images' / path))
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
            height, width = grey.shape
            for row in faces(entry):
                x, y, w, h = (int(v) for v in row[:4])
                if h < 16 or row[4:].any():
                    continue
                v, u = (np.arange(h) + 0.5) / h * 2 - 1, (np.arange(w) + 0.5) / w * 2 - 1
                mask = v[:, None] ** 2 + u[None, :] ** 2 < 0.8
                interpolation = cv2.INTER_AREA if h < demo_render.CROP else cv2.INTER_CUBIC
                references = [cv2.resize(c, (w, h), interpolation=interpolation)[mask] for c in crops]
                scores = [face_correlation(grey, (x, y, w, h), r, mask) for r in references]
                best = references[int(np.argmax(scores))]
                assert max(scores) >= 0.85, (path, row.tolist(), max(scores))
                shifts = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3) if dx or dy]
                shifts += [(w // 2, 0), (-(w // 2), 0), (0, h // 2), (0, -(h // 2))]
                for dx, dy in shifts:
                    if 0 <= x + dx and x + dx + w <= width and 0 <= y + dy and y + dy + h <= height:
                        assert face_correlation(grey, (x + dx, y + dy, w, h), best, mask) < max(scores), \
                            (path, row.tolist(), (dx, dy))
                checked += 1
    assert checked >= 10


def test_planned_boxes_are_the_written_boxes(small):
    annotations = parse_bbx_gt(small[0] / 'wider_face_split' / 'wider_face_train_bbx_gt.txt')
    planned = {}
    for index, (event, plan) in enumerate(demo.plan_split(0, 'train', SMALL['num_train'])):
        planned['{}/{}.jpg'.format(event, demo.image_name(event, index))] = plan.boxes()
    assert sorted(planned) == sorted(annotations)
    for path, boxes in planned.items():
        assert np.array_equal(boxes, faces(annotations[path])[:, :4]), path


def test_default_configuration_covers_small_and_large_faces():
    heights = np.concatenate([plan.boxes()[:, 3] for split, count in (('train', 240), ('val', 60))
                              for _, plan in demo.plan_split(0, split, count)])
    assert heights.min() >= demo_render.MIN_FACE and heights.max() <= 300
    assert (heights < 16).mean() > 0.3, 'WIDER-like: many small faces'
    assert (heights > 100).sum() >= 10
    assert (heights > 150).any()


def test_default_configuration_has_wider_like_difficulty_shares():
    # WIDER FACE val: easy is 18% of all faces (7,211 / 39,708). The demo's large (>= 40 px) faces
    # are at least that share of the val set, and training images show about two of them each.
    for split, count, share, per_image in (('val', 60, 0.18, None), ('train', 240, 0.15, 1.8)):
        heights = np.concatenate([plan.boxes()[:, 3] for _, plan in demo.plan_split(0, split, count)])
        assert (heights >= demo.EASY_SIZE).mean() >= share, split
        if per_image:
            assert (heights >= demo.EASY_SIZE).sum() / count >= per_image, split


def test_dataset_of_another_generator_version_is_regenerated(tmp_path, monkeypatch):
    from ppdet_hambox.jobs import demo as demo_job
    first = demo_job.ensure_dataset(str(tmp_path), 0, **SMALL)
    marker = tmp_path / demo.MARKER
    assert json.loads(marker.read_text())['version'] == demo.VERSION
    stamp = marker.stat().st_mtime_ns
    assert demo_job.ensure_dataset(str(tmp_path), 0, **SMALL) == first  # reused
    assert marker.stat().st_mtime_ns == stamp
    monkeypatch.setattr(demo, 'VERSION', demo.VERSION + 1)
    demo_job.ensure_dataset(str(tmp_path), 0, **SMALL)  # written by an older generator: regenerated
    assert json.loads(marker.read_text())['version'] == demo.VERSION


def test_refuses_to_overwrite_other_data(tmp_path):
    (tmp_path / 'WIDER_train' / 'images').mkdir(parents=True)
    with pytest.raises(FileExistsError, match='not a generated demo dataset'):
        demo.generate(tmp_path, **SMALL)
    assert (tmp_path / 'WIDER_train' / 'images').is_dir()


def test_bad_size_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        demo.main(['--out', str(tmp_path), '--size', '20x320'])
    assert 'at least {}'.format(demo.MIN_SIDE) in capsys.readouterr().err
    with pytest.raises(ValueError, match='WxH'):
        demo.parse_size('320')


def test_missing_scikit_image_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, 'skimage', None)
    with pytest.raises(ImportError, match='pip install scikit-image'):
        demo_render.load_assets()


def test_every_accepted_size_can_be_planned():
    """The smallest size --size accepts fits every kind of image (64 px did not fit a portrait)."""
    side = demo.MIN_SIDE
    for seed in range(10):
        for size in ((side, side), (side, 400), (400, side)):
            assert len(demo.plan_split(seed, 'train', 20, size)) == 20
