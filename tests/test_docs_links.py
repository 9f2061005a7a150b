"""The documentation holds together: every relative link of every Markdown file
resolves (the file, and for ``#anchor`` the heading, with GitHub's heading ids),
and every docs page named in code, configs or the Makefile exists."""
import os
import pathlib
import re

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP_DIRS = {'output', 'output_inference', 'dataset', 'pretrained', 'build', 'dist', '__pycache__'}
CODE_SUFFIXES = {'.py', '.yml', '.yaml'}
CODE_NAMES = {'Makefile'}

FENCE = re.compile(r'^\s*(```|~~~)')
INLINE_CODE = re.compile(r'`[^`]*`')
INLINE_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
REFERENCE_LINK = re.compile(r'^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$')
HEADING = re.compile(r'^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
HTML_ANCHOR = re.compile(r'<a\s+(?:name|id)="([^"]+)"')
DOCS_PATH = re.compile(r'(?<![\w/.\-])docs/[\w\-./]*\w')


def repo_files(accept):
    """Files below the repository (no hidden or generated folders) for which ``accept(path)``."""
    for folder, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d not in SKIP_DIRS
                         and not d.endswith('.egg-info'))
        for name in sorted(files):
            path = pathlib.Path(folder) / name
            if accept(path):
                yield path


def prose_lines(text):
    """``(line number, line)`` outside fenced code blocks, inline code removed."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub('', line)


def heading_id(title):
    """GitHub's id for a heading: link syntax and markup dropped, lower case,
    punctuation removed except ``-`` and ``_``, spaces to ``-``."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', title)
    text = re.sub(r'<[^>]+>', '', text).replace('`', '').lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(text):
    """Every anchor a Markdown text defines (repeated headings get ``-1``, ``-2``...)."""
    found, seen = set(), {}
    for _, line in prose_lines(text):
        found.update(HTML_ANCHOR.findall(line))
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            slug = heading_id(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else '{}-{}'.format(slug, count))
    return found


def links(text):
    """``(line number, target)`` of every inline and reference link."""
    for number, line in prose_lines(text):
        for target in INLINE_LINK.findall(line):
            yield number, target
        match = REFERENCE_LINK.match(line)
        if match:
            yield number, match.group(1)


def broken_links(markdown_file):
    """Messages for the relative links of ``markdown_file`` that do not resolve."""
    text = markdown_file.read_text(encoding='utf-8')
    problems = []
    for number, target in links(text):
        if re.match(r'^[a-zA-Z][a-zA-Z0-9+.\-]*:', target) or target.startswith('//'):
            continue  # a URL or mailto:, not a file of the repository
        path_part, _, anchor = target.partition('#')
        resolved = (markdown_file.parent / path_part).resolve() if path_part else markdown_file
        where = '{}:{}: {}'.format(markdown_file.relative_to(REPO_ROOT), number, target)
        if not resolved.exists():
            problems.append(where + ' (no such file)')
        elif anchor and resolved.suffix == '.md' and anchor not in anchors(resolved.read_text(encoding='utf-8')):
            problems.append(where + ' (no heading #{} in {})'.format(anchor, resolved.name))
    return problems


def named_docs_paths(code_file):
    """``(line number, path)`` of every ``docs/...`` path a code file names."""
    for number, line in enumerate(code_file.read_text(encoding='utf-8', errors='replace').splitlines(), 1):
        for path in DOCS_PATH.findall(line):
            yield number, path.rstrip('.')


MARKDOWN_FILES = list(repo_files(lambda p: p.suffix == '.md'))
# (this file names made-up paths to test the checker itself)
CODE_FILES = list(repo_files(lambda p: (p.suffix in CODE_SUFFIXES or p.name in CODE_NAMES)
                             and p != pathlib.Path(__file__).resolve()))


def test_the_documentation_is_found():
    names = {p.relative_to(REPO_ROOT).as_posix() for p in MARKDOWN_FILES}
    assert {'README.md', 'docs/method.md', 'docs/evaluation_protocol.md', 'docs/architecture.md'} <= names
    assert any(p.name == 'Makefile' for p in CODE_FILES)


@pytest.mark.parametrize('markdown_file', MARKDOWN_FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(markdown_file):
    assert broken_links(markdown_file) == []


def test_every_docs_path_named_in_code_exists():
    missing = ['{}:{}: {}'.format(code_file.relative_to(REPO_ROOT), number, path)
               for code_file in CODE_FILES for number, path in named_docs_paths(code_file)
               if not (REPO_ROOT / path).exists()]
    assert missing == []


def test_the_checker_catches_broken_links_and_anchors(tmp_path, monkeypatch):
    monkeypatch.setattr(__import__(__name__), 'REPO_ROOT', tmp_path)
    (tmp_path / 'other.md').write_text('# Other page\n\n## Step 2: `run` it (fast)\n\n## Step 2: `run` it (fast)\n')
    page = tmp_path / 'page.md'
    page.write_text('\n'.join([
        '# Page',
        '[ok](other.md#step-2-run-it-fast) [repeat](other.md#step-2-run-it-fast-1) [self](#page)',
        '[web](https://example.org/missing.md) `[code](missing.md)`',
        '```', '[fenced](missing.md)', '```',
        '[gone](missing.md) [bad anchor](other.md#step-3) [bad self](#nowhere)',
        '[ref]: other.md#other-page',
        '[bad ref]: nothing/here.md',
    ]))
    problems = broken_links(page)
    assert [p.split(': ', 1)[1].split(' (')[0] for p in problems] == [
        'missing.md', 'other.md#step-3', '#nowhere', 'nothing/here.md']
    assert 'no such file' in problems[0] and 'no heading #step-3' in problems[1]


def test_docs_paths_are_read_from_code(tmp_path):
    code = tmp_path / 'module.py'
    code.write_text('"""See docs/method.md and docs/figures/x.png.\n'
                    'Not https://example.org/docs/a.md nor my_docs/b.md."""\n')
    assert list(named_docs_paths(code)) == [(1, 'docs/method.md'), (1, 'docs/figures/x.png')]


def test_readme_is_a_front_page():
    """The README stays a front page: at most 160 lines, the details live in docs/."""
    lines = (REPO_ROOT / 'README.md').read_text(encoding='utf-8').splitlines()
    assert len(lines) <= 160, 'README.md has {} lines; move details to docs/'.format(len(lines))
