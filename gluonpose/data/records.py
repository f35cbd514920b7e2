"""The one record type every dataset reader yields and every pipeline consumes."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PersonRecord:
    """One person instance of one image, already mapped onto the COCO-17 keypoint order.

    Attributes:
        image_path: absolute or root-relative path of the image file.
        bbox: (4,) ``[x, y, w, h]`` box in image pixels (0-based, x right, y down); the COCO readers
            and detection files keep float64 (the official box -> centre arithmetic starts there).
        keypoints: (17, 3) float32 ``[x, y, v]`` in image pixels; ``v`` follows COCO:
            0 = not labelled (or not provided by the source dataset), 1 = labelled but occluded,
            2 = visible. Unmapped COCO joints of other datasets have ``v = 0`` and must get
            target weight 0 (ignored, never trained towards zero).
        image_id: integer image id (COCO ``image_id`` for COCO-style sets, a stable index otherwise).
        score: detection score (1.0 for ground-truth boxes).
        area: instance area in pixels^2 (COCO segmentation area when known, else box area).
        dataset: short name of the source dataset (``coco``, ``mpii``, ``aic``, ``crowdpose``, ...).
        ann_id: annotation id in the source file (-1 for detections), used in error messages.
    """

    image_path: str
    bbox: np.ndarray
    keypoints: np.ndarray
    image_id: int
    score: float = 1.0
    area: float = 0.0
    dataset: str = ""
    ann_id: int = -1
    extra: dict = field(default_factory=dict)

    @property
    def num_visible(self):
        """Number of labelled keypoints (v > 0)."""
        return int((self.keypoints[:, 2] > 0).sum())
