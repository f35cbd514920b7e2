"""Flip test on whole batches in one pass: ``flip_back`` and the map average, compiled.

Every codec's ``flip_back`` is a per-channel affine map of the mirrored maps: output channel ``c``
is ``sign[c] * mirrored[src[c]] + bias[c]``, with the columns mirrored (``x -> W - 1 - x``) and,
for the official Gaussian ``SHIFT_HEATMAP``, shifted one column right (column 0 keeps the
mirrored column 0). :meth:`~gluonpose.codecs.base.Codec.flip_spec` returns that description;
:func:`flip_back` and :func:`flip_average` apply it in one pass over the maps (the numpy
``flip_back`` of each codec makes four to five full copies: mirror, pair swap, negation,
concatenation, cast). The arithmetic is the numpy path's, in float32 and in the same order
(``(-v) + bias``, then ``(raw + back) * 0.5``), so the results are bit-identical to
``codec.flip_back`` and to ``(raw + codec.flip_back(flipped)) * np.float32(0.5)`` (tested).
"""
from typing import NamedTuple

import numba
import numpy as np


#: How the flip test fuses the outputs of a crop and of its mirror image: ``maps`` averages the
#: raw outputs and decodes once (official HRNet), ``votes`` adds the two Hough vote maps (heatmap +
#: offset codec with Hough decoding only; its default, the best of the three measured), ``coords``
#: averages the two decoded positions and scores. A codec's ``default_flip_fusion`` is used when
#: the config's ``test.flip_fusion`` is null.
FLIP_FUSIONS = ("maps", "votes", "coords")


_U = np.uint64


class FlipSpec(NamedTuple):
    """``flip_back`` as a per-channel affine of the mirrored maps (see module docstring)."""

    src: np.ndarray      # (C,) int64: the flipped output's channel that lands in channel c
    sign: np.ndarray     # (C,) float32: +1 or -1 (x-offsets change sign)
    bias: np.ndarray     # (C,) float32: added after the sign (the official-stride offset fix)
    shift: int           # 1: official SHIFT_HEATMAP (out[..., 1:] = out[..., :-1]), else 0


@numba.njit(nogil=True, cache=True)
def fuse_plane(r, f, neg, bias, shift, out, average):
    """One (H, W) plane: ``back = (-)mirror(f) (+ bias)``, shifted by ``shift`` columns; ``out``
    = ``(r + back) * 0.5`` with ``average``, else ``back`` (float32, numpy's order of operations;
    ``out`` may be ``r``). Each case is its own loop without branches, with unsigned indices (no
    negative-index handling), so that LLVM vectorises the mirrored reads."""
    hei, wid = f.shape
    half = np.float32(0.5)
    last = _U(wid - 1 + shift)
    first = _U(shift)
    if shift:                                   # column 0 keeps the mirrored column 0
        for y in range(hei):
            v = f[y, wid - 1]
            if neg:
                v = -v
            v = v + bias
            out[y, 0] = (r[y, 0] + v) * half if average else v
    for y in range(hei):
        if bias == 0 and not neg:
            if average:
                for x in range(first, _U(wid)):
                    out[y, x] = (r[y, x] + f[y, last - x]) * half
            else:
                for x in range(first, _U(wid)):
                    out[y, x] = f[y, last - x]
        elif bias == 0:
            if average:
                for x in range(first, _U(wid)):
                    out[y, x] = (r[y, x] + (-f[y, last - x])) * half
            else:
                for x in range(first, _U(wid)):
                    out[y, x] = -f[y, last - x]
        elif not neg:
            if average:
                for x in range(first, _U(wid)):
                    out[y, x] = (r[y, x] + (f[y, last - x] + bias)) * half
            else:
                for x in range(first, _U(wid)):
                    out[y, x] = f[y, last - x] + bias
        else:
            if average:
                for x in range(first, _U(wid)):
                    out[y, x] = (r[y, x] + ((-f[y, last - x]) + bias)) * half
            else:
                for x in range(first, _U(wid)):
                    out[y, x] = (-f[y, last - x]) + bias


@numba.njit(nogil=True, cache=True)
def _flip_kernel(raw, flipped, src, sign, bias, shift, out, average):
    for b in range(flipped.shape[0]):
        for c in range(flipped.shape[1]):
            fuse_plane(raw[b, c], flipped[b, src[c]], sign[c] < 0, bias[c], shift, out[b, c],
                       average)


def _check(spec, flipped):
    flipped = np.ascontiguousarray(flipped, dtype=np.float32)
    if flipped.ndim != 4 or flipped.shape[1] != len(spec.src):
        raise ValueError("flip: outputs must be (N, %d, H, W), got %s"
                         % (len(spec.src), flipped.shape))
    return flipped


def flip_back(spec, flipped):
    """``codec.flip_back(flipped)`` in one pass (``spec = codec.flip_spec()``)."""
    flipped = _check(spec, flipped)
    out = np.empty_like(flipped)
    _flip_kernel(flipped, flipped, spec.src, spec.sign, spec.bias, int(spec.shift), out, False)
    return out


def flip_average(spec, raw, flipped, out=None):
    """``(raw + codec.flip_back(flipped)) * 0.5`` in one pass (the flip test's map average);
    ``out`` may be ``raw`` itself."""
    flipped = _check(spec, flipped)
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    if raw.shape != flipped.shape:
        raise ValueError("flip_average: raw %s and flipped %s outputs differ in shape"
                         % (raw.shape, flipped.shape))
    out = np.empty_like(raw) if out is None else out
    _flip_kernel(raw, flipped, spec.src, spec.sign, spec.bias, int(spec.shift), out, True)
    return out


def pair_sources(num_joints, flip_pairs):
    """(K,) joint index each joint takes its mirrored map from (left <-> right)."""
    src = np.arange(int(num_joints))
    for a, b in flip_pairs:
        src[a], src[b] = b, a
    return src
