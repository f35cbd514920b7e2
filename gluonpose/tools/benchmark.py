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
  python scripts/benchmark.py --decode                        # every decoder at the three crop sizes
  python scripts/benchmark.py --eval                          # evaluation pipeline, COCO-val-sized job
  python scripts/benchmark.py --eval-ensemble                 # the report's ensemble: rates, peak RSS
  python scripts/benchmark.py --flip-study --config C --weights W   # AP with each flip-test fusion

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

from gluonpose.utils.cli import parse_cli_args, run_cli

#: the repository root (a source checkout, as ``pip install -e .`` keeps it)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model_args(p):
    """Network speed and counts."""
    p.add_argument("--model", default=None,
                   help="model name (default: hrnet_w32; for --summary: every model of the table in docs/getting-started.md)")
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
    p.add_argument("--summary", action="store_true",
                   help="print the table of parameters (docs/getting-started.md) and multiply-adds at 256x192, 384x288 "
                        "and 512x384 (all its models, or only --model), then every decoder's rate at the "
                        "three crop sizes (one thread, trained-like outputs)")
    p.add_argument("--codec-grid", action="store_true",
                   help="decode(encode(p)) of the heatmap+offset codec at every pixel of the 256x192, "
                        "384x288 and 512x384 crops, both decoders, udp on/off (no network)")


def _side_by_side_args(p):
    """Comparisons with the official code."""
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
    p.add_argument("--postprocess", action="store_true",
                   help="time the COCO-val-sized post-processing (rescoring, OKS-NMS, results json, pycocotools; "
                        "5,000 images, 104,125 poses, cached under work_dirs/bench); with --side-by-side against "
                        "the official COCODataset.evaluate (an --official-python with numpy<1.24, pycocotools "
                        "and json_tricks; no torch needed)")


def _train_and_loader_args(p):
    """Training steps and the training data pipeline."""
    p.add_argument("--loader", action="store_true", help="benchmark the training data pipeline instead")
    p.add_argument("--train", action="store_true", help="benchmark full training steps (Adam) instead")
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


def _eval_args(p):
    """Decoders, the evaluation pipeline and the flip test."""
    p.add_argument("--decode", action="store_true",
                   help="only the decoders' rates (samples/s, one thread, trained-like outputs, the three crops)")
    p.add_argument("--decode-seconds", type=float, default=0.5,
                   help="--decode / --summary: at least this long per timed pass of a decoder")
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
    p.add_argument("--flip-study", action="store_true",
                   help="validation AP of --config/--weights without the flip test and with each flip fusion "
                        "(maps, votes, coords), for both heatmap+offset decoders")
    p.add_argument("--config", default=None, help="--flip-study: the model's config")
    p.add_argument("--weights", default=None, help="--flip-study: its .params")


def _sync_args(p):
    """Gradient synchronisation on emulated machines (root)."""
    p.add_argument("--sync", action="store_true",
                   help="time the gradient all-reduce of the 2-stage W48 and W32 on 2 and 4 emulated "
                        "machines (network namespaces, shaped links): ps-lite (default and tuned "
                        "big-array bound) and horovod, as an efficiency against the link rate (root)")
    p.add_argument("--sync-models", nargs="+", default=None, metavar="MODEL",
                   help="--sync: models (default mshrnet_w48_2stage mshrnet_w32_2stage)")
    p.add_argument("--sync-machines", nargs="+", type=int, default=[2, 4], metavar="N")
    p.add_argument("--sync-rate-mbit", type=float, default=1000.0,
                   help="--sync: every machine's outgoing link rate (tc tbf)")
    p.add_argument("--sync-engines", nargs="+", default=["ps", "ps-tuned", "horovod"],
                   choices=("ps", "ps-tuned", "horovod"))
    p.add_argument("--sync-reps", type=int, default=3, help="--sync: timed syncs per job")
    p.add_argument("--data-scale", action="store_true",
                   help="a record set of the report's size (599,040 instances in the four readers' "
                        "formats, sample images reused): start-up to the first batch and the summed "
                        "PSS of the training process and 8 loader processes over 1,000 batches")
    p.add_argument("--jpeg", action="store_true",
                   help="JPEG reading with corrupt-data detection: 10,000 undamaged encoder variants "
                        "(none may be rejected or differ from OpenCV) and the decode speed against "
                        "OpenCV's, interleaved")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for group in (_model_args, _side_by_side_args, _train_and_loader_args, _eval_args, _sync_args):
        group(p)
    args = parse_cli_args(p, argv)
    args.size_given = args.size is not None
    args.size = tuple(args.size) if args.size_given else (192, 256)
    return args


def main(argv=None):
    from gluonpose.benchmarks.commands import run
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
