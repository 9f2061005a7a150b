"""tools/benchmark_train.py: the real training step on the most crowded images,
with honest per-stage times, on a tiny config (and on the real WIDER FACE
annotations when the shared data is there)."""
import importlib.util
import json
import time

import numpy as np
import pytest

from ppdet_hambox.core.errors import run_tool
from ppdet_hambox.core.workspace import load_config
from ppdet_hambox.data.source import demo
from ppdet_hambox.data.source.widerface import read_wider_annotation
from ppdet_hambox.analysis.train_benchmark import STAGES, run_benchmark
from ppdet_hambox.modeling.assigners import HAMBoxAssigner

SLEEP_S = 0.3


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, repo_root):
    data = tmp_path_factory.mktemp('bench_train')
    demo.generate(str(data), seed=2, num_train=5, num_val=1, size='160x128')
    overrides = ['TrainReader.batch_size=2', 'TrainReader.num_workers=0']
    return dict(config=str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml'), overrides=overrides,
                anno=str(data / 'wider_face_split' / 'wider_face_train_bbx_gt.txt'))


def load_tool(repo_root):
    spec = importlib.util.spec_from_file_location('benchmark_train', str(repo_root / 'tools' / 'benchmark_train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def face_counts(anno):
    annotation = read_wider_annotation(anno)
    keep = annotation.positive_size() & ~annotation.invalid()
    return np.bincount(annotation.image_index()[keep], minlength=annotation.num_images)


def test_stages_are_timed_where_they_happen(tiny, monkeypatch):
    """A 0.3 s sleep inside the assigner shows up in ``assign``, not in ``forward``."""
    original = HAMBoxAssigner.__call__

    def slow(self, *args):
        time.sleep(SLEEP_S)
        return original(self, *args)
    monkeypatch.setattr(HAMBoxAssigner, '__call__', slow)
    cfg = load_config(tiny['config'], tiny['overrides'])
    start = time.perf_counter()
    result = run_benchmark(cfg, tiny['anno'], crowded=3, steps=2, log=lambda line: None)
    wall_ms = (time.perf_counter() - start) * 1000
    step = result['step_ms']
    assert set(STAGES) | {'total', 'wall'} == set(step)
    assert step['assign'] >= SLEEP_S * 1000
    assert step['forward'] > 0 and step['backward'] > 0 and step['loss'] > 0 and step['optimizer'] > 0
    assert step['forward'] < step['total'] - SLEEP_S * 1000
    assert step['total'] == pytest.approx(sum(step[k] for k in STAGES), abs=0.5)
    assert step['total'] == pytest.approx(step['wall'], rel=0.05, abs=50)  # nothing counted twice or missed
    assert 3 * step['total'] < wall_ms  # warm-up + 2 timed steps fit in the run
    counts = face_counts(tiny['anno'])
    top = sorted(counts.tolist(), reverse=True)[:3]
    assert [image['faces'] for image in result['crowded_images']] == top
    assert result['steps'] == 2 and result['batch_size'] == 2
    assert len(result['faces_per_image']) == 6  # 3 batches of 2
    assert result['max_faces_in_batch'] == max(result['faces_per_image']) <= top[0]
    assert result['peak_rss_gb'] > 0.05
    assert result['peak_device_gb'] is None or result['peak_device_gb'] > 0


def test_cli_writes_json_and_reports_bad_input(tiny, repo_root, tmp_path, capsys):
    tool = load_tool(repo_root)
    out = tmp_path / 'bench.json'
    argv = ['-c', tiny['config'], '--anno', tiny['anno'], '--crowded', '2', '--steps', '1',
            '--json', str(out), '-o'] + tiny['overrides']
    assert run_tool(tool.main, argv) == 0
    result = json.loads(out.read_text())
    for key in ('max_faces_in_batch', 'faces_per_image', 'peak_rss_gb', 'step_ms', 'steps'):
        assert key in result
    capsys.readouterr()
    assert run_tool(tool.main, argv[:5] + ['0']) == 2
    assert capsys.readouterr().err.strip() == 'error: --crowded must be at least 1, got 0'
    assert run_tool(tool.main, ['-c', tiny['config'], '--anno', str(tmp_path / 'missing.txt')]) == 2
    assert 'missing.txt' in capsys.readouterr().err
    assert run_tool(tool.main, argv[:5] + ['1', '-o'] + tiny['overrides']) == 2
    assert 'fewer images than one batch' in capsys.readouterr().err


def test_real_annotations_pick_the_most_crowded_images(shared_data, tiny):
    anno = shared_data / 'widerface' / 'wider_face_train_bbx_gt.txt'
    cfg = load_config(tiny['config'], tiny['overrides'])
    result = run_benchmark(cfg, str(anno), crowded=2, steps=1, log=lambda line: None)
    counts = face_counts(str(anno))
    assert [image['faces'] for image in result['crowded_images']] == sorted(counts.tolist(), reverse=True)[:2]
    assert result['crowded_images'][0]['faces'] > 1000
    assert result['max_faces_in_batch'] > 0 and result['step_ms']['assign'] > 0
