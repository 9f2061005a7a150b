"""One decoding rule everywhere: a JPEG's EXIF orientation is applied. A
picture stored turned and tagged orientation 6 gives the same pixels, boxes
and detections as the same picture stored upright, in training, tools/eval.py
(dygraph and exported), tools/infer.py, deploy/python/infer.py and the
service."""
import json

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

from hambox_eval_helpers import (DEMO_CONFIG, DEPLOY_INFER, REPO_ROOT, demo_cfg, exported_model_dir, tiny_model,
                                 val_images)
from ppdet_hambox.core.workspace import create
from ppdet_hambox.data import image_size, read_image
from ppdet_hambox.data.pipeline import TransformedDataset
from test_tool_errors import load_script, load_tool
from widerface_testdata import write_ground_truth

EXIF_ORIENTATION = 0x0112
HEIGHT, WIDTH = 96, 128          # the picture as displayed
EVENT = '0--Parade'
FACE = [40, 20, 30, 36]          # x y w h, in displayed pixels


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    """``images/0--Parade/tagged.jpg``: the picture stored turned 90 degrees
    counter-clockwise, tagged orientation 6 (turn clockwise to display);
    ``upright.png``: its pixels as displayed, stored losslessly."""
    root = tmp_path_factory.mktemp('exif')
    folder = root / 'images' / EVENT
    folder.mkdir(parents=True)
    picture = cv2.resize(cv2.imread(str(val_images()[0])), (WIDTH, HEIGHT))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    tagged = folder / 'tagged.jpg'
    Image.fromarray(np.ascontiguousarray(np.rot90(picture)[:, :, ::-1])).save(tagged, quality=95,
                                                                               exif=exif.tobytes())
    stored = cv2.imread(str(tagged), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert stored.shape == (WIDTH, HEIGHT, 3)
    upright = folder / 'upright.png'
    cv2.imwrite(str(upright), np.rot90(stored, k=-1))
    return root, tagged, upright, picture


def test_decoder_applies_the_orientation(pair):
    _, tagged, upright, picture = pair
    image = read_image(str(tagged))
    assert image.shape == (HEIGHT, WIDTH, 3) and image_size(str(tagged)) == (WIDTH, HEIGHT)
    np.testing.assert_array_equal(image, read_image(str(upright)))
    assert np.abs(image.astype(int) - picture).mean() < 8, 'turned the wrong way'


def test_training_samples_are_the_same(pair):
    _, tagged, upright, _ = pair
    records = [{'im_file': str(path), 'im_id': 0, 'gt_bbox': np.array([[40, 20, 70, 56]], np.float32),
                'gt_ignore': np.zeros(1, bool)} for path in (tagged, upright)]
    transforms = create('TrainReader', demo_cfg()).sample_transforms
    tagged_samples, upright_samples = (TransformedDataset([record], transforms, seed=5) for record in records)
    faces = 0
    for epoch in range(3):
        a, b = tagged_samples[(epoch, 0)], upright_samples[(epoch, 0)]
        np.testing.assert_array_equal(a['image'], b['image'])
        np.testing.assert_array_equal(a['gt_bbox'], b['gt_bbox'])
        assert list(a['ori_shape']) == [HEIGHT, WIDTH]
        faces += len(a['gt_bbox'])
    assert faces > 0


def _eval_dataset(root):
    anno = root / 'wider_face_val_bbx_gt.txt'
    anno.write_text(''.join('{}/{}\n1\n{} {} {} {} 0 0 0 0 0 0\n'.format(EVENT, name, *FACE)
                            for name in ('tagged.jpg', 'upright.png')))
    gt = write_ground_truth(str(root / 'gt'), [(EVENT, name, [FACE]) for name in ('tagged', 'upright')])
    return ['EvalDataset.dataset_dir={}'.format(root), 'EvalDataset.image_dir=images',
            'EvalDataset.anno_path={}'.format(anno.name), 'wider_gt_dir={}'.format(gt)]


@pytest.mark.parametrize('exported', [False, True], ids=['dygraph', 'model_dir'])
def test_eval_tool_predicts_the_same(pair, tmp_path, exported, capsys):
    root = pair[0]
    weights = tmp_path / 'tiny.pdparams'
    paddle.save(tiny_model().state_dict(), str(weights))
    argv = ['-c', str(DEMO_CONFIG), '-o', 'weights={}'.format(weights), 'TestProtocol.vga_size=[320,240]',
            *_eval_dataset(root), '--protocol', 'vga', '--output_eval', str(tmp_path / 'pred')]
    if exported:
        argv += ['--model_dir', str(exported_model_dir())]
    load_tool('eval').main(argv)
    tagged, upright = ((tmp_path / 'pred' / EVENT / name).read_text().splitlines() for name in
                       ('tagged.txt', 'upright.txt'))
    assert tagged[0] == 'tagged' and upright[0] == 'upright'
    assert tagged[1:] == upright[1:] and int(tagged[1]) > 0


def test_infer_tool_detects_the_same(pair, tmp_path):
    root = pair[0]
    weights = tmp_path / 'tiny.pdparams'
    paddle.save(tiny_model().state_dict(), str(weights))
    out = tmp_path / 'out'
    load_tool('infer').main(['-c', str(DEMO_CONFIG), '-o', 'weights={}'.format(weights),
                             'TestProtocol.vga_size=[320,240]', '--infer_dir', str(root / 'images'),
                             '--output_dir', str(out), '--draw_threshold', '0.1', '--save_json', '--protocol', 'vga'])
    _assert_same_records(json.loads((out / 'bbox.json').read_text()), 'bbox')
    assert cv2.imread(str(out / EVENT / 'tagged.jpg')).shape == (HEIGHT, WIDTH, 3)


def _assert_same_records(records, key):
    tagged = [r[key] + [r['score']] for r in records if r['im_file'].endswith('tagged.jpg')]
    upright = [r[key] + [r['score']] for r in records if r['im_file'].endswith('upright.png')]
    assert tagged == upright and len(tagged) > 0


def test_deploy_infer_detects_the_same(pair, tmp_path):
    root, tagged, upright, _ = pair
    deploy = load_tool('deploy')
    np.testing.assert_array_equal(deploy.read_image(str(tagged))[0], read_image(str(tagged)))
    out = tmp_path / 'out'
    code = deploy.main(['--model_dir', str(exported_model_dir()), '--image_dir', str(root / 'images'),
                        '--output_dir', str(out), '--threshold', '0.1', '--save_json', '--cpu_threads', '1'])
    assert code == 0
    _assert_same_records(json.loads((out / 'bbox.json').read_text()), 'bbox')


def test_service_detects_the_same(pair, monkeypatch):
    _, tagged, upright, _ = pair
    monkeypatch.syspath_prepend(str(DEPLOY_INFER.parent))
    serve = load_script(REPO_ROOT / 'deploy' / 'python' / 'serve.py')
    detector = serve.Detector(str(exported_model_dir()), cpu_threads=1)
    answers = []
    for path in (tagged, upright):
        body = path.read_bytes()
        serve.image_size(body, serve.MAX_PIXELS)   # the request's header check passes
        kind, answer = serve.run_job(detector, 'face', body, 0.1, 'request')
        assert kind == 'ok'
        answers.append(answer)
    assert answers[0]['width'] == WIDTH and answers[0]['height'] == HEIGHT
    assert answers[0] == answers[1] and answers[0]['detections']
