"""Normalisation layers for the backbone: trainable, frozen or synchronised BN.

All three keep Paddle's BatchNorm state names (``weight``, ``bias``,
``_mean``, ``_variance``), so ImageNet weights load into any of them.
"""
import logging

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

logger = logging.getLogger(__name__)

NORM_TYPES = ('bn', 'frozen_bn', 'sync_bn')


class FrozenBatchNorm2D(nn.Layer):
    """BatchNorm with fixed statistics and affine terms: nothing trains, the
    running statistics never move, in train and eval mode alike. The four
    tensors are persistable buffers, so they are saved but are not parameters."""

    def __init__(self, num_channels, epsilon=1e-5):
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer('weight', paddle.ones([num_channels]))
        self.register_buffer('bias', paddle.zeros([num_channels]))
        self.register_buffer('_mean', paddle.zeros([num_channels]))
        self.register_buffer('_variance', paddle.ones([num_channels]))

    def forward(self, x):
        return F.batch_norm(x, self._mean, self._variance, self.weight, self.bias,
                            training=False, epsilon=self.epsilon)


def _on_gpu():
    return paddle.device.get_device().startswith('gpu')


def build_norm(norm_type, num_channels):
    """A 2-D normalisation layer of ``norm_type`` (one of ``NORM_TYPES``).

    ``sync_bn`` needs a GPU (Paddle has no CPU kernel for it); elsewhere it
    falls back to plain BN, which is the same thing on a single process.
    """
    if norm_type == 'bn':
        return nn.BatchNorm2D(num_channels)
    if norm_type == 'frozen_bn':
        return FrozenBatchNorm2D(num_channels)
    if norm_type == 'sync_bn':
        if _on_gpu():
            return nn.SyncBatchNorm(num_channels)
        logger.debug('sync_bn requested on %s: using BatchNorm2D', paddle.device.get_device())
        return nn.BatchNorm2D(num_channels)
    raise ValueError('norm_type must be one of {}, got {!r}'.format(NORM_TYPES, norm_type))
