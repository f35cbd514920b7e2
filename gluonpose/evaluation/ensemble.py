"""Averaging of keypoint predictions from several models / test-time settings in image coordinates.

Every member must already have mapped its predictions back to the original image (flip undone,
crop affine inverted, rotation undone), so that the M predictions of one person are comparable.
"""
import numpy as np

MODES = ("score_weighted", "mean")


def average_keypoints(coords, scores, mode="score_weighted", weights=None):
    """Fuse M member predictions of N persons with K joints.

    Args:
        coords: (M, N, K, 2) joint positions ``(x, y)`` in image pixels, or a sequence of M
            (N, K, 2) arrays (views into a larger array are read in place, never stacked).
        scores: (M, N, K) joint confidences, or a sequence of M (N, K) arrays.
        mode: ``'score_weighted'``: position = sum_m w_m s_m p_m / sum_m w_m s_m, with scores
            clipped at 0 for the weighting; where all weighted scores of a joint are 0 the plain
            w-weighted mean is used. ``'mean'``: position = sum_m w_m p_m / sum_m w_m.
        weights: (M,) non-negative member weights (default all 1); they need not sum to 1.

    Returns:
        coords (N, K, 2) float64 and scores (N, K) float64; the fused score is the w-weighted mean
        of the member scores in both modes. Memory: a few (N, K, 2) float64 sums, whatever M is
        (the members are added one at a time).
    """
    members = list(coords) if not isinstance(coords, np.ndarray) else coords
    member_scores = list(scores) if not isinstance(scores, np.ndarray) else scores
    num_members = len(members)
    if num_members == 0:
        raise ValueError("average_keypoints: no members to average")
    shape = np.shape(members[0])
    if len(shape) != 3 or shape[2] != 2 or any(np.shape(c) != shape for c in members):
        raise ValueError("average_keypoints: coords must be (M, N, K, 2), got %s"
                         % ((num_members,) + tuple(np.shape(members[0])),))
    if len(member_scores) != num_members or any(np.shape(s) != shape[:2] for s in member_scores):
        raise ValueError("average_keypoints: scores %s do not match coords %s"
                         % ((len(member_scores),) + tuple(np.shape(member_scores[0])),
                            (num_members,) + shape))
    if mode not in MODES:
        raise ValueError("average_keypoints: mode must be one of %s, got %r" % (MODES, mode))
    w = np.ones(num_members) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != num_members or (w < 0).any() or w.sum() <= 0 or not np.isfinite(w).all():
        raise ValueError("average_keypoints: weights must be %d finite non-negative values with a "
                         "positive sum, got %s" % (num_members, w.tolist()))
    w_norm = w / w.sum()
    mean_coords = np.zeros(shape)
    mean_scores = np.zeros(shape[:2])
    total = np.zeros(shape[:2])
    weighted = np.zeros(shape)
    for m in range(num_members):
        c = np.asarray(members[m], dtype=np.float64)
        sc = np.asarray(member_scores[m], dtype=np.float64)
        mean_coords += w_norm[m] * c
        mean_scores += w_norm[m] * sc
        if mode == "score_weighted":
            ws = w[m] * np.clip(sc, 0.0, None)
            total += ws
            weighted += ws[..., None] * c
    if mode == "mean":
        return mean_coords, mean_scores
    positive = total > 0
    weighted /= np.where(positive, total, 1.0)[..., None]
    return np.where(positive[..., None], weighted, mean_coords), mean_scores
