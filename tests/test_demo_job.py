"""The main job (make demo) end to end at a tiny budget: generate, train,
evaluate with the official protocol, export, and draw with the standalone
Paddle Inference script, on demo images and on a folder tree of photos."""
import json
import os
import shutil

import pytest

from ppdet_hambox.jobs.demo import image_folders, run_demo

TINY = {
    'max_iters': 3, 'log_iter': 1, 'snapshot_iter': 3,
    'TrainReader': {'batch_size': 2, 'num_workers': 0},
    'EvalReader': {'num_workers': 0},
}


@pytest.fixture(scope='module')
def report(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp('demo_job')
    data = root / 'data'
    overrides = dict(TINY, TrainDataset={'dataset_dir': str(data)}, EvalDataset={'dataset_dir': str(data)},
                     TestDataset={'dataset_dir': str(data)})
    photos = root / 'photos'
    (photos / 'nested').mkdir(parents=True)
    first = run_demo(str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml'), str(root / 'out'), overrides,
                     seed=3, num_train=4, num_val=3, photos_dir=None, num_drawn=2)
    val_images = sorted((data / 'WIDER_val' / 'images').rglob('*.jpg'))
    shutil.copy(val_images[0], photos / 'a.jpg')
    shutil.copy(val_images[1], photos / 'nested' / 'b.jpg')
    second = run_demo(str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml'), str(root / 'out2'), overrides,
                      seed=3, num_train=4, num_val=3, photos_dir=str(photos), num_drawn=2)
    return {'root': root, 'first': first, 'second': second, 'data': data}


def test_report_holds_official_ap_and_timings(report):
    first = report['first']
    with open(os.path.join(os.path.dirname(first['inference_model']), 'report.json')) as f:
        assert json.load(f) == first
    for setting in ('easy', 'medium', 'hard'):
        assert 0.0 <= first[setting] <= 1.0
        assert 0.0 <= first['python_port'][setting] <= 1.0
    assert first['eval_mode'] == 'official' and first['eval_protocol'] == 'original'
    assert first['iterations'] == 3 and first['train_seconds'] > 0
    assert first['dataset']['train_images'] == 4 and first['dataset']['val_images'] == 3


def test_exported_model_and_drawings_exist(report):
    first, second = report['first'], report['second']
    for name in ('model.json', 'model.pdiparams', 'infer_cfg.yml'):
        assert os.path.isfile(os.path.join(first['inference_model'], name))
    assert len(first['drawn_images']) == 2 and all(os.path.isfile(p) for p in first['drawn_images'])
    drawn_photos = [p for p in second['drawn_images'] if os.sep + 'vis_photos' in p]
    assert sorted(os.path.relpath(p, os.path.join(os.path.dirname(second['inference_model']), 'vis_photos'))
                  for p in drawn_photos) == ['a.jpg', os.path.join('nested', 'b.jpg')]


def test_dataset_is_reused_when_the_request_is_the_same(report):
    marker = report['data'] / 'demo_dataset.json'
    assert report['second']['dataset'] == report['first']['dataset']
    assert marker.stat().st_mtime <= os.path.getmtime(report['first']['weights'])


def test_image_folders_walks_the_tree(tmp_path):
    (tmp_path / 'x' / 'y').mkdir(parents=True)
    (tmp_path / 'x' / 'y' / 'p.PNG').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('')
    assert image_folders(str(tmp_path)) == [str(tmp_path / 'x' / 'y')]
