"""Match statistics of a model (paper Fig. 2, Fig. 4c): hand cases and the tool's plumbing."""
import importlib.util
import json

import numpy as np
import paddle
import pytest
import yaml

from ppdet_hambox.analysis.match_stats import MatchStats, cdf
from ppdet_hambox.analysis.model_outputs import collect_match_stats, nms_keep
from ppdet_hambox.modeling.anchors import AnchorGenerator


def _labels(labels, gt_index):
    return {'labels': np.array(labels), 'gt_index': np.array(gt_index)}


def test_add_image_hand_case():
    # anchor 0: matched, regresses onto the face; anchor 1: unmatched, regresses onto the
    # face better and NMS keeps it; anchor 2: background that regresses nowhere.
    stats = MatchStats(pos_iou=0.35, correct_iou=0.5, score_thr=0.5, hq_iou=0.5)
    scores = np.array([0.6, 0.9, 0.2])
    iou_anchor = np.array([[0.5], [0.2], [0.05]])
    iou_pred = np.array([[0.8], [0.95], [0.1]])
    sms = _labels([1, 0, 0], [0, -1, -1])
    dms = _labels([1, 0, 0], [0, -1, -1])
    hambox = _labels([1, 2, 0], [0, 0, -1])
    stats.add_image(scores, iou_anchor, iou_pred, sms, dms, hambox, kept=[1])
    out = stats.summary()
    assert out['correct_boxes']['before_nms']['total'] == 2
    assert out['correct_boxes']['before_nms']['fraction_from_matched'] == 0.5
    assert out['correct_boxes']['after_nms']['total'] == 1
    assert out['correct_boxes']['after_nms']['fraction_from_matched'] == 0.0
    assert out['correct_boxes']['after_nms']['anchor_iou']['mean'] == pytest.approx(0.2)
    assert out['high_quality_anchors'] == {'total': 2, 'unmatched': 1, 'fraction_unmatched': 0.5}
    assert out['faces_matched'] == {'matched_to_anchor': 1, 'with_cpbb': 1, 'with_cpbb_from_matched': 1,
                                    'with_cpbb_after_nms': 1, 'with_cpbb_from_matched_after_nms': 0}
    assert out['decoded_iou']['compensated_hambox']['mean'] == pytest.approx(0.95)
    assert out['matched_anchor_iou']['compensated_dms']['count'] == 0
    first = out['matched_anchor_iou']['first_step']['cdf']
    assert first[49] == 0.0 and first[50] == 1.0  # the single value 0.5 falls in bin [0.50, 0.51)


def test_cdf_and_empty_summary():
    np.testing.assert_allclose(cdf([1, 0, 3]), [0.25, 0.25, 1.0])
    out = MatchStats().summary()
    assert out['correct_boxes']['before_nms']['fraction_from_matched'] == 0.0
    assert out['decoded_iou']['first_step']['count'] == 0


def test_nms_keep_thresholds_and_suppresses():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [0, 0, 10, 10]], 'float32')
    scores = np.array([0.6, 0.9, 0.7, 0.1], 'float32')
    assert nms_keep(scores, boxes, 0.5, 0.4).tolist() == [1, 2]
    assert nms_keep(scores, boxes, 0.5, 0.4, keep_top_k=1).tolist() == [1]
    assert nms_keep(scores, boxes, 0.95, 0.4).tolist() == []


class FakeModel:
    """Anchors decode to themselves, except ``moves``: anchor index -> decoded box."""

    def __init__(self, generator, scores, moves):
        self.anchor_generator = generator
        self.scores, self.moves = scores, moves

    def eval(self):
        pass

    def head_outputs(self, batch):
        h, w = batch['image'].shape[2:]
        boxes = self.anchor_generator.anchors(self.anchor_generator.feature_shapes(h, w)).numpy()
        for index, box in self.moves.items():
            boxes[index] = box
        return {'scores': paddle.to_tensor(self.scores[None]), 'boxes': paddle.to_tensor(boxes[None])}


def test_collect_with_a_fake_model_counts_by_hand():
    gen = AnchorGenerator(ratio=1.0, sizes=[16, 32], strides=[8, 16])
    # 64x64 input: 8x8 anchors of side 16 (stride 8) then 4x4 of side 32.
    face = [12.0, 12.0, 28.0, 28.0]          # exactly the anchor of cell (row 2, col 2): index 18
    tiny = [50.0, 50.0, 56.0, 56.0]          # 36 px^2: no anchor reaches IoU 0.35 (DMS compensates)
    matched, neighbour = 18, 19              # neighbour one stride right: IoU 128 / 384 = 1/3
    scores = np.full(80, 0.1, 'float32')
    scores[matched], scores[neighbour] = 0.6, 0.9
    model = FakeModel(gen, scores, {neighbour: face})
    batch = {'image': paddle.zeros([1, 3, 64, 64]), 'im_shape': paddle.to_tensor([[64.0, 64.0]]),
             'gt_bbox': paddle.to_tensor([[face, tiny, [0, 0, 0, 0]]]),
             'gt_mask': paddle.to_tensor([[1.0, 1.0, 0.0]])}
    stats = collect_match_stats(model, [batch], MatchStats(), hambox_args={'K': 3, 'T': 0.8})
    out = stats.summary()
    assert out['images'] == 1 and out['faces'] == 2
    before, after = out['correct_boxes']['before_nms'], out['correct_boxes']['after_nms']
    assert (before['total'], before['from_matched']) == (2, 1)
    assert (after['total'], after['from_matched']) == (1, 0)
    assert after['anchor_iou']['mean'] == pytest.approx(1 / 3, abs=1e-6)
    assert out['high_quality_anchors']['total'] == 2 and out['high_quality_anchors']['unmatched'] == 1
    assert out['matched_anchor_iou']['first_step']['count'] == 1
    assert out['matched_anchor_iou']['compensated_dms']['count'] == 1
    assert out['matched_anchor_iou']['compensated_dms']['mean'] < 0.35
    mined = out['decoded_iou']['compensated_hambox']
    assert mined['count'] == 1 and mined['mean'] == pytest.approx(1.0)
    assert out['faces_matched']['matched_to_anchor'] == 1


def _tool(repo_root):
    spec = importlib.util.spec_from_file_location('match_stats_tool', repo_root / 'tools' / 'match_stats.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_runs_end_to_end_on_real_photos(sample_val_tree, tmp_path, repo_root):
    anno, _ = sample_val_tree
    config = tmp_path / 'tiny.yml'
    config.write_text(yaml.safe_dump({
        '_BASE_': [str(repo_root / 'configs' / 'datasets' / 'widerface.yml')],
        'architecture': 'HAMBox',
        'HAMBox': {'backbone': 'ResNet', 'neck': 'LFPN', 'head': 'HAMBoxHead',
                   'anchor_generator': 'AnchorGenerator', 'box_coder': 'BoxCoder',
                   'assigner': 'HAMBoxAssigner', 'loss': 'HAMBoxLoss', 'post_process': 'HAMBoxPostProcess'},
        'ResNet': {'depth': 18, 'width_mult': 0.125},
        'LFPN': {'out_channels': 16},
        'HAMBoxHead': {'feat_channels': 16},
        'HAMBoxAssigner': {'K': 2, 'T': 0.7},
        'EvalDataset': {'name': 'WIDERFaceDataset', 'dataset_dir': str(tmp_path), 'image_dir': 'images',
                        'anno_path': str(anno)},
        'EvalReader': {'num_workers': 0, 'sample_transforms': [
            {'Decode': {}}, {'ResizeKeepRatio': {'scale': 0.5, 'target_area': 0, 'max_side': 0}},
            {'Normalize': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}}, {'Permute': {}}]},
    }))
    out_json, out_png = tmp_path / 'm.json', tmp_path / 'm.png'
    result = _tool(repo_root).main(['-c', str(config), '--max-images', '1', '--score-thr', '0.0',
                                    '--json', str(out_json), '--plot', str(out_png)])
    assert result['images'] == 1 and result['faces'] > 100  # 0_Parade_marchingband_1_765: 132 faces
    assert json.loads(out_json.read_text())['faces'] == result['faces']
    assert out_png.stat().st_size > 20_000
    before = result['correct_boxes']['before_nms']
    assert before['total'] >= result['correct_boxes']['after_nms']['total']
    assert 0.0 <= before['fraction_from_matched'] <= 1.0
    assert result['matched_anchor_iou']['first_step']['count'] > 0
