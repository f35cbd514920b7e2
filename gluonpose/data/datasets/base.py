"""Shared pieces of the dataset readers: json loading with clear errors, the bad-data policy,
record validation and the reader base class.

Two kinds of dropped instances are counted in ``reader.skipped`` (a Counter of reasons):

* official cleaning (always a skip): ``iscrowd``, ``not_person``, ``no_keypoints``, ``zero_area``,
  ``box_outside_image``;
* bad data, following ``on_bad``: ``'raise'`` raises :class:`DatasetError` naming the file and the
  record, ``'skip'`` counts the reason (``malformed``, ``non_finite``, ``bad_box``,
  ``bad_visibility``, ``keypoints_outside_image``, ``unknown_image``, ``missing_image``,
  ``degenerate_box``) and logs it.

:func:`format_skipped` turns the counts into the one line a run prints.
"""
import json
import logging
import math
import os
from collections import Counter

import numpy as np

from ...errors import ConfigError, DatasetError
from ..keypoints import map_to_coco

LOG = logging.getLogger(__name__)

ON_BAD_CHOICES = ("raise", "skip")


def load_json(path, what="annotation file"):
    """Read a json file, turning a missing, empty or malformed file into a :class:`DatasetError`."""
    if not os.path.isfile(path):
        raise DatasetError(f"{what} not found: {path}")
    if os.path.getsize(path) == 0:
        raise DatasetError(f"{what} is empty (0 bytes): {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{what} is not valid JSON: {path}: {err}") from err


class BadDataPolicy:
    """Applies ``on_bad`` and keeps the Counter of skip reasons of one file."""

    def __init__(self, source, on_bad="raise"):
        if on_bad not in ON_BAD_CHOICES:
            raise ConfigError(f"on_bad must be one of {ON_BAD_CHOICES}, got {on_bad!r}")
        self.source = source
        self.on_bad = on_bad
        self.skipped = Counter()

    def bad(self, reason, where, detail):
        """Bad record: raise (naming file, record and reason) or count and log a skip."""
        if self.on_bad == "raise":
            raise DatasetError(f"{self.source}: {where}: {detail} [{reason}]")
        self.skipped[reason] += 1
        LOG.debug("%s: skipped %s: %s [%s]", self.source, where, detail, reason)

    def skip(self, reason):
        """Official cleaning skip: always counted, never raised."""
        self.skipped[reason] += 1

    def log_summary(self, num_kept):
        msg = f"{self.source}: {num_kept} person records"
        if self.skipped:
            msg += ", skipped " + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
        LOG.info(msg)
        if num_kept == 0:
            LOG.warning("%s: no usable person record (skipped: %s)", self.source, dict(self.skipped))


#: A box whose longer side is below this many pixels is degenerate: nothing is left to crop after
#: the aspect fix (a zero-size crop gives a blank training sample and a NaN prediction).
MIN_BOX_SIDE_PX = 1.0


def check_box_xywh(box, min_side=MIN_BOX_SIDE_PX):
    """Return ``(reason, detail)`` when an ``[x, y, w, h]`` box is unusable, else None.

    Reasons: ``malformed`` (not 4 numbers), ``non_finite`` (NaN/inf), ``bad_box`` (negative width
    or height), ``degenerate_box`` (both sides below ``min_side`` px, i.e. a side <= 0 or below
    1 px even after the aspect fix, which widens the shorter side to the input aspect ratio).
    ``min_side=0`` skips the last check.
    """
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return "malformed", f"bbox is not numeric: {box!r}"
    if b.shape != (4,):
        return "malformed", f"bbox must have 4 numbers, got {b.size}"
    if not np.all(np.isfinite(b)):
        return "non_finite", f"bbox has a NaN/inf value: {b.tolist()}"
    if b[2] < 0 or b[3] < 0:
        return "bad_box", f"bbox has a negative width/height: {b.tolist()}"
    if min_side > 0 and max(b[2], b[3]) < min_side:
        return "degenerate_box", (f"bbox {[round(float(v), 3) for v in b]} is below {min_side:g} px "
                                  "(nothing to crop)")
    return None


def check_keypoints(kpts, num_joints, size_wh=None, margin=0.5, ref_box=None):
    """Validate a flat ``[x, y, v] * K`` list.

    Args:
        kpts: the raw list (any sequence of numbers).
        num_joints: K, the expected joint count.
        size_wh: (w, h) of the image, or None when unknown.
        margin: labelled joints may lie up to ``margin * w`` (``* h``) outside the image.
        ref_box: ``[x, y, w, h]`` used instead of the image when ``size_wh`` is None (joints may
            lie up to ``margin`` box sizes outside it); no range check when both are None.

    Returns:
        ``(array (K, 3) float64, None)`` when valid, else ``(None, (reason, detail))``.
    """
    try:
        arr = np.asarray(kpts, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, ("malformed", "keypoints are not numeric")
    if arr.size != num_joints * 3:
        return None, ("malformed", f"expected {num_joints * 3} keypoint numbers, got {arr.size}")
    arr = arr.reshape(num_joints, 3)
    if not np.all(np.isfinite(arr)):
        return None, ("non_finite", f"keypoints have NaN/inf at joints "
                                    f"{np.where(~np.isfinite(arr).all(1))[0].tolist()}")
    if not np.all(np.isin(arr[:, 2], (0, 1, 2))):
        return None, ("bad_visibility", f"visibility flags must be 0/1/2, got {arr[:, 2].tolist()}")
    if size_wh is not None or ref_box is not None:
        x0, y0, w, h = (0.0, 0.0) + tuple(size_wh) if size_wh is not None else tuple(ref_box)
        lab = arr[arr[:, 2] > 0]
        out = ((lab[:, 0] < x0 - margin * w) | (lab[:, 0] > x0 + (1 + margin) * w)
               | (lab[:, 1] < y0 - margin * h) | (lab[:, 1] > y0 + (1 + margin) * h))
        if out.any():
            what = f"the {w:g}x{h:g} image" if size_wh is not None else f"the box {list(ref_box)}"
            return None, ("keypoints_outside_image",
                          f"labelled keypoints far outside {what}: {lab[out, :2].tolist()}")
    return arr, None


def clean_box_xywh(box, size_wh):
    """Official HRNet box cleaning: clip to the image; returns (4,) float64 or None when empty.

    ``x2 = min(W - 1, x1 + max(0, w - 1))`` (same for y); kept when ``x2 >= x1`` and ``y2 >= y1``.
    """
    x, y, w, h = (float(v) for v in box)
    width, height = size_wh
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)  # float64, as the official code


def format_skipped(skipped):
    """``'none'`` or ``'degenerate_box=2, iscrowd=1'`` (reasons sorted) for a Counter/dict of skips."""
    items = sorted((k, int(v)) for k, v in dict(skipped or {}).items() if v)
    return ", ".join(f"{k}={v}" for k, v in items) if items else "none"


def positive_size(width, height):
    """True when both are finite numbers > 0."""
    try:
        return all(math.isfinite(float(v)) and float(v) > 0 for v in (width, height))
    except (TypeError, ValueError):
        return False


class KeypointReader:
    """Base of the readers: loads ``ann_file`` at construction into ``self.records``.

    Subclasses set ``dataset_name`` and implement ``_parse(data) -> list of PersonRecord``, calling
    ``self.policy.bad`` / ``self.policy.skip`` for dropped records.

    Args:
        ann_file: the annotation json.
        img_prefix: folder prepended to the image file names.
        on_bad: ``'raise'`` or ``'skip'`` (see module docstring).
        check_images: also check that every image file exists (``missing_image``).
        skip_empty: drop instances with no labelled COCO keypoint (training); False keeps them
            (e.g. ground-truth boxes for evaluation).
        keypoint_margin: how far outside the image a labelled joint may lie, as a fraction of the
            image size, before the record counts as bad.
    """

    dataset_name = ""

    def __init__(self, ann_file, img_prefix="", *, on_bad="raise", check_images=False,
                 skip_empty=True, keypoint_margin=0.5):
        self.ann_file = ann_file
        self.img_prefix = img_prefix
        self.check_images = check_images
        self.skip_empty = skip_empty
        self.keypoint_margin = keypoint_margin
        self.policy = BadDataPolicy(ann_file, on_bad)
        self._image_exists = {}
        self.records = self._parse(load_json(ann_file))
        self.policy.log_summary(len(self.records))

    @property
    def skipped(self):
        """Counter of skip reasons."""
        return self.policy.skipped

    def _parse(self, data):
        raise NotImplementedError

    def _checked_keypoints(self, kpts, where, size_wh=None, ref_box=None):
        """Validate dataset-order keypoints (``check_keypoints``); None after ``policy.bad``."""
        checked, problem = check_keypoints(kpts, self.kmap.num_joints, size_wh, self.keypoint_margin,
                                           ref_box=ref_box)
        if problem is not None:
            self.policy.bad(problem[0], where, problem[1])
            return None
        return checked

    def _coco_keypoints(self, kpts):
        """Checked keypoints mapped onto COCO-17; None (skip ``no_keypoints``) when none is labelled
        and ``skip_empty`` is set. Subclasses set ``self.kmap``."""
        coco_kpts = map_to_coco(kpts, self.kmap)
        if self.skip_empty and not (coco_kpts[:, 2] > 0).any():
            self.policy.skip("no_keypoints")
            return None
        return coco_kpts

    def _image_ok(self, path, where):
        """With ``check_images``, False (after ``policy.bad``) when the image file is missing."""
        if not self.check_images:
            return True
        if path not in self._image_exists:
            self._image_exists[path] = os.path.isfile(path)
        if not self._image_exists[path]:
            self.policy.bad("missing_image", where, f"image file not found: {path}")
            return False
        return True

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def __iter__(self):
        return iter(self.records)

    def summary(self):
        """``{'dataset', 'ann_file', 'num_records', 'num_images', 'skipped'}``."""
        return {"dataset": self.dataset_name, "ann_file": self.ann_file,
                "num_records": len(self.records),
                "num_images": len({r.image_path for r in self.records}),
                "skipped": dict(self.skipped)}
