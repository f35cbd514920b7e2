"""Training with the standard hooks: :func:`fit` (the loop is :mod:`.train_loop`, the hooks
:mod:`.hooks`).

Per epoch (rank 0): metrics CSV row, atomic checkpoint, *then* the optional validation (a failure
there is logged and leaves the AP cell empty unless ``val_errors='stop'``; the AP is filled into
the row afterwards), the epoch's log line, loss/lr/validation-AP plot. On (re)start, CSV rows past
``start_epoch`` (left by a killed run) are dropped, so a resumed run's records equal an
uninterrupted run's. Bad training samples the loader passed over are counted per epoch over all
workers (``skipped`` column). With a dist kvstore the logged losses (iterations.csv every
``log_interval`` steps, metrics.csv and the log every epoch) are means over the samples of *all*
workers (one small kvstore all-reduce per log line), not of rank 0's shard; ``samples_per_s``
stays per worker.
"""
from . import hooks as h
from .train_loop import TrainLoop


def fit(net, loss_fn, loader, sampler, trainer, schedule, *, ctx_list, start_epoch, epochs,
        global_batch, work_dir, rank=0, meta=None, log_interval=20, checkpoint_interval=1,
        validate=None, val_interval=0, progress=True, kvstore=None, val_errors="continue",
        progress_interval=None, keep_checkpoints=None, keep_every=0, keep_best=False,
        checkpoint_minutes=0, resume_state=None):
    """Train ``net`` from ``start_epoch`` to ``epochs`` with the standard hooks, in this order:
    the NaN guard, ``iterations.csv`` / ``metrics.csv`` (rows of a killed run past
    ``start_epoch`` dropped), the checkpoint (every ``checkpoint_interval`` epochs and the last;
    before validation, so a failing validation never loses the epoch), validation every
    ``val_interval`` epochs on rank 0 (``val_errors``: ``continue`` or ``stop``), progress (a
    bar on a terminal, else a log line every ``progress_interval`` steps; the epoch's line),
    ``curves.png``. Retention after each checkpoint: ``keep_checkpoints`` newest with states
    (None: all), parameters of every ``keep_every``-th epoch, with ``keep_best`` the best
    validation AP's parameters (``best.params``). Mid-epoch checkpoints on SIGTERM/SIGUSR1 (then
    the run stops) and every ``checkpoint_minutes``; ``resume_state``: the loop state of the
    mid-epoch checkpoint resumed from. Returns the per-epoch metric rows (a
    :class:`~.train_loop.TrainHistory`, whose ``stopped_at`` is set when a signal stopped it)."""
    metrics = h.MetricsHook(work_dir, log_interval=log_interval)
    ckpt = h.CheckpointHook(work_dir, interval=checkpoint_interval, meta=meta,
                            keep=keep_checkpoints, keep_every=keep_every, keep_best=keep_best)
    chain = [h.NonFiniteGuard(), metrics,
             h.PreemptionHook(work_dir, minutes=checkpoint_minutes, meta=meta), ckpt]
    if validate is not None and val_interval:
        chain.append(h.ValidationHook(validate, interval=val_interval, val_errors=val_errors))
    chain += [h.ProgressHook(enabled=progress, interval=progress_interval),
              h.CurvesHook(work_dir, metrics=metrics, when=ckpt.saves)]
    loop = TrainLoop(net=net, loss_fn=loss_fn, loader=loader, sampler=sampler, trainer=trainer,
                     schedule=schedule, ctx_list=ctx_list, global_batch=global_batch,
                     kvstore=kvstore, rank=rank, hooks=chain)
    return loop.run(start_epoch, epochs, resume_state=resume_state)
