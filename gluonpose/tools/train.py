#!/usr/bin/env python
"""Train a (Multi-Stage) HRNet pose network (``gluonpose-train`` = ``python scripts/train_mshrnet.py``).

  python scripts/train_mshrnet.py                                   # embedded synthetic default, CPU
  python scripts/train_mshrnet.py --config configs/mshrnet/mshrnet_w48_2stage_512x384_coco.yaml --gpus 0-7
  python scripts/train_mshrnet.py --config C --resume               # continue from work_dir/latest.json
  python scripts/train_mshrnet.py --config C --resume work_dirs/x/epoch_0100.json   # from that checkpoint
  python scripts/launch_dist.py -n 2 -s 2 -H hosts -- \\
      python scripts/train_mshrnet.py --config C --gpus 0-7 --kvstore dist_sync
Any config key can be overridden, anywhere on the line: ``train.lr=5e-4 loader.batch_size_per_device=24``.
"""
import argparse
import logging
import os
import re
import sys
import time

from gluonpose.utils.cli import parse_cli_args, report_user_error, run_cli

LOG = logging.getLogger("gluonpose.train")

#: the repository's configs/ (a source checkout, as ``pip install -e .`` keeps it)
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "synthetic", "mshrnet_w8_2stage_128x96_synthetic.yaml")
_OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+=")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: embedded synthetic)")
    p.add_argument("--gpus", default=None, help="'0-7', '0,1,2,3', '' for CPU, 'local' for the GPU of the "
                   "process's local rank (horovod, one process per GPU) (default: config)")
    p.add_argument("--kvstore", default=None,
                   help="local | device | dist_sync | dist_device_sync | horovod (default: config)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue training: alone, from the newest checkpoint of the work dir "
                        "(work_dir/latest.json); with a path, from that checkpoint (an epoch_N.json "
                        "or epoch_N.params of a work dir, or a work dir)")
    p.add_argument("--work-dir", default=None, help="override train.work_dir")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress within epochs (the end-of-epoch lines stay); without a "
                        "terminal the progress bar is a log line every few steps anyway")
    p.add_argument("--preview", type=int, default=4, metavar="N",
                   help="after training, draw the predictions of the first N validation images "
                        "into work_dir/predictions.png (0 = off; needs data.val)")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = parse_cli_args(p, argv)
    if isinstance(args.resume, str) and _OVERRIDE.match(args.resume) and not os.path.exists(args.resume):
        args.overrides.append(args.resume)  # '--resume train.lr=1e-4': a bare --resume, then an override
        args.resume = True
    return args


def run(args):
    from gluonpose.config import load_config
    from gluonpose.utils.threads import configure_threads

    overrides = list(args.overrides)
    if args.work_dir:
        overrides.append("train.work_dir=%s" % args.work_dir)
    cfg = load_config(args.config, overrides)
    gpus = cfg.train.gpus if args.gpus is None else args.gpus
    configure_threads(gpus)   # OpenMP threads per context: before mxnet is loaded
    from gluonpose.engine.context import get_contexts
    get_contexts(gpus, check_available=True)  # before any data set or network is built
    if isinstance(args.resume, str):
        from gluonpose.engine.checkpoint import resume_record
        resume_record(args.resume)  # a path that is no checkpoint fails here, not after the data set
    from gluonpose.engine.runner import train
    from gluonpose.engine.train_loop import NonFiniteLossError
    start, cpu_start = time.time(), time.process_time()

    def finish(history):
        """Rank 0, after the last checkpoint: draw validation predictions, print the summary."""
        from gluonpose.engine.checkpoint import find_latest
        from gluonpose.engine.report import run_summary

        work_dir = cfg.train.work_dir
        preview = box_file = None
        record = find_latest(work_dir)
        if args.preview > 0 and cfg.data.val and record:
            from gluonpose.demo.preview import draw_val_predictions, write_box_file
            try:
                preview = draw_val_predictions(cfg, os.path.join(work_dir, record["params"]),
                                               os.path.join(work_dir, "predictions.png"),
                                               num_images=args.preview)
                box_file = write_box_file(preview, os.path.join(work_dir, "val_boxes.json"))
            except (ValueError, OSError) as err:  # the training itself is saved: report, go on
                LOG.warning("predictions.png not drawn: %s", err)
        print(run_summary(work_dir, history, time.time() - start, preview, box_file,
                          cpu_seconds=time.process_time() - cpu_start), flush=True)

    try:
        train(cfg, resume=args.resume, gpus=gpus, kvstore=args.kvstore,
              progress=not args.no_progress, on_finish=finish)
    except NonFiniteLossError as err:
        report_user_error(err)
        return 3
    return 0


def main(argv=None):
    """The training command; as a distributed worker it runs inside
    :class:`~gluonpose.dist.failfast.WorkerRun` (a failing worker ends at once, its launcher
    stops the job)."""
    from gluonpose.dist.failfast import WorkerRun
    with WorkerRun() as worker:
        return worker.finish(run_cli(run, parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
