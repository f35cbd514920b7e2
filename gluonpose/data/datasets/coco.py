"""COCO-style keypoint json readers: COCO-17 itself, CrowdPose (14 joints), COCO-style AIC.

The cleaning follows the official HRNet COCO loader: crowd instances are skipped, boxes are clipped
to the image (``x2 = min(W-1, x1 + max(0, w-1))``), instances need area > 0, and (for training,
``skip_empty=True``) at least one labelled keypoint. Keypoints are mapped onto COCO-17 with the
layout table of :mod:`gluonpose.data.keypoints`.
"""
import os

import numpy as np

from ..keypoints import get_keypoint_map
from ..records import PersonRecord
from ...errors import DatasetError
from .base import (KeypointReader, check_box_xywh, check_keypoints, clean_box_xywh,
                   positive_size)

_REQUIRED_ANN_KEYS = ("image_id", "bbox", "keypoints")


class CocoStyleReader(KeypointReader):
    """Reader of a COCO-format person keypoint json (``images`` + ``annotations``).

    Args:
        ann_file, img_prefix, on_bad, check_images, skip_empty, keypoint_margin: see
            :class:`~gluonpose.data.datasets.base.KeypointReader`.
        layout: keypoint layout name of the file (``coco``, ``crowdpose``, ``aic``).
        dataset: the ``dataset`` name written into the records (defaults to ``layout``).
    """

    layout = "coco"

    def __init__(self, ann_file, img_prefix="", *, layout=None, dataset=None, **kwargs):
        if layout is not None:
            self.layout = layout
        self.dataset_name = dataset or self.layout
        self.kmap = get_keypoint_map(self.layout)
        super().__init__(ann_file, img_prefix, **kwargs)

    def _parse(self, data):
        return self._parse_coco(data)

    def _parse_coco(self, data):
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) \
                or not isinstance(data.get("images"), list):
            raise DatasetError(f"{self.ann_file}: not a COCO-style keypoint json "
                               "(needs 'images' and 'annotations' lists)")
        if not data["annotations"]:
            raise DatasetError(f"{self.ann_file}: the annotation file has no annotations")
        images = self._index_images(data["images"])
        records = []
        for index, ann in enumerate(data["annotations"]):
            rec = self._parse_annotation(index, ann, images)
            if rec is not None:
                records.append(rec)
        return records

    def _index_images(self, image_list):
        """``{image id: (file_name, (w, h), int image id)}``; bad image entries go through the policy."""
        images = {}
        for i, img in enumerate(image_list):
            where = f"images[{i}]"
            if not isinstance(img, dict) or any(k not in img for k in ("id", "file_name", "width",
                                                                        "height")):
                self.policy.bad("malformed", where, "image entry needs id, file_name, width, height")
                continue
            if not positive_size(img["width"], img["height"]):
                self.policy.bad("bad_image_size", f"{where} (id {img['id']})",
                                f"width/height must be finite and > 0, got "
                                f"{img['width']!r}x{img['height']!r}")
                continue
            int_id = img["id"] if isinstance(img["id"], int) else i
            images[img["id"]] = (str(img["file_name"]), (float(img["width"]), float(img["height"])),
                                 int_id)
        return images

    def _parse_annotation(self, index, ann, images):
        if not isinstance(ann, dict):
            self.policy.bad("malformed", f"annotations[{index}]", "annotation is not an object")
            return None
        ann_id = ann.get("id", index)
        where = f"annotation id {ann_id} (index {index})"
        missing = [k for k in _REQUIRED_ANN_KEYS if k not in ann]
        if missing:
            self.policy.bad("malformed", where, f"missing keys {missing}")
            return None
        if ann.get("category_id", 1) != 1:
            self.policy.skip("not_person")
            return None
        if ann.get("iscrowd", 0):
            self.policy.skip("iscrowd")
            return None
        if ann["image_id"] not in images:
            self.policy.bad("unknown_image", where, f"image_id {ann['image_id']!r} not in 'images'")
            return None
        file_name, size_wh, image_id = images[ann["image_id"]]
        problem = check_box_xywh(ann["bbox"], min_side=0)
        if problem is None:
            kpts, problem = check_keypoints(ann["keypoints"], self.kmap.num_joints, size_wh,
                                            self.keypoint_margin)
        if problem is not None:
            self.policy.bad(problem[0], where, problem[1])
            return None
        box = clean_box_xywh(ann["bbox"], size_wh)
        if box is None:
            self.policy.skip("box_outside_image")
            return None
        raw_area = ann.get("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
        try:
            area = float(raw_area)
        except (TypeError, ValueError):
            self.policy.bad("malformed", where, f"area is not a number: {raw_area!r}")
            return None
        if not np.isfinite(area):
            self.policy.bad("non_finite", where, f"area is {area}")
            return None
        if area <= 0:
            self.policy.skip("zero_area")
            return None
        problem = check_box_xywh(box)            # the cleaned box (w = x2 - x1) must be croppable
        if problem is not None:
            self.policy.bad(problem[0], where, f"{problem[1]}; raw bbox {ann['bbox']}")
            return None
        coco_kpts = self._coco_keypoints(kpts)
        if coco_kpts is None:
            return None
        image_path = os.path.join(self.img_prefix, file_name)
        if not self._image_ok(image_path, where):
            return None
        return PersonRecord(image_path=image_path, bbox=box, keypoints=coco_kpts,
                            image_id=image_id, score=1.0, area=area,
                            dataset=self.dataset_name, ann_id=ann_id if isinstance(ann_id, int) else index,
                            extra={"image_size_wh": size_wh})


class CocoKeypoints(CocoStyleReader):
    """COCO 2017 person keypoints (17 joints, already in COCO order)."""

    layout = "coco"


class CrowdPoseKeypoints(CocoStyleReader):
    """CrowdPose COCO-style json (14 joints: shoulders..ankles map to COCO 5..16; head/neck dropped)."""

    layout = "crowdpose"
