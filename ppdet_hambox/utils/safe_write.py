"""Every file a tool writes, written one way.

- **Whole or not at all**: a file is written under a temporary name in its
  folder, fsync'ed and renamed over its name (``atomic_file``); a folder of
  files (an export) is written into a temporary sibling folder and moved into
  place when every file is there (``staged_folder``).
- **Checked**: a failed write (a full disk, a read-only folder, a path that
  is a file, an image OpenCV cannot encode) is a ``WriteError`` naming the
  path: one line and exit status 2 from ``run_tool``, never a success line.
- **Only our files are replaced**: each folder lists the files this project
  wrote there in ``.ppdet_hambox_files``; ``claim`` refuses a path that
  exists and is neither listed nor written by this process, so a photo, a
  note or another program's output is never overwritten.

``_write`` and ``_replace`` are the only calls that touch the disk's data;
tests replace them to inject failures.
"""
import contextlib
import errno
import json
import os
import shutil
import tempfile

from ppdet_hambox.core.errors import UserError

__all__ = ['WriteError', 'MANIFEST_NAME', 'atomic_file', 'write_bytes', 'write_text', 'write_json',
           'write_yaml', 'write_image', 'save_figure', 'claim', 'record', 'output_folder', 'staged_folder',
           'listed_files', 'describe_os_error']

MANIFEST_NAME = '.ppdet_hambox_files'
_created = set()  # absolute paths this process wrote
_recorded = {}  # folder -> names listed in its manifest, as this process knows them


class WriteError(UserError, OSError):
    """A file or folder that could not be written; the message names it."""


def describe_os_error(err, path=None):
    """``cannot write PATH: No space left on device`` for an ``OSError``."""
    path = path or err.filename
    reason = err.strerror or str(err)
    if err.errno == errno.ENOTDIR:
        reason = 'a part of the path is a file, not a folder'
    return 'cannot write {}: {}'.format(path, reason)


def _write(f, data):
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def _replace(src, dst):
    os.replace(src, dst)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _makedirs(folder, flag=None):
    name = '{} {}'.format(flag, folder) if flag else folder
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise WriteError('{}: is a file, not a folder'.format(name))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise WriteError(describe_os_error(err, name)) from None


def output_folder(path, flag=None):
    """Create ``path`` if needed and check it can be written; returns it.
    ``flag`` (e.g. ``--output_dir``) is named in the error."""
    _makedirs(path, flag)
    if not os.access(path, os.W_OK | os.X_OK):
        raise WriteError('cannot write {}{}: the folder is read-only'.format(flag + ' ' if flag else '', path))
    return path


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside ``path`` to write (by any means); on
    success it is fsync'ed and renamed to ``path``. Any failure leaves
    ``path`` as it was and is a ``WriteError`` naming ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    _makedirs(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
        os.close(fd)
    except OSError as err:
        raise WriteError(describe_os_error(err, path)) from None
    try:
        yield tmp
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only
        _replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        if isinstance(err, WriteError):
            raise
        raise WriteError(describe_os_error(err, path)) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(folder)
    _created.add(os.path.abspath(path))


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def write_bytes(path, data, guard=True):
    """Write ``data`` to ``path`` through ``atomic_file``. With ``guard`` (the
    default) ``path`` is first ``claim``ed and then ``record``ed as ours; a
    caller that guards a whole folder otherwise (a training run's
    ``save_dir``) passes ``guard=False``."""
    if guard:
        claim(path)
    with atomic_file(path) as tmp:
        with open(tmp, 'wb') as f:
            _write(f, data)
    if guard:
        record(path)
    return path


def write_text(path, text, guard=True):
    return write_bytes(path, text.encode('utf-8'), guard)


def write_json(path, obj, indent=1, guard=True, **kwargs):
    return write_text(path, json.dumps(obj, indent=indent, **kwargs) + '\n', guard)


def write_yaml(path, obj, guard=True):
    import yaml
    return write_text(path, yaml.safe_dump(obj, sort_keys=False), guard)


def write_image(path, image, params=(), guard=True):
    """Encode ``image`` (BGR) by ``path``'s extension and write it; an image
    OpenCV cannot encode is a ``WriteError`` (``cv2.imwrite`` only returns False)."""
    import cv2
    ext = os.path.splitext(path)[1] or '.png'
    try:
        ok, encoded = cv2.imencode(ext, image, list(params))
    except cv2.error as err:
        raise WriteError('cannot write {}: OpenCV cannot encode it ({})'.format(path, str(err).strip())) from None
    if not ok:
        raise WriteError('cannot write {}: OpenCV cannot encode a {} image'.format(path, ext))
    return write_bytes(path, encoded.tobytes(), guard)


def save_figure(fig, path, **kwargs):
    """``fig.savefig`` through ``atomic_file`` (the format from the extension), guarded."""
    fmt = os.path.splitext(path)[1].lstrip('.').lower() or 'png'
    formats = fig.canvas.get_supported_filetypes()
    if fmt not in formats:
        raise WriteError('cannot write {}: not a figure format (name it .{})'.format(path, ', .'.join(sorted(formats))))
    claim(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)
    record(path)
    return path


def listed_files(folder):
    """Relative paths this project listed as written in ``folder``."""
    manifest = os.path.join(folder, MANIFEST_NAME)
    try:
        with open(manifest, encoding='utf-8') as f:
            return {line.rstrip('\n') for line in f if line.strip()}
    except OSError:
        return set()


def _ours(path):
    path = os.path.abspath(path)
    return path in _created or os.path.basename(path) in listed_files(os.path.dirname(path))


def claim(path, flag=None):
    """Check ``path`` may be written: absent, written by this process, or
    listed in its folder's ``.ppdet_hambox_files``; else a ``WriteError``."""
    if os.path.isdir(path):
        raise WriteError('{}{}: is a folder, not a file'.format(flag + ' ' if flag else '', path))
    if os.path.lexists(path) and not _ours(path):
        raise WriteError('{}{} exists and was not written by this project; give another name or folder, '
                         'or remove it yourself (nothing was changed)'.format(flag + ' ' if flag else '', path))
    return path


def record(path):
    """List ``path`` in its folder's ``.ppdet_hambox_files`` (once)."""
    folder, name = os.path.split(os.path.abspath(path))
    if folder not in _recorded:
        _recorded[folder] = listed_files(folder)
    if name in _recorded[folder]:
        return
    manifest = os.path.join(folder, MANIFEST_NAME)
    try:
        with open(manifest, 'a', encoding='utf-8') as f:
            _write(f, name + '\n')
    except OSError as err:
        raise WriteError(describe_os_error(err, manifest)) from None
    _recorded[folder].add(name)


@contextlib.contextmanager
def staged_folder(path, flag=None):
    """Yield a temporary folder beside ``path`` to write a set of files into;
    on success they appear in ``path`` together (the folder is renamed when
    ``path`` is new or empty, else each file is renamed in and listed), on
    any failure ``path`` is left as it was. Files in ``path`` that would be
    replaced must be ours (``claim``); that is checked before the body runs."""
    parent = os.path.dirname(os.path.abspath(path))
    output_folder(parent)
    if os.path.exists(path) and not os.path.isdir(path):
        raise WriteError('{}{}: is a file, not a folder'.format(flag + ' ' if flag else '', path))
    try:
        stage = tempfile.mkdtemp(prefix='.' + os.path.basename(os.path.abspath(path)) + '.', suffix='.tmp',
                                 dir=parent)
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it owner-only; the export keeps this mode
    except OSError as err:
        raise WriteError(describe_os_error(err, path)) from None
    try:
        yield stage
        names = sorted(os.listdir(stage))
        if os.path.isdir(path):
            for name in names:
                claim(os.path.join(path, name), flag)
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
        if not os.path.exists(path):
            _replace(stage, path)
        else:
            for name in names:
                _replace(os.path.join(stage, name), os.path.join(path, name))
            os.rmdir(stage)
        for name in names:
            _created.add(os.path.abspath(os.path.join(path, name)))
            record(os.path.join(path, name))
        _fsync_dir(parent)
    except OSError as err:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(err, WriteError):
            raise
        raise WriteError(describe_os_error(err, path)) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
