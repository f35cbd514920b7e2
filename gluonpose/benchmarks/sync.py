"""Gradient synchronisation on real (emulated) links: ``scripts/benchmark.py --sync``.

For each model (default: the report's 2-stage W48, 128.9 M fp32 gradients = 0.516 GB, and the
2-stage W32), each machine count (default 2 and 4) and each engine, a job runs on emulated
machines (:mod:`gluonpose.dist.netns`: one network namespace per machine, every machine's
outgoing link capped at ``--sync-rate-mbit``) and times the training path's own gradient
all-reduce (``trainer.allreduce_grads()`` of a trainer made by
:func:`gluonpose.dist.kvstore.make_trainer`, then an engine wait) over the model's real
parameter shapes. Engines: ps-lite with one server per machine at MXNet's default
``kvstore_bigarray_bound`` (1,000,000 elements) and at a tuned one (arrays above it are split
evenly over the servers), and Horovod's ring all-reduce (Gloo).

The ideal time is the bytes on the busiest link over the link rate. Both a ring all-reduce and
ps-lite with a server on every machine (each machine's server holding 1/N of every split
array) move ``2 (N - 1) / N x S`` bytes out of (and into) every machine for S bytes of
gradients, so the ideal is ``2 (N-1)/N x S x 8 / rate`` for both; efficiency = ideal / measured.
Arrays that are not split go whole to one server, which makes that machine's link the busiest
(the reason to tune the bound).
"""
import json
import os
import sys
import time

import numpy as np

__all__ = ["param_shapes", "ideal_seconds", "bench_sync", "DEFAULT_MODELS", "TUNED_BOUND"]

DEFAULT_MODELS = ("mshrnet_w48_2stage", "mshrnet_w32_2stage")
#: ps-lite tuned: every array above 20,000 elements (all of HRNet's 3x3 convolutions from 48
#: channels up) is split over the servers
TUNED_BOUND = 20000


def param_shapes(model, head=None):
    """``[(name, shape)]`` of the model's trainable parameters (symbolic shape inference at
    256x192: no weights are allocated)."""
    import mxnet as mx
    from ..models import get_model
    net = get_model(model, initialize=False, **({"head": head} if head else {}))
    sym = net(mx.sym.var("data"))
    if isinstance(sym, (list, tuple)):
        sym = mx.sym.Group(list(sym))
    arg_shapes, _, _ = sym.infer_shape(data=(1, 3, 256, 192))
    shapes = dict(zip(sym.list_arguments(), arg_shapes))
    return [(p.name, tuple(shapes[p.name])) for p in net.collect_params().values()
            if p.grad_req != "null" and p.name in shapes]


def ideal_seconds(nbytes, machines, rate_mbit):
    """Bytes on the busiest link over the rate, for a ring or ps-lite with a server per machine."""
    return 2.0 * (machines - 1) / machines * nbytes * 8 / (rate_mbit * 1e6)


def _worker(shapes_file, kvstore, reps, bound):
    """One rank: the trainer's gradient all-reduce over the shapes, timed ``reps`` times."""
    import mxnet as mx
    from mxnet import gluon
    from ..dist.kvstore import barrier, create_kvstore, make_trainer
    shapes = json.load(open(shapes_file))
    kv, rank, workers = create_kvstore(kvstore, bigarray_bound=bound)
    params = gluon.ParameterDict()
    rng = np.random.RandomState(rank)
    for i, (name, shape) in enumerate(shapes):
        p = params.get("p%d_%s" % (i, name), shape=tuple(shape))
        p.initialize(mx.init.Zero(), ctx=mx.cpu())
    trainer = make_trainer(params, "sgd", {"learning_rate": 0.0}, kv)
    for p in params.values():
        p.grad()[:] = mx.nd.array(rng.standard_normal(p.shape).astype(np.float32))
    times = []
    for _ in range(reps + 1):   # the first is a warm-up
        barrier(kv)
        start = time.perf_counter()
        trainer.allreduce_grads()
        mx.nd.waitall()
        times.append(time.perf_counter() - start)
    barrier(kv)
    if rank == 0:
        print("SYNC " + json.dumps({"workers": workers, "times": times[1:]}), flush=True)
    return 0


def _run_job(engine, machines, rate_mbit, shapes_file, reps, bound):
    """Seconds per sync (median over the reps), or raise with the job's last output."""
    import io
    from ..dist.launch import build_hosts_plan, run_plan
    from ..dist.netns import EmulatedMachines
    kvstore = "horovod" if engine == "horovod" else "dist_sync"
    cmd = [sys.executable, "-m", "gluonpose.benchmarks.sync", "--worker", shapes_file, kvstore,
           str(reps), str(bound or 0)]
    env = {"OMP_NUM_THREADS": "1", "MXNET_KVSTORE_BIGARRAY_BOUND": str(bound or 1000000)}
    with EmulatedMachines(machines, rate_mbit=rate_mbit) as m:
        hosts = [(a, m.exec_prefix(i)) for i, a in enumerate(m.addresses)]
        server = None
        if engine == "horovod":
            from ..dist.hvdrun import horovod_hosts_plan
            plan, server = horovod_hosts_plan(cmd, hosts, rendezvous_addr=m.gateway, env=env)
        else:
            plan = build_hosts_plan(cmd, hosts, machines, machines, env=env)
        out = io.BytesIO()
        try:
            rc = run_plan(plan, timeout=1800, out=out)
        finally:
            if server is not None:
                server.stop()
    text = out.getvalue().decode("utf-8", "replace")
    lines = [line.split("SYNC ", 1)[1] for line in text.splitlines() if "SYNC {" in line]
    if rc != 0 or not lines:
        raise RuntimeError("sync job (%s, %d machines) failed (%d):\n%s"
                           % (engine, machines, rc, "\n".join(text.splitlines()[-15:])))
    return float(np.median(json.loads(lines[0])["times"]))


def bench_sync(*, models=DEFAULT_MODELS, machines=(2, 4), rate_mbit=1000.0, reps=3,
               engines=("ps", "ps-tuned", "horovod"), work_dir=None, say=print):
    """Run every (model, machine count, engine) and print one row each; returns the rows."""
    work_dir = work_dir or os.path.join(os.getcwd(), "work_dirs", "bench")
    os.makedirs(work_dir, exist_ok=True)
    rows = []
    say("| model | gradients | machines | engine | s per sync | ideal s | efficiency |")
    say("|---|---|---|---|---|---|---|")
    for model in models:
        shapes = param_shapes(model)
        nbytes = 4 * sum(int(np.prod(s)) for _, s in shapes)
        shapes_file = os.path.join(work_dir, "sync_shapes_%s.json" % model)
        json.dump(shapes, open(shapes_file, "w"))
        for n in machines:
            ideal = ideal_seconds(nbytes, n, rate_mbit)
            for engine in engines:
                bound = TUNED_BOUND if engine == "ps-tuned" else None
                seconds = _run_job("horovod" if engine == "horovod" else "ps", n, rate_mbit,
                                   shapes_file, reps, bound)
                row = dict(model=model, params_m=nbytes / 4e6, gb=nbytes / 1e9, machines=n,
                           engine=engine, seconds=seconds, ideal=ideal, efficiency=ideal / seconds)
                rows.append(row)
                say("| %s | %.1f M (%.3f GB) | %d | %s | %.2f | %.2f | %.0f %% |" % (
                    model, row["params_m"], row["gb"], n, _engine_label(engine), seconds, ideal,
                    100 * row["efficiency"]))
                say("RESULT sync %s %d machines %s efficiency: %.3f"
                    % (model, n, engine, row["efficiency"]))
    return rows


def _engine_label(engine):
    return {"ps": "ps-lite (bound 1,000,000)", "ps-tuned": "ps-lite (bound %d)" % TUNED_BOUND,
            "horovod": "horovod ring (Gloo)"}[engine]


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        from ..dist.failfast import WorkerRun
        with WorkerRun() as run:
            sys.exit(run.finish(_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                        int(sys.argv[5]) or None)))
    sys.exit("usage: python -m gluonpose.benchmarks.sync --worker SHAPES KVSTORE REPS BOUND")
