"""Every paper config loads, matches its table row, builds and trains one step."""
import pathlib

import numpy as np
import paddle
import pytest

from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.modeling.shape_spec import ShapeSpec
from ppdet_hambox.utils.weights import WeightsError
from test_paper_configs import ROWS  # file -> (assigner, anchor ratio, RAL, convs per tower, SSH, PA)

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'configs'
PAPER_CONFIGS = sorted(p.name for p in (CONFIG_DIR / 'hambox').glob('*.yml'))
FULL = 'hambox_r50_lfpn_dh_ssh_pa_640.yml'
NO_WEIGHTS = ['ResNet.pretrained=null']
NARROW = ['ResNet.width_mult=0.125', 'LFPN.out_channels=16', 'HAMBoxHead.feat_channels=16']


def tiny_batch(size=64):
    paddle.seed(0)
    gt = paddle.to_tensor([[[6.0, 8.0, 26.0, 30.0], [34.0, 30.0, 58.0, 56.0]]])
    return {'image': paddle.randn([1, 3, size, size]), 'gt_bbox': gt, 'gt_mask': paddle.ones([1, 2])}


def test_every_row_has_a_config_and_the_readme_lists_them():
    assert PAPER_CONFIGS == sorted(ROWS)
    readme = (CONFIG_DIR / 'hambox' / 'README.md').read_text()
    assert all(name in readme for name in PAPER_CONFIGS)


@pytest.mark.parametrize('name', PAPER_CONFIGS)
def test_config_matches_its_paper_row(name):
    cfg = load_config(str(CONFIG_DIR / 'hambox' / name), NO_WEIGHTS)
    assigner, ratio, ral, convs, ssh, pa = ROWS[name]
    assert cfg.HAMBox.assigner == assigner
    assert cfg.AnchorGenerator.ratio == ratio
    assert cfg.HAMBoxLoss.use_ral is ral
    assert (cfg.HAMBoxHead.num_convs, cfg.HAMBoxHead.use_ssh, cfg.HAMBoxHead.use_pa) == (convs, ssh, pa)
    assert (cfg.HAMBox.pa_loss == 'PyramidAnchorLoss') is pa
    # the paper's training setup: ResNet-50 + LFPN, 640 px, 7 images per GPU, 140k iterations
    assert (cfg.ResNet.depth, cfg.HAMBox.neck, cfg.TrainReader.batch_size, cfg.max_iters) == (50, 'LFPN', 7, 140000)
    assert cfg.HAMBoxAssigner.K == 3 and cfg.HAMBoxAssigner.T == 0.8
    assert create('LearningRate', cfg).effective_lr(28) == pytest.approx(0.01)
    # the paper's test protocol: PyramidBox's multi-scale + flip ladder, each pass cut at 0.01
    assert cfg.eval_protocol == 'pyramidbox'
    # PyramidBox's LFPN: bilinear merges, no smoothing conv, fused levels L2-normalised (S3FD scales)
    assert (cfg.LFPN.upsample, cfg.LFPN.smooth, cfg.LFPN.l2_norm_scales) == ('bilinear', False, [10.0, 8.0, 5.0])
    assert create('TestProtocol', cfg).ms_score_threshold == pytest.approx(0.01)


def _one_step(cfg):
    model = create('HAMBox', cfg)
    model.train()
    out, stats = model(tiny_batch())
    out['loss'].backward()
    assert np.isfinite(out['loss'].item()) and stats['num_pos'][0].item() > 0
    assert model.head.cls_pred.weight.grad is not None
    return model, out


@pytest.mark.parametrize('name', [n for n in PAPER_CONFIGS if n != FULL])
def test_row_config_builds_and_trains_one_step(name):
    cfg = load_config(str(CONFIG_DIR / 'hambox' / name), NO_WEIGHTS + NARROW)
    model, _ = _one_step(cfg)
    assert type(model.assigner).__name__ == ROWS[name][0]
    assert model.anchor_generator.ratio == ROWS[name][1]
    # RetinaNet's box coding reaches the built model: unit weights, beta 1/9
    assert model.box_coder.weights == [1.0, 1.0, 1.0, 1.0]
    assert model.loss.smooth_l1_beta == pytest.approx(1 / 9, rel=1e-6)


def test_full_config_at_full_width_trains_one_step_and_evaluates():
    cfg = load_config(str(CONFIG_DIR / 'hambox' / FULL), NO_WEIGHTS)
    model, out = _one_step(cfg)
    assert [s.channels for s in model.backbone.out_shape] == [256, 512, 1024, 2048]
    assert model.neck.out_shape == [ShapeSpec(256, 4 * 2 ** i) for i in range(6)]
    assert model.neck.smooth is None and len(model.neck.norms) == 3
    assert len(model.head.ssh) == 6  # one SSH context module per level
    assert 'loss_pa' in out and model.head.pa_cls_pred.weight.grad is not None
    model.eval()
    batch = dict(tiny_batch(), im_shape=paddle.to_tensor([[64.0, 64.0]]), scale_factor=paddle.ones([1, 2]))
    result = model(batch)
    assert result['bbox'].shape[1] == 6 and list(result['bbox_num'].shape) == [1]


def test_paper_configs_need_the_pretrained_file():
    cfg = load_config(str(CONFIG_DIR / 'hambox' / 'hambox_r50_lfpn_sms_640.yml'))
    with pytest.raises(WeightsError, match='resnet50.pdparams'):
        create('HAMBox', cfg)


def test_table2_grid_is_a_pair_of_overrides():
    cfg = load_config(str(CONFIG_DIR / 'hambox' / 'hambox_r50_lfpn_oam_640.yml'),
                      NO_WEIGHTS + ['HAMBoxAssigner.K=5', 'HAMBoxAssigner.T=0.7'])
    assigner = create('HAMBoxAssigner', cfg)
    assert (assigner.K, assigner.T) == (5, 0.7)


def test_s3fd_box_coding_is_three_overrides():
    """The other consistent box coding (docs/detector.md), on the full model."""
    cfg = load_config(str(CONFIG_DIR / 'hambox' / FULL),
                      NO_WEIGHTS + NARROW + ['BoxCoder.weights=[10.0,10.0,5.0,5.0]', 'HAMBoxLoss.smooth_l1_beta=1.0',
                                             'PyramidAnchorLoss.smooth_l1_beta=1.0'])
    model, _ = _one_step(cfg)
    assert model.box_coder.weights == [10.0, 10.0, 5.0, 5.0]
    assert model.loss.smooth_l1_beta == 1.0 and model.pa_loss.smooth_l1_beta == 1.0


def test_demo_config_builds_the_small_cpu_model():
    cfg = load_config(str(CONFIG_DIR / 'demo' / 'hambox_demo.yml'))
    model, out = _one_step(cfg)
    assert model.backbone.depth == 18
    assert [s.channels for s in model.backbone.out_shape] == [16, 32, 64, 128]
    assert [s.channels for s in model.neck.out_shape] == [32] * 6
    assert model.neck.smooth is None and model.neck.norms is not None  # the paper configs' LFPN
    assert (cfg.LFPN.upsample, cfg.use_ema, cfg.ema_decay) == ('bilinear', True, 0.99)
    assert type(model.assigner).__name__ == 'HAMBoxAssigner' and model.loss.use_ral
    assert cfg.TrainDataset.dataset_dir == 'dataset/demo'
    # the box coding the demo's numbers were measured with (not the paper configs')
    assert model.box_coder.weights == [10.0, 10.0, 5.0, 5.0]
    assert model.loss.smooth_l1_beta == pytest.approx(1 / 9, rel=1e-6)
