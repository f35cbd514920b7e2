"""Test-time person boxes from detection files (COCO results format); ground-truth boxes are
:func:`gluonpose.evaluation.runner.gt_boxes`.

Both give PersonRecords whose keypoints are all zero with ``v = 0`` (nothing to train on); the
top-down pipeline crops the box and predicts. As in the official HRNet test, only category 1 is
kept, boxes are used as detected (no clipping, no box NMS) and ``score_thresh`` (official
``IMAGE_THRE``, 0.0 in the COCO yamls) drops low-scoring boxes.
"""
import logging
import math
import os
from collections import Counter
from typing import NamedTuple

import numpy as np

from ..errors import DatasetError
from ..keypoints import NUM_COCO_KEYPOINTS
from .datasets.base import check_box_xywh, load_json
from .records import PersonRecord

LOG = logging.getLogger(__name__)

ON_EMPTY_CHOICES = ("raise", "warn")


def load_image_index(image_file):
    """``{image_id: (file_name, (w, h))}`` from a COCO GT json or image-list json (``images``)."""
    data = load_json(image_file, what="image list / ground-truth json")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{image_file}: needs an 'images' list (COCO GT or image-info json)")
    index = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise DatasetError(f"{image_file}: images[{i}] needs 'id' and 'file_name'")
        index[img["id"]] = (str(img["file_name"]), (img.get("width"), img.get("height")))
    return index


def box_problem(box):
    """Reason (``malformed_box`` / ``degenerate_box``) when a detection box is unusable, else None.

    The rule of the dataset readers (:func:`~gluonpose.data.datasets.base.check_box_xywh`): NaN/inf,
    a negative side, or both sides below 1 px (nothing to crop even after the aspect fix) are
    degenerate. A box that is thin in one direction only (e.g. ``w = 0``, ``h = 40``) is kept: the
    aspect fix widens it, as in the official HRNet test.
    """
    problem = check_box_xywh(box)
    if problem is None:
        return None
    return "malformed_box" if problem[0] == "malformed" else "degenerate_box"


class Detections(NamedTuple):
    """The boxes of a detection file as test records, and what was skipped."""

    records: list          # PersonRecord per kept box
    skipped: Counter       # reason -> count (not_person, low_score, degenerate_box, ...)


def load_detections(det_file, image_file, img_prefix="", *, score_thresh=0.0, on_empty="raise"):
    """Read a COCO-results detection file into test PersonRecords.

    Args:
        det_file: json list of ``{image_id, category_id, bbox: [x, y, w, h], score}``.
        image_file: the GT json or image-info json whose ``images`` give each ``image_id``'s file.
        img_prefix: folder prepended to the image file names.
        score_thresh: keep boxes with ``score >= score_thresh``.
        on_empty: when no box is left (empty file or all filtered): ``'raise'`` a DatasetError or
            ``'warn'`` (log a warning, return no records).

    Returns:
        :class:`Detections`: the PersonRecords (``ann_id = -1``, ``extra['det_index']`` =
        position in the file) and the Counter of skip reasons (``not_person``, ``low_score``,
        ``degenerate_box``, ``malformed_box``, ``bad_score``).

    Raises:
        DatasetError: missing / malformed file, an entry that is not a detection object, image ids
            absent from ``image_file`` (named), or no box left with ``on_empty='raise'``.
    """
    if on_empty not in ON_EMPTY_CHOICES:
        raise ValueError(f"on_empty must be one of {ON_EMPTY_CHOICES}, got {on_empty!r}")
    dets = _checked_entries(det_file)
    images = load_image_index(image_file)
    unknown = sorted({d["image_id"] for d in dets if d["image_id"] not in images})
    if unknown:
        raise DatasetError(f"{det_file}: {len(unknown)} image ids are not in {image_file}: "
                           f"{unknown[:20]}{' ...' if len(unknown) > 20 else ''}")
    skipped = Counter()
    records = [rec for i, det in enumerate(dets)
               for rec in _record_of(det, i, det_file, images, img_prefix, score_thresh, skipped)]
    LOG.info("%s: %d of %d detections kept (score >= %g)%s", det_file, len(records), len(dets),
             score_thresh, f", skipped {dict(skipped)}" if skipped else "")
    if not records:
        msg = (f"{det_file}: no detection left ({len(dets)} in the file, score_thresh "
               f"{score_thresh}, skipped {dict(skipped)})")
        if on_empty == "raise":
            raise DatasetError(msg)
        LOG.warning(msg)
    return Detections(records, skipped)


def _checked_entries(det_file):
    """The file's list of detection dicts, each with an integer image id, bbox and score."""
    dets = load_json(det_file, what="detection file")
    if not isinstance(dets, list):
        raise DatasetError(f"{det_file}: a detection file must be a json list of "
                           "{image_id, category_id, bbox, score}")
    keys = ("image_id", "bbox", "score")
    for i, det in enumerate(dets):
        if not isinstance(det, dict) or any(k not in det for k in keys):
            raise DatasetError(f"{det_file}: detection {i} needs keys {list(keys)}: {det!r}")
        if not isinstance(det["image_id"], int) or isinstance(det["image_id"], bool):
            raise DatasetError(f"{det_file}: detection {i} has a non-integer image_id "
                               f"{det['image_id']!r}")
    return dets


def _record_of(det, i, det_file, images, img_prefix, score_thresh, skipped):
    """[PersonRecord] of detection ``i``, or [] (counted in ``skipped``, logged when malformed)."""
    if det.get("category_id", 1) != 1:
        skipped["not_person"] += 1
        return []
    try:
        score = float(det["score"])
    except (TypeError, ValueError):
        score = float("nan")
    if not math.isfinite(score):
        skipped["bad_score"] += 1
        LOG.warning("%s: detection %d has a non-finite score %r, skipped", det_file, i,
                    det["score"])
        return []
    if score < score_thresh:
        skipped["low_score"] += 1
        return []
    reason = box_problem(det["bbox"])
    if reason is not None:
        skipped[reason] += 1
        LOG.warning("%s: detection %d (image %s) has a %s %r, skipped", det_file, i,
                    det["image_id"], reason.replace("_", " "), det["bbox"])
        return []
    file_name, size_wh = images[det["image_id"]]
    box = np.asarray(det["bbox"], dtype=np.float64)     # the detector's values, unrounded
    return [PersonRecord(
        image_path=os.path.join(img_prefix, file_name), bbox=box,
        keypoints=np.zeros((NUM_COCO_KEYPOINTS, 3), dtype=np.float32),
        image_id=int(det["image_id"]), score=score, area=float(box[2] * box[3]),
        dataset="detections", ann_id=-1, extra={"det_index": i, "image_size_wh": size_wh})]
