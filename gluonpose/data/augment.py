"""Random top-down augmentation parameters (half-body, scale, rotation, flip) from an explicit rng.

Two ways to draw, both bounded by the same ranges (rotation within ``+-2 rot_factor`` degrees,
scale factor within ``[1 - scale_factor, 1 + scale_factor]``):

* ``'official'``: as the official HRNet ``JointsDataset.__getitem__`` draws (``ROT_FACTOR``,
  ``SCALE_FACTOR``): half-body with probability ``half_body_prob`` for people with more than
  ``half_body_min_joints`` labelled joints; scale ``clip(1 + sf * N(0,1), 1 - sf, 1 + sf)``;
  rotation ``clip(rf * N(0,1), -2 rf, 2 rf)`` with probability 0.6, else 0; flip with 0.5.
  The report's ranges "rotation [-30, 30], resizing [0.8, 1.2]" are exactly the clip bounds of
  ``rot_factor 15``, ``scale_factor 0.2``.
* ``'uniform'``: rotation ``U(-2 rf, 2 rf)`` on every sample, scale ``U(1 - sf, 1 + sf)``.

The upper body of a half-body crop is chosen with probability ``Phi(0.5) = 0.69``: the official
code tests ``randn() < 0.5`` (:data:`geometry.OFFICIAL_HALF_BODY_UPPER_PROB`).
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from ..keypoints import COCO_UPPER_BODY_IDS
from . import geometry as geo

SAMPLINGS = ("official", "uniform")
#: Probability of rotating a sample at all: the official code rotates when ``random() <= 0.6``.
OFFICIAL_ROTATION_PROB = 0.6


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation settings (see :class:`gluonpose.data.pipeline.TopDownTrainTransform`).

    Defaults are the report's reading: official draws with ``rot_factor`` 15 and
    ``scale_factor`` 0.2 (the official HRNet COCO recipe uses 45 and 0.35).
    """

    sampling: str = "official"
    rot_factor: float = 15.0
    scale_factor: float = 0.2
    rotation_prob: Optional[float] = None      # None: 0.6 (official) or 1.0 (uniform)
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_upper_prob: float = geo.OFFICIAL_HALF_BODY_UPPER_PROB
    half_body_padding: float = 1.5
    upper_body_ids: Tuple[int, ...] = COCO_UPPER_BODY_IDS

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ConfigError("augment sampling must be one of %s, got %r"
                             % (", ".join(SAMPLINGS), self.sampling))
        if not self.rot_factor >= 0:
            raise ConfigError("rot_factor must be >= 0 degrees, got %r" % (self.rot_factor,))
        if not 0 <= self.scale_factor < 1:
            raise ConfigError("scale_factor must be in [0, 1), got %r" % (self.scale_factor,))
        for name in ("rotation_prob", "flip_prob", "half_body_prob", "half_body_upper_prob"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError("%s must be a probability, got %r" % (name, value))

    @property
    def rotation_probability(self):
        """Probability of rotating a sample (``rotation_prob``, or the sampling's own)."""
        if self.rotation_prob is not None:
            return float(self.rotation_prob)
        return OFFICIAL_ROTATION_PROB if self.sampling == "official" else 1.0

    @property
    def max_rotation(self):
        """Largest absolute rotation, degrees (``2 rot_factor``)."""
        return 2.0 * float(self.rot_factor)

    @property
    def scale_bounds(self):
        """(min, max) random scale factor."""
        return 1.0 - float(self.scale_factor), 1.0 + float(self.scale_factor)


class Augmentation(NamedTuple):
    """One draw: crop centre (2,) and scale (2,) in pixels of the unflipped image, rotation in
    degrees, whether to flip, whether the half-body box was used, and the random scale factor
    that multiplied the (box or half-body) scale."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool
    half_body: bool
    scale_factor: float = 1.0


def draw_scale_rotation_flip(params, rng):
    """The scale factor, rotation (degrees) and flip of one sample, in the official order
    (scale, rotation, flip), each consuming the generator as the formula says."""
    lo, hi = params.scale_bounds
    rmax = params.max_rotation
    if params.sampling == "official":
        factor = min(max(1.0 + params.scale_factor * rng.standard_normal(), lo), hi)
    else:
        factor = float(rng.uniform(lo, hi))
    rotation = 0.0
    if rmax > 0 and rng.random() < params.rotation_probability:
        if params.sampling == "official":
            rotation = min(max(params.rot_factor * rng.standard_normal(), -rmax), rmax)
        else:
            rotation = float(rng.uniform(-rmax, rmax))
    flipped = bool(rng.random() < params.flip_prob)
    return float(factor), float(rotation), flipped


def sample_augmentation(params, joints, visible, center, scale, input_size_wh, rng):
    """Draw one augmentation (official order: half-body, scale, rotation, flip).

    Args:
        params: :class:`AugmentParams`.
        joints: (K, 2) image pixels; visible: (K,) labelled mask.
        center, scale: (2,) the padded box, scale in pixels.
        rng: ``np.random.Generator``.
    """
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    half = False
    n_vis = int((np.asarray(visible) > 0).sum())
    if n_vis > params.half_body_min_joints and rng.random() < params.half_body_prob:
        hb = geo.half_body_center_scale(joints, visible, input_size_wh, rng,
                                        upper_ids=params.upper_body_ids,
                                        upper_prob=params.half_body_upper_prob,
                                        padding=params.half_body_padding)
        if hb is not None:
            center, scale, half = hb[0], hb[1], True
    factor, rotation, flipped = draw_scale_rotation_flip(params, rng)
    return Augmentation(center, scale * factor, rotation, flipped, half, factor)
