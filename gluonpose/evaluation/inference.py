"""Batched top-down inference: person boxes -> keypoints in image pixels.

For every image (read once), every predictor (model) and every view (crop rotation, crop scale
factor) each box is cropped with :class:`~gluonpose.data.pipeline.TopDownTestTransform` (the
predictor's input size, ``udp`` = its codec's), crops are batched across images, the net runs on one
or several contexts (``split_and_load(even_split=False)``), the **last** stage output is kept, the
optional flip test averages it with ``codec.flip_back(net(flipped crops))`` (official HRNet:
raw outputs averaged with 0.5, then decoded), ``codec.decode`` (vectorised) gives crop pixels and
:func:`~gluonpose.data.geometry.crop_to_image` maps them back to the image, undoing rotation and
scale exactly.

Areas follow the official OKS-NMS: ``prod(padded box scale in px)`` of the first predictor's crop
(without any TTA scale factor).
"""
import logging
from collections import OrderedDict
from typing import NamedTuple

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..data.geometry import box_to_center_scale, crop_to_image
from ..data.pipeline import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, TopDownTestTransform, read_image
from ..errors import ConfigError, UserError

LOG = logging.getLogger(__name__)

#: The identity view: no rotation, crop scale factor 1.
IDENTITY_VIEW = (0.0, 1.0)


def last_stage(outputs):
    """Network output -> the last stage's NDArray (multi-stage nets return a list per stage)."""
    if isinstance(outputs, (list, tuple)):
        if not outputs:
            raise ValueError("the network returned an empty list of stage outputs")
        return outputs[-1]
    return outputs


def forward_batch(net, images, ctx_list):
    """Run ``net`` on a batch split over contexts.

    Args:
        net: callable NDArray (B, 3, h, w) -> NDArray (B, C, H, W) or a list of them per stage.
        images: (B, 3, h, w) float32 numpy crops.
        ctx_list: list of mx.Context (uneven splits allowed; fewer slices than contexts when B is
            smaller than the number of contexts).

    Returns:
        (B, C, H, W) float32 numpy output of the last stage.
    """
    images = np.ascontiguousarray(images, dtype=np.float32)
    ctxs = list(ctx_list)[:max(1, images.shape[0])]
    parts = gluon.utils.split_and_load(mx.nd.array(images), ctxs, batch_axis=0, even_split=False)
    outs = [last_stage(net(x)) for x in parts]
    return np.concatenate([o.asnumpy() for o in outs], axis=0).astype(np.float32, copy=False)


class TopDownPredictor:
    """One model with its codec: crops in, image-pixel keypoints out.

    Args:
        net: the network (any callable NDArray -> NDArray or list of stage NDArrays).
        codec: its codec (decode / flip_back / input_size_wh / udp / num_joints).
        ctx: an mx.Context or a list of them (default CPU).
        flip: flip test (average raw outputs of the crop and the flipped-back flipped crop).
        batch_size: crops per forward pass (over all contexts).
        box_padding, mean, std: crop settings (official: 1.25, ImageNet RGB).
        name: label used in tables and logs.
    """

    def __init__(self, net, codec, *, ctx=None, flip=True, batch_size=32, box_padding=1.25,
                 mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB, name="model"):
        if ctx is None:
            ctx = [mx.cpu()]
        self.ctx_list = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
        self.net, self.codec = net, codec
        self.flip = bool(flip)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1, got %r" % (batch_size,))
        self.box_padding = float(box_padding)
        self.mean, self.std = tuple(mean), tuple(std)
        self.name = str(name)
        self.input_size_wh = tuple(int(v) for v in codec.input_size_wh)
        self.udp = bool(codec.udp)

    def transform(self, rotation=0.0, scale_factor=1.0):
        """The test crop of one view."""
        return TopDownTestTransform(input_size_wh=self.input_size_wh, box_padding=self.box_padding,
                                    mean=self.mean, std=self.std, udp=self.udp,
                                    rotation=rotation, scale_factor=scale_factor)

    def outputs(self, crops):
        """(B, 3, h, w) float32 crops -> (B, C, H, W) raw last-stage outputs (flip-averaged)."""
        raw = forward_batch(self.net, crops, self.ctx_list)
        if not self.flip:
            return raw
        flipped = forward_batch(self.net, np.ascontiguousarray(crops[..., ::-1]), self.ctx_list)
        return (raw + self.codec.flip_back(flipped)) * np.float32(0.5)

    def decode_to_image(self, outputs, centers, scales, rotations):
        """Decode outputs and map to image pixels.

        Args:
            outputs: (B, C, H, W); centers, scales: (B, 2) crop centre / size in image px;
            rotations: (B,) degrees.

        Returns:
            coords (B, K, 2) float64 image pixels and scores (B, K) float64.
        """
        coords, scores = self.codec.decode(outputs)
        out = np.empty(coords.shape, dtype=np.float64)
        for b in range(coords.shape[0]):              # one affine per crop, joints vectorised
            out[b] = crop_to_image(coords[b], centers[b], scales[b], rotations[b],
                                   self.input_size_wh, self.udp)
        return out, scores.astype(np.float64)


class TopDownResult(NamedTuple):
    """Predictions of M predictors x V views for N boxes.

    Attributes:
        coords: (M, V, N, K, 2) joint positions in image pixels.
        scores: (M, V, N, K) joint confidences.
        box_scores: (N,) detection scores; areas: (N,) official OKS areas (padded box, px^2);
        image_ids: (N,) int64; record_index: (N,) int64 rows of the input records (boxes whose
            image could not be read are absent when ``on_bad_image='skip'``).
        views: tuple of V (rotation, scale_factor).
    """

    coords: np.ndarray
    scores: np.ndarray
    box_scores: np.ndarray
    areas: np.ndarray
    image_ids: np.ndarray
    record_index: np.ndarray
    views: tuple

    def keypoints(self, member=0, view=0):
        """(N, K, 3) ``[x, y, score]`` of one predictor and view."""
        return np.concatenate([self.coords[member, view], self.scores[member, view][..., None]],
                              axis=-1)


def group_by_image(records):
    """OrderedDict image_path -> list of record indices (order of first appearance)."""
    groups = OrderedDict()
    for i, rec in enumerate(records):
        groups.setdefault(rec.image_path, []).append(i)
    return groups


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


def predict_records(predictors, records, *, views=(IDENTITY_VIEW,), progress=True, desc="inference",
                    on_bad_image="raise"):
    """Top-down prediction of every record by every predictor under every view.

    Args:
        predictors: a :class:`TopDownPredictor` or a list of them (same ``num_joints``).
        records: list of PersonRecord (boxes; ``score`` = box score, ``image_id``).
        views: (rotation degrees, scale factor) pairs.
        progress: tqdm bar over images.
        on_bad_image: ``'raise'`` or ``'skip'`` (log, count, drop that image's boxes).

    Returns:
        :class:`TopDownResult`.
    """
    from tqdm import tqdm

    preds = [predictors] if isinstance(predictors, TopDownPredictor) else list(predictors)
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
    for path, rows in tqdm(group_by_image(records).items(), desc=desc, disable=not progress,
                           dynamic_ncols=True):
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
