"""Ensemble / TTA averaging in image coordinates, against hand-computed numbers."""
import numpy as np
import pytest

from gluonpose.evaluation.ensemble import average_keypoints

# M=2 members, N=1 person, K=2 joints.
COORDS = np.array([[[[10.0, 20.0], [0.0, 0.0]]],
                   [[[20.0, 40.0], [4.0, 8.0]]]])
SCORES = np.array([[[0.25, 0.0]],
                   [[0.75, 0.0]]])


def test_score_weighted_hand_computed():
    coords, scores = average_keypoints(COORDS, SCORES)
    assert coords.shape == (1, 2, 2) and scores.shape == (1, 2)
    # joint 0: 0.25 * (10, 20) + 0.75 * (20, 40) = (17.5, 35); joint 1: all scores 0 -> plain mean.
    np.testing.assert_allclose(coords[0], [[17.5, 35.0], [2.0, 4.0]])
    np.testing.assert_allclose(scores[0], [0.5, 0.0])


def test_mean_mode_hand_computed():
    coords, scores = average_keypoints(COORDS, SCORES, mode="mean")
    np.testing.assert_allclose(coords[0], [[15.0, 30.0], [2.0, 4.0]])
    np.testing.assert_allclose(scores[0], [0.5, 0.0])


def test_member_weights_hand_computed():
    # weights (3, 1): weighted scores of joint 0 are 3 * 0.25 = 0.75 and 1 * 0.75 = 0.75.
    coords, scores = average_keypoints(COORDS, SCORES, weights=[3.0, 1.0])
    np.testing.assert_allclose(coords[0], [[15.0, 30.0], [1.0, 2.0]])
    np.testing.assert_allclose(scores[0], [(3 * 0.25 + 0.75) / 4, 0.0])
    coords, _ = average_keypoints(COORDS, SCORES, mode="mean", weights=[3.0, 1.0])
    np.testing.assert_allclose(coords[0], [[12.5, 25.0], [1.0, 2.0]])
    # A zero-weight member has no influence at all.
    coords, scores = average_keypoints(COORDS, SCORES, weights=[0.0, 2.0])
    np.testing.assert_allclose(coords[0], COORDS[1, 0])
    np.testing.assert_allclose(scores[0], SCORES[1, 0])


def test_negative_scores_do_not_pull_positions():
    scores = np.array([[[-0.5, 0.2]], [[0.5, 0.2]]])
    coords, fused = average_keypoints(COORDS, scores)
    np.testing.assert_allclose(coords[0], [[20.0, 40.0], [2.0, 4.0]])
    np.testing.assert_allclose(fused[0], [0.0, 0.2])


def test_many_members_and_people():
    rng = np.random.default_rng(3)
    coords = rng.uniform(0, 500, size=(3, 4, 17, 2))
    scores = rng.uniform(0.1, 1.0, size=(3, 4, 17))
    got, got_scores = average_keypoints(coords, scores)
    i, k = 2, 11     # one entry by an explicit sum
    s = scores[:, i, k]
    np.testing.assert_allclose(got[i, k], (s[:, None] * coords[:, i, k]).sum(0) / s.sum())
    np.testing.assert_allclose(got_scores, scores.mean(axis=0))
    one, one_scores = average_keypoints(coords[:1], scores[:1])
    np.testing.assert_allclose(one, coords[0])
    np.testing.assert_allclose(one_scores, scores[0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        average_keypoints(COORDS, SCORES, mode="median")
    with pytest.raises(ValueError, match="scores"):
        average_keypoints(COORDS, SCORES[:, :, :1])
    with pytest.raises(ValueError, match="coords"):
        average_keypoints(COORDS[..., 0], SCORES)
    with pytest.raises(ValueError, match="weights"):
        average_keypoints(COORDS, SCORES, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="weights"):
        average_keypoints(COORDS, SCORES, weights=[1.0])
