"""Dense-grid round trips: ``decode(encode(p))`` for positions covering the whole input crop.

Used by the tests (``tests/test_codecs.py``) and by ``scripts/benchmark.py --codec-grid``, which
writes the figures of ``docs/benchmarks.md``.
"""
import copy

import numpy as np

#: Sub-pixel offsets cycled over the pixels of each axis: pixel i holds the position
#: ``i + SUBPIXEL[i % 4]``, inside its own pixel area ``[i - 0.5, i + 0.5]``.
SUBPIXEL = (-0.375, -0.125, 0.125, 0.375)


def _axis(n, step, offset):
    idx = np.arange(int(offset), n, int(step))
    return idx + np.take(SUBPIXEL, idx % len(SUBPIXEL))


def crop_grid(input_size_wh, step=1, offset=0, band=None, band_step=1):
    """(N, 2) crop positions: pixel (i, j) for every ``step``-th pixel of each axis (from
    ``offset``), each at the sub-pixel offset ``(SUBPIXEL[i % 4], SUBPIXEL[j % 4])``; plus every
    pixel centre of the four crop borders, the four corners exact; plus, with ``band`` (pixels),
    every pixel (sub-pixel offsets as above) within ``band`` of two borders (the corner blocks).
    """
    w, h = int(input_size_wh[0]), int(input_size_wh[1])
    gx, gy = np.meshgrid(_axis(w, step, offset), _axis(h, step, offset))
    parts = [np.stack([gx.ravel(), gy.ravel()], axis=1)]
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    for x in (0.0, w - 1.0):
        parts.append(np.stack([np.full(h, x), ys], axis=1))
    for y in (0.0, h - 1.0):
        parts.append(np.stack([xs, np.full(w, y)], axis=1))
    if band:
        bx, by = _axis(w, band_step, 0), _axis(h, band_step, 0)
        near_x = bx[(bx < band) | (bx > w - 1 - band)]
        near_y = by[(by < band) | (by > h - 1 - band)]
        cx, cy = np.meshgrid(near_x, near_y)
        parts.append(np.stack([cx.ravel(), cy.ravel()], axis=1))
    return np.unique(np.concatenate(parts), axis=0)


def _wide(codec, num_joints):
    """A copy of ``codec`` that encodes and decodes ``num_joints`` joints at once (the codecs
    treat joints independently; the flip pairs, the only joint-specific setting, are unused)."""
    wide = copy.copy(codec)
    wide.num_joints = int(num_joints)
    return wide


def round_trip(codec, points, weights=None, joints_per_call=512):
    """``decode(encode(p))`` for every position of ``points`` (N, 2), ``joints_per_call`` joints
    per encode / decode call.

    Returns:
        coords (N, 2) decoded input-crop positions, scores (N,), target_weight (N,).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = len(points)
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    k = max(1, min(int(joints_per_call), n))
    wide = _wide(codec, k)
    coords, scores, tws = [], [], []
    for s in range(0, n, k):
        p, w = points[s:s + k], weights[s:s + k]
        pad = k - len(p)
        enc = wide.encode(np.concatenate([p, np.zeros((pad, 2))]),
                          np.concatenate([w, np.zeros(pad)]))
        c, v = wide.decode(enc["target"][None])
        coords.append(c[0, :len(p)])
        scores.append(v[0, :len(p)])
        tws.append(enc["target_weight"][:len(p)])
    return (np.concatenate(coords).astype(np.float64), np.concatenate(scores),
            np.concatenate(tws))


def grid_errors(codec, step=1, offset=0, band=None, band_step=1, joints_per_call=512):
    """Euclidean round-trip errors (input-crop pixels) over :func:`crop_grid`.

    Returns:
        points (N, 2), errors (N,), scores (N,), target_weight (N,).
    """
    points = crop_grid(codec.input_size_wh, step=step, offset=offset, band=band,
                       band_step=band_step)
    coords, scores, tw = round_trip(codec, points, joints_per_call=joints_per_call)
    return points, np.linalg.norm(coords - points, axis=1), scores, tw


def grid_table(sizes=((192, 256), (288, 384), (384, 512)), decoders=("hough", "argmax"),
               udps=(True, False), out=print):
    """Every pixel of each crop (sub-pixel offsets cycled, borders and corners exact) through
    the heatmap+offset codec: one markdown row per (size, decoder, udp) with the number of
    positions, max / mean error (input-crop px), the positions off by more than 0.05 px and the
    smallest target weight. Returns the rows as dicts."""
    import time

    from .offset import HeatmapOffsetCodec
    out("| input (h x w) | decode | udp | positions | max error px | mean error px | > 0.05 px "
        "| seconds |")
    out("|---|---|---|---|---|---|---|---|")
    rows = []
    for size in sizes:
        for decode in decoders:
            for udp in udps:
                start = time.time()
                codec = HeatmapOffsetCodec(size, decoder=decode, udp=udp)
                _, err, _, tw = grid_errors(codec)
                row = {"size": tuple(size), "decode": decode, "udp": udp, "n": len(err),
                       "max": float(err.max()), "mean": float(err.mean()),
                       "bad": int((err > 0.05).sum()), "min_weight": float(tw.min()),
                       "seconds": time.time() - start}
                rows.append(row)
                out("| %dx%d | %s | %s | %d | %.2e | %.2e | %d | %.0f |"
                    % (size[1], size[0], decode, "on" if udp else "off", row["n"], row["max"],
                       row["mean"], row["bad"], row["seconds"]))
    return rows
