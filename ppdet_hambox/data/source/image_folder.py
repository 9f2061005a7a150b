"""Images without annotations, for inference: one file or a folder."""
import os

import numpy as np
import paddle

from ppdet_hambox.core.workspace import register
from ppdet_hambox.data.image_io import IMAGE_EXTENSIONS

__all__ = ['ImageFolder']


@register
class ImageFolder(paddle.io.Dataset):
    """The image ``dataset_dir/image_dir`` or every image below that folder
    (sorted; recursively when ``recursive``), or the paths given to
    ``set_images``. Records have no faces; ``event`` is the sub-folder of the
    image relative to the folder it was found in, ``name`` its file stem."""

    def __init__(self, dataset_dir='', image_dir='', extensions=IMAGE_EXTENSIONS, recursive=True):
        super().__init__()
        self.dataset_dir = dataset_dir
        self.image_dir = image_dir
        self.extensions = tuple(e.lower() for e in extensions)
        self.recursive = recursive
        self._entries = None

    def set_images(self, paths):
        """Use these files or folders instead of ``dataset_dir/image_dir``."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self._entries = self._collect([os.fspath(p) for p in paths])

    def _collect(self, paths):
        entries = []
        for path in paths:
            if os.path.isfile(path):
                entries.append((path, ''))
            elif os.path.isdir(path):
                entries.extend((file, os.path.relpath(os.path.dirname(file), path))
                               for file in self._images_below(path))
            else:
                raise FileNotFoundError('no image or folder at {}'.format(path))
        if not entries:
            raise FileNotFoundError('no images ({}) found in {}'.format(
                ', '.join(self.extensions), ', '.join(paths)))
        return [(file, '' if event == '.' else event) for file, event in entries]

    def _images_below(self, folder):
        found = []
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            found.extend(os.path.join(root, f) for f in sorted(files)
                         if os.path.splitext(f)[1].lower() in self.extensions)
            if not self.recursive:
                break
        return found

    def _load(self):
        if self._entries is None:
            path = os.path.join(self.dataset_dir, self.image_dir)
            if not path:
                raise FileNotFoundError('ImageFolder has no images: set dataset_dir/image_dir '
                                        'or call set_images()')
            self._entries = self._collect([path])
        return self._entries

    def __len__(self):
        return len(self._load())

    def __getitem__(self, idx):
        file, event = self._load()[idx]
        return {
            'im_file': file,
            'im_id': int(idx),
            'gt_bbox': np.zeros((0, 4), dtype=np.float32),
            'gt_ignore': np.zeros(0, dtype=bool),
            'event': event,
            'name': os.path.splitext(os.path.basename(file))[0],
        }
