"""The tiny training config that the multi-process tests start tools/train.py
with: the demo model on a generated WIDER-layout folder, images resized to a
small square, plus each test's own settings."""
import yaml

NORMALIZE = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225], 'is_scale': True, 'to_rgb': True}


def tiny_train_config(base, data, size, batch=1, workers=0, flip=False, reader=None, **settings):
    """YAML text: ``base`` config, ``data`` the generated dataset folder,
    ``size`` the square training size; ``reader`` more TrainReader keys,
    ``settings`` more top-level keys."""
    transforms = [{'Decode': {}}] + ([{'RandomFlip': {'prob': 0.5}}] if flip else []) + [
        {'Resize': {'target_size': [size, size], 'keep_ratio': False}}, {'Normalize': NORMALIZE}, {'Permute': {}}]
    cfg = {
        '_BASE_': str(base),
        'TrainDataset': {'name': 'WIDERFaceDataset', 'dataset_dir': str(data), 'image_dir': 'WIDER_train/images',
                         'anno_path': 'wider_face_split/wider_face_train_bbx_gt.txt'},
        'TrainReader': dict({'sample_transforms': transforms, 'batch_transforms': [{'PadGT': {}}],
                             'batch_size': batch, 'num_workers': workers}, **(reader or {})),
    }
    cfg.update(settings)
    return yaml.safe_dump(cfg, sort_keys=False)
