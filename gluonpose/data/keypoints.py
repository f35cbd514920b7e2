"""Keypoint layouts of the supported datasets and their mapping onto COCO-17.

The mapping tables are data, kept in ``keypoint_maps.json`` next to this module; this module only
loads them and applies them. A COCO joint that a source dataset does not provide gets
``v = 0`` (and x = y = 0), so training gives it target weight 0: it is ignored, never pushed to 0.
"""
import json
import os
from typing import NamedTuple, Tuple

import numpy as np

from ..errors import ConfigError
from ..keypoints import NUM_COCO_KEYPOINTS

_MAPS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keypoint_maps.json")


class KeypointMap(NamedTuple):
    """How one dataset's joints land on COCO-17.

    Attributes:
        name: dataset layout name (``coco``, ``mpii``, ``aic``, ``crowdpose``).
        names: the source joint names, in source order (length K).
        src: (M,) int source joint indices that have a COCO counterpart.
        dst: (M,) int the COCO-17 index of each ``src`` joint.
    """

    name: str
    names: Tuple[str, ...]
    src: np.ndarray
    dst: np.ndarray

    @property
    def num_joints(self):
        return len(self.names)


def _load_tables():
    with open(_MAPS_FILE, encoding="utf-8") as f:
        tables = json.load(f)
    return {k: v for k, v in tables.items() if not k.startswith("_")}


def get_keypoint_map(name):
    """Load the :class:`KeypointMap` of layout ``name`` (ValueError listing the valid names)."""
    tables = _load_tables()
    if name not in tables:
        raise ConfigError(f"unknown keypoint layout {name!r}; valid: {sorted(tables)}")
    entry = tables[name]
    pairs = np.asarray(entry["to_coco"], dtype=np.int64).reshape(-1, 2)
    names = tuple(entry["names"])
    if pairs.size and (pairs[:, 0].max() >= len(names) or pairs[:, 1].max() >= NUM_COCO_KEYPOINTS):
        raise ValueError(f"keypoint table {_MAPS_FILE}: layout {name!r} has an index out of range")
    if len(set(pairs[:, 1].tolist())) != len(pairs):
        raise ValueError(f"keypoint table {_MAPS_FILE}: layout {name!r} maps two joints onto one")
    return KeypointMap(name=name, names=names, src=pairs[:, 0].copy(), dst=pairs[:, 1].copy())


def map_to_coco(keypoints, kmap):
    """Re-order source keypoints onto COCO-17.

    Args:
        keypoints: (..., K, 3) ``[x, y, v]`` in the source order (v already COCO-style 0/1/2).
        kmap: a :class:`KeypointMap` or a layout name.

    Returns:
        (..., 17, 3) float32; unmapped COCO joints and joints with ``v = 0`` are all-zero rows.
    """
    if isinstance(kmap, str):
        kmap = get_keypoint_map(kmap)
    kpts = np.asarray(keypoints, dtype=np.float32)
    if kpts.shape[-2:] != (kmap.num_joints, 3):
        raise ValueError(f"layout {kmap.name!r} expects (..., {kmap.num_joints}, 3) keypoints, "
                         f"got shape {kpts.shape}")
    out = np.zeros(kpts.shape[:-2] + (NUM_COCO_KEYPOINTS, 3), dtype=np.float32)
    out[..., kmap.dst, :] = kpts[..., kmap.src, :]
    out[out[..., 2] <= 0] = 0.0
    return out
