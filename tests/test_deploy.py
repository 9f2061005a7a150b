"""deploy/python/infer.py: standalone, same detections as dygraph, drawings,
JSON, latency report, video, clear errors for devices this build lacks."""
import ast
import json
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from hambox_eval_helpers import DEPLOY_INFER, demo_cfg, exported_model_dir, tiny_model, val_images
from ppdet_hambox.evaluation.predictor import Predictor
from test_export import load_deploy
from test_precision import no_detection_export

RUNNER = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
    code = 0
except SystemExit as exit:
    code = exit.code
print('IMPORTED_PPDET_HAMBOX', any(m.split('.')[0] == 'ppdet_hambox' for m in sys.modules))
sys.exit(code)
"""


def imported_modules(path):
    tree = ast.parse(path.read_text())
    modules = {a.name.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return modules | {n.module.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_deploy_script_imports_no_project_code():
    """infer.py and the deploy modules it imports (its own folder) need only
    the standard library, OpenCV, NumPy, PyYAML and Paddle."""
    siblings = {p.stem for p in DEPLOY_INFER.parent.glob('*.py')}
    modules = imported_modules(DEPLOY_INFER)
    for local in sorted(modules & siblings):
        modules |= imported_modules(DEPLOY_INFER.parent / (local + '.py'))
    assert 'ppdet_hambox' not in modules
    # Pillow (PIL) is a dependency of paddlepaddle: reading image headers adds no install.
    assert modules - set(sys.stdlib_module_names) - siblings <= {'cv2', 'numpy', 'yaml', 'paddle', 'PIL'}


def test_deploy_on_an_image_matches_dygraph(tmp_path):
    image_path = val_images()[0]
    threshold = 0.3
    result = subprocess.run(
        [sys.executable, '-c', RUNNER, str(DEPLOY_INFER), '--model_dir', str(exported_model_dir()),
         '--image_file', str(image_path), '--output_dir', str(tmp_path), '--threshold', str(threshold),
         '--save_json', '--run_benchmark', '--warmup', '1', '--repeats', '2', '--cpu_threads', '1'],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert 'IMPORTED_PPDET_HAMBOX False' in lines
    latency = json.loads(next(line for line in reversed(lines) if line.startswith('{')))['latency_ms']
    for stage in ('preprocess', 'inference', 'postprocess', 'total'):
        assert latency[stage]['runs'] == 2
        assert 0 < latency[stage]['p50'] <= latency[stage]['p90'] * (1 + 1e-9)
    assert any(line.startswith('inference') for line in lines)

    records = json.loads((tmp_path / 'bbox.json').read_text())
    original = cv2.imread(str(image_path))
    expected = Predictor(tiny_model(), demo_cfg(), 'vga').detect(original)
    expected = expected[expected[:, 4] >= threshold]
    assert len(records) == len(expected) > 0
    got = np.array([r['bbox'] + [r['score']] for r in records])
    xywh = np.concatenate([expected[:, :2], expected[:, 2:4] - expected[:, :2], expected[:, 4:]], 1)
    np.testing.assert_allclose(got, xywh, atol=1e-3)
    assert {r['category'] for r in records} == {'face'}
    drawn = cv2.imread(str(tmp_path / image_path.name))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).max() > 100


def test_deploy_video(tmp_path):
    deploy = load_deploy()
    frames = [cv2.resize(cv2.imread(str(p)), (160, 120)) for p in val_images()]
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5, (160, 120))
    for frame in frames:
        writer.write(frame)
    writer.release()
    args = deploy.parse_args(['--model_dir', str(exported_model_dir()), '--video_file', str(video),
                              '--output_dir', str(tmp_path / 'out'), '--threshold', '0.0'])
    (tmp_path / 'out').mkdir()
    records = deploy.run_video(deploy.Detector(args.model_dir), str(video), args, 0.0)
    assert {r['im_file'].rsplit('#', 1)[1] for r in records} <= {str(i) for i in range(len(frames))}
    capture = cv2.VideoCapture(str(tmp_path / 'out' / 'clip.mp4'))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == len(frames)


def test_missing_devices_are_clear_errors():
    deploy = load_deploy()
    model_dir = str(exported_model_dir())
    if not paddle.is_compiled_with_cuda():
        with pytest.raises(RuntimeError, match='no CUDA'):
            deploy.make_config(model_dir, device='gpu')
    available, reason = deploy.tensorrt_available()
    if not available:
        with pytest.raises(RuntimeError, match='TensorRT'):
            deploy.make_config(model_dir, device='cpu', run_mode='trt_fp16')
        assert reason
    with pytest.raises(deploy.DeployError, match='infer_cfg.yml'):
        deploy.PredictConfig(str(DEPLOY_INFER.parent))


def test_image_without_detections():
    """Nothing survives NMS (an export cutting scores at 1): an empty [0, 5]
    result with oneDNN on and off (under oneDNN also checked in a subprocess
    by test_precision.py)."""
    deploy = load_deploy()
    image = cv2.imread(str(val_images()[0]))
    for mkldnn in (True, False):
        dets = deploy.Detector(str(no_detection_export()), enable_mkldnn=mkldnn).predict(image)
        assert dets.shape == (0, 5) and dets.dtype == np.float32
    assert len(deploy.Detector(str(exported_model_dir())).predict(image)) > 0


def test_image_dir_walk_names_the_files_it_ignores(tmp_path, capsys):
    deploy = load_deploy()
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'movie.gif').write_bytes(b'GIF89a')
    assert deploy.list_images(None, str(tmp_path)) == [(str(tmp_path / 'a.png'), 'a.png')]
    err = capsys.readouterr().err
    assert err.startswith('warning: --image_dir ') and 'ignored 1 file(s)' in err and 'movie.gif' in err
