"""The result of an anchor assigner for a batch, and the words for its anchors.

Every anchor of an image is exactly one of:

- a *step-one positive*: the first step (SMS) matched it to a face (label 1);
- a *second-step anchor*: DMS / NAMS gave it to a face their first step left
  short (label 1 too: those strategies train it as an ordinary positive);
- a *compensated anchor*: HAMBox's online mining gave it to an outer face
  because its decoded box reaches IoU > T with it (label 2, the paper's word);
- *ignored* (label -1): background whose decoded box already reaches the
  assigner's ``ignore_iou`` with a face (the ``F_i < 0.5`` rule of the
  paper's eq. 1); the loss decides whether to leave it out;
- *background* (label 0).
"""
from dataclasses import dataclass
from typing import Optional

import paddle

__all__ = ['Assignment', 'BACKGROUND', 'POSITIVE', 'COMPENSATED', 'IGNORED']

BACKGROUND = 0
POSITIVE = 1
COMPENSATED = 2
IGNORED = -1


@dataclass
class Assignment:
    """``labels`` int64 ``[B, A]`` (see the module docstring); ``gt_index``
    int64 ``[B, A]``, the face of a positive or compensated anchor, else -1;
    ``quality`` float32 ``[B, A]``, the IoU of the decoded box (the anchor
    itself when the assigner had no decoded boxes) with its face, the best
    IoU over faces for other anchors, 0 in an image without faces;
    ``second_step`` bool ``[B, A]`` marks the second-step anchors of DMS /
    NAMS, None for strategies without such a step; ``rounds`` the rounds the
    compensation solver ran (``matching.serial_compensate``, 0 without a
    second step), for benchmarks. No gradient."""

    labels: paddle.Tensor
    gt_index: paddle.Tensor
    quality: paddle.Tensor
    second_step: Optional[paddle.Tensor] = None
    rounds: int = 0

    @property
    def positive(self):
        """Anchors trained as faces: labels 1 and 2."""
        return self.labels > 0

    @property
    def step_one(self):
        if self.second_step is None:
            return self.labels == POSITIVE
        return (self.labels == POSITIVE) & ~self.second_step

    @property
    def compensated(self):
        return self.labels == COMPENSATED

    @property
    def ignored(self):
        return self.labels == IGNORED

    def tensors(self):
        """``{name: tensor}`` of the fields that are set."""
        fields = dict(labels=self.labels, gt_index=self.gt_index, quality=self.quality,
                      second_step=self.second_step)
        return {name: value for name, value in fields.items() if value is not None}
