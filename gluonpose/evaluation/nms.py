"""Object keypoint similarity (OKS) and OKS-based non-maximum suppression of person poses.

Follows the official HRNet ``lib/nms/nms.py`` semantics:

* OKS(g, d) = mean_k exp(-d_k^2 / (2 * ((a_g + a_d) / 2 + eps) * (2 sigma_k)^2)), eps = np.spacing(1),
  averaged over all joints (the official pipeline passes no visibility threshold);
* the areas are those of the padded person boxes (``prod(scale * 200)``), chosen by the caller;
* greedy NMS keeps the highest-scoring pose and drops every remaining pose whose OKS with it is
  strictly greater than the threshold (0.9 in the official COCO yamls);
* soft NMS decays scores by ``exp(-oks^2 / thr)`` and keeps at most ``max_dets`` (20) poses.

:func:`oks_nms_grouped` runs the greedy NMS of many images at once (one numpy pass per score rank for all
images instead of one per kept pose and image); it keeps, per image, exactly what :func:`oks_nms_arrays`
keeps, with bit-identical OKS values.

One deliberate difference: with ``in_vis_thr`` set, the official code's mask
``list(vg > t) and list(vd > t)`` evaluates to the detection mask alone (Python ``and`` on two
non-empty lists); here a joint counts when it is above the threshold in *both* poses. The official
evaluation never sets ``in_vis_thr``, so its numbers are unaffected.
"""
import numpy as np

from ..keypoints import COCO_SIGMAS



def _as_sigmas(sigmas, num_joints):
    """Return ``sigmas`` as a (K,) float64 array (COCO sigmas when None) after checking K."""
    sig = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sig.shape[0] != num_joints:
        raise ValueError("OKS sigmas have %d entries but the poses have %d joints"
                         % (sig.shape[0], num_joints))
    return sig


def oks_iou(g, d, area_g, areas_d, *, sigmas=None, in_vis_thr=None):
    """OKS between one pose ``g`` and each of ``M`` poses ``d``.

    Args:
        g: (K*3,) flat ``[x, y, s] * K`` or (K, 3) pose.
        d: (M, K, 3) or (M, K*3) poses.
        area_g: scalar area of ``g`` (pixels^2).
        areas_d: (M,) areas of ``d``.
        sigmas: (K,) per-joint sigmas; None means COCO-17.
        in_vis_thr: if not None, only joints whose third value exceeds it in both poses count;
            a pair with no such joint gets OKS 0.

    Returns:
        (M,) float64 OKS values.
    """
    g = np.asarray(g, dtype=np.float64).reshape(-1, 3)
    num_joints = g.shape[0]
    d = np.asarray(d, dtype=np.float64).reshape(-1, num_joints, 3)
    areas_d = np.asarray(areas_d, dtype=np.float64).reshape(-1)
    if areas_d.shape[0] != d.shape[0]:
        raise ValueError("oks_iou: %d poses but %d areas" % (d.shape[0], areas_d.shape[0]))
    variances = (2.0 * _as_sigmas(sigmas, num_joints)) ** 2
    sq_dist = ((d[:, :, :2] - g[None, :, :2]) ** 2).sum(axis=2)            # (M, K)
    scale = (float(area_g) + areas_d) / 2.0 + np.spacing(1)               # (M,)
    e = sq_dist / variances[None, :] / scale[:, None] / 2.0
    sim = np.exp(-e)
    if in_vis_thr is None:
        return sim.mean(axis=1)
    mask = (g[None, :, 2] > in_vis_thr) & (d[:, :, 2] > in_vis_thr)
    count = mask.sum(axis=1)
    total = (sim * mask).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _db_arrays(kpts_db):
    """Unpack a list of ``{'keypoints', 'score', 'area'}`` dicts into (N,K,3), (N,), (N,) arrays."""
    try:
        kpts = np.stack([np.asarray(p["keypoints"], dtype=np.float64).reshape(-1, 3)
                         for p in kpts_db])
        scores = np.array([float(p["score"]) for p in kpts_db])
        areas = np.array([float(p["area"]) for p in kpts_db])
    except KeyError as err:
        raise KeyError("oks_nms: every pose dict needs 'keypoints', 'score' and 'area'; "
                       "missing %s" % err) from None
    return kpts, scores, areas


def _check_arrays(keypoints, scores, areas):
    kpts = np.asarray(keypoints, dtype=np.float64)
    num = kpts.shape[0]
    kpts = kpts.reshape(num, -1, 3)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if scores.shape[0] != num or areas.shape[0] != num:
        raise ValueError("OKS-NMS: %d poses, %d scores, %d areas" % (num, scores.shape[0], areas.shape[0]))
    return kpts, scores, areas


def oks_nms_arrays(keypoints, scores, areas, thr=0.9, *, sigmas=None, in_vis_thr=None):
    """Greedy OKS-NMS on arrays.

    Args:
        keypoints: (N, K, 3) poses ``[x, y, joint score]`` of one image.
        scores: (N,) person scores.
        areas: (N,) areas (padded box area in the official pipeline).
        thr: a pose is dropped when its OKS with an already kept pose is > ``thr``.

    Returns:
        (n_keep,) int64 indices into the inputs, in order of decreasing score.
    """
    kpts, scores, areas = _check_arrays(keypoints, scores, areas)
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas=sigmas,
                      in_vis_thr=in_vis_thr)
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)


def group_order(groups, scores):
    """Rows sorted by group (ascending), then score (decreasing), ties by later row first, and where each group
    starts in that order.

    The order within a group is :func:`oks_nms_arrays`' (``argsort(stable)[::-1]`` of the group's scores).

    Returns:
        (order (N,) int64, starts (G,) int64 positions in ``order`` of each group's first row).
    """
    groups = np.asarray(groups).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if groups.shape[0] != scores.shape[0]:
        raise ValueError("%d group ids but %d scores" % (groups.shape[0], scores.shape[0]))
    order = np.lexsort((-np.arange(groups.shape[0]), -scores, groups)).astype(np.int64)
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]) if order.size else order
    return order, starts.astype(np.int64)


def _oks_rows(gx, gy, dx, dy, area_g, areas_d, variances):
    """OKS of pose g[n] with each pose d[n, m], for many groups n at once: gx, gy (N, K) joint coordinates,
    dx, dy (N, M, K), area_g (N,), areas_d (N, M) -> (N, M).

    Entry [n, m] is bit-identical to ``oks_iou(g[n], d[n, m], area_g[n], areas_d[n, m])``: the same operations in
    the same order (squared differences, x + y; divided by the variances, the mean area + eps and 2; exp; mean
    over the joints, a reduction over the same contiguous axis)."""
    e = dx - gx[:, None]
    ddy = dy - gy[:, None]
    np.multiply(e, e, out=e)
    np.multiply(ddy, ddy, out=ddy)
    e += ddy                                                               # (N, M, K) squared distances
    scale = (area_g[:, None] + areas_d) / 2.0 + np.spacing(1)              # (N, M)
    e /= variances
    e /= scale[:, :, None]
    e /= 2.0
    np.negative(e, out=e)
    np.exp(e, out=e)
    return e.mean(axis=2)


def oks_nms_grouped(keypoints, scores, areas, groups, thr=0.9, *, sigmas=None, block_bytes=64 << 20):
    """Greedy OKS-NMS within every group (image) of many poses at once; per group the same kept poses, in the
    same order, as :func:`oks_nms_arrays`.

    Groups of equal size are stacked (in blocks of about ``block_bytes``) and walked rank by rank together: at
    rank t, in every group whose pose t is still alive (so kept: only kept poses of higher rank can suppress
    it), the poses below it whose OKS with it is > ``thr`` are suppressed. That is the greedy rule, with one
    numpy pass per rank for all groups instead of one per kept pose and image.

    Args:
        keypoints: (N, K, 3) poses; scores: (N,) finite person scores; areas: (N,) OKS areas.
        groups: (N,) group ids (image ids).
        thr: a pose is dropped when its OKS with a kept pose of its group is > ``thr``.
        sigmas: (K,) OKS sigmas; None means COCO-17.

    Returns:
        (n_keep,) int64 row indices: groups in ascending id order, each group's rows in selection order
        (decreasing score).
    """
    if np.size(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    kpts, scores, areas = _check_arrays(keypoints, scores, areas)
    order, starts = group_order(groups, scores)
    num = order.size
    num_joints = kpts.shape[1]
    variances = (2.0 * _as_sigmas(sigmas, num_joints)) ** 2
    xs, ys = np.ascontiguousarray(kpts[:, :, 0]), np.ascontiguousarray(kpts[:, :, 1])
    sizes = np.diff(np.r_[starts, num])
    kept = np.zeros(num, dtype=bool)                        # by position in ``order``
    for size in np.unique(sizes).tolist():
        first = starts[sizes == size]                       # (G,) positions of the groups of this size
        step = max(1, block_bytes // (size * num_joints * 8 * 4))
        for b in range(0, first.size, step):
            rows = order[first[b:b + step, None] + np.arange(size)[None, :]]    # (G, S) rows, by rank
            gx, gy, garea = xs[rows], ys[rows], areas[rows]
            suppressed = np.zeros(rows.shape, dtype=bool)
            for t in range(size - 1):
                alive = np.flatnonzero(~suppressed[:, t])
                if alive.size:
                    ovr = _oks_rows(gx[alive, t], gy[alive, t], gx[alive, t + 1:], gy[alive, t + 1:],
                                    garea[alive, t], garea[alive, t + 1:], variances)
                    suppressed[alive, t + 1:] |= ovr > thr
            kept[first[b:b + step, None] + np.arange(size)[None, :]] = ~suppressed
    return order[kept]


def soft_oks_nms_arrays(keypoints, scores, areas, thr=0.9, *, sigmas=None, in_vis_thr=None,
                        max_dets=20):
    """Soft OKS-NMS (Gaussian decay ``score * exp(-oks^2 / thr)``) on arrays.

    Shapes as in :func:`oks_nms_arrays`. Returns (n_keep,) int64 indices, at most ``max_dets``,
    in the order they were selected. The decayed scores only rank the poses; callers keep the
    original scores (as the official code does).
    """
    kpts, scores, areas = _check_arrays(keypoints, scores, areas)
    order = np.argsort(scores, kind="stable")[::-1]
    cur = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas=sigmas,
                      in_vis_thr=in_vis_thr)
        cur = cur[1:] * np.exp(-ovr ** 2 / thr)
        resort = np.argsort(cur, kind="stable")[::-1]
        order, cur = rest[resort], cur[resort]
    return np.asarray(keep, dtype=np.int64)


def oks_nms(kpts_db, thr=0.9, *, sigmas=None, in_vis_thr=None):
    """Greedy OKS-NMS on a list of pose dicts (official HRNet interface).

    Args:
        kpts_db: list of dicts with ``keypoints`` ((K, 3) or (K*3,)), ``score`` and ``area``.

    Returns:
        list of int indices into ``kpts_db`` to keep (empty for an empty input).
    """
    if len(kpts_db) == 0:
        return []
    return oks_nms_arrays(*_db_arrays(kpts_db), thr, sigmas=sigmas, in_vis_thr=in_vis_thr).tolist()


def soft_oks_nms(kpts_db, thr=0.9, *, sigmas=None, in_vis_thr=None, max_dets=20):
    """Soft OKS-NMS on a list of pose dicts; see :func:`soft_oks_nms_arrays`."""
    if len(kpts_db) == 0:
        return []
    return soft_oks_nms_arrays(*_db_arrays(kpts_db), thr, sigmas=sigmas, in_vis_thr=in_vis_thr,
                               max_dets=max_dets).tolist()
