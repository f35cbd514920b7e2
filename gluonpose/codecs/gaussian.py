"""Gaussian heatmap codec: the official HRNet target and decoders (quarter-pixel, DARK), plus UDP.

Coordinates: ``encode`` takes keypoints in input-crop pixels, ``decode`` returns input-crop pixels.
A heatmap coordinate ``u`` corresponds to the input coordinate ``u * stride`` with
``stride = in / out`` (official) or ``(in - 1) / (out - 1)`` (UDP). With the official stride this
is exactly what the official ``transform_preds`` does (it inverts a crop of heatmap size).
"""
import numpy as np

from ..keypoints import COCO_FLIP_PAIRS
from ..errors import ConfigError
from . import layout as _layout
from .base import Codec
from .common import (argmax_2d, blur_maps, check_keypoints, check_outputs, default_heatmap_size,
                     feature_stride, gather_2d, mirror_maps)
from .flipfuse import FlipSpec, pair_sources

DECODERS = ("quarter", "dark", "argmax")


class GaussianHeatmapCodec(Codec):
    """K Gaussian heatmaps, peak 1 (official HRNet ``generate_target`` / ``get_final_preds``).

    Encoding (official, ``unbiased=False``): the Gaussian is centred at the integer pixel
    ``int(x / stride + 0.5)`` (truncation, as the official ``int()``), drawn inside the window
    ``[int(mu - 3 sigma), int(mu + 3 sigma + 1))``; ``target_weight`` is the input weight, set to 0
    when that window lies completely outside the map (official test ``ul >= size or br < 0`` with
    the exclusive ``br``, kept as is: a window ending exactly at column 0 keeps weight 1 with an
    empty map), and no Gaussian is drawn for weight 0.
    ``unbiased=True`` (DARK / UDP) keeps the same window but centres the Gaussian at the exact
    sub-pixel position.

    Decoding:
      * ``'quarter'``: official argmax + 0.25 px towards the higher neighbour (only when
        ``1 < px < W-1`` and ``1 < py < H-1``, as official); coordinates are zeroed when the
        maximum is <= 0 (official ``pred_mask``). Scores: the maximum value.
      * ``'argmax'``: the same without the quarter shift (official ``get_max_preds``).
      * ``'dark'``: DARK (Zhang et al. CVPR 2020): blur (``dark_kernel``, zero border, maximum
        preserved), log, then one Newton step ``-H^-1 grad`` at the argmax with central
        differences; the step is rejected when the Hessian is not negative definite or the
        step exceeds 1 px (a malformed peak). Scores: the raw maximum.

    ``udp=True``: UDP stride, unbiased encoding and DARK decoding by default, and a flip-back
    without the 1-px shift (that shift only compensates the official stride's 0.75-px flip bias;
    see the fact sheet section 3.3).

    Args:
        input_size_wh: network input (w, h).
        heatmap_size_wh: output (w, h); default input / 4.
        sigma: Gaussian sigma in heatmap pixels (HRNet: 2 at 256x192, 3 at 384x288).
        num_joints: K.
        udp: unbiased data processing conventions (see above).
        unbiased: sub-pixel Gaussian centre; default ``udp``.
        decoder: one of ``DECODERS``; default ``'dark'`` with UDP, else ``'quarter'``.
        dark_kernel: odd blur kernel of the DARK decoder (11 as DARK/mmpose).
        flip_pairs: left/right joint pairs for ``flip_back``.
        shift_flip: apply the official 1-px shift in ``flip_back``; default ``not udp``.
    """

    layout = _layout.HEATMAP
    PARAM_CHOICES = {"decoder": DECODERS}

    def __init__(self, input_size_wh=(192, 256), heatmap_size_wh=None, *, sigma=2.0, num_joints=17,
                 udp=False, unbiased=None, decoder=None, dark_kernel=11, flip_pairs=COCO_FLIP_PAIRS,
                 shift_flip=None):
        self.input_size_wh = (int(input_size_wh[0]), int(input_size_wh[1]))
        self.heatmap_size_wh = default_heatmap_size(self.input_size_wh, heatmap_size_wh)
        if sigma <= 0:
            raise ConfigError("sigma must be > 0, got %r" % (sigma,))
        self.sigma = float(sigma)
        self.num_joints = int(num_joints)
        self.udp = bool(udp)
        self.unbiased = self.udp if unbiased is None else bool(unbiased)
        self.decoder = ("dark" if self.udp else "quarter") if decoder is None else decoder
        if self.decoder not in DECODERS:
            raise ConfigError("unknown Gaussian decoder %r; valid: %s"
                              % (self.decoder, ", ".join(DECODERS)))
        self.dark_kernel = int(dark_kernel)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.shift_flip = (not self.udp) if shift_flip is None else bool(shift_flip)
        self.stride = feature_stride(self.input_size_wh, self.heatmap_size_wh, self.udp)

    @property
    def num_channels(self):
        return self.num_joints

    def __repr__(self):
        return ("GaussianHeatmapCodec(input=%s, heatmap=%s, sigma=%g, udp=%s, unbiased=%s, decoder=%s)"
                % (self.input_size_wh, self.heatmap_size_wh, self.sigma, self.udp, self.unbiased,
                   self.decoder))

    # ------------------------------------------------------------------ encode
    def encode(self, keypoints, weights):
        """(K, 2) input-crop keypoints, (K,) weights -> dict(target (K,H,W), target_weight (K,))."""
        kp, w = check_keypoints(keypoints, weights, self.num_joints, "GaussianHeatmapCodec")
        wid, hei = self.heatmap_size_wh
        tmp = self.sigma * 3.0
        u = kp / self.stride                                    # exact heatmap coordinates (K, 2)
        mu = np.trunc(u + 0.5)                                  # official int(x / stride + 0.5)
        ul = np.trunc(mu - tmp)
        br = np.trunc(mu + tmp + 1.0)
        outside = (ul[:, 0] >= wid) | (ul[:, 1] >= hei) | (br[:, 0] < 0) | (br[:, 1] < 0)
        weight = np.where(outside, 0.0, w)
        # the official patch is centred at ul + size // 2 (== mu whenever 3 sigma is an integer)
        centre = u if self.unbiased else ul + (2.0 * tmp + 1.0) // 2.0
        xs = np.arange(wid, dtype=np.float64)
        ys = np.arange(hei, dtype=np.float64)
        in_x = (xs[None] >= ul[:, :1]) & (xs[None] < br[:, :1])            # (K, W)
        in_y = (ys[None] >= ul[:, 1:]) & (ys[None] < br[:, 1:])            # (K, H)
        gx = np.exp(-(xs[None] - centre[:, :1]) ** 2 / (2 * self.sigma ** 2)) * in_x
        gy = np.exp(-(ys[None] - centre[:, 1:]) ** 2 / (2 * self.sigma ** 2)) * in_y
        draw = (weight > 0).astype(np.float64)
        target = gy[:, :, None] * gx[:, None, :] * draw[:, None, None]
        return {"target": target.astype(np.float32), "target_weight": weight.astype(np.float32)}

    # ------------------------------------------------------------------ decode
    def decode(self, outputs):
        """(N, K, H, W) heatmaps -> (coords (N, K, 2) input-crop pixels, scores (N, K))."""
        hm = check_outputs(outputs, self.num_joints, self.heatmap_size_wh, "GaussianHeatmapCodec")
        xy, maxvals = argmax_2d(hm)
        coords = xy.astype(np.float64)
        if self.decoder == "quarter":
            coords = coords * (maxvals > 0)[..., None]
            coords += 0.25 * self._neighbour_sign(hm, coords)
        elif self.decoder == "dark":
            coords += self._dark_step(hm, xy)
        return (coords * self.stride).astype(np.float32), maxvals

    def _neighbour_sign(self, hm, coords):
        """Official quarter-offset direction, (N, K, 2); zero where the official code skips."""
        wid, hei = self.heatmap_size_wh
        px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
        py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
        ok = (px > 1) & (px < wid - 1) & (py > 1) & (py < hei - 1)
        at = lambda dx, dy: gather_2d(hm, np.stack([px + dx, py + dy], axis=-1))  # noqa: E731
        diff = np.stack([at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)], axis=-1)
        return np.sign(diff) * ok[..., None]

    def _dark_step(self, hm, xy):
        """DARK Newton step (N, K, 2) at the integer argmax of the blurred log-heatmap."""
        blurred = blur_maps(hm, self.dark_kernel, mode="constant", keep_max=True)
        logm = np.log(np.maximum(blurred, 1e-10)).astype(np.float64)
        padded = np.pad(logm, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        x, y = xy[..., 0] + 1, xy[..., 1] + 1
        at = lambda dx, dy: gather_2d(padded, np.stack([x + dx, y + dy], axis=-1))  # noqa: E731
        c = at(0, 0)
        gx = 0.5 * (at(1, 0) - at(-1, 0))
        gy = 0.5 * (at(0, 1) - at(0, -1))
        hxx = at(1, 0) - 2 * c + at(-1, 0)
        hyy = at(0, 1) - 2 * c + at(0, -1)
        hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = hxx * hyy - hxy * hxy
        ok = (det > 1e-12) & (hxx < 0)                         # negative definite: a real peak
        safe = np.where(ok, det, 1.0)
        step = np.stack([-(hyy * gx - hxy * gy) / safe, -(hxx * gy - hxy * gx) / safe], axis=-1)
        ok &= np.all(np.abs(step) <= 1.0, axis=-1) & np.all(np.isfinite(step), axis=-1)
        return np.where(ok[..., None], step, 0.0)

    # ------------------------------------------------------------------ flip
    def flip_back(self, outputs):
        """(N, K, H, W) maps of the flipped input -> maps of the original input.

        Mirror + swap pairs (official ``flip_back``), then, if ``shift_flip``, the official
        ``SHIFT_HEATMAP`` ``out[..., 1:] = out[..., :-1]``.
        """
        out = mirror_maps(outputs, self.flip_pairs)
        if self.shift_flip:
            out = out.copy()
            out[..., 1:] = out[..., :-1].copy()
        return np.ascontiguousarray(out)

    def flip_spec(self):
        k = self.num_joints
        return FlipSpec(src=pair_sources(k, self.flip_pairs), sign=np.ones(k, np.float32),
                        bias=np.zeros(k, np.float32), shift=int(self.shift_flip))
