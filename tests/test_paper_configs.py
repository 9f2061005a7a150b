"""Every number each paper row depends on, pinned against a table transcribed
from the paper (section 4.1) and the readings of docs/method.md,
never read from the configs. One test per (row, key): a typo in a row file or
in any base file it inherits fails a test named after both.

A key a config leaves out counts with the registered constructor's default
(what the model would be built with). Keys the paper and docs/method.md leave to
the project (warm-up, most LFPN implementation options, data-loader workers)
are not pinned here; the project decisions that are pinned say where they
come from. Channel counts of the backbone, neck and head inputs are not
config keys (each part is built for the shapes of the part before).
"""
import functools
import inspect
import math
import pathlib

import pytest

from ppdet_hambox.core.workspace import _REGISTRY, load_config

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'hambox'
ABSENT = object()

# What every row shares.
COMMON = {
    # Detector (paper 4.1; docs/method.md): ResNet-50 from ImageNet weights, LFPN
    # (PyramidBox: product fusion, top-down from C5), P2..P7, one square
    # anchor per location, sizes ratio x {16..512}, Faster R-CNN deltas.
    'architecture': 'HAMBox',
    'HAMBox.backbone': 'ResNet',
    'HAMBox.neck': 'LFPN',
    'HAMBox.head': 'HAMBoxHead',
    'HAMBox.anchor_generator': 'AnchorGenerator',
    'HAMBox.box_coder': 'BoxCoder',
    'HAMBox.loss': 'HAMBoxLoss',
    'HAMBox.post_process': 'HAMBoxPostProcess',
    'ResNet.depth': 50,
    'ResNet.width_mult': 1.0,
    'ResNet.pretrained': 'pretrained/resnet50.pdparams',
    'LFPN.fusion': 'product',
    'LFPN.out_channels': 256,                 # RetinaNet, the paper's baseline
    'HAMBoxHead.feat_channels': 256,          # RetinaNet
    'HAMBoxHead.prior_prob': 0.01,            # RetinaNet's focal-loss prior
    'AnchorGenerator.sizes': [16, 32, 64, 128, 256, 512],
    'AnchorGenerator.strides': [4, 8, 16, 32, 64, 128],
    # Box coding, a project decision (docs/method.md, docs/detector.md
    # "Conventions the paper leaves open"): RetinaNet's pair, as Detectron's
    # RetinaNet (unit weights, smooth-L1 beta 0.11 ~ 1/9), not S3FD /
    # PyramidBox's weights 10, 10, 5, 5 (variance 0.1 / 0.2) with beta 1, and
    # never a mix of the two; the pyramid-anchor loss uses the same coder.
    'BoxCoder.weights': [1.0, 1.0, 1.0, 1.0],
    'HAMBoxLoss.smooth_l1_beta': 1.0 / 9.0,
    'PyramidAnchorLoss.smooth_l1_beta': 1.0 / 9.0,
    # Loss (paper 3.3; docs/method.md): sigmoid focal loss alpha 0.25 gamma 2.
    'HAMBoxLoss.alpha': 0.25,
    'HAMBoxLoss.gamma': 2.0,
    'HAMBoxLoss.loss_box_weight': 1.0,
    # eq. 1 and 2 as written: the ignore rule on, no cap on the compensated terms
    'HAMBoxLoss.ral_ignore': True,
    'HAMBoxLoss.compensated_weight_cap': None,
    # Optimisation (paper 4.1; docs/method.md): synchronised SGD, momentum 0.9,
    # weight decay 5e-5, lr 0.01 for 4 GPUs x 7 images, x0.1 at 110k of 140k.
    'OptimizerBuilder.optimizer.type': 'Momentum',
    'OptimizerBuilder.optimizer.momentum': 0.9,
    'OptimizerBuilder.regularizer.type': 'L2',
    'OptimizerBuilder.regularizer.factor': 5e-5,
    'LearningRate.base_lr': 0.01,
    'LearningRate.reference_batch': 28,
    'LearningRate.scale_with_batch': True,
    'LearningRate.schedulers.PiecewiseDecay.milestones': [110000],
    'LearningRate.schedulers.PiecewiseDecay.gamma': 0.1,
    'max_iters': 140000,
    'TrainReader.batch_size': 7,
    'TrainReader.shuffle': True,
    # Data (paper 4.1; docs/method.md): photometric distortion, data-anchor-sampling
    # with probability 0.5 (targets in [anchor / 2, anchor * 2] over the six
    # anchor sizes) else an S3FD square crop, flip 0.5, 640 x 640. Faces
    # flagged invalid are no training targets.
    'TrainDataset.name': 'WIDERFaceDataset',
    'TrainDataset.anno_path': 'wider_face_split/wider_face_train_bbx_gt.txt',
    'TrainDataset.image_dir': 'WIDER_train/images',
    'TrainDataset.keep_invalid': False,
    'EvalDataset.name': 'WIDERFaceDataset',
    'EvalDataset.image_dir': 'WIDER_val/images',
    'EvalDataset.anno_path': 'wider_face_split/wider_face_val_bbx_gt.txt',
    'TrainReader.sample_transforms': ['Decode', 'RandomDistort', 'DataAnchorSampling', 'RandomFlip',
                                      'Resize', 'Normalize', 'Permute'],
    'TrainReader.sample_transforms.DataAnchorSampling.prob': 0.5,
    'TrainReader.sample_transforms.DataAnchorSampling.target_size': 640,
    'TrainReader.sample_transforms.DataAnchorSampling.anchor_sizes': [16, 32, 64, 128, 256, 512],
    'TrainReader.sample_transforms.DataAnchorSampling.size_range': [0.5, 2.0],
    'TrainReader.sample_transforms.DataAnchorSampling.fallback.name': 'RandomSquareCrop',
    'TrainReader.sample_transforms.DataAnchorSampling.fallback.target_size': 640,
    # S3FD's square crop: side in [0.3, 1] of the image's short side.
    'TrainReader.sample_transforms.DataAnchorSampling.fallback.scale_range': [0.3, 1.0],
    'TrainReader.sample_transforms.RandomFlip.prob': 0.5,
    'TrainReader.sample_transforms.Resize.target_size': [640, 640],
    'TrainReader.sample_transforms.Resize.keep_ratio': False,
    # ImageNet statistics in RGB order: what the pretrained ResNet-50 expects.
    'TrainReader.sample_transforms.Normalize.mean': [0.485, 0.456, 0.406],
    'TrainReader.sample_transforms.Normalize.std': [0.229, 0.224, 0.225],
    'TrainReader.sample_transforms.Normalize.to_rgb': True,
    'EvalReader.sample_transforms.Normalize.mean': [0.485, 0.456, 0.406],
    'EvalReader.sample_transforms.Normalize.std': [0.229, 0.224, 0.225],
    'EvalReader.sample_transforms.Normalize.to_rgb': True,
    # Post-process and test protocol (project decisions, PyramidBox / SFD
    # conventions; the paper gives none): the model's NMS 0.4 (single-pass
    # protocols), PyramidBox's ladder with a flipped pass, NMS 0.3 and keep-top
    # 750 per pass, box voting at IoU 0.3 without single-box clusters, passes
    # cut at 0.01.
    'HAMBoxPostProcess.nms_threshold': 0.4,
    'HAMBoxPostProcess.score_threshold': 0.05,
    'HAMBoxPostProcess.keep_top_k': 750,
    'HAMBoxPostProcess.clip_boxes': True,
    'eval_protocol': 'pyramidbox',
    'TestProtocol.pb_nms_threshold': 0.3,
    'TestProtocol.pb_keep_top_k': 750,
    'TestProtocol.pb_vote_min_count': 2,
    'TestProtocol.ms_flip_scales': [1.0],
    'TestProtocol.vote_iou': 0.3,
    'TestProtocol.ms_score_threshold': 0.01,
    # Conventions the paper leaves open (project decisions, docs/detector.md
    # "Conventions the paper leaves open"):
    # the baseline is RetinaNet but for four listed changes, and RetinaNet
    # (Detectron, PaddleDetection) freezes the stem and res2 (layer1);
    'ResNet.freeze_at': 1,
    # the paper's "SSH head" cites SSH, whose detection modules each have a
    # context module; PyramidBox and RetinaFace build one per level too;
    'HAMBoxHead.share_context': False,
    # PyramidBox L2-normalises its three product-fused levels (S3FD scales);
    'LFPN.l2_norm_scales': [10.0, 8.0, 5.0],
    # Detectron's RetinaNet and PyramidBox's Paddle code decay neither biases
    # nor norm parameters.
    'OptimizerBuilder.decay_norm_and_bias': False,
}

# Matching (paper 3.2, 4.1; docs/method.md): IoU 0.35 for every strategy; NAMS
# candidates IoU > 0.1; OAM K 3, T 0.8 (Table 2's best), ignore >= 0.5.
ASSIGNER_KEYS = {
    'SMSAssigner': {'SMSAssigner.pos_iou': 0.35},
    'DMSAssigner': {'DMSAssigner.pos_iou': 0.35},
    'NAMSAssigner': {'NAMSAssigner.pos_iou': 0.35, 'NAMSAssigner.cand_iou': 0.1},
    'HAMBoxAssigner': {'HAMBoxAssigner.pos_iou': 0.35, 'HAMBoxAssigner.K': 3, 'HAMBoxAssigner.T': 0.8,
                       'HAMBoxAssigner.ignore_iou': 0.5},
}

# Row -> (assigner, anchor ratio, RAL, convs per tower, SSH, PA): Tables 1-4.
ROWS = {
    'hambox_r50_lfpn_baseline_640.yml': ('SMSAssigner', 1.0, False, 1, False, False),
    'hambox_r50_lfpn_sms_640.yml': ('SMSAssigner', 0.68, False, 1, False, False),
    'hambox_r50_lfpn_dms_640.yml': ('DMSAssigner', 0.68, False, 1, False, False),
    'hambox_r50_lfpn_dms_r050_640.yml': ('DMSAssigner', 0.5, False, 1, False, False),
    'hambox_r50_lfpn_nams_640.yml': ('NAMSAssigner', 0.68, False, 1, False, False),
    'hambox_r50_lfpn_oam_640.yml': ('HAMBoxAssigner', 0.68, False, 1, False, False),
    'hambox_r50_lfpn_oam_ral_640.yml': ('HAMBoxAssigner', 0.68, True, 1, False, False),
    'hambox_r50_lfpn_dh_640.yml': ('HAMBoxAssigner', 0.68, True, 4, False, False),
    'hambox_r50_lfpn_dh_ssh_640.yml': ('HAMBoxAssigner', 0.68, True, 4, True, False),
    'hambox_r50_lfpn_dh_ssh_pa_640.yml': ('HAMBoxAssigner', 0.68, True, 4, True, True),
}


def expected(row):
    assigner, ratio, ral, convs, ssh, pa = ROWS[row]
    table = dict(COMMON)
    table.update(ASSIGNER_KEYS[assigner])
    table.update({'HAMBox.assigner': assigner, 'AnchorGenerator.ratio': ratio, 'HAMBoxLoss.use_ral': ral,
                  'HAMBoxHead.num_convs': convs, 'HAMBoxHead.use_ssh': ssh, 'HAMBoxHead.use_pa': pa,
                  'HAMBox.pa_loss': 'PyramidAnchorLoss' if pa else None})
    return table


CASES = [(row, key) for row in sorted(ROWS) for key in expected(row)]


@functools.lru_cache(maxsize=None)
def row_config(row):
    return load_config(str(CONFIG_DIR / row))


def _constructor_default(section, key):
    spec = _REGISTRY.get(section)
    if spec is None:
        return ABSENT
    param = inspect.signature(spec.cls.__init__).parameters.get(key)
    return ABSENT if param is None or param.default is inspect.Parameter.empty else param.default


def _step(items, name):
    """The arguments of the ``name`` step in a list of one-key mappings."""
    for item in items:
        step = item if isinstance(item, str) else next(iter(item))
        if step == name:
            return {} if isinstance(item, str) else (item[step] or {})
    return ABSENT


def lookup(cfg, key):
    """A dotted key's effective value; list steps by name (``.Resize.``)."""
    parts = key.split('.')
    value, section = cfg, None
    for i, part in enumerate(parts):
        if isinstance(value, list):
            value = _step(value, part)
        elif isinstance(value, dict):
            if part not in value:
                return _constructor_default(section, part) if i == 1 else ABSENT
            value = value[part]
        else:
            return ABSENT
        if value is ABSENT:
            return ABSENT
        section = part if i == 0 else section
    if isinstance(value, list) and value and all(isinstance(v, dict) and len(v) == 1 for v in value):
        return [next(iter(v)) for v in value]
    return value


def same(got, want):
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-6)
    if isinstance(want, list) and isinstance(got, (list, tuple)):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    return type(got) is type(want) and got == want if isinstance(want, bool) else got == want


def test_every_paper_config_is_in_the_table():
    assert sorted(p.name for p in CONFIG_DIR.glob('hambox_*.yml')) == sorted(ROWS)


@pytest.mark.parametrize('row,key', CASES, ids=['{}:{}'.format(r[len('hambox_r50_lfpn_'):-len('_640.yml')], k)
                                                  for r, k in CASES])
def test_paper_value(row, key):
    got = lookup(row_config(row), key)
    want = expected(row)[key]
    assert got is not ABSENT, '{}: {} is not set (the paper needs {!r})'.format(row, key, want)
    assert same(got, want), '{}: {} is {!r}, the paper says {!r}'.format(row, key, got, want)


def test_lookup_falls_back_to_the_constructor_default():
    cfg = {'HAMBoxPostProcess': {}}
    assert lookup(cfg, 'HAMBoxPostProcess.nms_threshold') == inspect.signature(
        _REGISTRY['HAMBoxPostProcess'].cls.__init__).parameters['nms_threshold'].default
    assert lookup({'TrainReader': {'sample_transforms': [{'Resize': {'target_size': [1, 2]}}]}},
                  'TrainReader.sample_transforms.Resize.target_size') == [1, 2]
    assert lookup({'TrainReader': {'sample_transforms': []}}, 'TrainReader.sample_transforms.Resize.x') is ABSENT
