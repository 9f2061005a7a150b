"""Datasets, transforms and readers; ``read_image`` is the package's one image decoder."""
from ppdet_hambox.data.image_io import (IMAGE_EXTENSIONS, MAX_PIXELS, ImageReadError, ImageTooLargeError,
                                        image_size, read_image)

__all__ = ['IMAGE_EXTENSIONS', 'MAX_PIXELS', 'ImageReadError', 'ImageTooLargeError', 'image_size', 'read_image']
