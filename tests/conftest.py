"""Shared test fixtures."""
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = 'HAMBOX_SHARED_DATA'


def shared_data_dir():
    """The shared benchmark-data folder: $HAMBOX_SHARED_DATA, else ../shared/data beside the repo."""
    env = os.environ.get(SHARED_DATA_ENV)
    return pathlib.Path(env) if env else REPO_ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data():
    path = shared_data_dir()
    if not (path / 'widerface').is_dir():
        pytest.skip('shared benchmark data not found at {} (set {} to the folder holding '
                    'widerface/, fddb/, samples/)'.format(path, SHARED_DATA_ENV))
    return path


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture
def sample_val_tree(shared_data, tmp_path):
    """The four sample WIDER FACE val photos laid out as ``images/<event>/<name>.jpg``
    (symlinks) under ``tmp_path``; returns (their annotation file, the images folder)."""
    samples = shared_data / 'samples' / 'widerface_val'
    anno = samples / 'wider_face_val_bbx_gt_subset.txt'
    for line in anno.read_text().splitlines():
        if line.strip().endswith('.jpg'):
            target = tmp_path / 'images' / line.strip()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(samples / target.name)
    return anno, tmp_path / 'images'


@pytest.fixture(scope='session')
def metric_tool():
    """``tools/eval_metric.py`` as a module (its ``main(argv)`` returns the exit status)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('eval_metric_tool', REPO_ROOT / 'tools' / 'eval_metric.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
