#!/usr/bin/env python
"""Evaluate one (Multi-Stage) HRNet pose model with COCO keypoint AP, top-down (``gluonpose-test`` =
``python scripts/test_mshrnet.py``).

  python scripts/test_mshrnet.py --config C --weights W.params --det-json dets.json --out res.json
  python scripts/test_mshrnet.py --config C --weights W.params --use-gt-boxes --no-flip --out res.json
  python scripts/test_mshrnet.py --config C --weights W.params --gpus 0-3 --out res.json test.oks_thr=0.9

Boxes: --det-json (COCO results format; boxes below test.image_thr / --image-thr are skipped) or
--use-gt-boxes; with neither, the config decides (test.use_gt_boxes, data.det_json). The ground truth
is data.val of the config (or --gt-json / --img-prefix / --layout). Per box: crop, flip test, decode
of the last stage, back to image pixels; then rescoring (box score x mean joint score above
test.in_vis_thr), OKS-NMS (test.oks_thr), a COCO results json and the pycocotools table.
"""
import argparse
import sys

from gluonpose.tools.analyze import add_analysis_options, analyze_and_write, check_analysis_options
from gluonpose.utils.cli import parse_cli_args, run_cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="model YAML config")
    p.add_argument("--weights", required=True, help="gluonpose .params file of that model")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--det-json", default=None, help="person detections (COCO results json)")
    boxes.add_argument("--use-gt-boxes", action="store_true", help="use the ground-truth boxes")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test (default: test.flip of the config)")
    p.add_argument("--gpus", default="", help="'0-3', '0,1', '' for CPU (default CPU)")
    p.add_argument("--out", required=True, help="results json to write")
    p.add_argument("--gt-json", default=None, help="ground truth (default: data.val.ann_file)")
    p.add_argument("--img-prefix", default=None, help="image folder (default: data.val.img_prefix)")
    p.add_argument("--layout", default=None,
                   help="keypoint layout of the ground truth: coco | crowdpose | aic "
                        "(default: from data.val.type)")
    p.add_argument("--image-thr", type=float, default=None,
                   help="minimum detection score (default: test.image_thr)")
    p.add_argument("--batch-size", type=int, default=None, help="crops per forward pass")
    p.add_argument("--deploy", choices=("fp32", "int8", "bf16"), default=None,
                   help="CPU deploy graph: fp32 = BatchNorm folded + oneDNN fusion (same outputs), int8 = oneDNN "
                        "quantization calibrated on the first crops of the boxes, bf16 = AMP (default: the "
                        "training graph)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--analyze", default=None, metavar="DIR",
                   help="also write the keypoint error analysis of the results into DIR "
                        "(gluonpose-analyze: plots, summary.json, report.html)")
    add_analysis_options(p)
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides (anywhere)")
    return parse_cli_args(p, argv)


def _ground_truth(cfg, args):
    from gluonpose.evaluation.runner import resolve_val_set

    if args.gt_json:
        layout = args.layout or "coco"
        return args.gt_json, args.img_prefix or "", layout
    gt_json, img_prefix, layout = resolve_val_set(cfg.data.val)
    return gt_json, img_prefix if args.img_prefix is None else args.img_prefix, \
        args.layout or layout


def run(args):
    from gluonpose.config import load_config
    from gluonpose.errors import ConfigError
    from gluonpose.engine.context import get_contexts
    from gluonpose.evaluation.coco_metric import format_stats_table
    from gluonpose.evaluation.runner import evaluate_predictor, load_test_boxes, predictor_from_config
    from gluonpose.models.builder import build_net_from_config

    ctx = get_contexts(args.gpus, check_available=True)  # before any work
    if args.analyze:
        check_analysis_options(args)
    cfg = load_config(args.config, args.overrides)
    test = cfg.test
    gt_json, img_prefix, layout = _ground_truth(cfg, args)
    use_gt = args.use_gt_boxes or (args.det_json is None and test.use_gt_boxes)
    det_json = None if use_gt else (args.det_json or cfg.data.det_json or None)
    if not use_gt and not det_json:
        raise ConfigError("no boxes: pass --det-json FILE or --use-gt-boxes (the config has neither "
                          "test.use_gt_boxes nor data.det_json)")
    flip = test.flip if args.flip is None else args.flip
    net, codec = build_net_from_config(cfg, args.weights, ctx)
    image_thr = test.image_thr if args.image_thr is None else args.image_thr
    boxes = load_test_boxes(gt_json, img_prefix, det_json=det_json, image_thr=image_thr, layout=layout)
    batch_size = args.batch_size or test.batch_size
    if args.deploy:
        from gluonpose.deploy.optimize import check_deploy_contexts, deploy_for_inference
        check_deploy_contexts(ctx)
        net = deploy_for_inference(net, codec, args.deploy, batch_size=batch_size, records=boxes.records, ctx=ctx)
    else:
        net.hybridize(static_alloc=True)
    predictor = predictor_from_config(net, codec, cfg, ctx=ctx, flip=flip, batch_size=batch_size)
    print("model: %s (%s), weights %s, input %dx%d (w x h), codec %r, contexts %s"
          % (cfg.model.name, args.config, args.weights, codec.input_size_wh[0],
             codec.input_size_wh[1], codec, ctx))
    print("flip test: %s; graph: %s; loader threads: %d"
          % ("on (%s fused)" % predictor.flip_fusion if flip else "off",
             "deploy " + args.deploy if args.deploy else "training net", test.workers))
    print(boxes.description)
    report = evaluate_predictor(predictor, gt_json, img_prefix=img_prefix, det_json=det_json,
                                image_thr=image_thr, in_vis_thr=test.in_vis_thr,
                                oks_thr=test.oks_thr, layout=layout, out_json=args.out,
                                progress=not args.no_progress, verbose=True, boxes=boxes,
                                workers=test.workers)
    print("evaluation: %s" % report.target_note)
    print("rescoring: in_vis_thr %g; OKS-NMS threshold %g; %d boxes -> %d poses written to %s"
          % (test.in_vis_thr, test.oks_thr, report.num_boxes, report.num_results, args.out))
    print(format_stats_table(report.stats, name=cfg.model.name))
    ref = cfg.reference
    if ref.val_ap is not None:
        print("reference: %s gives AP %.3f (%s)" % (ref.checkpoint or "the official checkpoint",
                                                    float(ref.val_ap), ref.source or "published"))
    if args.analyze:
        analyze_and_write(args.out, report.target.gt_json, args.analyze, image_dir=img_prefix,
                          args=args, sigmas=report.target.sigmas)
    return report


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
