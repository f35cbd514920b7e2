"""Build everything a training run needs from a config and run :func:`gluonpose.engine.trainer.fit`."""
import logging
import os

import mxnet as mx
import numpy as np

from ..codecs.builder import build_codec_from_config
from ..config import dump_config
from ..data.builder import build_train_records
from ..data.loader import EpochSampler, TopDownDataset, make_train_loader, release_freed_memory
from ..data.pipeline import TopDownTrainTransform
from ..data.records import RecordTable
from ..data.sampler import ShardSampler
from ..models.builder import build_model, quiet_unconsumed_warning
from ..utils.io import check_writable
from ..utils.log import setup_logging
from .checkpoint import load_checkpoint, resume_checkpoint, resume_record
from .context import get_contexts
from ..dist.kvstore import (broadcast_parameters, broadcast_trainer_states, check_same_start_epoch,
                            create_kvstore, is_distributed, is_horovod, make_trainer)
from ..models.losses import PoseLoss
from .schedule import MultiStepSchedule
from .trainer import fit
from ..utils.threads import describe_threads

LOG = logging.getLogger(__name__)


def describe_parallelism(num_workers, num_contexts, per_device, loader_processes, ctx_list=None):
    """One sentence naming both kinds of "workers": distributed training processes (kvstore
    workers, ``launch_dist.py -n``) and the data-loading processes of each (``loader.num_workers``).
    """
    def plural(n, word, words=None):
        return "%d %s" % (n, word if n == 1 else (words or word + "s"))

    loading = ("each worker reads images with %s (loader.num_workers)"
               % plural(loader_processes, "loader process", "loader processes")
               if loader_processes else
               "images are read in the training process (loader.num_workers: 0)")
    return "global batch %d = %s x %s x %d per device; %s%s" % (
        num_workers * num_contexts * per_device, plural(num_workers, "distributed worker"),
        plural(num_contexts, "device"), per_device, loading,
        "; devices %s" % (list(ctx_list),) if ctx_list else "")


def kvstore_options(tcfg):
    """``train`` section -> (gradient compression dict or None, big-array bound); the values were
    checked when the config was loaded."""
    if tcfg.gradient_compression == "none":
        return None, tcfg.kvstore_bigarray_bound
    return ({"type": tcfg.gradient_compression, "threshold": float(tcfg.compression_threshold)},
            tcfg.kvstore_bigarray_bound)


def train(cfg, *, resume=False, gpus=None, kvstore=None, progress=True, validate=None, on_finish=None):
    """Train as ``cfg`` says. ``gpus``/``kvstore`` override ``cfg.train``. ``resume``: False, True (the
    newest checkpoint of the work dir, if any) or the path of a checkpoint (its ``epoch_N.json`` or
    ``.params``, or a work dir) to continue from; the run writes into ``cfg.train.work_dir``.
    Returns the history.

    ``on_finish(history)`` is called on rank 0 only, after the last checkpoint is saved (the
    train script draws validation predictions and prints its summary there).
    In a distributed job, run it inside :class:`~gluonpose.dist.failfast.WorkerRun` (the
    training command does), so that an error on this worker ends it promptly and the launcher
    stops the job."""
    check_writable(cfg.train.work_dir, "train.work_dir")   # before any work
    compression, bound = kvstore_options(cfg.train)
    kv, rank, num_workers = create_kvstore(kvstore or cfg.train.kvstore, bigarray_bound=bound)
    history = _train(cfg, kv, rank, num_workers, resume=resume, gpus=gpus, progress=progress,
                     validate=validate, compression=compression)
    if getattr(history, "stopped_at", None) is not None:
        epoch, step = history.stopped_at
        if rank == 0:
            LOG.info("stopped by a signal after step %d of epoch %d (a mid-epoch checkpoint is "
                     "saved): run the same command with --resume to continue", step, epoch + 1)
        return history
    if on_finish is not None and rank == 0:
        on_finish(history)
    return history


def _build_data(cfg, ctx_list, rank, num_workers, seed):
    """(codec, dataset, sampler, loader, per-worker batch) of the training data."""
    codec = build_codec_from_config(cfg.codec, cfg.model.num_joints)
    # one flat table instead of 600k Python objects: its pages stay shared with the forked loader
    # processes (RecordTable)
    records = RecordTable(build_train_records(cfg.data, seed=seed))
    release_freed_memory()
    transform = TopDownTrainTransform(codec, **dict(cfg.augment))
    dataset = TopDownDataset(records, transform, seed=seed, on_bad=cfg.data.on_bad,
                             keep_freed_memory_mb=cfg.loader.keep_freed_memory_mb)
    per_worker_batch = int(cfg.loader.batch_size_per_device) * len(ctx_list)
    sampler = EpochSampler(ShardSampler(len(dataset), num_parts=num_workers, part_index=rank,
                                        shuffle=True, seed=seed, batch_size=per_worker_batch))
    loader = make_train_loader(dataset, sampler, per_worker_batch, cfg.loader.num_workers)
    return codec, dataset, sampler, loader, per_worker_batch


def _resume(resume, work_dir, net, trainer, ctx_list, kv):
    """``(epochs done, mid-epoch loop state or None)``: 0, or those of the checkpoint ``resume``
    names (True: the newest of the work dir that loads; a path: that checkpoint or work dir),
    loaded."""
    ckpt_dir = work_dir
    if isinstance(resume, str):  # --resume PATH: that checkpoint (a work dir: its newest that loads)
        ckpt_dir, record = resume_record(resume)
        if record is None:
            record = resume_checkpoint(ckpt_dir, net, trainer, ctx=ctx_list)
        else:
            load_checkpoint(ckpt_dir, record, net, trainer, ctx=ctx_list)
    else:
        record = resume_checkpoint(work_dir, net, trainer, ctx=ctx_list) if resume else None
    start_epoch, state = 0, None
    if record is not None:
        start_epoch = record["epoch"]
        state = record.get("loop_state") if record.get("step") else None
        LOG.info("resumed from %s after epoch %d%s", os.path.join(ckpt_dir, record["params"]),
                 start_epoch, " and %d steps of epoch %d" % (state["step"], start_epoch + 1)
                 if state else "")
    elif resume:
        LOG.info("--resume: no checkpoint in %s, starting from scratch", work_dir)
    if resume:
        check_same_start_epoch(kv, start_epoch, work_dir)
    return start_epoch, state


def _log_setup(cfg, dataset, loader, ctx_list, kv, num_workers, compression):
    LOG.info("%d training samples, %d steps per epoch; %s", len(dataset), len(loader),
             describe_parallelism(num_workers, len(ctx_list), int(cfg.loader.batch_size_per_device),
                                  int(cfg.loader.num_workers), ctx_list))
    LOG.info("threads: %s", describe_threads())
    LOG.info("allocator of the processes making samples: %s", "glibc keeps up to %d MB of freed memory "
             "(loader.keep_freed_memory_mb)" % int(cfg.loader.keep_freed_memory_mb)
             if int(cfg.loader.keep_freed_memory_mb) > 0 else "the C library's default")
    if is_horovod(kv):
        LOG.info("engine horovod: gradients summed over %d ranks (ring all-reduce); parameters and "
                 "optimizer states broadcast from rank 0", num_workers)
    elif is_distributed(kv):
        LOG.info("kvstore %s: arrays over %s elements split over the servers, gradient "
                 "compression %s", kv.type, os.environ.get("MXNET_KVSTORE_BIGARRAY_BOUND",
                                                           "1000000"),
                 "2bit (threshold %g)" % compression["threshold"] if compression else "off")


def _train(cfg, kv, rank, num_workers, *, resume, gpus, progress, validate, compression=None):
    tcfg = cfg.train
    work_dir = tcfg.work_dir
    setup_logging(os.path.join(work_dir, "log.txt") if rank == 0 else None)
    ctx_list = get_contexts(tcfg.gpus if gpus is None else gpus, check_available=True)
    seed = int(tcfg.seed)
    mx.random.seed(seed)
    np.random.seed(seed)
    codec, dataset, sampler, loader, per_worker_batch = _build_data(cfg, ctx_list, rank,
                                                                   num_workers, seed)
    net = build_model(ctx=ctx_list, **dict(cfg.model))
    quiet_unconsumed_warning()
    net.hybridize(static_alloc=tcfg.static_alloc, static_shape=tcfg.static_alloc)
    trainer = make_trainer(net.collect_params(), tcfg.optimizer,
                           {"learning_rate": tcfg.lr, "wd": tcfg.wd}, kv, compression=compression)
    start_epoch, resume_state = _resume(resume, work_dir, net, trainer, ctx_list, kv)
    broadcast_parameters(net.collect_params(), kv)
    broadcast_trainer_states(trainer, kv)
    if rank == 0:
        dump_config(cfg, os.path.join(work_dir, "config.yaml"))
    _log_setup(cfg, dataset, loader, ctx_list, kv, num_workers, compression)
    if validate is None and tcfg.val_interval and cfg.data.val and rank == 0:
        from ..evaluation.runner import make_validate_hook
        validate = make_validate_hook(cfg, ctx=ctx_list, out_dir=work_dir)
    loss_fn = PoseLoss(codec.layout, cfg.model.num_joints, **dict(cfg.loss))
    schedule = MultiStepSchedule(tcfg.lr, tcfg.lr_steps, tcfg.lr_factor, tcfg.warmup_epochs,
                                 tcfg.warmup_factor)
    meta = {"config": cfg.to_dict(), "seed": seed, "num_workers": num_workers}
    return fit(net, loss_fn, loader, sampler, trainer, schedule, ctx_list=ctx_list,
               start_epoch=start_epoch, epochs=tcfg.epochs,
               global_batch=per_worker_batch * num_workers, work_dir=work_dir, rank=rank, meta=meta,
               log_interval=tcfg.log_interval, checkpoint_interval=tcfg.checkpoint_interval,
               validate=validate, val_interval=tcfg.val_interval, progress=progress, kvstore=kv,
               val_errors=tcfg.val_errors, keep_checkpoints=tcfg.keep_checkpoints,
               keep_every=tcfg.keep_every, keep_best=tcfg.keep_best,
               checkpoint_minutes=tcfg.checkpoint_minutes, resume_state=resume_state)
