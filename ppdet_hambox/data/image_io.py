"""The package's one image decoder: files -> 3-channel 8-bit BGR.

The rule is OpenCV's (and PaddleDetection's): a JPEG's EXIF orientation is
applied, so an image and its boxes are the picture as it is displayed.
"""
import io
import warnings

import cv2
import numpy as np
from PIL import Image

__all__ = ['IMAGE_EXTENSIONS', 'MAX_PIXELS', 'ImageReadError', 'ImageTooLargeError', 'read_image',
           'image_size', 'to_bgr8']

# File name endings taken as images when a folder is searched.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# The inference tools' default limit on width x height, the service's too.
MAX_PIXELS = 40 * 10 ** 6
# EXIF orientations 5-8 turn the picture by 90 degrees: width and height swap.
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (5, 6, 7, 8)
_LFS_POINTER = b'version https://git-lfs.github.com/spec/'


class ImageReadError(IOError):
    """An image file that is missing, unreadable or not decodable."""


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than allowed (a decompression bomb)."""


def read_image(path, max_pixels=None):
    """``path`` -> ``uint8 [H, W, 3]`` BGR, EXIF orientation applied.

    With ``max_pixels``, an image whose header declares more pixels is
    refused (``ImageTooLargeError``) before any pixel is decoded. Pillow
    reads the header: over twice its ``Image.MAX_IMAGE_PIXELS`` (about 179 M
    unless a tool sets it to None) it refuses whatever ``max_pixels`` is.
    """
    data = _read_bytes(path)
    if max_pixels is not None:
        width, height = _header_size(data, path)
        if width * height > max_pixels:
            raise ImageTooLargeError('image {} of {}x{} = {} pixels is over the limit of {} pixels '
                                     '(--max_pixels)'.format(path, width, height, width * height, max_pixels))
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as err:   # e.g. over OpenCV's own pixel limit
        raise ImageReadError('cannot decode image {}: {}'.format(path, str(err).strip().splitlines()[-1])) from None
    if image is None or image.size == 0:
        raise ImageReadError('cannot decode image {} ({})'.format(
            path, 'a Git LFS pointer, not the image: run git lfs pull' if data.startswith(_LFS_POINTER)
            else 'corrupt or not an image'))
    return to_bgr8(image)


def image_size(path):
    """``(width, height)`` of the image as ``read_image`` returns it, from the
    file's header only (no pixel is decoded)."""
    return _header_size(_read_bytes(path), path)


def _read_bytes(path):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise ImageReadError('cannot read image {}: {}'.format(path, err.strerror or err)) from None
    if not data:
        raise ImageReadError('image file {} is empty'.format(path))
    return data


def _header_size(data, path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                # Only EXIF the header holds: for a PNG, getexif() would otherwise decode the pixels.
                transposed = 'exif' in image.info and image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED
        except Image.DecompressionBombError:
            raise ImageTooLargeError('image {} declares more than {} pixels (Pillow\'s decompression-bomb '
                                     'limit)'.format(path, 2 * Image.MAX_IMAGE_PIXELS)) from None
        except Exception as err:  # any failure to parse a header means the file is not a readable image
            raise ImageReadError('cannot read the header of image {}: {}'.format(path, err)) from None
    return (height, width) if transposed else (width, height)


def to_bgr8(image):
    """Any array OpenCV may decode (gray, gray+alpha, BGR, BGRA; 8/16-bit or
    float) -> contiguous ``uint8 [H, W, 3]`` BGR. Alpha is dropped."""
    image = _to_uint8(np.asarray(image))
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ImageReadError('image array has {} dimensions, expected 2 or 3'.format(image.ndim))
    channels = image.shape[2]
    if channels in (1, 2):
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, :3])


def _to_uint8(image):
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if image.dtype.kind == 'f':
        image = np.nan_to_num(image.astype(np.float32))
        if image.max(initial=0.0) <= 1.0:
            image = image * 255.0
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)
    low, high = float(image.min()), float(image.max())
    scaled = (image.astype(np.float64) - low) * (255.0 / max(high - low, 1.0))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
