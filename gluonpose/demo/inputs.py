"""Demo glue: inputs (image / folder / video), person boxes from a COCO-results json, and top-down
prediction on in-memory images.

Box-file matching (``--boxes det.json``, a json list of ``{image_id, bbox [x, y, w, h], score,
category_id}``): an entry belongs to an image when

1. the entry has a ``file_name`` key and its base name equals the image's file name, or else
2. its ``image_id`` equals the image's id: taken from ``image_info`` (a COCO ground-truth /
   image-info json whose ``images`` list maps ``file_name`` -> ``id``) when given, otherwise the
   integer value of a numeric file stem (COCO style: ``000000196141.jpg`` -> 196141). Video frames
   have ``image_id`` = frame index (0-based).

Only ``category_id`` 1 (person; entries without it count as persons) and boxes with ``score >=
score_thr`` are kept; malformed entries are counted and logged, never silently used.
"""
import logging
import math
import os
from collections import Counter, defaultdict

import numpy as np

from ..data.records import PersonRecord
from ..errors import ConfigError, DatasetError, MissingFileError

LOG = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


def input_kind(path):
    """``'image'``, ``'folder'`` or ``'video'`` (by extension); FileNotFoundError / ValueError else."""
    if os.path.isdir(path):
        return "folder"
    if not os.path.isfile(path):
        raise MissingFileError("input not found: %s" % path)
    ext = os.path.splitext(path)[1].lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    raise ConfigError("input %s: unknown extension %r (images: %s; videos: %s)"
                      % (path, ext, " ".join(IMAGE_EXTS), " ".join(VIDEO_EXTS)))


def list_images(folder):
    """Sorted image files (by extension) directly inside ``folder``; ValueError when there are none."""
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if os.path.splitext(f)[1].lower() in IMAGE_EXTS)
    if not files:
        raise DatasetError("no image files (%s) in folder %s" % (" ".join(IMAGE_EXTS), folder))
    return files


def stem_image_id(file_name):
    """Integer id of a numeric file stem (``000000196141.jpg`` -> 196141), else None."""
    stem = os.path.splitext(os.path.basename(file_name))[0]
    return int(stem) if stem.isdigit() else None


def _entry_problem(det):
    """Why a box-file entry is unusable (``malformed_entry``, ``bad_score`` or the box's problem), or
    None."""
    from ..data.detections import box_problem

    if not isinstance(det, dict) or "bbox" not in det or "score" not in det:
        return "malformed_entry"
    try:
        score = float(det["score"])
    except (TypeError, ValueError):
        return "bad_score"
    return "bad_score" if not math.isfinite(score) else box_problem(det["bbox"])


class BoxFile:
    """Person boxes of a COCO-results json, looked up per image (see the module docstring).

    Args:
        path: the detection json. image_info: optional COCO json with an ``images`` list.
        score_thr: minimum box score.
    """

    def __init__(self, path, image_info=None, score_thr=0.0):
        from ..data.datasets.base import load_json
        from ..data.detections import load_image_index

        dets = load_json(path, what="detection file")
        if not isinstance(dets, list):
            raise DatasetError("%s: a box file must be a json list of {image_id, bbox, score, "
                               "category_id}" % path)
        self.path = path
        self.skipped = Counter()
        self.by_name, self.by_id = defaultdict(list), defaultdict(list)
        for i, det in enumerate(dets):
            problem = _entry_problem(det)
            if problem:
                self.skipped[problem] += 1
                LOG.warning("%s: entry %d skipped (%s): %r", path, i, problem, det)
            elif det.get("category_id", 1) != 1:
                self.skipped["not_person"] += 1
            elif float(det["score"]) < score_thr:
                self.skipped["low_score"] += 1
            elif "file_name" in det:
                self.by_name[os.path.basename(str(det["file_name"]))].append(det)
            elif "image_id" in det:
                self.by_id[det["image_id"]].append(det)
            else:
                self.skipped["no_image_key"] += 1
        self.name_to_id = {}
        if image_info:
            self.name_to_id = {os.path.basename(f): i
                               for i, (f, _) in load_image_index(image_info).items()}
        LOG.info("%s: %d boxes by file name, %d by image id; skipped %s", path,
                 sum(map(len, self.by_name.values())), sum(map(len, self.by_id.values())),
                 dict(self.skipped))

    def image_id(self, file_name):
        """The id an image file matches by: from ``image_info``, else its numeric stem, else None."""
        base = os.path.basename(file_name)
        return self.name_to_id.get(base, stem_image_id(base))

    def boxes_for(self, file_name=None, image_id=None):
        """(boxes (N, 4) xywh float64, scores (N,)) of an image (by name, then by id)."""
        dets = self.by_name.get(os.path.basename(file_name), []) if file_name else []
        if not dets:
            key = image_id if image_id is not None else (self.image_id(file_name) if file_name
                                                         else None)
            dets = self.by_id.get(key, []) if key is not None else []
        boxes = np.array([[float(v) for v in d["bbox"]] for d in dets], np.float64).reshape(-1, 4)
        return boxes, np.array([float(d["score"]) for d in dets], np.float64)


def predict_people(predictor, image_rgb, boxes, box_scores=None):
    """Top-down keypoints of the people in ``boxes`` of an in-memory image.

    Args:
        predictor: :class:`~gluonpose.evaluation.inference.TopDownPredictor` (its flip setting,
            batch size and contexts are used).
        image_rgb: (H, W, 3) uint8 RGB. boxes: (N, 4) ``[x, y, w, h]``; box_scores: (N,).

    Returns:
        (N, K, 3) float64 ``[x, y, joint score]`` in image pixels.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    k = predictor.codec.num_joints
    if not len(boxes):
        return np.zeros((0, k, 3))
    scores = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, np.float64)
    transform = predictor.transform()
    out = np.zeros((len(boxes), k, 3))
    for start in range(0, len(boxes), predictor.batch_size):
        rows = range(start, min(len(boxes), start + predictor.batch_size))
        samples = [transform(image_rgb, PersonRecord(
            image_path="<memory>", bbox=boxes[i].astype(np.float32),
            keypoints=np.zeros((k, 3), np.float32), image_id=i,
            score=float(scores[i]))) for i in rows]
        outputs = predictor.outputs(np.stack([s["image"] for s in samples]))
        coords, joint_scores = predictor.decode_to_image(
            outputs, np.stack([s["center"] for s in samples]).astype(np.float64),
            np.stack([s["scale"] for s in samples]).astype(np.float64),
            np.array([float(s["rotation"]) for s in samples]))
        out[start:start + len(samples), :, :2] = coords
        out[start:start + len(samples), :, 2] = joint_scores
    return out


def pose_nms(keypoints, box_scores, boxes, input_size_wh, thr=0.9, box_padding=1.25):
    """Official-style OKS-NMS of one image's poses; returns kept indices (by decreasing score).

    Person score: box score x mean joint score; areas: the padded crop box (as the evaluation)."""
    from ..data.geometry import box_to_center_scale
    from ..evaluation.nms import oks_nms_arrays

    if len(keypoints) == 0:
        return np.zeros(0, np.int64)
    areas = np.array([float(np.prod(box_to_center_scale(b, input_size_wh, box_padding)[1]))
                      for b in boxes])
    scores = np.asarray(box_scores, np.float64) * keypoints[..., 2].mean(axis=1)
    return oks_nms_arrays(keypoints, scores, areas, thr=thr)


def coco_result(keypoints, image_id, score, file_name=None):
    """One COCO keypoint-results entry (``keypoints`` (K, 3) ``[x, y, score]``)."""
    entry = {"image_id": int(image_id) if image_id is not None else -1, "category_id": 1,
             "keypoints": [round(float(v), 3) for v in np.asarray(keypoints).reshape(-1)],
             "score": float(score)}
    if file_name:
        entry["file_name"] = os.path.basename(file_name)
    return entry
