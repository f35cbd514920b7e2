"""Toy data-parallel training used by tests/test_distributed.py (not a test module itself).

Trains a tiny conv+dense net with Adam on fixed random data. Run alone with ``--kvstore none``
and the global batch, or as a worker of scripts/launch_dist.py with ``--kvstore dist_sync`` and
the per-worker batch.

``--mode loop`` (default, 2 epochs, own loop) writes into ``--out``: ``pre_rank{r}.npz``
(weights before broadcast), ``init_rank{r}.npz`` (after broadcast), ``final_rank{r}.npz``,
``metrics_rank{r}.json`` and, on rank 0, ``trainer.states``.

``--bigarray-bound N`` (arrays above N elements split over the servers), ``--compression T``
(2-bit gradient compression, threshold T) and, in fit mode, ``--dump-grads`` (weights after the
broadcast and one all-reduced gradient per rank: ``init_rank{r}.npz``, ``grads_rank{r}.npz``).

``--mode fit`` trains with gluonpose.engine.trainer.fit into ``--out`` (checkpoints,
metrics.csv, iterations.csv; ``{index}`` in ``--out`` is replaced by the launch index), with
``--resume`` like the training CLI. The net is hybridized (static_alloc) and runs a forward
pass right before make_trainer (the issue-10 "init N first" case). ``--fail MODE --fail-rank R
--fail-at E:S`` makes rank R fail at (0-based) epoch E, step S: ``raise`` (uncaught exception),
``dataset`` (DatasetError -> ``error:`` line, exit 2 as the scripts do), ``nan`` (non-finite
loss -> exit 3 as train_mshrnet.py does), ``kill`` (waits until rank 0 saved epoch E, then
SIGKILLs itself). ``--naive-exit`` ends with ``sys.exit(main())`` like most scripts; the
launcher's worker wrapper (gluonpose.dist.worker) makes a failing rank end at once either way.
"""
import argparse
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

from gluonpose.data.sampler import ShardSampler  # noqa: E402
from gluonpose.dist.kvstore import (allreduce_scalars, barrier,  # noqa: E402
                                          broadcast_parameters, broadcast_trainer_states,
                                          check_same_start_epoch,
                                          create_kvstore,
                                          global_batch_size, make_trainer)
from gluonpose.errors import DatasetError, UserError  # noqa: E402

NUM_SAMPLES = 32
EPOCHS = 2


def build_net(seed):
    """Conv(1->4, 3x3, tanh) -> Flatten -> Dense(64->3); input (N, 1, 6, 6), output (N, 3)."""
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, in_channels=1, activation="tanh"),
            gluon.nn.Flatten(),
            gluon.nn.Dense(3, in_units=4 * 4 * 4))
    net.initialize(mx.init.Xavier(magnitude=2.0))
    return net


def build_fit_net(seed):
    """Conv(1->8, 3x3, tanh) -> Conv(8->8, 3x3, tanh) -> Flatten -> Dense(32->3). After one
    hybridized forward pass the 8-channel conv weights are held in a oneDNN layout, which Gluon's
    own Trainer init cannot push/pull (issue 10: "init N first")."""
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(8, 3, in_channels=1, activation="tanh"),
            gluon.nn.Conv2D(8, 3, in_channels=8, activation="tanh"),
            gluon.nn.Flatten(),
            gluon.nn.Dense(3, in_units=8 * 2 * 2))
    net.initialize(mx.init.Xavier(magnitude=2.0))
    return net


def param_arrays(net):
    return {name: p.data().asnumpy() for name, p in net.collect_params().items()}


def strip_prefix(arrays):
    """Parameter names without the block-counter prefix (differs between processes never,
    but keeps the files comparable if it did)."""
    return {name.split("_", 1)[1]: value for name, value in arrays.items()}


class ToyLoss:
    """(total per sample, {"heatmap": mean L2, "offset": mean L1}) like PoseLoss returns."""

    def __call__(self, pred, target, weight):
        l2 = ((pred - target) ** 2).mean(axis=1) * weight.reshape(-1)
        l1 = (pred - target).abs().mean(axis=1) * weight.reshape(-1)
        return l2 + l1, {"heatmap": l2.mean(), "offset": l1.mean()}


class ToyLoader:
    """Batches of (x, target, weight) in the sampler's current order; injects the failure."""

    def __init__(self, data, target, sampler, batch, rank, fail, work_dir):
        self.data, self.target, self.sampler, self.batch = data, target, sampler, batch
        self.rank, self.fail, self.work_dir, self.epoch = rank, fail, work_dir, 0

    def __len__(self):
        return (len(self.sampler) - self.skip) // self.batch

    skip = 0

    def set_epoch(self, epoch, skip=0):
        """The training loop's sampler interface (a resumed mid-epoch run skips ``skip``
        samples of the epoch)."""
        self.sampler.set_epoch(epoch)
        self.skip = int(skip)

    def _maybe_fail(self, epoch, step, x):
        mode, rank, at = self.fail
        if mode == "none" or rank != self.rank or (epoch, step) != at:
            return x
        if mode == "raise":
            raise RuntimeError("toy failure on rank %d at epoch %d step %d" % (rank, epoch, step))
        if mode == "dataset":
            raise DatasetError("toy.json: record %d: bad keypoints on rank %d" % (step, rank))
        if mode == "nan":
            return x * np.nan
        if mode == "kill":
            saved = os.path.join(self.work_dir, "epoch_%04d.json" % epoch)
            while not os.path.exists(saved):
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError("unknown fail mode %r" % mode)

    def __iter__(self):
        idx = self.sampler.indices()[self.skip:]
        epoch = self.sampler._epoch
        first = self.skip // self.batch
        for step in range(first, first + len(self)):
            sel = idx[(step - first) * self.batch:(step - first + 1) * self.batch]
            time.sleep(getattr(self, "step_sleep", 0.0))
            x = self._maybe_fail(epoch, step, self.data[sel])
            yield (mx.nd.array(x), mx.nd.array(self.target[sel]),
                   mx.nd.ones((len(sel), 1)))


def main_fit(args):
    """Train with gluonpose.engine.trainer.fit; returns the exit status like the scripts."""
    from gluonpose.engine.train_loop import NonFiniteLossError

    kv, rank, num_workers = create_kvstore(args.kvstore, bigarray_bound=args.bigarray_bound)
    work_dir = args.out.replace("{index}", os.environ.get("GLUONPOSE_LAUNCH_INDEX", "0"))
    os.makedirs(work_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((NUM_SAMPLES, 1, 6, 6)).astype(np.float32)
    target = rng.standard_normal((NUM_SAMPLES, 3)).astype(np.float32)
    net = build_fit_net(seed=100 + rank)
    net.hybridize(static_alloc=True, static_shape=True)
    net(mx.nd.array(data[:args.batch_per_worker]))   # engine busy, weights may be oneDNN-layout
    compression = (None if args.compression is None
                   else {"type": "2bit", "threshold": args.compression})
    trainer = make_trainer(net.collect_params(), "adam", {"learning_rate": 0.01, "wd": 0.05}, kv,
                           compression=compression)
    try:
        return _fit_body(args, kv, rank, num_workers, work_dir, net, trainer, data, target)
    except UserError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print("error: %s" % err, file=sys.stderr)
        return 3


def _fit_body(args, kv, rank, num_workers, work_dir, net, trainer, data, target):
    from gluonpose.engine.checkpoint import find_latest, load_checkpoint
    from gluonpose.engine.schedule import MultiStepSchedule
    from gluonpose.engine.trainer import fit

    start, resume_state = 0, None
    if args.resume:
        record = find_latest(work_dir)
        if record is not None:
            start = load_checkpoint(work_dir, record, net, trainer)
            resume_state = record.get("loop_state") if record.get("step") else None
        check_same_start_epoch(kv, start, work_dir)
    broadcast_parameters(net.collect_params(), kv)
    broadcast_trainer_states(trainer, kv)
    if args.dump_grads:   # weights after the broadcast, and one all-reduced gradient
        np.savez(os.path.join(work_dir, "init_rank%d.npz" % rank),
                 **strip_prefix(param_arrays(net)))
        sel = np.arange(rank * args.batch_per_worker, (rank + 1) * args.batch_per_worker)
        with autograd.record():
            loss = ToyLoss()(net(mx.nd.array(data[sel])), mx.nd.array(target[sel]),
                             mx.nd.ones((len(sel), 1)))[0]
        loss.backward()
        trainer.allreduce_grads()
        np.savez(os.path.join(work_dir, "grads_rank%d.npz" % rank),
                 **{name.split("_", 1)[1]: p.grad().asnumpy()
                    for name, p in net.collect_params().items()})
        barrier(kv)
    sampler = ShardSampler(NUM_SAMPLES, num_workers, rank, shuffle=True, seed=7,
                           batch_size=args.batch_per_worker)
    fail = (args.fail, args.fail_rank, tuple(int(v) for v in args.fail_at.split(":")))
    loader = ToyLoader(data, target, sampler, args.batch_per_worker, rank, fail, work_dir)
    loader.step_sleep = args.step_sleep
    fit(net, ToyLoss(), loader, loader, trainer, MultiStepSchedule(0.01, [2], 0.1),
        ctx_list=[mx.cpu()], start_epoch=start, epochs=args.epochs,
        global_batch=global_batch_size(args.batch_per_worker, num_workers), work_dir=work_dir,
        rank=rank, meta={"toy": True}, log_interval=2, progress=False, kvstore=kv,
        resume_state=resume_state)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("loop", "fit"), default="loop")
    ap.add_argument("--kvstore", default="none")
    ap.add_argument("--batch-per-worker", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--bigarray-bound", type=int, default=None)
    ap.add_argument("--compression", type=float, default=None, help="2bit threshold")
    ap.add_argument("--dump-grads", action="store_true",
                    help="fit mode: save weights after the broadcast and one all-reduced gradient")
    ap.add_argument("--step-sleep", type=float, default=0.0,
                    help="fit mode: seconds to sleep before each step (a slower run to act on)")
    ap.add_argument("--fail", choices=("none", "raise", "dataset", "nan", "kill"), default="none")
    ap.add_argument("--fail-rank", type=int, default=1)
    ap.add_argument("--fail-at", default="0:1", help="EPOCH:STEP (0-based)")
    args = ap.parse_args()
    if args.mode == "fit":
        return main_fit(args)

    kv, rank, num_workers = create_kvstore(args.kvstore)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((NUM_SAMPLES, 1, 6, 6)).astype(np.float32)
    target = rng.standard_normal((NUM_SAMPLES, 3)).astype(np.float32)

    net = build_net(seed=100 + rank)   # ranks start from different weights on purpose
    np.savez(os.path.join(args.out, "pre_rank%d.npz" % rank), **strip_prefix(param_arrays(net)))
    broadcast_parameters(net.collect_params(), kv)
    np.savez(os.path.join(args.out, "init_rank%d.npz" % rank), **strip_prefix(param_arrays(net)))

    trainer = make_trainer(net.collect_params(), "adam", {"learning_rate": 0.01, "wd": 0.05}, kv)
    loss_fn = gluon.loss.L2Loss()
    sampler = ShardSampler(NUM_SAMPLES, num_workers, rank, shuffle=True, seed=7)
    batch = args.batch_per_worker
    loss_sum, count, steps = 0.0, 0, 0
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        idx = sampler.indices()
        for start in range(0, len(idx) - batch + 1, batch):
            sel = idx[start:start + batch]
            x, y = mx.nd.array(data[sel]), mx.nd.array(target[sel])
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(global_batch_size(batch, num_workers))
            loss_sum += float(loss.sum().asscalar())
            count += len(sel)
            steps += 1
    totals = allreduce_scalars(kv, {"loss_sum": loss_sum, "count": float(count)})
    barrier(kv)
    np.savez(os.path.join(args.out, "final_rank%d.npz" % rank), **strip_prefix(param_arrays(net)))
    if rank == 0:
        trainer.save_states(os.path.join(args.out, "trainer.states"))
    with open(os.path.join(args.out, "metrics_rank%d.json" % rank), "w") as f:
        json.dump({"rank": rank, "num_workers": num_workers, "steps": steps,
                   "local": {"loss_sum": loss_sum, "count": count}, "total": totals}, f)
    barrier(kv)
    return 0


if __name__ == "__main__":
    if "--naive-exit" in sys.argv:   # how many scripts end; binds sys.exit before main() runs
        sys.argv.remove("--naive-exit")
        sys.exit(main())
    sys.exit(main())
