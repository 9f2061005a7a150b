"""What the training loop reports, and to where.

The trainer calls, on the main process only:
``on_train_begin(trainer)``, ``on_log(trainer, record)`` every ``log_iter``
steps, ``on_epoch_end(trainer, epoch, info)``, ``on_eval(trainer, iteration,
result)``, ``on_snapshot(trainer, iteration)`` every ``snapshot_iter`` steps
and ``on_train_end(trainer, iteration)``. A ``record`` is a dict of numbers:
``iter``, ``epoch``, ``lr``, the loss terms (``loss``, ``loss_cls``,
``loss_box``, ``loss_pa`` when present) averaged over the steps since the
last record and over ranks; the model's statistics (``num_pos``,
``num_compensated``, ``compensated_iou``, ``num_ignored``, ...), each the
exact mean over those steps and ranks; ``counts``, a dict of how many items
each statistic's mean is over (images, or compensated anchors for
``compensated_iou``), to weight means of means with; ``ips`` (images/s, all
ranks) and ``eta_s``. A callback with state to keep across a resume returns
it from ``state_dict`` (saved in the checkpoints) and gets it back through
``set_state_dict`` before ``on_train_begin``.
"""
import datetime
import json
import os

from ppdet_hambox.core.errors import ConfigError
from ppdet_hambox.utils.checkpoint import list_checkpoints, prune_checkpoints, save_checkpoint, save_weights
from ppdet_hambox.utils.logger import get_logger
from ppdet_hambox.utils.safe_write import WriteError, describe_os_error, write_json

logger = get_logger('engine')

LOG_ORDER = ('loss', 'loss_cls', 'loss_box', 'loss_pa', 'num_pos', 'num_compensated', 'compensated_iou',
             'num_second_step', 'second_step_iou', 'num_ignored')


class Callback:
    def state_dict(self):
        return None

    def set_state_dict(self, state):
        pass

    def on_train_begin(self, trainer):
        pass

    def on_log(self, trainer, record):
        pass

    def on_epoch_end(self, trainer, epoch, info):
        pass

    def on_eval(self, trainer, iteration, result):
        pass

    def on_snapshot(self, trainer, iteration):
        pass

    def on_train_end(self, trainer, iteration):
        pass


def format_eta(seconds):
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def format_record(record, max_iters):
    """One progress line: position, lr, loss terms, mining statistics, speed."""
    parts = ['iter {}/{}'.format(record['iter'], max_iters), 'epoch {}'.format(record['epoch']),
             'lr {:.6f}'.format(record['lr'])]
    parts += ['{} {:.4f}'.format(k, record[k]) for k in LOG_ORDER if k in record]
    parts += ['{} {:.4f}'.format(k, v) for k, v in sorted(record.items())
              if k.startswith('loss_') and k not in LOG_ORDER]
    parts.append('{:.2f} img/s'.format(record['ips']))
    parts.append('eta {}'.format(format_eta(record['eta_s'])))
    return '  '.join(parts)


class ConsoleLogger(Callback):
    """Progress lines, skipped images per epoch and evaluation results in the log."""

    def on_log(self, trainer, record):
        logger.info(format_record(record, trainer.max_iters))

    def on_epoch_end(self, trainer, epoch, info):
        logger.info('epoch %d done at iter %d: %d image(s) skipped by the data pipeline (corrupt '
                    'or unreadable)', epoch, info['iter'], info['skipped'])

    def on_eval(self, trainer, iteration, result):
        numbers = ', '.join('{} {:.4f}'.format(k, v) for k, v in result.items()
                            if isinstance(v, float))
        logger.info('eval at iter %d: %s', iteration, numbers)


class JsonLinesLogger(Callback):
    """``<save_dir>/train_log.jsonl``: one JSON object per log step
    (``"type": "train"``), per evaluation (``"type": "eval"``) and per epoch
    (``"type": "epoch"``). On resume, lines after the resumed iteration (from
    the interrupted run) are dropped so the file describes one history."""

    def __init__(self, path):
        self.path = path

    def on_train_begin(self, trainer):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if not os.path.exists(self.path):
            return
        kept = []
        with open(self.path, encoding='utf-8') as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut short by a crash
                    continue
                if entry.get('iter', 0) <= trainer.start_iter:
                    kept.append(line if line.endswith('\n') else line + '\n')
        tmp = self.path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.writelines(kept)
        os.replace(tmp, self.path)

    def _write(self, entry):
        try:
            with open(self.path, 'a', encoding='utf-8') as f:
                f.write(json.dumps(entry, sort_keys=True) + '\n')
        except OSError as err:
            raise WriteError(describe_os_error(err, self.path)) from None

    def on_log(self, trainer, record):
        self._write(dict(record, type='train'))

    def on_epoch_end(self, trainer, epoch, info):
        self._write(dict(info, type='epoch', epoch=epoch))

    def on_eval(self, trainer, iteration, result):
        numbers = {k: v for k, v in result.items() if isinstance(v, (int, float, str))}
        self._write(dict(numbers, type='eval', iter=iteration))


class VisualDLLogger(Callback):
    """The same scalars in VisualDL: ``train/<name>`` and ``eval/<name>``."""

    def __init__(self, logdir):
        from visualdl import LogWriter
        self.writer = LogWriter(logdir=logdir)

    def on_log(self, trainer, record):
        for key, value in record.items():
            if key not in ('iter', 'epoch', 'counts'):
                self.writer.add_scalar('train/{}'.format(key), value, record['iter'])

    def on_epoch_end(self, trainer, epoch, info):
        self.writer.add_scalar('train/skipped_images', info['skipped'], info['iter'])

    def on_eval(self, trainer, iteration, result):
        for key, value in result.items():
            if isinstance(value, float):
                self.writer.add_scalar('eval/{}'.format(key), value, iteration)

    def on_train_end(self, trainer, iteration):
        self.writer.close()


class EvalCallback(Callback):
    """Evaluate at each snapshot and at the end; keep ``best_model.pdparams``
    and ``best_model.json`` by ``best_metric`` (``hard`` AP by default).

    ``best`` (``{'metric', 'value', 'iter'}`` or None) goes into every
    checkpoint. The evaluation of a snapshot runs after its checkpoint (a
    failing evaluation loses no training), so a checkpoint does not know
    its own evaluation: on a resume, a ``best_model.json`` newer than the
    checkpoint's best but not past the resumed iteration is that
    evaluation's record, and is taken.
    Under several processes it runs on every rank (each predicts its share of
    the images); rank 0 writes the best model."""

    def __init__(self, best_metric='hard'):
        self.best_metric = best_metric
        self.best = None

    def state_dict(self):
        return {'best': self.best}

    def set_state_dict(self, state):
        self.best = state.get('best')

    def on_train_begin(self, trainer):
        saved = _read_best(os.path.join(trainer.save_dir, 'best_model.json'))
        if saved is not None and saved['iter'] <= trainer.start_iter and (
                self.best is None or saved['iter'] > self.best.get('iter', -1)):
            self.best = saved

    def _evaluate(self, trainer, iteration):
        if trainer.last_eval_iter == iteration:
            return
        result = trainer.evaluate(output_dir=trainer.eval_dir(iteration))
        trainer.last_eval_iter = iteration
        if not isinstance(result.get(self.best_metric), float):
            raise ConfigError('best_metric {!r} is not a number among the evaluation results ({})'.format(
                self.best_metric, ', '.join(k for k, v in sorted(result.items()) if isinstance(v, float))))
        value = float(result[self.best_metric])
        trainer.dispatch('on_eval', iteration, result)
        if self.best is None or value > self.best['value']:
            self.best = {'metric': self.best_metric, 'value': value, 'iter': iteration}
            if trainer.dist.is_main:
                save_weights(trainer.eval_weights(), os.path.join(trainer.save_dir, 'best_model.pdparams'))
                atomic_json(self.best, os.path.join(trainer.save_dir, 'best_model.json'))
                logger.info('new best model at iter %d: %s %.4f', iteration, self.best_metric, value)

    def on_snapshot(self, trainer, iteration):
        self._evaluate(trainer, iteration)

    def on_train_end(self, trainer, iteration):
        self._evaluate(trainer, iteration)


class CheckpointSaver(Callback):
    """Full checkpoints every ``snapshot_iter`` steps and at the end (the last
    ``keep_checkpoints`` kept), plus weights-only ``model_final.pdparams``.
    Only this run's checkpoints are rotated, oldest written first: a run
    resumed in its own folder continues that run, so the checkpoints past
    the resumed one (superseded) go first, then the older ones."""

    def __init__(self, keep_checkpoints):
        self.keep = keep_checkpoints
        self.own = []

    def on_train_begin(self, trainer):
        found = list_checkpoints(trainer.save_dir) if trainer.resumed_here() else []
        self.own = ([path for it, path in found if it > trainer.start_iter]
                    + [path for it, path in found if it <= trainer.start_iter])

    def _save(self, trainer, iteration):
        if trainer.last_checkpoint_iter == iteration:
            return
        path = save_checkpoint(trainer.save_dir, iteration, trainer.raw_model, trainer.optimizer,
                               trainer.lr_scheduler, trainer.ema, trainer.extra_state())
        trainer.last_checkpoint_iter = iteration
        self.own = [p for p in self.own if p != path] + [path]
        removed = prune_checkpoints(trainer.save_dir, self.keep, own=self.own)
        self.own = [p for p in self.own if p not in removed]
        logger.info('saved checkpoint %s%s', path,
                    ' (removed {})'.format(', '.join(os.path.basename(p) for p in removed)) if removed else '')

    def on_snapshot(self, trainer, iteration):
        self._save(trainer, iteration)

    def on_train_end(self, trainer, iteration):
        self._save(trainer, iteration)
        path = save_weights(trainer.eval_weights(), os.path.join(trainer.save_dir, 'model_final.pdparams'))
        logger.info('saved final weights %s%s', path, ' (EMA)' if trainer.ema is not None else '')


def _read_best(path):
    """``best_model.json``'s record, None when missing or not one."""
    try:
        with open(path, encoding='utf-8') as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get('iter'), int):
        return None
    return saved


def atomic_json(obj, path):
    return write_json(path, obj, indent=1, guard=False, sort_keys=True)  # save_dir is guarded as a whole


__all__ = ['Callback', 'ConsoleLogger', 'JsonLinesLogger', 'VisualDLLogger', 'EvalCallback',
           'CheckpointSaver', 'format_record', 'atomic_json']
