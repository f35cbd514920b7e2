"""The training loop, readable top to bottom.

Per step: ``split_and_load`` the batch over the contexts -> forward under ``autograd.record`` ->
per-stage loss -> backward -> finiteness check -> ``trainer.step(global batch)``. The loss terms of
all devices are read with one device->host transfer queued before the backward pass, so the check
waits for the forward pass only; ``trainer.step`` then queues the per-parameter gradient
push/pull (Gluon gives parameter ``i`` priority ``-i``) while the backward pass still runs, so
with a dist kvstore communication overlaps the backward pass, and the update of a step can only
happen after its check. ``dist_sync`` sums
gradients over workers, so the step normalises by the *global* batch (per-worker batch x workers).
Per epoch (rank 0): metrics CSV row, atomic checkpoint, *then* the optional validation hook (a
failure there is logged and leaves the AP cell empty unless ``val_errors='stop'``; the AP is filled
into the row afterwards), loss/lr/validation-AP plot. On (re)start, CSV rows past ``start_epoch`` (left by a killed
run) are dropped, so a resumed run's records equal an uninterrupted run's. Bad training samples the
loader passed over are counted per epoch over all workers (``skipped`` column).
With a dist kvstore the logged losses (iterations.csv every ``log_interval`` steps, metrics.csv and
the log every epoch) are means over the samples of *all* workers (one small kvstore all-reduce per
log line), not of rank 0's shard; ``samples_per_s`` stays per worker.
Progress within an epoch (:class:`~gluonpose.utils.progress.EpochProgress`): a tqdm bar on a
terminal, a short log line every few steps otherwise.
"""
import logging
import math
import time

import mxnet as mx
from mxnet import autograd, gluon

from ..config import VAL_ERRORS
from ..errors import ConfigError, UserError
from ..utils.curves import MetricsCSV, plot_curves
from ..utils.progress import EpochProgress
from .checkpoint import save_checkpoint, update_checkpoint_metrics
from .distributed import allreduce_scalars

LOG = logging.getLogger(__name__)
ITER_COLUMNS = ("progress", "epoch", "iter", "lr", "loss", "heatmap", "offset", "samples_per_s")
EPOCH_COLUMNS = ("epoch", "lr", "loss", "heatmap", "offset", "samples_per_s", "seconds", "skipped",
                 "AP")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; nothing was updated or saved from that step."""


def _check_finite(values, epoch, iteration):
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteLossError(
            "non-finite loss at epoch %d iteration %d: %s (all terms: %s). The weights were not "
            "updated by this step and no checkpoint was written; the last good checkpoint is kept. "
            "Lower train.lr or check the data." % (epoch + 1, iteration, ", ".join(
                "%s=%r" % kv for kv in bad.items()), ", ".join("%s=%.6g" % kv for kv in values.items())))


LOSS_TERMS = ("loss", "heatmap", "offset")


def _stack_loss_terms(results):
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


def _read_loss_terms(stacked, device_batches, batch):
    """One device->host transfer of :func:`_stack_loss_terms`' array -> ``{term: per-sample mean
    over this worker's batch}`` (float64 arithmetic on the float32 device values)."""
    rows = stacked.asnumpy().astype("float64")
    values = {"loss": sum(float(v) for v in rows[:, 0]) / batch}
    for col, key in ((1, "heatmap"), (2, "offset")):
        values[key] = sum(float(v) * n for v, n in zip(rows[:, col], device_batches)) / batch
    return values


def _mean_over_workers(kvstore, sums, count):
    """``{term: sum over samples}`` and the sample count of this worker -> per-sample means over
    all workers (a collective call with a dist kvstore: every worker must make it)."""
    totals = allreduce_scalars(kvstore, dict(sums, samples=float(count)))
    n = max(totals.pop("samples"), 1.0)
    return {k: v / n for k, v in totals.items()}


def _run_validation(validate, net, epoch, val_errors):
    """``validate(net, epoch)`` as a dict; on failure log the cause and return {} (or re-raise
    with ``val_errors='stop'``). User errors get one line, anything else its traceback."""
    try:
        return dict(validate(net, epoch))
    except Exception as err:  # noqa: BLE001 - the checkpoint is saved; training must go on
        if val_errors == "stop":
            raise
        LOG.error("validation after epoch %d failed: %s: %s. The epoch's checkpoint is saved and "
                  "training goes on (AP left empty; set train.val_errors=stop to stop instead)",
                  epoch, type(err).__name__, err, exc_info=not isinstance(err, UserError))
        return {}


def fit(net, loss_fn, loader, sampler, trainer, schedule, *, ctx_list, start_epoch, epochs,
        global_batch, work_dir, rank=0, meta=None, log_interval=20, checkpoint_interval=1,
        validate=None, val_interval=0, progress=True, kvstore=None, val_errors="continue",
        progress_interval=None):
    """Train ``net`` from ``start_epoch`` (0-based, = epochs already done) to ``epochs``.

    Args:
        loader: DataLoader of (image (B,3,h,w), target (B,S,C,H,W), weight (B,S,K)), B per worker.
        sampler: its EpochSampler (``set_epoch`` is called every epoch).
        trainer: gluon.Trainer (kvstore as configured, ``update_on_kvstore=False`` when distributed).
        schedule: MultiStepSchedule; the rate is set before every step.
        global_batch: samples per step over all workers (the gradient normaliser).
        meta: json-serialisable dict stored with every checkpoint (config, seed ...).
        validate: optional ``callable(net, epoch) -> dict`` (e.g. {"AP": ...}), run on rank 0 every
            ``val_interval`` epochs, after that epoch's checkpoint is saved.
        kvstore: the dist kvstore (from ``create_kvstore``) over which the logged losses are
            averaged; None/a local kvstore: this worker's values.
        val_errors: ``'continue'`` (log a validation failure, leave AP empty, train on) or
            ``'stop'`` (re-raise it; the checkpoint is already saved).
        progress: show progress on rank 0: a tqdm bar per epoch on a terminal, else a log line
            every ``progress_interval`` steps (default: about 5 per epoch, at least every 50 steps);
            the end-of-epoch line is logged either way.
    Returns:
        list of per-epoch metric dicts.
    """
    import os

    if val_errors not in VAL_ERRORS:
        raise ConfigError("train.val_errors must be one of %s, got %r" % (VAL_ERRORS, val_errors))
    iters_csv = epochs_csv = None
    if rank == 0:  # rows of epochs after start_epoch come from a killed run: drop them
        iters_csv = MetricsCSV(os.path.join(work_dir, "iterations.csv"), ITER_COLUMNS)
        epochs_csv = MetricsCSV(os.path.join(work_dir, "metrics.csv"), EPOCH_COLUMNS)
        dropped = iters_csv.drop_after_epoch(start_epoch) + epochs_csv.drop_after_epoch(start_epoch)
        if dropped:
            LOG.info("dropped %d csv row(s) of epochs after %d left by an earlier run", dropped,
                     start_epoch)
    total_skipped = 0
    history = []
    iters_per_epoch = len(loader)
    if progress_interval is None:
        progress_interval = min(max(iters_per_epoch // 5, 1), 50)
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        sums = {k: 0.0 for k in LOSS_TERMS}
        seen, tic = 0, time.perf_counter()
        bar = EpochProgress(iters_per_epoch, "epoch %d/%d" % (epoch + 1, epochs),
                            enabled=progress and rank == 0, log_every=progress_interval)
        skipped = 0
        for i, data in enumerate(loader):
            images, targets, weights = data[:3]
            if len(data) > 3:  # bad records the loader passed over (see TopDownDataset)
                skipped += int(data[3].asnumpy().sum())
            lr = schedule.lr_at(epoch, i, iters_per_epoch)
            trainer.set_learning_rate(lr)
            xs = gluon.utils.split_and_load(images, ctx_list, batch_axis=0)
            ts = gluon.utils.split_and_load(targets, ctx_list, batch_axis=0)
            ws = gluon.utils.split_and_load(weights, ctx_list, batch_axis=0)
            with autograd.record():
                results = [loss_fn(net(x), t, w) for x, t, w in zip(xs, ts, ws)]
            terms = _stack_loss_terms(results)   # queued before the backward pass
            autograd.backward([total for total, _ in results])
            batch = images.shape[0]
            values = _read_loss_terms(terms, [x.shape[0] for x in xs], batch)
            _check_finite(values, epoch, i)
            trainer.step(global_batch)
            seen += batch
            for k in sums:
                sums[k] += values[k] * batch
            speed = seen / max(time.perf_counter() - tic, 1e-9)
            bar.update(loss="%.4g" % values["loss"], hm="%.3g" % values["heatmap"],
                       off="%.3g" % values["offset"], lr="%.2g" % lr, sps="%.1f" % speed)
            if i % log_interval == 0 or i == iters_per_epoch - 1:   # same steps on every worker
                logged = _mean_over_workers(kvstore, {k: values[k] * batch for k in LOSS_TERMS},
                                            batch)
                if iters_csv is not None:
                    iters_csv.append(dict(logged, progress=epoch + (i + 1) / iters_per_epoch,
                                          epoch=epoch + 1, iter=i, lr=lr, samples_per_s=speed))
        bar.close()
        mx.nd.waitall()
        seconds = time.perf_counter() - tic
        row = _mean_over_workers(kvstore, sums, seen)
        skipped = int(round(allreduce_scalars(kvstore, {"skipped": float(skipped)})["skipped"]))
        row.update(epoch=epoch + 1, lr=lr, samples_per_s=seen / max(seconds, 1e-9), seconds=seconds,
                   skipped=skipped)
        total_skipped += skipped
        if skipped and rank == 0:
            LOG.warning("epoch %d: %d bad training sample(s) skipped (unreadable image or bad "
                        "record, data.on_bad=skip; %d in this run)", epoch + 1, skipped, total_skipped)
        saved = rank == 0 and ((epoch + 1) % checkpoint_interval == 0 or epoch + 1 == epochs)
        if rank == 0:  # the row first: a kill before the checkpoint leaves a row that resume drops
            epochs_csv.append(row)
        if saved:  # before validation: a failing validation never loses the epoch
            save_checkpoint(work_dir, epoch + 1, net, trainer, dict(meta or {}, metrics=row))
        if validate is not None and val_interval and (epoch + 1) % val_interval == 0 and rank == 0:
            metrics = _run_validation(validate, net, epoch + 1, val_errors)
            if metrics:
                row.update(metrics)
                epochs_csv.replace_last(row)
                if saved:
                    update_checkpoint_metrics(work_dir, epoch + 1, row)
        history.append(row)
        if rank == 0:
            LOG.info("epoch %d/%d: loss %.6g (heatmap %.6g, offset %.6g), lr %.3g, %.1f samples/s "
                     "per worker%s", epoch + 1, epochs, row["loss"], row["heatmap"], row["offset"], lr,
                     row["samples_per_s"], ", AP %.4f" % row["AP"] if "AP" in row else "")
            if saved:
                plot_curves(iters_csv.read(), os.path.join(work_dir, "curves.png"),
                            val_rows=epochs_csv.read())
    return history
