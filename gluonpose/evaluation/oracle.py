"""A stand-in network that answers every crop with the codec's target of known keypoints.

For testing the top-down inference chain end to end (crop, flip test, decode, inverse affine,
rescoring, NMS, COCO AP) against known truth: the oracle is told, for each crop it will be shown,
where the keypoints are in that crop; it then returns exactly the training target the codec would
encode there, i.e. the output of a perfect network. Crops are recognised by a hash of their bytes,
so the inference code must produce the very same crops as the ones registered (it does when both
use the same :class:`~gluonpose.data.pipeline.TopDownTestTransform` settings). The horizontally
flipped crop is registered too, answered with the mirrored keypoints (``x -> w - 1 - x``,
left/right swapped), as a perfect network would see a mirrored person.
"""
import hashlib

import mxnet as mx
import numpy as np

from ..keypoints import swap_flip_pairs
from ..data.imageio import read_image
from .inference import group_by_image


def _key(crop):
    return hashlib.sha1(np.ascontiguousarray(crop, dtype=np.float32).tobytes()).digest()


class OracleNet:
    """Callable NDArray (B, 3, h, w) -> NDArray (B, C, H, W) of perfect outputs.

    Args:
        codec: a single codec (for :class:`MultiStageTargets` the last stage's is used).
    """

    def __init__(self, codec):
        self.codec = codec.last
        self.table = {}

    def __len__(self):
        return len(self.table)

    def add(self, crop, keypoints, weights):
        """Register a (3, h, w) float32 crop with its (K, 2) crop-pixel keypoints and (K,) weights
        (and its horizontal mirror)."""
        kp = np.asarray(keypoints, dtype=np.float64)[:, :2]
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        self.table[_key(crop)] = self.codec.encode(kp, w)["target"]
        flipped = kp.copy()
        flipped[:, 0] = crop.shape[-1] - 1.0 - flipped[:, 0]
        pairs = self.codec.flip_pairs
        self.table[_key(crop[..., ::-1])] = self.codec.encode(
            swap_flip_pairs(flipped, pairs, axis=0), swap_flip_pairs(w, pairs, axis=0))["target"]

    def add_records(self, records, transforms):
        """Register the crops of labelled ``records`` under every test transform.

        Args:
            records: PersonRecords with keypoints (K, 3) in image pixels (v > 0 = known).
            transforms: TopDownTestTransform instances (one per view), as the predictor uses them.
        """
        for path, rows in group_by_image(records).items():
            image = read_image(path)
            for row in rows:
                for t in transforms:
                    s = t(image, records[row])
                    self.add(s["image"], s["keypoints"][:, :2], s["keypoints"][:, 2])
        return self

    def __call__(self, x):
        arr = x.asnumpy()
        out = []
        for i in range(arr.shape[0]):
            target = self.table.get(_key(arr[i]))
            if target is None:
                raise KeyError("OracleNet: crop %d of the batch was never registered (%d known "
                               "crops); the inference crops differ from the registered ones" %
                               (i, len(self.table)))
            out.append(target)
        return mx.nd.array(np.stack(out), ctx=x.context)
