"""Readers: batch contract, seeded determinism with worker processes, rank
splitting, skipped images, and the dataset configs."""
import logging

import numpy as np
import paddle
import pytest

from drawn_faces import random_face_image, write_wider_set
from ppdet_hambox.core.workspace import ConfigError, build_component, create, load_config
from ppdet_hambox.data.pipeline import TransformedDataset
from ppdet_hambox.data.reader import EpochBatchSampler, TrainReader
from ppdet_hambox.data.unreadable import UnreadableDataError, UnreadableStreak, check_first_images, streak_error
from ppdet_hambox.data.source.widerface import WIDERFaceDataset

SAMPLE_TRANSFORMS = [
    {'Decode': {}},
    {'RandomDistort': {}},
    {'DataAnchorSampling': {'target_size': 64, 'fallback': {'name': 'RandomSquareCrop', 'target_size': 64}}},
    {'RandomFlip': {}},
    {'Resize': {'target_size': [64, 64]}},
    {'Normalize': {}},
    {'Permute': {}},
]


def make_dataset(root, num_images=6, broken=()):
    """Drawn-face PNGs; indices in ``broken`` map to 'missing' or 'corrupt'."""
    rng = np.random.default_rng(0)
    entries = []
    for i in range(num_images):
        image, boxes = random_face_image(rng, 72 + 8 * i, 96, 3)
        entries.append((None if broken and broken.get(i) == 'missing' else image, boxes, [0] * len(boxes)))
    paths = write_wider_set(str(root), entries)
    for i, kind in dict(broken or {}).items():
        if kind == 'corrupt':
            (root / 'images' / paths[i]).write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    return WIDERFaceDataset(dataset_dir=str(root), image_dir='images', anno_path='gt.txt')


def reader(**kwargs):
    args = dict(sample_transforms=SAMPLE_TRANSFORMS, batch_transforms=[{'PadGT': {}}], batch_size=2,
                num_workers=0, seed=3)
    args.update(kwargs)
    return TrainReader(**args)


def as_numpy(batch):
    return {k: v.numpy() if isinstance(v, paddle.Tensor) else v for k, v in batch.items()}


def run(loader):
    return [as_numpy(batch) for batch in loader]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_batch_contract(tmp_path):
    batches = run(reader(drop_last=False).build_loader(make_dataset(tmp_path)))
    assert len(batches) == 3
    batch = batches[0]
    assert batch['image'].shape == (2, 3, 64, 64) and batch['image'].dtype == np.float32
    num = batch['gt_bbox'].shape[1]
    assert num >= 1 and batch['gt_bbox'].shape == (2, num, 4) and batch['gt_mask'].shape == (2, num)
    assert batch['gt_bbox'].dtype == np.float32 and batch['gt_mask'].dtype == np.float32
    assert set(np.unique(batch['gt_mask'])) <= {0.0, 1.0}
    assert np.all(batch['gt_bbox'][batch['gt_mask'] == 0] == 0)
    np.testing.assert_array_equal(batch['im_shape'], [[64, 64], [64, 64]])
    assert batch['im_shape'].dtype == np.float32 and batch['scale_factor'].shape == (2, 2)
    assert batch['im_id'].dtype == np.int64 and batch['num_skipped'] == 0
    assert sorted(np.concatenate([b['im_id'] for b in batches]).tolist()) == list(range(6))


def test_seeded_runs_are_identical_with_workers(tmp_path):
    dataset = make_dataset(tmp_path)
    first = run(reader().build_loader(dataset, epoch=0))
    assert_same(first, run(reader().build_loader(dataset, epoch=0)))
    assert_same(first, run(reader(num_workers=2).build_loader(dataset, epoch=0)))
    next_epoch = run(reader().build_loader(dataset, epoch=1))
    assert not np.array_equal(first[0]['image'], next_epoch[0]['image'])
    other_seed = run(reader(seed=4).build_loader(dataset, epoch=0))
    assert not np.array_equal(first[0]['image'], other_seed[0]['image'])


def test_set_epoch_on_sampler_repeats_and_advances(tmp_path):
    loader = reader().build_loader(make_dataset(tmp_path))
    epoch0 = run(loader)
    epoch1 = run(loader)  # iteration advances the epoch by itself
    loader.batch_sampler.set_epoch(0)
    assert_same(epoch0, run(loader))
    loader.batch_sampler.set_epoch(1)
    assert_same(epoch1, run(loader))


def test_sampler_splits_ranks(tmp_path):
    data = list(range(10))
    orders = []
    for epoch in range(2):
        ranks = []
        for rank in range(2):
            sampler = EpochBatchSampler(data, 2, num_replicas=2, rank=rank, shuffle=True, seed=5)
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert all(e == epoch for batch in batches for e, _ in batch)
            ranks.append([i for batch in batches for _, i in batch])
        assert len(ranks[0]) == len(ranks[1]) == 5
        assert sorted(ranks[0] + ranks[1]) == data
        orders.append(ranks)
    assert orders[0] != orders[1]
    dataset = make_dataset(tmp_path)
    seen = [np.concatenate([b['im_id'] for b in run(reader(drop_last=False).build_loader(
        dataset, nranks=2, rank=rank))]) for rank in range(2)]
    assert sorted(np.concatenate(seen).tolist()) == list(range(6))
    assert not set(seen[0]) & set(seen[1])


def test_unreadable_data_checks_name_the_folder_and_the_first_files(tmp_path):
    dataset = make_dataset(tmp_path, num_images=5, broken={i: 'corrupt' for i in range(5)})
    samples = TransformedDataset(dataset, reader().sample_transforms)
    with pytest.raises(UnreadableDataError) as info:
        check_first_images(samples, count=4)
    folder = tmp_path / 'images'
    files = [folder / '0--Parade' / 'img_{}.png'.format(i) for i in range(5)]
    assert str(info.value) == ('TrainDataset (images in {}): none of its first 4 images can be read; the first: '
                               'cannot decode image {} (corrupt or not an image); also {}, {}, ...'.format(
                                   folder, files[0], files[1], files[2]))
    check_first_images(TransformedDataset(make_dataset(tmp_path / 'ok', broken={0: 'missing'}), []))
    streak = UnreadableStreak(limit=5)
    streak.add(readable=False, skipped=3)
    streak.add(readable=True, skipped=1)
    streak.add(readable=False, skipped=4)
    assert streak.count == 4 and not streak.exceeded
    streak.add(readable=False, skipped=1)
    assert streak.exceeded
    assert str(streak_error(samples, streak)).startswith(
        'TrainDataset (images in {}): 5 images in a row could not be read, so training stopped; the first: '
        'cannot decode image {}'.format(folder, files[0]))
    dataset.image_dir = 'imgs'
    with pytest.raises(UnreadableDataError, match=r'^TrainDataset.image_dir: no folder {}/imgs \('.format(tmp_path)):
        check_first_images(samples)


def test_unreadable_images_are_skipped_and_counted(tmp_path, caplog):
    dataset = make_dataset(tmp_path, num_images=5, broken={1: 'missing', 2: 'corrupt'})
    batches = run(reader(shuffle=False, drop_last=False, num_workers=2).build_loader(dataset))
    assert sum(np.sum(b['num_skipped']) for b in batches) == 2
    assert sorted(np.concatenate([b['im_id'] for b in batches if 'im_id' in b]).tolist()) == [0, 3, 4]
    with caplog.at_level(logging.WARNING):
        run(reader(shuffle=False, drop_last=False).build_loader(dataset))
    assert 'img_1.png' in caplog.text and 'img_2.png' in caplog.text
    bad_first = make_dataset(tmp_path / 'b', num_images=4, broken={0: 'missing', 1: 'corrupt'})
    for workers in (0, 2):
        batches = run(reader(shuffle=False, num_workers=workers).build_loader(bad_first))
        assert len(batches) == 2, 'an all-skipped batch must not end the epoch'
        assert list(batches[0]) == ['num_skipped'] and batches[0]['num_skipped'].tolist() == [2]
        assert batches[1]['im_id'].tolist() == [2, 3] and batches[1]['num_skipped'] == 0


@pytest.mark.parametrize('name,size', [('widerface', 640), ('demo', 256)])
def test_dataset_configs_load_and_build(repo_root, name, size):
    cfg = load_config(str(repo_root / 'configs' / 'datasets' / '{}.yml'.format(name)))
    train = build_component(cfg.TrainDataset, cfg, 'TrainDataset')
    assert isinstance(train, WIDERFaceDataset) and train.dataset_dir == 'dataset/' + (
        'wider_face' if name == 'widerface' else name)
    assert train.anno_path == 'wider_face_split/wider_face_train_bbx_gt.txt'
    assert build_component(cfg.EvalDataset, cfg, 'EvalDataset').image_dir == 'WIDER_val/images'
    assert type(build_component(cfg.TestDataset, cfg, 'TestDataset')).__name__ == 'ImageFolder'
    train_reader = create('TrainReader')
    assert train_reader.batch_size == 7
    ops = {type(op).__name__: op for op in train_reader.sample_transforms}
    assert list(ops) == ['Decode', 'RandomDistort', 'DataAnchorSampling', 'RandomFlip', 'Resize',
                         'Normalize', 'Permute']
    assert ops['DataAnchorSampling'].target_size == size and ops['DataAnchorSampling'].prob == 0.5
    assert type(ops['DataAnchorSampling'].fallback).__name__ == 'RandomSquareCrop'
    assert ops['DataAnchorSampling'].fallback.target_size == size
    assert ops['Resize'].target_size == [size, size]
    for section in ('EvalReader', 'TestReader'):
        built = create(section)
        assert [type(op).__name__ for op in built.batch_transforms] == ['PadBatch', 'PadGT']


def test_config_errors_name_the_key(repo_root):
    path = str(repo_root / 'configs' / 'datasets' / 'widerface.yml')
    with pytest.raises(ConfigError, match='size_rnage'):
        load_config(path, {'TrainReader': {'sample_transforms': [{'DataAnchorSampling': {'size_rnage': [1, 2]}}]}})
    with pytest.raises(ConfigError, match='RandomCropp'):
        load_config(path, {'TrainReader': {'sample_transforms': [{'RandomCropp': {}}]}})
