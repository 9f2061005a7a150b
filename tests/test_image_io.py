"""Image decoding to 3-channel 8-bit BGR, the pixel limit read from the
header, and Decode's box clipping."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from ppdet_hambox.data import IMAGE_EXTENSIONS, MAX_PIXELS, ImageReadError, ImageTooLargeError, image_size, read_image
from ppdet_hambox.data.image_io import to_bgr8
from test_export import load_deploy
from ppdet_hambox.data.transform.decode import Decode


def test_gray_16bit_bgra_and_float_become_bgr8(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / 'gray.png'), gray)
    deep = np.full((3, 4, 3), 65535, np.uint16)
    deep[0, 0] = (0, 32896, 65535)
    cv2.imwrite(str(tmp_path / 'deep.png'), deep)
    bgra = np.zeros((3, 4, 4), np.uint8)
    bgra[...] = (10, 20, 30, 0)
    cv2.imwrite(str(tmp_path / 'bgra.png'), bgra)
    gray16 = np.full((3, 4), 257 * 100, np.uint16)
    cv2.imwrite(str(tmp_path / 'gray16.png'), gray16)
    for name in ['gray.png', 'deep.png', 'bgra.png', 'gray16.png']:
        image = read_image(str(tmp_path / name))
        assert image.shape == (3, 4, 3) and image.dtype == np.uint8, name
    np.testing.assert_array_equal(read_image(str(tmp_path / 'gray.png'))[..., 1], gray)
    np.testing.assert_array_equal(read_image(str(tmp_path / 'deep.png'))[0, 0], [0, 128, 255])
    np.testing.assert_array_equal(read_image(str(tmp_path / 'bgra.png'))[1, 1], [10, 20, 30])
    np.testing.assert_array_equal(read_image(str(tmp_path / 'gray16.png'))[2, 3], [100, 100, 100])


def test_to_bgr8_arrays():
    assert to_bgr8(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)
    two = np.zeros((2, 2, 2), np.uint8)
    two[..., 0] = 7
    np.testing.assert_array_equal(to_bgr8(two)[0, 0], [7, 7, 7])
    np.testing.assert_array_equal(to_bgr8(np.full((1, 1, 3), 0.5, np.float32))[0, 0], [128, 128, 128])
    np.testing.assert_array_equal(to_bgr8(np.full((1, 1), 200.0, np.float64))[0, 0], [200, 200, 200])
    signed = to_bgr8(np.array([[-5, 5]], np.int16))
    np.testing.assert_array_equal(signed[0, :, 0], [0, 255])


@pytest.mark.parametrize('content,words', [(None, 'cannot read'), (b'', 'empty'),
                                           (b'\xff\xd8 not really a jpeg', 'cannot decode')])
def test_unreadable_images_raise_naming_the_file(tmp_path, content, words):
    path = tmp_path / 'bad.jpg'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(str(path))
    assert str(path) in str(info.value) and words in str(info.value)


def test_decode_clips_boxes_and_sets_shapes(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((40, 60, 3), np.uint8))
    sample = {'im_file': str(tmp_path / 'a.png'),
              'gt_bbox': np.array([[-5, 10, 20, 50], [55, 0, 70, 10], [60, 5, 80, 9]], np.float32),
              'gt_ignore': np.array([False, True, False])}
    out = Decode()(sample, None)
    np.testing.assert_array_equal(out['gt_bbox'], [[0, 10, 20, 40], [55, 0, 60, 10]])
    np.testing.assert_array_equal(out['gt_ignore'], [False, True])
    np.testing.assert_array_equal(out['ori_shape'], [40, 60])
    np.testing.assert_array_equal(out['im_shape'], [40, 60])
    np.testing.assert_array_equal(out['scale_factor'], [1, 1])


def _png_header_only(width, height):
    """A PNG whose header declares width x height and whose pixels are absent."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def test_max_pixels_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 89478485)   # Pillow's default (the infer tools lift it)
    path = tmp_path / 'huge.png'
    path.write_bytes(_png_header_only(8000, 8000))
    assert image_size(str(path)) == (8000, 8000)
    with pytest.raises(ImageTooLargeError, match='8000x8000 = 64000000 pixels is over the limit of 40000000'):
        read_image(str(path), max_pixels=MAX_PIXELS)
    bomb = tmp_path / 'bomb.png'
    bomb.write_bytes(_png_header_only(20000, 20000))
    with pytest.raises(ImageTooLargeError, match='declares more than .* decompression-bomb limit'):
        read_image(str(bomb), max_pixels=10 ** 9)
    assert issubclass(ImageTooLargeError, ImageReadError), 'skipped and counted like an unreadable image'
    with pytest.raises(ImageReadError, match='cannot decode'):
        read_image(str(path))   # no limit: decoding is tried (and fails: the pixels are absent)
    cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((30, 40, 3), np.uint8))
    assert read_image(str(tmp_path / 'small.png'), max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ImageTooLargeError):
        read_image(str(tmp_path / 'small.png'), max_pixels=1199)


def test_a_git_lfs_pointer_is_named_as_such(tmp_path):
    path = tmp_path / 'a.jpg'
    path.write_text('version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 9\n'.format('0' * 64))
    with pytest.raises(ImageReadError, match='a Git LFS pointer, not the image: run git lfs pull'):
        read_image(str(path))


def test_the_standalone_deploy_scripts_keep_the_package_list_and_limit():
    deploy = load_deploy()
    assert deploy.IMAGE_EXTENSIONS == IMAGE_EXTENSIONS and deploy.MAX_PIXELS == MAX_PIXELS
