"""LFPN (PyramidBox): a top-down pyramid that starts at C5, not at the top.

P5 = smooth(lat(C5)); P4 = smooth(merge(top-down 5, lat(C4))); ... down to P2.
P6 and P7 come from stride-2 3x3 convs on C5 (``extra_source='c5'``,
RetinaNet's choice) or on P5 (``'p5'``); they are never fused downward, so
the small-face levels P2..P5 see no features of the context-poor top levels.
"""
import paddle.nn as nn

from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.necks.common import (ExtraLevels, Lateral, TopDownMerge,
                                                 check_neck_args, smoothing_convs)

__all__ = ['LFPN']

EXTRA_SOURCES = ('c5', 'p5')


@register
class LFPN(nn.Layer):
    """Args:
        in_channels: channels of C2..C5 (the backbone's ``out_channels``).
        out_channels: channels of every output level.
        fusion: 'product' (PyramidBox) or 'sum' (FPN-style) top-down merge.
        extra_source: 'c5' or 'p5', the input of the P6/P7 convs.
    """

    def __init__(self, in_channels=(256, 512, 1024, 2048), out_channels=256, fusion='product',
                 extra_source='c5'):
        super().__init__()
        check_neck_args('LFPN', in_channels, fusion)
        if extra_source not in EXTRA_SOURCES:
            raise ValueError('LFPN.extra_source must be one of {}, got {!r}'.format(
                EXTRA_SOURCES, extra_source))
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.extra_source = extra_source
        self.laterals = nn.LayerList([Lateral(c, out_channels, fusion) for c in in_channels])
        self.merges = nn.LayerList([TopDownMerge(out_channels, fusion) for _ in range(3)])
        self.smooth = smoothing_convs(4, out_channels)
        extra_in = in_channels[-1] if extra_source == 'c5' else out_channels
        self.extra = ExtraLevels(extra_in, out_channels)
        self.strides = [4, 8, 16, 32, 64, 128]

    def forward(self, feats):
        """``[C2, C3, C4, C5]`` -> ``[P2, ..., P7]``."""
        lateral = [layer(c) for layer, c in zip(self.laterals, feats)]
        merged = [lateral[3]]
        for level in (2, 1, 0):
            merged.insert(0, self.merges[level](merged[0], lateral[level]))
        outs = [conv(m) for conv, m in zip(self.smooth, merged)]
        p6, p7 = self.extra(feats[3] if self.extra_source == 'c5' else outs[3])
        return outs + [p6, p7]
