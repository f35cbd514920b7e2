"""Heatmap + offset codec (G-RMI target, UDP-Pose coordinates): a disk heatmap and 2-D offsets.

Target for keypoint k at heatmap position ``u = x / stride`` (UDP stride ``(in-1)/(out-1)``):

* heatmap ``h_k(p) = 1`` if ``|p - u| <= R`` else 0  (the disk, R in heatmap pixels);
* offsets ``o_k(p) = (u - p) / R`` inside the disk, 0 outside (values in [-1, 1]). Offsets are
  only meaningful inside the disk: a loss must mask them with the heatmap target (G-RMI, UDP);
* ``target_weight`` = input weight, 0 for a joint outside the crop's pixel area
  ``[-0.5, w - 0.5] x [-0.5, h - 0.5]`` (it cannot be seen in the crop; ``label_outside=True``
  keeps it while any disk pixel lies in the map) and 0 when no disk pixel lies in the map.

Channels are blocked: ``[heatmaps K | x-offsets K | y-offsets K]`` (``codecs/layout.py``).

Decoders (both return input-crop pixels):

* ``'hough'`` (default; G-RMI, the report's "following [15]"): every pixel votes at
  ``p + R * o(p)`` with weight ``max(h(p), 0)``, splatted with a bilinear kernel into a vote map
  (padded by ``ceil(R) + 2`` pixels so keypoints just outside the map can win); the keypoint is
  the argmax cell of the vote map, refined to the centroid of the vote mass in the
  ``(2 r + 1)^2`` window around it (``hough_refine_radius`` r): exact for consistent votes, as a
  bilinear splat preserves the first moment, and the mean of many voters' offsets rather than
  one pixel's. (G-RMI votes on maps upsampled to the crop resolution and takes the argmax
  there; on the heatmap lattice the centroid gives the sub-pixel part.) Score: that window's
  mass / (pi R^2).
* ``'argmax'`` (UDP-Pose style): Gaussian-blur the heatmap (``blur_kernel``, 0 = off) with zero
  padding, take its argmax ``p`` and return ``p + R * o(p)`` (offsets optionally blurred with
  ``offset_blur_kernel``; UDP uses 15 and 7). UDP-Pose blurs with OpenCV's default mirror
  padding, which near a crop corner makes the mirrored disks outweigh the real one: the argmax
  lands on the corner pixel, outside the disk, and the joint comes out 16-35 px off (0.3% of
  crop positions); zero padding keeps the maximum inside the disk everywhere. Score: the blurred
  maximum divided by the blurred maximum of an ideal disk, so a perfect prediction scores 1,
  comparable to Gaussian maxima (the OKS rescoring threshold 0.2).

Cost: one core, trained-like outputs, see ``docs/benchmarks.md`` (the Hough kernel is in
:mod:`.hough`).

Default radius: ``0.0546875 * max(heatmap w, h)`` (3.5 px for 64x48, 5.25 for 96x72): UDP-Pose
"v1" (KPD 3.5, better than 4.0 in its README), kept at a constant fraction of the crop as G-RMI's R.
"""
import math

import numpy as np

from ..keypoints import COCO_FLIP_PAIRS
from ..errors import ConfigError
from . import layout as _layout
from .base import Codec
from .common import (argmax_2d, blur_maps, check_keypoints, check_outputs, default_heatmap_size,
                     feature_stride, gather_2d, mirror_maps)
from .flipfuse import FlipSpec, flip_back, pair_sources
from .hough import hough_decode_blocked, hough_decode_flip_fused

DECODERS = ("argmax", "hough")
RADIUS_FACTOR = 0.0546875
BLUR_FACTOR = 15.0 / 64.0  # UDP-Pose blurs 64x48 heatmaps with a 15x15 kernel


def _sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))


def default_blur_kernel(heatmap_size_wh):
    """Odd blur kernel scaled with the heatmap: 15 at 64x48 (UDP-Pose), 23 at 96x72, 9 at 32x24.
    A fixed 15x15 kernel on a small map drags the argmax out of the disk, off the trained offsets."""
    k = int(round(BLUR_FACTOR * max(heatmap_size_wh)))
    return max(k + (k + 1) % 2, 1)


class HeatmapOffsetCodec(Codec):
    """Disk heatmap + offset codec; see the module docstring.

    Args:
        input_size_wh: network input (w, h).
        heatmap_size_wh: output (w, h); default input / 4.
        radius: disk radius R in heatmap pixels; default ``RADIUS_FACTOR * max(heatmap_size_wh)``.
        num_joints: K.
        udp: UDP stride (default). With ``udp=False`` the official stride ``in/out`` is used and
            ``flip_back`` corrects the resulting 0.75-px flip bias exactly inside the offsets.
        decoder: ``'hough'`` (G-RMI, default) or ``'argmax'`` (UDP-Pose style).
        blur_kernel: odd Gaussian kernel for the heatmap before the argmax (0 = none; default
            scaled with the heatmap size, see :func:`default_blur_kernel`).
        offset_blur_kernel: odd Gaussian kernel for the offset maps (0 = none).
        hough_refine_radius: half-size of the Hough refinement window, in heatmap pixels.
        flip_pairs: left/right joint pairs for ``flip_back``.
        heatmap_activation: ``None`` (the heatmap channels are the disk probabilities, trained
            with MSE) or ``'sigmoid'`` (they are logits, trained with the logistic loss of G-RMI;
            decoding applies the sigmoid first).
        label_outside: keep the target of a joint outside the crop's pixel area while any of its
            disk pixels lies in the map (default False: such a joint gets weight 0).
    """

    layout = _layout.HEATMAP_OFFSET
    PARAM_CHOICES = {"decoder": DECODERS, "heatmap_activation": (None, "sigmoid")}

    def __init__(self, input_size_wh=(192, 256), heatmap_size_wh=None, *, radius=None,
                 num_joints=17, udp=True, decoder="hough", blur_kernel=None, offset_blur_kernel=0,
                 hough_refine_radius=1, flip_pairs=COCO_FLIP_PAIRS, heatmap_activation=None,
                 label_outside=False):
        self.input_size_wh = (int(input_size_wh[0]), int(input_size_wh[1]))
        self.heatmap_size_wh = default_heatmap_size(self.input_size_wh, heatmap_size_wh)
        if radius is None:
            radius = RADIUS_FACTOR * max(self.heatmap_size_wh)
        if radius <= 0:
            raise ConfigError("radius must be > 0 heatmap pixels, got %r" % (radius,))
        self.radius = float(radius)
        self.num_joints = int(num_joints)
        self.udp = bool(udp)
        if decoder not in DECODERS:
            raise ConfigError("unknown heatmap+offset decoder %r; valid: %s"
                              % (decoder, ", ".join(DECODERS)))
        self.decoder = decoder
        if blur_kernel is None:
            blur_kernel = default_blur_kernel(self.heatmap_size_wh)
        self.blur_kernel = int(blur_kernel or 0)
        self.offset_blur_kernel = int(offset_blur_kernel or 0)
        self.hough_refine_radius = int(hough_refine_radius)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        if heatmap_activation not in (None, "sigmoid"):
            raise ConfigError("heatmap_activation must be None or 'sigmoid', got %r" % (heatmap_activation,))
        self.heatmap_activation = heatmap_activation
        self.label_outside = bool(label_outside)
        self.stride = feature_stride(self.input_size_wh, self.heatmap_size_wh, self.udp)
        self._ideal_peak = self._ideal_blurred_peak()

    @property
    def num_channels(self):
        return 3 * self.num_joints

    def __repr__(self):
        return ("HeatmapOffsetCodec(input=%s, heatmap=%s, radius=%g, udp=%s, decoder=%s)"
                % (self.input_size_wh, self.heatmap_size_wh, self.radius, self.udp, self.decoder))

    # ------------------------------------------------------------------ encode
    def encode(self, keypoints, weights):
        """(K, 2) input-crop keypoints, (K,) weights -> dict(target (3K,H,W), target_weight (K,)).

        Only the window of ``2 ceil(R) + 4`` heatmap pixels around each keypoint is computed (every
        disk pixel lies at least one pixel inside it), with the same float64 expressions as
        :meth:`encode_dense`, which evaluates them on the whole map: the targets are equal
        (tested on real samples and dense grids of keypoints), only the zeros outside the disks are
        all +0.0.
        """
        kp, w = check_keypoints(keypoints, weights, self.num_joints, "HeatmapOffsetCodec")
        wid, hei = self.heatmap_size_wh
        w = self._inside_weight(kp, w)
        u = kp / self.stride
        k, r = self.num_joints, self.radius
        steps = np.arange(2 * int(math.ceil(r)) + 4, dtype=np.float64)
        origin = np.floor(u - r) - 1.0                          # (K, 2) window corner, integer-valued
        px = origin[:, 0:1] + steps                             # (K, n) map columns
        py = origin[:, 1:2] + steps                             # (K, n) map rows
        dx = u[:, 0:1] - px                                     # the dense encoder's values there
        dy = u[:, 1:2] - py
        disk = (dx[:, None, :] ** 2 + dy[:, :, None] ** 2) <= r ** 2           # (K, n, n)
        disk &= ((py >= 0) & (py < hei))[:, :, None] & ((px >= 0) & (px < wid))[:, None, :]
        weight = np.where(disk.any(axis=(1, 2)), w, 0.0)
        disk &= (weight > 0)[:, None, None]
        target = np.zeros((3 * k, hei, wid), np.float32)
        j, iy, ix = np.nonzero(disk)
        rows, cols = py[j, iy].astype(np.intp), px[j, ix].astype(np.intp)
        target[j, rows, cols] = 1.0
        target[k + j, rows, cols] = dx[j, ix] / r
        target[2 * k + j, rows, cols] = dy[j, iy] / r
        return {"target": target, "target_weight": weight.astype(np.float32)}

    def _inside_weight(self, kp, w):
        if self.label_outside:
            return w
        size = np.asarray(self.input_size_wh, dtype=np.float64)   # a joint the crop does not show
        inside = ((kp >= -0.5) & (kp <= size - 0.5)).all(axis=1)  # gets no target
        return np.where(inside, w, 0.0)

    def encode_dense(self, keypoints, weights):
        """:meth:`encode` evaluated on every heatmap pixel (the reference the windowed encoder is
        tested against)."""
        kp, w = check_keypoints(keypoints, weights, self.num_joints, "HeatmapOffsetCodec")
        wid, hei = self.heatmap_size_wh
        w = self._inside_weight(kp, w)
        u = kp / self.stride
        dx = u[:, 0:1] - np.arange(wid, dtype=np.float64)[None]            # (K, W)
        dy = u[:, 1:2] - np.arange(hei, dtype=np.float64)[None]            # (K, H)
        k = self.num_joints
        disk = (dx[:, None, :] ** 2 + dy[:, :, None] ** 2) <= self.radius ** 2   # (K, H, W)
        weight = np.where(disk.any(axis=(1, 2)), w, 0.0)
        disk &= (weight > 0)[:, None, None]
        target = np.empty((3 * k, hei, wid), np.float32)   # filled in place: no float64 copies
        target[:k] = disk
        np.multiply(disk, (dx / self.radius)[:, None, :], out=target[k:2 * k], casting="unsafe")
        np.multiply(disk, (dy / self.radius)[:, :, None], out=target[2 * k:], casting="unsafe")
        return {"target": target, "target_weight": weight.astype(np.float32)}

    # ------------------------------------------------------------------ decode
    def decode(self, outputs):
        """(N, 3K, H, W) outputs -> (coords (N, K, 2) input-crop pixels, scores (N, K))."""
        out = check_outputs(outputs, self.num_channels, self.heatmap_size_wh, "HeatmapOffsetCodec")
        k = self.num_joints
        hm, ox, oy = out[:, :k], out[:, k:2 * k], out[:, 2 * k:]
        activated = None
        if self.heatmap_activation == "sigmoid":
            hm = activated = _sigmoid(hm)
        if self.decoder == "hough":
            coords, scores = hough_decode_blocked(out, activated, k, self.radius,
                                                  self.hough_refine_radius)
        else:
            coords, scores = self._decode_argmax(hm, ox, oy)
        return (coords * self.stride).astype(np.float32), scores.astype(np.float32)

    @property
    def default_flip_fusion(self):
        """``votes`` with Hough decoding (the best of the three on the overfit check and on the
        demo, docs/benchmarks.md), else ``maps``."""
        return "votes" if self.decoder == "hough" else "maps"

    def supports_flip_fusion(self, fusion):
        return fusion in ("maps", "coords") or (fusion == "votes" and self.decoder == "hough")

    def decode_flip(self, outputs, flipped, fusion="maps", *, inplace=False):
        """:meth:`Codec.decode_flip`, and with Hough decoding: ``maps`` without writing the
        average (formed per map in a buffer that stays in the cache; bit-identical), ``votes``:
        every pixel of both outputs votes into one vote map, each with half its weight."""
        if self.decoder != "hough" or fusion == "coords":
            return super().decode_flip(outputs, flipped, fusion, inplace=inplace)
        k = self.num_joints
        out = check_outputs(outputs, self.num_channels, self.heatmap_size_wh, "HeatmapOffsetCodec")
        flipped = check_outputs(flipped, self.num_channels, self.heatmap_size_wh,
                                "HeatmapOffsetCodec")
        if fusion == "maps":
            if self.heatmap_activation is not None:
                return super().decode_flip(outputs, flipped, fusion, inplace=inplace)
            coords, scores = hough_decode_flip_fused(out, flipped, self.flip_spec(), k,
                                                     self.radius, self.hough_refine_radius)
        elif fusion == "votes":
            back = flip_back(self.flip_spec(), flipped)
            act = [None, None]
            if self.heatmap_activation == "sigmoid":
                act = [_sigmoid(a[:, :k]) for a in (out, back)]
            coords, scores = hough_decode_blocked(out, act[0], k, self.radius,
                                                  self.hough_refine_radius, second=back,
                                                  second_heatmaps=act[1], wscale=0.5)
        else:
            return super().decode_flip(outputs, flipped, fusion, inplace=inplace)
        return (coords * self.stride).astype(np.float32), scores.astype(np.float32)

    def _ideal_blurred_peak(self):
        """Blurred maximum of a perfect disk, averaged over a 4x4 grid of sub-pixel centres
        (the score normaliser: a perfect prediction scores ~1)."""
        if self.blur_kernel <= 1:
            return 1.0
        n = 2 * int(math.ceil(self.radius)) + self.blur_kernel + 4
        g = np.arange(n, dtype=np.float64) - n // 2
        sub = np.arange(4) / 4.0
        dx2 = (g[None, :] - sub[:, None]) ** 2                               # (4, n)
        disks = (dx2[:, None, None, :] + dx2[None, :, :, None]) <= self.radius ** 2
        peaks = blur_maps(disks.astype(np.float32), self.blur_kernel, mode="constant")
        peaks = peaks.max(axis=(-2, -1))
        return float(peaks.mean())

    def _decode_argmax(self, hm, ox, oy):
        smooth = blur_maps(hm, self.blur_kernel, mode="constant")   # zero padding: no corner pull
        xy, peak = argmax_2d(smooth)
        if self.offset_blur_kernel > 1:
            ox = blur_maps(ox, self.offset_blur_kernel)
            oy = blur_maps(oy, self.offset_blur_kernel)
        off = np.stack([gather_2d(ox, xy), gather_2d(oy, xy)], axis=-1).astype(np.float64)
        return xy + self.radius * off, peak / self._ideal_peak

    # ------------------------------------------------------------------ flip
    def flip_back(self, outputs):
        """(N, 3K, H, W) outputs of the flipped input -> outputs of the original input.

        Each block is mirrored along W with left/right joints swapped, and the x-offsets are
        negated. No pixel shift (UDP: the flip is unbiased). With ``udp=False`` the official
        stride leaves a ``1 - 1/stride`` heatmap-pixel bias, which is added back to the x-offsets
        (exact for the offsets; the disk itself stays 0.75 px off, well inside R). Averaged with
        the unflipped output (the flip test), the disks' non-overlapping rings vote with half
        weight: on perfect outputs Hough voting is then up to 0.5 input px off (argmax, reading one
        pixel inside both disks, stays exact); with UDP both are exact.
        """
        k = self.num_joints
        out = np.asarray(outputs)
        check_outputs(out, self.num_channels, self.heatmap_size_wh, "HeatmapOffsetCodec.flip_back")
        hm = mirror_maps(out[:, :k], self.flip_pairs)
        ox = -mirror_maps(out[:, k:2 * k], self.flip_pairs)
        oy = mirror_maps(out[:, 2 * k:], self.flip_pairs)
        if not self.udp:
            ox = ox + (1.0 - 1.0 / self.stride[0]) / self.radius
        return np.ascontiguousarray(np.concatenate([hm, ox, oy], axis=1).astype(out.dtype))

    def flip_spec(self):
        k = self.num_joints
        pairs = pair_sources(k, self.flip_pairs)
        sign = np.ones(3 * k, np.float32)
        sign[k:2 * k] = -1.0
        bias = np.zeros(3 * k, np.float32)
        if not self.udp:
            bias[k:2 * k] = np.float32((1.0 - 1.0 / self.stride[0]) / self.radius)
        return FlipSpec(src=np.concatenate([pairs, pairs + k, pairs + 2 * k]), sign=sign,
                        bias=bias, shift=0)
