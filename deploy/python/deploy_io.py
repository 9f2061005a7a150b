"""Command-line and file plumbing shared by the standalone deploy scripts.

The deploy folder does not import ``ppdet_hambox``; this module gives its
scripts the same guarantees as the project's tools:

- ``run_cli(main)``: a ``DeployError`` (bad input), a disk that refuses a
  file (full, read-only, a path that is a file) and argument errors are one
  ``error:`` line and exit status 2; Ctrl-C is one ``stopped:`` line and 130.
- ``ToolParser`` and the argument types that declare each kind of value's
  range: ``positive_int``, ``nonneg_int``, ``probability``, ``positive_float``,
  ``port``, ``listen_port``,
  ``existing_file``, ``existing_dir``, ``output_dir``, ``export_dir``.
- Writes: whole or not at all (temporary name, fsync, rename), checked
  (``cv2.imwrite`` only returns False; here a failed encode is an error), and
  never over a file this project did not write (each folder lists the files
  written there in ``.ppdet_hambox_files``, as the project's tools do).
- ``check_export(model_dir)``: an export folder's files and ``infer_cfg.yml``
  schema, before any model is loaded.
"""
import argparse
import contextlib
import errno
import json
import math
import os
import sys
import tempfile

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
MANIFEST_NAME = '.ppdet_hambox_files'
MODEL_FILE, PARAMS_FILE, INFER_CFG = 'model.json', 'model.pdiparams', 'infer_cfg.yml'
ENVIRONMENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    'ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'ENOTDIR', 'EISDIR', 'EFBIG', 'ENAMETOOLONG', 'ENOENT',
    'ELOOP')
    if hasattr(errno, name))
_created = set()


class DeployError(Exception):
    """Bad user input (a file, folder, flag or value that cannot be used);
    the message names it. ``run_cli`` prints it as one line."""


def one_line(text):
    """``text`` with line breaks and control characters escaped."""
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def run_cli(main, argv=None):
    """Call ``main(argv)``; return its int status (0 for any other result).
    ``DeployError`` and disk errors: ``error: <message>``, 2. Ctrl-C:
    ``stopped: ...``, 130. Any other exception keeps its traceback (a bug)."""
    try:
        result = main(argv)
    except DeployError as err:
        print('error: {}'.format(one_line(err)), file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS or (err.errno == errno.ENOENT and err.filename is None):
            raise
        where = '{}: '.format(err.filename) if err.filename is not None else ''
        print('error: {}{}'.format(where, one_line(err.strerror or err)), file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError as err:  # sizes the machine cannot hold (a huge batch, image or count), like a full disk
        print('error: out of memory{}; use smaller sizes (batch, images, counts)'.format(
            ': {}'.format(one_line(err)) if str(err) else ''), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print('stopped: interrupted by Ctrl-C (SIGINT); files being written were left out', file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as stop:  # argparse, after printing its one line
        if isinstance(stop.code, int) or stop.code is None:
            return stop.code or 0
        raise
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


# ----------------------------------------------------------------------------- arguments

class ToolParser(argparse.ArgumentParser):
    """Argument errors are one line, ``error: argument --x: ...``, and exit status 2."""

    def error(self, message):
        message = ' '.join(str(message).split())
        flag, sep, rest = message.partition(': ')
        if flag.startswith('argument ') and sep:  # 'argument --x: msg' -> '--x msg', as the tools word it
            message = '{}{}{}'.format(flag[len('argument '):], ': ' if rest.startswith('invalid') else ' ', rest)
        self.exit(EXIT_USER_ERROR, 'error: {}\n'.format(message))


def _number(text, kind):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError('{!r} is not {}'.format(
            text, 'an integer' if kind is int else 'a number')) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError('{!r} is not a finite number'.format(text))
    return value


def positive_int(text):
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1, got {}'.format(value))
    return value


def nonneg_int(text):
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError('must be at least 0, got {}'.format(value))
    return value


def probability(text):
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError('must be between 0 and 1, got {}'.format(value))
    return value


def port(text):
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError('must be a port between 1 and 65535, got {}'.format(value))
    return value


def positive_float(text):
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be greater than 0, got {}'.format(value))
    return value


def listen_port(text):
    """A port to listen on: 1-65535, or 0 for any free port."""
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError('must be a port between 1 and 65535 (0: any free port), got {}'.format(value))
    return value


def existing_file(text):
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError('{} is a folder, not a file'.format(text))
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError('{}: no such file'.format(text))
    return text


def existing_dir(text):
    if os.path.isfile(text):
        raise argparse.ArgumentTypeError('{} is a file, not a folder'.format(text))
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError('{}: no such folder'.format(text))
    return text


def output_dir(text):
    path = os.path.abspath(text)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError('{} is a file, not a folder'.format(text) if path == os.path.abspath(text)
                                         else '{}: a part of the path is a file'.format(text))
    return text


def export_dir(text):
    """An export folder that passes ``check_export``."""
    try:
        check_export(text, flag=None)
    except DeployError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


# ----------------------------------------------------------------------------- writes

def _write(f, data):
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def _replace(src, dst):
    os.replace(src, dst)


def _cannot_write(path, err):
    reason = 'a part of the path is a file, not a folder' if err.errno == errno.ENOTDIR else (err.strerror or err)
    return DeployError('cannot write {}: {}'.format(path, reason))


def output_folder(path, flag='--output_dir'):
    """Create ``path`` if needed; a file there, a failure or a read-only folder is a DeployError."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise DeployError('{} {}: is a file, not a folder'.format(flag, path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise _cannot_write('{} {}'.format(flag, path), err) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DeployError('cannot write {} {}: the folder is read-only'.format(flag, path))
    return path


def _listed(folder):
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding='utf-8') as f:
            return {line.rstrip('\n') for line in f if line.strip()}
    except OSError:
        return set()


def claim(path, flag='--output_dir'):
    """``path`` may be written: absent, written by this process, or listed in
    its folder's ``.ppdet_hambox_files``; else a DeployError."""
    if os.path.isdir(path):
        raise DeployError('{}: {} is a folder, not a file'.format(flag, path))
    absolute = os.path.abspath(path)
    ours = absolute in _created or os.path.basename(absolute) in _listed(os.path.dirname(absolute))
    if os.path.lexists(path) and not ours:
        raise DeployError('{}: {} exists and was not written by this project; give another --output_dir or '
                          'remove it yourself (nothing was changed)'.format(flag, path))
    return path


def write_bytes(path, data):
    """Write ``data`` to ``path`` whole or not at all, and list it as ours."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    except OSError as err:
        raise _cannot_write(path, err) from None
    try:
        with os.fdopen(fd, 'wb') as f:
            _write(f, data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        _replace(tmp, path)
        _created.add(os.path.abspath(path))
        if os.path.basename(path) not in _listed(folder):
            with open(os.path.join(folder, MANIFEST_NAME), 'a', encoding='utf-8') as f:
                _write(f, os.path.basename(path) + '\n')
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise _cannot_write(path, err) from None
    return path


def write_json(path, obj):
    return write_bytes(path, json.dumps(obj).encode('utf-8'))


def write_image(path, image):
    """Encode ``image`` by the extension of ``path`` and write it; a failed encode is a DeployError."""
    import cv2
    ext = os.path.splitext(path)[1] or '.png'
    try:
        ok, encoded = cv2.imencode(ext, image)
    except cv2.error:
        ok = False
    if not ok:
        raise DeployError('cannot write {}: OpenCV cannot encode a {} image'.format(path, ext))
    return write_bytes(path, encoded.tobytes())


# ----------------------------------------------------------------------------- export folders

INFER_CFG_KEYS = {'Preprocess': list, 'draw_threshold': (int, float), 'label_list': list}


def check_export(model_dir, flag='--model_dir'):
    """Check an export folder before loading it: a folder with non-empty
    ``model.json`` (JSON), ``model.pdiparams`` and an ``infer_cfg.yml`` that
    is a mapping with ``Preprocess`` (a list of steps with a ``type``), a
    ``draw_threshold`` in [0, 1] and a non-empty ``label_list``. Returns the
    parsed ``infer_cfg.yml``; a DeployError naming the file otherwise."""
    import yaml
    hint = 'export a model there with tools/export.py'
    where = '{} {}'.format(flag, model_dir) if flag else model_dir
    if os.path.isfile(model_dir):
        raise DeployError('{}: is a file, not an export folder ({})'.format(where, hint))
    if not os.path.isdir(model_dir):
        raise DeployError('{}: no such folder ({})'.format(where, hint))
    missing = [f for f in (MODEL_FILE, PARAMS_FILE, INFER_CFG) if not os.path.isfile(os.path.join(model_dir, f))]
    if missing:
        raise DeployError('{}: no {} ({})'.format(where, ', '.join(missing), hint))
    for name in (MODEL_FILE, PARAMS_FILE, INFER_CFG):
        if os.path.getsize(os.path.join(model_dir, name)) == 0:
            raise DeployError('{}: empty file (an interrupted export? {})'.format(os.path.join(model_dir, name), hint))
    path = os.path.join(model_dir, MODEL_FILE)
    try:
        with open(path, 'rb') as f:
            json.load(f)
    except (OSError, ValueError) as err:
        raise DeployError('{}: not a readable model graph ({}; {})'.format(path, one_line(err), hint)) from None
    path = os.path.join(model_dir, INFER_CFG)
    try:
        with open(path, encoding='utf-8') as f:
            cfg = yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise DeployError('{}: not readable YAML ({})'.format(path, one_line(err).strip())) from None
    if not isinstance(cfg, dict):
        raise DeployError('{}: must be a mapping of keys, got {}'.format(path, type(cfg).__name__))
    for key, kind in INFER_CFG_KEYS.items():
        if key not in cfg:
            raise DeployError('{}: missing key {!r} ({})'.format(path, key, hint))
        if not isinstance(cfg[key], kind) or isinstance(cfg[key], bool):
            raise DeployError('{}: {} has the wrong type ({!r})'.format(path, key, cfg[key]))
    if not 0.0 <= float(cfg['draw_threshold']) <= 1.0 or not math.isfinite(float(cfg['draw_threshold'])):
        raise DeployError('{}: draw_threshold must be in [0, 1], got {}'.format(path, cfg['draw_threshold']))
    if not cfg['label_list']:
        raise DeployError('{}: label_list is empty'.format(path))
    for index, step in enumerate(cfg['Preprocess']):
        if not isinstance(step, dict) or 'type' not in step:
            raise DeployError('{}: Preprocess[{}] must be a mapping with a type, got {!r}'.format(path, index, step))
    return cfg
