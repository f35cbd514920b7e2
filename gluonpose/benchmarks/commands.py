"""The commands of ``scripts/benchmark.py`` (``gluonpose-benchmark``): one function per mode, and
:func:`run`, which picks the mode from the parsed arguments (see ``gluonpose/tools/benchmark.py``).
"""
import os
import sys

import mxnet as mx
import numpy as np

from ..engine.context import get_contexts
from ..models import get_model
from .timing import machine_description, time_forward_backward, time_forward_median

#: the repository root (a source checkout, as ``pip install -e .`` keeps it)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench_model(args):
    ctx = get_contexts(args.gpus, check_available=True)[0]
    kwargs = {"head": args.head} if args.head else {}
    net = get_model(args.model, ctx=ctx, **kwargs)
    shape = (args.batch, 3, args.size[1], args.size[0])
    label = "%s %dx%d (h x w) batch %d" % (args.model, args.size[1], args.size[0], args.batch)
    deploy = args.deploy or ("fp32" if args.mkldnn else None)
    if deploy:
        from ..deploy.optimize import deploy_block
        net(mx.nd.zeros(shape, ctx=ctx))
        calib = np.random.RandomState(1).standard_normal((args.batch,) + shape[1:]).astype(np.float32) \
            if deploy == "int8" else None
        runner = deploy_block(net, shape, precision=deploy, calib_data=calib, ctx=ctx)
    else:
        net.hybridize(static_alloc=True, static_shape=True)
        runner = net
    fwd = time_forward_median(runner, args.batch, args.size, ctx, iters=args.iters)
    what = "%s inference%s" % (label, " (deploy %s)" % deploy if deploy else "")
    print("%s: %.2f samples/s (median of %d batches)" % (what, fwd, args.iters))
    if not args.no_backward and not deploy:
        fb = time_forward_backward(net, args.batch, args.size, ctx, iters=max(2, args.iters // 2))
        print("%s forward+backward: %.2f samples/s" % (label, fb))
    print("RESULT %s samples/s: %.3f" % (what, fwd))
    return 0


def _check_official(args):
    from ..errors import MissingFileError
    if not args.official_repo or not os.path.exists(args.official_repo):
        raise MissingFileError("--official-repo: no checkout or git mirror of the official HRNet at %r"
                               % args.official_repo)
    if not args.official_python or not os.path.isfile(args.official_python):
        raise MissingFileError("--official-python: no Python at %r (one with torch installed)"
                               % args.official_python)


def _official_timer():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_timer.py")


def side_by_side_loader(args):
    """Our training data pipeline and the official ``JointsDataset``, interleaved, one process and one thread
    each; prints medians and the ratio."""
    from .loader import loader_samples
    from ..errors import MissingFileError
    _check_official(args)
    ann = os.path.join(args.coco_dir, "test_coco.json")
    if not os.path.isfile(ann):
        raise MissingFileError("--coco-dir: no test_coco.json in %r (both pipelines read the same jpgs)"
                               % args.coco_dir)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    w, h = args.size
    samples = loader_samples(args.batch, args.iters)
    ours = [sys.executable, "-m", "gluonpose.tools.benchmark", "--loader", "--size", str(w), str(h),
            "--batch", str(args.batch), "--iters", str(args.iters), "--coco-dir", args.coco_dir]
    official = [args.official_python, _official_timer(), args.official_repo, "loader", str(h), str(w),
                str(samples), "1", os.path.abspath(args.coco_dir)]
    print("side by side, %d rounds, data pipeline %dx%d, %d samples per run, one process each, OMP_NUM_THREADS=1 "
          "and 1 OpenCV thread on both sides" % (args.rounds, h, w, samples))
    return _interleave(args, ours, official, env, "official JointsDataset", "loader %dx%d" % (h, w))


def side_by_side(args):
    """This benchmark and the official PyTorch HRNet, interleaved; prints medians and the ratio."""
    import re
    from ..errors import ConfigError
    if args.loader:
        return side_by_side_loader(args)
    match = re.fullmatch(r"hrnet_w(\d+)", args.model)
    if not match or (args.head or "heatmap") != "heatmap":
        raise ConfigError("--side-by-side compares the official single-stage pose net: use --model hrnet_w<C> "
                          "--head heatmap (got --model %s --head %s)" % (args.model, args.head))
    _check_official(args)
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    mode = "train" if args.train else "infer"
    ours = [sys.executable, "-m", "gluonpose.tools.benchmark", "--model", args.model, "--head", "heatmap",
            "--size", str(args.size[0]), str(args.size[1]), "--batch", str(args.batch),
            "--iters", str(args.iters)]
    if args.train:
        ours.append("--train")
    else:
        ours.append("--no-backward")
        if args.deploy:
            ours += ["--deploy", args.deploy]
    official = [args.official_python, _official_timer(), args.official_repo, match.group(1), str(args.size[1]),
                str(args.size[0]), str(args.batch), str(threads), str(args.iters), mode]
    print("side by side, %d rounds, %d threads each, %s" % (args.rounds, threads, mode))
    return _interleave(args, ours, official, env, "official",
                       "%s %s %dx%d batch %d%s" % (mode, args.model, args.size[1], args.size[0], args.batch,
                                                   " deploy " + args.deploy if args.deploy and not args.train
                                                   else ""))


def _interleave(args, ours, official, env, official_name, what):
    """Run ``ours`` and ``official`` interleaved for ``args.rounds`` rounds; print the medians, the ratio and the
    RESULT line."""
    from . import sidebyside
    figures = sidebyside.run_interleaved([("gluonpose", ours), ("official", official)], args.rounds, env=env,
                                       quiet_wait=args.quiet_wait)
    medians, ratio = sidebyside.summarize(figures, "gluonpose", "official")
    print("median gluonpose %.3f samples/s, %s %.3f samples/s: ratio %.2f"
          % (medians["gluonpose"], official_name, medians["official"], ratio))
    print("RESULT side-by-side %s gluonpose/official ratio %.3f, gluonpose samples/s: %.3f"
          % (what, ratio, medians["gluonpose"]))
    return 0


def bench_decoders(min_seconds=0.5):
    """Every decoder's rate at the three crop sizes (one thread; RESULT line: the default Hough
    decoder at 512x384)."""
    from .decode import CROPS, decoder_rates, decoder_table
    quick = min_seconds < 0.1
    rates = decoder_rates(min_seconds=min_seconds, repeats=1 if quick else 3,
                          samples=16 if quick else 64)
    print("decoders, samples/s on one thread, trained-like outputs (batches of 32):")
    print("\n".join(decoder_table(rates)))
    for (label, size), rate in rates.items():
        if label.endswith("(default)") and size == CROPS[-1]:
            print("RESULT decode hough %dx%d samples/s: %.3f" % (size[1], size[0], rate))


def bench_flip_study(args):
    """``--flip-study``: AP without the flip test and with each fusion (docs/benchmarks.md)."""
    from .flip_study import flip_study, format_flip_table
    from ..config import load_config
    from ..errors import MissingFileError
    if not args.config or not args.weights:
        raise MissingFileError("--flip-study needs --config C.yaml and --weights W.params")
    cfg = load_config(args.config)
    table, boxes = flip_study(cfg, args.weights, ctx=get_contexts(args.gpus, check_available=True))
    print(boxes)
    print("\n".join(format_flip_table(table)))
    best = max(table.items(), key=lambda kv: kv[1])
    print("RESULT flip-study best %s %s AP: %.4f" % (best[0][0], best[0][1], best[1]))


def bench_eval(args):
    """``--eval``: the evaluation pipeline on the COCO-val-sized job (RESULT line per crop)."""
    from .eval_pipeline import (CROPS, default_cache_root, format_eval_result,
                                                    run_eval_benchmark)
    if args.eval_ensemble:
        from .eval_pipeline import format_ensemble_result, run_ensemble_benchmark
        size = tuple(args.size) if args.size_given else CROPS[-1]
        res = run_ensemble_benchmark(size_wh=size, cache_root=default_cache_root(),
                                     workers=args.eval_workers, batch_size=args.eval_batch,
                                     images=args.eval_images or None, boxes=args.eval_boxes or None)
        print("\n".join(format_ensemble_result(size, res, args.eval_workers)))
        return
    sizes = [tuple(args.size)] if args.size_given else list(CROPS)
    for size in sizes:
        res = run_eval_benchmark(size_wh=size, cache_root=default_cache_root(),
                                 workers=args.eval_workers, batch_size=args.eval_batch,
                                 images=args.eval_images or None, boxes=args.eval_boxes or None)
        print("\n".join(format_eval_result(size, res, args.eval_workers)))


def bench_io_and_sync(args):
    """``--jpeg`` (JPEG reading with corrupt-data detection), ``--data-scale`` (records of the
    report's size) or ``--sync`` (gradient synchronisation on emulated machines)."""
    if args.data_scale:
        from .data_scale import generate, measure
        samples = os.path.join(ROOT, "tests", "data", "samples")
        measure(generate(samples, os.path.join(ROOT, "work_dirs", "bench")))
        return 0
    if args.jpeg:
        from .jpeg import bench_jpeg
        res = bench_jpeg(os.path.join(ROOT, "tests", "data", "samples"),
                         work_dir=os.path.join(ROOT, "work_dirs", "bench"))
        return 0 if res["rejected"] == res["differing"] == 0 else 1
    from .sync import DEFAULT_MODELS, bench_sync
    print("links: every emulated machine's outgoing rate %g Mbit/s (tc tbf), %d syncs per job "
          "(median)" % (args.sync_rate_mbit, args.sync_reps))
    bench_sync(models=args.sync_models or DEFAULT_MODELS, machines=args.sync_machines,
               rate_mbit=args.sync_rate_mbit, reps=args.sync_reps, engines=args.sync_engines,
               work_dir=os.path.join(ROOT, "work_dirs", "bench"))
    return 0


def run(args):
    get_contexts(args.gpus, check_available=True)  # before any work
    if not args.summary:
        args.model = args.model or "hrnet_w32"
    print("machine: %s" % machine_description())
    if args.postprocess:
        from .postprocess import run_postprocess
        return run_postprocess(cache_root=os.path.join(ROOT, "work_dirs", "bench"), side_by_side=args.side_by_side,
                               official_repo=args.official_repo, official_python=args.official_python,
                               rounds=args.rounds, quiet_wait=args.quiet_wait, threads=args.threads)
    if args.side_by_side:
        return side_by_side(args)
    if args.jpeg or args.sync or args.data_scale:
        return bench_io_and_sync(args)
    if args.codec_grid:
        from ..codecs.grid import grid_table
        grid_table()
    elif args.summary:
        from ..models.summary import TABLE_MODELS, summary_table
        models = TABLE_MODELS
        if args.model:
            kwargs = {"head": args.head} if args.head else {}
            label = args.model + (" (%s head)" % args.head if args.head else "")
            models = ((label, args.model, kwargs),)
        print("\n".join(summary_table(models)))
        print("GMAC = multiply-adds / 1e9; GFLOPs = multiply-adds / 2^30 (the HRNet convention); "
              "params without BatchNorm running statistics")
        print()
        bench_decoders(args.decode_seconds)
    elif args.decode:
        bench_decoders(args.decode_seconds)
    elif args.eval or args.eval_ensemble:
        bench_eval(args)
    elif args.flip_study:
        bench_flip_study(args)
    elif args.loader:
        from .loader import bench_loader
        per_core = bench_loader(args.size, args.batch, args.workers, args.iters, coco_dir=args.coco_dir)
        print("RESULT loader %dx%d one process samples/s: %.3f" % (args.size[1], args.size[0], per_core))
    elif args.train:
        from .train_step import bench_train
        res = bench_train(args.model, args.size, args.batch, args.gpus, args.iters, args.head,
                          profile=args.profile, kvstore=args.kvstore, phases=args.phases,
                          memory=args.memory, bigarray_bound=args.bigarray_bound,
                          sequential=args.sequential, static_alloc=not args.dynamic,
                          compression=None if args.compression is None else
                          {"type": "2bit", "threshold": args.compression})
        if res.get("rank", 0) == 0:
            print("RESULT train %s %dx%d samples/s: %.3f"
                  % (args.model, args.size[1], args.size[0], res["samples_per_s"]))
    else:
        return bench_model(args)
    return 0
