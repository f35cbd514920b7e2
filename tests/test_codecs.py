"""Codecs: official reference arrays, encode -> decode round trips on real COCO labels and on a
dense grid over the whole crop (corners, edges, joints outside the crop), flip-back.

Measured round-trip errors (Euclidean, input-crop pixels) on the 12 labelled people of
``samples/coco/test_coco.json`` cropped with the geometry (GT box x 1.25), the joints whose target
weight is > 0 (181 for the Gaussian codecs, some outside the crop; heatmap+offset gives joints
outside the crop weight 0):

=============================================  ==========================  ==========================
codec                                           256x192 (sigma 2) mean/max  384x288 (sigma 3) mean/max
=============================================  ==========================  ==========================
HeatmapOffsetCodec, UDP, argmax (blur 15 | 23)  0.0000 / 0.0000 (<1e-4)     0.0000 / 0.0000
HeatmapOffsetCodec, UDP, Hough voting           0.0000 / 0.0000             0.0000 / 0.0000
HeatmapOffsetCodec, official stride             0.0000 / 0.0000             0.0000 / 0.0000
Gaussian official (int centre, quarter shift)   1.58 / 2.73                 1.52 / 2.75
Gaussian unbiased centre + DARK                 0.012 / 1.74 (border)       0.008 / 1.34 (border)
Gaussian UDP + DARK                             0.004 / 0.63 (border)       0.003 / 0.51 (border)
Gaussian UDP + quarter shift                    0.76 / 1.34                 0.78 / 1.32
=============================================  ==========================  ==========================

The DARK maxima come from joints within ~2 px of the crop's bottom border (DARK's zero-padded blur
pulls them inwards); away from the border DARK is below 0.05 px.
"""
import json
import os

import numpy as np
import pytest

from gluonpose.codecs import (GaussianHeatmapCodec, HeatmapOffsetCodec, MultiStageTargets,
                              build_codec, build_stage_codecs, layout)
from gluonpose.codecs.grid import grid_errors, round_trip
from gluonpose.data import geometry as geo
from gluonpose.keypoints import swap_flip_pairs

SIZES = [((192, 256), 2.0), ((288, 384), 3.0)]


@pytest.fixture(scope="module")
def reference(data_dir):
    return np.load(os.path.join(data_dir, "reference", "official_postprocess.npz"))


@pytest.fixture(scope="module")
def coco_people(data_dir):
    """[(bbox, keypoints (17, 3))] of the labelled people of the real COCO sample file."""
    with open(os.path.join(data_dir, "samples", "coco", "test_coco.json")) as f:
        anns = json.load(f)["annotations"]
    people = [(np.array(a["bbox"], float), np.array(a["keypoints"], float).reshape(17, 3))
              for a in anns if a["num_keypoints"] > 0]
    assert len(people) >= 10
    return people


def crops(people, input_size_wh, udp):
    """Keypoints (K, 2) in crop pixels and weights (K,) for every person."""
    out = []
    for bbox, kp in people:
        c, s = geo.box_to_center_scale(bbox, input_size_wh)
        mat = geo.get_affine_transform(c, s, 0.0, input_size_wh, udp=udp)
        out.append((geo.affine_points(kp[:, :2], mat), (kp[:, 2] > 0).astype(np.float32)))
    return out


def round_trip_errors(codec, people, inside_only=False):
    items = crops(people, codec.input_size_wh, codec.udp)
    enc = [codec.encode(kp, w) for kp, w in items]
    coords, scores = codec.decode(np.stack([e["target"] for e in enc]))
    assert coords.shape == (len(items), 17, 2) and scores.shape == (len(items), 17)
    errs = []
    w_in, h_in = codec.input_size_wh
    for (kp, w), e, c in zip(items, enc, coords):
        m = e["target_weight"] > 0
        if inside_only:
            m &= (kp[:, 0] >= 0) & (kp[:, 1] >= 0) & (kp[:, 0] <= w_in - 1) & (kp[:, 1] <= h_in - 1)
        errs.append(np.abs(c[m] - kp[m]))
    errs = np.concatenate(errs)
    assert len(errs) > 100
    return np.linalg.norm(errs, axis=1), errs


# ---------------------------------------------------------------- official reference arrays
def _to_image(coords, reference):
    return np.stack([geo.crop_to_image(coords[i], reference["center"][i],
                                       geo.scale_from_pixel_std(reference["scale"][i]), 0.0,
                                       (192, 256)) for i in range(len(coords))])


@pytest.mark.parametrize("mode,key", [("quarter", "preds_post"), ("argmax", "preds_raw")])
def test_gaussian_decode_matches_official(reference, mode, key):
    codec = GaussianHeatmapCodec((192, 256), sigma=2, decoder=mode)
    coords, scores = codec.decode(reference["heatmaps"])
    # float32 storage of ~500 px coordinates: 1 ulp is 3e-5
    np.testing.assert_allclose(_to_image(coords, reference), reference[key], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(scores, reference["maxvals"][..., 0])


def test_gaussian_flip_back_matches_official(reference):
    plain = GaussianHeatmapCodec((192, 256), shift_flip=False).flip_back(reference["heatmaps"])
    np.testing.assert_array_equal(plain, reference["flip_back"])
    shifted = GaussianHeatmapCodec((192, 256)).flip_back(reference["heatmaps"])   # SHIFT_HEATMAP
    np.testing.assert_array_equal(shifted[..., 1:], reference["flip_back"][..., :-1])
    np.testing.assert_array_equal(shifted[..., 0], reference["flip_back"][..., 0])


def test_gaussian_encode_hand_computed():
    codec = GaussianHeatmapCodec((192, 256), sigma=2)
    kp = np.zeros((17, 2))
    kp[0] = [10.3 * 4, 20.6 * 4]            # official centre int(10.3 + .5), int(20.6 + .5) = 10, 21
    kp[1] = [-100.0, 50.0]                  # window entirely left of the map -> weight 0
    w = np.ones(17)
    w[2] = 0.0
    out = codec.encode(kp, w)
    t, tw = out["target"], out["target_weight"]
    assert t.shape == (17, 64, 48) and t.dtype == np.float32
    assert t[0, 21, 10] == 1.0 and np.unravel_index(t[0].argmax(), t[0].shape) == (21, 10)
    np.testing.assert_allclose(t[0, 21, 16], np.exp(-36 / 8.0), rtol=1e-6)   # edge of 6 sigma + 1
    assert t[0, 21, 17] == 0.0 and t[0, 14, 10] == 0.0
    assert tw[1] == 0 and not t[1].any()
    assert tw[2] == 0 and not t[2].any()
    assert tw[3] == 1.0 and t[3, 0, 0] == 1.0        # joint at (0, 0)


# ---------------------------------------------------------------- round trips on real labels
@pytest.mark.parametrize("size,sigma", SIZES)
@pytest.mark.parametrize("mode", ["argmax", "hough"])
def test_offset_round_trip_real_coco(coco_people, size, sigma, mode):
    for udp in (True, False):
        codec = HeatmapOffsetCodec(size, decoder=mode, udp=udp)
        dist, _ = round_trip_errors(codec, coco_people)
        assert dist.max() < 0.05, (udp, dist.max())


# ---------------------------------------------------------------- dense grid over the whole crop
#: (input size, interior step, corner-block step): every 2nd / 6th / 8th pixel of the crop, every
#: 1st / 2nd / 3rd pixel of the four corner blocks (as wide as the decoders' reach,
#: (blur / 2 + ceil(R) + 2) heatmap px: 52 / 76 / 96 input px) and every pixel of the four
#: borders. ``scripts/benchmark.py --codec-grid`` runs every pixel of the three crops
#: (docs/benchmarks.md: 0 positions above 0.05 px, max 7e-7 px).
GRIDS = [((192, 256), 2, 1), ((288, 384), 6, 2), ((384, 512), 8, 3)]


@pytest.mark.parametrize("size,step,band_step", GRIDS)
@pytest.mark.parametrize("mode", ["hough", "argmax"])
def test_offset_dense_grid_round_trip(size, step, band_step, mode):
    """decode(encode(p)) == p within 0.05 px at every grid position, sub-pixel offsets cycled
    (-3/8, -1/8, 1/8, 3/8 px), the borders and the four corners exact, udp on and off."""
    for udp in (True, False):
        codec = HeatmapOffsetCodec(size, decoder=mode, udp=udp)
        band = int(codec.stride[0] * (codec.blur_kernel // 2 + np.ceil(codec.radius) + 2))
        points, err, scores, weight = grid_errors(codec, step=step, band=band, band_step=band_step)
        w, h = size
        for corner in ([0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]):
            assert (points == corner).all(axis=1).any()
        assert (weight == 1).all()
        worst = points[np.argmax(err)]
        assert err.max() < 0.05, (udp, err.max(), worst)
        assert scores.min() > 0.2                  # every joint decodes as a confident one


def test_argmax_no_longer_pulled_into_the_corner():
    """The case of the issue: a joint 13 px from the corner of a 256x192 crop. With OpenCV's mirror
    padding the blurred maximum sits on the corner pixel, outside the disk (18.4 px off); the
    zero-padded blur keeps it inside."""
    from gluonpose.codecs.common import argmax_2d, blur_maps
    codec = HeatmapOffsetCodec((192, 256), decoder="argmax")
    kp = np.full((17, 2), 96.0)
    kp[0] = [13.0, 13.0]
    target = codec.encode(kp, np.ones(17))["target"][None]
    mirrored, _ = argmax_2d(blur_maps(target[:, :1], codec.blur_kernel, mode="mirror"))
    assert tuple(mirrored[0, 0]) == (0, 0)        # the failure the zero padding removes
    coords, _ = codec.decode(target)
    np.testing.assert_allclose(coords[0, 0], kp[0], atol=1e-3)


@pytest.mark.parametrize("size", [g[0] for g in GRIDS])
def test_offset_joints_outside_the_crop(size):
    """Joints 1-8 px outside the crop (every side, the corners, sub-pixel steps): weight 0, an
    empty target, and a decode score of 0, never a confident position; joints on the crop's
    outer pixel edge (0.5 px out) are still labelled and exact."""
    w, h = size
    d = np.arange(1.0, 8.01, 0.5)
    t = np.linspace(-8.0, max(w, h) + 8.0, 23)
    pts = np.concatenate([np.stack(v, axis=1) for dd in d for v in (
        (np.full_like(t, -dd), t), (np.full_like(t, w - 1 + dd), t),
        (t, np.full_like(t, -dd)), (t, np.full_like(t, h - 1 + dd)))])
    for mode in ("hough", "argmax"):
        for udp in (True, False):
            codec = HeatmapOffsetCodec(size, decoder=mode, udp=udp)
            coords, scores, weight = round_trip(codec, pts)
            assert (weight == 0).all()
            assert (scores == 0).all()
            edge = np.array([[-0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h / 2.0], [w / 2.0, h - 0.5]])
            coords, scores, weight = round_trip(codec, edge)
            assert (weight == 1).all() and scores.min() > 0.2
            np.testing.assert_allclose(coords, edge, atol=0.05)
    kept = HeatmapOffsetCodec(size, label_outside=True)
    coords, scores, weight = round_trip(kept, [[-4.0, h / 2.0], [w + 3.0, 10.0]])
    assert (weight == 1).all()
    np.testing.assert_allclose(coords, [[-4.0, h / 2.0], [w + 3.0, 10.0]], atol=0.05)


def test_hough_decode_flags_non_finite_maps():
    codec = HeatmapOffsetCodec((192, 256))
    target = codec.encode(np.full((17, 2), 100.0), np.ones(17))["target"][None]
    target[0, 3, 10, 10] = np.nan
    target[0, 17 + 5, 0, 0] = np.inf
    _, scores = codec.decode(target)
    assert np.isnan(scores[0, 3]) and np.isnan(scores[0, 5])
    assert np.isfinite(np.delete(scores[0], [3, 5])).all()


def test_default_decoder_is_hough():
    assert HeatmapOffsetCodec().decoder == "hough"
    assert build_codec("heatmap_offset").decoder == "hough"


@pytest.mark.parametrize("size,sigma", SIZES)
def test_gaussian_round_trips_real_coco(coco_people, size, sigma):
    official = GaussianHeatmapCodec(size, sigma=sigma)
    dist, per_axis = round_trip_errors(official, coco_people, inside_only=True)
    assert per_axis.max() <= 0.5 * 4 + 1e-3       # integer centre: at most half a heatmap pixel
    assert 0.8 < dist.mean() < 1.7
    dark = GaussianHeatmapCodec(size, sigma=sigma, unbiased=True, decoder="dark")
    dist_dark, _ = round_trip_errors(dark, coco_people, inside_only=True)
    udp = GaussianHeatmapCodec(size, sigma=sigma, udp=True)
    dist_udp, _ = round_trip_errors(udp, coco_people, inside_only=True)
    for d in (dist_dark, dist_udp):
        assert d.mean() < 0.05 and np.median(d) < 0.01 and d.max() < 2.0
        assert d.mean() < dist.mean() / 10


def test_offset_decoders_tolerate_noise(coco_people):
    """i.i.d. noise (0.05) on every channel: Hough voting averages the offsets of the whole disk
    (median 0.12 px measured), the plain argmax reads one pixel's offset (0.84 px)."""
    rng = np.random.default_rng(0)
    medians = {}
    for mode in ("argmax", "hough"):
        codec = HeatmapOffsetCodec((192, 256), decoder=mode)
        items = crops(coco_people, codec.input_size_wh, True)
        enc = [codec.encode(kp, w) for kp, w in items]
        target = np.stack([e["target"] for e in enc])
        noisy = target + rng.normal(0, 0.05, target.shape).astype(np.float32)
        coords, scores = codec.decode(noisy)
        errs = [np.linalg.norm(c - kp, axis=1)[e["target_weight"] > 0]
                for (kp, _), e, c in zip(items, enc, coords)]
        medians[mode] = np.median(np.concatenate(errs))
        assert 0.8 < np.median(scores) < 1.2
    assert medians["argmax"] < 1.2 and medians["hough"] < 0.3
    assert medians["hough"] < medians["argmax"] / 3


# ---------------------------------------------------------------- flip back
def _flipped(kp, w_in):
    return swap_flip_pairs(np.stack([w_in - 1 - kp[:, 0], kp[:, 1]], axis=1))


def test_offset_flip_back_udp_is_exact(coco_people):
    codec = HeatmapOffsetCodec((192, 256))
    for kp, w in crops(coco_people, codec.input_size_wh, True):
        direct = codec.encode(kp, w)["target"]
        fw = swap_flip_pairs(w)
        back = codec.flip_back(codec.encode(_flipped(kp, 192), fw)["target"][None])[0]
        np.testing.assert_allclose(back, direct, atol=1e-5)


def test_offset_flip_back_official_stride_decodes_exactly(coco_people):
    codec = HeatmapOffsetCodec((192, 256), udp=False)
    for kp, w in crops(coco_people, codec.input_size_wh, False):
        enc = codec.encode(_flipped(kp, 192), swap_flip_pairs(w))
        coords, _ = codec.decode(codec.flip_back(enc["target"][None]))
        m = w > 0
        np.testing.assert_allclose(coords[0][m], kp[m], atol=1e-3)


def test_gaussian_udp_flip_back_is_exact(coco_people):
    codec = GaussianHeatmapCodec((192, 256), udp=True)
    assert not codec.shift_flip
    for kp, w in crops(coco_people, codec.input_size_wh, True):
        direct = codec.encode(kp, w)["target"]
        back = codec.flip_back(codec.encode(_flipped(kp, 192), swap_flip_pairs(w))["target"][None])
        np.testing.assert_allclose(back[0], direct, atol=1e-5)


# ---------------------------------------------------------------- multi-stage and factory
def test_multistage_targets_coarse_to_fine():
    codec = build_codec("gaussian", stage_sigmas=(3.0, 2.0), input_size_wh=(192, 256))
    assert isinstance(codec, MultiStageTargets) and codec.num_stages == 2
    kp = np.tile([[96.0, 128.0]], (17, 1))
    out = codec.encode(kp, np.ones(17))
    assert out["target"].shape == (2, 17, 64, 48) and out["target_weight"].shape == (2, 17)
    assert out["target"][0].sum() > out["target"][1].sum() * 2   # sigma^2 ratio 2.25
    coords, _ = codec.decode(out["target"][1][None])
    np.testing.assert_allclose(coords[0], kp, atol=2.0)
    radii = build_stage_codecs("heatmap_offset", stage_radii=(5.0, 3.5))
    ms = MultiStageTargets(radii)
    t = ms.encode(kp, np.ones(17))["target"]
    assert t.shape == (2, 51, 64, 48) and t[0, :17].sum() > t[1, :17].sum()
    assert ms.layout == layout.HEATMAP_OFFSET and ms.last.radius == 3.5


def test_factory_errors():
    with pytest.raises(ValueError, match="gaussian, heatmap_offset"):
        build_codec("msra")
    with pytest.raises(ValueError, match="stage_sigmas"):
        build_codec("gaussian", stage_radii=(5.0, 3.5))
    with pytest.raises(ValueError, match="differs"):
        MultiStageTargets([GaussianHeatmapCodec((192, 256)), GaussianHeatmapCodec((288, 384))])
    with pytest.raises(ValueError, match="decode"):
        GaussianHeatmapCodec(decoder="soft")


def test_interface_and_bad_inputs():
    for codec in (build_codec("gaussian"), build_codec("heatmap_offset")):
        assert codec.layout in layout.LAYOUTS
        assert layout.num_channels(codec.layout, codec.num_joints) == codec.num_channels
        with pytest.raises(ValueError, match="expects outputs"):
            codec.decode(np.zeros((2, 5, 64, 48), np.float32))
        with pytest.raises(ValueError, match="keypoints"):
            codec.encode(np.zeros((16, 2)), np.ones(16))
        kp = np.full((17, 2), 50.0)
        kp[4] = np.nan                                   # NaN label never becomes a target
        out = codec.encode(kp, np.ones(17))
        assert out["target_weight"][4] == 0 and np.isfinite(out["target"]).all()


def test_every_codec_implements_the_one_interface():
    """Every codec type and MultiStageTargets are Codecs with the members their users rely on."""
    from gluonpose.codecs import Codec, codec_types
    codecs = [build_codec(t, input_size_wh=(96, 128)) for t in sorted(codec_types())]
    codecs += [build_codec("gaussian", stage_sigmas=(3.0, 2.0), udp=True),
               build_codec("heatmap_offset", stage_radii=(5.0, 3.5), heatmap_activation="sigmoid")]
    for codec in codecs:
        assert isinstance(codec, Codec)
        last = codec.stages[-1]
        assert codec.last is last and codec.num_stages == len(codec.stages)
        for name in ("layout", "num_joints", "num_channels", "input_size_wh", "heatmap_size_wh",
                     "udp", "flip_pairs", "heatmap_activation"):
            assert getattr(codec, name) == getattr(last, name), name
        assert codec.num_channels == layout.num_channels(codec.layout, codec.num_joints)
        assert isinstance(codec.udp, bool) and codec.heatmap_activation in (None, "sigmoid")
        w, h = codec.heatmap_size_wh
        assert codec.decode(np.zeros((1, codec.num_channels, h, w), np.float32))[0].shape == (1, 17, 2)
    assert codecs[-2].udp and codecs[-1].heatmap_activation == "sigmoid"

    class Incomplete(Codec):                 # no decode / flip_back / num_channels
        def encode(self, keypoints, weights):
            return {}
    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_multistage_stages_must_agree():
    """Stages that would crop or decode differently (udp, activation) are refused, as are non-codecs."""
    with pytest.raises(ValueError, match="udp"):
        MultiStageTargets([GaussianHeatmapCodec((192, 256), udp=True), GaussianHeatmapCodec((192, 256))])
    with pytest.raises(ValueError, match="activation"):
        MultiStageTargets([HeatmapOffsetCodec(heatmap_activation="sigmoid"), HeatmapOffsetCodec()])
    with pytest.raises(TypeError, match="not a gluonpose"):
        MultiStageTargets([object()])


def test_codec_params_are_the_constructor_arguments():
    """Every key ``codec_params`` lists builds (with its default value), anything else is a
    ConfigError naming the valid keys before any codec is built."""
    from gluonpose.codecs.builder import build_codec_from_config, check_codec_params, codec_params
    from gluonpose.errors import ConfigError
    for kind, stage_key, stages in (("gaussian", "stage_sigmas", [3.0, 2.0]),
                                    ("heatmap_offset", "stage_radii", [5.0, 3.5])):
        params = codec_params(kind)
        assert stage_key in params and {"udp", "flip_pairs"} <= set(params)
        assert not {"input_size_wh", "heatmap_size_wh", "num_joints"} & set(params)
        section = {"type": kind, "input_size": [96, 128], "heatmap_size": [24, 32]}
        single = dict(params, **{stage_key: None})
        codec = build_codec_from_config(dict(section, params=single), 17)
        assert codec.num_stages == 1 and codec.input_size_wh == (96, 128)
        multi = build_codec_from_config(dict(section, params={stage_key: stages}), 17)
        assert multi.num_stages == 2 and multi.heatmap_size_wh == (24, 32)
        other = "stage_radii" if stage_key == "stage_sigmas" else "stage_sigmas"
        for bad in ("radus", other):
            with pytest.raises(ConfigError, match="'codec.params.%s'.*valid keys of codec.params: .*%s"
                               % (bad, stage_key)):
                check_codec_params(kind, {bad: 3})


def test_sigmoid_heatmaps_decode_like_probabilities(coco_people):
    """Logit heatmaps (BCE training) decode to the same keypoints once the codec applies the sigmoid."""
    plain = HeatmapOffsetCodec((192, 256))
    logits = HeatmapOffsetCodec((192, 256), heatmap_activation="sigmoid")
    items = crops(coco_people, plain.input_size_wh, True)
    target = np.stack([plain.encode(kp, w)["target"] for kp, w in items])
    as_logits = target.copy()
    p = np.clip(target[:, :17], 0.02, 0.98)
    as_logits[:, :17] = np.log(p / (1 - p))
    want, want_scores = plain.decode(np.concatenate([p, target[:, 17:]], axis=1))
    got, got_scores = logits.decode(as_logits)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-4)
    with pytest.raises(ValueError, match="heatmap_activation"):
        HeatmapOffsetCodec((192, 256), heatmap_activation="softmax")


def test_default_blur_scales_with_the_heatmap():
    from gluonpose.codecs.offset import default_blur_kernel
    assert default_blur_kernel((48, 64)) == 15          # UDP-Pose's 15x15 at 64x48
    assert default_blur_kernel((72, 96)) == 23
    assert default_blur_kernel((24, 32)) == 9
    assert default_blur_kernel((4, 4)) == 1
    assert HeatmapOffsetCodec((96, 128)).blur_kernel == 9
    assert HeatmapOffsetCodec((96, 128), blur_kernel=0).blur_kernel == 0


@pytest.mark.parametrize("size,udp,label_outside", [((288, 384), True, False), ((288, 384), False, False),
                                                    ((288, 384), True, True), ((192, 256), True, False)])
def test_offset_windowed_encode_equals_dense(coco_people, size, udp, label_outside):
    """The encoder computes only a window around each joint: its targets equal the whole-map reference
    ``encode_dense`` (values; the zeros outside the disks are +0.0 there, -0.0 or +0.0 in the reference) on the
    real people and on a grid of keypoints over the crop, its edges and corners and a band outside it."""
    codec = HeatmapOffsetCodec(size, udp=udp, label_outside=label_outside)
    w, h = size
    reach = (codec.radius + 2) * codec.stride                 # disks still touching the map
    xs = np.concatenate([np.arange(-reach[0], w + reach[0], 3.7), [-0.5, 0.0, w - 1.0, w - 0.5]])
    ys = np.concatenate([np.arange(-reach[1], h + reach[1], 4.3), [-0.5, 0.0, h - 1.0, h - 0.5]])
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    grid = np.concatenate([grid, np.zeros((-len(grid) % 17, 2))])
    cases = crops(coco_people, size, udp)
    cases += [(grid[i:i + 17], np.ones(17, np.float32)) for i in range(0, len(grid), 17)]
    cases.append((grid[:17], np.zeros(17, np.float32)))      # weights 0: no target at all
    drawn = 0
    for kp, wt in cases:
        fast, dense = codec.encode(kp, wt), codec.encode_dense(kp, wt)
        assert fast["target"].dtype == np.float32 and fast["target"].shape == dense["target"].shape
        assert np.array_equal(fast["target"], dense["target"])
        assert np.array_equal(fast["target_weight"], dense["target_weight"])
        drawn += int(fast["target_weight"].sum())
    assert drawn > len(grid) // 2                             # most grid joints did get a disk


@pytest.mark.parametrize("make", [
    lambda: GaussianHeatmapCodec((192, 256)), lambda: GaussianHeatmapCodec((192, 256), udp=True),
    lambda: HeatmapOffsetCodec((192, 256)), lambda: HeatmapOffsetCodec((192, 256), udp=False),
    lambda: MultiStageTargets([HeatmapOffsetCodec((192, 256), radius=5.0),
                               HeatmapOffsetCodec((192, 256))])])
def test_compiled_flip_back_and_average_equal_numpy(make):
    """The one-pass flip (codec.flip_spec) is bit-identical to each codec's numpy flip_back and
    to the flip test's average of the maps, on random maps with every value different."""
    from gluonpose.codecs.flipfuse import flip_average, flip_back
    codec = make()
    rng = np.random.default_rng(4)
    shape = (3, codec.num_channels, 64, 48)
    raw, flipped = (rng.normal(0, 1, shape).astype(np.float32) for _ in range(2))
    back = codec.flip_back(flipped)
    np.testing.assert_array_equal(flip_back(codec.flip_spec(), flipped), back)
    np.testing.assert_array_equal(flip_average(codec.flip_spec(), raw, flipped),
                                  (raw + back) * np.float32(0.5))
    inplace = raw.copy()
    flip_average(codec.flip_spec(), inplace, flipped, out=inplace)
    np.testing.assert_array_equal(inplace, (raw + back) * np.float32(0.5))
