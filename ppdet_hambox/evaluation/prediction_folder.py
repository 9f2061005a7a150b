"""A prediction folder that only ever loses files this project wrote there.

Every file an evaluation writes into its folder is listed (one relative path
a line) in ``.ppdet_hambox_files`` inside it. Before a new evaluation, the
files of that list are removed; a folder holding anything else (a dataset, a
user's notes, predictions of another tool) is refused and left untouched.
Hidden files are left alone and do not count. Until ``complete()`` the folder
holds ``.ppdet_hambox_incomplete``: the predictions of an evaluation stopped
half-way (Ctrl-C, a crash) are refused by the WIDER FACE metric rather than
scored as if the missing images had no faces.
"""
import os

from ppdet_hambox.core.errors import UserError
from ppdet_hambox.metrics.widerface import INCOMPLETE_MARKER
from ppdet_hambox.utils.safe_write import MANIFEST_NAME

__all__ = ['PredictionFolder', 'check_prediction_folder', 'visible_walk', 'MANIFEST_NAME']

EXAMPLES = 3


class PredictionFolder:
    """``PredictionFolder(path, flag)``: checks and empties ``path`` of this
    project's earlier files (``flag`` names the option that chose it, for the
    error message); ``record(relpath)`` lists a file just written."""

    def __init__(self, path, flag='--output_eval'):
        self.path = path
        self.manifest = os.path.join(path, MANIFEST_NAME)
        ours = check_prediction_folder(path, flag)
        os.makedirs(path, exist_ok=True)
        self._remove(ours)
        self.marker = os.path.join(path, INCOMPLETE_MARKER)
        for name in (self.marker, self.manifest):
            with open(name, 'w', encoding='utf-8'):
                pass

    def complete(self):
        """Every prediction is written: the folder may be scored."""
        if os.path.exists(self.marker):
            os.remove(self.marker)

    def _remove(self, relpaths):
        folders = set()
        for rel in relpaths:
            path = os.path.join(self.path, rel)
            if os.path.isfile(path):
                os.remove(path)
            folders.add(os.path.dirname(path))
        for folder in sorted(folders, key=len, reverse=True):
            if (os.path.normpath(folder) != os.path.normpath(self.path) and os.path.isdir(folder)
                    and not os.listdir(folder)):
                os.rmdir(folder)

    def record(self, relpath):
        """List ``relpath`` (relative to the folder) as written by this project."""
        with open(self.manifest, 'a', encoding='utf-8') as f:
            f.write(os.path.normpath(relpath) + '\n')

    def record_new_files(self):
        """List every file in the folder not listed yet (after a writer that
        does not report its files); the folder held none but ours at start."""
        ours = _listed(self.path)
        for rel in _files(self.path):
            if rel not in ours:
                self.record(rel)


def check_prediction_folder(path, flag='--output_eval'):
    """The check ``PredictionFolder`` makes, touching nothing: a ``UserError``
    when ``path`` holds files this project did not write there. A run that
    writes predictions only at its end calls it first, to fail before its
    work rather than after. Returns the files of ours listed there."""
    if not os.path.exists(path):
        return set()
    if not os.path.isdir(path):
        raise UserError('{} {}: not a folder'.format(flag, path))
    ours = _listed(path)
    foreign = [rel for rel in _files(path) if rel not in ours]
    if foreign:
        raise UserError(
            '{} {} holds {} file(s) this project did not write there (e.g. {}); give an empty or new '
            'folder, or remove them yourself (nothing was deleted)'.format(
                flag, path, len(foreign), ', '.join(sorted(foreign)[:EXAMPLES])))
    return ours


def visible_walk(path):
    """``os.walk(path)`` in sorted order without hidden folders and files (the
    manifest, ``.DS_Store``, a ``.git`` folder): those are not predictions, so
    they are neither refused, removed nor zipped, as the metric passes over
    them too."""
    for root, folders, names in os.walk(path):
        folders[:] = sorted(f for f in folders if not f.startswith('.'))
        yield root, folders, sorted(n for n in names if not n.startswith('.'))


def _files(path):
    return [os.path.relpath(os.path.join(root, n), path) for root, _, names in visible_walk(path) for n in names]


def _listed(path):
    manifest = os.path.join(path, MANIFEST_NAME)
    if not os.path.isfile(manifest):
        return set()
    with open(manifest, encoding='utf-8') as f:
        return {line.rstrip('\n') for line in f if line.strip()}
