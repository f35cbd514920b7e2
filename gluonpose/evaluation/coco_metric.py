"""COCO keypoint evaluation: rescoring, per-image OKS-NMS, results json, pycocotools COCOeval.

Pipeline (official HRNet ``lib/dataset/coco.py`` ``evaluate``):

1. person score = box score x mean of the joint scores above ``in_vis_thr`` (0 if none);
2. per image, OKS-NMS (greedy, threshold 0.9, padded box areas) over the rescored poses (all images
   in one vectorised pass, :func:`.nms.oks_nms_grouped`: the kept poses of the per-image loop);
3. a COCO results json ``[{image_id, category_id: 1, keypoints: [x, y, s] * K, score}]``;
4. ``COCOeval(gt, dt, 'keypoints')`` with ``useSegm=None``: evaluate, accumulate, summarize.
"""
import contextlib
import gc
import io
import json
import logging
import math
import os
from collections import OrderedDict

import numpy as np

from ..errors import DatasetError, MissingFileError
from ..utils.io import atomic_write_json
from .nms import group_order, oks_nms_grouped, soft_oks_nms_arrays

LOG = logging.getLogger(__name__)

#: Names of the 10 COCOeval keypoint statistics, in ``COCOeval.stats`` order.
STATS_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)",
               "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector inside the block (restored after it, as it was).

    Reading, building and evaluating a COCO-val-sized results list creates millions of small
    containers that all stay alive until the end; the collector would traverse them again and
    again and find nothing (about 10 % of the time). Reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def rescore(keypoint_scores, box_scores, in_vis_thr=0.2):
    """Official HRNet person rescoring.

    Args:
        keypoint_scores: (N, K) joint confidences (heatmap maxima).
        box_scores: (N,) detection scores.
        in_vis_thr: joints with a score strictly above it enter the mean.

    Returns:
        (N,) float64 person scores: box score x mean of the joint scores above the threshold,
        or 0 when no joint passes.
    """
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    bs = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if ks.ndim != 2 or ks.shape[0] != bs.shape[0]:
        raise ValueError("rescore: keypoint_scores %s and box_scores %s do not match"
                         % (ks.shape, bs.shape))
    mask = ks > in_vis_thr
    count = mask.sum(axis=1)
    mean = np.where(count > 0, (ks * mask).sum(axis=1) / np.maximum(count, 1), 0.0)
    return bs * mean


def nms_per_image(keypoints, box_scores, areas, image_ids, *, in_vis_thr=0.2, oks_thr=0.9,
                  sigmas=None, soft=False):
    """Rescore every pose, then run OKS-NMS within each image.

    Args:
        keypoints: (N, K, 3) poses ``[x, y, joint score]`` in image pixels.
        box_scores: (N,) detection scores (1 for ground-truth boxes).
        areas: (N,) areas for the OKS (official: padded box area ``prod(scale * 200)``).
        image_ids: (N,) integer COCO image ids.
        sigmas: (K,) OKS sigmas for the NMS; None means COCO-17.
        soft: use soft OKS-NMS instead of the greedy one.

    Returns:
        list of dicts ``{'image_id': int, 'keypoints': (K, 3) float64, 'score': float,
        'index': int (row in the inputs)}``, grouped by image in ascending id order, each image's
        poses in NMS selection order.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim != 3 or kpts.shape[2] != 3:
        raise ValueError("nms_per_image: keypoints must be (N, K, 3), got %s" % (kpts.shape,))
    num = kpts.shape[0]
    box_scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    image_ids = np.asarray(image_ids).reshape(-1)
    for name, arr in (("box_scores", box_scores), ("areas", areas), ("image_ids", image_ids)):
        if arr.shape[0] != num:
            raise ValueError("nms_per_image: %d poses but %d %s" % (num, arr.shape[0], name))
    bad = ~(np.isfinite(kpts).all(axis=(1, 2)) & np.isfinite(box_scores) & np.isfinite(areas))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError("nms_per_image: %d prediction(s) hold NaN/inf values, first is row %d "
                         "(image_id %s)" % (int(bad.sum()), i, image_ids[i]))
    scores = rescore(kpts[:, :, 2], box_scores, in_vis_thr)
    if soft:
        kept = []
        order, starts = group_order(image_ids, scores)
        for group in np.split(order, starts[1:]) if num else []:
            rows = np.sort(group)
            keep = soft_oks_nms_arrays(kpts[rows], scores[rows], areas[rows], oks_thr, sigmas=sigmas)
            if keep.size == 0:      # official: an image whose NMS keeps nothing keeps everything
                keep = np.arange(rows.size)
            kept.append(rows[keep])
        kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    else:                           # greedy NMS always keeps an image's best pose
        kept = oks_nms_grouped(kpts, scores, areas, image_ids, oks_thr, sigmas=sigmas)
    return [{"image_id": img, "keypoints": kpts[j], "score": score, "index": j}
            for j, img, score in zip(kept.tolist(), image_ids[kept].astype(np.int64).tolist(),
                                     scores[kept].tolist())]


def to_coco_results(predictions, category_id=1):
    """Convert pose dicts to the COCO results format.

    Args:
        predictions: iterable of dicts with ``image_id``, ``keypoints`` ((K, 3) or (K*3,)) and ``score``.

    Returns:
        list of ``{'image_id': int, 'category_id': int, 'keypoints': [3K floats], 'score': float}``.
    """
    results = []
    for i, p in enumerate(predictions):
        try:
            kp = np.asarray(p["keypoints"], dtype=np.float64).reshape(-1)
            score = float(p["score"])
            image_id = int(p["image_id"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError("prediction %d is malformed (%s): needs image_id, keypoints, score"
                             % (i, err)) from None
        if kp.size % 3 or not np.isfinite(kp).all() or not math.isfinite(score):
            raise ValueError("prediction %d (image_id %d): keypoints must be finite [x, y, s] "
                             "triplets and the score finite" % (i, image_id))
        results.append({"image_id": image_id, "category_id": int(category_id),
                        "keypoints": kp.tolist(), "score": score})
    return results


def write_coco_results(predictions, path, category_id=1):
    """Write pose dicts as a COCO results json atomically (temp file in the same folder + rename).

    Returns:
        the number of results written.
    """
    with gc_paused():
        results = to_coco_results(predictions, category_id)
        atomic_write_json(results, path)
    return len(results)


def write_keypoint_results(path, keypoints, box_scores, areas, image_ids, *, in_vis_thr=0.2,
                           oks_thr=0.9, sigmas=None, soft=False):
    """Rescore + per-image OKS-NMS (:func:`nms_per_image`) then write the results json.

    Returns:
        the number of poses written.
    """
    preds = nms_per_image(keypoints, box_scores, areas, image_ids, in_vis_thr=in_vis_thr,
                          oks_thr=oks_thr, sigmas=sigmas, soft=soft)
    return write_coco_results(preds, path)


def _load_results(results_json_path):
    if not os.path.isfile(results_json_path):
        raise MissingFileError("results json %s does not exist" % results_json_path)
    try:
        with open(results_json_path) as f:
            results = json.load(f)
    except (OSError, ValueError) as err:
        raise DatasetError("cannot read results json %s: %s" % (results_json_path, err)) from None
    if not isinstance(results, list):
        raise DatasetError("results json %s must hold a list of results" % results_json_path)
    return results


def _load_ground_truth(gt_json_path, quiet):
    from pycocotools.coco import COCO

    if not os.path.isfile(gt_json_path):
        raise MissingFileError("ground-truth json %s does not exist" % gt_json_path)
    try:
        with quiet:
            return COCO(gt_json_path)
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError("cannot read ground-truth json %s (COCO keypoint annotations): %s: %s"
                           % (gt_json_path, type(err).__name__, err)) from None


def _check_results(results, coco_gt, results_json_path, gt_json_path):
    gt_ids = set(coco_gt.getImgIds())
    try:
        res_ids = {int(r["image_id"]) for r in results}
    except (KeyError, TypeError, ValueError):
        raise DatasetError("results json %s: every result needs an integer image_id"
                           % results_json_path) from None
    missing = sorted(res_ids - gt_ids)
    if missing:
        raise DatasetError("results json %s has %d image id(s) absent from the ground truth %s: %s"
                           % (results_json_path, len(missing), gt_json_path, missing[:20]))
    num_joints = len(coco_gt.loadCats(coco_gt.getCatIds())[0].get("keypoints", [])) or None
    for i, r in enumerate(results):
        if "keypoints" not in r or "score" not in r:
            raise DatasetError("results json %s: result %d lacks keypoints or score"
                               % (results_json_path, i))
        if num_joints is not None and len(r["keypoints"]) != 3 * num_joints:
            raise DatasetError("results json %s: result %d has %d keypoint values, expected %d"
                               % (results_json_path, i, len(r["keypoints"]), 3 * num_joints))
        if not np.isfinite(np.asarray(r["keypoints"], dtype=np.float64)).all() \
                or not np.isfinite(float(r["score"])):
            raise DatasetError("results json %s: result %d (image_id %s) has a NaN or infinite "
                               "keypoint or score" % (results_json_path, i, r.get("image_id")))


def load_gt_and_results(gt_json_path, results_json_path, *, allow_empty=False, verbose=False):
    """Read and check a COCO keypoint ground truth and a COCO results json.

    Returns ``(coco_gt, coco_dt, results)``: pycocotools ``COCO`` objects (``coco_dt`` is None for
    an empty results list, allowed only with ``allow_empty``) and the results list. Raises
    :class:`~gluonpose.errors.MissingFileError` / :class:`~gluonpose.errors.DatasetError` naming the
    file and result at fault (unreadable json, unknown image ids, wrong keypoint count, NaN).
    """
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    results = _load_results(results_json_path)
    if not results and not allow_empty:
        raise DatasetError("results json %s is empty: no predictions to evaluate" % results_json_path)
    coco_gt = _load_ground_truth(gt_json_path, quiet)
    if not results:
        return coco_gt, None, results
    _check_results(results, coco_gt, results_json_path, gt_json_path)
    with quiet:
        coco_dt = coco_gt.loadRes(results)     # the list read above: pycocotools would read the file again
    return coco_gt, coco_dt, results


def evaluate_keypoints(gt_json_path, results_json_path, *, sigmas=None, allow_empty=False,
                       verbose=False):
    """Run pycocotools ``COCOeval(iouType='keypoints')`` on a results json.

    Args:
        gt_json_path: COCO keypoint annotation json.
        results_json_path: COCO results json (see :func:`write_coco_results`).
        sigmas: (K,) OKS sigmas; None keeps pycocotools' COCO-17 sigmas.
        allow_empty: with an empty results list, log a warning and return all-zero stats instead
            of raising.
        verbose: let pycocotools print its progress and summary.

    Returns:
        OrderedDict of the 10 statistics named in :data:`STATS_NAMES`.
    """
    with gc_paused():
        return _evaluate_keypoints(gt_json_path, results_json_path, sigmas=sigmas,
                                   allow_empty=allow_empty, verbose=verbose)


def _evaluate_keypoints(gt_json_path, results_json_path, *, sigmas, allow_empty, verbose):
    from pycocotools.cocoeval import COCOeval

    coco_gt, coco_dt, _ = load_gt_and_results(gt_json_path, results_json_path,
                                              allow_empty=allow_empty, verbose=verbose)
    if coco_dt is None:
        LOG.warning("results json %s is empty: no predictions to evaluate; reporting zero AP/AR",
                    results_json_path)
        return OrderedDict((name, 0.0) for name in STATS_NAMES)
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        coco_eval.params.useSegm = None
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return OrderedDict((name, float(v)) for name, v in zip(STATS_NAMES, coco_eval.stats))


def format_stats_table(stats, name="model"):
    """Format the 10 COCO keypoint statistics as a markdown table (one header row, one value row).

    Args:
        stats: mapping name -> value, e.g. from :func:`evaluate_keypoints`.
        name: label of the value row.

    Returns:
        the table as a multi-line string (values in percent-free fractions, 3 decimals).
    """
    names = list(stats.keys())
    header = "| Arch | " + " | ".join(names) + " |"
    rule = "|---|" + "---|" * len(names)
    values = "| %s | " % name + " | ".join("%.3f" % float(stats[n]) for n in names) + " |"
    return "\n".join([header, rule, values])
