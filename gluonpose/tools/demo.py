#!/usr/bin/env python
"""Draw predicted skeletons and keypoint scores on an image, every image of a folder, or a video
(``gluonpose-demo`` = ``python scripts/demo.py``).

  python scripts/demo.py --config C --weights W.params --image img.jpg --boxes det.json --out vis.jpg
  python scripts/demo.py --config C --weights W.params --image photos/ --boxes det.json --out vis/
  python scripts/demo.py --config C --weights W.params --image clip.mp4 \\
      --detector yolo3_darknet53_coco --out clip_pose.mp4 --gpus 0

Person boxes come from
  --boxes det.json   a COCO-results json (list of {image_id, bbox [x,y,w,h], score, category_id}).
                     An entry matches an image by its optional "file_name" (base name), else by
                     image_id: the id of the file name in --image-info (a COCO json with "images"),
                     or the number in a numeric file name (000000196141.jpg -> 196141). Video
                     frames match image_id = frame index (0-based).
  --detector NAME    a GluonCV detector (yolo3_darknet53_coco, faster_rcnn_resnet50_v1b_coco, ...)
                     whose weights are already in ~/.mxnet/models (or --detector-root); nothing is
                     downloaded: a missing file is reported with how to get it.
Outputs: --out is an image file for one image (a folder works too), a folder for a folder input,
a video file (.mp4 or .avi) for a video. --out-json also writes the poses (COCO results format).
"""
import argparse
import os
import sys
import time

from gluonpose.utils.cli import parse_cli_args, run_cli


def _color(text):
    parts = [int(v) for v in text.split(",")]
    if len(parts) != 3 or not all(0 <= v <= 255 for v in parts):
        raise argparse.ArgumentTypeError("colour must be B,G,R with values 0-255, got %r" % text)
    return tuple(parts)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="model YAML config")
    p.add_argument("--weights", required=True, help="gluonpose .params file of that model")
    p.add_argument("--image", required=True, help="an image, a folder of images or a video file")
    boxes = p.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--boxes", default=None, help="person boxes: COCO results json")
    boxes.add_argument("--detector", default=None, help="GluonCV detector model name")
    p.add_argument("--image-info", default=None,
                   help="COCO json whose 'images' map file names to the image_ids of --boxes")
    p.add_argument("--detector-root", default=None,
                   help="folder with GluonCV weights (default ~/.mxnet/models)")
    p.add_argument("--out", required=True, help="output image / folder / video file")
    p.add_argument("--out-json", default=None, help="also write the poses as COCO results json")
    p.add_argument("--gpus", default="", help="'0', '0,1' or '' for CPU (default CPU)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test (default: test.flip of the config)")
    p.add_argument("--score-thr", type=float, default=0.3, help="draw joints scoring at least this")
    p.add_argument("--box-thr", type=float, default=0.5, help="minimum person box score")
    p.add_argument("--nms-thr", type=float, default=0.9,
                   help="OKS-NMS threshold between poses of one image (<= 0 turns it off)")
    p.add_argument("--scores", choices=("person", "joint", "none"), default="person",
                   help="score labels: one per person at its box (box score x mean joint score, "
                        "as in --out-json; default), also every drawn joint's, or none")
    p.add_argument("--no-scores", dest="scores", action="store_const", const="none",
                   help="same as --scores none")
    p.add_argument("--joint-color", type=_color, default=None, metavar="B,G,R",
                   help="one colour for all joints (default: by body side)")
    p.add_argument("--max-frames", type=int, default=0, help="video: stop after N frames (0 = all)")
    p.add_argument("--deploy", choices=("fp32", "int8", "bf16"), default=None,
                   help="CPU deploy graph (see gluonpose-test --deploy); int8 calibrates on the ground-truth "
                        "boxes of the config's data.val")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides (anywhere)")
    return parse_cli_args(p, argv)


def val_calibration_records(cfg):
    """Ground-truth boxes of ``cfg.data.val``: the real crops int8 deploy graphs are calibrated on."""
    from gluonpose.errors import ConfigError
    from gluonpose.evaluation.runner import gt_boxes, resolve_val_set

    if not cfg.data.val:
        raise ConfigError("--deploy int8 calibrates on real crops: set data.val (a COCO-style json with "
                          "images) in the config or as an override")
    return gt_boxes(*resolve_val_set(cfg.data.val)).records


def deploy_net(net, codec, precision, *, cfg, ctx, batch_size):
    """The CPU deploy graph of ``net``; int8 calibrates on the ground-truth boxes of ``cfg.data.val``."""
    from gluonpose.deploy.optimize import check_deploy_contexts, deploy_for_inference

    check_deploy_contexts(ctx)
    records = val_calibration_records(cfg) if precision == "int8" else None
    return deploy_for_inference(net, codec, precision, batch_size=batch_size, records=records, ctx=ctx)


class Demo:
    """Boxes -> poses -> drawing for one in-memory image at a time."""

    def __init__(self, args):
        from gluonpose.config import load_config
        from gluonpose.demo.inputs import BoxFile
        from gluonpose.engine.context import get_contexts
        from gluonpose.evaluation.runner import predictor_from_config
        from gluonpose.models.builder import build_net_from_config

        self.args = args
        ctx = get_contexts(args.gpus, check_available=True)  # before any work
        cfg = load_config(args.config, args.overrides)
        self.boxes = self.detector = None
        if args.boxes:
            self.boxes = BoxFile(args.boxes, args.image_info, args.box_thr)
        else:
            from gluonpose.demo.detector import PersonDetector
            self.detector = PersonDetector(args.detector, ctx=ctx[0], root=args.detector_root,
                                           score_thr=args.box_thr)
        net, codec = build_net_from_config(cfg, args.weights, ctx)
        if args.deploy:
            net = deploy_net(net, codec, args.deploy, cfg=cfg, ctx=ctx, batch_size=cfg.test.batch_size)
        else:
            net.hybridize(static_alloc=True)
        flip = cfg.test.flip if args.flip is None else args.flip
        self.predictor = predictor_from_config(net, codec, cfg, ctx=ctx, flip=flip)
        self.results = []
        self.people_drawn = 0  # people with at least one joint at or above --score-thr

    def person_boxes(self, image_rgb, file_name=None, image_id=None):
        if self.detector is not None:
            return self.detector(image_rgb)
        return self.boxes.boxes_for(file_name, image_id)

    def __call__(self, image_rgb, file_name=None, image_id=None):
        """(H, W, 3) uint8 RGB -> drawn (H, W, 3) uint8 BGR; the poses go to ``self.results``."""
        from gluonpose.demo.inputs import coco_result, pose_nms, predict_people
        from gluonpose.evaluation.visualize import draw_poses

        boxes, scores = self.person_boxes(image_rgb, file_name, image_id)
        kpts = predict_people(self.predictor, image_rgb, boxes, scores)
        if self.args.nms_thr > 0 and len(kpts):
            keep = pose_nms(kpts, scores, boxes, self.predictor.input_size_wh, self.args.nms_thr)
            kpts, boxes, scores = kpts[keep], boxes[keep], scores[keep]
        if image_id is None and self.boxes is not None and file_name:
            image_id = self.boxes.image_id(file_name)
        person_scores = [score * person[:, 2].mean() for person, score in zip(kpts, scores)]
        for person, score in zip(kpts, person_scores):
            self.results.append(coco_result(person, image_id, score, file_name))
        if len(kpts):
            self.people_drawn += int((kpts[..., 2] >= self.args.score_thr).any(axis=1).sum())
        mode = self.args.scores
        return draw_poses(image_rgb[..., ::-1], kpts, score_thr=self.args.score_thr, boxes=boxes,
                          box_scores=person_scores if mode != "none" else None,
                          draw_scores=mode == "joint", joint_color=self.args.joint_color)


def _image_out(out, image_path):
    from gluonpose.demo.inputs import IMAGE_EXTS
    if os.path.isdir(out) or out.endswith(os.sep) or os.path.splitext(out)[1].lower() not in IMAGE_EXTS:
        return os.path.join(out, os.path.basename(image_path))
    return out


def run_images(demo, paths, out, single):
    from gluonpose.data.imageio import read_image
    from gluonpose.evaluation.visualize import save_image
    for path in paths:
        target = _image_out(out, path) if single else os.path.join(out, os.path.basename(path))
        save_image(target, demo(read_image(path), file_name=path))
        print("%s -> %s" % (path, target))
    return len(paths)


def run_video(demo, path, out, max_frames=0):
    import cv2

    from gluonpose.errors import DatasetError, OutputError
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise DatasetError("cannot open video %s" % path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    fourcc = "MJPG" if out.lower().endswith(".avi") else "mp4v"
    writer, frames = None, 0
    try:
        while not max_frames or frames < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            drawn = demo(frame[..., ::-1].copy(), image_id=frames)
            if writer is None:
                os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
                writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*fourcc), fps,
                                         (drawn.shape[1], drawn.shape[0]))
                if not writer.isOpened():
                    raise OutputError("cannot write video %s (use .mp4 or .avi in a writable folder)" % out)
            writer.write(drawn)
            frames += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not frames:
        raise DatasetError("no frame could be read from video %s" % path)
    print("%s: %d frames -> %s" % (path, frames, out))
    return frames


def run(args):
    """Run the demo; returns the list of COCO-results pose entries it drew."""
    from gluonpose.demo.inputs import input_kind, list_images

    from gluonpose.engine.context import get_contexts
    get_contexts(args.gpus, check_available=True)  # before any work
    kind = input_kind(args.image)
    demo = Demo(args)
    start = time.time()
    if kind == "video":
        count = run_video(demo, args.image, args.out, args.max_frames)
    else:
        paths = list_images(args.image) if kind == "folder" else [args.image]
        count = run_images(demo, paths, args.out, single=kind == "image")
    print("%d %s, %d people: %d with at least one joint drawn (joint score >= %g), in %.1f s "
          "(flip %s)" % (count, "frames" if kind == "video" else "images", len(demo.results),
                         demo.people_drawn, args.score_thr, time.time() - start,
                         "on" if demo.predictor.flip else "off"))
    if args.out_json:
        from gluonpose.utils.io import atomic_write_json
        atomic_write_json(demo.results, args.out_json)
        print("poses written to %s" % args.out_json)
    return demo.results


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
