"""AI Challenger keypoint reader: the original ``keypoint_annotations`` format and COCO-style json.

Original format: a list of ``{image_id: "<hash>", keypoint_annotations: {"human1": [x, y, v] * 14},
human_annotations: {"human1": [x1, y1, x2, y2]}}``; images are ``<img_prefix>/<image_id>.jpg``.
Its visibility is 1 visible, 2 occluded, 3 unlabelled, converted to COCO 2, 1, 0. The COCO-style
json (mmpose's ``aic_train.json``) already uses COCO visibility and is read like COCO.
The 14 joints map onto COCO 5..16; head-top and neck are dropped, the face stays v = 0.
"""
import os

import numpy as np

from ..records import PersonRecord
from ...errors import DatasetError
from .base import check_box_xywh
from .coco import CocoStyleReader

#: raw AIC visibility -> COCO visibility
AIC_TO_COCO_VISIBILITY = {1: 2, 2: 1, 3: 0}


class AicKeypoints(CocoStyleReader):
    """AI Challenger reader; picks the format from the json (dict = COCO-style, list = original)."""

    layout = "aic"

    def _parse(self, data):
        if isinstance(data, dict):
            return self._parse_coco(data)
        if not isinstance(data, list):
            raise DatasetError(f"{self.ann_file}: neither a COCO-style json nor an AI Challenger "
                               "keypoint_annotations list")
        if not data:
            raise DatasetError(f"{self.ann_file}: the annotation file has no annotations")
        records = []
        for index, entry in enumerate(data):
            records.extend(self._parse_image(index, entry, len(records)))
        return records

    def _parse_image(self, index, entry, first_ann_id):
        keys = ("image_id", "keypoint_annotations", "human_annotations")
        if not isinstance(entry, dict) or any(k not in entry for k in keys) \
                or not isinstance(entry["keypoint_annotations"], dict) \
                or not isinstance(entry["human_annotations"], dict):
            self.policy.bad("malformed", f"entry {index}",
                            f"an AI Challenger entry needs {list(keys)} (the last two as objects)")
            return []
        image_path = os.path.join(self.img_prefix, f"{entry['image_id']}.jpg")
        records = []
        for human, raw_kpts in entry["keypoint_annotations"].items():
            where = f"entry {index} (image {entry['image_id']}, {human})"
            rec = self._parse_human(where, raw_kpts, entry["human_annotations"].get(human),
                                    image_path, index, first_ann_id + len(records))
            if rec is not None:
                rec.extra.update(aic_image_id=str(entry["image_id"]), human=str(human))
                records.append(rec)
        return records

    def _parse_human(self, where, raw_kpts, raw_box, image_path, image_index, ann_id):
        if raw_box is None:
            self.policy.bad("malformed", where, "no human_annotations box for this person")
            return None
        try:
            x1, y1, x2, y2 = (float(v) for v in raw_box)
            arr = np.asarray(raw_kpts, dtype=np.float64).reshape(self.kmap.num_joints, 3)
        except (TypeError, ValueError):
            self.policy.bad("malformed", where, "box must be [x1, y1, x2, y2] and keypoints "
                            f"{self.kmap.num_joints} x [x, y, v]")
            return None
        box = [x1, y1, x2 - x1, y2 - y1]
        problem = check_box_xywh(box, min_side=0)
        if problem is None and not np.all(np.isfinite(arr)):
            problem = ("non_finite", "keypoints have NaN/inf values")
        if problem is None and not np.all(np.isin(arr[:, 2], tuple(AIC_TO_COCO_VISIBILITY))):
            problem = ("bad_visibility", f"AIC visibility must be 1/2/3, got {arr[:, 2].tolist()}")
        if problem is not None:
            self.policy.bad(problem[0], where, problem[1])
            return None
        arr[:, 2] = [AIC_TO_COCO_VISIBILITY[int(v)] for v in arr[:, 2]]
        arr[arr[:, 2] == 0, :2] = 0.0
        if box[2] * box[3] <= 0:
            self.policy.skip("zero_area")
            return None
        problem = check_box_xywh(box)
        if problem is not None:
            self.policy.bad(problem[0], where, problem[1])
            return None
        kpts = self._checked_keypoints(arr, where, ref_box=box)
        coco_kpts = None if kpts is None else self._coco_keypoints(kpts)
        if coco_kpts is None:
            return None
        if not self._image_ok(image_path, where):
            return None
        return PersonRecord(image_path=image_path, bbox=np.asarray(box, dtype=np.float32),
                            keypoints=coco_kpts, image_id=image_index, score=1.0,
                            area=float(box[2] * box[3]), dataset=self.dataset_name, ann_id=ann_id)
