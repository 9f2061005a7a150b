"""Train a config to its end, then evaluate the final weights: the common
core of the demo job and the ablation."""
import os
import time

from ppdet_hambox.evaluation.evaluator import run_evaluation
from ppdet_hambox.evaluation.prediction_folder import check_prediction_folder
from ppdet_hambox.engine.trainer import Trainer
from ppdet_hambox.utils.weights import load_weights

__all__ = ['train_then_evaluate']


def train_then_evaluate(cfg, eval_dir, protocol=None):
    """Check that ``eval_dir`` can take the predictions (before the training,
    not after it), train ``cfg`` (a loaded config), reload its ``model_final.pdparams``
    (strict: every tensor must fit) and evaluate it with ``run_evaluation``.

    Returns ``{'trainer', 'model', 'weights', 'train_seconds', 'eval_seconds',
    'result'}``; the model is left in eval mode.
    """
    check_prediction_folder(eval_dir, 'prediction folder')
    start = time.time()
    trainer = Trainer(cfg)
    trainer.train()
    train_seconds = time.time() - start
    weights = os.path.join(trainer.save_dir, 'model_final.pdparams')
    model = trainer.raw_model
    load_weights(model, weights, strict=True)
    model.eval()
    start = time.time()
    result = run_evaluation(model, cfg, protocol=protocol, output_dir=eval_dir)
    return {'trainer': trainer, 'model': model, 'weights': weights, 'train_seconds': train_seconds,
            'eval_seconds': time.time() - start, 'result': result}
