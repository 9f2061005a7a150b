"""Pieces shared by the necks: lateral projections, one top-down merge step,
and the extra stride-2 levels P6/P7."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

FUSIONS = ('product', 'sum')


def check_neck_args(name, in_channels, fusion):
    if len(in_channels) != 4:
        raise ValueError('{}.in_channels must list the channels of C2..C5 (4 ints), got {!r}'.format(
            name, in_channels))
    if fusion not in FUSIONS:
        raise ValueError('{}.fusion must be one of {}, got {!r}'.format(name, FUSIONS, fusion))


def upsample_to(x, like):
    """Nearest 2x upsampling of ``x`` cropped to the spatial size of ``like``
    (a lower level has twice the higher one's size, or one less): lower cell
    ``i`` takes higher cell ``i // 2``. Built from tile + slice rather than
    ``F.interpolate``, whose size-from-tensor form the oneDNN CPU predictor
    cannot run."""
    up = x.unsqueeze(3).unsqueeze(5).tile([1, 1, 1, 2, 1, 2]).flatten(4, 5).flatten(2, 3)
    size = paddle.shape(like)
    return paddle.slice(up, axes=[2, 3], starts=[0, 0], ends=[size[2], size[3]])


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

    def __init__(self, channels, fusion):
        super().__init__()
        self.fusion = fusion
        self.top = nn.Conv2D(channels, channels, 1) if fusion == 'product' else None

    def forward(self, higher, lateral):
        if self.top is not None:
            return upsample_to(F.relu(self.top(higher)), lateral) * lateral
        return upsample_to(higher, lateral) + lateral


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
