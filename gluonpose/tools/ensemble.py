#!/usr/bin/env python
"""Evaluate an ensemble of pose models with rotation / scale test-time augmentation, COCO AP
(``gluonpose-ensemble`` = ``python scripts/ensemble_eval.py``).

  python scripts/ensemble_eval.py --models C1.yaml:W1.params C2.yaml:W2.params \\
      --rotations -20 0 20 --scales 0.9 1.0 1.1 --flip --det-json dets.json --out res.json
  python scripts/ensemble_eval.py --config configs/ensemble/example.yaml --out res.json

For every box, every model and every (rotation, scale) view (each with the flip test when --flip),
the keypoints are predicted, mapped back to image pixels (rotation and scale undone exactly) and
averaged (score-weighted positions by default, mean scores); then rescoring, OKS-NMS and COCO AP.
Models may differ in input size and codec. The summary table has one row per member (over all its
views), one per view (over all members) and the ensemble. Command-line values override the
ensemble config file; --models replaces its member list.
"""
import argparse
import sys

from gluonpose.utils.cli import parse_cli_args, run_cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="ensemble YAML: members, tta, boxes, test")
    p.add_argument("--models", nargs="+", default=None, metavar="CONFIG:WEIGHTS",
                   help="members as model-config:weights pairs")
    p.add_argument("--rotations", nargs="+", type=float, default=None, help="degrees, e.g. -20 0 20")
    p.add_argument("--scales", nargs="+", type=float, default=None, help="e.g. 0.9 1.0 1.1")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test inside every view (default: config, else on)")
    p.add_argument("--average", choices=("score_weighted", "mean"), default=None,
                   help="position averaging (default: config, else score_weighted)")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--det-json", default=None, help="person detections (COCO results json)")
    boxes.add_argument("--use-gt-boxes", action="store_true", help="use the ground-truth boxes")
    p.add_argument("--gt-json", default=None, help="ground truth (default: first member's data.val)")
    p.add_argument("--img-prefix", default=None, help="image folder (default: with the ground truth)")
    p.add_argument("--layout", default=None, help="ground-truth keypoint layout: coco | crowdpose | aic")
    p.add_argument("--image-thr", type=float, default=None, help="minimum detection score")
    p.add_argument("--gpus", default="", help="'0-3', '' for CPU (default CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="crops per forward pass")
    p.add_argument("--out", required=True, help="results json of the ensemble")
    p.add_argument("--no-breakdown", action="store_true",
                   help="evaluate the ensemble only (no per-member / per-view rows)")
    p.add_argument("--deploy", choices=("fp32", "int8", "bf16"), default=None,
                   help="run every member as its CPU deploy graph (see gluonpose-test --deploy)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parse_cli_args(p, argv)


def _settings(args):
    """Ensemble config file (or its defaults) with the command line on top."""
    from gluonpose.errors import ConfigError
    from gluonpose.evaluation.tta import load_ensemble_config, parse_member_spec

    conf = load_ensemble_config(args.config)   # the defaults without --config
    if args.models:
        conf["members"] = [parse_member_spec(m) for m in args.models]
    if not conf["members"]:
        raise ConfigError("no ensemble members: pass --models CONFIG:WEIGHTS ... or --config")
    from gluonpose.evaluation.tta import distinct_member_names
    conf["members"] = distinct_member_names(conf["members"])
    tta, boxes, test = conf["tta"], conf["boxes"], conf["test"]
    for key, val in (("rotations", args.rotations), ("scales", args.scales), ("flip", args.flip),
                     ("average", args.average)):
        if val is not None:
            tta[key] = val
    if args.det_json:
        boxes.update(det_json=args.det_json, use_gt_boxes=False)
    if args.use_gt_boxes:
        boxes.update(use_gt_boxes=True, det_json="")
    for key, val in (("gt_json", args.gt_json), ("img_prefix", args.img_prefix),
                     ("layout", args.layout), ("image_thr", args.image_thr)):
        if val is not None:
            boxes[key] = val
    if args.batch_size:
        test["batch_size"] = args.batch_size
    if not boxes["use_gt_boxes"] and not boxes["det_json"]:
        raise ConfigError("no boxes: pass --det-json FILE or --use-gt-boxes (or set them in the "
                          "ensemble config's boxes section)")
    return conf


def _build_members(conf, ctx):
    from gluonpose.config import load_config
    from gluonpose.evaluation.runner import predictor_from_config
    from gluonpose.models.builder import build_net_from_config

    predictors, cfgs = [], []
    for m in conf["members"]:
        cfg = load_config(m["config"])
        net, codec = build_net_from_config(cfg, m["weights"], ctx)
        net.hybridize(static_alloc=True)
        predictors.append(predictor_from_config(net, codec, cfg, ctx=ctx, flip=conf["tta"]["flip"],
                                                batch_size=conf["test"]["batch_size"],
                                                name=m["name"]))
        cfgs.append(cfg)
        print("member %s: %s (%s), weights %s, weight %g, input %dx%d, codec %r"
              % (m["name"], cfg.model.name, m["config"], m["weights"], m["weight"],
                 codec.input_size_wh[0], codec.input_size_wh[1], codec))
    return predictors, cfgs


def run(args):
    from gluonpose.engine.context import get_contexts
    from gluonpose.evaluation.runner import load_test_boxes, resolve_val_set
    from gluonpose.evaluation.tta import evaluate_ensemble, format_summary_table, tta_views

    ctx = get_contexts(args.gpus, check_available=True)  # before any work
    conf = _settings(args)
    tta, bx, test = conf["tta"], conf["boxes"], conf["test"]
    predictors, cfgs = _build_members(conf, ctx)
    if bx["gt_json"]:
        gt_json, img_prefix, layout = bx["gt_json"], bx["img_prefix"], bx["layout"] or "coco"
    else:
        gt_json, img_prefix, layout = resolve_val_set(cfgs[0].data.val)
        img_prefix = bx["img_prefix"] or img_prefix
        layout = bx["layout"] or layout
    views = tta_views(tta["rotations"], tta["scales"])
    boxes = load_test_boxes(gt_json, img_prefix, det_json=bx["det_json"] or None,
                            image_thr=bx["image_thr"], layout=layout)
    print(boxes.description)
    if args.deploy:
        from gluonpose.deploy.optimize import check_deploy_contexts, deploy_for_inference
        check_deploy_contexts(ctx)
        for p in predictors:
            p.net = deploy_for_inference(p.net, p.codec, args.deploy, batch_size=p.batch_size,
                                         records=boxes.records, ctx=ctx)
        print("graph: deploy %s for every member" % args.deploy)
    print("TTA: %d view(s) (rotations %s x scales %s), flip test %s, %s averaging; %d member(s)"
          % (len(views), list(tta["rotations"]), list(tta["scales"]),
             "on" if tta["flip"] else "off", tta["average"], len(predictors)))
    table, num_boxes, count = evaluate_ensemble(
        predictors, boxes, views, gt_json=gt_json, layout=layout, out_json=args.out,
        member_weights=[m["weight"] for m in conf["members"]], mode=tta["average"],
        with_breakdown=not args.no_breakdown, in_vis_thr=test["in_vis_thr"],
        oks_thr=test["oks_thr"], workers=test["workers"], progress=not args.no_progress)
    print("rescoring: in_vis_thr %g; OKS-NMS threshold %g; %d boxes -> %d poses written to %s"
          % (test["in_vis_thr"], test["oks_thr"], num_boxes, count, args.out))
    print(format_summary_table(table))
    return table


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
