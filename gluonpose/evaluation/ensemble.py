"""Averaging of keypoint predictions from several models / test-time settings in image coordinates.

Every member must already have mapped its predictions back to the original image (flip undone,
crop affine inverted, rotation undone), so that the M predictions of one person are comparable.
"""
import numpy as np

MODES = ("score_weighted", "mean")


def average_keypoints(coords, scores, mode="score_weighted", weights=None):
    """Fuse M member predictions of N persons with K joints.

    Args:
        coords: (M, N, K, 2) joint positions ``(x, y)`` in image pixels.
        scores: (M, N, K) joint confidences.
        mode: ``'score_weighted'``: position = sum_m w_m s_m p_m / sum_m w_m s_m, with scores
            clipped at 0 for the weighting; where all weighted scores of a joint are 0 the plain
            w-weighted mean is used. ``'mean'``: position = sum_m w_m p_m / sum_m w_m.
        weights: (M,) non-negative member weights (default all 1); they need not sum to 1.

    Returns:
        coords (N, K, 2) float64 and scores (N, K) float64; the fused score is the w-weighted mean
        of the member scores in both modes.
    """
    coords = np.asarray(coords, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if coords.ndim != 4 or coords.shape[3] != 2:
        raise ValueError("average_keypoints: coords must be (M, N, K, 2), got %s" % (coords.shape,))
    if scores.shape != coords.shape[:3]:
        raise ValueError("average_keypoints: scores %s do not match coords %s"
                         % (scores.shape, coords.shape))
    if mode not in MODES:
        raise ValueError("average_keypoints: mode must be one of %s, got %r" % (MODES, mode))
    num_members = coords.shape[0]
    if num_members == 0:
        raise ValueError("average_keypoints: no members to average")
    w = np.ones(num_members) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != num_members or (w < 0).any() or w.sum() <= 0 or not np.isfinite(w).all():
        raise ValueError("average_keypoints: weights must be %d finite non-negative values with a "
                         "positive sum, got %s" % (num_members, w.tolist()))
    w_norm = w / w.sum()
    mean_coords = np.tensordot(w_norm, coords, axes=1)                   # (N, K, 2)
    mean_scores = np.tensordot(w_norm, scores, axes=1)                   # (N, K)
    if mode == "mean":
        return mean_coords, mean_scores
    ws = w[:, None, None] * np.clip(scores, 0.0, None)                   # (M, N, K)
    total = ws.sum(axis=0)                                               # (N, K)
    weighted = (ws[..., None] * coords).sum(axis=0) / np.where(total > 0, total, 1.0)[..., None]
    fused = np.where((total > 0)[..., None], weighted, mean_coords)
    return fused, mean_scores
