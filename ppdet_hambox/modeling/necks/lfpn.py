"""LFPN (PyramidBox): a top-down pyramid that starts at C5, not at the top.

P5 = smooth(lat(C5)); P4 = smooth(merge(top-down 5, lat(C4))); ... down to P2,
where each merge takes the previous *fused* map (before smoothing). P6 and P7
come from stride-2 3x3 convs on C5 (``extra_source='c5'``, RetinaNet's
choice) or on P5 (``'p5'``); they are never fused downward, so the
small-face levels P2..P5 see no features of the context-poor top levels.

With product fusion every merge multiplies the previous fused map by the
next lateral, so magnitudes compound down the pyramid (measured from scratch
at initialisation: output std about 2 on P5..P7, 14 on P4, 111 on P3, 1,030
on P2; docs/detector.md). PyramidBox therefore L2-normalises its fused levels
over channels and multiplies them by a learnable per-channel scale,
initialised as in S3FD for strides 4, 8, 16: 10, 8, 5 (``l2_norm_scales``,
applied to P2, P3, P4 after the optional smoothing conv; more scales
normalise more levels, up to P7). It also upsamples bilinearly
(``upsample='bilinear'``) and has no smoothing conv after a fusion
(``smooth=False``).
"""
import paddle.nn as nn

from ppdet_hambox.core.schema import COUNT
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.necks.common import (UPSAMPLES, ExtraLevels, L2NormScale, Lateral, TopDownMerge,
                                                 check_neck_args, pyramid_out_shape, smoothing_convs)

__all__ = ['LFPN']

EXTRA_SOURCES = ('c5', 'p5')
NUM_LEVELS = 6


@register
class LFPN(nn.Layer):
    """Args:
        in_shape: ``ShapeSpec`` of C2..C5 (the backbone's ``out_shape``; set
            by the architecture, not by configs).
        out_channels: channels of every output level.
        fusion: 'product' (PyramidBox) or 'sum' (FPN-style) top-down merge.
        extra_source: 'c5' or 'p5', the input of the P6/P7 convs.
        upsample: 'nearest' or 'bilinear' (PyramidBox) 2x upsampling in the merges.
        smooth: a 3x3 conv on P2..P5 after the merges (False: PyramidBox).
        l2_norm_scales: None, or the initial scales of an L2 norm with a
            learnable per-channel scale on P2, P3, ... in order: one number
            per normalised level, 1 to 6 of them (PyramidBox / S3FD: 10, 8, 5
            on the fused levels P2, P3, P4).
    """
    __ranges__ = {'out_channels': COUNT}

    def __init__(self, in_shape, out_channels=256, fusion='product', extra_source='c5', upsample='nearest',
                 smooth=True, l2_norm_scales=None):
        super().__init__()
        check_neck_args('LFPN', in_shape, fusion)
        if extra_source not in EXTRA_SOURCES:
            raise ValueError('LFPN.extra_source must be one of {}, got {!r}'.format(
                EXTRA_SOURCES, extra_source))
        if upsample not in UPSAMPLES:
            raise ValueError('LFPN.upsample must be one of {}, got {!r}'.format(UPSAMPLES, upsample))
        if l2_norm_scales is not None and not (
                1 <= len(l2_norm_scales) <= NUM_LEVELS and min(l2_norm_scales) > 0):
            raise ValueError('LFPN.l2_norm_scales must be null or 1 to {} positive initial scales for '
                             'P2, P3, ... in order, got {!r}'.format(NUM_LEVELS, l2_norm_scales))
        in_channels = [s.channels for s in in_shape]
        self.out_shape = pyramid_out_shape(in_shape, out_channels)
        self.extra_source = extra_source
        self.laterals = nn.LayerList([Lateral(c, out_channels, fusion) for c in in_channels])
        self.merges = nn.LayerList([TopDownMerge(out_channels, fusion, upsample) for _ in range(3)])
        self.smooth = smoothing_convs(4, out_channels) if smooth else None
        self.norms = (nn.LayerList([L2NormScale(out_channels, s) for s in l2_norm_scales])
                      if l2_norm_scales is not None else None)
        extra_in = in_channels[-1] if extra_source == 'c5' else out_channels
        self.extra = ExtraLevels(extra_in, out_channels)

    def forward(self, feats):
        """``[C2, C3, C4, C5]`` -> ``[P2, ..., P7]``."""
        lateral = [layer(c) for layer, c in zip(self.laterals, feats)]
        merged = [lateral[3]]
        for level in (2, 1, 0):
            merged.insert(0, self.merges[level](merged[0], lateral[level]))
        outs = [conv(m) for conv, m in zip(self.smooth, merged)] if self.smooth is not None else merged
        # P6/P7 from P5 before any norm: the norm only rescales what the head sees
        outs += self.extra(feats[3] if self.extra_source == 'c5' else outs[3])
        if self.norms is not None:
            outs = [norm(x) for norm, x in zip(self.norms, outs)] + outs[len(self.norms):]
        return outs
