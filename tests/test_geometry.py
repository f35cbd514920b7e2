"""Top-down geometry against the official HRNet crop matrices and hand-computed cases."""
import os

import numpy as np
import pytest

from gluonpose.data import geometry as geo


def test_official_affine_matrices_match_reference(data_dir):
    ref = np.load(os.path.join(data_dir, "reference", "official_postprocess.npz"))
    specs, mats = ref["affine_specs"], ref["affine_mats"]
    assert len(specs) >= 10
    for spec, want in zip(specs, mats):
        cx, cy, sx, sy, rot, w, h, inv = spec
        got = geo.get_affine_transform([cx, cy], geo.scale_from_pixel_std([sx, sy]), rot, (w, h),
                                       inv=bool(inv))
        # bit-identical: float32 points and cv2.getAffineTransform, as the official code (a
        # matrix 1e-14 off can already move a warpAffine pixel, which rounds to 1/32 px)
        np.testing.assert_array_equal(got, want, err_msg=str(spec))


def test_official_box_to_center_scale_rounds_as_official_xywh2cs():
    """The official ``_xywh2cs`` keeps the centre in float32 and the scale in float32 units of
    200 px (padded by 1.25 in float32); the crop then uses float32 ``scale * 200``. Written out
    here on detector-like boxes with many decimals; UDP keeps the exact float64 values."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        x, y = rng.uniform(-20, 600, 2)
        w, h = rng.uniform(1, 500, 2)
        size = [(192, 256), (288, 384), (384, 512)][rng.integers(3)]
        c, s = geo.box_to_center_scale([x, y, w, h], size)
        aspect = size[0] / size[1]
        ww, hh = (w, w / aspect) if w > aspect * h else (h * aspect, h)
        want_c = np.array([x + w * 0.5, y + h * 0.5], np.float32)
        want_std = np.array([ww / 200.0, hh / 200.0], np.float32) * np.float32(1.25)
        np.testing.assert_array_equal(c, want_c)
        np.testing.assert_array_equal(s, want_std * np.float32(200.0))
        c64, s64 = geo.box_to_center_scale([x, y, w, h], size, udp=True)
        np.testing.assert_allclose(c64, [x + w / 2, y + h / 2], rtol=0, atol=1e-12)
        np.testing.assert_allclose(s64, [ww * 1.25, hh * 1.25], rtol=1e-15)
        assert np.abs(c - c64).max() < 1e-4 and np.abs(s - s64).max() < 1e-3


def test_box_to_center_scale_hand_computed():
    # tall box: width grows to h * 0.75, then x 1.25
    c, s = geo.box_to_center_scale([10, 20, 30, 100], (192, 256))
    np.testing.assert_allclose(c, [25.0, 70.0])
    np.testing.assert_allclose(s, [75.0 * 1.25, 100.0 * 1.25])
    # wide box: height grows to w / 0.75
    c, s = geo.box_to_center_scale([0, 0, 150, 60], (288, 384), padding=1.0)
    np.testing.assert_allclose(c, [75.0, 30.0])
    np.testing.assert_allclose(s, [150.0, 200.0])


def test_pixel_std_conversion():
    np.testing.assert_allclose(geo.scale_to_pixel_std([200.0, 350.0]), [1.0, 1.75])
    np.testing.assert_allclose(geo.scale_from_pixel_std([1.0, 1.75]), [200.0, 350.0])
    x = np.array([123.4, 567.8])
    np.testing.assert_allclose(geo.scale_from_pixel_std(geo.scale_to_pixel_std(x)), x)


@pytest.mark.parametrize("udp", [False, True])
def test_crop_maps_box_edges_to_crop_edges(udp):
    center, scale = np.array([300.0, 200.0]), np.array([150.0, 200.0])
    mat = geo.get_affine_transform(center, scale, 0.0, (192, 256), udp=udp)
    left_top = geo.affine_points(center - scale / 2, mat)
    right_bottom = geo.affine_points(center + scale / 2, mat)
    mid = geo.affine_points(center, mat)
    if udp:   # unit length: first and last pixel centres
        np.testing.assert_allclose(left_top, [0, 0], atol=1e-9)
        np.testing.assert_allclose(right_bottom, [191, 255], atol=1e-9)
        np.testing.assert_allclose(mid, [95.5, 127.5], atol=1e-9)
    else:     # official: sizes in pixels, centre at size / 2
        np.testing.assert_allclose(left_top, [0, 0], atol=1e-4)
        np.testing.assert_allclose(right_bottom, [192, 256], atol=1e-4)
        np.testing.assert_allclose(mid, [96, 128], atol=1e-4)


def test_rotation_sign_is_the_same_in_both_conventions():
    center, scale = np.array([300.0, 200.0]), np.array([150.0, 200.0])
    above = center + [0.0, -50.0]
    for rot in (30.0, -70.0):
        a = geo.affine_points(above, geo.get_affine_transform(center, scale, rot, (192, 256)))
        b = geo.affine_points(above, geo.get_affine_transform(center, scale, rot, (192, 256),
                                                              udp=True))
        assert np.linalg.norm(a - b) < 1.0
    # hand computed: official linear part k [[cos, sin], [-sin, cos]], k = 192 / 150
    a = geo.affine_points(above, geo.get_affine_transform(center, scale, 90.0, (192, 256)))
    np.testing.assert_allclose(a, [96 - 50 * 192 / 150.0, 128], atol=1e-3)


@pytest.mark.parametrize("udp", [False, True])
def test_forward_then_inverse_is_identity(udp):
    rng = np.random.default_rng(0)
    for _ in range(50):
        center = rng.uniform(0, 640, 2)
        scale = rng.uniform(20, 600, 2)
        rot = rng.uniform(-180, 180)
        size = [(192, 256), (288, 384), (48, 64)][rng.integers(3)]
        pts = rng.uniform(-100, 700, (17, 2))
        fwd = geo.get_affine_transform(center, scale, rot, size, udp=udp)
        back = geo.crop_to_image(geo.affine_points(pts, fwd), center, scale, rot, size, udp=udp)
        np.testing.assert_allclose(back, pts, atol=1e-6)
        inv = geo.get_affine_transform(center, scale, rot, size, inv=True, udp=udp)
        np.testing.assert_allclose(geo.compose_affine(inv, fwd), [[1, 0, 0], [0, 1, 0]],
                                   atol=1e-8)
        np.testing.assert_allclose(geo.invert_affine(fwd), inv, atol=1e-7 * max(1, abs(inv).max()))


def test_flip_joints_image_and_matrix_agree():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    joints = np.concatenate([rng.integers(0, 30, (17, 1)), rng.integers(0, 40, (17, 1)),
                             rng.integers(0, 3, (17, 1))], axis=1).astype(float)
    flipped = geo.flip_joints(joints, 30)
    fimg = geo.flip_image(image)
    for k in range(17):
        partner = dict(sum(([(a, b), (b, a)] for a, b in geo.COCO_FLIP_PAIRS), [])).get(k, k)
        x, y = int(joints[partner, 0]), int(joints[partner, 1])
        assert flipped[k, 0] == 29 - x and flipped[k, 1] == y
        assert flipped[k, 2] == joints[partner, 2]
        np.testing.assert_array_equal(fimg[y, int(flipped[k, 0])], image[y, x])
    np.testing.assert_allclose(geo.flip_joints(flipped, 30), joints)
    np.testing.assert_allclose(geo.affine_points(joints[:, :2], geo.hflip_matrix(30))[:, 0],
                               29 - joints[:, 0])
    np.testing.assert_allclose(geo.flip_center([10.0, 5.0], 30), [19.0, 5.0])


def _body():
    joints = np.zeros((17, 2))
    joints[:11] = np.stack([np.linspace(100, 140, 11), np.linspace(50, 150, 11)], axis=1)
    joints[11:] = np.stack([np.linspace(110, 130, 6), np.linspace(200, 300, 6)], axis=1)
    return joints


def test_half_body_upper_and_lower_hand_computed():
    joints, vis = _body(), np.ones(17)
    rng = np.random.default_rng(0)
    c, s = geo.half_body_center_scale(joints, vis, (192, 256), rng, upper_prob=1.0)
    np.testing.assert_allclose(c, joints[:11].mean(axis=0))
    # extent 40 x 100 -> aspect 0.75 -> 75 x 100, x 1.5
    np.testing.assert_allclose(s, [112.5, 150.0])
    c, s = geo.half_body_center_scale(joints, vis, (192, 256), rng, upper_prob=0.0)
    np.testing.assert_allclose(c, joints[11:].mean(axis=0))
    np.testing.assert_allclose(s, [75.0 * 1.5, 100.0 * 1.5])


def test_half_body_falls_back_and_rejects():
    joints = _body()
    vis = np.zeros(17)
    vis[[0, 1, 2, 11, 12]] = 1            # upper 3 joints, lower 2: lower unusable -> upper
    c, _ = geo.half_body_center_scale(joints, vis, (192, 256), np.random.default_rng(0),
                                      upper_prob=0.0)
    np.testing.assert_allclose(c, joints[[0, 1, 2]].mean(axis=0))
    vis = np.zeros(17)
    vis[[0]] = 1
    assert geo.half_body_center_scale(joints, vis, (192, 256), np.random.default_rng(0)) is None
    assert abs(geo.OFFICIAL_HALF_BODY_UPPER_PROB - 0.6915) < 1e-4


def test_shift_rejected_with_udp():
    with pytest.raises(ValueError, match="shift"):
        geo.get_affine_transform([0, 0], [100, 100], 0, (192, 256), shift=(0.1, 0), udp=True)
