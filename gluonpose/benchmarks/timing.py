"""Timing helpers for ``scripts/benchmark.py`` (speed lives in benchmarks, never in unit tests)."""
import os
import platform
import time

import mxnet as mx
import numpy as np


def machine_description():
    """One line naming the machine: CPU model, cores, threads MXNet uses, MXNet version."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, OMP_NUM_THREADS=%s, MXNET_SUBGRAPH_BACKEND=%s, mxnet %s" % (
        cpu, os.cpu_count() or 0, os.environ.get("OMP_NUM_THREADS", "unset"),
        os.environ.get("MXNET_SUBGRAPH_BACKEND", "unset"), mx.__version__)


def _sync(outputs):
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for o in outs:
        o.wait_to_read()


def time_forward_median(net, batch, input_size_wh, ctx, *, iters=5, warmup=2):
    """Samples/s of inference from the median time of ``iters`` batches (robust to load spikes; the
    side-by-side comparison times the official code the same way)."""
    w, h = input_size_wh
    x = mx.nd.array(np.random.RandomState(0).rand(batch, 3, h, w), ctx=ctx)
    for _ in range(warmup):
        _sync(net(x))
    times = []
    for _ in range(max(1, iters)):
        tic = time.perf_counter()
        _sync(net(x))
        times.append(time.perf_counter() - tic)
    return batch / float(np.median(times))


def time_forward_backward(net, batch, input_size_wh, ctx, *, iters=5, warmup=1, trainer=None):
    """Samples/s of a training step: forward under ``record``, backward on a sum of means,
    and ``trainer.step`` when a trainer is given."""
    w, h = input_size_wh
    x = mx.nd.array(np.random.RandomState(0).rand(batch, 3, h, w), ctx=ctx)

    def step():
        with mx.autograd.record():
            outs = net(x)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            loss = mx.nd.add_n(*[(o * o).mean() for o in outs])
        loss.backward()
        if trainer is not None:
            trainer.step(batch)
        mx.nd.waitall()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return batch * iters / (time.perf_counter() - start)
