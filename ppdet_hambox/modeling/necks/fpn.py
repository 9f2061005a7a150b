"""FPN with the top-down path starting at the top level (P7).

P6/P7 come from stride-2 3x3 convs on C5; the top-down merge then runs
P7 -> P6 -> lat(C5) -> ... -> lat(C2), so every level, P2 included, sees the
top levels' features (the difference to LFPN). Merges are sums; 3x3 convs
smooth P2..P6.
"""
import paddle.nn as nn

from ppdet_hambox.core.schema import COUNT
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.necks.common import (ExtraLevels, Lateral, TopDownMerge, check_neck_args,
                                                 pyramid_out_shape, smoothing_convs)

__all__ = ['FPN']


@register
class FPN(nn.Layer):
    """Args:
        in_shape: ``ShapeSpec`` of C2..C5 (the backbone's ``out_shape``; set
            by the architecture, not by configs).
        out_channels: channels of every output level.
    """
    __ranges__ = {'out_channels': COUNT}

    def __init__(self, in_shape, out_channels=256):
        super().__init__()
        check_neck_args('FPN', in_shape, 'sum')
        in_channels = [s.channels for s in in_shape]
        self.out_shape = pyramid_out_shape(in_shape, out_channels)
        self.laterals = nn.LayerList([Lateral(c, out_channels, 'sum') for c in in_channels])
        self.extra = ExtraLevels(in_channels[-1], out_channels)
        self.merges = nn.LayerList([TopDownMerge(out_channels, 'sum') for _ in range(5)])
        self.smooth = smoothing_convs(5, out_channels)

    def forward(self, feats):
        """``[C2, C3, C4, C5]`` -> ``[P2, ..., P7]``."""
        p6, p7 = self.extra(feats[3])
        inputs = [layer(c) for layer, c in zip(self.laterals, feats)] + [p6]
        merged = [p7]
        for level in range(4, -1, -1):
            merged.insert(0, self.merges[level](merged[0], inputs[level]))
        return [conv(m) for conv, m in zip(self.smooth, merged[:5])] + [merged[5]]
