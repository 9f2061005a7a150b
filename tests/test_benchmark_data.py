"""tools/benchmark_data.py and ppdet_hambox.data.benchmark."""
import importlib.util
import json

import numpy as np

from ppdet_hambox.data.benchmark import find_photos, generate_photos


def load_tool(repo_root):
    spec = importlib.util.spec_from_file_location('benchmark_data', repo_root / 'tools' / 'benchmark_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_on_generated_images_prints_json(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    tool = load_tool(repo_root)
    assert tool.main(['-c', 'configs/datasets/demo.yml', '--num-samples', '3']) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result['image_source'] == 'generated' and result['output_shape'] == [3, 256, 256]
    assert result['samples_per_sec_per_worker'] > 0 and result['num_samples'] == 3
    assert list(result['ms_per_op'])[0] == 'Decode' and result['faces'] > 0


def test_generated_photos_have_faces_inside(tmp_path):
    records = generate_photos(str(tmp_path), num_images=2, seed=1)
    assert len(records) == 2
    for record in records:
        boxes = record['gt_bbox']
        assert len(boxes) > 0 and np.all(boxes[:, :2] >= 0)
        assert np.all(boxes[:, 2] <= 1024) and np.all(boxes[:, 3] <= 768)


def test_shared_photos_get_their_faces(shared_data):
    records = find_photos(str(shared_data))
    by_name = {r['name']: len(r['gt_bbox']) for r in records}
    assert len(records) == 6
    assert by_name['insightface_t1'] == 0
    assert by_name['0_Parade_marchingband_1_765'] > 100
