"""Network outputs that look like a trained model's, for decoder tests and benchmarks.

A trained heatmap + offset net does not output clean disks: its heatmap is the disk scaled by
its confidence plus noise around 0 everywhere else (an MSE-trained map is about as often slightly
negative as slightly positive, so about half the background pixels vote), and its offsets are
only trained inside the disks (the loss masks them), so outside they are arbitrary. A decoder's
cost depends on exactly that: the number of voting pixels and where their votes land.
"""
import numpy as np

from . import layout as _layout


def random_crop_keypoints(input_size_wh, num, num_joints, rng, margin=0.0):
    """(num, K, 2) positions uniform over the crop (``margin`` px beyond every border)."""
    w, h = input_size_wh
    lo = np.array([-margin, -margin])
    hi = np.array([w - 1 + margin, h - 1 + margin])
    return lo + rng.random((num, num_joints, 2)) * (hi - lo)


def trained_like_outputs(codec, num, *, rng=None, keypoints=None, noise=0.05, offset_spread=1.0,
                         confidence=(0.6, 1.0)):
    """(num, C, H, W) float32 outputs of ``codec``'s layout around known keypoints.

    Args:
        codec: a single-stage codec (``encode``, ``layout``, ``num_joints``, sizes).
        num: number of samples.
        rng: numpy Generator (default seeded 0).
        keypoints: (num, K, 2) crop positions (default uniform over the crop).
        noise: std of the Gaussian noise added to every channel.
        offset_spread: std of the offsets outside the disks (heatmap + offset layout; the loss
            never constrains them).
        confidence: range of the per-joint scale of the target peak.

    Returns:
        (outputs, keypoints (num, K, 2)).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    k = codec.num_joints
    if keypoints is None:
        keypoints = random_crop_keypoints(codec.input_size_wh, num, k, rng)
    out = []
    for kp in keypoints:
        target = codec.encode(kp, np.ones(k))["target"].astype(np.float32)
        scale = rng.uniform(confidence[0], confidence[1], size=k).astype(np.float32)
        hm = target[:k] * scale[:, None, None]
        noisy = target + rng.normal(0.0, noise, target.shape).astype(np.float32)
        noisy[:k] = hm + rng.normal(0.0, noise, hm.shape).astype(np.float32)
        if codec.layout == _layout.HEATMAP_OFFSET:
            outside = np.concatenate([target[:k] <= 0] * 2)
            wild = rng.normal(0.0, offset_spread, outside.shape).astype(np.float32)
            noisy[k:] = np.where(outside, wild, noisy[k:])
        out.append(noisy)
    return np.stack(out).astype(np.float32), np.asarray(keypoints, dtype=np.float64)
