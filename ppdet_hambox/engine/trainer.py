"""The training loop: iteration-based, single process or ``paddle.distributed.launch``.

```python
cfg = load_config('configs/demo/hambox_demo.yml', ['max_iters=100'])
trainer = Trainer(cfg)
trainer.resume('output/hambox_demo')      # optional: a checkpoint or its folder
trainer.train(validate=True)
```
One step: a batch from ``TrainReader`` -> ``model(batch)`` (``(losses,
stats)``, docs/architecture.md) -> NaN/Inf check of the loss terms -> backward ->
optimizer step -> LR step -> EMA update. Checkpoints, logs and evaluation
hang off the step as callbacks (``callbacks.py``), on the main process only.
The log averages the loss terms over the steps since the last record, and
each statistic ``(sum, count)`` as its summed sum over its summed count
(both over steps and processes), whatever its name.
"""
import contextlib
import glob
import itertools
import math
import os
import time
import warnings

import paddle

from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.core.workspace import build_component, create
from ppdet_hambox.data.unreadable import MAX_UNREADABLE_IN_A_ROW, UnreadableStreak, check_first_images, streak_error
from ppdet_hambox.engine import callbacks as cb
from ppdet_hambox.engine.ema import ModelEMA
from ppdet_hambox.engine.interrupt import TrainingInterrupted, stop_on_signals
from ppdet_hambox.evaluation.prediction_folder import check_prediction_folder
from ppdet_hambox.engine.env import (all_ranks_any, all_ranks_mean, all_ranks_sum, check_same_run, file_digest,
                                     init_distributed, run_fingerprint, set_random_seed)
from ppdet_hambox.engine.peer_watchdog import PeerWatchdog
from ppdet_hambox.utils.checkpoint import (CheckpointError, check_checkpoint_fits, checkpoint_path, latest_checkpoint,
                                           load_portable_optimizer_state, previous_run_files, read_checkpoint,
                                           restore_rng_state)
from ppdet_hambox.utils.logger import get_logger, setup_logger
from ppdet_hambox.utils.weights import MAX_UNFIT_FRACTION, load_weights

__all__ = ['Trainer', 'NonFiniteLossError', 'TrainingInterrupted']

logger = get_logger('engine')

# Set by configs/runtime.yml; a training config must have them.
REQUIRED_KEYS = ('max_iters', 'log_iter', 'snapshot_iter', 'keep_checkpoints', 'save_dir')
# Off unless a config or flag turns them on.
OPTIONAL_DEFAULTS = {
    'seed': None, 'use_ema': False, 'ema_decay': 0.9998, 'amp': False, 'best_metric': 'hard',
    'use_vdl': False, 'vdl_log_dir': None, 'find_unused_parameters': False,
    'peer_timeout': 60,  # seconds a distributed peer may stay silent; 0: no watchdog
}


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf; training stopped before the bad update."""

    def __init__(self, iteration, losses, last_checkpoint):
        bad = ', '.join('{}={}'.format(k, v) for k, v in sorted(losses.items()) if not math.isfinite(v))
        where = ('the last good checkpoint is {} (resume with -r {})'.format(last_checkpoint, last_checkpoint)
                 if last_checkpoint else 'no checkpoint was written yet')
        super().__init__(
            'non-finite loss at iteration {} ({}); training stopped before applying that update, '
            'and {}. Lower the learning rate, enable clip_grad_norm or check the data.'.format(
                iteration, bad, where))
        self.iteration = iteration
        self.losses = dict(losses)
        self.last_checkpoint = last_checkpoint


def _scalar(value):
    return value.item() if isinstance(value, paddle.Tensor) else float(value)


def _runtime_settings(cfg):
    settings = {k: v if cfg.get(k) is None else cfg[k] for k, v in OPTIONAL_DEFAULTS.items()}
    missing = [k for k in REQUIRED_KEYS if cfg.get(k) is None]
    if missing:
        raise ConfigError('{}: training needs {} (add _BASE_: [.../runtime.yml] or set them)'.format(
            cfg.get('__source__', '<config>'), ', '.join(missing)))
    settings.update({k: cfg.get(k) for k in REQUIRED_KEYS})
    settings['save_dir'] = settings['save_dir'] or 'output'
    for key in ('log_iter', 'snapshot_iter', 'max_iters'):
        if settings[key] <= 0:
            raise ConfigError('{}: {} must be positive, got {}'.format(
                cfg.get('__source__', '<config>'), key, settings[key]))
    return settings


def _config_stem(cfg):
    source = cfg.get('__source__') or 'model'
    return os.path.splitext(os.path.basename(source))[0]


class Trainer:
    """Builds what training needs from ``cfg`` (a loaded config): model,
    train dataset and reader, LR schedule, optimizer, EMA, distributed
    wrappers. ``fleet`` uses ``paddle.distributed.fleet`` instead of
    ``paddle.DataParallel`` when launched with several processes. (Models to
    evaluate are built by ``utils.cli.build_model``.)
    """

    def __init__(self, cfg, fleet=False):
        self.cfg = cfg
        self.settings = _runtime_settings(cfg)
        self.dist = init_distributed(fleet)
        check_same_run(run_fingerprint(cfg, fleet=fleet), self.dist)  # before any weights are synced
        self.save_dir = os.path.join(self.settings['save_dir'], _config_stem(cfg))
        setup_logger(os.path.join(self.save_dir, 'train.log'), rank=self.dist.rank)
        if self.settings['seed'] is not None:
            set_random_seed(self.settings['seed'])
        if 'architecture' not in cfg:
            raise ConfigError('{}: no architecture key'.format(cfg.get('__source__', '<config>')))
        self.raw_model = create(cfg['architecture'], cfg)
        self.model = self.raw_model
        self.ema = None
        self.optimizer = self.lr_scheduler = self.scaler = None
        self.start_iter = 0
        self.callback_states = {}
        self.last_eval_iter = self.last_checkpoint_iter = None
        self.last_checkpoint = None
        self.callbacks = []
        self._setup_training()

    # ------------------------------------------------------------------ set-up
    @property
    def max_iters(self):
        return self.settings['max_iters']

    def _setup_training(self):
        cfg = self.cfg
        if not cfg.get('TrainDataset'):
            raise ConfigError('{}: training needs a TrainDataset section'.format(cfg.get('__source__')))
        self.dataset = build_component(cfg['TrainDataset'], cfg, 'TrainDataset')
        self.reader = create('TrainReader', cfg)
        self.loader = self.reader.build_loader(self.dataset, nranks=self.dist.world_size,
                                               rank=self.dist.rank)
        self.loader.batch_sampler = ResumableBatchSampler(self.loader.batch_sampler)
        self.batch_size = self.reader.batch_size
        self.unreadable = UnreadableStreak(min(MAX_UNREADABLE_IN_A_ROW, len(self.loader) * self.batch_size))
        self.batches_read = 0
        self.global_batch = self.batch_size * self.dist.world_size
        lr_config = create('LearningRate', cfg)
        self.lr_scheduler = lr_config(self.global_batch)
        logger.info('learning rate %.6g = base_lr %.6g x global batch %d / reference batch %d%s',
                    lr_config.effective_lr(self.global_batch), lr_config.base_lr, self.global_batch,
                    lr_config.reference_batch, '' if lr_config.scale_with_batch else ' (scaling off: base_lr used)')
        self.optimizer = create('OptimizerBuilder', cfg)(self.lr_scheduler, self.raw_model)
        if self.settings['use_ema']:
            self.ema = ModelEMA(self.raw_model, self.settings['ema_decay'])
        self.step_optimizer = self.optimizer
        self._setup_amp()
        self._wrap_distributed()

    def _setup_amp(self):
        self.amp = False
        if not self.settings['amp']:
            return
        device = paddle.device.get_device()
        if not device.startswith('gpu'):
            logger.warning('--amp does nothing on %s: automatic mixed precision here runs float16 '
                           'kernels on CUDA GPUs only; training continues in float32', device)
            return
        self.amp = True
        self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15)

    def _wrap_distributed(self):
        if not self.dist.distributed:
            return
        if self.dist.fleet:
            from paddle.distributed import fleet
            self.model = fleet.distributed_model(self.raw_model)
            self.step_optimizer = fleet.distributed_optimizer(self.optimizer)
            if self.scaler is not None:
                self.scaler = fleet.distributed_scaler(self.scaler)
        else:
            self.model = paddle.DataParallel(
                self.raw_model, find_unused_parameters=self.settings['find_unused_parameters'])
        logger.info('distributed training: %d processes (%s), batch %d per process, global batch %d',
                    self.dist.world_size, 'fleet' if self.dist.fleet else 'DataParallel',
                    self.batch_size, self.global_batch)

    # ------------------------------------------------------------- weights
    def load_weights(self, path, allow_partial=False):
        """Initialise from a weights file (``pretrain_weights``) before training;
        the EMA, if on, restarts from the loaded weights. More than
        ``MAX_UNFIT_FRACTION`` of the model not loaded is an error unless
        ``allow_partial``."""
        summary = load_weights(self.raw_model, path, max_unfit=None if allow_partial else MAX_UNFIT_FRACTION)
        logger.info('training starts from the weights of %s', path)
        if self.ema is not None:
            self.ema = ModelEMA(self.raw_model, self.settings['ema_decay'])
        return summary

    def resume(self, path):
        """Restore model, optimizer, LR schedule, EMA, RNG states and the
        iteration from a checkpoint (or the newest one in a folder)."""
        state = read_checkpoint(path)
        check_checkpoint_fits(state, self.raw_model)
        if state['iteration'] > self.max_iters:
            raise CheckpointError('{} is at iteration {}, past max_iters {}: nothing to train (raise max_iters)'
                                  .format(state['path'], state['iteration'], self.max_iters))
        self.raw_model.set_state_dict(state['model'])
        with warnings.catch_warnings():  # Paddle's LinearWarmup warns about its own nested state
            warnings.filterwarnings('ignore', message='There are some unused values in state_dict')
            load_portable_optimizer_state(self.optimizer, self.raw_model, state['optimizer'])
            self.lr_scheduler.set_state_dict(state['lr_scheduler'])
        if self.ema is not None:
            if 'ema' in state:
                self.ema.set_state_dict(state['ema'])
            else:
                logger.warning('%s has no EMA state: the average restarts from the resumed weights',
                               state['path'])
                self.ema = ModelEMA(self.raw_model, self.settings['ema_decay'])
        restore_rng_state(state['rng'])
        extra = state.get('extra') or {}
        self.callback_states = dict(extra.get('callbacks') or {})
        self.batches_read = extra.get('batches_read', state['iteration'])
        if extra.get('global_batch') not in (None, self.global_batch):
            logger.warning('resuming a run of global batch %s with global batch %d: the data order '
                           'and the LR scaling differ from the original run', extra['global_batch'],
                           self.global_batch)
        self.start_iter = state['iteration']
        self.last_checkpoint = state['path']
        self.last_checkpoint_iter = self.start_iter
        logger.info('resumed from %s at iteration %d', state['path'], self.start_iter)
        return self.start_iter

    def extra_state(self):
        """What a checkpoint keeps besides weights and optimizer: the data
        position and the callbacks' states (by class name; those of callbacks
        this run does not have are carried over from the resumed checkpoint)."""
        states = dict(self.callback_states)
        for callback in self.callbacks:
            state = callback.state_dict()
            if state is not None:
                states[type(callback).__name__] = state
        return {'callbacks': states, 'global_batch': self.global_batch,
                'world_size': self.dist.world_size, 'batches_read': self.batches_read}

    def eval_weights(self):
        """The weights to evaluate and ship: the EMA average when EMA is on."""
        return dict(self.ema.state) if self.ema is not None else self.raw_model.state_dict()

    # ---------------------------------------------------------- evaluation
    def evaluate(self, output_dir=None, protocol=None):
        """``run_evaluation`` on ``EvalDataset`` with the weights of ``eval_weights``."""
        from ppdet_hambox.evaluation.evaluator import run_evaluation
        model = self.raw_model
        was_training = model.training
        context = self.ema.applied(model) if self.ema is not None else contextlib.nullcontext()
        with context:
            model.eval()
            try:
                result = run_evaluation(model, self.cfg, protocol=protocol, output_dir=output_dir)
            finally:
                if was_training:
                    model.train()
        return result

    def check_evaluation(self):
        """What ``--eval`` will need at the first snapshot, checked now (a ``UserError``)."""
        from ppdet_hambox.evaluation.evaluator import SCORES, check_evaluation
        if not self.cfg.get('EvalDataset'):
            raise ConfigError('{}: --eval needs an EvalDataset section'.format(
                self.cfg.get('__source__', '<config>')))
        metric = check_evaluation(self.cfg)
        if self.settings['best_metric'] not in SCORES[metric]:
            raise ConfigError('best_metric {!r} is not a score of metric {}; choose one of {}'.format(
                self.settings['best_metric'], metric, ', '.join(SCORES[metric])))
        for path in glob.glob(self.eval_dir('*')):   # folders this run's evaluations will replace
            suffix = path.rsplit('_', 1)[1]
            if suffix.isdigit() and int(suffix) > self.start_iter:
                check_prediction_folder(path, 'evaluation folder')

    def resumed_here(self):
        """True when this run resumed a checkpoint of its own ``save_dir``."""
        if not self.last_checkpoint or not os.path.isdir(self.save_dir):
            return False
        return os.path.samefile(os.path.dirname(os.path.abspath(self.last_checkpoint)), self.save_dir)

    def check_save_dir(self):
        """Refuse, before iteration 1, a ``save_dir`` that holds another run:
        its checkpoints, weights and log would be replaced or deleted."""
        if self.resumed_here():
            return
        found = previous_run_files(self.save_dir)
        if found:
            resume = ('continue it with -r {}, or '.format(self.save_dir) if latest_checkpoint(self.save_dir)
                      else 'it has no checkpoint to continue from; remove those files yourself, or ')
            raise ConfigError(
                'save_dir {} holds another training run ({}{}); {}write this run elsewhere with '
                '-o save_dir=OTHER_FOLDER (nothing was changed)'.format(
                    self.save_dir, ', '.join(found[:4]), ', ...' if len(found) > 4 else '', resume))

    def eval_dir(self, iteration):
        """Where the evaluation at ``iteration`` writes its predictions."""
        return os.path.join(self.save_dir, 'eval_iter_{}'.format(iteration))

    # ------------------------------------------------------------ training
    def _default_callbacks(self, validate):
        if not self.dist.is_main:
            # Every rank takes its share of an evaluation; rank 0 alone writes.
            return [cb.EvalCallback(self.settings['best_metric'])] if validate else []
        callbacks = [cb.ConsoleLogger(), cb.JsonLinesLogger(os.path.join(self.save_dir, 'train_log.jsonl'))]
        # The checkpoint of a snapshot is written before its evaluation, so a
        # failing evaluation never costs the training; VisualDL comes last so
        # it still takes the final evaluation's scalars before it closes.
        callbacks.append(cb.CheckpointSaver(self.settings['keep_checkpoints']))
        if validate:
            callbacks.append(cb.EvalCallback(self.settings['best_metric']))
        if self.settings['use_vdl']:
            callbacks.append(cb.VisualDLLogger(self.settings['vdl_log_dir']
                                               or os.path.join(self.save_dir, 'vdl')))
        return callbacks

    def dispatch(self, event, *args):
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def _batches(self):
        """``(epoch, batch)`` forever, from batch ``batches_read`` on.

        The epoch and the offset inside it follow from the number of batches
        read so far (saved in checkpoints), and every sample's augmentation
        is seeded by (seed, epoch, index) in the reader, so a resumed run
        reads exactly the batches the uninterrupted run would have read,
        with any number of workers. Unreadable images are counted per epoch
        and in ``self.unreadable``; a batch of only unreadable images arrives
        empty."""
        per_epoch = len(self.loader)
        if per_epoch == 0:
            raise ConfigError('TrainReader yields no batch: {} images for a batch of {} on {} '
                              'process(es)'.format(len(self.dataset), self.batch_size, self.dist.world_size))
        epoch, offset = divmod(self.batches_read, per_epoch)
        skipped = 0
        while True:
            self.loader.batch_sampler.set_epoch(epoch, start_batch=offset)
            for batch in self.loader:
                self.batches_read += 1
                batch_skipped = int(_scalar(batch.pop('num_skipped', 0)))
                skipped += batch_skipped
                self.unreadable.add(bool(batch), batch_skipped)
                yield epoch, batch
            skipped = int(all_ranks_sum(skipped, self.dist))
            if self.dist.is_main:
                self.dispatch('on_epoch_end', epoch, {'iter': self.iteration, 'skipped': skipped})
            epoch, offset, skipped = epoch + 1, 0, 0

    def _forward(self, batch):
        if 'image' not in batch:  # a pipeline without Decode: say so rather than fail inside the model
            raise ConfigError('{}: TrainReader.sample_transforms give batches without an image (keys: {}); '
                              'the list starts with Decode'.format(self.cfg.get('__source__'), ', '.join(batch)))
        if not self.amp:
            return self.model(batch)
        with paddle.amp.auto_cast(enable=True, level='O1'):
            return self.model(batch)

    def _update(self, loss):
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.step_optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.step_optimizer.step()
        self.step_optimizer.clear_grad()
        self.lr_scheduler.step()
        if self.ema is not None:
            self.ema.update(self.raw_model)

    def train(self, validate=False, callbacks=None):
        """Run from ``start_iter`` to ``max_iters``; evaluate at snapshots with
        ``validate``, whose set-up (metric, protocol, ground truth, the eval
        dataset's annotation) is checked before the first iteration, as is
        the training data's image folder and first images. Training data that
        yields no readable image stops it (``UnreadableDataError``)."""
        self.check_save_dir()
        check_first_images(self.loader.dataset)
        if validate:
            self.check_evaluation()
        self.callbacks = self._default_callbacks(validate) + list(callbacks or [])
        for callback in self.callbacks:
            state = self.callback_states.get(type(callback).__name__)
            if state is not None:
                callback.set_state_dict(state)
        log_iter, snapshot_iter = self.settings['log_iter'], self.settings['snapshot_iter']
        self.iteration = self.start_iter
        self.dispatch('on_train_begin')
        self.model.train()
        logger.info('training %s from iteration %d to %d; output in %s', self.cfg.get('architecture'),
                    self.start_iter, self.max_iters, self.save_dir)
        check_same_run({'-r (resumed checkpoint)': file_digest(self.last_checkpoint),
                        'start iteration': str(self.start_iter)}, self.dist, 'resume points')
        watchdog = self._start_watchdog()
        window = _Window()
        stream = self._batches()
        try:
            with stop_on_signals(self._interrupted):  # SIGINT / SIGTERM: TrainingInterrupted
                while self.iteration < self.max_iters:
                    epoch, batch = next(stream)
                    if all_ranks_any(not batch, self.dist):
                        if all_ranks_any(self.unreadable.exceeded, self.dist):
                            raise streak_error(self.loader.dataset, self.unreadable)
                        continue  # no readable image here (or on another process): all pass this step
                    self._step(batch, window)
                    if self.iteration % log_iter == 0 or self.iteration == self.max_iters:
                        self._log(window, epoch)
                        window = _Window()
                    if self.iteration % snapshot_iter == 0 and self.iteration < self.max_iters:
                        self._snapshot('on_snapshot')
        finally:
            stream.close()  # stops the data workers
            if watchdog is not None:
                watchdog.stop()
        self._snapshot('on_train_end')
        return self.iteration

    def _start_watchdog(self):
        if not self.dist.distributed or not self.settings['peer_timeout']:
            return None
        return PeerWatchdog(self.dist.rank, self.dist.world_size, self.settings['peer_timeout'],
                            lambda: self.iteration, self.save_dir).start()

    def _interrupted(self, signum):
        error = TrainingInterrupted(signum, self.iteration, latest_checkpoint(self.save_dir))
        logger.warning('%s', error)
        return error

    def _step(self, batch, window):
        lr = self.step_optimizer.get_lr()
        losses, stats = self._forward(batch)
        loss_terms = {k: _scalar(v) for k, v in losses.items()}
        if all_ranks_any(not all(math.isfinite(v) for v in loss_terms.values()), self.dist):
            raise NonFiniteLossError(self.iteration + 1, loss_terms, self.last_checkpoint)
        self._update(losses['loss'])
        self.iteration += 1
        window.add(loss_terms, {k: (_scalar(total), _scalar(count)) for k, (total, count) in stats.items()}, lr)

    def _snapshot(self, event):
        self.dispatch(event, self.iteration)
        self.last_checkpoint = checkpoint_path(self.save_dir, self.iteration)  # written by rank 0

    def _log(self, window, epoch):
        means = all_ranks_mean(window.loss_means(), self.dist)
        # averaging sums and counts over ranks keeps their ratio: the global mean
        totals = all_ranks_mean(window.stat_totals(), self.dist)
        counts = {}
        for name in window.stat_names():
            total, count = totals[name + '/sum'], totals[name + '/count']
            means[name] = total / count if count > 0 else 0.0
            counts[name] = count * self.dist.world_size
        seconds_per_iter = window.seconds() / max(window.steps, 1)
        record = dict(means, counts=counts, iter=self.iteration, epoch=epoch, lr=window.lr,
                      ips=self.global_batch / max(seconds_per_iter, 1e-9),
                      eta_s=seconds_per_iter * (self.max_iters - self.iteration))
        if self.dist.is_main:
            self.dispatch('on_log', record)


class ResumableBatchSampler:
    """Wraps the reader's batch sampler so an epoch can start at a given
    batch: the skipped batches are index lists only, no image is read."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.start_batch = 0

    @property
    def batch_size(self):
        return self.sampler.batch_size

    def set_epoch(self, epoch, start_batch=0):
        self.sampler.set_epoch(epoch)
        self.start_batch = start_batch

    def __iter__(self):
        start, self.start_batch = self.start_batch, 0
        return itertools.islice(iter(self.sampler), start, None)

    def __len__(self):
        return len(self.sampler)


class _Window:
    """The steps between two log lines: loss terms summed per step,
    statistics as summed ``(sum, count)`` pairs."""

    def __init__(self):
        self.loss_sums = {}
        self.stat_sums = {}
        self.steps = 0
        self.lr = 0.0
        self.start = time.time()

    def add(self, loss_terms, stats, lr):
        for key, value in loss_terms.items():
            self.loss_sums[key] = self.loss_sums.get(key, 0.0) + value
        for key, (total, count) in stats.items():
            old_total, old_count = self.stat_sums.get(key, (0.0, 0.0))
            self.stat_sums[key] = (old_total + total, old_count + count)
        self.steps += 1
        self.lr = lr

    def loss_means(self):
        return {k: v / max(self.steps, 1) for k, v in self.loss_sums.items()}

    def stat_names(self):
        return sorted(self.stat_sums)

    def stat_totals(self):
        """``{'<name>/sum': ..., '<name>/count': ...}``, flat for the reduction over ranks."""
        flat = {}
        for name, (total, count) in self.stat_sums.items():
            flat[name + '/sum'], flat[name + '/count'] = total, count
        return flat

    def seconds(self):
        return time.time() - self.start

