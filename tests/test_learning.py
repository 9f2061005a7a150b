"""The detector learns: a tiny demo-config model memorises a handful of demo images."""
import cv2
import numpy as np
import paddle
import pytest

from ppdet_hambox.core.workspace import create, load_config
from ppdet_hambox.modeling.box_coder import bbox_iou

pytest.importorskip('skimage', reason='the demo dataset generator needs scikit-image')
from ppdet_hambox.data.source.demo import generate  # noqa: E402
from ppdet_hambox.data.source.widerface import WIDERFaceDataset  # noqa: E402

NUM_IMAGES, SIZE, STEPS = 4, 128, 40
TINY = ['ResNet.width_mult=0.125', 'LFPN.out_channels=16', 'HAMBoxHead.feat_channels=16',
        'HAMBoxPostProcess.score_threshold=0.0']  # rank every anchor; recall counts the top k


def demo_batch(root):
    """The generated train images, normalised, with their valid faces padded."""
    generate(str(root), seed=1, num_train=NUM_IMAGES, num_val=1, size=(SIZE, SIZE))
    records = [r for r in WIDERFaceDataset(str(root))]
    images = [((cv2.imread(r['im_file']).astype('float32') / 255.0 - 0.45) / 0.25).transpose(2, 0, 1)
              for r in records]
    num_faces = max(len(r['gt_bbox']) for r in records)
    gt = np.zeros([len(records), num_faces, 4], 'float32')
    mask = np.zeros([len(records), num_faces], 'float32')
    for i, r in enumerate(records):
        gt[i, :len(r['gt_bbox'])] = r['gt_bbox']
        mask[i, :len(r['gt_bbox'])] = 1
    return {'image': paddle.to_tensor(np.stack(images)), 'gt_bbox': paddle.to_tensor(gt),
            'gt_mask': paddle.to_tensor(mask), 'im_shape': paddle.full([len(records), 2], float(SIZE)),
            'scale_factor': paddle.ones([len(records), 2])}


def recall_at_face_count(model, batch, iou=0.5):
    """Fraction of faces hit (IoU >= 0.5) by the image's k best detections, k =
    its number of faces: the detector must rank faces above background."""
    model.eval()
    with paddle.no_grad():
        out = model(batch)
    model.train()
    bbox, counts = out['bbox'].numpy(), out['bbox_num'].numpy()
    starts = np.concatenate([[0], np.cumsum(counts)])
    hits = total = 0
    for i, k in enumerate(batch['gt_mask'].numpy().sum(1).astype(int)):
        faces = batch['gt_bbox'][i, :k]
        dets = bbox[starts[i]:starts[i] + min(k, counts[i]), 2:]
        total += k
        if len(dets):
            hits += int((bbox_iou(faces, paddle.to_tensor(dets)).numpy().max(1) >= iou).sum())
    return hits / total


def test_tiny_demo_model_learns_its_training_faces(tmp_path, repo_root):
    batch = demo_batch(tmp_path / 'demo')
    cfg = load_config(str(repo_root / 'configs' / 'demo' / 'hambox_demo.yml'), TINY)
    paddle.seed(0)
    model = create('HAMBox', cfg)
    recall_before = recall_at_face_count(model, batch)
    optimizer = paddle.optimizer.Adam(learning_rate=0.002, parameters=model.parameters())
    model.train()
    losses = []
    for _ in range(STEPS):
        loss = model(batch)[0]['loss']
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(loss.item())
    recall_after = recall_at_face_count(model, batch)
    # measured: about 6.6 -> 0.7 (0.15-0.25 of the start for other init seeds)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
    # These 26 faces are mostly 9-16 px. Untrained, the top-k detections hit
    # almost none of them (recall 0.04). Forty steps reach 0.88 with this seed
    # and 0.62-0.88 with other init seeds; 0.5 means the head ranks most of the
    # faces it was trained on above every background anchor of the image.
    assert recall_after >= 0.5 and recall_after > recall_before + 0.3, (recall_before, recall_after)
