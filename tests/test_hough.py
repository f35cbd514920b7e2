"""The compiled Hough kernel is bit-identical to the numpy reference (the former dense vote).

Every comparison is ``np.array_equal`` on float64 coordinates and scores (NaN == NaN where the
reference gives NaN): the kernel sums the same float64 votes in the same order and skips only
cells a bound proves cannot hold the maximum or the refinement window, so nothing may differ, not
even in the last bit. Inputs: trained-like outputs at the three crop sizes, a dense grid of joints
over each crop (corners, borders, just outside), maps with no voter, NaN / inf maps, weak maps
where the bound prunes nothing, exact ties, larger refinement windows, sigmoid heatmaps.
"""
import numpy as np
import pytest

from gluonpose.codecs import HeatmapOffsetCodec
from gluonpose.codecs.grid import crop_grid
from gluonpose.codecs.hough import hough_decode, hough_decode_blocked, hough_decode_reference
from gluonpose.codecs.trained_like import random_crop_keypoints, trained_like_outputs

SIZES = [(192, 256), (288, 384), (384, 512)]


def _maps(outputs, k):
    n, _, h, w = outputs.shape
    return [outputs[:, i * k:(i + 1) * k].reshape(n * k, h, w) for i in range(3)]


def assert_same(outputs, codec, heatmaps=None, refine=None):
    k = codec.num_joints
    refine = codec.hough_refine_radius if refine is None else refine
    fast_c, fast_s = hough_decode_blocked(outputs, heatmaps, k, codec.radius, refine)
    hm, ox, oy = _maps(outputs, k)
    if heatmaps is not None:
        hm = heatmaps.reshape(hm.shape)
    ref_c, ref_s = hough_decode_reference(hm, ox, oy, codec.radius, refine)
    np.testing.assert_array_equal(fast_c.reshape(-1, 2), ref_c)
    np.testing.assert_array_equal(fast_s.ravel(), ref_s)
    return fast_c, fast_s


@pytest.mark.parametrize("size", SIZES)
def test_trained_like_outputs_bit_identical(size):
    codec = HeatmapOffsetCodec(size)
    out, kp = trained_like_outputs(codec, 6, rng=np.random.default_rng(1))
    coords, scores = assert_same(out, codec)
    assert 0.35 < (out[:, :17] > 0).mean() < 0.65              # about half the pixels vote
    err = np.linalg.norm(coords * codec.stride - kp, axis=-1)
    assert np.median(err) < 0.5 and scores.min() > 0.3           # and they decode near the joints


@pytest.mark.parametrize("size", SIZES)
def test_dense_grid_bit_identical(size):
    """Clean and noisy targets of joints over the whole crop (every border pixel, the corners,
    a band along the edges) and up to 6 px outside it (kept with label_outside)."""
    codec = HeatmapOffsetCodec(size, label_outside=True)
    w, h = size
    pts = crop_grid(size, step=5, band=6, band_step=2)
    outside = random_crop_keypoints(size, 1, 200, np.random.default_rng(2), margin=6.0)[0]
    pts = np.concatenate([pts, outside, [[-0.5, -0.5], [w - 0.5, h - 0.5], [-6, -6], [w + 5, h + 5]]])
    pad = (-len(pts)) % 17
    pts = np.concatenate([pts, pts[:pad]]).reshape(-1, 17, 2)
    rng = np.random.default_rng(3)
    for start in range(0, len(pts), 48):
        batch = pts[start:start + 48]
        clean = np.stack([codec.encode(kp, np.ones(17))["target"] for kp in batch])
        assert_same(clean, codec)
        assert_same(clean + rng.normal(0, 0.03, clean.shape).astype(np.float32), codec)


def test_no_voter_nan_and_inf_maps():
    codec = HeatmapOffsetCodec((192, 256))
    out, _ = trained_like_outputs(codec, 3, rng=np.random.default_rng(4))
    out[0, :17] = -np.abs(out[0, :17]) - 1e-3                 # no pixel votes
    out[1, 2, 5, 5] = np.nan                                   # NaN heatmap
    out[1, 17 + 4, 0, 0] = np.inf                              # inf x-offset
    out[1, 34 + 6, 63, 47] = -np.inf                           # -inf y-offset
    out[2, 9] = 0.0                                            # all zero: no voter either
    coords, scores = assert_same(out, codec)
    m = np.ceil(codec.radius) + 2
    np.testing.assert_array_equal(coords[0], np.full((17, 2), -m))  # cell 0 of the vote map
    assert (scores[0] == 0).all() and scores[2, 9] == 0
    assert np.isnan(scores[1, [2, 4, 6]]).all()
    assert np.isfinite(np.delete(scores[1], [2, 4, 6])).all()


def test_weak_maps_where_the_bound_prunes_nothing():
    """Flat, faint heatmaps (an invisible joint): every tile is a candidate."""
    codec = HeatmapOffsetCodec((288, 384))
    rng = np.random.default_rng(5)
    out = np.concatenate([np.full((4, 17, 96, 72), 1e-3, np.float32)
                          + rng.uniform(0, 1e-4, (4, 17, 96, 72)).astype(np.float32),
                          rng.normal(0, 2.0, (4, 34, 96, 72)).astype(np.float32)], axis=1)
    assert_same(out, codec)
    out[:, 17:] = 0.0                                          # votes stay on their pixel:
    assert_same(out, codec)                                     # a flat vote map, all ties


def test_exact_ties_take_the_first_maximum():
    """Two identical disks: equal vote maxima, the reference's np.argmax takes the first in
    raster order and so must the kernel (also when the first is far down-left)."""
    codec = HeatmapOffsetCodec((192, 256))
    for a, b in (([40.0, 30.0], [150.0, 200.0]), ([150.0, 30.0], [20.0, 31.0]),
                 ([100.0, 100.0], [100.0 + 4 * codec.stride[0], 100.0])):
        kp = np.tile(np.array(a), (17, 1))
        one = codec.encode(kp, np.ones(17))["target"]
        two = codec.encode(np.tile(np.array(b), (17, 1)), np.ones(17))["target"]
        both = np.concatenate([np.maximum(one[:17], two[:17]), one[17:] + two[17:]])[None]
        assert_same(both, codec)


@pytest.mark.parametrize("refine", [0, 2, 3])
def test_refinement_windows(refine):
    codec = HeatmapOffsetCodec((192, 256), hough_refine_radius=refine)
    out, _ = trained_like_outputs(codec, 4, rng=np.random.default_rng(6))
    assert_same(out, codec, refine=refine)


def test_sigmoid_heatmaps_and_the_codec_entry_point():
    codec = HeatmapOffsetCodec((192, 256), heatmap_activation="sigmoid")
    out, _ = trained_like_outputs(codec, 4, rng=np.random.default_rng(7))
    out[:, :17] = out[:, :17] * 12.0 - 4.0                     # logits
    probs = 1.0 / (1.0 + np.exp(-np.clip(out[:, :17], -60.0, 60.0)))
    fast_c, fast_s = assert_same(out, codec, heatmaps=probs)
    coords, scores = codec.decode(out)                          # what the predictor calls
    np.testing.assert_array_equal(coords, (fast_c * codec.stride).astype(np.float32))
    np.testing.assert_array_equal(scores, fast_s.astype(np.float32))


def test_flat_signature_and_empty_batch():
    codec = HeatmapOffsetCodec((192, 256))
    out, _ = trained_like_outputs(codec, 2, rng=np.random.default_rng(8))
    hm, ox, oy = _maps(out, 17)
    c1, s1 = hough_decode(hm, ox, oy, codec.radius)
    c2, s2 = hough_decode_reference(hm, ox, oy, codec.radius)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(s1, s2)
    coords, scores = codec.decode(np.zeros((0, 51, 64, 48), np.float32))
    assert coords.shape == (0, 17, 2) and scores.shape == (0, 17)


def _vote_at(hm, ox, oy, pixel, target, weight, radius, count=1):
    """``count`` pixels in the row of ``pixel`` voting (heatmap px) at ``target`` with ``weight``
    each (offsets in units of R)."""
    y, x0 = pixel
    for x in range(x0, x0 + count):
        hm[y, x] = weight
        ox[y, x] = (target[0] - x) / radius
        oy[y, x] = (target[1] - y) / radius


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("spill", ["none", "left", "up", "diagonal"])
def test_bounds_are_tight_but_never_prune_the_maximum(size, spill):
    """The maximum sits in a tile whose upper bound barely reaches the lower bound (ratio
    1.04): a heavy base cell whose votes split evenly over its four corners sets the lower
    bound (a quarter of its mass, 2.5) and a lighter pile (2.6 in one cell) is the maximum.
    With ``spill`` the pile's voters have their base cell in the tile left of / above / above-
    left of the maximum's tile (the vote lands 0.99 cells on), so the bound must count the
    neighbouring tiles. A kernel that pruned with a bound 1.5x tighter fails every case."""
    codec = HeatmapOffsetCodec(size)
    w, h = codec.heatmap_size_wh
    r = codec.radius
    hm = np.full((17, h, w), -0.1, np.float32)
    ox = np.zeros((17, h, w), np.float32)
    oy = np.zeros((17, h, w), np.float32)
    rng = np.random.default_rng(9)
    m = np.ceil(r) + 2
    for j in range(17):
        # heavy pile split evenly: votes at a cell centre + (0.5, 0.5)
        hx, hy = rng.integers(4, w - 4), rng.integers(4, h // 2 - 2)
        _vote_at(hm[j], ox[j], oy[j], (hy, 2), (hx + 0.5, hy + 0.5), 1.0, r, count=10)
        # the maximum: 2.6 of vote mass in one cell, its base possibly in a neighbouring tile
        tx, ty = rng.integers(4, w - 4), rng.integers(h // 2 + 2, h - 4)
        cx = tx - ((tx + m + 1) % 4)         # first column / row of its 4x4 tile (ring coords)
        cy = ty - ((ty + m + 1) % 4)
        if spill in ("left", "diagonal"):
            tx = cx - 0.01                    # base in the tile to the left, 0.99 cell on
        if spill in ("up", "diagonal"):
            ty = cy - 0.01
        share = 0.99 if spill in ("left", "up") else (0.99 * 0.99 if spill == "diagonal" else 1.0)
        _vote_at(hm[j], ox[j], oy[j], (h - 2, 3), (tx, ty), 1.3 / share, r, count=2)
    out = np.concatenate([hm, ox, oy])[None]
    coords, scores = assert_same(out, codec)
    # the pile wins, not the heavy base cell (the test would not test the bound otherwise)
    assert (coords[0, :, 1] > h // 2).all()


# ---------------------------------------------------------------- the flip test
def _flip_pair(codec, seed):
    """Outputs of crops and of their mirror images, as a trained net gives them (the mirrored
    output is the mirror image of the other plus noise)."""
    raw, _ = trained_like_outputs(codec, 4, rng=np.random.default_rng(seed))
    flipped = codec.flip_back(raw) + np.random.default_rng(seed + 1).normal(
        0, 0.03, raw.shape).astype(np.float32)
    return raw, flipped


@pytest.mark.parametrize("udp", [True, False])
def test_flip_maps_fusion_in_the_kernel_equals_the_map_average(udp):
    """decode_flip('maps') forms the average per map inside the kernel: bit-identical to
    decoding (raw + flip_back(flipped)) * 0.5, the official flip test."""
    codec = HeatmapOffsetCodec((192, 256), udp=udp)
    raw, flipped = _flip_pair(codec, 10)
    flipped[1, 5, 3, 3] = np.nan                                  # one broken map
    fused = codec.decode_flip(raw, flipped, "maps")
    plain = codec.decode((raw + codec.flip_back(flipped)) * np.float32(0.5))
    np.testing.assert_array_equal(fused[0], plain[0])
    np.testing.assert_array_equal(fused[1], plain[1])
    assert np.isnan(fused[1][1]).sum() >= 1


def test_flip_votes_fusion_equals_the_reference():
    """decode_flip('votes'): both outputs vote (half weight each) into one map: bit-identical to
    the reference with the flipped-back maps as a second voter set."""
    codec = HeatmapOffsetCodec((288, 384))
    raw, flipped = _flip_pair(codec, 20)
    coords, scores = codec.decode_flip(raw, flipped, "votes")
    back = codec.flip_back(flipped)
    ref_c, ref_s = hough_decode_reference(*_maps(raw, 17), codec.radius, second=_maps(back, 17),
                                          wscale=0.5)
    np.testing.assert_array_equal(coords, (ref_c.reshape(4, 17, 2) * codec.stride).astype(np.float32))
    np.testing.assert_array_equal(scores, ref_s.reshape(4, 17).astype(np.float32))
    # on perfect consistent outputs the three fusions agree with the truth
    kp = random_crop_keypoints(codec.input_size_wh, 1, 17, np.random.default_rng(3))[0]
    target = codec.encode(kp, np.ones(17))["target"][None]
    mirror = codec.flip_back(target)
    for fusion in ("maps", "votes", "coords"):
        c, s = codec.decode_flip(target, mirror, fusion)
        np.testing.assert_allclose(c[0], kp, atol=0.05)
        assert np.median(s) > 0.9                                # (disks cut by the border score less)


def test_flip_coords_fusion_and_the_codecs_without_votes():
    from gluonpose.codecs import GaussianHeatmapCodec
    from gluonpose.errors import ConfigError
    codec = HeatmapOffsetCodec((192, 256))
    raw, flipped = _flip_pair(codec, 30)
    c, s = codec.decode_flip(raw, flipped, "coords")
    c1, s1 = codec.decode(raw)
    c2, s2 = codec.decode(codec.flip_back(flipped))
    np.testing.assert_allclose(c, (c1.astype(np.float64) + c2) / 2, rtol=0, atol=1e-4)
    np.testing.assert_allclose(s, (s1.astype(np.float64) + s2) / 2, rtol=1e-6)
    for other in (GaussianHeatmapCodec((192, 256)), HeatmapOffsetCodec((192, 256), decoder="argmax")):
        assert not other.supports_flip_fusion("votes")
        with pytest.raises(ConfigError, match="votes"):
            other.decode_flip(np.zeros((1, other.num_channels, 64, 48), np.float32),
                              np.zeros((1, other.num_channels, 64, 48), np.float32), "votes")


def test_first_use_from_many_threads_builds_the_kernels_once():
    """The evaluation pipeline decodes on several threads; the first decodes of a process used to
    race building the compiled kernels ("A jit decorator was called on an already jitted
    function", seen in the COCO-size ensemble benchmark). A fresh interpreter, 8 threads at once."""
    import subprocess
    import sys
    code = ("import threading\n"
            "from gluonpose.codecs import hough\n"
            "errors = []\n"
            "def go():\n"
            "    try:\n"
            "        hough._kernel('vote'); hough._kernel('fused')\n"
            "    except Exception as err:\n"
            "        errors.append(repr(err))\n"
            "threads = [threading.Thread(target=go) for _ in range(8)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print('errors:', errors)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "errors: []", res.stdout
