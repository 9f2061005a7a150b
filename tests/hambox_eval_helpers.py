"""Shared, cached set-up of the evaluation / inference / export / deploy tests:
a tiny demo dataset, the demo config pointed at it, a tiny model whose head
is set so that it produces well-separated detections, and its export.

Everything is built once per test session (``functools.lru_cache``) in a
temporary folder removed at exit, so the five test files share the cost.
"""
import atexit
import copy
import functools
import pathlib
import shutil
import tempfile

import cv2
import numpy as np
import paddle

from ppdet_hambox.core.workspace import create, load_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / 'configs' / 'demo' / 'hambox_demo.yml'
DEPLOY_INFER = REPO_ROOT / 'deploy' / 'python' / 'infer.py'
NUM_VAL = 3
SEED = 3
# Small test passes: VGA at 320x240, multi-scale and PyramidBox's ladder bounded to 0.25 Mpx.
PROTOCOL_OVERRIDES = {'vga_size': [320, 240], 'original_max_side': 400, 'ms_max_pixels': 250000,
                      'ms_scales': [0.5, 1.0, 1.5], 'ms_flip_scales': [1.0], 'pb_max_pixels': 250000}


@functools.lru_cache(maxsize=None)
def workdir():
    path = pathlib.Path(tempfile.mkdtemp(prefix='hambox_eval_tests_'))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.lru_cache(maxsize=None)
def demo_dataset():
    from ppdet_hambox.data.source.demo import generate
    out = workdir() / 'demo'
    generate(out, seed=SEED, num_train=1, num_val=NUM_VAL)
    return out


def demo_cfg(**extra):
    """The demo config on the tiny dataset, with small test protocols."""
    overrides = {'EvalDataset': {'dataset_dir': str(demo_dataset())},
                 'TestDataset': {'dataset_dir': str(demo_dataset())},
                 'TestProtocol': dict(PROTOCOL_OVERRIDES),
                 'save_dir': str(workdir() / 'output')}
    for key, value in extra.items():
        overrides[key] = dict(overrides.get(key, {}), **value) if isinstance(value, dict) else value
    # load_config returns the global config, which the next load replaces: keep a copy.
    return copy.deepcopy(load_config(str(DEMO_CONFIG), overrides))


def val_images():
    return sorted((demo_dataset() / 'WIDER_val' / 'images').rglob('*.jpg'))


def calibration_batch(model, cfg, size=256):
    """The demo val images, resized to ``size`` x ``size`` and normalised as
    the config does, in one batch."""
    from ppdet_hambox.evaluation.predictor import Predictor
    predictor = Predictor(model, cfg, 'vga')
    images = []
    for path in val_images():
        image = cv2.resize(cv2.imread(str(path)), (size, size))
        images.append(predictor.prepare(image, 1.0)['image'])
    return paddle.concat(images, axis=0)


def set_for_detections(model, images, fraction=0.01, top_logit=5.0, delta_std=0.3):
    """An untrained network's activations grow layer by layer (BN statistics
    0 / 1), so its scores saturate and tie. Make it a well-behaved detector,
    deterministically: BN statistics taken from ``images`` (one train-mode
    pass with momentum 0), then the head's last layers rescaled so that on
    ``images`` the top ``fraction`` of anchors score above 0.05, the best
    logit is ``top_logit`` and box deltas are small. Scores are then well
    separated and boxes stay near their anchors: detections do not flip with
    float rounding."""
    norms = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.layer.norm._BatchNormBase)]
    momentum = [layer._momentum for layer in norms]
    for layer in norms:
        layer._momentum = 0.0
    model.train()
    with paddle.no_grad():
        model.run_head(images)
    for layer, value in zip(norms, momentum):
        layer._momentum = value
    model.eval()
    with paddle.no_grad():
        out, _ = model.run_head(images)
        logits = out['cls_logits'].numpy() - model.head.cls_pred.bias.numpy()[0]
        deltas = out['box_deltas'].numpy()
        low = np.log(0.05 / 0.95)
        cut = np.quantile(logits, 1.0 - fraction)
        gain = (top_logit - low) / (logits.max() - cut)
        model.head.cls_pred.weight.set_value(model.head.cls_pred.weight * gain)
        model.head.cls_pred.bias.set_value(paddle.full([1], float(low - gain * cut), 'float32'))
        model.head.box_pred.weight.set_value(model.head.box_pred.weight * (delta_std / deltas.std()))
    return model


@functools.lru_cache(maxsize=None)
def tiny_model():
    """The demo architecture, seeded, set by ``set_for_detections``."""
    cfg = demo_cfg()
    paddle.seed(SEED)
    model = create(cfg['architecture'], cfg)
    return set_for_detections(model, calibration_batch(model, cfg))


@functools.lru_cache(maxsize=None)
def exported_model_dir():
    from ppdet_hambox.export.exporter import export_model
    out = workdir() / 'export'
    export_model(tiny_model(), demo_cfg(), str(out), protocol='vga')
    return out
