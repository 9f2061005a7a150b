"""AnchorGenerator: counts, exact coordinates, ordering, dynamic shapes."""
import math

import numpy as np
import paddle
import pytest
from paddle.static import InputSpec

from ppdet_hambox.modeling.anchors import AnchorGenerator

SIZES = [16, 32, 64, 128, 256, 512]
STRIDES = [4, 8, 16, 32, 64, 128]


def reference_anchors(height, width, ratio):
    """Slow, obvious construction: loop over levels, rows, columns."""
    rows = []
    for size, stride in zip(SIZES, STRIDES):
        side = ratio * size
        for i in range(math.ceil(height / stride)):
            for j in range(math.ceil(width / stride)):
                cx, cy = (j + 0.5) * stride, (i + 0.5) * stride
                rows.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    return np.array(rows, np.float32)


def test_640_gives_34125_anchors():
    gen = AnchorGenerator()
    shapes = gen.feature_shapes(640, 640)
    assert shapes == [(160, 160), (80, 80), (40, 40), (20, 20), (10, 10), (5, 5)]
    assert gen.num_anchors(640, 640) == 34125
    assert list(gen.anchors(shapes).shape) == [34125, 4]


def test_exact_coordinates_at_640():
    anchors = AnchorGenerator(ratio=0.68).anchors([(160, 160), (80, 80), (40, 40), (20, 20), (10, 10), (5, 5)]).numpy()
    half = 0.68 * 16 / 2
    np.testing.assert_allclose(anchors[0], [2 - half, 2 - half, 2 + half, 2 + half], rtol=1e-6)
    # second anchor is the next column of row 0, then row 1 starts at index 160
    np.testing.assert_allclose(anchors[1], [6 - half, 2 - half, 6 + half, 2 + half], rtol=1e-6)
    np.testing.assert_allclose(anchors[160], [2 - half, 6 - half, 2 + half, 6 + half], rtol=1e-6)
    # first anchor of P3, last anchor of P7
    half3 = 0.68 * 32 / 2
    np.testing.assert_allclose(anchors[25600], [4 - half3, 4 - half3, 4 + half3, 4 + half3], rtol=1e-6)
    half7 = 0.68 * 512 / 2
    np.testing.assert_allclose(anchors[-1], [576 - half7, 576 - half7, 576 + half7, 576 + half7], rtol=1e-6)


@pytest.mark.parametrize('height,width,ratio', [(333, 517, 0.68), (64, 96, 1.0), (1, 1, 0.5)])
def test_matches_reference(height, width, ratio):
    gen = AnchorGenerator(ratio=ratio)
    got = gen.anchors(gen.feature_shapes(height, width)).numpy()
    np.testing.assert_allclose(got, reference_anchors(height, width, ratio), rtol=1e-6, atol=1e-4)


def test_feature_shapes_are_ceil_of_input_over_stride():
    assert AnchorGenerator().feature_shapes(333, 517) == [
        (math.ceil(333 / s), math.ceil(517 / s)) for s in STRIDES]


def test_dynamic_sizes_inside_to_static(tmp_path):
    """Anchors from ``paddle.shape`` of a tensor: exported once, right for any size."""
    gen = AnchorGenerator()

    class FromImage(paddle.nn.Layer):
        def forward(self, image):
            shape = paddle.shape(image)
            return gen.anchors([((shape[2] + s - 1) // s, (shape[3] + s - 1) // s) for s in STRIDES])

    static = paddle.jit.to_static(FromImage(), input_spec=[InputSpec([1, 3, None, None], 'float32')],
                                  full_graph=True)
    paddle.jit.save(static, str(tmp_path / 'anchors'))
    loaded = paddle.jit.load(str(tmp_path / 'anchors'))
    for height, width in [(64, 96), (77, 45)]:
        got = loaded(paddle.zeros([1, 3, height, width])).numpy()
        np.testing.assert_allclose(got, reference_anchors(height, width, 0.68), rtol=1e-6, atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match='one entry per level'):
        AnchorGenerator(sizes=[16, 32], strides=[4])
    with pytest.raises(ValueError, match='6 levels but got 2'):
        AnchorGenerator().anchors([(4, 4), (2, 2)])
