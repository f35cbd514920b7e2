"""The training loop, readable top to bottom, with hooks around it (detectron2's ``train_loop``).

:meth:`TrainLoop.train_step` is one step: ``split_and_load`` the batch over the contexts ->
forward under ``autograd.record`` -> per-stage loss -> backward -> the loss terms read with one
device->host transfer queued before the backward pass (so reading them waits for the forward pass
only) -> the ``before_update`` hooks (the NaN guard) -> ``trainer.step(global batch)``, which queues
the per-parameter gradient push/pull (Gluon gives parameter ``i`` priority ``-i``) while the
backward pass still runs: with a dist kvstore communication overlaps the backward pass, and the
update of a step only happens after its check. ``dist_sync`` sums gradients over workers, so the
step normalises by the *global* batch (per-worker batch x workers).

:meth:`TrainLoop.run` runs epochs of steps and calls every hook at each point
(:class:`~gluonpose.engine.hooks.HookBase`). What happens around the steps (metrics files,
progress, checkpoints, validation, curves, the NaN guard) is a hook each: a new behaviour is one
class, in :mod:`gluonpose.engine.hooks`. :func:`gluonpose.engine.trainer.fit` runs the loop with
the standard hooks.
"""
import math
import time

import mxnet as mx
from mxnet import autograd, gluon

from ..dist.kvstore import allreduce_scalars

#: The loss terms every step reports (per-sample means over the worker's batch).
LOSS_TERMS = ("loss", "heatmap", "offset")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; nothing was updated or saved from that step."""


def stack_loss_terms(results):
    """Per-device ``(total per sample, {"heatmap", "offset"})`` -> one (devices, 3) NDArray on
    the first device: [sum of totals, heatmap, offset] per device. Queued before the backward
    pass, so reading it waits for the forward pass only (the backward pass, and with a kvstore
    the per-parameter gradient push/pull queued by ``trainer.step``, go on meanwhile)."""
    rows = []
    ctx = results[0][0].context
    for total, terms in results:
        row = mx.nd.concat(total.sum().reshape((1,)), terms["heatmap"].reshape((1,)),
                           terms["offset"].reshape((1,)), dim=0)
        rows.append(row if row.context == ctx else row.as_in_context(ctx))
    return mx.nd.stack(*rows) if len(rows) > 1 else rows[0].reshape((1, 3))


def read_loss_terms(stacked, device_batches, batch):
    """One device->host transfer of :func:`stack_loss_terms`' array -> ``{term: per-sample mean
    over this worker's batch}`` (float64 arithmetic on the float32 device values)."""
    rows = stacked.asnumpy().astype("float64")
    values = {"loss": sum(float(v) for v in rows[:, 0]) / batch}
    for col, key in ((1, "heatmap"), (2, "offset")):
        values[key] = sum(float(v) * n for v, n in zip(rows[:, col], device_batches)) / batch
    return values


def check_finite(values, epoch, iteration):
    """Raise :class:`NonFiniteLossError` naming the non-finite loss terms of a step."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteLossError(
            "non-finite loss at epoch %d iteration %d: %s (all terms: %s). The weights were not "
            "updated by this step and no checkpoint was written; the last good checkpoint is kept. "
            "Lower train.lr or check the data." % (epoch + 1, iteration, ", ".join(
                "%s=%r" % kv for kv in bad.items()), ", ".join("%s=%.6g" % kv for kv in values.items())))


def mean_over_workers(kvstore, sums, count):
    """``{term: sum over samples}`` and the sample count of this worker -> per-sample means over
    all workers (a collective call with a dist kvstore: every worker must make it)."""
    totals = allreduce_scalars(kvstore, dict(sums, samples=float(count)))
    n = max(totals.pop("samples"), 1.0)
    return {k: v / n for k, v in totals.items()}


class TrainHistory(list):
    """The per-epoch metric rows; ``stopped_at``: ``(epoch, step)`` (0-based epoch, steps done)
    when a hook stopped the run mid-epoch (preemption), else None."""
    stopped_at = None


class TrainLoop:
    """Epochs of :meth:`train_step` with hooks around them.

    Args (keyword-only):
        net, loss_fn: the network and ``loss_fn(outputs, targets, weights) -> (total, terms)``.
        loader: yields ``(images (B,3,h,w), targets, weights[, skipped])``, B per worker.
        sampler: the loader's EpochSampler (``set_epoch`` every epoch).
        trainer: gluon.Trainer. schedule: learning rate per (epoch, iteration).
        ctx_list: contexts. global_batch: samples per step over all workers.
        kvstore: the dist kvstore (for means over workers), or None.
        rank: this worker's rank. hooks: :class:`~gluonpose.engine.hooks.HookBase` instances,
            called in this order at every point.

    State the hooks read (and may write): ``epoch``, ``iter``, ``lr``, ``values`` (this step's
    loss terms), ``batch``, ``sums``, ``seen``, ``skipped``, ``epoch_seconds``, ``row`` (the
    epoch's metrics), ``history``, ``start_epoch``, ``max_epochs``, ``iters_per_epoch``.
    """

    def __init__(self, *, net, loss_fn, loader, sampler, trainer, schedule, ctx_list, global_batch,
                 kvstore=None, rank=0, hooks=()):
        self.net, self.loss_fn = net, loss_fn
        self.loader, self.sampler = loader, sampler
        self.trainer, self.schedule = trainer, schedule
        self.ctx_list, self.global_batch = list(ctx_list), global_batch
        self.kvstore, self.rank = kvstore, rank
        self.hooks = list(hooks)
        self.epoch = self.iter = 0
        self.lr, self.values, self.batch, self.row, self.history = None, {}, 0, None, []
        self.iters_per_epoch = len(loader) if loader is not None else 0

    def _call(self, point):
        for hook in self.hooks:
            getattr(hook, point)(self)

    def row_updated(self):
        """Tell the hooks that ``row`` changed after ``after_epoch`` (validation filled it in)."""
        self._call("row_updated")

    def train_step(self, data, *, sequential=False):
        """One step on ``data`` = (images, targets, weights, ...): :meth:`forward_backward`, the
        ``before_update`` hooks (the NaN guard), ``trainer.step``; returns the loss terms.
        ``sequential``: wait for the whole backward pass before the gradient push/pull (no
        overlap; a benchmark comparison)."""
        self.forward_backward(data, sequential=sequential)
        self._call("before_update")
        self.trainer.step(self.global_batch)
        return self.values

    def forward_backward(self, data, *, sequential=False):
        """Forward, per-stage loss and backward of one step; sets ``batch`` and ``values`` (the
        loss terms, read with one transfer queued before the backward pass)."""
        images, targets, weights = data[:3]
        xs, ts, ws = (gluon.utils.split_and_load(a, self.ctx_list, batch_axis=0)
                      for a in (images, targets, weights))
        with autograd.record():
            results = [self.loss_fn(self.net(x), t, w) for x, t, w in zip(xs, ts, ws)]
        if sequential:
            autograd.backward([total for total, _ in results])
            mx.nd.waitall()
        terms = stack_loss_terms(results)   # queued before the backward pass
        if not sequential:
            autograd.backward([total for total, _ in results])
        self.batch = images.shape[0]
        self.values = read_loss_terms(terms, [x.shape[0] for x in xs], self.batch)
        return self.values

    def run(self, start_epoch, max_epochs, resume_state=None):
        """Train from ``start_epoch`` (0-based, = epochs already done) to ``max_epochs``; returns
        the per-epoch metric rows (:class:`TrainHistory`). ``resume_state``: the loop state of a
        mid-epoch checkpoint (``step``, ``seen``, ``sums``, ``skipped``): epoch ``start_epoch``
        continues after its first ``step`` steps. A hook may set ``stop`` (e.g. on SIGTERM, after
        saving a mid-epoch checkpoint): the loop ends after that step."""
        self.start_epoch, self.max_epochs = start_epoch, max_epochs
        self.start_step = int((resume_state or {}).get("step", 0))
        self.stop, self.history = False, TrainHistory()
        self._call("before_train")
        for epoch in range(start_epoch, max_epochs):
            self._run_epoch(epoch, resume_state if epoch == start_epoch else None)
            if self.stop:
                self.history.stopped_at = (epoch, self.iter + 1)
                break
            self.history.append(self.row)
        self._call("after_train")
        return self.history

    def _run_epoch(self, epoch, resume_state):
        self.epoch = epoch
        state = resume_state or {}
        first = int(state.get("step", 0))
        self.sums = dict(dict.fromkeys(LOSS_TERMS, 0.0), **state.get("sums", {}))
        self.seen, self.skipped = int(state.get("seen", 0)), int(state.get("skipped", 0))
        if first:
            self.sampler.set_epoch(epoch, skip=self.seen)
        else:
            self.sampler.set_epoch(epoch)
        tic = time.perf_counter() - float(state.get("seconds", 0.0))
        self._call("before_epoch")
        for self.iter, data in enumerate(self.loader, start=first):
            if len(data) > 3:  # bad records the loader passed over (see TopDownDataset)
                self.skipped += int(data[3].asnumpy().sum())
            self.lr = self.schedule.lr_at(epoch, self.iter, self.iters_per_epoch)
            self.trainer.set_learning_rate(self.lr)
            self.train_step(data)
            self.seen += self.batch
            for k in self.sums:
                self.sums[k] += self.values[k] * self.batch
            self.speed = self.seen / max(time.perf_counter() - tic, 1e-9)
            self.elapsed = time.perf_counter() - tic
            self._call("after_step")
            if self.stop:
                return
        self._call("after_epoch_steps")
        mx.nd.waitall()
        self.epoch_seconds = time.perf_counter() - tic
        self.row = self._epoch_row()
        self._call("after_epoch")

    def loop_state(self):
        """What a mid-epoch checkpoint needs to continue this epoch exactly (json-serialisable):
        steps and samples done, the loss sums so far, skipped samples, seconds spent."""
        return {"step": self.iter + 1, "seen": self.seen, "skipped": self.skipped,
                "sums": {k: float(v) for k, v in self.sums.items()},
                "seconds": float(getattr(self, "elapsed", 0.0))}

    def _epoch_row(self):
        """The epoch's metrics: loss terms and skipped samples over all workers (collective)."""
        row = mean_over_workers(self.kvstore, self.sums, self.seen)
        skipped = allreduce_scalars(self.kvstore, {"skipped": float(self.skipped)})["skipped"]
        row.update(epoch=self.epoch + 1, lr=self.lr,
                   samples_per_s=self.seen / max(self.epoch_seconds, 1e-9),
                   seconds=self.epoch_seconds, skipped=int(round(skipped)))
        return row
