"""COCO-17 keypoint metadata, the one home of it: names, skeleton, left/right pairs, body halves,
OKS sigmas, and the left/right swap of per-joint arrays.

Everything above the lowest layer reads these from here (the codecs' flip-back, the data
transforms and readers, evaluation and drawing), so none of them needs another for it. The
mappings of other datasets' joints onto these are data, in ``gluonpose/data/keypoint_maps.json``
(:mod:`gluonpose.data.keypoints`).
"""
import numpy as np

NUM_COCO_KEYPOINTS = 17

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: COCO-17 skeleton as 0-based joint index pairs (the COCO json stores these 1-based).
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

#: COCO-17 left/right pairs (0 nose, 1/2 eyes, 3/4 ears, 5/6 shoulders, ..., 15/16 ankles).
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
COCO_UPPER_BODY_IDS = tuple(range(0, 11))
COCO_LOWER_BODY_IDS = tuple(range(11, 17))

#: COCO-17 per-keypoint OKS sigmas (the constants of the COCO keypoint evaluation), read-only.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                        1.07, 1.07, .87, .87, .89, .89], dtype=np.float64) / 10.0
COCO_SIGMAS.setflags(write=False)


def swap_flip_pairs(array, flip_pairs=COCO_FLIP_PAIRS, axis=0):
    """Copy of ``array`` with the left/right entries along ``axis`` swapped."""
    out = np.array(array, copy=True)
    idx = np.arange(out.shape[axis])
    for a, b in flip_pairs:
        idx[a], idx[b] = b, a
    return np.take(out, idx, axis=axis)
