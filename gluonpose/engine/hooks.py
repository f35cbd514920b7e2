"""What happens around the training steps, one hook per concern (detectron2's ``hooks``).

A hook overrides the points it needs; :class:`~gluonpose.engine.train_loop.TrainLoop` calls every
hook at every point, in list order, with the loop (its state: ``epoch``, ``iter``, ``values``,
``row`` ...). Points: ``before_train``, ``before_epoch``, ``before_update`` (a step's loss terms
are known, the weights not yet updated), ``after_step``, ``after_epoch_steps`` (the epoch's last
step is done), ``after_epoch`` (``row`` holds the epoch's metrics), ``row_updated`` (a hook
changed ``row`` after ``after_epoch``), ``after_train``. Hooks that write files do so on rank 0;
the means over workers they log are collective calls every worker makes.
"""
import logging
import os
import signal
import threading
import time

from ..config import VAL_ERRORS
from ..errors import ConfigError, UserError
from ..utils.curves import MetricsCSV, plot_curves
from ..utils.progress import EpochProgress
from .checkpoint import (BEST_PARAMS, apply_retention, remove_midepoch_checkpoints, save_best, save_checkpoint,
                         save_midepoch_checkpoint, update_checkpoint_metrics)
from .train_loop import LOSS_TERMS, allreduce_scalars, check_finite, mean_over_workers

LOG = logging.getLogger(__name__)
ITER_COLUMNS = ("progress", "epoch", "iter", "lr", "loss", "heatmap", "offset", "samples_per_s")
EPOCH_COLUMNS = ("epoch", "lr", "loss", "heatmap", "offset", "samples_per_s", "seconds", "skipped",
                 "AP")


class HookBase:
    """A hook: override the points you need (each gets the loop)."""

    def before_train(self, loop):
        pass

    def before_epoch(self, loop):
        pass

    def before_update(self, loop):
        pass

    def after_step(self, loop):
        pass

    def after_epoch_steps(self, loop):
        pass

    def after_epoch(self, loop):
        pass

    def row_updated(self, loop):
        pass

    def after_train(self, loop):
        pass


class NonFiniteGuard(HookBase):
    """A NaN/inf loss term stops training before the weights are updated (the last good
    checkpoint stays the newest): :class:`~gluonpose.engine.train_loop.NonFiniteLossError`."""

    def before_update(self, loop):
        check_finite(loop.values, loop.epoch, loop.iter)


class MetricsHook(HookBase):
    """``iterations.csv`` every ``log_interval`` steps (and the epoch's last) and ``metrics.csv``
    every epoch, as means over all workers' samples; rows past the starting epoch (left by a
    killed run) are dropped first, so a resumed run's records equal an uninterrupted run's."""

    def __init__(self, work_dir, *, log_interval=20):
        self.work_dir, self.log_interval = work_dir, max(int(log_interval), 1)
        self.iters = self.epochs = None
        self.total_skipped = 0

    def before_train(self, loop):
        if loop.rank != 0:
            return
        self.iters = MetricsCSV(os.path.join(self.work_dir, "iterations.csv"), ITER_COLUMNS)
        self.epochs = MetricsCSV(os.path.join(self.work_dir, "metrics.csv"), EPOCH_COLUMNS)
        dropped = self.iters.drop_after_epoch(loop.start_epoch, step=loop.start_step) + \
            self.epochs.drop_after_epoch(loop.start_epoch)
        if dropped:
            LOG.info("dropped %d csv row(s) of epochs after %d left by an earlier run", dropped,
                     loop.start_epoch)

    def after_step(self, loop):
        i = loop.iter
        if i % self.log_interval == 0 or i == loop.iters_per_epoch - 1:   # same steps everywhere
            logged = mean_over_workers(loop.kvstore, {k: loop.values[k] * loop.batch
                                                      for k in LOSS_TERMS}, loop.batch)
            if self.iters is not None:
                self.iters.append(dict(logged, progress=loop.epoch + (i + 1) / loop.iters_per_epoch,
                                       epoch=loop.epoch + 1, iter=i, lr=loop.lr,
                                       samples_per_s=loop.speed))

    def after_epoch(self, loop):
        skipped = loop.row["skipped"]
        self.total_skipped += skipped
        if skipped and loop.rank == 0:
            LOG.warning("epoch %d: %d bad training sample(s) skipped (unreadable image or bad "
                        "record, data.on_bad=skip; %d in this run)", loop.epoch + 1, skipped,
                        self.total_skipped)
        if self.epochs is not None:   # the row first: a kill before the checkpoint leaves a row
            self.epochs.append(loop.row)   # that resume drops

    def row_updated(self, loop):
        if self.epochs is not None:
            self.epochs.replace_last(loop.row)

    def read(self):
        """(iteration rows, epoch rows) written so far (rank 0)."""
        return self.iters.read(), self.epochs.read()


class CheckpointHook(HookBase):
    """Parameters, trainer states and a json record every ``interval`` epochs and after the last
    (rank 0), atomically; the record's metrics follow later changes of the row (validation).
    After each save the retention rules apply (``keep`` newest with states, parameters of every
    ``keep_every``-th epoch as snapshots; :func:`~.checkpoint.apply_retention`), and with
    ``keep_best`` the parameters of the best ``best_metric`` (validation AP) so far are kept as
    ``best.params``."""

    def __init__(self, work_dir, *, interval=1, meta=None, keep=None, keep_every=0,
                 keep_best=False, best_metric="AP"):
        self.work_dir, self.interval, self.meta = work_dir, max(int(interval), 1), meta
        self.keep, self.keep_every, self.keep_best = keep, int(keep_every or 0), keep_best
        self.best_metric = best_metric
        self.saved_epoch = None

    def saves(self, loop):
        """Whether this epoch gets a checkpoint (and curves)."""
        return loop.rank == 0 and ((loop.epoch + 1) % self.interval == 0
                                   or loop.epoch + 1 == loop.max_epochs)

    def after_epoch(self, loop):
        self.saved_epoch = None
        if self.saves(loop):
            save_checkpoint(self.work_dir, loop.epoch + 1, loop.net, loop.trainer,
                            dict(self.meta or {}, metrics=loop.row))
            self.saved_epoch = loop.epoch + 1
            remove_midepoch_checkpoints(self.work_dir, before=(loop.epoch + 1, 0))
            if self.keep:
                apply_retention(self.work_dir, keep=self.keep, keep_every=self.keep_every)

    def row_updated(self, loop):
        if self.saved_epoch == loop.epoch + 1:
            update_checkpoint_metrics(self.work_dir, loop.epoch + 1, loop.row)
            value = loop.row.get(self.best_metric)
            if self.keep_best and isinstance(value, (int, float)) and save_best(
                    self.work_dir, loop.epoch + 1, self.best_metric, value):
                LOG.info("best %s so far (%.4f) after epoch %d: kept as %s", self.best_metric,
                         value, loop.epoch + 1, os.path.join(self.work_dir, BEST_PARAMS))


class ValidationHook(HookBase):
    """``validate(net, epoch) -> {'AP': ...}`` every ``interval`` epochs on rank 0, after that
    epoch's checkpoint; the metrics go into the epoch's row. A failure is logged with its cause
    and leaves the AP empty (``val_errors='continue'``) or is raised (``'stop'``)."""

    def __init__(self, validate, *, interval, val_errors="continue"):
        if val_errors not in VAL_ERRORS:
            raise ConfigError("train.val_errors must be one of %s, got %r" % (VAL_ERRORS, val_errors))
        self.validate, self.interval, self.val_errors = validate, int(interval), val_errors

    def after_epoch(self, loop):
        if loop.rank != 0 or not self.interval or (loop.epoch + 1) % self.interval:
            return
        try:
            metrics = dict(self.validate(loop.net, loop.epoch + 1))
        except Exception as err:  # noqa: BLE001 - the checkpoint is saved; training must go on
            if self.val_errors == "stop":
                raise
            LOG.error("validation after epoch %d failed: %s: %s. The epoch's checkpoint is saved "
                      "and training goes on (AP left empty; set train.val_errors=stop to stop "
                      "instead)", loop.epoch + 1, type(err).__name__, err,
                      exc_info=not isinstance(err, UserError))
            return
        if metrics:
            loop.row.update(metrics)
            loop.row_updated()


class ProgressHook(HookBase):
    """On rank 0: a tqdm bar per epoch on a terminal, else a log line every ``interval`` steps
    (default about 5 per epoch, at least every 50 steps); the epoch's line either way."""

    def __init__(self, *, enabled=True, interval=None):
        self.enabled, self.interval, self.bar = enabled, interval, None

    def before_epoch(self, loop):
        interval = self.interval or min(max(loop.iters_per_epoch // 5, 1), 50)
        self.bar = EpochProgress(loop.iters_per_epoch, "epoch %d/%d" % (loop.epoch + 1, loop.max_epochs),
                                 enabled=self.enabled and loop.rank == 0, log_every=interval)

    def after_step(self, loop):
        v = loop.values
        self.bar.update(loss="%.4g" % v["loss"], hm="%.3g" % v["heatmap"], off="%.3g" % v["offset"],
                        lr="%.2g" % loop.lr, sps="%.1f" % loop.speed)

    def after_epoch_steps(self, loop):
        self.bar.close()

    def after_epoch(self, loop):
        row = loop.row
        if loop.rank == 0:
            LOG.info("epoch %d/%d: loss %.6g (heatmap %.6g, offset %.6g), lr %.3g, %.1f samples/s "
                     "per worker%s", loop.epoch + 1, loop.max_epochs, row["loss"], row["heatmap"],
                     row["offset"], loop.lr, row["samples_per_s"],
                     ", AP %.4f" % row["AP"] if "AP" in row else "")


class CurvesHook(HookBase):
    """``curves.png`` (loss terms, learning rate, validation AP) from the files of ``metrics`` (a
    :class:`MetricsHook`) on the epochs ``when(loop)`` says (those with a checkpoint), rank 0."""

    def __init__(self, work_dir, *, metrics, when):
        self.work_dir, self.metrics, self.when = work_dir, metrics, when

    def after_epoch(self, loop):
        if loop.rank != 0 or not self.when(loop):
            return
        iters, epochs = self.metrics.read()
        plot_curves(iters, os.path.join(self.work_dir, "curves.png"), val_rows=epochs)


class PreemptionHook(HookBase):
    """Mid-epoch checkpoints: on SIGTERM or SIGUSR1 (what SLURM sends before a time limit or a
    preemption) the run saves a mid-epoch checkpoint after the current step and stops (the
    command then exits 0); every ``minutes`` (``train.checkpoint_minutes``; 0: never) it saves
    one and goes on. ``--resume`` continues from it exactly where it stopped. With several
    workers the decision is exchanged after every step (one small all-reduce: a signal on any
    worker, rank 0's timer), so every worker stops after the same step; rank 0 writes."""

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self, work_dir, *, minutes=0, meta=None):
        self.work_dir, self.minutes, self.meta = work_dir, float(minutes or 0), meta
        self.received, self.previous, self.last_save = None, {}, None

    def before_train(self, loop):
        self.last_save = time.monotonic()
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            sig = getattr(signal, name)
            self.previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.received = signal.Signals(signum).name

    def after_step(self, loop):
        due = bool(self.minutes) and loop.rank == 0 and \
            time.monotonic() - self.last_save >= 60.0 * self.minutes
        stop = self.received is not None
        agreed = allreduce_scalars(loop.kvstore, {"stop": float(stop), "due": float(due)})
        stop, due = agreed["stop"] > 0, agreed["due"] > 0   # the same on every worker
        if not (stop or due) or loop.iter + 1 >= loop.iters_per_epoch:
            return   # the epoch's end saves anyway
        if loop.rank == 0:
            path = save_midepoch_checkpoint(self.work_dir, loop.epoch + 1, loop.loop_state(),
                                            loop.net, loop.trainer, dict(self.meta or {}))
            LOG.info("%s: mid-epoch checkpoint after step %d of epoch %d: %s",
                     ("received %s" % self.received) if stop and self.received else
                     ("stop requested by another worker" if stop else "timer"),
                     loop.iter + 1, loop.epoch + 1, path)
        self.last_save = time.monotonic()
        if stop:
            loop.stop = True

    def after_train(self, loop):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}
