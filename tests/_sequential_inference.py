"""The sequential inference loop gluonpose had before the evaluation pipeline (issue 16), kept as
the reference the pipeline is tested against: every image read in turn, every box cropped under
every (member, view) into one queue per pair, a queue's forward pass + flip test + decode run
when it holds ``batch_size`` crops. Built only on the predictor's public per-batch methods
(``transform``, ``outputs``, ``decode_to_image``), which the package keeps.
"""
import logging

import numpy as np

from gluonpose.data.geometry import box_to_center_scale
from gluonpose.data.imageio import read_image
from gluonpose.errors import ConfigError, UserError
from gluonpose.evaluation.inference import TopDownResult, group_by_image

LOG = logging.getLogger(__name__)


class _Queue:
    """Crops waiting for one (predictor, view) forward pass; flushes into the result arrays."""

    def __init__(self, predictor, view_index, coords, scores):
        self.p, self.v = predictor, view_index
        self.coords, self.scores = coords, scores
        self.clear()

    def clear(self):
        self.crops, self.rows, self.centers, self.scales, self.rots = [], [], [], [], []

    def add(self, sample, row):
        self.crops.append(sample["image"])
        self.rows.append(row)
        self.centers.append(sample["center"])
        self.scales.append(sample["scale"])
        self.rots.append(float(sample["rotation"]))
        if len(self.crops) >= self.p.batch_size:
            self.flush()

    def flush(self):
        if not self.crops:
            return
        outputs = self.p.outputs(np.stack(self.crops))
        c, s = self.p.decode_to_image(outputs, np.asarray(self.centers, np.float64),
                                      np.asarray(self.scales, np.float64), np.asarray(self.rots))
        self.coords[self.v, self.rows] = c
        self.scores[self.v, self.rows] = s
        self.clear()


def predict_records_sequential(predictors, records, *, views=((0.0, 1.0),),
                               on_bad_image="raise"):
    preds = list(predictors) if isinstance(predictors, (list, tuple)) else [predictors]
    if not preds:
        raise ValueError("predict_records needs at least one predictor")
    num_joints = {p.codec.num_joints for p in preds}
    if len(num_joints) != 1:
        raise ConfigError("models disagree on the number of joints (model.num_joints): %s"
                          % sorted(num_joints))
    if on_bad_image not in ("raise", "skip"):
        raise ValueError("on_bad_image must be 'raise' or 'skip', got %r" % (on_bad_image,))
    views = tuple((float(r), float(s)) for r, s in views)
    if not views or any(s <= 0 for _, s in views):
        raise ConfigError("views must be non-empty (rotation, scale_factor > 0) pairs: %s" % (views,))
    n, k = len(records), num_joints.pop()
    coords = np.zeros((len(preds), len(views), n, k, 2))
    scores = np.zeros((len(preds), len(views), n, k))
    transforms = [[p.transform(r, s) for r, s in views] for p in preds]
    queues = [[_Queue(p, v, coords[m], scores[m]) for v in range(len(views))]
              for m, p in enumerate(preds)]
    areas = np.zeros(n)
    valid = np.zeros(n, dtype=bool)
    bad_images = 0
    for path, rows in group_by_image(records).items():
        try:
            image = read_image(path)
        except UserError as err:  # missing, truncated or corrupt image file (named)
            if on_bad_image == "raise":
                raise
            bad_images += 1
            LOG.warning("skipping %d box(es) of an unreadable image: %s", len(rows), err)
            continue
        for row in rows:
            rec = records[row]
            _, base_scale = box_to_center_scale(rec.bbox, preds[0].input_size_wh,
                                                preds[0].box_padding, udp=preds[0].udp)
            # official all_boxes area: np.prod(s * 200) of the float32 scale (float32 product)
            areas[row] = float(np.prod(base_scale if preds[0].udp else base_scale.astype(np.float32)))
            valid[row] = True
            for m in range(len(preds)):
                for v in range(len(views)):
                    queues[m][v].add(transforms[m][v](image, rec), row)
    for per_member in queues:
        for q in per_member:
            q.flush()
    if bad_images:
        LOG.warning("%d image(s) could not be read; their boxes were skipped", bad_images)
    keep = np.flatnonzero(valid)
    return TopDownResult(
        coords=coords[:, :, keep], scores=scores[:, :, keep],
        box_scores=np.array([float(records[i].score) for i in keep], dtype=np.float64),
        areas=areas[keep], image_ids=np.array([int(records[i].image_id) for i in keep], np.int64),
        record_index=keep.astype(np.int64), views=views)
