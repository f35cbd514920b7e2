#!/usr/bin/env python
"""Compare training runs on one figure: loss, learning rate and validation AP of each run, one
colour per run, each run's best epoch (highest validation AP) marked (``gluonpose-curves`` =
``python scripts/plot_curves.py``).

  python scripts/plot_curves.py work_dirs/w32 work_dirs/w48
  python scripts/plot_curves.py runs/a/exp runs/b/exp --labels a,b --out compare.png

Each RUN_DIR is a training work dir: its metrics.csv (one row per epoch, with the validation AP)
and, when present, iterations.csv (one row per logged step: finer loss / learning-rate curves
against the fractional epoch). Legend labels default to each folder's name (more of the path when
names repeat); a run without validation AP is drawn without a best marker. Prints the PNG written
and each run's best epoch.
"""
import argparse
import logging
import os
import sys

from gluonpose.utils.cli import parse_cli_args, run_cli

DEFAULT_OUT = "curves_compare.png"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="training work dir(s) holding metrics.csv and/or iterations.csv")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="PNG to write (default: %s in the current folder)" % DEFAULT_OUT)
    p.add_argument("--labels", default=None,
                   help="comma-separated legend labels, one per RUN_DIR (default: folder names)")
    p.add_argument("--metric", default=None,
                   help="validation column of metrics.csv whose highest value is the best epoch "
                        "(default: AP)")
    return parse_cli_args(p, argv)


def _labels(text, count):
    from gluonpose.errors import ConfigError

    if text is None:
        return None
    labels = [s.strip() for s in text.split(",")]
    if len(labels) != count or not all(labels):
        raise ConfigError("--labels %r: give %d non-empty comma-separated labels, one per RUN_DIR"
                          % (text, count))
    if len(set(labels)) != len(labels):
        raise ConfigError("--labels %r: the labels must differ" % text)
    return labels


def run(args):
    from gluonpose.errors import OutputError, UserError
    from gluonpose.utils.curves import plot_runs, run_labels

    labels = _labels(args.labels, len(args.run_dirs)) or run_labels(args.run_dirs)
    if os.path.splitext(args.out)[1].lower() != ".png":
        raise OutputError("--out %s: the figure is a PNG, name it *.png" % args.out)
    metric = args.metric or "AP"
    try:
        path, summary = plot_runs(args.run_dirs, args.out, labels=labels, metric=args.metric)
    except UserError:
        raise
    except OSError as err:
        raise OutputError("cannot write %s (%s)" % (args.out, err.strerror or err)) from None
    print("wrote %s (%d run%s)" % (path, len(labels), "s" * (len(labels) != 1)))
    for label, run_dir in zip(labels, args.run_dirs):
        s = summary[label]
        best = ("no validation %s" % metric if s["best_epoch"] is None else
                "best %s %.4f at epoch %g" % (metric, s["best_value"], s["best_epoch"]))
        print("  %s: %s (%d epochs) - %s" % (label, best, s["epochs"], run_dir))
    return path, summary


def main(argv=None):
    return run_cli(run, parse_args(argv), log_level=logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
