"""Dygraph inference: a model in eval mode applied to BGR images under one of
the test protocols (``protocols``), with the config's own pre-processing."""
import numpy as np
import paddle

from ppdet_hambox.core.workspace import build_component_list, create
from ppdet_hambox.evaluation.protocols import PROTOCOLS, filter_face_size, flip_boxes, scale_image

__all__ = ['Predictor', 'preprocess_steps', 'batch_steps', 'DEFAULT_PROTOCOL']

DEFAULT_PROTOCOL = 'vga'
# Reader steps the predictor replaces: it decodes the file and resizes the
# image itself, by the scale the protocol chooses.
REPLACED_STEPS = ('Decode', 'Resize')
# Batch steps about ground truth only: nothing to do at inference.
TRAINING_ONLY_STEPS = ('PadGT',)


def _step_name(item):
    return item if isinstance(item, str) else next(iter(item))


def preprocess_steps(cfg, reader='EvalReader'):
    """The ``sample_transforms`` items of ``cfg[reader]`` that run after the
    protocol's resize (normalisation, channel order, padding)."""
    section = cfg.get(reader) or {}
    items = section.get('sample_transforms') or []
    return [item for item in items if not _step_name(item).startswith(REPLACED_STEPS)]


def batch_steps(cfg, reader='EvalReader'):
    """The ``batch_transforms`` items of ``cfg[reader]`` that apply to images
    (e.g. padding to a stride), applied to a batch of one."""
    section = cfg.get(reader) or {}
    items = section.get('batch_transforms') or []
    return [item for item in items if _step_name(item) not in TRAINING_ONLY_STEPS]


class Predictor:
    """``detect(image)`` -> ``[N, 5]`` float32 (x1 y1 x2 y2 score, original pixels).

    ``model``: a built architecture (switched to eval mode here); ``cfg``: the
    loaded config (its ``TestProtocol`` section gives the protocol numbers,
    ``eval_protocol`` the default protocol, ``reader``'s sample transforms the
    pre-processing).
    """

    def __init__(self, model, cfg, protocol=None, reader='EvalReader'):
        self.model = model
        self.protocol = protocol or cfg.get('eval_protocol') or DEFAULT_PROTOCOL
        if self.protocol not in PROTOCOLS:
            raise ValueError('unknown test protocol {!r}; choose one of {}'.format(
                self.protocol, ', '.join(PROTOCOLS)))
        self.settings = create('TestProtocol', cfg)
        self.transforms = build_component_list(preprocess_steps(cfg, reader), cfg,
                                               '{}.sample_transforms'.format(reader))
        self.batch_transforms = build_component_list(batch_steps(cfg, reader), cfg,
                                                     '{}.batch_transforms'.format(reader))

    def prepare(self, image, scale):
        """A batch of one image (BGR uint8 ``[H, W, 3]``) resized by ``scale``."""
        height, width = image.shape[:2]
        resized, scale_factor = scale_image(image, scale)
        sample = {'image': resized, 'im_id': 0, 'im_file': '',
                  'im_shape': np.array(resized.shape[:2], np.float32),
                  'scale_factor': scale_factor, 'ori_shape': np.array([height, width], np.int64),
                  'gt_bbox': np.zeros((0, 4), np.float32), 'gt_ignore': np.zeros(0, bool)}
        for transform in self.transforms:
            sample = transform(sample)
        for transform in self.batch_transforms:
            sample, = transform([sample])
        chw = np.ascontiguousarray(sample['image'], dtype=np.float32)
        if chw.ndim != 3 or chw.shape[0] != 3:
            raise ValueError('the reader transforms must end with a [3, H, W] image (add Permute); '
                             'got shape {}'.format(chw.shape))
        return {'image': paddle.to_tensor(chw[None]),
                'im_shape': paddle.to_tensor(np.asarray(sample['im_shape'], np.float32)[None]),
                'scale_factor': paddle.to_tensor(np.asarray(sample['scale_factor'], np.float32)[None]),
                'im_id': paddle.to_tensor(np.zeros(1, np.int64))}

    @paddle.no_grad()
    def pass_boxes(self, source, scale_pass):
        """The network's ``bbox [N, 6]`` (class, score, x1, y1, x2, y2 in
        ``source``'s pixels) for one pass; ``source`` is already mirrored for
        a flipped pass."""
        batch = self.prepare(source, scale_pass.scale)
        scores, boxes = self.model.decoded(batch['image'])
        bbox, _ = self.model.post_process(scores, boxes, batch['im_shape'], batch['scale_factor'],
                                          score_threshold=scale_pass.score_threshold,
                                          nms_threshold=scale_pass.nms_threshold, keep_top_k=scale_pass.keep_top_k)
        return bbox.numpy().reshape(-1, 6)

    def run_pass(self, image, scale_pass):
        """Detections of one ``ScalePass``, in the (unflipped) image's pixels."""
        height, width = image.shape[:2]
        source = image[:, ::-1] if scale_pass.flip else image
        bbox = self.pass_boxes(np.ascontiguousarray(source), scale_pass)
        dets = np.concatenate([bbox[:, 2:6], bbox[:, 1:2]], axis=1).astype(np.float32)
        if scale_pass.flip:
            dets[:, :4] = flip_boxes(dets[:, :4], width)
        dets[:, [0, 2]] = np.clip(dets[:, [0, 2]], 0, width)
        dets[:, [1, 3]] = np.clip(dets[:, [1, 3]], 0, height)
        dets = dets[(dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])]
        return filter_face_size(dets, scale_pass.min_face, scale_pass.max_face, scale_pass.max_face_side)

    def detect(self, image, protocol=None):
        """All passes of the protocol on one BGR image, merged."""
        protocol = protocol or self.protocol
        was_training = self.model.training
        self.model.eval()
        try:
            passes = self.settings.passes(protocol, *image.shape[:2])
            return self.settings.merge(protocol, [self.run_pass(image, p) for p in passes])
        finally:
            if was_training:
                self.model.train()
