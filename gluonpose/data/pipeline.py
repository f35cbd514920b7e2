"""Per-sample top-down transforms (train and test) with an explicit ``np.random.Generator``.

Train order follows the official HRNet ``JointsDataset.__getitem__``: box -> (center, scale);
half-body box; random scale; random rotation; horizontal flip; one affine warp; targets.
The flip is folded into the crop matrix (``crop = M(c', s, r) o flip``), which gives exactly the
official result (flip the image, ``c_x' = W - 1 - c_x``, warp) without copying the full image.

Sample dict (all numpy):
    image (3, h, w) float32, RGB normalised with mean/std;
    target (C, H, W) or (S, C, H, W) for :class:`~gluonpose.codecs.MultiStageTargets`; float32;
    target_weight (K,) or (S, K) float32;
    keypoints (K, 3) float32 joints in input-crop pixels (flipped/swapped) and weights;
    center (2,), scale (2,) float32 in pixels (after augmentation, in the *unflipped* image);
    rotation float32 degrees; flipped bool; trans (2, 3) float32 image -> crop;
    image_id int64, score float32, area float32;
    augmentation dict, only when the transform is called with ``report=True`` (nothing else
    changes, no extra random draw): ``flipped``, ``half_body`` (bools), ``rotation`` (degrees) and
    ``scale_factor`` (the random factor of the box / half-body scale; the test transform reports
    its fixed ``rotation`` and ``scale_factor`` and no flip or half-body).
Map predictions back with ``geometry.crop_to_image(coords, center, scale, rotation, input_size_wh,
udp)`` (unflipped samples) or ``geometry.affine_points(coords, invert_affine(trans))`` (any sample).
"""
import cv2
import numpy as np

from ..keypoints import COCO_FLIP_PAIRS, COCO_UPPER_BODY_IDS
from . import geometry as geo
from .augment import AugmentParams, sample_augmentation

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def sample_rng(seed, epoch, index):
    """Independent generator for one (seed, epoch, sample index), via ``np.random.SeedSequence``.

    DataLoader workers are forked with identical global RNG state; deriving every sample's
    generator from these three integers makes augmentation reproducible and worker-independent.
    """
    ints = [int(seed), int(epoch), int(index)]
    if min(ints) < 0:
        raise ValueError("sample_rng needs non-negative seed/epoch/index, got %s" % (ints,))
    return np.random.default_rng(np.random.SeedSequence(ints))


def normalize_planes(crop, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB):
    """(h, w, 3) RGB -> (3, h, w) float32, ``(x / 255 - mean) / std``: the reference computation of
    :func:`normalize_image` (three float32 passes per channel plane, any input dtype)."""
    h, w = crop.shape[:2]
    out = np.empty((3, h, w), np.float32)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for c in range(3):  # channel planes: contiguous passes, the same float32 arithmetic as (x/255-m)/s
        plane = out[c]
        plane[...] = crop[:, :, c]
        plane /= np.float32(255.0)
        plane -= mean[c]
        plane /= std[c]
    return out


def normalize_table(mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB):
    """(3, 256) float32: :func:`normalize_planes` of every uint8 value, per channel. Looking a
    crop's bytes up in it (``cv2.LUT``) gives the same float32 values as normalising them."""
    values = np.arange(256, dtype=np.uint8)
    return np.ascontiguousarray(normalize_planes(np.stack([values] * 3, axis=1)[None], mean,
                                                 std)[:, 0, :])


def normalize_image(crop, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB):
    """(h, w, 3) uint8 RGB -> (3, h, w) float32, ``(x / 255 - mean) / std``.

    Float32 operations in the official order (torchvision ``ToTensor`` divides by 255, then
    ``Normalize`` subtracts and divides), so the network input is bit-identical to the official one.
    The same arithmetic as :func:`normalize_planes` on channel planes split first by OpenCV
    (contiguous copies instead of strided ones; bit-identical, tested on every uint8 value).
    """
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        return normalize_planes(crop, mean, std)
    h, w = crop.shape[:2]
    out = np.empty((3, h, w), np.float32)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for c, channel in enumerate(cv2.split(crop)):
        plane = out[c]
        np.copyto(plane, channel, casting="unsafe")
        plane /= np.float32(255.0)
        plane -= mean[c]
        plane /= std[c]
    return out


def _check_image(image, record):
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8):
        raise ValueError("record %s (ann %s, %s): expected an (H, W, 3) uint8 RGB image, got %s %s"
                         % (record.image_id, record.ann_id, record.image_path,
                            getattr(image, "shape", None), getattr(image, "dtype", type(image))))


def _warp(image, mat, input_size_wh):
    return cv2.warpAffine(image, mat, (int(input_size_wh[0]), int(input_size_wh[1])),
                          flags=cv2.INTER_LINEAR)


def _meta(record, center, scale, rotation, flipped, trans):
    return {"center": np.asarray(center, np.float32), "scale": np.asarray(scale, np.float32),
            "rotation": np.float32(rotation), "flipped": bool(flipped),
            "trans": np.asarray(trans, np.float32), "image_id": np.int64(record.image_id),
            "score": np.float32(record.score), "area": np.float32(record.area)}


def augmentation_report(flipped, half_body, rotation, scale_factor):
    """The ``augmentation`` entry of a sample made with ``report=True`` (plain Python values)."""
    return {"flipped": bool(flipped), "half_body": bool(half_body), "rotation": float(rotation),
            "scale_factor": float(scale_factor)}


class TopDownTrainTransform:
    """Training transform: augmentation, crop and targets for one :class:`PersonRecord`.

    Augmentation defaults are the report's reading (:mod:`gluonpose.data.augment`): official
    HRNet draws with ``rot_factor`` 15 and ``scale_factor`` 0.2 (rotation ``clip(15 N, -30, 30)``
    with probability 0.6, scale ``clip(1 + 0.2 N, 0.8, 1.2)``), flip 0.5, half-body 0.3 when more
    than 8 joints are labelled (upper body with the official effective probability 0.69); box
    padding 1.25, ImageNet RGB normalisation. The official HRNet COCO recipe is
    ``rot_factor=45, scale_factor=0.35``; ``sampling='uniform'`` draws uniformly in the same
    bounds and rotates every sample.

    Args:
        codec: a codec or :class:`MultiStageTargets` (its ``input_size_wh`` must match).
        input_size_wh: network input (w, h); default the codec's.
        sampling: ``'official'`` or ``'uniform'``.
        rot_factor: rotation factor (degrees); rotations stay within ``+-2 rot_factor``.
        scale_factor: scale factor; scales stay within ``[1 - scale_factor, 1 + scale_factor]``.
        rotation_prob: probability of rotating at all (None: 0.6 official, 1.0 uniform).
        flip_prob, half_body_prob: probabilities.
        half_body_min_joints: half-body only if the number of labelled joints is **greater** than
            this (official ``> NUM_JOINTS_HALF_BODY``).
        half_body_upper_prob, half_body_padding: see :func:`geometry.half_body_center_scale`.
        box_padding: box enlargement (1.25).
        mean, std: RGB normalisation in [0, 1] units.
        udp: UDP crop convention; default the codec's ``udp``.
        flip_pairs, upper_body_ids: joint definitions (COCO-17 by default).
    """

    def __init__(self, codec, *, input_size_wh=None, sampling="official", rot_factor=15.0,
                 scale_factor=0.2, rotation_prob=None, flip_prob=0.5,
                 half_body_prob=0.3, half_body_min_joints=8,
                 half_body_upper_prob=geo.OFFICIAL_HALF_BODY_UPPER_PROB, half_body_padding=1.5,
                 box_padding=1.25, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB, udp=None,
                 flip_pairs=COCO_FLIP_PAIRS, upper_body_ids=COCO_UPPER_BODY_IDS):
        self.codec = codec
        self.input_size_wh = tuple(int(v) for v in (input_size_wh or codec.input_size_wh))
        if self.input_size_wh != tuple(codec.input_size_wh):
            raise ValueError("input_size_wh %s differs from the codec's %s"
                             % (self.input_size_wh, tuple(codec.input_size_wh)))
        self.aug = AugmentParams(sampling=sampling, rot_factor=float(rot_factor),
                                 scale_factor=float(scale_factor), rotation_prob=rotation_prob,
                                 flip_prob=flip_prob,
                                 half_body_prob=half_body_prob,
                                 half_body_min_joints=half_body_min_joints,
                                 half_body_upper_prob=half_body_upper_prob,
                                 half_body_padding=half_body_padding,
                                 upper_body_ids=tuple(upper_body_ids))
        self.box_padding = float(box_padding)
        self.mean, self.std = tuple(mean), tuple(std)
        self.udp = bool(codec.udp) if udp is None else bool(udp)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)

    def __call__(self, image, record, rng, report=False):
        """(H, W, 3) uint8 RGB image, PersonRecord, np.random.Generator -> sample dict; with
        ``report`` the dict also holds the ``augmentation`` drawn (see the module docstring)."""
        _check_image(image, record)
        joints = np.asarray(record.keypoints, dtype=np.float64)
        if joints.shape != (self.codec.num_joints, 3):
            raise ValueError("record %s (ann %s, %s): keypoints shape %s, codec expects (%d, 3)"
                             % (record.image_id, record.ann_id, record.image_path, joints.shape,
                                self.codec.num_joints))
        visible = (joints[:, 2] > 0).astype(np.float64)
        center, scale = geo.box_to_center_scale(record.bbox, self.input_size_wh, self.box_padding,
                                                udp=self.udp)
        aug = sample_augmentation(self.aug, joints[:, :2], visible, center, scale,
                                  self.input_size_wh, rng)
        width = image.shape[1]
        crop_center = aug.center
        if aug.flipped:                              # official: flip image, joints and centre
            joints = geo.flip_joints(joints, width, self.flip_pairs)
            visible = joints[:, 2] > 0
            crop_center = geo.flip_center(aug.center, width)
        crop = geo.get_affine_transform(crop_center, aug.scale, aug.rotation, self.input_size_wh,
                                        udp=self.udp)
        pts = geo.affine_points(joints[:, :2], crop)
        trans = geo.compose_affine(crop, geo.hflip_matrix(width)) if aug.flipped else crop
        weights = (np.asarray(visible) > 0).astype(np.float32)
        sample = {"image": normalize_image(_warp(image, trans, self.input_size_wh), self.mean,
                                           self.std)}
        sample.update(self.codec.encode(pts, weights))
        sample["keypoints"] = np.concatenate([pts, weights[:, None]], axis=1).astype(np.float32)
        sample.update(_meta(record, aug.center, aug.scale, aug.rotation, aug.flipped, trans))
        if report:
            sample["augmentation"] = augmentation_report(aug.flipped, aug.half_body, aug.rotation,
                                                         aug.scale_factor)
        return sample


class TopDownTestTransform:
    """Test transform: box (GT or detection) -> padded crop, no random augmentation.

    ``rotation`` and ``scale_factor`` make fixed rotated / rescaled crops for rotation and
    multi-scale TTA; map the decoded coordinates back with ``geometry.crop_to_image(coords,
    sample['center'], sample['scale'], sample['rotation'], input_size_wh, udp)``, which undoes the
    rotation (the official ``transform_preds`` does not).

    Args:
        input_size_wh: network input (w, h); default the codec's.
        box_padding: box enlargement (1.25, as official for detections and GT boxes).
        mean, std: RGB normalisation.
        udp: UDP crop convention; default the codec's ``udp`` (False without a codec). It must
            match the codec used to decode, or predictions shift by half a pixel.
        codec: optional; when given, targets are produced too (validation loss).
        rotation: crop rotation in degrees; scale_factor: multiplies the padded box scale.
    """

    def __init__(self, input_size_wh=None, *, box_padding=1.25, mean=IMAGENET_MEAN_RGB,
                 std=IMAGENET_STD_RGB, udp=None, codec=None, rotation=0.0, scale_factor=1.0):
        if input_size_wh is None:
            if codec is None:
                raise ValueError("TopDownTestTransform needs input_size_wh or a codec")
            input_size_wh = codec.input_size_wh
        self.input_size_wh = (int(input_size_wh[0]), int(input_size_wh[1]))
        if codec is not None and self.input_size_wh != tuple(codec.input_size_wh):
            raise ValueError("input_size_wh %s differs from the codec's %s"
                             % (self.input_size_wh, tuple(codec.input_size_wh)))
        self.box_padding = float(box_padding)
        self.mean, self.std = tuple(mean), tuple(std)
        if udp is None:
            udp = codec is not None and codec.udp
        self.udp = bool(udp)
        self.codec = codec
        self.rotation = float(rotation)
        self.scale_factor = float(scale_factor)

    def __call__(self, image, record, rng=None, report=False):
        """(H, W, 3) uint8 RGB image, PersonRecord[, unused rng] -> sample dict; with ``report``
        the dict also holds an ``augmentation`` entry (no flip or half-body, the fixed rotation
        and scale factor)."""
        _check_image(image, record)
        center, scale = geo.box_to_center_scale(record.bbox, self.input_size_wh, self.box_padding,
                                                udp=self.udp)
        scale = scale * self.scale_factor
        trans = geo.get_affine_transform(center, scale, self.rotation, self.input_size_wh,
                                         udp=self.udp)
        sample = {"image": normalize_image(_warp(image, trans, self.input_size_wh), self.mean,
                                           self.std)}
        joints = np.asarray(record.keypoints, dtype=np.float64)
        pts = geo.affine_points(joints[:, :2], trans)
        weights = (joints[:, 2] > 0).astype(np.float32)
        if self.codec is not None:
            sample.update(self.codec.encode(pts, weights))
        sample["keypoints"] = np.concatenate([pts, weights[:, None]], axis=1).astype(np.float32)
        sample.update(_meta(record, center, scale, self.rotation, False, trans))
        if report:
            sample["augmentation"] = augmentation_report(False, False, self.rotation,
                                                         self.scale_factor)
        return sample
