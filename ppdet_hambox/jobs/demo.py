"""The main job on the embedded demo dataset: generate, train, evaluate,
export, serve. ``make demo`` (``tools/demo.py``) runs it.

Every stage uses the same entry points a user would: the dataset generator,
``Trainer``, ``run_evaluation`` (official WIDER FACE protocol), ``export_model``
and the standalone Paddle Inference script ``deploy/python/infer.py`` (run
as a subprocess, as users run it). The summary goes to
``<output_dir>/report.json``.
"""
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import time

from ppdet_hambox.core.workspace import load_config
from ppdet_hambox.data import IMAGE_EXTENSIONS
from ppdet_hambox.data.source import demo as demo_source
from ppdet_hambox.export.exporter import export_model
from ppdet_hambox.jobs.train_eval import train_then_evaluate
from ppdet_hambox.utils.checkpoint import previous_run_files
from ppdet_hambox.utils.json_io import write_json
from ppdet_hambox.utils.process import guarded

logger = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY_SCRIPT = os.path.join(REPO_ROOT, 'deploy', 'python', 'infer.py')


def ensure_dataset(dataset_dir, seed, num_train, num_val):
    """Generate the demo dataset unless the same one (generator version, seed
    and sizes) is there."""
    marker = os.path.join(dataset_dir, demo_source.MARKER)
    if os.path.isfile(marker):
        with open(marker) as f:
            previous = json.load(f)
        wanted = (demo_source.VERSION, seed, num_train, num_val)
        if tuple(previous.get(k) for k in ('version', 'seed', 'num_train', 'num_val')) == wanted:
            logger.info('demo dataset already at %s (seed %d)', dataset_dir, seed)
            return dict(previous['summary'], **previous.get('details', {}))
    start = time.time()
    summary = demo_source.generate(dataset_dir, seed=seed, num_train=num_train, num_val=num_val)
    logger.info('generated the demo dataset in %.1f s at %s', time.time() - start, dataset_dir)
    demo_source.print_summary(summary, time.time() - start, dataset_dir)
    return summary


def run_deploy(model_dir, image_args, output_dir, threshold):
    """``deploy/python/infer.py`` on images; returns the drawn files it wrote."""
    command = [sys.executable, DEPLOY_SCRIPT, '--model_dir', model_dir, '--output_dir', output_dir,
               '--threshold', str(threshold), '--save_json'] + image_args
    logger.info('running %s', ' '.join(command))
    subprocess.run(guarded(command), check=True)
    return sorted(p for p in glob.glob(os.path.join(output_dir, '*')) if os.path.isfile(p) and not p.endswith('.json'))


def image_folders(root):
    """``root`` and every folder below it that holds images, in sorted order."""
    return [folder for folder, _, files in sorted(os.walk(root))
            if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in files)]


def sample_images(image_dir, count):
    """The first ``count`` images of a dataset folder, in sorted order."""
    images = sorted(path for path in glob.glob(os.path.join(image_dir, '**', '*'), recursive=True)
                    if path.lower().endswith(IMAGE_EXTENSIONS))
    return images[:count]


def clear_previous_demo_training(output_dir, name):
    """A second run of the demo replaces the first one's training: when
    ``output_dir`` holds this job's ``report.json``, the training files of
    that run (``<output_dir>/<name>``: checkpoints, final and best weights,
    log) are removed; anything else there still makes training refuse."""
    if not os.path.isfile(os.path.join(output_dir, 'report.json')):
        return
    run_dir = os.path.join(output_dir, name)
    for file_name in previous_run_files(run_dir):
        os.remove(os.path.join(run_dir, file_name))
    logger.info('replacing the previous demo training in %s', run_dir)


def run_demo(config, output_dir='output/demo', overrides=None, seed=0, num_train=240, num_val=60,
             photos_dir=None, num_drawn=4):
    """Run the whole job; returns the report written to ``output_dir/report.json``."""
    os.makedirs(output_dir, exist_ok=True)
    cfg = load_config(config, dict(overrides or {}, save_dir=output_dir))
    clear_previous_demo_training(output_dir, os.path.splitext(os.path.basename(config))[0])
    dataset_dir = cfg['TrainDataset']['dataset_dir']
    dataset = ensure_dataset(dataset_dir, seed, num_train, num_val)

    run = train_then_evaluate(cfg, os.path.join(output_dir, 'eval_predictions'))
    model, result = run['model'], run['result']

    model_dir = os.path.join(output_dir, 'inference_model')
    export_model(model, cfg, model_dir)

    threshold = cfg.get('draw_threshold') or 0.5
    val_dir = os.path.join(dataset_dir, cfg['EvalDataset']['image_dir'])
    drawn = []
    val_samples_dir = os.path.join(output_dir, 'val_samples')
    os.makedirs(val_samples_dir, exist_ok=True)
    for path in sample_images(val_dir, num_drawn):
        shutil.copy(path, val_samples_dir)
    drawn += run_deploy(model_dir, ['--image_dir', val_samples_dir], os.path.join(output_dir, 'vis_val'),
                        threshold)
    if photos_dir and os.path.isdir(photos_dir):
        for folder in image_folders(photos_dir):
            relative = os.path.relpath(folder, photos_dir)
            drawn += run_deploy(model_dir, ['--image_dir', folder],
                                os.path.normpath(os.path.join(output_dir, 'vis_photos', relative)), threshold)
    else:
        logger.info('no real photographs folder (%s): skipped drawing on them', photos_dir)

    report = {
        'easy': result['easy'], 'medium': result['medium'], 'hard': result['hard'],
        'python_port': result.get('python_port'),
        'eval_protocol': result.get('protocol'), 'eval_mode': 'official',
        'train_seconds': round(run['train_seconds'], 1), 'eval_seconds': round(run['eval_seconds'], 1),
        'iterations': run['trainer'].max_iters, 'config': config, 'weights': run['weights'],
        'inference_model': model_dir, 'drawn_images': drawn, 'dataset': dataset,
    }
    write_json(os.path.join(output_dir, 'report.json'), report, indent=2)
    return report
