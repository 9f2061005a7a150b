"""The command-line contract of every entry point, derived from its parser.

Every ``tools/*.py``, every ``deploy/python/*.py`` with a ``main`` and every
``python -m ppdet_hambox...`` module with a ``main`` is imported and its
argument parser captured as ``main`` builds it, sub-commands included. For every option, by its declared type, wrong values are tried:
a missing path, a file where a folder is expected and the reverse, zero and
negative counts, NaN and out-of-range numbers, ports out of range. Each must
end as an error line naming the option, exit status 2 and no traceback. A
new tool or flag is covered as soon as it exists, and a numeric flag without
a declared range fails here.
"""
import argparse
import contextlib
import importlib
import importlib.util
import io
import math

import pytest

from hambox_eval_helpers import REPO_ROOT
from ppdet_hambox.core.errors import EXIT_USER_ERROR, run_tool

# A trampoline that runs another entry point (which has its own error handling).
NOT_ENTRY_POINTS = {'ppdet_hambox.utils.process'}


class _Captured(Exception):
    def __init__(self, parser):
        super().__init__('parser captured')
        self.parser = parser


def _script_module(path):
    spec = importlib.util.spec_from_file_location('contract_' + path.parent.name + '_' + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry_points():
    """(id, loader) of every entry point with a ``main``."""
    found = []
    for path in sorted(REPO_ROOT.glob('tools/*.py')) + sorted(REPO_ROOT.glob('deploy/python/*.py')):
        if 'def main(' in path.read_text():
            found.append(('/'.join(path.parts[-2:]), lambda p=path: _script_module(p)))
    for path in sorted((REPO_ROOT / 'ppdet_hambox').rglob('*.py')):
        text = path.read_text()
        rel = path.relative_to(REPO_ROOT)
        name = '.'.join(rel.with_suffix('').parts)
        if ('def main(' in text and "__name__ == '__main__'" in text and name not in NOT_ENTRY_POINTS):
            found.append((name, lambda n=name: importlib.import_module(n)))
    return found


ENTRY_POINTS = _entry_points()


def _runner(module):
    """How the entry point runs ``main`` when started from a shell."""
    block = _main_block(module)
    if 'run()' in block:
        return module.run
    if 'run_cli(' in block:
        return lambda argv: module.run_cli(module.main, argv)
    return lambda argv: run_tool(module.main, argv)


def _main_block(module):
    text = open(module.__file__).read()
    return text.split("if __name__ == '__main__':", 1)[-1]


def capture_parser(module, monkeypatch):
    """The parser ``module.main`` builds (None if it builds none)."""
    def grab(self, *args, **kwargs):
        raise _Captured(self)
    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, 'parse_args', grab)
        patch.setattr(argparse.ArgumentParser, 'parse_known_args', grab)
        try:
            module.main([])
        except _Captured as captured:
            return captured.parser
        except (Exception, SystemExit):
            return None
    return None


def bad_values(kind, tmp_path):
    """Wrong values for an option of type ``kind`` (a function of utils.cli or deploy_io)."""
    a_file = tmp_path / 'a_file.txt'
    a_file.write_text('x')
    a_folder = tmp_path / 'a_folder'
    a_folder.mkdir(exist_ok=True)
    missing = str(tmp_path / 'missing' / 'nothing_here')
    name = getattr(kind, '__name__', '')
    return {
        'positive_int': ['0', '-3', 'x', '1.5'],
        'nonneg_int': ['-1', 'x'],
        'count_or_all': ['0', '-5', 'x'],
        'random_seed': ['-1', str(2 ** 32), 'x'],
        'probability': ['nan', '7', '-0.1', 'inf'],
        'positive_float': ['0', '-1', 'nan'],
        'port': ['0', '99999', '-1'],
        'listen_port': ['99999', '-1', '65536'],
        'existing_file': [missing, str(a_folder)],
        'existing_dir': [missing, str(a_file)],
        'export_dir': [missing, str(a_file), str(a_folder)],
        'output_dir': [str(a_file), str(a_file / 'below')],
        'output_file': [str(a_folder), str(a_file / 'below.json')],
    }.get(name, ['nan'] if callable(kind) and kind is not str else None)  # a tool's own type: NaN is never a value


def test_every_entry_point_is_found():
    ids = {i for i, _ in ENTRY_POINTS}
    for expected in ('tools/train.py', 'tools/infer.py', 'python/infer.py', 'python/serve.py',
                     'python/benchmark.py', 'ppdet_hambox.data.source.demo'):
        assert expected in ids
    for entry_id, load in ENTRY_POINTS:
        block = _main_block(load())
        assert 'run_tool(' in block or 'run_cli(' in block or 'run()' in block, \
            '{} does not run main through run_tool / run_cli'.format(entry_id)


def _parsers(parser, prefix=()):
    """``(argv prefix, parser)`` of ``parser`` and of every sub-command below it."""
    yield list(prefix), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, prefix + (name,))


@pytest.mark.parametrize('entry_id,load', ENTRY_POINTS, ids=[i for i, _ in ENTRY_POINTS])
def test_wrong_values_are_one_line_errors(entry_id, load, tmp_path, monkeypatch, capsys):
    module = load()
    parser = capture_parser(module, monkeypatch)
    assert parser is not None, '{}: main builds no argparse parser'.format(entry_id)
    for prefix, sub in _parsers(parser):
        tried = 0
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            flag = action.option_strings[0] if action.option_strings else None
            if action.type in (int, float):
                pytest.fail('{} {} {}: a plain {} without a declared range (use a type of utils/cli.py)'.format(
                    entry_id, ' '.join(prefix), flag or action.dest, action.type.__name__))
            values = bad_values(action.type, tmp_path) if action.type is not None else None
            if not values:
                continue
            for value in values:
                argv = prefix + ([flag, value] if flag else [value])
                capsys.readouterr()
                code = _runner(module)(argv)
                err = capsys.readouterr().err
                lines = [line for line in err.splitlines() if line.strip()]
                assert code == EXIT_USER_ERROR, '{} {} {!r}: exit {} ({})'.format(entry_id, argv, value, code, err)
                assert 'Traceback' not in err
                assert len(lines) == 1 and lines[0].startswith('error: '), (entry_id, argv, err)
                assert (flag or '') in lines[0] or value in lines[0], (entry_id, argv, lines[0])
                tried += 1
        assert tried or not [a for a in sub._actions if a.option_strings and a.type], (entry_id, prefix)


def test_probability_rejects_what_python_parses_as_a_float():
    from ppdet_hambox.utils import cli
    for text in ('nan', 'inf', '-inf', '1.0000001', '-1e-9'):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.probability(text)
    assert cli.probability('0') == 0.0 and cli.probability('1') == 1.0
    assert math.isclose(cli.probability('0.35'), 0.35)


def test_parser_errors_name_the_flag_in_one_line():
    from ppdet_hambox.utils.cli import ToolParser, positive_int
    parser = ToolParser(prog='tool')
    parser.add_argument('--repeats', type=positive_int)
    parser.add_argument('--mode', choices=('a', 'b'))
    parser.add_argument('--need', required=True)
    for argv, expected in ((['--repeats', '0', '--need', 'x'], 'error: --repeats must be at least 1, got 0'),
                           (['--mode', 'c', '--need', 'x'], "error: --mode: invalid choice: 'c'"),
                           ([], 'error: the following arguments are required: --need')):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
            parser.parse_args(argv)
        assert stop.value.code == 2
        assert err.getvalue().count('\n') == 1 and err.getvalue().startswith(expected), err.getvalue()


def test_every_numeric_config_value_has_a_declared_range():
    """As with flags: a number a component takes from a config has a range
    (``__ranges__``), and its default lies in it."""
    from ppdet_hambox.core import workspace
    workspace._ensure_components_loaded()
    missing = []
    for name, spec in sorted(workspace._REGISTRY.items()):
        if not spec.cls.__module__.startswith('ppdet_hambox.'):
            continue  # a test's own toy component
        for param, default in spec.params.items():
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if param not in spec.ranges:
                    missing.append('{}.{}'.format(name, param))
                else:
                    assert spec.ranges[param].check(default) is None, (name, param, default)
    assert not missing, 'numeric config values without a declared range: {}'.format(', '.join(missing))


@pytest.mark.parametrize('override, expected', [
    ('RandomFlip.prob=7', 'RandomFlip.prob must be in [0.0, 1.0], got 7'),
    ('LearningRate.base_lr=-1', 'LearningRate.base_lr must be > 0.0, got -1'),
    ('HAMBoxHead.num_convs=-1', 'HAMBoxHead.num_convs must be >= 0, got -1'),
    ('TrainReader.seed=-1', 'TrainReader.seed must be in [0, 4294967295], got -1'),
])
def test_a_component_value_out_of_range_is_refused_at_load(override, expected):
    from ppdet_hambox.core.workspace import ConfigError, load_config
    with pytest.raises(ConfigError) as err:
        load_config(str(REPO_ROOT / 'configs' / 'demo' / 'hambox_demo.yml'), [override])
    assert str(err.value) == '-o override: ' + expected
