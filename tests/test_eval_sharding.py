"""tools/eval.py under ``paddle.distributed.launch`` with two CPU processes
(gloo): the images are split across the ranks and rank 0 writes a prediction
folder identical, file for file and byte for byte, to one process's, for
every protocol in dygraph, and with --model_dir (PyramidBox's ladder: many
passes, a flipped one). ``tools/train.py --eval`` on two processes evaluates
on both, and its evaluation folder is the one-process evaluation of its
final weights. One launch runs it all (a driver calling the tools' ``main``)
while the single process evaluates here, to keep the test short."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import paddle

from hambox_eval_helpers import (DEMO_CONFIG, PROTOCOL_OVERRIDES, REPO_ROOT, demo_dataset, exported_model_dir,
                                 tiny_model, workdir)
from ppdet_hambox.data.source import demo
from ppdet_hambox.evaluation.protocols import PROTOCOLS
from ppdet_hambox.evaluation.sharding import Shard

from tiny_train_config import tiny_train_config

DRIVER = """
import importlib.util, json

def load(path):
    spec = importlib.util.spec_from_file_location('tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

evaluate = load({tool!r})
for argv in json.loads({cases!r}):
    evaluate.main(argv)
assert load({train!r}).main(json.loads({train_argv!r})) == 0
"""
def _cases(weights, out):
    """(name, tools/eval.py argv) for every protocol in dygraph and one with --model_dir."""
    overrides = ['EvalDataset.dataset_dir={}'.format(demo_dataset()), 'weights={}'.format(weights)]
    overrides += ['TestProtocol.{}={}'.format(k, json.dumps(v)) for k, v in PROTOCOL_OVERRIDES.items()]
    cases = [('dygraph_' + p, ['--protocol', p]) for p in PROTOCOLS]
    cases.append(('exported_pyramidbox', ['--protocol', 'pyramidbox', '--model_dir', str(exported_model_dir())]))
    return [(name, ['-c', str(DEMO_CONFIG), '-o'] + overrides + extra + ['--output_eval', str(out / name)])
            for name, extra in cases]


def _folder(path):
    """{relative path: bytes} of a prediction folder (the list of written files included)."""
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, 'rb') as f:
                files[os.path.relpath(full, path)] = f.read()
    return files


def test_two_processes_write_the_files_of_one(tmp_path, capsys):
    weights = workdir() / 'tiny_sharding.pdparams'
    paddle.save(tiny_model().state_dict(), str(weights))
    one, two = tmp_path / 'one', tmp_path / 'two'
    driver = tmp_path / 'driver.py'
    demo.generate(str(tmp_path / 'train_data'), seed=1, num_train=2, num_val=1, size='160x128')
    (tmp_path / 'toy.yml').write_text(tiny_train_config(
        DEMO_CONFIG, tmp_path / 'train_data', 128, EvalDataset={'dataset_dir': str(demo_dataset())},
        eval_protocol='vga', TestProtocol={'vga_size': [320, 240]}, max_iters=1, snapshot_iter=1, log_iter=1))
    train_argv = ['-c', str(tmp_path / 'toy.yml'), '--eval', '-o', 'save_dir={}'.format(tmp_path / 'train')]
    driver.write_text(textwrap.dedent(DRIVER.format(
        tool=str(REPO_ROOT / 'tools' / 'eval.py'), cases=json.dumps([argv for _, argv in _cases(weights, two)]),
        train=str(REPO_ROOT / 'tools' / 'train.py'), train_argv=json.dumps(train_argv))))
    command = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', '2',
               '--log_dir', str(tmp_path / 'log'), str(driver)]
    launch = subprocess.Popen(command, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        spec = importlib.util.spec_from_file_location('eval_tool', REPO_ROOT / 'tools' / 'eval.py')
        tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tool)
        single = {name: tool.main(argv) for name, argv in _cases(weights, one)}
        capsys.readouterr()
        output, _ = launch.communicate(timeout=300)
    finally:
        if launch.poll() is None:
            launch.kill()
    logs = {name: (tmp_path / 'log' / name).read_text() for name in ('workerlog.0', 'workerlog.1')
            if (tmp_path / 'log' / name).is_file()}
    assert launch.returncode == 0, output[-3000:] + ''.join(text[-3000:] for text in logs.values())

    # rank 1 predicted its share (1 of the 3 demo images) and wrote nothing; rank 0 the rest, and scored.
    assert 'eval [vga] 1/1 images' in logs['workerlog.1'] and 'eval [vga] 2/2 images' in logs['workerlog.0']
    assert 'eval [pyramidbox] 1/1 images' in logs['workerlog.1']
    assert logs['workerlog.0'].count('"protocol"') == len(single) and '"protocol"' not in logs['workerlog.1']
    for name, result in single.items():
        assert result['num_images'] == 3
        files = _folder(one / name)
        assert len(files) == 4, name   # three prediction files and the list of written files
        assert _folder(two / name) == files, name

    # train --eval: rank 0 predicted 2 of the 3 images (rank 1 the third), and the folder
    # is what one process writes for the final (evaluated) weights.
    trained = tmp_path / 'train' / 'toy'
    log = (trained / 'train.log').read_text()
    assert 'eval [vga] 2/2 images' in log and '3 images' in log and 'eval [vga] 3/3' not in log
    assert (trained / 'best_model.json').is_file()
    again = tool.main(['-c', str(tmp_path / 'toy.yml'), '-o', 'weights={}'.format(trained / 'model_final.pdparams'),
                       '--output_eval', str(tmp_path / 'again')])
    assert again['num_images'] == 3
    assert _folder(tmp_path / 'again') == _folder(trained / 'eval_iter_1')


def test_a_single_process_is_a_shard_of_one():
    shard = Shard.current()
    assert (shard.rank, shard.world_size, shard.is_main) == (0, 1, True)
    assert shard.take(['a', 'b', 'c']) == [(0, 'a'), (1, 'b'), (2, 'c')]
    assert shard.gather({'x': 1}) == [{'x': 1}] and shard.from_main(5) == 5
    assert Shard(1, 2).take(['a', 'b', 'c']) == [(1, 'b')]
    assert Shard(0, 2).take(['a', 'b', 'c']) == [(0, 'a'), (2, 'c')]
    assert not Shard(1, 2).is_main

