#!/usr/bin/env python
"""Keypoint error analysis of a COCO results json (``gluonpose-analyze`` = ``python scripts/analyze_errors.py``),
after Ronchi & Perona (ICCV 2017, coco-analyze): per joint good / jitter / inversion / swap / miss,
background false positives, false negatives, and the AP gained by fixing each error type.

  gluonpose-analyze results.json --gt person_keypoints_val2017.json --images val2017/ --out analysis/
  gluonpose-test --config C --weights W --use-gt-boxes --out res.json --analyze analysis/

Writes into --out: keypoint_errors.png, ap_gains.png, precision_recall.png, oks_histogram.png,
background_errors.png, summary.json and report.html (self-contained: images embedded, worst cases
drawn on their images). Definitions: docs/evaluation.md ("Error analysis").
"""
import argparse
import os
import sys

from gluonpose.utils.cli import parse_cli_args, run_cli


def add_analysis_options(p):
    """The analysis thresholds (shared with gluonpose-test --analyze)."""
    p.add_argument("--analysis-oks", type=float, default=0.5,
                   help="OKS at which the fixed results are scored (the oracle bars; default 0.5, the tool's)")
    p.add_argument("--analysis-cases", type=int, default=8,
                   help="worst cases of each kind drawn in report.html (default 8)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="COCO keypoint results json (e.g. gluonpose-test --out)")
    p.add_argument("--gt", required=True, help="COCO keypoint ground-truth json")
    p.add_argument("--out", required=True, help="folder for the plots, summary.json and report.html")
    p.add_argument("--images", default=None,
                   help="image folder of the ground truth (default: the ground-truth json's folder); "
                        "cases whose image is missing are counted, not drawn")
    add_analysis_options(p)
    return parse_cli_args(p, argv)


def check_analysis_options(args):
    """The :class:`~gluonpose.evaluation.analyze.AnalysisParams` of the analysis options, checked
    (a ConfigError names the bad one): gluonpose-test calls it before any inference."""
    from gluonpose.errors import ConfigError
    from gluonpose.evaluation.analyze import AnalysisParams

    if args.analysis_cases < 0:
        raise ConfigError("--analysis-cases must be >= 0, got %d" % args.analysis_cases)
    return AnalysisParams(oks_thr=args.analysis_oks).check()


def analyze_and_write(results_json, gt_json, out_dir, *, image_dir, args, sigmas=None):
    """Run the analysis with the options ``args`` (:func:`add_analysis_options`), write its outputs
    and print the summary; returns the written paths."""
    from gluonpose.evaluation.analysis_report import format_summary, write_analysis
    from gluonpose.evaluation.analyze import analyze_keypoints

    analysis = analyze_keypoints(gt_json, results_json, params=check_analysis_options(args), sigmas=sigmas)
    written = write_analysis(analysis, out_dir, image_dir=image_dir, num_cases=args.analysis_cases,
                             sources=(results_json, gt_json))
    print(format_summary(analysis.summary))
    if written["unreadable_images"]:
        print("%d image(s) not found or unreadable under %s: their cases are listed, not drawn"
              % (written["unreadable_images"], image_dir))
    print("analysis written to %s (report.html, summary.json, %d plots)"
          % (out_dir, sum(k.endswith(".png") for k in written)))
    return written


def run(args):
    image_dir = args.images if args.images is not None else os.path.dirname(os.path.abspath(args.gt))
    analyze_and_write(args.results, args.gt, args.out, image_dir=image_dir, args=args)
    return 0


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
