"""Drawing, JSON records and tools/infer.py with a dygraph model."""
import importlib.util
import json
import shutil

import cv2
import numpy as np
import paddle

from hambox_eval_helpers import DEMO_CONFIG, REPO_ROOT, demo_cfg, tiny_model, val_images
from ppdet_hambox.evaluation.predictor import Predictor
from ppdet_hambox.utils.visualize import detections_to_records, draw_detections

GREEN = [0, 255, 0]


def test_draw_detections_hand_case():
    image = np.zeros((100, 100, 3), np.uint8)
    dets = np.array([[10, 10, 50, 50, 0.9], [60, 60, 90, 90, 0.2]], np.float32)
    drawn = draw_detections(image, dets, threshold=0.5, thickness=1)
    assert not image.any(), 'the input image must not change'
    assert drawn[40, 10].tolist() == GREEN and drawn[40, 50].tolist() == GREEN   # left, right edges
    assert drawn[50, 30].tolist() == GREEN                                       # bottom edge
    assert not drawn[30, 30].any() and not drawn[75, 75].any()
    assert not drawn[75, 60].any(), 'a detection below the threshold is not drawn'


def test_detection_records():
    dets = np.array([[10, 20, 50, 80, 0.9], [0, 0, 5, 5, 0.1]], np.float32)
    records = detections_to_records(dets, threshold=0.5, im_file='a.jpg')
    assert records == [{'bbox': [10.0, 20.0, 40.0, 60.0], 'score': records[0]['score'], 'im_file': 'a.jpg'}]
    assert abs(records[0]['score'] - 0.9) < 1e-6


def test_infer_tool_draws_and_saves_json(tmp_path):
    model = tiny_model()
    weights = tmp_path / 'tiny.pdparams'
    paddle.save(model.state_dict(), str(weights))
    images = tmp_path / 'images'
    images.mkdir()
    for path in val_images():
        shutil.copy(path, images / path.name)
    spec = importlib.util.spec_from_file_location('infer_tool', REPO_ROOT / 'tools' / 'infer.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'out'
    threshold = 0.3
    tool.main(['-c', str(DEMO_CONFIG), '-o', 'weights={}'.format(weights), 'TestProtocol.vga_size=[320,240]',
               '--infer_dir', str(images), '--output_dir', str(out), '--draw_threshold', str(threshold),
               '--save_json', '--protocol', 'vga'])
    records = json.loads((out / 'bbox.json').read_text())
    predictor = Predictor(model, demo_cfg(), 'vga')
    drawn_any = False
    for path in sorted(images.iterdir()):
        original = cv2.imread(str(path))
        drawn = cv2.imread(str(out / path.name))
        assert drawn.shape == original.shape
        expected = predictor.detect(original)
        expected = expected[expected[:, 4] >= threshold]
        mine = [r for r in records if r['im_file'] == str(path)]
        assert len(mine) == len(expected)
        if len(expected):
            got = np.array([r['bbox'] + [r['score']] for r in mine])
            xywh = np.concatenate([expected[:, :2], expected[:, 2:4] - expected[:, :2], expected[:, 4:]], 1)
            np.testing.assert_allclose(got, xywh, atol=1e-3)
            drawn_any = True
            assert np.abs(drawn.astype(int) - original).max() > 100, 'boxes must be drawn'
    assert drawn_any, 'the tiny model must detect something above the threshold'


def test_a_folder_walk_names_the_files_it_ignores(tmp_path, caplog):
    """A file without an image extension in --infer_dir is not read, and the log says so."""
    from ppdet_hambox.evaluation.inference import list_images
    (tmp_path / 'sub').mkdir()
    cv2.imwrite(str(tmp_path / 'sub' / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'movie.gif').write_bytes(b'GIF89a')
    (tmp_path / 'sub' / 'up').symlink_to(tmp_path)  # a loop is not followed
    with caplog.at_level('WARNING'):
        images = list_images(infer_dir=str(tmp_path))
    assert images == [(str(tmp_path / 'sub' / 'a.png'), 'sub/a.png')]
    assert 'ignored 1 file(s) without an image extension' in caplog.text and 'movie.gif' in caplog.text
