"""ResNet-18/34/50/101 returning C2..C5 (strides 4, 8, 16, 32).

State names follow ``paddle.vision.models.resnet`` so its ImageNet weights
(``resnet50.pdparams`` etc., saved with ``paddle.save(model.state_dict())``)
load unchanged: ``conv1.weight``, ``bn1.{weight,bias,_mean,_variance}``,
``layer{1..4}.{block}.conv{1,2[,3]}.weight``, ``layer{1..4}.{block}.bn{1,2[,3]}.*``
and ``layer{1..4}.0.downsample.{0,1}.*``; the file's ``fc.*`` is ignored.
Bottleneck blocks stride in the 3x3 conv (ResNet v1.5), as paddle.vision does.
"""
import logging

import paddle.nn as nn

from ppdet_hambox.core.schema import COUNT, POSITIVE, Range
from ppdet_hambox.core.workspace import register
from ppdet_hambox.modeling.backbones.norm import NORM_TYPES, build_norm
from ppdet_hambox.modeling.shape_spec import ShapeSpec
from ppdet_hambox.utils.weights import WeightsError, load_weights, read_state_dict

logger = logging.getLogger(__name__)

__all__ = ['ResNet']

# depth -> (block kind, blocks per stage)
ARCHITECTURES = {
    18: ('basic', [2, 2, 2, 2]),
    34: ('basic', [3, 4, 6, 3]),
    50: ('bottleneck', [3, 4, 6, 3]),
    101: ('bottleneck', [3, 4, 23, 3]),
}
STEM_CHANNELS = 64
STAGE_WIDTHS = [64, 128, 256, 512]
STAGE_STRIDES = [4, 8, 16, 32]


def _conv(in_ch, out_ch, kernel, stride=1):
    return nn.Conv2D(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias_attr=False)


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, in_ch, width, stride, norm):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv(in_ch, width, 3, stride)
        self.bn1 = norm(width)
        self.conv2 = _conv(width, out_ch, 3)
        self.bn2 = norm(out_ch)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(in_ch, out_ch, stride, norm)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class BottleneckBlock(nn.Layer):
    expansion = 4

    def __init__(self, in_ch, width, stride, norm):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv(in_ch, width, 1)
        self.bn1 = norm(width)
        self.conv2 = _conv(width, width, 3, stride)
        self.bn2 = norm(width)
        self.conv3 = _conv(width, out_ch, 1)
        self.bn3 = norm(out_ch)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(in_ch, out_ch, stride, norm)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _shortcut(in_ch, out_ch, stride, norm):
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(_conv(in_ch, out_ch, 1, stride), norm(out_ch))


BLOCKS = {'basic': BasicBlock, 'bottleneck': BottleneckBlock}


@register
class ResNet(nn.Layer):
    """ResNet backbone.

    Args:
        depth: 18, 34, 50 or 101.
        width_mult: scales every channel count (0.25 gives a CPU-sized net;
            pretrained ImageNet weights only fit 1.0).
        freeze_at: -1 trains everything; 0 freezes the stem (conv1, bn1);
            k in 1..4 freezes the stem and stages layer1..layer{k}
            (C2..C{k+1}). Frozen parts get no gradients and use frozen BN.
        norm_type: 'bn', 'frozen_bn' or 'sync_bn' for the trainable stages.
        pretrained: local path of a ``.pdparams`` state dict (paddle.vision
            names, see the module docstring), or None to start from scratch.
            Nothing is downloaded.

    ``out_shape``: ``ShapeSpec`` (channels, stride) of C2..C5.
    """
    __ranges__ = {'depth': COUNT, 'width_mult': POSITIVE, 'freeze_at': Range(-1, 4)}

    def __init__(self, depth=50, width_mult=1.0, freeze_at=-1, norm_type='bn', pretrained=None):
        super().__init__()
        if depth not in ARCHITECTURES:
            raise ValueError('ResNet.depth must be one of {}, got {!r}'.format(sorted(ARCHITECTURES), depth))
        if norm_type not in NORM_TYPES:
            raise ValueError('ResNet.norm_type must be one of {}, got {!r}'.format(NORM_TYPES, norm_type))
        if not -1 <= freeze_at <= 4:
            raise ValueError('ResNet.freeze_at must be in -1..4, got {!r}'.format(freeze_at))
        if width_mult <= 0:
            raise ValueError('ResNet.width_mult must be positive, got {!r}'.format(width_mult))
        self.depth = depth
        self.width_mult = width_mult
        self.freeze_at = freeze_at
        kind, counts = ARCHITECTURES[depth]
        block = BLOCKS[kind]

        def norm_for(stage):
            frozen_type = 'frozen_bn' if stage <= freeze_at else norm_type
            return lambda channels: build_norm(frozen_type, channels)

        stem_ch = _scaled(STEM_CHANNELS, width_mult)
        self.conv1 = nn.Conv2D(3, stem_ch, 7, stride=2, padding=3, bias_attr=False)
        self.bn1 = norm_for(0)(stem_ch)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

        in_ch = stem_ch
        out_channels = []
        for index, (count, base_width) in enumerate(zip(counts, STAGE_WIDTHS)):
            width = _scaled(base_width, width_mult)
            norm = norm_for(index + 1)
            blocks = []
            for i in range(count):
                stride = 2 if (i == 0 and index > 0) else 1
                blocks.append(block(in_ch, width, stride, norm))
                in_ch = width * block.expansion
            self.add_sublayer('layer{}'.format(index + 1), nn.Sequential(*blocks))
            out_channels.append(in_ch)
        # what the neck is built for (core/workspace.py, ``__in_shape_from__``)
        self.out_shape = [ShapeSpec(c, s) for c, s in zip(out_channels, STAGE_STRIDES)]

        if pretrained:
            self.load_pretrained(pretrained)
        self._freeze()

    def _frozen_layers(self):
        if self.freeze_at < 0:
            return []
        return [self.conv1, self.bn1] + [getattr(self, 'layer{}'.format(k)) for k in range(1, self.freeze_at + 1)]

    def _freeze(self):
        for layer in self._frozen_layers():
            for param in layer.parameters():
                param.stop_gradient = True

    def load_pretrained(self, path):
        """Load ImageNet weights from a local file; shape mismatches are an error."""
        try:
            summary = load_weights(self, path)
        except WeightsError:
            self._raise_on_mismatch(path, _shape_mismatches(self, read_state_dict(path)))
            raise
        self._raise_on_mismatch(path, summary['mismatched'])
        if summary['missing']:
            logger.warning('pretrained weights %s lack %d ResNet tensors (left at their initial '
                           'values), e.g. %s', path, len(summary['missing']),
                           ', '.join(summary['missing'][:5]))
        if summary['unexpected']:
            logger.info('pretrained weights %s: %d keys not used by the backbone, e.g. %s', path,
                        len(summary['unexpected']), ', '.join(summary['unexpected'][:5]))
        return summary

    def _raise_on_mismatch(self, path, mismatched):
        if mismatched:
            raise WeightsError('pretrained weights {} do not fit ResNet(depth={}, width_mult={}): {} '
                               'shape mismatches, e.g. {}'.format(
                                   path, self.depth, self.width_mult, len(mismatched),
                                   '; '.join(sorted(mismatched)[:3])))

    def forward(self, image):
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


def _scaled(channels, width_mult):
    return max(1, int(round(channels * width_mult)))


def _shape_mismatches(layer, state):
    own = layer.state_dict()
    return ['{}: file {} vs model {}'.format(k, list(v.shape), list(own[k].shape))
            for k, v in state.items() if k in own and list(v.shape) != list(own[k].shape)]
