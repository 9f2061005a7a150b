"""deploy/python/infer.py's JSON records are the detector's output: one record
per detection scoring >= the threshold (the boundary score included), boxes
``x y w h`` of the detector's ``x1 y1 x2 y2``, for images and for every frame
of a video in which faces are found.

The detector is a stand-in with the deploy ``Detector``'s interface: it finds
the drawn faces (``tests/drawn_faces.py``) by colour, so it sees what the
video really holds, and gives them fixed scores, one exactly at the
threshold and one just under it.
"""
import json

import cv2
import numpy as np
import pytest

from drawn_faces import COLOURS, colour_extent, draw_faces
from test_export import load_deploy

THRESHOLD = 0.5
SCORES = [0.9, THRESHOLD, np.nextafter(np.float32(THRESHOLD), np.float32(0)), 0.2]
SIZE = (120, 160)   # frame height, width
NUM_FRAMES = 6


class ColourDetector:
    """``predict(image)`` -> ``[N, 5]`` float32: face i is the extent of
    ``COLOURS[i]`` with score ``SCORES[i]``. The last instance made is
    ``ColourDetector.last``; ``calls`` holds what it returned, call by call."""

    def __init__(self, *args, **kwargs):
        self.cfg = type('Cfg', (), {'label_list': ['face'], 'draw_threshold': THRESHOLD})()
        self.times = {'preprocess': [], 'inference': [], 'postprocess': []}
        self.calls = []
        ColourDetector.last = self

    def predict(self, image):
        dets = [np.append(colour_extent(image, colour), score)
                for colour, score in zip(COLOURS, SCORES) if colour_extent(image, colour) is not None]
        dets = np.array(dets, np.float32).reshape(-1, 5)
        self.calls.append(dets)
        return dets


def frame_boxes(index):
    """Four faces moving right by 4 px a frame; frame 2 has none."""
    if index == 2:
        return np.zeros((0, 4))
    x = 4 * index
    return np.array([[x + 5, 10, x + 25, 34], [x + 40, 50, x + 62, 76], [x + 80, 8, x + 100, 30],
                     [x + 30, 85, x + 50, 110]])


def write_video(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 5, (SIZE[1], SIZE[0]))
    assert writer.isOpened()
    for index in range(NUM_FRAMES):
        writer.write(draw_faces(SIZE[0], SIZE[1], frame_boxes(index)))
    writer.release()
    return path


def expected_records(dets, source):
    keep = dets[dets[:, 4] >= THRESHOLD]
    return [{'im_file': source, 'category': 'face', 'score': float(s),
             'bbox': [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]} for x1, y1, x2, y2, s in keep]


def assert_records(records, expected):
    assert len(records) == len(expected)
    for got, want in zip(records, expected):
        assert got['im_file'] == want['im_file'] and got['category'] == want['category']
        assert got['score'] == pytest.approx(want['score'], abs=1e-7)
        np.testing.assert_allclose(got['bbox'], want['bbox'], atol=1e-4)


@pytest.fixture()
def model_dir(tmp_path):
    """A folder with the export's files, which pass the folder check (the
    stand-in reads none of them)."""
    folder = tmp_path / 'model'
    folder.mkdir()
    (folder / 'model.json').write_text('{}')
    (folder / 'model.pdiparams').write_bytes(b'\0')
    (folder / 'infer_cfg.yml').write_text('draw_threshold: {}\nlabel_list: [face]\nPreprocess: []\n'.format(THRESHOLD))
    return str(folder)


@pytest.fixture()
def deploy(monkeypatch):
    module = load_deploy()
    monkeypatch.setattr(module, 'Detector', ColourDetector)
    monkeypatch.setattr(module, 'resolve_device', lambda device: 'cpu')
    return module


def test_video_records_are_the_detections_of_every_frame(deploy, model_dir, tmp_path):
    video = write_video(tmp_path / 'clip.avi')
    out = tmp_path / 'out'
    deploy.main(['--model_dir', model_dir, '--video_file', str(video), '--output_dir', str(out),
                           '--threshold', str(THRESHOLD), '--save_json'])
    records = json.loads((out / 'bbox.json').read_text())
    calls = ColourDetector.last.calls
    assert len(calls) == NUM_FRAMES
    # the stand-in saw the faces drawn in each frame (the video holds them)
    for index, dets in enumerate(calls):
        assert len(dets) == len(frame_boxes(index))
        if len(dets):
            np.testing.assert_allclose(np.sort(dets[:, 0]), np.sort(frame_boxes(index)[:, 0]), atol=1.5)
    expected = [r for index, dets in enumerate(calls) for r in expected_records(dets, '{}#{}'.format(video, index))]
    assert_records(records, expected)
    # two records a frame with faces: the 0.9 face and the one exactly at the threshold
    frames = [int(r['im_file'].rsplit('#', 1)[1]) for r in records]
    assert sorted(set(frames)) == [i for i in range(NUM_FRAMES) if i != 2]
    assert all(frames.count(i) == 2 for i in set(frames))
    assert cv2.VideoCapture(str(out / 'clip.mp4')).get(cv2.CAP_PROP_FRAME_COUNT) == NUM_FRAMES


def test_image_records_are_the_detections(deploy, model_dir, tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    for index in (0, 3):
        cv2.imwrite(str(images / 'img_{}.png'.format(index)), draw_faces(SIZE[0], SIZE[1], frame_boxes(index)))
    out = tmp_path / 'out'
    deploy.main(['--model_dir', model_dir, '--image_dir', str(images), '--output_dir', str(out),
                           '--save_json'])
    records = json.loads((out / 'bbox.json').read_text())
    calls = ColourDetector.last.calls
    paths = sorted(str(p) for p in images.iterdir())
    expected = [r for path, dets in zip(paths, calls) for r in expected_records(dets, path)]
    assert len(expected) == 4
    assert_records(records, expected)
    for path, dets in zip(paths, calls):
        np.testing.assert_allclose(dets[:, :4], frame_boxes(int(path[-5]))[:len(dets)], atol=0)


def test_latency_summary_is_in_milliseconds_with_exact_percentiles():
    """The benchmark report's arithmetic on given timings (no clock involved)."""
    deploy = load_deploy()
    times = {'preprocess': [0.001, 0.002, 0.003, 0.004, 0.005], 'inference': [0.010] * 5,
             'postprocess': [0.0] * 5}
    summary = deploy.latency_summary(times)
    assert summary['preprocess'] == {'mean': pytest.approx(3.0), 'p50': pytest.approx(3.0),
                                     'p90': pytest.approx(4.6), 'runs': 5}
    assert summary['total']['mean'] == pytest.approx(13.0) and summary['total']['runs'] == 5
