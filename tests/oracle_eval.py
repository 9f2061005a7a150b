"""An oracle for the evaluation path: a tiny WIDER FACE val set of drawn faces
and a registered stand-in detector, ``OracleDetector``, whose head puts the
ground-truth boxes (with known scores) on the real anchors.

The oracle sees only the network input (the predictor calls ``decoded`` and
then the model's post-process). It finds the unpadded image in it (padding is
exactly 0), recognises the image by its aspect ratio (each test image has its
own) and whether it is mirrored by its background (dark on the left, bright
on the right). It then
encodes each face, in network-input pixels, on the anchor of highest IoU with
the real ``BoxCoder``; every other anchor scores ~0. Decoding, clipping, NMS
and the division by ``scale_factor`` are the real post-process. So whatever
leaves the predictor must be exactly the ground truth: any convention error
on the way (scale, flip, x/y order, xywh vs corners) moves a box.

The table of faces is this file's own (``FACES``), not read back through the
code under test.
"""
import json
import os

import cv2
import numpy as np
import paddle

from ppdet_hambox.core.workspace import register
from widerface_testdata import write_ground_truth

# (event, name, height, width, faces x1 y1 x2 y2 integers). Aspect ratios
# differ by more than 10 % between images; faces are apart by more than the
# largest anchor stride they use and span < 30 px, 30-100 px and > 100 px
# (the multi-scale windows); some touch the image border (x1 = 0,
# x2 = width, y1 = 0), where clipping acts.
FACES = [
    ('0--Parade', 'oracle_a', 300, 400, [(0, 30, 16, 48), (80, 40, 130, 100), (200, 60, 330, 200)]),
    ('0--Parade', 'oracle_b', 360, 270, [(10, 12, 22, 26), (60, 200, 95, 240), (150, 20, 270, 150)]),
    ('1--Handshaking', 'oracle_c', 240, 360, [(30, 150, 44, 166), (120, 30, 180, 96), (250, 100, 270, 124)]),
    ('1--Handshaking', 'oracle_d', 420, 460, [(40, 0, 200, 180), (300, 300, 340, 345), (420, 60, 445, 90)]),
]
# Faces counted per setting (1-based, as in the .mat files): easy drops the
# faces under 20 px, medium those under 16, so detections of ignored faces must not count as false.
COUNTED_MIN_SIDE = {'easy': 20, 'medium': 16, 'hard': 0}
# Face k of an image is drawn in FACE_COLOURS[k] (BGR, far from any grey of
# the background); ColourOracle scores it COLOUR_SCORES[k].
FACE_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
COLOUR_SCORES = [0.9, 0.6, 0.35]


def oracle_score(image_index, face_index):
    """A known, distinct score per face in (0.3, 0.95)."""
    return 0.3 + 0.05 * ((image_index * 5 + face_index * 3) % 13)


def gt_rows():
    """``[(event, name, boxes [N, 4] x1 y1 x2 y2 float, scores [N])]``."""
    return [(event, name, np.array(faces, np.float64),
             np.array([oracle_score(i, j) for j in range(len(faces))]))
            for i, (event, name, _, _, faces) in enumerate(FACES)]


def draw_image(height, width, faces):
    """A horizontal dark-to-bright grey background (tells the oracle a
    mirrored image) with face k a rectangle filled with ``FACE_COLOURS[k]``."""
    ramp = np.linspace(20, 235, width, dtype=np.float32)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)
    for colour, (x1, y1, x2, y2) in zip(FACE_COLOURS, faces):
        image[y1:y2, x1:x2] = colour
    return image


def write_dataset(root):
    """``root/images/<event>/<name>.jpg`` (PNG bytes: lossless, and readers
    go by content, not by name), ``root/gt`` (the four val .mat
    files) and ``root/oracle.json`` (what the oracle answers per image size).
    Returns ``root``."""
    root = str(root)
    images, table = [], {}
    for i, (event, name, height, width, faces) in enumerate(FACES):
        folder = os.path.join(root, 'images', event)
        os.makedirs(folder, exist_ok=True)
        png = cv2.imencode('.png', draw_image(height, width, faces))[1]
        with open(os.path.join(folder, name + '.jpg'), 'wb') as f:
            f.write(png.tobytes())
        boxes = np.array(faces, np.int64)
        images.append((event, name, np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)))
        table['{}x{}'.format(height, width)] = [list(f) + [oracle_score(i, j)] for j, f in enumerate(faces)]
    counted = {}
    for setting, min_side in COUNTED_MIN_SIDE.items():
        counted[setting] = [[j + 1 for j, (x1, y1, x2, y2) in enumerate(faces) if max(x2 - x1, y2 - y1) >= min_side]
                            for _, _, _, _, faces in FACES]
    write_ground_truth(os.path.join(root, 'gt'), images, counted)
    with open(os.path.join(root, 'oracle.json'), 'w') as f:
        json.dump(table, f)
    return root


def eval_overrides(root):
    """Config overrides pointing the evaluation at the oracle dataset and model."""
    root = str(root)
    return {'architecture': 'OracleDetector',
            'OracleDetector': {'table': os.path.join(root, 'oracle.json')},
            'EvalDataset': {'dataset_dir': root, 'image_dir': 'images', 'anno_path': 'gt/wider_face_val.mat'},
            'wider_gt_dir': os.path.join(root, 'gt')}


@register
class OracleDetector(paddle.nn.Layer):
    """Eval-mode stand-in for ``HAMBox``: same inputs and outputs, ground truth
    from ``table`` (see the module docstring), each box moved right by
    ``shift`` times its width (0: exactly the ground truth)."""
    __inject__ = ['anchor_generator', 'box_coder', 'post_process']

    def __init__(self, anchor_generator='AnchorGenerator', box_coder='BoxCoder',
                 post_process='HAMBoxPostProcess', table='', shift=0.0):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.box_coder = box_coder
        self.post_process = post_process
        with open(table) as f:
            self.table = {k: np.array(v, np.float64) for k, v in json.load(f).items()}
        self.shift = shift
        self.flips_seen = []

    def forward(self, batch):
        bbox, bbox_num = self.predict(batch['image'], batch['im_shape'], batch['scale_factor'])
        return {'bbox': bbox, 'bbox_num': bbox_num}

    def predict(self, image, im_shape, scale_factor):
        scores, boxes = self.decoded(image)
        return self.post_process(scores, boxes, im_shape, scale_factor)

    def decoded(self, image):
        """Per-anchor probabilities ``[1, A]`` and boxes ``[1, A, 4]`` (network
        input pixels), like ``HAMBox.decoded``."""
        if image.shape[0] != 1:
            raise ValueError('the oracle takes one image per batch')
        height, width = image.shape[2:]
        pixels = image.numpy()[0]
        # Padding is exactly 0 in every channel; a normalised uint8 pixel never is.
        rows, cols = np.nonzero((pixels != 0).any(axis=0))
        net_h, net_w = rows.max() + 1, cols.max() + 1
        ori_h, ori_w, faces = self._lookup(net_h, net_w)
        sy, sx = net_h / ori_h, net_w / ori_w
        column_mean = pixels[:, :net_h, :net_w].mean(axis=(0, 1))
        third = max(1, net_w // 3)
        flipped = bool(column_mean[:third].mean() > column_mean[-third:].mean())
        self.flips_seen.append(flipped)
        boxes = faces[:, :4] + self.shift * (faces[:, 2:3] - faces[:, 0:1]) * np.array([1, 0, 1, 0])
        boxes = boxes * np.array([sx, sy, sx, sy])
        if flipped:
            boxes[:, [0, 2]] = net_w - boxes[:, [2, 0]]
        shapes = [(-(-height // s), -(-width // s)) for s in self.anchor_generator.strides]
        anchors = self.anchor_generator(shapes)
        best = _best_anchor(anchors.numpy().astype(np.float64), boxes)
        logits = np.full(anchors.shape[0], -30.0, np.float32)
        logits[best] = np.log(faces[:, 4] / (1 - faces[:, 4]))
        target = anchors.numpy().copy()
        target[best] = boxes
        deltas = self.box_coder.encode(anchors, paddle.to_tensor(target.astype(np.float32)))
        scores = paddle.nn.functional.sigmoid(paddle.to_tensor(logits))[None]
        return scores, self.box_coder.decode(anchors, deltas.reshape([1, -1, 4]))

    def _lookup(self, net_h, net_w):
        """The table image whose aspect ratio the network input has."""
        sizes = np.array([[int(v) for v in key.split('x')] for key in self.table], np.float64)
        error = np.abs(np.log((net_h / net_w) / (sizes[:, 0] / sizes[:, 1])))
        index = int(error.argmin())
        if error[index] > 0.02:
            raise ValueError('no oracle image has the aspect ratio of a {}x{} input'.format(net_h, net_w))
        key = list(self.table)[index]
        return sizes[index, 0], sizes[index, 1], self.table[key]


def _best_anchor(anchors, boxes):
    lt = np.maximum(anchors[None, :, :2], boxes[:, None, :2])
    rb = np.minimum(anchors[None, :, 2:], boxes[:, None, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(anchors[:, 2:] - anchors[:, :2], axis=1)
    area_b = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    best = (inter / (area_a[None] + area_b[:, None] - inter)).argmax(axis=1)
    if len(set(best.tolist())) != len(best):
        raise ValueError('two oracle faces share an anchor: move them apart')
    return best


@register
class ColourOracle(paddle.nn.Layer):
    """An exportable oracle: in the graph, each face is the extent of the
    pixels within ``tolerance`` of ``FACE_COLOURS[k]`` (BGR) and scores
    ``COLOUR_SCORES[k]``; boxes are divided by ``scale_factor`` as the real
    post-process does. ``mean``/``std`` undo the config's RGB normalisation.
    Faces it does not see come out empty (x2 < x1), which the predictor drops."""

    def __init__(self, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], tolerance=60.0):
        super().__init__()
        rgb = np.array(FACE_COLOURS, np.float32)[:, ::-1]
        self.colours = paddle.to_tensor(rgb.reshape(-1, 3, 1, 1))
        self.scores = paddle.to_tensor(np.array(COLOUR_SCORES, np.float32))
        self.mean = paddle.to_tensor(np.array(mean, np.float32).reshape(1, 3, 1, 1))
        self.std = paddle.to_tensor(np.array(std, np.float32).reshape(1, 3, 1, 1))
        self.tolerance = float(tolerance)

    def forward(self, image, im_shape, scale_factor):
        pixels = (image * self.std + self.mean) * 255.0
        mask = (paddle.abs(pixels - self.colours).max(axis=1) < self.tolerance).astype('float32')
        cols, rows = mask.max(axis=1), mask.max(axis=2)
        xs = paddle.arange(paddle.shape(image)[3], dtype='float32').unsqueeze(0)
        ys = paddle.arange(paddle.shape(image)[2], dtype='float32').unsqueeze(0)
        big = paddle.full([1], 1e6, 'float32')
        x1 = paddle.where(cols > 0, xs, big).min(axis=1)
        x2 = paddle.where(cols > 0, xs + 1, -big).max(axis=1)
        y1 = paddle.where(rows > 0, ys, big).min(axis=1)
        y2 = paddle.where(rows > 0, ys + 1, -big).max(axis=1)
        # clipped to the unpadded input, as the real post-process does
        x2, y2 = paddle.minimum(x2, im_shape[0, 1]), paddle.minimum(y2, im_shape[0, 0])
        sy, sx = scale_factor[0, 0], scale_factor[0, 1]
        bbox = paddle.stack([paddle.zeros_like(x1), self.scores, x1 / sx, y1 / sy, x2 / sx, y2 / sy], axis=1)
        return bbox, paddle.full([1], len(FACE_COLOURS), 'int32')

    def inference_model(self):
        return self

    @staticmethod
    def input_spec():
        from paddle.static import InputSpec
        return [InputSpec([None, 3, None, None], 'float32', 'image'),
                InputSpec([None, 2], 'float32', 'im_shape'),
                InputSpec([None, 2], 'float32', 'scale_factor')]
