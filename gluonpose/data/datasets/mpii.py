"""MPII Human Pose reader for the widely used json list ``[{image, center, scale, joints,
joints_vis}, ...]`` (Matlab 1-based pixel coordinates, ``scale`` = person height / 200 px).

Conversions, as in the official HRNet and mmpose MPII loaders:

* the centre is moved down by ``15 * scale`` px (unless ``center[0] == -1``) to avoid cutting the
  legs, then both centre and joints are shifted by -1 (1-based -> 0-based);
* the box is the square of side ``scale * 200`` around that centre (mmpose ``bbox_cs2xyxy``);
  the top-down crop later pads it by 1.25 like any box, giving the official ``scale * 1.25``;
* ``joints_vis`` > 0 means labelled and becomes ``v = 2`` (MPII's json does not tell occluded from
  visible); unlabelled joints (coordinates -1 in the file) become ``v = 0``.
"""
import os

import numpy as np

from ...errors import UserError
from ..imageio import read_image
from ..keypoints import get_keypoint_map
from ..records import PersonRecord
from ...errors import DatasetError
from .base import KeypointReader, check_box_xywh

PIXEL_STD = 200.0
CENTER_SHIFT_PX_PER_SCALE = 15.0


def mpii_box_xywh(center, scale):
    """(4,) float32 ``[x, y, w, h]`` 0-based box of an MPII (1-based) ``center`` and ``scale``."""
    cx, cy = float(center[0]), float(center[1])
    if cx != -1:
        cy += CENTER_SHIFT_PX_PER_SCALE * scale
    side = float(scale) * PIXEL_STD
    cx, cy = cx - 1.0, cy - 1.0
    return np.array([cx - side / 2.0, cy - side / 2.0, side, side], dtype=np.float32)


def _image_id(name, index):
    stem = os.path.splitext(os.path.basename(name))[0]
    return int(stem) if stem.isdigit() else index


class MpiiKeypoints(KeypointReader):
    """MPII json list reader (16 joints -> 12 COCO joints; the face and pelvis/thorax/neck/head-top
    have no COCO counterpart). With ``check_images`` the images are also opened to learn their
    size, which enables the keypoint range check."""

    dataset_name = "mpii"

    def __init__(self, ann_file, img_prefix="", **kwargs):
        self.kmap = get_keypoint_map("mpii")
        super().__init__(ann_file, img_prefix, **kwargs)

    def _parse(self, data):
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            data = data["annotations"]
        if not isinstance(data, list):
            raise DatasetError(f"{self.ann_file}: an MPII json must be a list of "
                               "{image, center, scale, joints, joints_vis}")
        if not data:
            raise DatasetError(f"{self.ann_file}: the annotation file has no annotations")
        sizes = {}
        records = []
        for index, ann in enumerate(data):
            rec = self._parse_entry(index, ann, sizes)
            if rec is not None:
                records.append(rec)
        return records

    def _image_size(self, path, where, sizes):
        """(w, h) of the image when ``check_images`` (None when not checked or missing)."""
        if not self.check_images:
            return None
        if path not in sizes:
            try:
                img = read_image(path)
            except UserError:
                img = None
            sizes[path] = None if img is None else (float(img.shape[1]), float(img.shape[0]))
        if sizes[path] is None:
            self.policy.bad("missing_image", where, f"image file missing, truncated or unreadable: {path}")
        return sizes[path]

    def _parse_entry(self, index, ann, sizes):
        where = f"entry {index}"
        keys = ("image", "center", "scale", "joints", "joints_vis")
        if not isinstance(ann, dict) or any(k not in ann for k in keys):
            self.policy.bad("malformed", where, f"an MPII entry needs keys {list(keys)}")
            return None
        where = f"entry {index} (image {ann['image']})"
        try:
            center = np.asarray(ann["center"], dtype=np.float64).reshape(2)
            scale = float(ann["scale"])
            joints = np.asarray(ann["joints"], dtype=np.float64).reshape(self.kmap.num_joints, 2)
            vis = np.asarray(ann["joints_vis"], dtype=np.float64).reshape(self.kmap.num_joints)
        except (TypeError, ValueError):
            self.policy.bad("malformed", where, "center (2), scale, joints (16x2) and "
                            "joints_vis (16) must be numbers of those shapes")
            return None
        if not (np.all(np.isfinite(center)) and np.isfinite(scale) and np.all(np.isfinite(joints))):
            self.policy.bad("non_finite", where, f"NaN/inf in center {center.tolist()}, scale "
                            f"{scale} or joints {joints.tolist()}")
            return None
        if scale <= 0:
            self.policy.bad("bad_box", where, f"scale must be > 0, got {scale}")
            return None
        if not np.all(np.isin(vis, (0, 1))):
            self.policy.bad("bad_visibility", where, f"joints_vis must be 0/1, got {vis.tolist()}")
            return None
        image_path = os.path.join(self.img_prefix, str(ann["image"]))
        size_wh = self._image_size(image_path, where, sizes)
        if self.check_images and size_wh is None:
            return None
        src = np.zeros((self.kmap.num_joints, 3), dtype=np.float64)
        src[:, :2] = joints - 1.0
        src[:, 2] = np.where(vis > 0, 2.0, 0.0)
        src[src[:, 2] == 0, :2] = 0.0  # unlabelled joints are -1 / garbage in the file
        box = mpii_box_xywh(center, scale)
        problem = check_box_xywh(box)
        if problem is not None:
            self.policy.bad(problem[0], where, f"{problem[1]} (scale {scale:g})")
            return None
        kpts = self._checked_keypoints(src, where, size_wh, ref_box=box)
        coco_kpts = None if kpts is None else self._coco_keypoints(kpts)
        if coco_kpts is None:
            return None
        return PersonRecord(image_path=image_path, bbox=box, keypoints=coco_kpts,
                            image_id=_image_id(str(ann["image"]), index), score=1.0,
                            area=float(box[2] * box[3]), dataset=self.dataset_name, ann_id=index,
                            extra={"mpii_center": center.tolist(), "mpii_scale": scale,
                                   "image_size_wh": size_wh})
