"""deploy/python/infer.py's predictor settings: oneDNN and every available
core by default, a bounded oneDNN shape cache, precisions refused with one
line where the machine cannot run them, bounded timings, and no crash when
nothing survives NMS under oneDNN."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from hambox_eval_helpers import DEPLOY_INFER, demo_cfg, exported_model_dir, tiny_model, val_images, workdir
from ppdet_hambox.export.exporter import export_model
from test_export import load_deploy


class RecordingConfig(paddle.inference.Config):
    """Paddle's Config, remembering the oneDNN calls made on it."""

    def set_mkldnn_cache_capacity(self, capacity):
        self.cache_capacity = capacity
        super().set_mkldnn_cache_capacity(capacity)

    def enable_mkldnn_bfloat16(self):
        self.bf16 = True
        super().enable_mkldnn_bfloat16()


def export_with_cut(out, score_threshold):
    """The tiny model exported with another NMS score cut baked into the graph."""
    post_process = tiny_model().post_process
    kept = post_process.score_threshold
    post_process.score_threshold = score_threshold
    try:
        export_model(tiny_model(), demo_cfg(HAMBoxPostProcess={'score_threshold': score_threshold}), str(out),
                     protocol='vga')
    finally:
        post_process.score_threshold = kept
    return out


def no_detection_export():
    """The tiny model exported with a score cut of 1: nothing survives NMS
    on any image (scores are at most 1 and NMS keeps scores above the cut)."""
    out = workdir() / 'export_no_detection'
    return out if (out / 'model.json').is_file() else export_with_cut(out, 1.0)


@pytest.fixture
def deploy():
    return load_deploy()


def test_cpu_defaults_are_onednn_all_available_cores_bounded_cache(deploy, monkeypatch):
    monkeypatch.setattr(paddle.inference, 'Config', RecordingConfig)
    model_dir = str(exported_model_dir())
    config = deploy.make_config(model_dir, device='cpu')
    assert config.mkldnn_enabled()
    assert config.cpu_math_library_num_threads() == deploy.available_cpus()
    assert 0 < config.cache_capacity <= 64
    assert not deploy.make_config(model_dir, device='cpu', enable_mkldnn=False).mkldnn_enabled()
    assert deploy.make_config(model_dir, device='cpu', cpu_threads=3).cpu_math_library_num_threads() == 3
    if hasattr(os, 'sched_getaffinity'):
        monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {5})
        assert deploy.available_cpus() == 1
        assert deploy.make_config(model_dir, device='cpu').cpu_math_library_num_threads() == 1


def test_cli_flags(deploy):
    m = str(exported_model_dir())  # --model_dir is checked while parsing
    args = deploy.parse_args(['--model_dir', m, '--image_file', 'f'])
    assert (args.disable_mkldnn, args.precision, args.cpu_threads) == (False, 'fp32', None)
    args = deploy.parse_args(['--model_dir', m, '--image_file', 'f', '--disable_mkldnn', '--precision', 'bf16'])
    assert args.disable_mkldnn and args.precision == 'bf16'
    assert deploy.parse_args(['--model_dir', m, '--image_file', 'f', '--enable_mkldnn']).enable_mkldnn


def test_bf16_where_supported_and_refused_in_one_line_where_not(deploy, monkeypatch):
    monkeypatch.setattr(paddle.inference, 'Config', RecordingConfig)
    model_dir = str(exported_model_dir())
    monkeypatch.setattr(deploy, 'cpu_supports_bf16', lambda: False)
    with pytest.raises(deploy.DeployError, match='bf16: this CPU has no native bfloat16') as err:
        deploy.Detector(model_dir, device='cpu', precision='bf16')
    assert '\n' not in str(err.value)
    monkeypatch.setattr(deploy, 'cpu_supports_bf16', lambda: True)
    assert deploy.make_config(model_dir, device='cpu', precision='bf16').bf16
    with pytest.raises(deploy.DeployError, match='drop --disable_mkldnn'):
        deploy.make_config(model_dir, device='cpu', precision='bf16', enable_mkldnn=False)
    assert not hasattr(deploy.make_config(model_dir, device='cpu'), 'bf16')


def test_other_precisions_are_clear_errors(deploy):
    model_dir = str(exported_model_dir())
    with pytest.raises(deploy.DeployError, match='--precision fp16 runs on a GPU'):
        deploy.make_config(model_dir, device='cpu', precision='fp16')
    with pytest.raises(deploy.DeployError, match='--precision int8 runs on a GPU'):
        deploy.make_config(model_dir, device='cpu', precision='int8')
    with pytest.raises(deploy.DeployError, match='--precision must be one of fp32, bf16, fp16, int8'):
        deploy.make_config(model_dir, device='cpu', precision='fp64')
    with pytest.raises(deploy.DeployError, match='disagree'):
        deploy.split_run_mode('trt_fp16', 'bf16')
    assert deploy.split_run_mode('trt_fp16', 'fp32') == ('trt', 'fp16')
    if paddle.is_compiled_with_cuda():
        with pytest.raises(deploy.DeployError, match='on a GPU use fp16'):
            deploy.check_precision('bf16', 'gpu')


def test_timings_are_bounded(deploy):
    detector = deploy.Detector(str(exported_model_dir()), device='cpu', cpu_threads=1, timing_window=3)
    assert detector.enable_mkldnn and detector.precision == 'fp32'
    image = cv2.imread(str(val_images()[0]))
    first = detector.predict(image)
    for _ in range(4):
        np.testing.assert_allclose(detector.predict(image), first, atol=1e-5)
    assert [len(v) for v in detector.times.values()] == [3, 3, 3]
    assert deploy.latency_summary(detector.times)['total']['runs'] == 3
    detector.reset_times()
    assert [len(v) for v in detector.times.values()] == [0, 0, 0]


def test_onednn_with_no_detection_does_not_crash(tmp_path):
    """Nothing survives NMS: the default predictor (oneDNN on) must return
    no face (Paddle 3.3's oneDNN concat once crashed on the empty tensors).
    In a subprocess, so that a crash fails this test instead of the session."""
    model_dir = no_detection_export()
    images = tmp_path / 'images'
    images.mkdir()
    for path in val_images():
        (images / path.name).symlink_to(path)
    result = subprocess.run(
        [sys.executable, str(DEPLOY_INFER), '--model_dir', str(model_dir), '--image_dir', str(images),
         '--output_dir', str(tmp_path / 'out'), '--threshold', '0'],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-1500:]
    reports = [line for line in result.stdout.splitlines() if ' faces >= ' in line]
    assert len(reports) == len(val_images()) and all(': 0 faces' in line for line in reports), result.stdout


def test_benchmark_rows(capsys):
    """One run lists every (runtime, precision) row it was asked for, or why
    not, with the model's cost; bf16 is a row or a reason, never silent."""
    import importlib.util
    import json
    from hambox_eval_helpers import DEMO_CONFIG
    spec = importlib.util.spec_from_file_location('deploy_benchmark', DEPLOY_INFER.parent / 'benchmark.py')
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(['-c', str(DEMO_CONFIG), '--model_dir', str(exported_model_dir()), '--repeats', '2', '--warmup', '0',
                '--rows', 'oneDNN', 'onnxruntime', '--no_dygraph', '--cpu_threads', '1'])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['cost']['gmacs'] > 0 and report['cost']['params_m'] > 0
    rows = {(r['runtime'], r['precision']): r for r in report['results']}
    not_run = {(runtime, precision) for runtime, precision, _ in report['not_run']}
    assert ('paddle_inference oneDNN', 'fp32') in rows and ('paddle_inference no oneDNN', 'fp32') in rows
    assert (('paddle_inference oneDNN', 'bf16') in rows) != (('paddle_inference oneDNN', 'bf16') in not_run)
    assert ('dygraph', 'fp32') in not_run
    for row in rows.values():
        assert row['runs'] == 2 and 0 < row['p50_ms'] <= row['p90_ms'] * (1 + 1e-9)
    assert rows[('paddle_inference oneDNN', 'fp32')]['detections'] == rows[('paddle_inference no oneDNN', 'fp32')]['detections']
