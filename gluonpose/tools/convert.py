#!/usr/bin/env python
"""Convert an official HRNet checkpoint (PyTorch .pth, or .npz) into a gluonpose .params file
(``gluonpose-convert`` = ``python scripts/convert_official.py``).

Examples:
  # ImageNet classification HRNet-W48 into every stage of a 2-stage Multi-Stage HRNet
  python scripts/convert_official.py --src hrnet_w48-8ef0771d.pth --dst mshrnet_w48_imagenet.params \
      --arch mshrnet_w48_2stage --kind imagenet
  # official pose checkpoint
  python scripts/convert_official.py --src pose_hrnet_w32_256x192.pth --dst hrnet_w32.params \
      --arch hrnet_w32 --kind pose --head heatmap
"""
import argparse
import sys

from gluonpose.utils.cli import parse_cli_args, run_cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="official checkpoint (.pth needs torch; .npz works without)")
    p.add_argument("--dst", required=True, help="output gluonpose .params")
    p.add_argument("--arch", required=True, help="gluonpose model name, e.g. hrnet_w32, mshrnet_w48_2stage")
    p.add_argument("--kind", default="pose", choices=("pose", "imagenet"))
    p.add_argument("--head", default=None, help="heatmap | heatmap_offset (default: the model's)")
    p.add_argument("--num-joints", type=int, default=17)
    p.add_argument("--exclude", nargs="*", default=(), help="regexes of checkpoint keys to skip on purpose")
    p.add_argument("--strict", action="store_true", help="fail if any network parameter is not loaded")
    return parse_cli_args(p, argv)


def run(args):
    from gluonpose.models import get_model
    from gluonpose.models.weights import format_report, load_official
    from gluonpose.utils.io import atomic_save_parameters

    kwargs = {"num_joints": args.num_joints}
    if args.head:
        kwargs["head"] = args.head
    net = get_model(args.arch, **kwargs)
    report = load_official(net, args.src, kind=args.kind, exclude=args.exclude,
                           allow_missing=not args.strict)
    print(format_report(report))
    atomic_save_parameters(net, args.dst)
    print("wrote %s" % args.dst)
    return 0


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
