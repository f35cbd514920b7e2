"""Toy data-parallel training used by tests/test_distributed.py (not a test module itself).

Trains a tiny conv+dense net with Adam on fixed random data for 2 epochs. Run alone with
``--kvstore none`` and the global batch, or as a worker of scripts/launch_dist.py with
``--kvstore dist_sync`` and the per-worker batch. Writes into ``--out``:
``pre_rank{r}.npz`` (weights before broadcast), ``init_rank{r}.npz`` (after broadcast),
``final_rank{r}.npz``, ``metrics_rank{r}.json`` and, on rank 0, ``trainer.states``.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

from gluonpose.engine.distributed import (ShardSampler, allreduce_scalars, barrier,  # noqa: E402
                                          broadcast_parameters, create_kvstore,
                                          global_batch_size, make_trainer)

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


def param_arrays(net):
    return {name: p.data().asnumpy() for name, p in net.collect_params().items()}


def strip_prefix(arrays):
    """Parameter names without the block-counter prefix (differs between processes never,
    but keeps the files comparable if it did)."""
    return {name.split("_", 1)[1]: value for name, value in arrays.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvstore", default="none")
    ap.add_argument("--batch-per-worker", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
