"""The HAMBox detector: backbone -> neck -> head -> (assigner + loss | post-process).

Training (``model.train()``): the head's box deltas are decoded against the
anchors with gradients stopped, the assigner matches anchors to faces using
those decoded boxes (online anchor mining), and the loss compares the head's
outputs with the assignment. The model's one box coder decodes here, encodes
the losses' regression targets and decodes at inference, so its ``weights``
cannot differ between training and inference. Evaluation (``model.eval()``): scores and
decoded boxes go through the post-process inside the graph, so
``inference_model()`` exports as is.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.static import InputSpec

from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import register

__all__ = ['HAMBox', 'HAMBoxInference']


@register
class HAMBox(nn.Layer):
    """Args (all registered components, see docs/architecture.md):
        backbone, neck, head, anchor_generator, box_coder, assigner, loss,
        post_process; ``pa_loss`` (optional) supervises the head's
        pyramid-anchor branches and needs ``HAMBoxHead.use_pa: true``.
        The losses get ``box_coder`` at each call; they have none of their own.
    """
    __inject__ = ['backbone', 'neck', 'head', 'anchor_generator', 'box_coder', 'assigner', 'loss',
                  'post_process', 'pa_loss']
    # the neck is built for the backbone's out_shape, the head for the neck's
    __in_shape_from__ = {'neck': 'backbone', 'head': 'neck'}

    def __init__(self, backbone, neck, head, anchor_generator, box_coder, assigner, loss, post_process,
                 pa_loss=None):
        super().__init__()
        _check_wiring(neck, head, anchor_generator, pa_loss)
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = box_coder
        self.assigner = assigner
        self.loss = loss
        self.post_process = post_process
        self.pa_loss = pa_loss

    def forward(self, batch):
        """Training: ``(losses, stats)`` (see ``get_loss``). Eval:
        ``dict(bbox [N, 6], bbox_num [B])``."""
        if self.training:
            return self.get_loss(batch)
        bbox, bbox_num = self.predict(batch['image'], batch['im_shape'], batch['scale_factor'])
        return {'bbox': bbox, 'bbox_num': bbox_num}

    def run_head(self, image):
        """Head outputs (see ``HAMBoxHead.forward``) and the ``[A, 4]`` anchors."""
        pyramid = self.neck(self.backbone(image))
        out = self.head(pyramid)
        return out, self.anchor_generator(_spatial_shapes(pyramid))

    def get_loss(self, batch):
        """``(losses, stats)``: ``losses`` the scalar loss terms (``loss`` the
        total to minimise, ``loss_cls``, ``loss_box``, ``loss_pa`` with PA);
        ``stats`` the loss's statistics, ``{name: (sum, count)}`` without
        gradient (``HAMBoxLoss.statistics``)."""
        out, anchors = self.run_head(batch['image'])
        gt_bbox, gt_mask = batch['gt_bbox'], batch['gt_mask']
        pred_boxes = self.box_coder.decode(anchors, out['box_deltas'].detach())
        assign = self.assigner(anchors, pred_boxes, gt_bbox, gt_mask)
        losses, stats = self.loss(out['cls_logits'], out['box_deltas'], anchors, gt_bbox, assign, self.box_coder)
        losses = dict(losses)
        if self.pa_loss is not None:
            loss_pa = self.pa_loss(out['aux'], anchors, gt_bbox, gt_mask, self.box_coder)
            losses['loss_pa'] = loss_pa
            losses['loss'] = losses['loss'] + loss_pa
        return losses, stats

    def decoded(self, image):
        """Per-anchor face probabilities ``[B, A]`` and boxes ``[B, A, 4]``
        (network-input pixels), before any thresholding."""
        out, anchors = self.run_head(image)
        return F.sigmoid(out['cls_logits']), self.box_coder.decode(anchors, out['box_deltas'])

    def predict(self, image, im_shape, scale_factor):
        """``(bbox [N, 6], bbox_num int32 [B])`` in original-image pixels."""
        scores, boxes = self.decoded(image)
        return self.post_process(scores, boxes, im_shape, scale_factor)

    @paddle.no_grad()
    def head_outputs(self, batch):
        """``dict(scores [B, A], boxes [B, A, 4])`` without NMS, for analysis tools
        (call in eval mode)."""
        scores, boxes = self.decoded(batch['image'])
        return {'scores': scores, 'boxes': boxes}

    def inference_model(self):
        """A layer taking ``(image, im_shape, scale_factor)`` and returning
        ``(bbox, bbox_num)``: what ``paddle.jit.to_static`` / ``jit.save`` need,
        with ``HAMBoxInference.input_spec()``. Shares this model's parameters."""
        return HAMBoxInference(self)


class HAMBoxInference(nn.Layer):
    """The eval graph of a ``HAMBox`` on plain tensors (for export)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @staticmethod
    def input_spec():
        return [InputSpec([None, 3, None, None], 'float32', 'image'),
                InputSpec([None, 2], 'float32', 'im_shape'),
                InputSpec([None, 2], 'float32', 'scale_factor')]

    def forward(self, image, im_shape, scale_factor):
        return self.model.predict(image, im_shape, scale_factor)


def _spatial_shapes(pyramid):
    """``(h, w)`` of each level: ints in dygraph, tensors in a static graph
    (where sizes may be unknown until run time)."""
    if paddle.in_dynamic_mode():
        return [tuple(p.shape[2:]) for p in pyramid]
    return [(paddle.shape(p)[2], paddle.shape(p)[3]) for p in pyramid]


def _check_wiring(neck, head, anchor_generator, pa_loss):
    """Settings that must agree between sections (channel counts need no
    check: the neck and head are built for the shapes of the part before)."""
    strides = [s.stride for s in neck.out_shape]
    if strides != list(anchor_generator.strides):
        raise ConfigError('{} produces levels of strides {} but AnchorGenerator.strides is {}'.format(
            type(neck).__name__, strides, list(anchor_generator.strides)))
    use_pa = getattr(head, 'use_pa', False)
    if use_pa and pa_loss is None:
        raise ConfigError('HAMBoxHead.use_pa is true but HAMBox.pa_loss is not set '
                          '(set HAMBox.pa_loss: PyramidAnchorLoss)')
    if pa_loss is not None and not use_pa:
        raise ConfigError('HAMBox.pa_loss is set but HAMBoxHead.use_pa is false')
    if pa_loss is not None and pa_loss.num_branches != head.pa_branches:
        raise ConfigError('PyramidAnchorLoss has {} context scales but HAMBoxHead.pa_branches is {}'.format(
            pa_loss.num_branches, head.pa_branches))
