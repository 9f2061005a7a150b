"""The prediction head shared by all pyramid levels.

feature -> [SSH context] -> cls tower -> face logit (1 per location)
                         -> box tower -> 4 box deltas
Options (paper Table 4): ``num_convs`` 1 by default, 4 for the deep head (DH,
RetinaNet's towers, shared by the levels); ``use_ssh`` for the SSH context
module, one per level or one for all (``share_context``); ``use_pa`` for
PyramidBox's pyramid anchors: extra logits and deltas per location for the
context boxes (head, body) of ``pa_branches`` branches, computed in training
only so they are absent from eval and the exported graph.
"""
import math

import paddle
import paddle.nn as nn

from ppdet_hambox.core.schema import COUNT, NON_NEGATIVE, POSITIVE, Range
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.heads.ssh import SSHContext

__all__ = ['HAMBoxHead']


def _conv(in_ch, out_ch, std, bias=0.0):
    return nn.Conv2D(in_ch, out_ch, 3, padding=1,
                     weight_attr=paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, std)),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(bias)))


def _tower(in_ch, feat_ch, num_convs, std):
    layers = []
    for i in range(num_convs):
        layers += [_conv(in_ch if i == 0 else feat_ch, feat_ch, std), nn.ReLU()]
    return nn.Sequential(*layers)


def _flatten(x, per_location):
    """``[B, per_location, h, w]`` -> ``[B, h * w, per_location]`` (row-major)."""
    return x.transpose([0, 2, 3, 1]).reshape([0, -1, per_location])


def _context_modules(channels, num_levels, shared):
    """One ``SSHContext`` for all levels, or a ``LayerList`` of one per level."""
    if shared:
        return SSHContext(channels)
    return nn.LayerList([SSHContext(channels) for _ in range(num_levels)])


@register
class HAMBoxHead(nn.Layer):
    """Args:
        in_shape: ``ShapeSpec`` of the neck's levels (its ``out_shape``; set by
            the architecture, not by configs); all of one channel count.
        feat_channels: channels of the tower convs.
        num_convs: 3x3 conv + ReLU layers per tower (1 default, 4 = DH).
        use_ssh: put the SSH context module before the towers.
        share_context: one SSH module for every level (True) or one per
            level (False, as SSH, PyramidBox and RetinaFace build it).
        use_pa: add the pyramid-anchor branches (training only).
        pa_branches: number of pyramid-anchor context boxes (2: head, body).
        prior_prob: initial face probability of every anchor (focal-loss init).
        init_std: std of the normal initialisation of the convs.
    """
    __ranges__ = {
        'feat_channels': COUNT, 'num_convs': NON_NEGATIVE, 'pa_branches': COUNT,
        'prior_prob': Range(0.0, 1.0, open_low=True, open_high=True), 'init_std': POSITIVE
    }

    def __init__(self, in_shape, feat_channels=256, num_convs=1, use_ssh=False, share_context=False,
                 use_pa=False, pa_branches=2, prior_prob=0.01, init_std=0.01):
        super().__init__()
        in_channels = in_shape[0].channels
        if any(s.channels != in_channels for s in in_shape):
            raise ValueError('HAMBoxHead is shared by the levels and needs one channel count, got {}'.format(
                [s.channels for s in in_shape]))
        if num_convs < 0:
            raise ValueError('HAMBoxHead.num_convs must be >= 0, got {}'.format(num_convs))
        if not 0.0 < prior_prob < 1.0:
            raise ValueError('HAMBoxHead.prior_prob must be in (0, 1), got {}'.format(prior_prob))
        self.use_pa = use_pa
        self.pa_branches = pa_branches
        self.ssh = _context_modules(in_channels, len(in_shape), share_context) if use_ssh else None
        self.cls_tower = _tower(in_channels, feat_channels, num_convs, init_std)
        self.box_tower = _tower(in_channels, feat_channels, num_convs, init_std)
        tower_out = feat_channels if num_convs else in_channels
        prior_bias = -math.log((1.0 - prior_prob) / prior_prob)
        self.cls_pred = _conv(tower_out, 1, init_std, prior_bias)
        self.box_pred = _conv(tower_out, 4, init_std)
        if use_pa:
            self.pa_cls_pred = _conv(tower_out, pa_branches, init_std, prior_bias)
            self.pa_box_pred = _conv(tower_out, 4 * pa_branches, init_std)

    def forward(self, pyramid):
        """``[P2..P7]`` -> ``dict(cls_logits [B, A], box_deltas [B, A, 4])``, plus in
        training with PA ``aux = dict(cls_logits [B, A, P], box_deltas [B, A, P, 4])``."""
        cls_logits, box_deltas, pa_logits, pa_deltas = [], [], [], []
        with_pa = self.use_pa and self.training
        for level, feat in enumerate(pyramid):
            if isinstance(self.ssh, nn.LayerList):
                feat = self.ssh[level](feat)
            elif self.ssh is not None:
                feat = self.ssh(feat)
            cls_feat = self.cls_tower(feat)
            box_feat = self.box_tower(feat)
            cls_logits.append(_flatten(self.cls_pred(cls_feat), 1))
            box_deltas.append(_flatten(self.box_pred(box_feat), 4))
            if with_pa:
                pa_logits.append(_flatten(self.pa_cls_pred(cls_feat), self.pa_branches))
                pa_deltas.append(_flatten(self.pa_box_pred(box_feat), 4 * self.pa_branches))
        out = {'cls_logits': paddle.concat(cls_logits, axis=1).squeeze(-1),
               'box_deltas': paddle.concat(box_deltas, axis=1)}
        if with_pa:
            deltas = paddle.concat(pa_deltas, axis=1)
            out['aux'] = {'cls_logits': paddle.concat(pa_logits, axis=1),
                          'box_deltas': deltas.reshape([0, 0, self.pa_branches, 4])}
        return out
