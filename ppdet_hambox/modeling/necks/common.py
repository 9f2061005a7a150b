"""Pieces shared by the necks: lateral projections, one top-down merge step,
2x upsampling, the per-channel L2 norm with a learnable scale, and the extra
stride-2 levels P6/P7."""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppdet_hambox.modeling.shape_spec import ShapeSpec

FUSIONS = ('product', 'sum')
UPSAMPLES = ('nearest', 'bilinear')


def check_neck_args(name, in_shape, fusion):
    if len(in_shape) != 4:
        raise ValueError('{} takes the four backbone levels C2..C5, got {} ({!r})'.format(
            name, len(in_shape), in_shape))
    if fusion not in FUSIONS:
        raise ValueError('{}.fusion must be one of {}, got {!r}'.format(name, FUSIONS, fusion))


def pyramid_out_shape(in_shape, channels):
    """P2..P7 of a neck on C2..C5: the four input strides, then two stride-2
    levels above C5, all of ``channels`` channels."""
    top = in_shape[-1].stride
    strides = [s.stride for s in in_shape] + [top * 2, top * 4]
    return [ShapeSpec(channels, stride) for stride in strides]


def upsample_to(x, like):
    """Nearest 2x upsampling of ``x`` cropped to the spatial size of ``like``
    (a lower level has twice the higher one's size, or one less): lower cell
    ``i`` takes higher cell ``i // 2``. Built from tile + slice rather than
    ``F.interpolate``, whose size-from-tensor form the oneDNN CPU predictor
    cannot run."""
    up = x.unsqueeze(3).unsqueeze(5).tile([1, 1, 1, 2, 1, 2]).flatten(4, 5).flatten(2, 3)
    size = paddle.shape(like)
    return paddle.slice(up, axes=[2, 3], starts=[0, 0], ends=[size[2], size[3]])


def bilinear_kernel(channels):
    """``[channels, 1, 4, 4]`` weights of a depthwise stride-2 transposed conv
    (padding 1) that upsamples 2x bilinearly: per axis 1/4, 3/4, 3/4, 1/4, the
    fixed bilinear deconvolution PyramidBox's LFPN uses (its border row and
    column get only the 3/4 weight, as there)."""
    taps = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    return np.tile(np.outer(taps, taps)[None, None], (channels, 1, 1, 1))


class Upsample2x(nn.Layer):
    """2x upsampling of ``x`` cropped to the spatial size of ``like``:
    'nearest' (``upsample_to``) or 'bilinear' (a fixed, not learned, depthwise
    transposed conv with ``bilinear_kernel``). Both avoid ``F.interpolate``,
    whose size-from-tensor form the oneDNN CPU predictor cannot run."""

    def __init__(self, channels, mode='nearest'):
        super().__init__()
        if mode not in UPSAMPLES:
            raise ValueError('upsample must be one of {}, got {!r}'.format(UPSAMPLES, mode))
        self.mode = mode
        if mode == 'bilinear':
            self.register_buffer('kernel', paddle.to_tensor(bilinear_kernel(channels)))

    def forward(self, x, like):
        if self.mode == 'nearest':
            return upsample_to(x, like)
        up = F.conv2d_transpose(x, self.kernel, stride=2, padding=1, groups=self.kernel.shape[0])
        size = paddle.shape(like)
        return paddle.slice(up, axes=[2, 3], starts=[0, 0], ends=[size[2], size[3]])


class L2NormScale(nn.Layer):
    """ParseNet / S3FD normalisation: each location's channel vector scaled to
    unit L2 norm, then multiplied by a learnable per-channel scale (initialised
    to ``init_scale``), so a level's magnitude no longer depends on the maps
    that produced it."""

    def __init__(self, channels, init_scale, eps=1e-10):
        super().__init__()
        self.eps = eps
        self.scale = self.create_parameter(
            [channels], default_initializer=nn.initializer.Constant(float(init_scale)))

    def forward(self, x):
        norm = paddle.sqrt(paddle.sum(x * x, axis=1, keepdim=True) + self.eps)
        return x / norm * self.scale.reshape([1, -1, 1, 1])


class Lateral(nn.Layer):
    """1x1 projection of a backbone map to the neck width. With product fusion
    it is followed by ReLU, as PyramidBox's LFPN multiplies non-negative maps."""

    def __init__(self, in_channels, out_channels, fusion):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, 1)
        self.relu = fusion == 'product'

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class TopDownMerge(nn.Layer):
    """Merge an upsampled higher level into a lateral map.

    'sum' (FPN): ``up(higher) + lateral``. 'product' (PyramidBox LFPN):
    ``up(relu(conv1x1(higher))) * lateral``.
    """

    def __init__(self, channels, fusion, upsample='nearest'):
        super().__init__()
        self.fusion = fusion
        self.top = nn.Conv2D(channels, channels, 1) if fusion == 'product' else None
        self.up = Upsample2x(channels, upsample)

    def forward(self, higher, lateral):
        if self.top is not None:
            return self.up(F.relu(self.top(higher)), lateral) * lateral
        return self.up(higher, lateral) + lateral


class ExtraLevels(nn.Layer):
    """P6 = conv3x3/s2(x), P7 = conv3x3/s2(relu(P6)), as in RetinaNet."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.p6 = nn.Conv2D(in_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2D(out_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x):
        p6 = self.p6(x)
        return p6, self.p7(F.relu(p6))


def smoothing_convs(count, channels):
    return nn.LayerList([nn.Conv2D(channels, channels, 3, padding=1) for _ in range(count)])
