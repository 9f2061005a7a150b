"""Training data that yields no readable image is a user error, not an
endless run of empty epochs.

Before iteration 1 (cheap): the dataset's image folder must exist and its
first ``PROBE_IMAGES`` samples must not all be unreadable. During training:
``MAX_UNREADABLE_IN_A_ROW`` images that could not be read one after the other
(or a whole epoch of them, if that is fewer) stop it. Either way the error is
one line naming the image folder and the first unreadable files. Unreadable
images among readable ones are skipped and counted as before.
"""
import os

from ppdet_hambox.core.errors import UserError
from ppdet_hambox.data.pipeline import SkippedSample

__all__ = ['UnreadableDataError', 'UnreadableStreak', 'check_first_images', 'streak_error',
           'PROBE_IMAGES', 'MAX_UNREADABLE_IN_A_ROW']

PROBE_IMAGES = 8
MAX_UNREADABLE_IN_A_ROW = 1000
NAMED = 3


class UnreadableDataError(UserError):
    """The training data yields no readable image; the message names the folder and files."""


class UnreadableStreak:
    """The images that could not be read since the last batch holding a readable one."""

    def __init__(self, limit):
        self.limit = int(limit)
        self.count = 0

    def add(self, readable, skipped):
        self.count = 0 if readable else self.count + int(skipped)

    @property
    def exceeded(self):
        return self.count >= self.limit


def check_first_images(samples, section='TrainDataset', count=PROBE_IMAGES):
    """Raise ``UnreadableDataError`` when the image folder of ``samples``'
    dataset (``dataset_dir/image_dir``) is missing, or when none of the first
    ``count`` samples of ``samples`` (a ``TransformedDataset``) can be read."""
    folder = _image_folder(samples.dataset)
    if folder is not None and not os.path.isdir(folder):
        raise UnreadableDataError('{}.image_dir: no folder {} (check dataset_dir and image_dir)'.format(
            section, folder))
    skipped = []
    for index in range(min(count, len(samples))):
        item = samples.transform((0, index))
        if not isinstance(item, SkippedSample):
            return
        skipped.append(item)
    if skipped:
        raise UnreadableDataError(_message(section, folder, 'none of its first {} images can be read'.format(
            len(skipped)), skipped))


def streak_error(samples, streak, section='TrainDataset', count=PROBE_IMAGES):
    """The ``UnreadableDataError`` of a streak of unreadable images, naming
    those among the first ``count`` samples."""
    skipped = [item for item in (samples.transform((0, i)) for i in range(min(count, len(samples))))
               if isinstance(item, SkippedSample)]
    return UnreadableDataError(_message(
        section, _image_folder(samples.dataset),
        '{} images in a row could not be read, so training stopped'.format(streak.count), skipped))


def _image_folder(dataset):
    image_dir = getattr(dataset, 'image_dir', None)
    if not isinstance(image_dir, str) or not image_dir:
        return None
    return os.path.join(getattr(dataset, 'dataset_dir', '') or '', image_dir)


def _message(section, folder, what, skipped):
    line = '{}{}: {}'.format(section, ' (images in {})'.format(folder) if folder else '', what)
    if skipped:
        line += '; the first: {}'.format(skipped[0].reason)
        others = [str(item.im_file) for item in skipped[1:NAMED]]
        if others:
            line += '; also {}{}'.format(', '.join(others), ', ...' if len(skipped) > NAMED else '')
    return line
