"""Evaluation glue: config / net -> boxes -> top-down inference -> rescoring, OKS-NMS -> COCO AP.

Used by ``scripts/test_mshrnet.py``, ``scripts/ensemble_eval.py`` (through :mod:`.tta`) and the
training loop's validation hook (:func:`make_validate_hook`). :func:`evaluate_model` is the one
call a test or a hook needs.
"""
import logging
import os
import tempfile
from typing import NamedTuple

import numpy as np

from ..codecs.builder import build_codec_from_config
from ..data.datasets.base import format_skipped
from ..data.datasets.coco import CocoStyleReader
from ..data.detections import load_detections
from ..keypoints import NUM_COCO_KEYPOINTS
from ..data.records import PersonRecord
from ..errors import ConfigError
from .coco_metric import evaluate_keypoints, nms_per_image, write_coco_results
from .gt_layout import prepare_eval_target
from .inference import TopDownPredictor, predict_records

LOG = logging.getLogger(__name__)

#: dataset ``type`` of a config's ``data.val`` -> keypoint layout of its ground truth.
_TYPE_LAYOUT = {"coco": "coco", "synthetic": "coco", "crowdpose": "crowdpose", "aic": "aic"}


class Boxes(NamedTuple):
    """Test boxes and a sentence saying where they come from (printed by the CLIs)."""

    records: list
    description: str


def resolve_val_set(val_cfg):
    """``data.val`` config dict -> (gt_json, img_prefix, layout).

    ``synthetic`` specs are generated (as the training data factory does) into their ``out_dir``.
    """
    spec = dict(val_cfg or {})
    kind = spec.pop("type", "coco")
    if kind == "synthetic":
        from ..data.synthetic import generate_synthetic_coco, synthetic_image_dir
        gen = {k: v for k, v in spec.items()
               if k not in ("on_bad", "check_images", "skip_empty", "keypoint_margin")}
        path = generate_synthetic_coco(**gen)
        return path, synthetic_image_dir(os.path.dirname(path)), "coco"
    if kind == "coco_style":
        layout = spec.get("layout", "coco")
    elif kind in _TYPE_LAYOUT:
        layout = _TYPE_LAYOUT[kind]
    else:
        raise ConfigError("data.val type %r cannot be evaluated with COCO AP; use one of %s"
                          % (kind, sorted(_TYPE_LAYOUT) + ["coco_style"]))
    if not spec.get("ann_file"):
        raise ConfigError("data.val needs ann_file (the ground-truth json for AP); got %r" % (val_cfg,))
    return spec["ann_file"], spec.get("img_prefix", ""), layout


def gt_boxes(gt_json, img_prefix="", layout="coco"):
    """Ground-truth person boxes of a COCO-style json of any layout (score 1, official cleaning:
    crowd, zero-area and keypoint-less instances dropped, boxes clipped). Returns :class:`Boxes`."""
    reader = CocoStyleReader(gt_json, img_prefix, layout=layout, skip_empty=True, on_bad="raise")
    records = [PersonRecord(image_path=r.image_path, bbox=r.bbox.copy(),
                            keypoints=np.zeros((NUM_COCO_KEYPOINTS, 3), np.float32),
                            image_id=r.image_id, score=1.0, area=r.area, dataset="gt_boxes",
                            ann_id=r.ann_id, extra=dict(r.extra)) for r in reader.records]
    desc = ("boxes: ground-truth boxes of %s: %d people in %d images (score 1.0); skipped: %s"
            % (gt_json, len(records), len({r.image_id for r in records}),
               format_skipped(reader.skipped)))
    return Boxes(records, desc)


def detection_boxes(det_json, gt_json, img_prefix="", image_thr=0.0):
    """Detector boxes (COCO results json) with a minimum score. Returns :class:`Boxes`."""
    records, skipped = load_detections(det_json, gt_json, img_prefix, score_thresh=image_thr)
    total = len(records) + sum(skipped.values())
    desc = ("boxes: detections of %s: %d of %d boxes kept (score >= %g) in %d images; skipped: %s"
            % (det_json, len(records), total, image_thr, len({r.image_id for r in records}),
               format_skipped(skipped)))
    return Boxes(records, desc)


def load_test_boxes(gt_json, img_prefix="", *, det_json=None, image_thr=0.0, layout="coco"):
    """Detections when ``det_json`` is given, else ground-truth boxes."""
    if det_json:
        return detection_boxes(det_json, gt_json, img_prefix, image_thr)
    return gt_boxes(gt_json, img_prefix, layout)


def predictor_from_config(net, codec, cfg, *, ctx=None, flip=None, batch_size=None, name=None):
    """A :class:`TopDownPredictor` with a config's ``test`` settings (``flip``, ``flip_fusion``,
    ``batch_size``); ``flip`` / ``batch_size`` override them when given."""
    test = cfg.test
    return TopDownPredictor(net, codec, ctx=ctx, flip=test.flip if flip is None else flip,
                            flip_fusion=test.flip_fusion,
                            batch_size=batch_size or test.batch_size,
                            name=name or cfg.model.name)


def score_keypoints(keypoints, box_scores, areas, image_ids, target, out_json, *, in_vis_thr=0.2,
                    oks_thr=0.9, verbose=False):
    """Rescore, OKS-NMS per image, write the results json, run pycocotools.

    Args:
        keypoints: (N, 17, 3) image-pixel poses with joint scores; box_scores, areas, image_ids: (N,).
        target: :class:`~gluonpose.evaluation.gt_layout.EvalTarget` (GT json, joints, sigmas).
        out_json: results file to write (the joints of ``target.joints``).
        verbose: print pycocotools' own summary table.

    Returns:
        (OrderedDict of the 10 COCO stats, number of poses written).
    """
    preds = nms_per_image(keypoints, box_scores, areas, image_ids, in_vis_thr=in_vis_thr,
                          oks_thr=oks_thr) \
        if len(keypoints) else []
    for p in preds:
        p["keypoints"] = np.asarray(p["keypoints"])[target.joints]
    count = write_coco_results(preds, out_json)
    stats = evaluate_keypoints(target.gt_json, out_json, sigmas=target.sigmas, allow_empty=True,
                               verbose=verbose)
    return stats, count


class EvalReport(NamedTuple):
    """Everything one evaluation produced."""

    stats: dict
    boxes: str
    target_note: str
    num_boxes: int
    num_results: int
    results_json: str
    predictions: object = None    # the TopDownResult of every box (before rescoring and NMS)
    target: object = None         # the EvalTarget scored against (its gt_json lasts only with out_json)


def evaluate_predictor(predictor, gt_json, *, img_prefix="", det_json=None, image_thr=0.0,
                       in_vis_thr=0.2, oks_thr=0.9, layout="coco", out_json=None, progress=False,
                       verbose=False, on_bad_image="raise", boxes=None, workers=2, stats=None):
    """Boxes -> inference -> AP for one :class:`TopDownPredictor`. Returns :class:`EvalReport`.

    ``boxes`` (a :class:`Boxes`) replaces loading them from ``det_json`` / the ground truth.
    ``workers``: loader threads of the pipeline (:func:`~.inference.predict_records`; the results
    do not depend on it); ``stats``: a :class:`~.inference.PipelineStats` to fill.
    With ``out_json=None`` the results (and any rewritten ground truth) go to a temporary folder
    that is removed afterwards (``results_json`` is then empty).
    """
    if boxes is None:
        boxes = load_test_boxes(gt_json, img_prefix, det_json=det_json, image_thr=image_thr,
                                layout=layout)
    with tempfile.TemporaryDirectory(prefix="gluonpose_eval_") as tmp:
        path = out_json or os.path.join(tmp, "results.json")
        work = os.path.dirname(os.path.abspath(path)) if out_json else tmp
        target = prepare_eval_target(gt_json, layout, work)
        res = predict_records(predictor, boxes.records, progress=progress,
                              on_bad_image=on_bad_image, workers=workers, stats=stats)
        stats, count = score_keypoints(res.keypoints(0, 0), res.box_scores, res.areas,
                                       res.image_ids, target, path, in_vis_thr=in_vis_thr,
                                       oks_thr=oks_thr, verbose=verbose)
    return EvalReport(stats, boxes.description, target.note, len(res.box_scores), count,
                      out_json or "", res, target)


def evaluate_model(net, codec, gt_json, *, img_prefix="", det_json=None, flip=True, ctx=None,
                   batch_size=32, image_thr=0.0, in_vis_thr=0.2, oks_thr=0.9, layout="coco",
                   out_json=None, progress=False, verbose=False, flip_fusion=None, workers=2):
    """COCO keypoint AP of ``net`` on ``gt_json`` (GT boxes unless ``det_json`` is given).

    Args:
        net: network (NDArray -> NDArray or list of stage NDArrays; the last stage is decoded).
        codec: its codec. ctx: mx.Context or list (default CPU). flip: flip test.
        image_thr: minimum detection score. in_vis_thr, oks_thr: rescoring / OKS-NMS thresholds.
        layout: keypoint layout of ``gt_json`` (see :mod:`.gt_layout`).
        out_json: where to keep the results json (default: a temporary file).
        flip_fusion: how the flip test fuses the two outputs (None: the codec's default);
            workers: loader threads.

    Returns:
        OrderedDict of the 10 COCO stats (``'AP'``, ``'AP .5'``, ... ``'AR (L)'``).
    """
    predictor = TopDownPredictor(net, codec, ctx=ctx, flip=flip, flip_fusion=flip_fusion,
                                 batch_size=batch_size)
    return evaluate_predictor(predictor, gt_json, img_prefix=img_prefix, det_json=det_json,
                              image_thr=image_thr, in_vis_thr=in_vis_thr, oks_thr=oks_thr,
                              layout=layout, out_json=out_json, progress=progress,
                              verbose=verbose, workers=workers).stats


def make_validate_hook(cfg, ctx=None, out_dir=None, progress=False):
    """``validate(net, epoch) -> {'AP': ..., 'AP .5': ...}`` for :func:`gluonpose.engine.trainer.fit`,
    evaluating on ``cfg.data.val`` with the ``test`` settings (detections when ``test.use_gt_boxes``
    is false and ``data.det_json`` is set). Results go to ``out_dir/val_epoch{N}.json`` if given."""
    gt_json, img_prefix, layout = resolve_val_set(cfg.data.val)
    codec = build_codec_from_config(cfg.codec, cfg.model.num_joints)
    test = cfg.test
    det_json = None if test.use_gt_boxes else (cfg.data.det_json or None)

    def validate(net, epoch):
        out = os.path.join(out_dir, "val_epoch%d.json" % epoch) if out_dir else None
        return dict(evaluate_model(net, codec, gt_json, img_prefix=img_prefix, det_json=det_json,
                                   flip=test.flip, ctx=ctx, batch_size=test.batch_size,
                                   image_thr=test.image_thr, in_vis_thr=test.in_vis_thr,
                                   oks_thr=test.oks_thr, layout=layout, out_json=out,
                                   progress=progress, flip_fusion=test.flip_fusion,
                                   workers=test.workers))

    return validate

