"""G-RMI Hough voting of heatmap + offset maps: a compiled kernel and the numpy reference.

Every pixel ``p`` with a positive heatmap value ``h`` votes at ``p + R * o(p)`` with weight ``h``,
splatted bilinearly into a vote map padded by ``m = ceil(R) + 2`` pixels on every side. The keypoint
is the first maximum (row-major) of the vote map, refined to the centroid of the vote mass in the
``(2 r + 1)^2`` window around it; the score is that window's mass / (pi R^2).

Two implementations of the same arithmetic:

* :func:`hough_decode_reference` (numpy): every vote of a chunk of maps in one ``np.bincount``
  (each voter's four corners one after the other, voters in raster order). It is the reference
  the tests hold the kernel to.
* :func:`hough_decode_blocked` (numba, what the codec uses): one map at a time, in buffers that
  stay in the CPU cache. It is **bit-identical** to the reference, not merely close:

  - every vote it sums is the same float64 expression, and every cell it sums receives its
    votes in the reference's order, so those cells hold the reference's values bit for bit;
  - it sums only the cells that can matter, proven by bounds (see :func:`_vote_kernel`): the
    vote mass of each tile of 4 x 4 cells bounds every cell of the tile from above, a quarter of
    the heaviest base cell's mass bounds the maximum from below, and only the tiles whose upper
    bound reaches the lower bound (and the refinement window around them) are summed. The first
    maximum is taken in raster order over them, so it is the reference's ``np.argmax``;
  - the window refinement is the same numpy code for both;
  - maps holding NaN or inf (a broken network) are handed to the reference, so their (NaN-scored)
    results are equal too.

  On trained-like 512x384 outputs (half of the pixels vote) it decodes ~1,100 samples/s on one
  core, ~35x the reference; the numbers are in ``docs/benchmarks.md``.

Cost: numba (a dependency, wheels for Python 3.9-3.11 with numpy 1.23) compiles the kernel on
first use and caches it on disk (next to this file, or in ``NUMBA_CACHE_DIR``); later processes
load it in ~0.2 s. It releases the GIL, so decoding runs on a thread beside the forward pass.
"""
import math
import threading

import numba
import numpy as np

from .common import argmax_2d, disk_area
from .flipfuse import fuse_plane


def vote_margin(radius):
    """Padding of the vote map on every side (keypoints just outside the map can win)."""
    return int(math.ceil(radius)) + 2


# ---------------------------------------------------------------- shared refinement
def _refine(xy, window, r, radius, margin, finite):
    """Centroid of the (M, 2r+1, 2r+1) vote window around the integer argmax ``xy`` (M, 2) of the
    padded vote map (``window`` already zero outside the map) -> heatmap coords (M, 2), scores."""
    d = np.arange(-r, r + 1)
    wx = xy[:, 0][:, None, None] + d[None, :]                          # (M, 1, 2r+1)
    wy = xy[:, 1][:, None, None] + d[:, None]                          # (M, 2r+1, 1)
    mass = window
    total = mass.sum(axis=(-2, -1))
    safe = np.where(total > 0, total, 1.0)
    cx = (mass * wx).sum(axis=(-2, -1)) / safe
    cy = (mass * wy).sum(axis=(-2, -1)) / safe
    centroid = np.stack([cx, cy], axis=-1)
    coords = np.where((total > 0)[:, None], centroid, xy) - margin
    score = total / disk_area(radius)
    return coords, np.where(finite, score, np.nan)      # a non-finite map never looks valid


def _window_of(votes, xy, r):
    """(M, 2r+1, 2r+1) vote values around ``xy`` in (M, PH, PW) ``votes``, 0 outside the map."""
    num, ph, pw = votes.shape
    d = np.arange(-r, r + 1)
    wx = xy[:, 0][:, None, None] + d[None, :]
    wy = xy[:, 1][:, None, None] + d[:, None]
    ok = (wx >= 0) & (wx < pw) & (wy >= 0) & (wy < ph)
    flat_idx = np.clip(wy, 0, ph - 1) * pw + np.clip(wx, 0, pw - 1)
    mass = np.take_along_axis(votes.reshape(num, -1), flat_idx.reshape(num, -1), axis=-1)
    return mass.reshape(flat_idx.shape) * ok


def _finite_maps(hm, ox, oy):
    return (np.isfinite(hm).all(axis=(1, 2)) & np.isfinite(ox).all(axis=(1, 2))
            & np.isfinite(oy).all(axis=(1, 2)))


# ---------------------------------------------------------------- reference (numpy)
def _votes_of(hm, ox, oy, radius, m, pw, ph, wscale):
    """(indices, values) of every vote of (M, H, W) maps, each voter's four corners together."""
    i, py, px = np.nonzero(hm > 0)            # only positive pixels vote (the others add 0)
    weight = hm[i, py, px].astype(np.float64) * wscale
    vx = px + radius * ox[i, py, px].astype(np.float64) + m
    vy = py + radius * oy[i, py, px].astype(np.float64) + m
    x0, y0 = np.floor(vx), np.floor(vy)
    with np.errstate(invalid="ignore"):          # inf offsets (a broken map: scored NaN)
        fx, fy = vx - x0, vy - y0
    base = i.astype(np.int64) * (ph * pw)
    idx, val = [], []
    for cx, cy, cw in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                       (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):       # 4 bilinear corners
        xi, yi = x0 + cx, y0 + cy
        inside = (xi >= 0) & (xi < pw) & (yi >= 0) & (yi < ph) & np.isfinite(cw)
        idx.append(base + np.where(inside, yi * pw + xi, 0).astype(np.int64))
        val.append(np.where(inside, cw, 0.0) * weight)
    return np.stack(idx, axis=1).ravel(), np.stack(val, axis=1).ravel()


def vote_maps_reference(hm, ox, oy, radius, *more, wscale=1.0):
    """(M, H, W) maps -> (M, H + 2m, W + 2m) float64 vote maps: one ``np.bincount`` of every vote
    (voters in raster order, each voter's four corners one after the other). ``more``: further
    (hm, ox, oy) sets voting into the same maps after the first (the flip test's ``votes``
    fusion), every weight times ``wscale``."""
    num, hei, wid = hm.shape
    m = vote_margin(radius)
    pw, ph = wid + 2 * m, hei + 2 * m
    sets = [(hm, ox, oy)] + [tuple(more[i:i + 3]) for i in range(0, len(more), 3)]
    parts = [_votes_of(h, x, y, radius, m, pw, ph, wscale) for h, x, y in sets]
    votes = np.bincount(np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]), minlength=num * ph * pw)
    return votes.reshape(num, ph, pw)


def hough_decode_reference(hm, ox, oy, radius, refine_radius=1, chunk=256, *, second=None,
                           wscale=1.0):
    """(M, H, W) heatmaps and offsets -> (M, 2) heatmap-pixel coords (float64), (M,) scores.

    The numpy implementation (``chunk`` maps per ``np.bincount``, bounded memory). ``second``:
    another (hm, ox, oy) set voting into the same maps (``wscale`` 0.5 for the flip test)."""
    coords, scores = [], []
    m = vote_margin(radius)
    for s in range(0, hm.shape[0], chunk):
        sets = [(hm[s:s + chunk], ox[s:s + chunk], oy[s:s + chunk])]
        if second is not None:
            sets.append(tuple(a[s:s + chunk] for a in second))
        flat = [a for st in sets for a in st]
        votes = vote_maps_reference(*flat[:3], radius, *flat[3:], wscale=wscale)
        xy, _ = argmax_2d(votes)
        finite = np.logical_and.reduce([_finite_maps(*st) for st in sets])
        c, v = _refine(xy, _window_of(votes, xy, refine_radius), refine_radius, radius, m,
                       finite)
        coords.append(c)
        scores.append(v)
    if not coords:
        return np.zeros((0, 2)), np.zeros((0,))
    return np.concatenate(coords), np.concatenate(scores)


# ---------------------------------------------------------------- compiled kernel
#: Side of the square tiles (vote-map cells) on which the kernel bounds the vote mass.
TILE = 4


def _locate(hm, ox, oy, xs, ys, radius, margin, fpw, fph, rw, cell):
    """Base cell (index into the ringed buffer) of every pixel's vote, -1 for a pixel that does
    not vote (heatmap <= 0, or none of its four corners lands in the vote map); returns the
    number of pixels holding inf or NaN (``x - x`` is 0 only for finite x). One output array and
    an integer reduction, so LLVM vectorises it; the vote arithmetic is the reference's."""
    bad = 0
    for p in range(hm.shape[0]):
        h = hm[p]
        a = ox[p]
        c = oy[p]
        bad += ((h - h) != 0) | ((a - a) != 0) | ((c - c) != 0)
        vx = xs[p] + radius * np.float64(a) + margin
        vy = ys[p] + radius * np.float64(c) + margin
        bx = np.floor(vx)
        by = np.floor(vy)
        ok = (h > 0) & (bx >= -1.0) & (bx <= fpw) & (by >= -1.0) & (by <= fph)
        cf = (by + 1.0) * rw + (bx + 1.0)
        cell[p] = np.int64(cf if ok else -1.0)
    return bad


def _compact(cell, lst, cl):
    """Indices ``lst`` of the voting pixels in raster order, and their base cells ``cl``;
    returns their number."""
    n = 0
    for p in range(cell.shape[0]):
        c = cell[p]
        lst[n] = p
        cl[n] = c
        n += c >= 0
    return n


def _band_sum(cmass, row0, rw, band):
    """``band[x]`` = sum of the TILE (= 4) rows of ``cmass`` from row ``row0`` (vectorised)."""
    o = row0 * rw
    for x in range(rw):
        band[x] = cmass[o + x] + cmass[o + rw + x] + cmass[o + 2 * rw + x] + cmass[o + 3 * rw + x]


def _exact_votes(n, lst, cl, hm, ox, oy, xs, ys, radius, margin, wscale, c_lo, c_hi, cx_lo, cx_hi,
                 rw, votes):
    """Every corner of the voters (in raster order) whose base cell lies in cells
    ``[c_lo, c_hi)`` and columns ``[cx_lo, cx_hi]``, with the reference's arithmetic."""
    for q in range(n):
        c = cl[q]
        if c >= c_lo and c < c_hi:
            cx = c % rw
            if cx >= cx_lo and cx <= cx_hi:
                p = lst[q]
                fvx = xs[p] + radius * np.float64(ox[p]) + margin
                fvy = ys[p] + radius * np.float64(oy[p]) + margin
                fx = fvx - np.floor(fvx)
                fy = fvy - np.floor(fvy)
                w = np.float64(hm[p]) * wscale
                votes[c] += (1 - fx) * (1 - fy) * w
                votes[c + 1] += fx * (1 - fy) * w
                votes[c + rw] += (1 - fx) * fy * w
                votes[c + rw + 1] += fx * fy * w


def _base_mass(n, lst, cl, hm, wscale, cmass):
    """Summed weight of the voters per base cell (``cmass``)."""
    for q in range(n):
        cmass[cl[q]] += np.float64(hm[lst[q]]) * wscale


def _candidates(cmass, band, mass, cand, ph, pw, tile_rows, tile_cols):
    """Tile sums of ``cmass`` (``mass``), the lower bound L (a quarter of the heaviest inner base
    cell around the heaviest tile) and the candidate tiles (``cand``, upper bound >= L).
    Returns the row and column ranges (cells) of the candidate tiles."""
    rw = band.shape[0]
    rows = cmass.shape[0] // rw
    top = 0.0
    top_t = tile_cols + 1
    for ty in range(1, tile_rows):           # per tile, and the heaviest tile
        _band_sum(cmass, (ty - 1) * TILE, rw, band)
        for tx in range(1, tile_cols):
            x0 = (tx - 1) * TILE
            t = ty * tile_cols + tx
            mass[t] = band[x0] + band[x0 + 1] + band[x0 + 2] + band[x0 + 3]
            if mass[t] > top:
                top = mass[t]
                top_t = t
    low = 0.0
    ty = top_t // tile_cols
    tx = top_t - ty * tile_cols
    for y in range(max((ty - 2) * TILE, 1), min((ty + 1) * TILE - 1, ph - 1) + 1):
        for x in range(max((tx - 2) * TILE, 1), min((tx + 1) * TILE - 1, pw - 1) + 1):
            low = max(low, cmass[y * rw + x])
    low *= 0.25 * (1.0 - 1e-9)
    y_lo, y_hi, x_lo, x_hi = rows, -1, rw, -1
    for ty in range(1, tile_rows):
        for tx in range(1, tile_cols):
            t = ty * tile_cols + tx
            u = mass[t] + mass[t - 1] + mass[t - tile_cols] + mass[t - tile_cols - 1]
            if u * 1.000000001 >= low:
                cand[t] = 1
                y_lo = min(y_lo, (ty - 1) * TILE)
                y_hi = max(y_hi, ty * TILE - 1)
                x_lo = min(x_lo, (tx - 1) * TILE)
                x_hi = max(x_hi, tx * TILE - 1)
    return y_lo, y_hi, x_lo, x_hi


def _first_max(votes, cand, y_lo, y_hi, x_lo, x_hi, ph, pw, rw, tile_cols, r, i, out_xy, out_window):
    """The first maximum (row-major) among the candidate tiles' map cells (cell 0 of the map when
    nothing positive was voted) into ``out_xy[i]``, its window into ``out_window[i]``."""
    best = 0.0
    best_c = rw + 1
    for y in range(max(y_lo, 1), min(y_hi, ph) + 1):
        ty = y // TILE + 1
        for x in range(max(x_lo, 1), min(x_hi, pw) + 1):
            c = y * rw + x
            v = votes[c]
            if v > best and cand[ty * tile_cols + x // TILE + 1]:
                best = v
                best_c = c
    by_i = best_c // rw - 1
    bx_i = best_c - (by_i + 1) * rw - 1
    out_xy[i, 0] = bx_i
    out_xy[i, 1] = by_i
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            wy = by_i + dy - r
            wx = bx_i + dx - r
            inside = wx >= 0 and wx < pw and wy >= 0 and wy < ph
            out_window[i, dy, dx] = votes[(wy + 1) * rw + wx + 1] if inside else 0.0


def _decode_map(hm, ox, oy, hm2, ox2, oy2, two, wscale, i, radius, margin, r, out_xy,
                out_window, xs, ys, tile_rows, tile_cols, cell, lst, cl, cell2, lst2, cl2, votes,
                cmass, band, mass, cand):
    """One map's Hough vote; returns False (and writes nothing) for a map holding inf or NaN.

    ``hm``, ``ox``, ``oy``: flat (H * W) planes; with ``two`` a second set ``hm2``, ``ox2``,
    ``oy2`` votes into the same map after the first (the flip test's ``votes`` fusion); every
    weight times ``wscale``. Writes the first argmax (vote-map coordinates) to ``out_xy[i]`` and
    its window to ``out_window[i]``.

    The vote map (PH, PW) sits inside a ring of cells in ``votes`` (flat, ``rows x rw`` with
    ``rows >= PH + 2`` and ``rw >= PW + 2`` multiples of TILE; float64 zeros). The ring absorbs
    the corners that fall outside the map and is never read. ``cmass`` (per cell), ``mass`` and
    ``cand`` (per TILE x TILE tile, in a grid with a spare tile row and column at the top and
    left: ``tile_rows`` x ``tile_cols``) are zeros too; every buffer is left zeroed.

    Work is skipped only where a bound proves it cannot change the result. The votes of the
    voters sharing a base cell all land on its four corners, so (for an inner base cell, whose
    corners are all map cells) one corner holds at least a quarter of their weight: ``L`` = the
    largest such quarter around the heaviest tile is a lower bound of the maximum. A cell
    receives at most the weight of the voters whose footprint covers it, all of which have their
    base in its tile or the tiles left, above or above-left of it: ``U(T)``, those four tiles'
    summed weight, bounds every cell of tile T from above. Only tiles with ``U >= L`` (slack
    1e-9 for the rounding of float64 sums, < 1e-11 here) can hold the maximum. The voters whose
    base lies within the rows and columns that can reach them or the refinement window around
    their cells vote exactly, every corner in the reference's order (so those cells are
    bit-identical to the reference's), and no other vote is summed."""
    rw = band.shape[0]
    rows = votes.shape[0] // rw
    ph = int(ys[ys.shape[0] - 1]) + 1 + 2 * margin
    pw = int(xs[xs.shape[0] - 1]) + 1 + 2 * margin
    bad = _locate(hm, ox, oy, xs, ys, radius, margin, pw - 1.0, ph - 1.0, rw, cell)
    if two:
        bad += _locate(hm2, ox2, oy2, xs, ys, radius, margin, pw - 1.0, ph - 1.0, rw, cell2)
    if bad:
        return False
    n = _compact(cell, lst, cl)
    _base_mass(n, lst, cl, hm, wscale, cmass)
    n2 = _compact(cell2, lst2, cl2) if two else 0
    _base_mass(n2, lst2, cl2, hm2, wscale, cmass)
    y_lo, y_hi, x_lo, x_hi = _candidates(cmass, band, mass, cand, ph, pw, tile_rows, tile_cols)
    # exact votes of every voter with a corner within r cells of the candidates' ranges
    c_lo = max(y_lo - r - 1, 0) * rw
    c_hi = (min(y_hi + r, rows - 1) + 1) * rw
    _exact_votes(n, lst, cl, hm, ox, oy, xs, ys, radius, margin, wscale, c_lo, c_hi,
                 x_lo - r - 1, x_hi + r, rw, votes)
    _exact_votes(n2, lst2, cl2, hm2, ox2, oy2, xs, ys, radius, margin, wscale, c_lo, c_hi,
                 x_lo - r - 1, x_hi + r, rw, votes)
    _first_max(votes, cand, y_lo, y_hi, x_lo, x_hi, ph, pw, rw, tile_cols, r, i, out_xy, out_window)
    votes[c_lo:min(c_hi + rw, votes.shape[0])] = 0.0        # leave the buffers zeroed
    for q in range(n):
        cmass[cl[q]] = 0.0
    for q in range(n2):
        cmass[cl2[q]] = 0.0
    cand[:] = 0
    return True


def _vote_kernel(src_h, src_o, src_h2, src_o2, two, wscale, kh, kx, ky, num_joints, radius,
                 margin, r, out_xy, out_window, out_finite, xs, ys, tile_rows, tile_cols, cell,
                 lst, cl, cell2, lst2, cl2, votes, cmass, band, mass, cand):
    """Every map of (N, C, H, W) outputs: the heatmap of joint j in channel ``kh + j`` of
    ``src_h``, its offsets in channels ``kx + j`` / ``ky + j`` of ``src_o`` (and, with ``two``,
    the same channels of ``src_h2`` / ``src_o2`` voting into the same map): see
    :func:`_decode_map`."""
    for b in range(src_h.shape[0]):
        for j in range(num_joints):
            i = b * num_joints + j
            out_finite[i] = _decode_map(
                src_h[b, kh + j].ravel(), src_o[b, kx + j].ravel(), src_o[b, ky + j].ravel(),
                src_h2[b, kh + j].ravel(), src_o2[b, kx + j].ravel(), src_o2[b, ky + j].ravel(),
                two, wscale, i, radius, margin, r, out_xy, out_window, xs, ys, tile_rows,
                tile_cols, cell, lst, cl, cell2, lst2, cl2, votes, cmass, band, mass, cand)


def _fused_kernel(raw, flipped, fsrc, fsign, fbias, fshift, num_joints, radius, margin, r,
                  out_xy, out_window, out_finite, xs, ys, tile_rows, tile_cols, cell, lst, cl,
                  votes, cmass, band, mass, cand, scratch):
    """The flip test's map average and the Hough vote in one pass: for every (sample, joint)
    the three fused planes ``(raw + flip_back(flipped)) * 0.5`` (the arithmetic of
    :func:`~gluonpose.codecs.flipfuse.flip_average`) are written to ``scratch`` (3, H, W),
    which stays in the CPU cache for :func:`_decode_map`."""
    k = num_joints
    for b in range(raw.shape[0]):
        for j in range(k):
            i = b * k + j
            for t in range(3):
                c = t * k + j
                fuse_plane(raw[b, c], flipped[b, fsrc[c]], fsign[c] < 0, fbias[c], fshift,
                           scratch[t], True)
            out_finite[i] = _decode_map(
                scratch[0].ravel(), scratch[1].ravel(), scratch[2].ravel(), scratch[0].ravel(),
                scratch[1].ravel(), scratch[2].ravel(), False, 1.0, i, radius, margin, r, out_xy,
                out_window, xs, ys, tile_rows, tile_cols, cell, lst, cl, cell, lst, cl, votes,
                cmass, band, mass, cand)


_KERNELS = {}
_KERNELS_LOCK = threading.Lock()


def _kernel(name):
    """The compiled kernel ``name`` (and its helpers), built once per process on first use.
    Thread-safe: the evaluation pipeline decodes on several threads, and two of them building the
    kernels at once would wrap a helper twice."""
    if not _KERNELS:
        with _KERNELS_LOCK:
            if not _KERNELS:
                jit = numba.njit(nogil=True, cache=True)
                g = globals()
                for helper in ("_locate", "_compact", "_band_sum", "_exact_votes", "_base_mass",
                               "_candidates", "_first_max", "_decode_map"):
                    g[helper] = jit(g[helper])
                kernels = {"vote": jit(_vote_kernel), "fused": jit(_fused_kernel)}
                _KERNELS.update(kernels)
    return _KERNELS[name]


_GEOMETRY = {}


def _geometry(hei, wid, margin):
    """Pixel coordinates, the inner base cells and the tile grid of a map size (cached)."""
    key = (hei, wid, margin)
    if key not in _GEOMETRY:
        ph, pw = hei + 2 * margin, wid + 2 * margin
        rows = -(-(ph + 2) // TILE) * TILE                 # ring, padded to whole tiles
        rw = -(-(pw + 2) // TILE) * TILE
        tile_rows = rows // TILE + 1                        # + the spare row / column
        tile_cols = rw // TILE + 1
        _GEOMETRY[key] = (np.tile(np.arange(wid, dtype=np.float64), hei),
                          np.repeat(np.arange(hei, dtype=np.float64), wid),
                          tile_rows, tile_cols, rows * rw, rw)
    return _GEOMETRY[key]


def _buffers(hei, wid, m, sets):
    npix = hei * wid
    xs, ys, tile_rows, tile_cols, cells, rw = _geometry(hei, wid, m)
    tiles = tile_rows * tile_cols
    per_set = [np.empty(npix, np.int64) for _ in range(3 * sets)]
    return (xs, ys, tile_rows, tile_cols) + tuple(per_set), (
        np.zeros(cells, np.float64), np.zeros(cells, np.float64), np.zeros(rw, np.float64),
        np.zeros(tiles, np.float64), np.zeros(tiles, np.uint8))


def _results(n, k, r):
    side = 2 * r + 1
    return (np.zeros((n * k, 2), np.int64), np.zeros((n * k, side, side), np.float64),
            np.zeros(n * k, np.bool_))


def hough_decode_blocked(outputs, heatmaps, num_joints, radius, refine_radius=1, *, second=None,
                         second_heatmaps=None, wscale=1.0):
    """Hough decode of blocked (N, 3K, H, W) outputs without copying them.

    Args:
        outputs: (N, 3K, H, W) float32 ``[heatmaps | x-offsets | y-offsets]``.
        heatmaps: None (the heatmaps are ``outputs[:, :K]``) or (N, K, H, W) float32 to vote with
            instead (e.g. after a sigmoid).
        second, second_heatmaps: another set of outputs (and heatmaps) voting into the same maps
            after the first (the flip test's ``votes`` fusion); ``wscale``: every weight's factor.

    Returns:
        (N, K, 2) heatmap-pixel coords (float64) and (N, K) scores; bit-identical to
        :func:`hough_decode_reference` on the same maps.
    """
    k = int(num_joints)
    out = np.ascontiguousarray(outputs, dtype=np.float32)
    n, _, hei, wid = out.shape
    src_h = out if heatmaps is None else np.ascontiguousarray(heatmaps, dtype=np.float32)
    two = second is not None
    out2 = out if not two else np.ascontiguousarray(second, dtype=np.float32)
    src_h2 = out2 if (not two or second_heatmaps is None) else \
        np.ascontiguousarray(second_heatmaps, dtype=np.float32)
    if two and out2.shape != out.shape:
        raise ValueError("hough: the two output sets differ in shape: %s, %s" % (out.shape, out2.shape))
    m = vote_margin(radius)
    r = int(refine_radius)
    xy, window, finite = _results(n, k, r)
    geometry, scratch = _buffers(hei, wid, m, 2)
    xs, ys, tile_rows, tile_cols = geometry[:4]
    _kernel("vote")(src_h, out, src_h2, out2, two, float(wscale), 0, k, 2 * k, k, float(radius),
                    m, r, xy, window, finite, xs, ys, tile_rows, tile_cols, *geometry[4:],
                    *scratch)
    coords, scores = _refine(xy, window, r, radius, m, finite)
    if not finite.all():                               # broken maps: the reference's NaN results
        bad = np.flatnonzero(~finite)
        b, j = np.divmod(bad, k)
        extra = None if not two else (src_h2[b, j], out2[b, k + j], out2[b, 2 * k + j])
        coords[bad], scores[bad] = hough_decode_reference(
            src_h[b, j], out[b, k + j], out[b, 2 * k + j], radius, r, second=extra, wscale=wscale)
    return coords.reshape(n, k, 2), scores.reshape(n, k)


def hough_decode_flip_fused(raw, flipped, spec, num_joints, radius, refine_radius=1):
    """``hough_decode_blocked((raw + flip_back(flipped)) * 0.5)`` without writing the average:
    it is formed per map in a buffer that stays in the CPU cache (bit-identical results; saves
    a write and a read of the whole batch, the largest cost of the flip test at 512x384)."""
    k = int(num_joints)
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    flipped = np.ascontiguousarray(flipped, dtype=np.float32)
    if raw.shape != flipped.shape or raw.shape[1] != 3 * k:
        raise ValueError("hough: raw %s and flipped %s outputs must both be (N, %d, H, W)"
                         % (raw.shape, flipped.shape, 3 * k))
    n, _, hei, wid = raw.shape
    m = vote_margin(radius)
    r = int(refine_radius)
    xy, window, finite = _results(n, k, r)
    geometry, scratch = _buffers(hei, wid, m, 1)
    xs, ys, tile_rows, tile_cols = geometry[:4]
    planes = np.empty((3, hei, wid), np.float32)
    _kernel("fused")(raw, flipped, spec.src, spec.sign, spec.bias, int(spec.shift), k,
                     float(radius), m, r, xy, window, finite, xs, ys, tile_rows, tile_cols,
                     *geometry[4:], *scratch, planes)
    coords, scores = _refine(xy, window, r, radius, m, finite)
    if not finite.all():                               # broken maps: the reference's NaN results
        from .flipfuse import flip_average
        bad = np.flatnonzero(~finite)
        b, j = np.divmod(bad, k)
        fused = flip_average(spec, raw[np.unique(b)], flipped[np.unique(b)])
        pos = np.searchsorted(np.unique(b), b)
        coords[bad], scores[bad] = hough_decode_reference(
            fused[pos, j], fused[pos, k + j], fused[pos, 2 * k + j], radius, r)
    return coords.reshape(n, k, 2), scores.reshape(n, k)


def hough_decode(hm, ox, oy, radius, refine_radius=1):
    """(M, H, W) heatmaps and offsets -> (M, 2) heatmap-pixel coords (float64), (M,) scores:
    :func:`hough_decode_blocked` with the signature of :func:`hough_decode_reference`."""
    hm = np.asarray(hm, dtype=np.float32)
    blocked = np.concatenate([hm[:, None], np.asarray(ox, np.float32)[:, None],
                              np.asarray(oy, np.float32)[:, None]], axis=1)
    c, s = hough_decode_blocked(blocked, None, 1, radius, refine_radius)
    return c[:, 0], s[:, 0]
