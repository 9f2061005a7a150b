"""SSH context module (Najibi et al., ICCV 2017), without its detection convs.

Three parallel paths on the input, concatenated back to the input width:
a 3x3 conv (C/2 channels), two stacked 3x3 convs (C/4, a 5x5 receptive field)
and three stacked 3x3 convs (C/4, 7x7), the last two sharing their first conv.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ['SSHContext']


class SSHContext(nn.Layer):
    def __init__(self, channels):
        super().__init__()
        if channels % 4:
            raise ValueError('the SSH context module needs channels divisible by 4, got {}'.format(channels))
        half, quarter = channels // 2, channels // 4
        self.conv3x3 = nn.Conv2D(channels, half, 3, padding=1)
        self.context_reduce = nn.Conv2D(channels, quarter, 3, padding=1)
        self.conv5x5 = nn.Conv2D(quarter, quarter, 3, padding=1)
        self.conv7x7_a = nn.Conv2D(quarter, quarter, 3, padding=1)
        self.conv7x7_b = nn.Conv2D(quarter, quarter, 3, padding=1)

    def forward(self, x):
        reduced = F.relu(self.context_reduce(x))
        path5 = self.conv5x5(reduced)
        path7 = self.conv7x7_b(F.relu(self.conv7x7_a(reduced)))
        # ReLU per path (same result as after the concat): Paddle Inference's
        # oneDNN conv+concat+activation fusion fails on the latter pattern.
        return paddle.concat([F.relu(self.conv3x3(x)), F.relu(path5), F.relu(path7)], axis=1)
