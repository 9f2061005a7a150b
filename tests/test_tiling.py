"""Bounded-memory matching: tiles of any size give bit for bit the untiled
result, in the assigners, the pyramid-anchor loss and the match statistics."""
import numpy as np
import paddle
import pytest

from ppdet_hambox.analysis.match_stats import MatchStats
from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.modeling.assigners import DMSAssigner, HAMBoxAssigner, NAMSAssigner, SMSAssigner
from ppdet_hambox.modeling.assigners.matching import anchor_tiles, scan_iou
from ppdet_hambox.modeling.box_coder import BoxCoder, bbox_iou
from ppdet_hambox.modeling.losses.pyramid_anchor_loss import PyramidAnchorLoss

UNTILED = 1 << 40  # one tile holds everything


def _boxes(rng, shape, canvas, lo, hi):
    xy = rng.integers(0, canvas, size=shape + (2,))
    wh = rng.integers(lo, hi + 1, size=shape + (2,))
    return np.concatenate([xy, xy + wh], -1).astype('float32')


def crowded_batch(rng, batch=3, num_anchors=90, max_faces=14, canvas=40):
    """Integer boxes on a small canvas (equal IoUs and duplicates are common);
    faces padded to G with junk under gt_mask 0; decoded boxes are jittered
    copies of faces or of anchors, so the mining finds candidates."""
    anchors = _boxes(rng, (num_anchors,), canvas, 3, 14)
    gt_bbox = _boxes(rng, (batch, max_faces), canvas, 4, 16)
    gt_mask = np.zeros((batch, max_faces), 'float32')
    pred = np.repeat(anchors[None], batch, 0) + rng.normal(0, 1.5, (batch, num_anchors, 4)).astype('float32')
    for b in range(batch):
        count = int(rng.integers(0, max_faces + 1))
        gt_mask[b, :count] = 1
        if count:
            near = rng.random(num_anchors) < 0.5
            pick = rng.integers(0, count, size=near.sum())
            pred[b, near] = gt_bbox[b, pick] + rng.integers(-1, 2, size=(near.sum(), 4))
    return [paddle.to_tensor(x) for x in (anchors, pred.astype('float32'), gt_bbox, gt_mask)]


def budgets(batch, faces):
    """Byte budgets whose tiles hold 1, 2, 7 and 13 anchors (cutting images anywhere)."""
    return [batch * faces * 4 * a + extra for a, extra in ((1, 0), (2, 3), (7, 0), (13, 5))]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == 'f':
        a, b = a.view(np.int32), b.view(np.int32)
    return a.shape == b.shape and np.array_equal(a, b)


def test_tiles_cover_the_anchors_within_the_budget():
    for batch, anchors, faces, budget in ((7, 34125, 2000, 1 << 20), (2, 10, 3, 1), (1, 5, 0, 64)):
        tiles = anchor_tiles(batch, anchors, faces, budget)
        assert tiles[0][0] == 0 and tiles[-1][1] == anchors
        assert all(a[1] == b[0] for a, b in zip(tiles, tiles[1:]))
        sizes = [end - start for start, end in tiles]
        assert min(sizes) >= 1
        assert all(size == 1 or batch * size * faces * 4 <= budget for size in sizes)
    assert len(anchor_tiles(7, 34125, 2000, 1 << 20)) == 1896  # 18 anchors (1,008,000 bytes) per tile


def test_scan_is_bit_identical_for_any_tiling():
    rng = np.random.default_rng(3)
    for case in range(4):
        anchors, pred, gt_bbox, _ = crowded_batch(rng)
        for boxes in (anchors, pred):
            whole = scan_iou(boxes, gt_bbox, 0.3, with_face=True, tile_bytes=UNTILED)
            assert whole['pairs'].shape[0] > 0
            for budget in budgets(gt_bbox.shape[0], gt_bbox.shape[1]):
                tiled = scan_iou(boxes, gt_bbox, 0.3, with_face=True, tile_bytes=budget)
                for key in ('best', 'face'):
                    assert same_bits(tiled[key].numpy(), whole[key].numpy()), (case, budget, key)
                # pairs come tile by tile: the same set, anchors ascending per (image, face)
                order = np.lexsort(tiled['pairs'].numpy().T[::-1])
                whole_order = np.lexsort(whole['pairs'].numpy().T[::-1])
                assert same_bits(tiled['pairs'].numpy()[order], whole['pairs'].numpy()[whole_order])
                assert same_bits(tiled['scores'].numpy()[order], whole['scores'].numpy()[whole_order])


@pytest.mark.parametrize('make', [
    lambda t: SMSAssigner(tile_bytes=t), lambda t: DMSAssigner(tile_bytes=t),
    lambda t: NAMSAssigner(tile_bytes=t), lambda t: HAMBoxAssigner(T=0.6, tile_bytes=t)])
def test_assigners_are_bit_identical_for_any_tiling(make):
    rng = np.random.default_rng(5)
    compensated = 0
    for case in range(5):
        anchors, pred, gt_bbox, gt_mask = crowded_batch(rng)
        whole = make(UNTILED)(anchors, pred, gt_bbox, gt_mask)
        compensated += int((whole.positive & ~whole.step_one).numpy().sum())  # mined in a second step
        for budget in budgets(gt_bbox.shape[0], gt_bbox.shape[1]):
            tiled = make(budget)(anchors, pred, gt_bbox, gt_mask)
            assert tiled.rounds == whole.rounds, (case, budget)
            for key, value in whole.tensors().items():
                assert same_bits(getattr(tiled, key).numpy(), value.numpy()), (case, budget, key)
    if not isinstance(make(1), SMSAssigner):
        assert compensated > 0, 'random cases should exercise the compensation'


def test_pyramid_anchor_loss_is_bit_identical_for_any_tiling():
    rng = np.random.default_rng(9)
    anchors, _, gt_bbox, gt_mask = crowded_batch(rng, batch=2, num_anchors=120)
    aux = {'cls_logits': paddle.to_tensor(rng.normal(0, 1, (2, 120, 2)).astype('float32')),
           'box_deltas': paddle.to_tensor(rng.normal(0, 1, (2, 120, 2, 4)).astype('float32'))}
    whole = PyramidAnchorLoss(assigner=SMSAssigner(tile_bytes=UNTILED))(aux, anchors, gt_bbox, gt_mask, BoxCoder())
    for budget in budgets(2, gt_bbox.shape[1]):
        tiled = PyramidAnchorLoss(assigner=SMSAssigner(tile_bytes=budget))(aux, anchors, gt_bbox, gt_mask, BoxCoder())
        assert same_bits(tiled.numpy(), whole.numpy())
    assert whole.item() > 0


def test_match_stats_from_boxes_equal_the_matrix_form():
    rng = np.random.default_rng(13)
    tiled, matrices = MatchStats(hq_iou=0.3, correct_iou=0.3), MatchStats(hq_iou=0.3, correct_iou=0.3)
    sms, dms, ham = SMSAssigner(), DMSAssigner(), HAMBoxAssigner(T=0.6)
    for case in range(4):
        anchors, pred, gt_bbox, gt_mask = crowded_batch(rng)
        outs = [{k: v.numpy() for k, v in a(anchors, pred, gt_bbox, gt_mask).tensors().items()}
                for a in (sms, dms, ham)]
        for image in range(gt_bbox.shape[0]):
            faces = gt_bbox[image, :int(gt_mask[image].sum().item())]
            scores = rng.random(anchors.shape[0])
            kept = np.flatnonzero(rng.random(anchors.shape[0]) < 0.3)
            labels = [{k: v[image] for k, v in out.items()} for out in outs]
            tiled.add_boxes(scores, anchors, pred[image], faces, *labels, kept=kept, tile_bytes=17)
            matrices.add_image(scores, bbox_iou(anchors, faces).numpy(), bbox_iou(pred[image], faces).numpy(),
                               *labels, kept=kept)
    assert tiled.summary() == matrices.summary()
    assert matrices.summary()['decoded_iou']['compensated_hambox']['count'] > 0


def test_tile_bytes_is_a_config_value(repo_root):
    cfg = load_config(str(repo_root / 'configs/hambox/hambox_r50_lfpn_dh_ssh_pa_640.yml'),
                      {'HAMBoxAssigner': {'tile_bytes': 4096}})
    assert create('HAMBoxAssigner', cfg).tile_bytes == 4096
    with pytest.raises(ValueError, match='HAMBoxAssigner.tile_bytes'):
        HAMBoxAssigner(tile_bytes=0)


def test_benchmark_assigner_batch_and_peak_memory(repo_root):
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench', str(repo_root / 'tools' / 'benchmark_assigner.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    anchors = bench.make_anchors()
    single = bench.bench_faces(anchors, 6, repeats=1, with_reference=True, batch=1)
    assert single['reference_agrees'] is True
    batched = bench.bench_faces(anchors, 6, repeats=1, with_reference=True, batch=3)
    assert batched['batch'] == 3 and batched['reference_ms'] is None
    assert batched['positives'] > single['positives']
    assert 0.05 < batched['hambox_peak_gb'] < 3 and 0.05 < batched['sms_peak_gb'] < 3
    from ppdet_hambox.core.errors import run_tool
    assert run_tool(bench.main, ['--batch', '0']) == 2
