"""Throughput of full training steps (forward, per-stage loss, backward, Adam) on random targets.

The step is :meth:`gluonpose.engine.train_loop.TrainLoop.train_step`, the training loop's own
(``split_and_load``, one read of the loss terms queued before the backward pass, the NaN guard,
``trainer.step``). With
``phases=True`` extra steps are run with an engine wait after each phase, which splits a step
into forward+backward, gradient push/pull (the kvstore all-reduce; ~0 without one) and the
optimizer update (these waits remove the overlap, so the phases add up to more than a step).
Under ``scripts/launch_dist.py`` with a ``dist_*`` kvstore every worker runs the same steps and
rank 0 prints. CPU time is reported beside wall time: on a shared machine it is the steadier
figure. Peak RSS is the process's ``ru_maxrss``.
"""
import os
import resource
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..codecs import layout as output_layout
from ..engine.context import get_contexts
from ..dist.kvstore import broadcast_parameters, create_kvstore, make_trainer
from ..engine.hooks import NonFiniteGuard
from ..engine.train_loop import TrainLoop
from ..models import get_model
from ..models.builder import quiet_unconsumed_warning
from ..models.losses import PoseLoss

GIB = 1024.0 ** 3


def peak_rss_gib():
    """Peak resident memory of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0 / GIB


def current_rss_gib():
    """Resident memory of this process now (GiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GIB


def gradient_bytes(params):
    """Bytes of the gradients one worker pushes per step (one copy per parameter)."""
    return sum(int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize
               for p in params.values() if p.grad_req != "null")


class _Bench:
    """A model, random data, a trainer and the training loop's step, set up for timing."""

    def __init__(self, model, input_size_wh, batch, gpus, head, kvstore, compression,
                 bigarray_bound, static_alloc):
        self.kv, self.rank, self.num_workers = create_kvstore(kvstore, bigarray_bound=bigarray_bound)
        self.ctx_list = get_contexts(gpus)
        self.rss = [("start", current_rss_gib())]
        self.net = get_model(model, ctx=self.ctx_list, **({"head": head} if head else {}))
        quiet_unconsumed_warning()
        self.net.hybridize(static_alloc=static_alloc, static_shape=static_alloc)
        self.rss.append(("parameters built", current_rss_gib()))
        w, h = input_size_wh
        k = self.net.num_joints
        rng = np.random.RandomState(0)
        self.n = batch * len(self.ctx_list)
        channels = output_layout.num_channels(self.net.head, k)
        self.data = (mx.nd.array(rng.rand(self.n, 3, h, w)),
                     mx.nd.array((rng.rand(self.n, 1, channels, h // 4, w // 4) > 0.95)),
                     mx.nd.ones((self.n, 1, k)))
        self.loss_fn = PoseLoss(self.net.head, k)
        self.net(mx.nd.zeros((1, 3, h, w), ctx=self.ctx_list[0]))   # shapes before the kvstore init
        mx.nd.waitall()
        self.trainer = make_trainer(self.net.collect_params(), "adam", {"learning_rate": 1e-3},
                                    self.kv, compression=compression)
        broadcast_parameters(self.net.collect_params(), self.kv)
        self.global_batch = self.n * self.num_workers
        self.loop = TrainLoop(net=self.net, loss_fn=self.loss_fn, loader=None, sampler=None,
                              trainer=self.trainer, schedule=None, ctx_list=self.ctx_list,
                              global_batch=self.global_batch, kvstore=self.kv, rank=self.rank,
                              hooks=[NonFiniteGuard()])

    @property
    def distributed(self):
        return self.kv is not None and not isinstance(self.kv, str)

    def step(self, sequential=False):
        self.loop.train_step(self.data, sequential=sequential)

    def forward_backward(self):   # a step without its update (the phases time the rest apart)
        self.loop.forward_backward(self.data)

    def first_step_in_pieces(self):
        """The first step with the RSS after its forward, backward and update."""
        xs, ts, ws = ([a] for a in self.data) if len(self.ctx_list) == 1 else (
            gluon.utils.split_and_load(a, self.ctx_list) for a in self.data)
        with autograd.record():
            results = [self.loss_fn(self.net(a), b, c) for a, b, c in zip(xs, ts, ws)]
        mx.nd.waitall()
        self.rss.append(("forward (recorded)", current_rss_gib()))
        autograd.backward([total for total, _ in results])
        mx.nd.waitall()
        self.rss.append(("backward", current_rss_gib()))
        del results
        self.trainer.step(self.global_batch)
        mx.nd.waitall()
        self.rss.append(("update (Adam states created)", current_rss_gib()))


def bench_train(model="hrnet_w32", input_size_wh=(192, 256), batch=8, gpus="", iters=5,
                head=None, profile=None, kvstore=None, phases=False, compression=None,
                bigarray_bound=None, memory=False, sequential=False, static_alloc=True,
                say=print):
    """Time training steps of ``model`` at ``input_size_wh`` with a per-device ``batch``.

    Returns a dict (``samples_per_s`` over all workers, per-step seconds, CPU seconds, phases,
    ``gradient_bytes``, ``peak_rss_gib`` ...). ``profile``: write an MXNet profiler trace of two
    steps to this JSON file (and the aggregate table next to it, ``.txt``). ``sequential``: wait
    for the whole backward pass before the gradient push/pull (no overlap; for comparison).
    """
    b = _Bench(model, input_size_wh, batch, gpus, head, kvstore, compression, bigarray_bound,
               static_alloc)
    if b.rank != 0:
        say = lambda *a, **k: None   # noqa: E731
    if memory:
        b.first_step_in_pieces()
    b.step(sequential)
    mx.nd.waitall()
    b.rss.append(("a full step", current_rss_gib()))
    if memory:
        _memory_breakdown(b.net, b.trainer, b.forward_backward, b.rss, say)
    if profile:
        if b.num_workers > 1:   # one trace per worker
            root, ext = os.path.splitext(profile)
            profile = "%s.rank%d%s" % (root, b.rank, ext)
        _profile(lambda: b.step(sequential), profile, say, distributed=b.distributed)
        if b.distributed:
            say(_push_overlap(profile))
    cpu0, tic = time.process_time(), time.perf_counter()
    for _ in range(iters):
        b.step(sequential)
    mx.nd.waitall()
    wall = (time.perf_counter() - tic) / iters
    cpu = (time.process_time() - cpu0) / iters
    w, h = input_size_wh
    result = {"model": model, "input_hw": (h, w), "batch_per_worker": b.n,
              "workers": b.num_workers, "rank": b.rank, "step_s": wall, "cpu_s_per_step": cpu,
              "samples_per_s": b.global_batch / wall,
              "gradient_bytes": gradient_bytes(b.net.collect_params()),
              "peak_rss_gib": peak_rss_gib()}
    if phases:
        result["phases"] = _time_phases(b.forward_backward, b.trainer, b.global_batch, b.kv, iters)
    _say_result(result, model, say)
    return result


def _say_result(result, model, say):
    h, w = result["input_hw"]
    label = "%s %dx%d batch %d/worker x %d worker(s)" % (model, h, w, result["batch_per_worker"],
                                                        result["workers"])
    say("%s training (fwd + loss + bwd + %sAdam): %.3f s/step (CPU %.3f s/step), %.2f samples/s"
        % (label, "push/pull + " if result["workers"] > 1 else "", result["step_s"],
           result["cpu_s_per_step"], result["samples_per_s"]))
    say("gradients: %.1f MB per worker per step; peak RSS %.2f GiB"
        % (result["gradient_bytes"] / 1e6, result["peak_rss_gib"]))
    if "phases" in result:
        ph = result["phases"]
        say("phases with waits in between (s/step, wall / this worker's CPU): forward+backward "
            "%.3f / %.3f, push/pull %.3f / %.3f, update %.3f / %.3f"
            % tuple(ph[p + k] for k in ("forward_backward", "push_pull", "update")
                    for p in ("", "cpu_")))


def _time_phases(forward_backward, trainer, global_batch, kv, iters):
    """Mean seconds of each phase with an engine wait (and, distributed, a barrier) between."""
    from ..dist.kvstore import barrier
    sums = dict.fromkeys(("forward_backward", "push_pull", "update", "cpu_forward_backward",
                          "cpu_push_pull", "cpu_update"), 0.0)
    clock = time.perf_counter
    for _ in range(iters):
        barrier(kv)   # the all-reduce then measures communication, not another worker's lag
        t0, c0 = clock(), time.process_time()
        forward_backward()
        mx.nd.waitall()
        t1, c1 = clock(), time.process_time()
        barrier(kv)
        t1b, c1b = clock(), time.process_time()
        trainer.allreduce_grads()
        mx.nd.waitall()
        t2, c2 = clock(), time.process_time()
        trainer.update(global_batch)
        mx.nd.waitall()
        t3, c3 = clock(), time.process_time()
        for key, wall, cpu in (("forward_backward", t1 - t0, c1 - c0),
                               ("push_pull", t2 - t1b, c2 - c1b), ("update", t3 - t2, c3 - c2)):
            sums[key] += wall
            sums["cpu_" + key] += cpu
    return {key: v / iters for key, v in sums.items()}


def _memory_breakdown(net, trainer, forward_backward, rss, say):
    """Print the RSS after each phase and the bytes of parameters, gradients, Adam states."""
    params = net.collect_params()
    nbytes = sum(int(np.prod(p.shape)) * 4 for p in params.values())
    grads = sum(int(np.prod(p.shape)) * 4 for p in params.values() if p.grad_req != "null")
    forward_backward()
    mx.nd.waitall()
    rss.append(("second fwd+bwd", current_rss_gib()))
    for label, value in rss:
        say("RSS %-34s %.2f GiB" % (label, value))
    say("parameters %.2f GiB, gradients %.2f GiB, Adam mean+var %.2f GiB, peak RSS %.2f GiB"
        % (nbytes / GIB, grads / GIB, 2 * grads / GIB, peak_rss_gib()))


def _profile(step, path, say, distributed=False):
    """MXNet profiler trace (chrome://tracing JSON) of two steps (one when distributed), plus the
    aggregate table."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    step()   # warm
    mx.nd.waitall()
    mx.profiler.set_config(profile_all=True, aggregate_stats=True, continuous_dump=False,
                           filename=path)
    mx.profiler.set_state("run")
    for _ in range(1 if distributed else 2):
        step()
    mx.nd.waitall()
    mx.profiler.set_state("stop")
    mx.profiler.dump()
    table = mx.profiler.dumps(reset=True, format="table", sort_by="total", ascending=False)
    txt = os.path.splitext(path)[0] + ".txt"
    with open(txt, "w") as f:
        f.write(table)
    say("profile of %d step(s): %s (chrome://tracing), aggregate table: %s" % (1 if distributed else 2, path, txt))


def _push_overlap(trace_path):
    """From a profiler trace of one step: how many gradient push(pull)s started before the
    backward pass ended, and how much of the backward pass was left then."""
    import json
    with open(trace_path) as f:
        events = json.load(f)["traceEvents"]
    spans = {}
    for e in events:
        if e.get("ph") in ("B", "E") and "name" in e:
            spans.setdefault((e["name"], e.get("tid")), []).append((e["ph"], e["ts"]))
    backward, pushes = [], []
    for (name, _), marks in spans.items():
        starts = [t for ph, t in marks if ph == "B"]
        ends = [t for ph, t in marks if ph == "E"]
        for begin, end in zip(starts, ends):
            if "_backward" in name:
                backward.append((begin, end))
            elif name.startswith("KVStoreDist") and "Push" in name:
                pushes.append(begin)
    if not backward or not pushes:
        return "push overlap: no backward/push events in the trace"
    first, last = min(b for b, _ in backward), max(e for _, e in backward)
    early = sorted(t for t in pushes if t < last)
    return ("push overlap: %d of %d gradient pushes started before the backward pass ended; the "
            "first %.0f ms after the backward pass began, %.0f ms before it ended"
            % (len(early), len(pushes), ((early[0] if early else last) - first) / 1e3,
               (last - (early[0] if early else last)) / 1e3))
