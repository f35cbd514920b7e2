#!/usr/bin/env python
"""Measure speed: network forward / forward+backward, the training data pipeline, a training step
(``gluonpose-benchmark`` = ``python scripts/benchmark.py``).

  python scripts/benchmark.py --model hrnet_w32 --size 192 256 --batch 8          # inference + fwd/bwd
  python scripts/benchmark.py --model mshrnet_w48_2stage --size 288 384 --batch 4 --no-backward
  python scripts/benchmark.py --loader --size 288 384                                # data pipeline
  python scripts/benchmark.py --train --size 192 256 --batch 8 --profile step.json    # training step
  python scripts/launch_dist.py -n 2 -s 1 -- python scripts/benchmark.py --train --kvstore dist_sync \
      --size 96 128 --batch 2 --phases                                               # communication
  python scripts/benchmark.py --codec-grid                     # heatmap+offset round trip, every crop pixel
  python scripts/benchmark.py --model hrnet_w32 --head heatmap --deploy fp32 --no-backward   # deploy graph
  python scripts/benchmark.py --side-by-side --official-repo PATH --official-python PY \
      --model hrnet_w32 --head heatmap --size 192 256 --batch 8 --deploy fp32 --rounds 3 --threads 2
  python scripts/benchmark.py --loader --side-by-side --official-repo PATH --official-python PY \
      --size 288 384 --rounds 5                                 # data pipeline vs the official JointsDataset
  python scripts/benchmark.py --postprocess --side-by-side --official-repo PATH --official-python PY --rounds 3
      # COCO-val-sized rescoring, OKS-NMS, results json, pycocotools vs the official COCODataset.evaluate

``--side-by-side`` runs this benchmark and the official HRNet PyTorch pose net (its ``lib/models/pose_hrnet.py``
read from the checkout or git mirror ``--official-repo``, run by ``--official-python``, a Python with torch)
interleaved for ``--rounds`` rounds at ``--threads`` threads each, and prints both medians and their ratio.
With ``--loader`` it compares the training data pipeline with the official ``JointsDataset`` instead (its
``lib/dataset/JointsDataset.py`` and ``lib/utils/transforms.py``; one process each, OMP_NUM_THREADS=1 and one OpenCV
thread on both sides, the same COCO sample jpgs and the official w48 384x288 augmentation).
Every invocation ends with one line ``RESULT <what> samples/s: <number>``.

Set OMP_NUM_THREADS to the number of cores (MXNet's default oversubscribes small machines).
"""
import argparse
import os
import sys

import mxnet as mx
import numpy as np

from gluonpose.engine.context import get_contexts
from gluonpose.models import get_model
from gluonpose.utils.benchmark import machine_description, time_forward_backward, time_forward_median
from gluonpose.utils.cli import parse_cli_args, run_cli

#: the repository root (a source checkout, as ``pip install -e .`` keeps it)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="model name (default: hrnet_w32; for --summary: every model of the README table)")
    p.add_argument("--head", default=None, help="heatmap | heatmap_offset (default: the model's)")
    p.add_argument("--size", nargs=2, type=int, default=None, metavar=("W", "H"),
                   help="crop (default 192 256; --eval: 288 384 and 384 512)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--gpus", default="", help="'' = CPU, else e.g. 0")
    p.add_argument("--no-backward", action="store_true")
    p.add_argument("--deploy", choices=("fp32", "int8", "bf16"), default=None,
                   help="time the deploy graph (gluonpose.deploy.optimize): fp32 = BatchNorm folded + oneDNN "
                        "fusion, int8 = oneDNN quantization (calibrated on random crops: speed only), bf16 = AMP")
    p.add_argument("--mkldnn", action="store_true", help="same as --deploy fp32")
    p.add_argument("--side-by-side", action="store_true",
                   help="interleave this benchmark with the official PyTorch HRNet (see --official-*)")
    p.add_argument("--official-repo", default="", help="side-by-side: checkout or git mirror of the official "
                                                       "deep-high-resolution-net.pytorch")
    p.add_argument("--official-python", default="", help="side-by-side: a Python with torch")
    p.add_argument("--rounds", type=int, default=3, help="side-by-side: interleaved rounds")
    p.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS",
                   help="side-by-side: before each run, wait up to this long for the machine to fall below "
                        "0.3 busy cores (0 = start at once; the busy cores during each run are printed anyway)")
    p.add_argument("--threads", type=int, default=0,
                   help="side-by-side: threads for both programs (default: OMP_NUM_THREADS or the cores)")
    p.add_argument("--loader", action="store_true", help="benchmark the training data pipeline instead")
    p.add_argument("--train", action="store_true", help="benchmark full training steps (Adam) instead")
    p.add_argument("--postprocess", action="store_true",
                   help="time the COCO-val-sized post-processing (rescoring, OKS-NMS, results json, pycocotools; "
                        "5,000 images, 104,125 poses, cached under work_dirs/bench); with --side-by-side against "
                        "the official COCODataset.evaluate (an --official-python with numpy<1.24, pycocotools "
                        "and json_tricks; no torch needed)")
    p.add_argument("--profile", default=None, metavar="OUT.json",
                   help="--train: MXNet profiler trace of 2 steps (+ OUT.txt aggregate table)")
    p.add_argument("--phases", action="store_true", help="--train: also time forward+backward, "
                   "gradient push/pull and update separately (waits in between)")
    p.add_argument("--memory", action="store_true", help="--train: RSS after each phase")
    p.add_argument("--dynamic", action="store_true", help="--train: hybridize without "
                   "static_alloc/static_shape (memory comparison)")
    p.add_argument("--sequential", action="store_true", help="--train: wait for the whole "
                   "backward pass before the gradient push/pull (no overlap; for comparison)")
    p.add_argument("--kvstore", default=None, help="--train under scripts/launch_dist.py: dist_sync")
    p.add_argument("--compression", type=float, default=None, metavar="THRESHOLD",
                   help="--train, dist: MXNet 2-bit gradient compression with this threshold")
    p.add_argument("--bigarray-bound", type=int, default=None,
                   help="--train, dist: split arrays above this many elements over the servers")
    p.add_argument("--workers", type=int, default=0, help="loader benchmark: DataLoader workers")
    p.add_argument("--coco-dir", default=os.path.join(ROOT, "tests", "data", "samples", "coco"),
                   help="loader benchmark: folder with test_coco.json and its jpgs (default: the repository's "
                        "real COCO samples; synthetic images when absent)")
    p.add_argument("--codec-grid", action="store_true",
                   help="decode(encode(p)) of the heatmap+offset codec at every pixel of the 256x192, "
                        "384x288 and 512x384 crops, both decoders, udp on/off (no network)")
    p.add_argument("--summary", action="store_true",
                   help="print the README's table of parameters and multiply-adds at 256x192, 384x288 "
                        "and 512x384 (all its models, or only --model), then every decoder's rate at the "
                        "three crop sizes (one thread, trained-like outputs)")
    p.add_argument("--eval", action="store_true",
                   help="the evaluation pipeline on a COCO-val-sized job (5,000 images, 104,125 boxes, "
                        "generated once into work_dirs/bench) with a stand-in network that costs nothing, "
                        "flip test on, at 384x288 and 512x384 (or --size)")
    p.add_argument("--eval-ensemble", action="store_true",
                   help="--eval with the report's ensemble (3 stand-in members x 9 rotation/scale views, flip "
                        "test, breakdown rows) at 512x384 (or --size): rates and peak RSS")
    p.add_argument("--eval-workers", type=int, default=2, help="--eval: loader threads")
    p.add_argument("--eval-batch", type=int, default=32, help="--eval: crops per forward pass")
    p.add_argument("--eval-images", type=int, default=0,
                   help="--eval: a smaller job of this many images (default: COCO val's 5,000)")
    p.add_argument("--eval-boxes", type=int, default=0,
                   help="--eval: boxes of the smaller job (default: COCO val's 104,125)")
    p.add_argument("--decode-seconds", type=float, default=0.5,
                   help="--decode / --summary: at least this long per timed pass of a decoder")
    p.add_argument("--flip-study", action="store_true",
                   help="validation AP of --config/--weights without the flip test and with each flip fusion "
                        "(maps, votes, coords), for both heatmap+offset decoders")
    p.add_argument("--config", default=None, help="--flip-study: the model's config")
    p.add_argument("--weights", default=None, help="--flip-study: its .params")
    p.add_argument("--decode", action="store_true",
                   help="only the decoders' rates (samples/s, one thread, trained-like outputs, the three crops)")
    args = parse_cli_args(p, argv)
    args.size_given = args.size is not None
    args.size = tuple(args.size) if args.size_given else (192, 256)
    return args


def bench_model(args):
    ctx = get_contexts(args.gpus, check_available=True)[0]
    kwargs = {"head": args.head} if args.head else {}
    net = get_model(args.model, ctx=ctx, **kwargs)
    shape = (args.batch, 3, args.size[1], args.size[0])
    label = "%s %dx%d (h x w) batch %d" % (args.model, args.size[1], args.size[0], args.batch)
    deploy = args.deploy or ("fp32" if args.mkldnn else None)
    if deploy:
        from gluonpose.deploy.optimize import deploy_block
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
    from gluonpose.errors import MissingFileError
    if not args.official_repo or not os.path.exists(args.official_repo):
        raise MissingFileError("--official-repo: no checkout or git mirror of the official HRNet at %r"
                               % args.official_repo)
    if not args.official_python or not os.path.isfile(args.official_python):
        raise MissingFileError("--official-python: no Python at %r (one with torch installed)"
                               % args.official_python)


def _official_timer():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "utils", "official_timer.py")


def side_by_side_loader(args):
    """Our training data pipeline and the official ``JointsDataset``, interleaved, one process and one thread
    each; prints medians and the ratio."""
    from gluonpose.data.benchmark import loader_samples
    from gluonpose.errors import MissingFileError
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
    from gluonpose.errors import ConfigError
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
    from gluonpose.utils import sidebyside
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
    from gluonpose.benchmarks.decode import CROPS, decoder_rates, decoder_table
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
    from gluonpose.benchmarks.flip_study import flip_study, format_flip_table
    from gluonpose.config import load_config
    from gluonpose.errors import MissingFileError
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
    from gluonpose.benchmarks.eval_pipeline import (CROPS, default_cache_root, format_eval_result,
                                                    run_eval_benchmark)
    if args.eval_ensemble:
        from gluonpose.benchmarks.eval_pipeline import format_ensemble_result, run_ensemble_benchmark
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


def run(args):
    get_contexts(args.gpus, check_available=True)  # before any work
    if not args.summary:
        args.model = args.model or "hrnet_w32"
    print("machine: %s" % machine_description())
    if args.postprocess:
        from gluonpose.benchmarks.postprocess import run_postprocess
        return run_postprocess(cache_root=os.path.join(ROOT, "work_dirs", "bench"), side_by_side=args.side_by_side,
                               official_repo=args.official_repo, official_python=args.official_python,
                               rounds=args.rounds, quiet_wait=args.quiet_wait, threads=args.threads)
    if args.side_by_side:
        return side_by_side(args)
    if args.codec_grid:
        from gluonpose.codecs.grid import grid_table
        grid_table()
    elif args.summary:
        from gluonpose.models.summary import README_MODELS, summary_table
        models = README_MODELS
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
        from gluonpose.data.benchmark import bench_loader
        per_core = bench_loader(args.size, args.batch, args.workers, args.iters, coco_dir=args.coco_dir)
        print("RESULT loader %dx%d one process samples/s: %.3f" % (args.size[1], args.size[0], per_core))
    elif args.train:
        from gluonpose.engine.benchmark import bench_train
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


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
