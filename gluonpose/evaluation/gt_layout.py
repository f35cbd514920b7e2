"""Evaluate COCO-17 predictions against the ground truth of another keypoint layout.

The models always predict the 17 COCO joints. For a COCO-format ground truth with another layout
(CrowdPose's 14 joints, COCO-style AI Challenger) only the joints both layouts share can be scored:
the ground truth is rewritten (once, next to the results) with those joints only, in COCO order, and
the predictions keep the same COCO joints. OKS uses the COCO sigmas of the shared joints; for
CrowdPose's 12 limb joints these are the values the CrowdPose benchmark uses too (.79 .79 .72 .72
.62 .62 1.07 1.07 .87 .87 .89 .89 / 10). Head-top and neck are dropped (no COCO counterpart).

What this is not: the official CrowdPose metric (crowdposetools) scores all 14 joints and reports
AP easy / medium / hard by crowd index; here the standard pycocotools table over the 12 shared
joints is reported. CrowdPose's json has no ``area``; like crowdposetools (as far as known) the
OKS scale is then taken as ``0.53 * box area``.
"""
import json
import logging
import os
from typing import NamedTuple, Optional

import numpy as np

from ..data.keypoints import get_keypoint_map
from ..keypoints import COCO_KEYPOINT_NAMES, COCO_SIGMAS, NUM_COCO_KEYPOINTS
from ..errors import ConfigError, DatasetError

LOG = logging.getLogger(__name__)

#: OKS scale of an annotation without ``area``, as a fraction of its box area (CrowdPose tools).
BOX_AREA_FRACTION = 0.53


class EvalTarget(NamedTuple):
    """How to score COCO-17 predictions on one ground truth.

    Attributes:
        gt_json: COCO-format ground truth to hand to pycocotools (the original or a rewritten one).
        joints: (J,) int64 COCO-17 indices of the predicted joints to write, in GT order.
        sigmas: (J,) OKS sigmas, or None for pycocotools' COCO-17 defaults.
        note: one line saying what is evaluated (printed by the CLIs).
    """

    gt_json: str
    joints: np.ndarray
    sigmas: Optional[np.ndarray]
    note: str


def _shared_gt(data, kmap, gt_json):
    """Rewrite a layout's COCO json onto its COCO-shared joints (sorted by COCO index)."""
    order = np.argsort(kmap.dst)
    src, dst = kmap.src[order], kmap.dst[order]
    out = {k: v for k, v in data.items() if k not in ("annotations", "categories")}
    out["categories"] = [{"id": 1, "name": "person", "supercategory": "person",
                          "keypoints": [COCO_KEYPOINT_NAMES[j] for j in dst], "skeleton": []}]
    anns, no_area = [], 0
    for i, ann in enumerate(data["annotations"]):
        kp = np.asarray(ann.get("keypoints", []), dtype=np.float64)
        if kp.size != 3 * kmap.num_joints:
            raise DatasetError("%s: annotation %d has %d keypoint values, layout %r needs %d"
                               % (gt_json, i, kp.size, kmap.name, 3 * kmap.num_joints))
        kp = kp.reshape(-1, 3)[src]
        new = dict(ann, keypoints=[float(v) for v in kp.reshape(-1)],
                   num_keypoints=int((kp[:, 2] > 0).sum()))
        if "area" not in new:
            no_area += 1
            new["area"] = BOX_AREA_FRACTION * float(ann["bbox"][2]) * float(ann["bbox"][3])
        new.setdefault("iscrowd", 0)
        anns.append(new)
    out["annotations"] = anns
    return out, dst, no_area


def prepare_eval_target(gt_json, layout="coco", work_dir=None):
    """Ground truth + joint selection for scoring COCO-17 predictions on a ``layout`` json.

    Args:
        gt_json: COCO-format keypoint json of that layout.
        layout: ``coco`` (unchanged) or another COCO-style layout of
            :mod:`gluonpose.data.keypoints` (``crowdpose``, ``aic``).
        work_dir: folder for the rewritten ground truth (required unless ``layout='coco'``;
            the CLIs pass the folder of the results file).

    Returns:
        :class:`EvalTarget`.
    """
    if layout == "coco":
        return EvalTarget(gt_json, np.arange(NUM_COCO_KEYPOINTS), None,
                          "COCO-17 ground truth %s, all 17 joints" % gt_json)
    if layout == "mpii":
        raise ConfigError("MPII is not a COCO-format ground truth; AP evaluation supports COCO-style "
                          "jsons (coco, crowdpose, aic)")
    kmap = get_keypoint_map(layout)
    try:
        with open(gt_json, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise DatasetError("cannot read ground truth %s: %s" % (gt_json, err)) from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DatasetError("%s is not a COCO-format keypoint json" % gt_json)
    out, dst, no_area = _shared_gt(data, kmap, gt_json)
    if work_dir is None:
        raise ValueError("prepare_eval_target(layout=%r) needs work_dir for the rewritten ground "
                         "truth" % layout)
    os.makedirs(work_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(gt_json))[0]
    path = os.path.join(work_dir, "%s.%s%d_shared.json" % (stem, layout, len(dst)))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f)
    dropped = [kmap.names[i] for i in range(kmap.num_joints) if i not in set(kmap.src.tolist())]
    note = ("%s ground truth %s scored on the %d joints it shares with COCO-17 (dropped: %s); "
            "COCO sigmas of those joints; standard pycocotools table, not the official %s metric%s"
            % (layout, gt_json, len(dst), ", ".join(dropped) or "none", layout,
               "; %d annotations without 'area' use %.2f x box area" % (no_area, BOX_AREA_FRACTION)
               if no_area else ""))
    LOG.info("%s; rewritten ground truth: %s", note, path)
    return EvalTarget(path, dst.astype(np.int64), COCO_SIGMAS[dst].copy(), note)
