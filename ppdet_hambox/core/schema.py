"""Top-level config keys that are not component sections.

Each maps to the Python type(s) its value must have, or ``'component'`` for a
key that names a registered component (``{name: ClassName, ...}``).
"""

GLOBAL_KEYS = {
    # what to build
    'architecture': str,
    'num_classes': int,
    'TrainDataset': 'component',
    'EvalDataset': 'component',
    'TestDataset': 'component',
    # weights
    'weights': (str, type(None)),
    'pretrain_weights': (str, type(None)),
    # schedule and run
    'max_iters': int,
    'log_iter': int,
    'snapshot_iter': int,
    'keep_checkpoints': int,
    'save_dir': str,
    'seed': int,
    'use_ema': bool,
    'ema_decay': float,
    'clip_grad_norm': (int, float, type(None)),
    'amp': bool,
    'use_vdl': bool,
    'vdl_log_dir': (str, type(None)),
    'find_unused_parameters': bool,
    'peer_timeout': (int, float),
    'best_metric': str,
    # evaluation
    'metric': str,
    'eval_protocol': str,
    'draw_threshold': (int, float),
    'output_eval': (str, type(None)),
    'wider_gt_dir': (str, type(None)),
}
