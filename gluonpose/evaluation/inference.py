"""Batched top-down inference: person boxes -> keypoints in image pixels, as a pipeline.

For every image (read once), every predictor (model) and every view (crop rotation, crop scale
factor) each box is cropped with the predictor's input size and ``udp`` (the crop arithmetic of
:class:`~gluonpose.data.pipeline.TopDownTestTransform`), crops are batched across images, the net
runs on one or several contexts (``split_and_load(even_split=False)``), the **last** stage output
is kept, the optional flip test fuses it with the output of the mirrored crops (``flip_fusion``:
official HRNet averages the raw outputs, then decodes), the codec decodes and
:func:`~gluonpose.data.geometry.crop_to_image` maps the joints back to the image, undoing rotation
and scale exactly.

:func:`predict_records` runs three stages that overlap, so an evaluation runs at the speed of its
slowest stage rather than their sum:

1. loader workers (threads: OpenCV and the crop arithmetic release the GIL, and a crop is handed
   to the network without a copy) read the images in order and crop whole batches, the mirrored
   crops with them;
2. the calling thread runs the forward passes on the contexts (the outputs are read in place);
3. the same workers fuse the flip test, decode (compiled kernels that release the GIL) and map
   the joints back to the image, off the forward pass's thread.

Batches are formed exactly as the sequential loop formed them (the boxes of the readable images,
in image order, ``batch_size`` at a time per predictor and view), so results are identical with
any number of workers; ``workers=0`` runs the same stages one after the other in the calling
thread. Memory stays bounded: at most ``workers + 2`` crop batches and ``workers + 1`` output
batches are in flight, whatever the number of boxes, members and views.

Areas follow the official OKS-NMS: ``prod(padded box scale in px)`` of the first predictor's crop
(without any TTA scale factor).
"""
import collections
import logging
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import cv2
import mxnet as mx
import numpy as np
from mxnet import gluon

from ..codecs.flipfuse import FLIP_FUSIONS, flip_average
from ..data import geometry as geo
from ..data.geometry import box_to_center_scale, crop_to_image
from ..data.imageio import read_image
from ..data.pipeline import (IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, TopDownTestTransform,
                             normalize_table)
from ..errors import ConfigError, UserError

LOG = logging.getLogger(__name__)

#: The identity view: no rotation, crop scale factor 1.
IDENTITY_VIEW = (0.0, 1.0)


class CropBatch(NamedTuple):
    """One batch of crops and what maps its predictions back to the image."""

    rows: np.ndarray            # (B,) rows of the records
    crops: np.ndarray           # (B, 3, h, w) float32 network input
    flipped: object             # (B, 3, h, w) float32 mirrored crops, or None (no flip test)
    centers: np.ndarray         # (B, 2) crop centres, image px (float32 values, as the samples')
    scales: np.ndarray          # (B, 2) crop sizes, image px (float32 values)
    rotations: np.ndarray       # (B,) degrees


def last_stage(outputs):
    """Network output -> the last stage's NDArray (multi-stage nets return a list per stage)."""
    if isinstance(outputs, (list, tuple)):
        if not outputs:
            raise ValueError("the network returned an empty list of stage outputs")
        return outputs[-1]
    return outputs


class BufferPool:
    """Float32 arrays handed out and given back, so that batch buffers are reused instead of
    allocated: a fresh 75 MB crop batch costs ~20,000 page faults, about as much time as the
    crops themselves. Thread-safe; holds at most what was in use at the same time."""

    def __init__(self):
        self._free = {}
        self._lock = threading.Lock()

    def get(self, shape):
        shape = tuple(int(v) for v in shape)
        with self._lock:
            free = self._free.get(shape)
            if free:
                arr = free.pop()
                arr.flags.writeable = True         # MXNet's zero-copy input locked it
                return arr
        return np.empty(shape, np.float32)

    def put(self, *arrays):
        with self._lock:
            for arr in arrays:
                if arr is not None:
                    self._free.setdefault(arr.shape, []).append(arr)


_SCRATCH = threading.local()


class _CropScratch(NamedTuple):
    crop: np.ndarray
    planes: list
    mirror: np.ndarray


def _crop_scratch(w, h):
    """The calling thread's uint8 buffers for one (h, w) crop (no allocation per crop: a fresh
    590 kB array is a fresh mapping, paid in page faults)."""
    cache = getattr(_SCRATCH, "crops", None)
    if cache is None:
        cache = _SCRATCH.crops = {}
    if (w, h) not in cache:
        cache[(w, h)] = _CropScratch(np.empty((h, w, 3), np.uint8),
                                     [np.empty((h, w), np.uint8) for _ in range(3)],
                                     np.empty((h, w), np.uint8))
    return cache[(w, h)]


class _DLPack:
    """An MXNet DLPack capsule with the protocol ``np.from_dlpack`` reads."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, stream=None):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)                               # kDLCPU, device 0


def host_view(nd):
    """A read-only numpy view of a float32 NDArray's memory, on the host (GPU outputs are copied
    to the host first, as ``asnumpy`` would), without a host-side copy. It keeps the memory alive;
    MXNet hands every forward pass new output arrays, so nothing writes into it afterwards."""
    if nd.context.device_type != "cpu":
        nd = nd.as_in_context(mx.cpu())
    if nd.dtype != np.float32:
        return nd.asnumpy().astype(np.float32)
    return np.from_dlpack(_DLPack(nd.to_dlpack_for_read()))


def forward_batch(net, images, ctx_list, *, own_buffer=False, host_views=False):
    """Run ``net`` on a batch split over contexts.

    Args:
        net: callable NDArray (B, 3, h, w) -> NDArray (B, C, H, W) or a list of them per stage.
        images: (B, 3, h, w) float32 numpy crops.
        ctx_list: list of mx.Context (uneven splits allowed; fewer slices than contexts when B is
            smaller than the number of contexts).
        own_buffer: ``images`` is a buffer of the caller's own that it will not touch until
            this call returns: it is handed to MXNet without a copy (and becomes read-only).
        host_views: return a read-only view of the output's memory (:func:`host_view`) instead
            of a copy when the batch ran on one context.

    Returns:
        (B, C, H, W) float32 numpy output of the last stage.
    """
    images = np.ascontiguousarray(images, dtype=np.float32)
    ctxs = list(ctx_list)[:max(1, images.shape[0])]
    if own_buffer and images.flags.c_contiguous and images.flags.writeable:
        data = mx.nd.from_numpy(images, zero_copy=True)    # DLPack: no copy
    else:
        data = mx.nd.array(images)
    parts = gluon.utils.split_and_load(data, ctxs, batch_axis=0, even_split=False)
    outs = [last_stage(net(x)) for x in parts]
    if len(outs) == 1:
        return host_view(outs[0]) if host_views else outs[0].asnumpy().astype(np.float32, copy=False)
    return np.concatenate([o.asnumpy() for o in outs], axis=0).astype(np.float32, copy=False)


class TopDownPredictor:
    """One model with its codec: crops in, image-pixel keypoints out.

    Args:
        net: the network (any callable NDArray -> NDArray or list of stage NDArrays).
        codec: its codec (decode / flip_back / input_size_wh / udp / num_joints).
        ctx: an mx.Context or a list of them (default CPU).
        flip: flip test (fuse the outputs of the crop and of the mirrored crop).
        flip_fusion: how the flip test fuses the two outputs (see :data:`FLIP_FUSIONS`; None:
            the codec's ``default_flip_fusion``).
        batch_size: crops per forward pass (over all contexts).
        box_padding, mean, std: crop settings (official: 1.25, ImageNet RGB).
        name: label used in tables and logs.
    """

    def __init__(self, net, codec, *, ctx=None, flip=True, flip_fusion=None, batch_size=32,
                 box_padding=1.25, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB, name="model"):
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
        if flip_fusion is None:
            flip_fusion = codec.default_flip_fusion
        if flip_fusion not in FLIP_FUSIONS:
            raise ConfigError("unknown flip_fusion %r; valid: %s"
                              % (flip_fusion, ", ".join(FLIP_FUSIONS)))
        if not codec.supports_flip_fusion(flip_fusion):
            raise ConfigError("test.flip_fusion %r needs a Hough-voting decoder; %r has none"
                              % (flip_fusion, codec))
        self.flip_fusion = flip_fusion
        self._flip_spec = codec.flip_spec()
        self._table = normalize_table(self.mean, self.std)

    def transform(self, rotation=0.0, scale_factor=1.0):
        """The test crop of one view."""
        return TopDownTestTransform(input_size_wh=self.input_size_wh, box_padding=self.box_padding,
                                    mean=self.mean, std=self.std, udp=self.udp,
                                    rotation=rotation, scale_factor=scale_factor)

    def outputs(self, crops):
        """(B, 3, h, w) float32 crops -> (B, C, H, W) raw last-stage outputs; with the flip test
        the map average ``(raw + flip_back(flipped)) / 2`` (whatever ``flip_fusion`` is)."""
        raw = forward_batch(self.net, crops, self.ctx_list)
        if not self.flip:
            return raw
        flipped = forward_batch(self.net, np.ascontiguousarray(crops[..., ::-1]), self.ctx_list,
                                own_buffer=True)
        return flip_average(self._flip_spec, raw, flipped, out=raw)

    # ---------------------------------------------------------------- the pipeline's stages
    def crop_batch(self, images, records, rows, view, buffers=None):
        """Crop one batch: ``records[r]`` from ``images[r]`` for ``r`` in ``rows`` under ``view``.

        The crop of :class:`~gluonpose.data.pipeline.TopDownTestTransform` (same matrix and warp)
        written straight into the batch, normalised by table look-up (the same float32 values
        for every uint8, :func:`~gluonpose.data.pipeline.normalize_table`); with the flip test
        the mirrored crops too (mirroring commutes with the per-pixel normalisation).

        Args:
            buffers: a :class:`BufferPool` the batch buffers come from (default: new arrays).

        Returns:
            :class:`CropBatch`.
        """
        rotation, scale_factor = view
        w, h = self.input_size_wh
        num = len(rows)
        buffers = buffers or BufferPool()
        crops = buffers.get((num, 3, h, w))
        flipped = buffers.get((num, 3, h, w)) if self.flip else None
        centers = np.empty((num, 2), np.float64)
        scales = np.empty((num, 2), np.float64)
        scratch = _crop_scratch(w, h)        # this thread's uint8 crop, planes, mirrored plane
        for i, row in enumerate(rows):
            center, scale = geo.box_to_center_scale(records[row].bbox, self.input_size_wh,
                                                    self.box_padding, udp=self.udp)
            scale = scale * scale_factor
            trans = geo.get_affine_transform(center, scale, rotation, self.input_size_wh,
                                             udp=self.udp)
            cv2.warpAffine(images[i], trans, (w, h), dst=scratch.crop, flags=cv2.INTER_LINEAR)
            for c, plane in enumerate(cv2.split(scratch.crop, scratch.planes)):
                cv2.LUT(plane, self._table[c], dst=crops[i, c])
                if flipped is not None:
                    cv2.LUT(cv2.flip(plane, 1, dst=scratch.mirror), self._table[c],
                            dst=flipped[i, c])
            centers[i], scales[i] = center.astype(np.float32), scale.astype(np.float32)
        return CropBatch(np.asarray(rows, np.int64), crops, flipped, centers, scales,
                         np.full(num, float(rotation), np.float32))

    def forward(self, batch):
        """:class:`CropBatch` -> (raw outputs, outputs of the mirrored crops or None): read-only
        numpy views of the network's outputs (no host-side copy, :func:`host_view`)."""
        raw = forward_batch(self.net, batch.crops, self.ctx_list, own_buffer=True,
                            host_views=True)
        if batch.flipped is None:
            return raw, None
        return raw, forward_batch(self.net, batch.flipped, self.ctx_list, own_buffer=True,
                                  host_views=True)

    def fuse_decode(self, batch, raw, flipped):
        """Flip fusion, decoding and the way back to the image for one batch's outputs.

        Returns:
            coords (B, K, 2) float64 image pixels and scores (B, K) float64.
        """
        if flipped is None:
            return self.decode_to_image(raw, batch.centers, batch.scales, batch.rotations)
        coords, scores = self.codec.decode_flip(raw, flipped, self.flip_fusion,
                                                inplace=raw.flags.writeable)
        return self._to_image(coords, scores, batch.centers, batch.scales, batch.rotations)

    def decode_to_image(self, outputs, centers, scales, rotations):
        """Decode outputs and map to image pixels.

        Args:
            outputs: (B, C, H, W); centers, scales: (B, 2) crop centre / size in image px;
            rotations: (B,) degrees.

        Returns:
            coords (B, K, 2) float64 image pixels and scores (B, K) float64.
        """
        coords, scores = self.codec.decode(outputs)
        return self._to_image(coords, scores, centers, scales, rotations)

    def _to_image(self, coords, scores, centers, scales, rotations):
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


class PipelineStats:
    """Busy seconds of each stage (summed over its threads) and the boxes they handled."""

    STAGES = ("read", "crop", "forward", "decode")

    def __init__(self):
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.boxes = 0          # box-predictions (boxes x members x views)
        self.images = 0
        self.wall = 0.0
        self._lock = threading.Lock()

    def add(self, stage, seconds):
        with self._lock:
            self.seconds[stage] += seconds

    def rates(self):
        """{stage: box-predictions per busy second} (read: per image... in boxes too)."""
        return {k: (self.boxes / v if v > 0 else float("inf")) for k, v in self.seconds.items()}


class _Unit(NamedTuple):
    """One forward batch: predictor ``m``, view ``v``, record rows and their images."""

    m: int
    v: int
    rows: list
    images: list


def _units(preds, views, records, read, on_bad_image, areas, valid, stats):
    """The forward batches in the order the sequential loop formed them: the boxes of the readable
    images in image order, ``batch_size`` at a time for every (predictor, view); ``read(path)``
    gives an image (or raises its UserError). Fills ``areas`` and ``valid``."""
    pending = [[] for _ in preds]
    bad_images = 0
    for path, rows in read:
        if isinstance(rows, UserError):         # (path, error) for an unreadable image
            err, rows = rows, rows.rows
            if on_bad_image == "raise":
                raise err
            bad_images += 1
            LOG.warning("skipping %d box(es) of an unreadable image: %s", len(rows), err)
            continue
        rows, image = rows
        stats.images += 1
        for row in rows:
            _, base_scale = box_to_center_scale(records[row].bbox, preds[0].input_size_wh,
                                                preds[0].box_padding, udp=preds[0].udp)
            # official all_boxes area: np.prod(s * 200) of the float32 scale (float32 product)
            areas[row] = float(np.prod(base_scale if preds[0].udp else base_scale.astype(np.float32)))
            valid[row] = True
            for m, p in enumerate(preds):
                pending[m].append((row, image))
                if len(pending[m]) >= p.batch_size:
                    yield from _emit(m, pending[m], len(views))
                    pending[m] = []
    for m, rest in enumerate(pending):
        if rest:
            yield from _emit(m, rest, len(views))
    if bad_images:
        LOG.warning("%d image(s) could not be read; their boxes were skipped", bad_images)


def _emit(m, items, num_views):
    rows = [r for r, _ in items]
    images = [im for _, im in items]
    for v in range(num_views):
        yield _Unit(m, v, rows, images)


def _read_in_order(groups, pool, lookahead, stats):
    """(path, (rows, image)) or (path, error with .rows) for every image group, in order, reading
    ``lookahead`` images ahead on ``pool`` (inline without a pool)."""
    def read(path):
        tic = time.perf_counter()
        try:
            return read_image(path)
        except UserError as err:
            return err
        finally:
            stats.add("read", time.perf_counter() - tic)

    items = list(groups.items())
    if pool is None:
        futures = None
    else:
        futures = [pool.submit(read, path) for path, _ in items[:lookahead]]
    for i, (path, rows) in enumerate(items):
        if pool is None:
            image = read(path)
        else:
            if i + lookahead < len(items):
                futures.append(pool.submit(read, items[i + lookahead][0]))
            image = futures[i].result()
            futures[i] = None
        if isinstance(image, UserError):
            image.rows = rows
            yield path, image
        else:
            yield path, (rows, image)


def _checked(predictors, views, on_bad_image, workers):
    """(predictors as a list, views as float pairs, number of joints) after checking them."""
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
    if int(workers) < 0:
        raise ConfigError("workers must be >= 0, got %d" % workers)
    return preds, views, num_joints.pop()


class _Stages:
    """The pipeline's three stages on one batch each, and the arrays they fill."""

    def __init__(self, preds, views, records, stats, bar, num_joints):
        self.preds, self.views, self.records, self.stats, self.bar = preds, views, records, stats, bar
        n = len(records)
        self.coords = np.zeros((len(preds), len(views), n, num_joints, 2))
        self.scores = np.zeros((len(preds), len(views), n, num_joints))
        self.areas = np.zeros(n)
        self.valid = np.zeros(n, dtype=bool)
        self.buffers = BufferPool()
        self.done = threading.Lock()

    def crop(self, unit):
        t0 = time.perf_counter()
        batch = self.preds[unit.m].crop_batch(unit.images, self.records, unit.rows,
                                              self.views[unit.v], self.buffers)
        self.stats.add("crop", time.perf_counter() - t0)
        return batch

    def forward(self, unit, batch):
        t0 = time.perf_counter()
        raw, flipped = self.preds[unit.m].forward(batch)
        self.buffers.put(batch.crops, batch.flipped)
        self.stats.add("forward", time.perf_counter() - t0)
        return raw, flipped

    def decode(self, unit, batch, raw, flipped):
        t0 = time.perf_counter()
        c, s = self.preds[unit.m].fuse_decode(batch, raw, flipped)
        self.coords[unit.m, unit.v, batch.rows] = c
        self.scores[unit.m, unit.v, batch.rows] = s
        self.stats.add("decode", time.perf_counter() - t0)
        with self.done:
            self.stats.boxes += len(batch.rows)
            self.bar.update(len(batch.rows))

    def result(self):
        keep = np.flatnonzero(self.valid)
        records = self.records
        return TopDownResult(
            coords=self.coords[:, :, keep], scores=self.scores[:, :, keep],
            box_scores=np.array([float(records[i].score) for i in keep], dtype=np.float64),
            areas=self.areas[keep],
            image_ids=np.array([int(records[i].image_id) for i in keep], np.int64),
            record_index=keep.astype(np.int64), views=self.views)


def predict_records(predictors, records, *, views=(IDENTITY_VIEW,), progress=True, desc="inference",
                    on_bad_image="raise", workers=2, stats=None):
    """Top-down prediction of every record by every predictor under every view.

    Args:
        predictors: a :class:`TopDownPredictor` or a list of them (same ``num_joints``).
        records: list of PersonRecord (boxes; ``score`` = box score, ``image_id``).
        views: (rotation degrees, scale factor) pairs.
        progress: tqdm bar over boxes.
        on_bad_image: ``'raise'`` or ``'skip'`` (log, count, drop that image's boxes).
        workers: loader threads (reading, cropping and decoding; the forward pass runs in the
            calling thread); 0 runs every stage in the calling thread.
        stats: a :class:`PipelineStats` to fill with each stage's busy time.

    Returns:
        :class:`TopDownResult` (identical for any ``workers``).
    """
    from tqdm import tqdm

    preds, views, num_joints = _checked(predictors, views, on_bad_image, workers)
    stats = PipelineStats() if stats is None else stats
    bar = tqdm(total=len(records) * len(preds) * len(views), desc=desc, disable=not progress,
               dynamic_ncols=True, unit="box")
    stages = _Stages(preds, views, records, stats, bar, num_joints)
    tic = time.perf_counter()
    try:
        if int(workers) == 0:
            reads = _read_in_order(group_by_image(records), None, 0, stats)
            for unit in _units(preds, views, records, reads, on_bad_image, stages.areas,
                               stages.valid, stats):
                batch = stages.crop(unit)
                stages.decode(unit, batch, *stages.forward(unit, batch))
        else:
            _Pipeline(stages, int(workers), on_bad_image).run()
    finally:
        bar.close()
        stats.wall += time.perf_counter() - tic
    return stages.result()


_DONE = object()


class _Pipeline:
    """Loader threads read and crop, the calling thread runs the forward passes, the same loader
    threads decode (at most ``workers`` batches waiting or decoding); a batch-forming thread keeps
    the crop tasks ``workers + 1`` batches ahead. The first error of any stage stops the others
    and is raised by :meth:`run`."""

    def __init__(self, stages, workers, on_bad_image):
        self.stages, self.workers, self.on_bad_image = stages, workers, on_bad_image
        self.crops = queue.Queue(maxsize=workers + 1)     # futures of crop batches, in order
        self.stop = threading.Event()
        self.errors = []

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.crops.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, pool):
        st = self.stages
        try:
            reads = _read_in_order(group_by_image(st.records), pool, 2 * self.workers, st.stats)
            for unit in _units(st.preds, st.views, st.records, reads, self.on_bad_image, st.areas,
                               st.valid, st.stats):
                if not self._put((unit, pool.submit(st.crop, unit))):
                    return
        except BaseException as err:              # noqa: B902 - handed to the caller
            self.errors.append(err)
            self.stop.set()
        finally:
            self._put(_DONE)

    def _next_batch(self, producer):
        """The next (unit, crop future), or None at the end (or when stopped)."""
        while not self.stop.is_set():
            try:
                item = self.crops.get(timeout=0.1)
            except queue.Empty:                  # the producer may have stopped on an error
                if producer.is_alive() or not self.crops.empty():
                    continue
                return None
            return None if item is _DONE else item
        return None

    def run(self):
        decoding = collections.deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="gluonpose-loader") as pool:
            producer = threading.Thread(target=self._produce, args=(pool,), daemon=True,
                                        name="gluonpose-batches")
            producer.start()
            try:
                for unit, future in iter(lambda: self._next_batch(producer), None):
                    batch = future.result()
                    raw, flipped = self.stages.forward(unit, batch)
                    decoding.append(pool.submit(self.stages.decode, unit, batch, raw, flipped))
                    while decoding and (len(decoding) > self.workers or decoding[0].done()):
                        decoding.popleft().result()  # raises a decoding error here
                while decoding:
                    decoding.popleft().result()
            except BaseException as err:              # noqa: B902
                self.errors.append(err)
                self.stop.set()
            finally:
                self._drain(decoding, producer)
        if self.errors:
            raise self.errors[0]

    def _drain(self, decoding, producer):
        """After an error: cancel what waits, let the producer end."""
        for future in decoding:
            future.cancel()
        while producer.is_alive() or not self.crops.empty():
            try:
                item = self.crops.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is not _DONE:
                item[1].cancel()
        producer.join()
