"""Random top-down augmentation parameters (half-body, scale, rotation, flip) from an explicit rng."""
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from . import geometry as geo


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation settings (see :class:`gluonpose.data.pipeline.TopDownTrainTransform`)."""

    rotation: float = 90.0
    rotation_sigma: Optional[float] = 45.0
    rotation_prob: float = 0.6
    scale_range: Tuple[float, float] = (0.65, 1.35)
    scale_sigma: Optional[float] = 0.35
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_upper_prob: float = geo.OFFICIAL_HALF_BODY_UPPER_PROB
    half_body_padding: float = 1.5
    upper_body_ids: Tuple[int, ...] = geo.COCO_UPPER_BODY_IDS

    def __post_init__(self):
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError("scale_range must satisfy 0 < min <= max, got %s" % (self.scale_range,))
        for name in ("rotation_prob", "flip_prob", "half_body_prob", "half_body_upper_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError("%s must be a probability, got %r" % (name, getattr(self, name)))
        if self.rotation < 0:
            raise ConfigError("rotation is a maximum absolute angle, got %r" % (self.rotation,))


class Augmentation(NamedTuple):
    """One draw: crop centre (2,) and scale (2,) in pixels of the unflipped image, rotation in
    degrees, whether to flip, whether the half-body box was used."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool
    half_body: bool


def _draw(rng, sigma, lo, hi, mid):
    """clip(mid + sigma * N(0, 1), lo, hi) (official) or U(lo, hi) when sigma is None."""
    if sigma is None:
        return float(rng.uniform(lo, hi))
    return float(np.clip(mid + sigma * rng.standard_normal(), lo, hi))


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
    lo, hi = params.scale_range
    scale = scale * _draw(rng, params.scale_sigma, lo, hi, 1.0)
    rotation = 0.0
    if params.rotation > 0 and rng.random() < params.rotation_prob:
        rotation = _draw(rng, params.rotation_sigma, -params.rotation, params.rotation, 0.0)
    flipped = bool(rng.random() < params.flip_prob)
    return Augmentation(center, scale, rotation, flipped, half)
