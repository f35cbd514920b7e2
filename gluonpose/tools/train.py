#!/usr/bin/env python
"""Train a (Multi-Stage) HRNet pose network.

  python scripts/train_mshrnet.py                                   # embedded synthetic default, CPU
  python scripts/train_mshrnet.py --config configs/mshrnet/mshrnet_w48_2stage_512x384_coco.yaml --gpus 0-7
  python scripts/train_mshrnet.py --config C --resume               # continue from work_dir/latest.json
  python scripts/launch_dist.py -n 2 -s 2 -H hosts -- \\
      python scripts/train_mshrnet.py --config C --gpus 0-7 --kvstore dist_sync
Any config key can be overridden: ``train.lr=5e-4 loader.batch_size_per_device=24``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluonpose.config import load_config  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "configs", "synthetic", "mshrnet_w8_2stage_128x96_synthetic.yaml")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: embedded synthetic)")
    p.add_argument("--gpus", default=None, help="'0-7', '0,1,2,3', '' for CPU (default: config)")
    p.add_argument("--kvstore", default=None,
                   help="local | device | dist_sync | dist_device_sync (default: config)")
    p.add_argument("--resume", action="store_true", help="continue from work_dir/latest.json")
    p.add_argument("--work-dir", default=None, help="override train.work_dir")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs only)")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.work_dir:
        overrides.append("train.work_dir=%s" % args.work_dir)
    cfg = load_config(args.config, overrides)
    from gluonpose.engine.runner import train
    from gluonpose.engine.trainer import NonFiniteLossError
    try:
        train(cfg, resume=args.resume, gpus=args.gpus, kvstore=args.kvstore,
              progress=not args.no_progress)
    except NonFiniteLossError as err:
        print("error: %s" % err, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    # Not sys.exit(main()): that looks sys.exit up before main() runs, i.e. before a dist kvstore
    # installs its fail-fast exit (a failing worker must not wait in ps-lite's shutdown).
    code = main()
    sys.exit(code)
