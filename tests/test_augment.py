"""Augmentation draws against the official HRNet formulas (JointsDataset.__getitem__), over 100k
seeded draws of the parameters (no images), and per-sample determinism from (seed, epoch, index).

Official (ROT_FACTOR rf, SCALE_FACTOR sf): scale ``s * clip(randn * sf + 1, 1 - sf, 1 + sf)``;
rotation ``clip(randn * rf, -2 rf, 2 rf)`` if ``random() <= 0.6`` else 0; flip if
``random() <= 0.5``; half-body if more than 8 labelled joints and ``rand() < 0.3``, upper body
if ``randn() < 0.5``. Moments of a standard normal clipped at +-c, from the normal's density:
E = 0, E[x^2] = (2 Phi(c) - 1) - 2 c phi(c) + 2 c^2 (1 - Phi(c)), P(|x| = c) = 2 (1 - Phi(c)).
"""
import math

import numpy as np
import pytest

from gluonpose.config import load_config
from gluonpose.data.augment import AugmentParams, draw_scale_rotation_flip, sample_augmentation
from gluonpose.data.pipeline import sample_rng

N = 100_000


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _clipped_normal(c):
    """(std, probability of sitting on a bound) of a standard normal clipped at +-c."""
    second = (2 * _cdf(c) - 1) - 2 * c * _phi(c) + 2 * c * c * (1 - _cdf(c))
    return math.sqrt(second), 2 * (1 - _cdf(c))


def _draws(params, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([draw_scale_rotation_flip(params, rng) for _ in range(n)], dtype=np.float64)


@pytest.mark.parametrize("rf,sf", [(15.0, 0.2), (45.0, 0.35)])
def test_official_draws_match_the_official_formulas(rf, sf):
    d = _draws(AugmentParams(sampling="official", rot_factor=rf, scale_factor=sf))
    scale, rot, flip = d[:, 0], d[:, 1], d[:, 2]
    s_std, s_bound = _clipped_normal(1.0)          # scale clipped at 1 standard deviation
    r_std, r_bound = _clipped_normal(2.0)          # rotation at 2
    # scale: clip(1 + sf N, 1 - sf, 1 + sf) on every sample
    assert scale.min() == pytest.approx(1 - sf) and scale.max() == pytest.approx(1 + sf)
    assert abs(scale.mean() - 1.0) < 4 * sf * s_std / math.sqrt(N)
    assert scale.std() == pytest.approx(sf * s_std, rel=0.01)
    assert np.isclose(np.abs(scale - 1), sf).mean() == pytest.approx(s_bound, abs=0.006)
    # rotation: 0 with probability 0.4, else clip(rf N, -2 rf, 2 rf)
    zero = rot == 0
    assert zero.mean() == pytest.approx(0.4, abs=0.01)
    r = rot[~zero]
    assert r.min() == -2 * rf and r.max() == 2 * rf
    assert abs(r.mean()) < 4 * rf * r_std / math.sqrt(len(r))
    assert r.std() == pytest.approx(rf * r_std, rel=0.01)
    assert (np.abs(r) == 2 * rf).mean() == pytest.approx(r_bound, abs=0.004)
    assert flip.mean() == pytest.approx(0.5, abs=0.01)


def test_uniform_draws():
    d = _draws(AugmentParams(sampling="uniform", rot_factor=15.0, scale_factor=0.2))
    scale, rot, flip = d[:, 0], d[:, 1], d[:, 2]
    assert (rot != 0).all()                        # every sample rotated (today's behaviour)
    assert -30 <= rot.min() < -29.9 and 29.9 < rot.max() <= 30
    assert rot.std() == pytest.approx(30 / math.sqrt(3), rel=0.01)
    assert 0.8 <= scale.min() < 0.801 and 1.199 < scale.max() <= 1.2
    assert scale.std() == pytest.approx(0.2 / math.sqrt(3), rel=0.01)
    assert flip.mean() == pytest.approx(0.5, abs=0.01)


def _person(num_visible):
    """17 joints, upper body (0-10) around y = 100, lower body (11-16) around y = 300; all
    labelled (17) or 4 upper + 4 lower labelled (8)."""
    y = np.where(np.arange(17) < 11, 100.0, 300.0) + np.arange(17) * 3.0
    joints = np.stack([200.0 + (np.arange(17) % 5) * 20.0, y], axis=1)
    visible = np.ones(17)
    if num_visible == 8:
        visible[:] = 0
        visible[[0, 1, 2, 3, 11, 12, 13, 14]] = 1
    return joints, visible


def test_half_body_statistics():
    params = AugmentParams()                       # official, half-body 0.3, > 8 joints
    joints, visible = _person(17)
    upper_center = joints[:11].mean(axis=0)
    rng = np.random.default_rng(1)
    n = N // 2
    half = upper = 0
    for _ in range(n):
        a = sample_augmentation(params, joints, visible, [250.0, 200.0], [200.0, 266.7],
                                (192, 256), rng)
        if a.half_body:
            half += 1
            upper += bool(np.allclose(a.center, upper_center))
    assert half / n == pytest.approx(0.3, abs=0.01)
    assert upper / half == pytest.approx(_cdf(0.5), abs=0.015)   # official randn() < 0.5
    joints8, visible8 = _person(8)                 # exactly 8 labelled joints: never (> 8 needed)
    assert visible8.sum() == 8
    assert not any(sample_augmentation(params, joints8, visible8, [250.0, 200.0], [200.0, 266.7],
                                       (192, 256), rng).half_body for _ in range(2000))


@pytest.mark.parametrize("sampling", ["official", "uniform"])
def test_per_sample_determinism_and_draw_order(sampling):
    """Same (seed, epoch, index): the same draw; the generator is consumed in the official
    order (half-body test, scale, rotation test, rotation, flip), re-done here by hand."""
    params = AugmentParams(sampling=sampling)
    joints, visible = _person(8)                   # no half-body: its test is not even drawn
    for index in range(200):
        a = sample_augmentation(params, joints, visible, [250.0, 200.0], [200.0, 266.7],
                                (192, 256), sample_rng(7, 3, index))
        b = sample_augmentation(params, joints, visible, [250.0, 200.0], [200.0, 266.7],
                                (192, 256), sample_rng(7, 3, index))
        assert a.rotation == b.rotation and a.flipped == b.flipped
        np.testing.assert_array_equal(a.scale, b.scale)
        g = sample_rng(7, 3, index)
        if sampling == "official":
            factor = min(max(1 + 0.2 * g.standard_normal(), 0.8), 1.2)
            rot = min(max(15 * g.standard_normal(), -30), 30) if g.random() < 0.6 else 0.0
        else:
            factor = g.uniform(0.8, 1.2)
            rot = g.uniform(-30, 30) if g.random() < 1.0 else 0.0
        flip = g.random() < 0.5
        np.testing.assert_allclose(a.scale, np.array([200.0, 266.7]) * factor, rtol=1e-12)
        assert a.rotation == pytest.approx(rot, abs=1e-12) and a.flipped == flip
    streams = {sample_rng(7, e, i).standard_normal() for e in range(3) for i in range(50)}
    assert len(streams) == 150                     # every (epoch, index) its own generator


def test_defaults_are_the_report_reading():
    cfg = load_config(None)
    params = AugmentParams(**cfg.augment)
    assert params == AugmentParams()
    assert (params.sampling, params.max_rotation, params.scale_bounds) == ("official", 30.0,
                                                                          (0.8, 1.2))
    assert params.rotation_probability == 0.6
    assert AugmentParams(sampling="uniform").rotation_probability == 1.0
    for bad in (dict(sampling="normal"), dict(rot_factor=-1.0), dict(scale_factor=1.0),
                dict(rotation_prob=1.5)):
        with pytest.raises(ValueError):
            AugmentParams(**bad)
