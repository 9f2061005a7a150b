"""Mutation check: plant classic bugs in one module, one at a time, and run
the tests that should catch them.

    python tools/mutate.py ppdet_hambox/evaluation/protocols.py tests/test_eval_oracle.py \
        [--max-mutants 40] [--budget 600] [--timeout 120] [--lines 100-180,200] [--list]

Each mutant is one edit of the module's syntax tree: a comparison flipped
(``<`` / ``<=`` / ``>`` / ``>=``, ``==`` / ``!=``), an arithmetic operator
swapped (``+`` / ``-``, ``*`` / ``/``), an integer constant moved by one, a
float constant changed, an index or slice bound moved by one (which swaps
``x`` with ``y`` columns and ``0`` with ``1``), ``and`` / ``or`` swapped,
``True`` / ``False`` swapped, a unary minus dropped. The repository is copied
once into a temporary folder; the mutant replaces the module there and the
tests run in a subprocess (``pytest -x``) with that copy first on the path.
A mutant is *killed* when the tests fail (or time out), *survives* when they
pass. The run stops at ``--budget`` seconds; mutants are spread evenly over
the module when there are more than ``--max-mutants``. Exit status 0; the
last line is a JSON summary.
"""
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import run_tool  # noqa: E402
from ppdet_hambox.utils.process import guarded  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, positive_float, positive_int  # noqa: E402

COPIED = ('ppdet_hambox', 'tests', 'configs', 'tools', 'deploy', 'setup.py')
SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
         ast.NotEq: ast.Eq, ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
         ast.And: ast.Or, ast.Or: ast.And, ast.FloorDiv: ast.Mult}


def _docstring_nodes(tree):
    """Constant nodes that are docstrings (never mutated)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def find_sites(tree):
    """``[(node path, kind, description, lineno)]``: every place one mutation applies."""
    skip = _docstring_nodes(tree)
    sites = []
    for index, node in enumerate(ast.walk(tree)):
        line = getattr(node, 'lineno', 0)
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in SWAPS:
                    sites.append((index, ('cmp', k), '{} -> {}'.format(
                        type(op).__name__, SWAPS[type(op)].__name__), line))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAPS:
            sites.append((index, ('op',), '{} -> {}'.format(type(node.op).__name__,
                                                             SWAPS[type(node.op)].__name__), line))
        elif isinstance(node, ast.BoolOp):
            sites.append((index, ('op',), '{} -> {}'.format(type(node.op).__name__,
                                                             SWAPS[type(node.op)].__name__), line))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sites.append((index, ('neg',), 'drop unary minus', line))
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            value = node.value
            if isinstance(value, bool):
                sites.append((index, ('const', not value), '{} -> {}'.format(value, not value), line))
            elif isinstance(value, int):
                sites.append((index, ('const', value + 1), '{} -> {}'.format(value, value + 1), line))
            elif isinstance(value, float):
                new = value * 1.5 if value else 1.0
                sites.append((index, ('const', new), '{!r} -> {!r}'.format(value, new), line))
    return sorted(sites, key=lambda s: (s[3], s[0]))


def apply(tree, site):
    """A copy of ``tree`` with ``site`` mutated."""
    tree = copy.deepcopy(tree)
    index, action = site[0], site[1]
    node = list(ast.walk(tree))[index]
    if action[0] == 'cmp':
        node.ops[action[1]] = SWAPS[type(node.ops[action[1]])]()
    elif action[0] == 'op':
        node.op = SWAPS[type(node.op)]()
    elif action[0] == 'const':
        node.value = action[1]
    elif action[0] == 'neg':
        node.op = ast.UAdd()
    return ast.fix_missing_locations(tree)


def describe(module, source_lines, site):
    """``module:line: mutation | the original line``."""
    text = source_lines[site[3] - 1].strip() if 0 < site[3] <= len(source_lines) else ''
    return '{}:{}: {}  | {}'.format(module, site[3], site[2], text[:90])


def spread(items, count):
    if len(items) <= count:
        return items
    step = len(items) / float(count)
    return [items[int(i * step)] for i in range(count)]


def run_tests(workdir, tests, timeout, show=False):
    env = dict(os.environ, PYTHONPATH=workdir + os.pathsep + os.environ.get('PYTHONPATH', ''),
               PYTHONDONTWRITEBYTECODE='1')
    cmd = [sys.executable, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider', '--no-header'] + tests
    try:
        proc = subprocess.run(guarded(cmd), cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'timeout'
    if show and proc.returncode != 0:
        print(proc.stdout.decode(errors='replace')[-3000:])
    return 'survived' if proc.returncode == 0 else 'killed'


def parse_lines(text):
    """``'100-180,200,210-215'`` -> ``[(100, 180), (200, 200), (210, 215)]``."""
    if not text:
        return None
    ranges = []
    for part in text.split(','):
        lo, _, hi = part.strip().partition('-')
        ranges.append((int(lo), int(hi or lo)))
    return ranges


def main(argv=None):
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('module', help='the module to mutate, relative to the repository')
    parser.add_argument('tests', nargs='+', help='test files (or node ids) that should catch the mutants')
    parser.add_argument('--max-mutants', type=positive_int, default=40)
    parser.add_argument('--budget', type=positive_float, default=900.0, help='seconds for the whole run')
    parser.add_argument('--timeout', type=positive_float, default=180.0, help='seconds per mutant test run')
    parser.add_argument('--lines', help='only mutate these lines, e.g. 100-180 or 120,140-150')
    parser.add_argument('--list', action='store_true', help='list the mutants and exit')
    args = parser.parse_args(argv)

    path = os.path.join(REPO, args.module)
    if not os.path.isfile(path):
        parser.error('no such module: {}'.format(args.module))
    source = open(path).read()
    source_lines = source.splitlines()
    tree = ast.parse(source)
    sites = find_sites(tree)
    lines = parse_lines(args.lines)
    if lines:
        sites = [s for s in sites if any(lo <= s[3] <= hi for lo, hi in lines)]
    sites = spread(sites, args.max_mutants)
    if args.list:
        for site in sites:
            print(describe(args.module, source_lines, site))
        return 0

    workdir = tempfile.mkdtemp(prefix='hambox_mutate_')
    try:
        for name in COPIED:
            src = os.path.join(REPO, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(workdir, name),
                                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            elif os.path.isfile(src):
                shutil.copy(src, workdir)
        target = os.path.join(workdir, args.module)
        start = time.time()
        if run_tests(workdir, args.tests, args.timeout, show=True) != 'survived':
            print('the tests fail on the unmutated module: fix them first')
            return 1
        baseline = time.time() - start
        counts, survivors, tried = {'killed': 0, 'survived': 0, 'timeout': 0}, [], 0
        for site in sites:
            if time.time() - start + baseline > args.budget:
                break
            with open(target, 'w') as f:
                f.write(ast.unparse(apply(tree, site)) + '\n')
            outcome = run_tests(workdir, args.tests, args.timeout)
            tried += 1
            counts[outcome] += 1
            label = describe(args.module, source_lines, site)
            print('{:<9} {}'.format(outcome, label), flush=True)
            if outcome == 'survived':
                survivors.append(label)
        with open(target, 'w') as f:
            f.write(source)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = dict(counts, module=args.module, tests=args.tests, mutants=len(sites), tried=tried,
                   seconds=round(time.time() - start, 1), survivors=survivors)
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
