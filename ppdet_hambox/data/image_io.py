"""Reading images as 3-channel 8-bit BGR, whatever OpenCV decodes."""
import cv2
import numpy as np

__all__ = ['ImageReadError', 'read_image', 'to_bgr8']


class ImageReadError(IOError):
    """An image file that is missing, unreadable or not decodable."""


def read_image(path, apply_exif_orientation=False):
    """``path`` -> ``uint8 [H, W, 3]`` BGR.

    EXIF orientation is ignored by default: WIDER FACE boxes refer to the
    stored pixel grid, as MATLAB's ``imread`` returns it.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise ImageReadError('cannot read image {}: {}'.format(path, err.strerror or err)) from None
    if not data:
        raise ImageReadError('image file {} is empty'.format(path))
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    if not apply_exif_orientation:
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise ImageReadError('cannot decode image {} (corrupt or not an image)'.format(path))
    return to_bgr8(image)


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
