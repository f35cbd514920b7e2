"""Throughput of full training steps (forward, per-stage loss, backward, Adam) on random targets."""
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..codecs import layout as output_layout
from ..models import get_model
from .context import get_contexts
from .losses import PoseLoss


def bench_train(model="hrnet_w32", input_size_wh=(192, 256), batch=8, gpus="", iters=5, head=None):
    """Print training samples/s of ``model`` at ``input_size_wh`` with a per-device ``batch``."""
    ctx_list = get_contexts(gpus)
    kwargs = {"head": head} if head else {}
    net = get_model(model, ctx=ctx_list, **kwargs)
    net.hybridize(static_alloc=True, static_shape=True)
    head = getattr(net, "head")
    w, h = input_size_wh
    k = net.num_joints
    rng = np.random.RandomState(0)
    n = batch * len(ctx_list)
    x = mx.nd.array(rng.rand(n, 3, h, w))
    target = mx.nd.array((rng.rand(n, 1, output_layout.num_channels(head, k), h // 4, w // 4) > 0.95))
    weight = mx.nd.ones((n, 1, k))
    loss_fn = PoseLoss(head, k)
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-3})

    def step():
        xs = gluon.utils.split_and_load(x, ctx_list)
        ts = gluon.utils.split_and_load(target, ctx_list)
        ws = gluon.utils.split_and_load(weight, ctx_list)
        with autograd.record():
            losses = [loss_fn(net(a), b, c)[0] for a, b, c in zip(xs, ts, ws)]
        autograd.backward(losses)
        trainer.step(n)
        mx.nd.waitall()

    step()
    tic = time.perf_counter()
    for _ in range(iters):
        step()
    speed = n * iters / (time.perf_counter() - tic)
    print("%s %dx%d batch %d training (fwd + loss + bwd + Adam): %.2f samples/s"
          % (model, h, w, n, speed))
    return speed
