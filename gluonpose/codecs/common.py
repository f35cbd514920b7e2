"""Array helpers shared by the codecs: strides, separable blurs, batched argmax, map flipping.

All functions are numpy-vectorised over leading (N, K) axes; maps are (..., H, W).
"""
import math

import cv2
import numpy as np

from ..keypoints import swap_flip_pairs
from ..errors import ConfigError


def default_heatmap_size(input_size_wh, heatmap_size_wh=None):
    """Heatmap (w, h): as given, else 1/4 of the input (HRNet's output stride)."""
    if heatmap_size_wh is None:
        return (int(input_size_wh[0]) // 4, int(input_size_wh[1]) // 4)
    return (int(heatmap_size_wh[0]), int(heatmap_size_wh[1]))


def feature_stride(input_size_wh, heatmap_size_wh, udp):
    """(2,) input pixels per heatmap pixel: ``in/out`` (official) or ``(in-1)/(out-1)`` (UDP)."""
    inp = np.asarray(input_size_wh, dtype=np.float64)
    out = np.asarray(heatmap_size_wh, dtype=np.float64)
    return (inp - 1.0) / (out - 1.0) if udp else inp / out


def gaussian_kernel1d(ksize, sigma=0.0):
    """Normalised 1-D Gaussian of odd size ``ksize``; ``sigma <= 0`` uses OpenCV's rule
    ``0.3 * ((ksize - 1) / 2 - 1) + 0.8`` (what ``cv2.GaussianBlur(..., 0)`` does)."""
    ksize = int(ksize)
    if ksize < 1 or ksize % 2 == 0:
        raise ConfigError("blur kernel size must be a positive odd integer, got %r" % (ksize,))
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1.0) + 0.8
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2.0
    k = np.exp(-x * x / (2.0 * sigma * sigma))
    return k / k.sum()


_BORDERS = {"mirror": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}


def blur_maps(maps, ksize, sigma=0.0, mode="mirror", keep_max=False):
    """Separable Gaussian blur of (..., H, W) maps.

    ``mode='mirror'`` is OpenCV's default BORDER_REFLECT_101; ``mode='constant'`` pads with zeros
    (DARK). ``keep_max`` rescales each map so its maximum is unchanged (DARK's modulation).
    OpenCV's separable filter, one map at a time (3x faster than a batched scipy convolution).
    """
    if not ksize or int(ksize) <= 1:
        return np.asarray(maps, dtype=np.float32)
    if mode not in _BORDERS:
        raise ValueError("blur mode must be one of %s, got %r" % (", ".join(_BORDERS), mode))
    k = gaussian_kernel1d(ksize, sigma).astype(np.float32)
    src = np.ascontiguousarray(maps, dtype=np.float32)
    flat = src.reshape((-1,) + src.shape[-2:])
    out = np.empty_like(flat)
    for i in range(flat.shape[0]):
        cv2.sepFilter2D(flat[i], cv2.CV_32F, k, k, dst=out[i], borderType=_BORDERS[mode])
    out = out.reshape(src.shape)
    if keep_max:
        old = np.max(maps, axis=(-2, -1), keepdims=True)
        new = np.max(out, axis=(-2, -1), keepdims=True)
        out = out * np.where(new > 0, old / np.where(new > 0, new, 1.0), 1.0)
    return out.astype(np.float32)


def argmax_2d(maps):
    """Integer (x, y) of the first maximum of each (..., H, W) map and the maximum value.

    Returns:
        xy (..., 2) int64 and maxvals (...) float32.
    """
    h, w = maps.shape[-2:]
    flat = maps.reshape(maps.shape[:-2] + (h * w,))
    idx = np.argmax(flat, axis=-1)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    return np.stack([idx % w, idx // w], axis=-1), maxvals.astype(np.float32)


def gather_2d(maps, xy):
    """Values of (..., H, W) maps at integer positions xy (..., 2) (clipped into the map)."""
    h, w = maps.shape[-2:]
    x = np.clip(xy[..., 0], 0, w - 1)
    y = np.clip(xy[..., 1], 0, h - 1)
    flat = maps.reshape(maps.shape[:-2] + (h * w,))
    return np.take_along_axis(flat, (y * w + x)[..., None], axis=-1)[..., 0]


def mirror_maps(maps, flip_pairs):
    """(N, K, H, W) maps of a horizontally flipped input -> mirrored along W, left/right swapped."""
    return swap_flip_pairs(np.asarray(maps)[..., ::-1], flip_pairs, axis=1)


def check_outputs(outputs, channels, heatmap_size_wh, who):
    """Validate a decoder input: numpy (N, C, H, W) with the codec's C, H, W."""
    outputs = np.asarray(outputs)
    expected = (channels, heatmap_size_wh[1], heatmap_size_wh[0])
    if outputs.ndim != 4 or tuple(outputs.shape[1:]) != expected:
        raise ValueError("%s expects outputs of shape (N, %d, %d, %d), got %s"
                         % ((who,) + expected + (tuple(outputs.shape),)))
    return outputs.astype(np.float32, copy=False)


def check_keypoints(keypoints, weights, num_joints, who):
    """Validate encoder inputs: (K, 2) keypoints and (K,) weights -> float64 copies."""
    kp = np.asarray(keypoints, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if kp.ndim != 2 or kp.shape[0] != num_joints or kp.shape[1] < 2 or w.shape[0] != num_joints:
        raise ValueError("%s expects keypoints (%d, 2) and weights (%d,), got %s and %s"
                         % (who, num_joints, num_joints, kp.shape, w.shape))
    kp = kp[:, :2]
    bad = ~np.isfinite(kp).all(axis=1)
    if bad.any():                      # never let a NaN label produce a target
        kp = np.where(bad[:, None], 0.0, kp)
        w = np.where(bad, 0.0, w)
    return kp, w


def disk_area(radius):
    """Area of a disk of ``radius`` heatmap pixels (the ideal number of voting pixels)."""
    return math.pi * float(radius) ** 2
