"""Top-down train/test transforms on real COCO images: keypoints land on the body, end-to-end
round trip through augmentation + codec, rng determinism, image reading errors."""
import json
import os

import cv2
import numpy as np
import pytest

from gluonpose.codecs import GaussianHeatmapCodec, HeatmapOffsetCodec, build_codec
from gluonpose.data import geometry as geo
from gluonpose.data.imageio import read_image
from gluonpose.data.pipeline import (IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, TopDownTestTransform,
                                     TopDownTrainTransform, sample_rng)
from gluonpose.data.records import PersonRecord
from gluonpose.errors import DatasetError, MissingFileError
from gluonpose.keypoints import COCO_FLIP_PAIRS, swap_flip_pairs


@pytest.fixture(scope="module")
def coco(data_dir):
    """[(image RGB, PersonRecord)] for the labelled people of the real COCO sample."""
    root = os.path.join(data_dir, "samples", "coco")
    with open(os.path.join(root, "test_coco.json")) as f:
        data = json.load(f)
    files = {im["id"]: os.path.join(root, im["file_name"]) for im in data["images"]}
    images = {i: read_image(p) for i, p in files.items()}
    out = []
    for a in data["annotations"]:
        if a["num_keypoints"] < 8:
            continue
        rec = PersonRecord(image_path=files[a["image_id"]], bbox=np.array(a["bbox"], np.float32),
                           keypoints=np.array(a["keypoints"], np.float32).reshape(17, 3),
                           image_id=a["image_id"], area=a["area"], dataset="coco", ann_id=a["id"])
        out.append((images[a["image_id"]], rec))
    assert len(out) >= 8
    return out


def _denormalize(chw):
    x = chw.transpose(1, 2, 0) * np.array(IMAGENET_STD_RGB) + np.array(IMAGENET_MEAN_RGB)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _strong(codec, **kw):
    args = dict(sampling="uniform", rot_factor=20.0, scale_factor=0.2, half_body_prob=0.0)
    args.update(kw)
    return TopDownTrainTransform(codec, **args)


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_warped_keypoints_land_inside_warped_box(coco, tmp_path, flip_prob):
    codec = HeatmapOffsetCodec((192, 256))
    transform = _strong(codec, flip_prob=flip_prob)
    for i, (image, rec) in enumerate(coco):
        s = transform(image, rec, sample_rng(0, 0, i))
        assert s["image"].shape == (3, 256, 192) and s["image"].dtype == np.float32
        assert s["flipped"] == bool(flip_prob)
        x, y, w, h = rec.bbox
        corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
        poly = geo.affine_points(corners, s["trans"].astype(np.float64)).astype(np.float32)
        vis = s["keypoints"][:, 2] > 0
        assert vis.sum() >= 8
        zoom = np.sqrt(abs(np.linalg.det(s["trans"][:, :2].astype(np.float64))))
        for k in np.flatnonzero(vis):
            px, py = s["keypoints"][k, :2]
            inside = cv2.pointPolygonTest(poly, (float(px), float(py)), True)
            # some real COCO joints lie a few pixels outside their own box: the warp must scale
            # that signed distance by the zoom, and joints inside the box must stay inside
            src = rec.keypoints[swap_flip_pairs(np.arange(17))[k] if flip_prob else k, :2]
            before = cv2.pointPolygonTest(corners.astype(np.float32),
                                          (float(src[0]), float(src[1])), True)
            assert abs(inside - zoom * before) < 0.5 + 0.01 * abs(inside), (i, k)
            if before >= 0:
                assert inside > -0.5
        canvas = np.ascontiguousarray(_denormalize(s["image"])[..., ::-1])
        cv2.polylines(canvas, [poly.astype(np.int32)], True, (0, 255, 0), 1)
        for px, py in s["keypoints"][vis, :2]:
            cv2.circle(canvas, (int(round(px)), int(round(py))), 3, (0, 0, 255), -1)
        path = str(tmp_path / ("sample_%d_flip%d.png" % (i, flip_prob)))
        assert cv2.imwrite(path, canvas)
        assert cv2.imread(path).shape == (256, 192, 3)


@pytest.mark.parametrize("udp", [True, False])
def test_image_and_keypoints_are_warped_together(coco, udp):
    """Paint each joint with its own colour, warp (rotation + flip), and read the colour back at
    the transformed joint: flipped samples must show the mirror partner's colour."""
    image, rec = max(coco, key=lambda p: p[1].area)
    kp = rec.keypoints
    painted = np.zeros_like(image)
    colours = {k: np.array([20 + 13 * k, 255 - 11 * k, (77 * k) % 256], np.uint8) for k in range(17)}
    vis = kp[:, 2] > 0
    isolated = [k for k in np.flatnonzero(vis)
                if np.all(np.linalg.norm(kp[vis, :2] - kp[k, :2], axis=1)[np.flatnonzero(vis) != k]
                          > 18)]
    assert len(isolated) >= 8
    for k in isolated:
        cv2.circle(painted, (int(round(kp[k, 0])), int(round(kp[k, 1]))), 8,
                   tuple(int(c) for c in colours[k]), -1)
    codec = HeatmapOffsetCodec((192, 256), udp=udp)
    partner = dict(sum(([(a, b), (b, a)] for a, b in COCO_FLIP_PAIRS), []))
    for flip in (0.0, 1.0):
        s = _strong(codec, flip_prob=flip)(painted, rec, sample_rng(3, 1, 7))
        crop = _denormalize(s["image"]).astype(int)
        for k_out in range(17):
            k_src = partner.get(k_out, k_out) if flip else k_out
            if k_src not in isolated:
                continue
            px, py = np.round(s["keypoints"][k_out, :2]).astype(int)
            assert np.abs(crop[py, px] - colours[k_src]).max() <= 3, (flip, k_out)


@pytest.mark.parametrize("codec_kind", ["offset", "gaussian_udp"])
def test_end_to_end_round_trip_with_augmentation(coco, codec_kind):
    """Augment, encode, decode the target, map back with the sample's matrix: original joints.

    Gaussian (UDP + DARK) joints within 28 crop px (7 heatmap px) of the border are skipped:
    DARK's zero-padded blur biases them by up to ~1 crop px; elsewhere both are exact."""
    if codec_kind == "offset":
        codec, tol = HeatmapOffsetCodec((192, 256), decoder="hough"), 0.05
    else:
        codec, tol = GaussianHeatmapCodec((192, 256), udp=True), 0.1
    transform = TopDownTrainTransform(codec, half_body_prob=0.5)
    errors = []
    for i, (image, rec) in enumerate(coco):
        s = transform(image, rec, sample_rng(11, 2, i))
        coords, _ = codec.decode(s["target"][None])
        back = geo.affine_points(coords[0], geo.invert_affine(s["trans"].astype(np.float64)))
        if s["flipped"]:
            back = swap_flip_pairs(back)
            weight = swap_flip_pairs(s["target_weight"])
        else:
            weight = s["target_weight"]
            if s["rotation"] != 0:   # rotation-aware inverse from (center, scale, rotation)
                back2 = geo.crop_to_image(coords[0], s["center"], s["scale"], s["rotation"],
                                          (192, 256), udp=True)
                np.testing.assert_allclose(back2, back, atol=1e-2)
        m = weight > 0
        if codec_kind != "offset":       # DARK's zero-padded blur is biased near the border
            kp_crop = swap_flip_pairs(s["keypoints"]) if s["flipped"] else s["keypoints"]
            m &= np.all((kp_crop[:, :2] >= 28) & (kp_crop[:, :2] <= [163, 227]), axis=1)
        image_px_per_crop_px = s["scale"][0] / 191.0
        errors.append(np.linalg.norm(back[m] - rec.keypoints[m, :2], axis=1) / image_px_per_crop_px)
    errors = np.concatenate(errors)
    assert len(errors) >= 20
    assert errors.max() < tol, errors.max()          # in crop pixels


def test_multistage_and_half_body(coco):
    codec = build_codec("heatmap_offset", stage_radii=(5.0, 3.5))
    image, rec = coco[0]
    transform = TopDownTrainTransform(codec, half_body_prob=1.0, half_body_upper_prob=1.0,
                                      rotation_prob=0.0, scale_factor=0.0, flip_prob=0.0)
    s = transform(image, rec, sample_rng(0, 0, 0))
    assert s["target"].shape == (2, 51, 64, 48) and s["target_weight"].shape == (2, 17)
    upper = rec.keypoints[:11]
    np.testing.assert_allclose(s["center"], upper[upper[:, 2] > 0, :2].mean(axis=0), atol=1e-3)


def test_rng_determinism(coco):
    image, rec = coco[1]
    transform = TopDownTrainTransform(GaussianHeatmapCodec((192, 256)))
    a = transform(image, rec, sample_rng(5, 3, 42))
    b = transform(image, rec, sample_rng(5, 3, 42))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    draws = {tuple(np.round(transform(image, rec, sample_rng(5, 3, i))["scale"], 4)) for i in range(8)}
    assert len(draws) > 4
    assert not np.array_equal(sample_rng(5, 3, 42).random(4), sample_rng(5, 4, 42).random(4))
    with pytest.raises(ValueError):
        sample_rng(-1, 0, 0)


def test_test_transform(coco):
    image, rec = coco[2]
    s = TopDownTestTransform((288, 384), udp=True)(image, rec)
    c, sc = geo.box_to_center_scale(rec.bbox, (288, 384))
    np.testing.assert_allclose(s["center"], c, rtol=1e-6)
    np.testing.assert_allclose(s["scale"], sc, rtol=1e-6)
    assert s["image"].shape == (3, 384, 288) and s["rotation"] == 0 and not s["flipped"]
    with pytest.raises(ValueError, match="differs"):
        TopDownTestTransform((192, 256), codec=HeatmapOffsetCodec((288, 384)))


def test_rotation_tta_crop_maps_back(coco):
    """A rotated, rescaled test crop + codec decode + crop_to_image recovers the image joints."""
    image, rec = coco[0]
    codec = HeatmapOffsetCodec((192, 256))
    for rot, factor in ((30.0, 1.0), (-20.0, 1.2)):
        s = TopDownTestTransform(codec=codec, rotation=rot, scale_factor=factor)(image, rec)
        assert s["rotation"] == rot
        coords, _ = codec.decode(s["target"][None])
        back = geo.crop_to_image(coords[0], s["center"], s["scale"], s["rotation"], (192, 256),
                                 udp=codec.udp)
        m = s["target_weight"] > 0
        assert m.sum() >= 10
        np.testing.assert_allclose(back[m], rec.keypoints[m, :2], atol=0.05)


def damage_scan(data, removed=50):
    """A JPEG with ``removed`` bytes cut out of the middle of its entropy-coded data: complete
    (it still ends with its end-of-image marker) and decoded by OpenCV without error."""
    sos = data.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    middle = (start + len(data)) // 2
    return data[:middle] + data[middle + removed:]


def _broken_images(folder, jpeg_src):
    """{name: path} of a real JPEG cut in half, a PNG cut short, garbage bytes and an empty file."""
    data = open(jpeg_src, "rb").read()
    png = cv2.imencode(".png", cv2.imread(jpeg_src))[1].tobytes()
    files = {"half.jpg": data[:len(data) // 2], "no_eoi.jpg": data[:-2], "cut.png": png[:len(png) // 2],
             "damaged_scan.jpg": damage_scan(data),
             "no_iend.png": png[:-12], "garbage.jpg": os.urandom(3000),
             "fake_header.jpg": b"\xff\xd8 this is not a jpeg", "empty.png": b""}
    out = {}
    for name, content in files.items():
        out[name] = os.path.join(str(folder), name)
        with open(out[name], "wb") as f:
            f.write(content)
    return out


def test_read_image_detects_truncated_and_corrupt_files(tmp_path, data_dir):
    src = os.path.join(data_dir, "samples", "coco", "000000000785.jpg")
    # OpenCV alone returns a full-size picture for the half JPEG (lower part flat): the trap closed
    data = open(src, "rb").read()
    half = cv2.imdecode(np.frombuffer(data[:len(data) // 2], np.uint8), cv2.IMREAD_COLOR)
    assert half is not None and half.shape == cv2.imread(src).shape
    damaged = cv2.imdecode(np.frombuffer(damage_scan(data), np.uint8), cv2.IMREAD_COLOR)
    assert damaged is not None and damaged.shape == half.shape   # OpenCV: no error either
    for name, path in _broken_images(tmp_path, src).items():
        with pytest.raises(DatasetError, match=name.replace(".", r"\.")):
            read_image(path)
    with pytest.raises(MissingFileError, match="nope.jpg"):
        read_image(str(tmp_path / "nope.jpg"))
    # complete files: a JPEG with bytes after its end-of-image marker and a PNG read as before
    full = read_image(src)
    np.testing.assert_array_equal(full, cv2.cvtColor(cv2.imread(src), cv2.COLOR_BGR2RGB))
    trailer = tmp_path / "trailer.jpg"
    trailer.write_bytes(data + b"camera trailer data" * 50)
    np.testing.assert_array_equal(read_image(str(trailer)), full)
    png = tmp_path / "ok.png"
    cv2.imwrite(str(png), cv2.imread(src))
    np.testing.assert_array_equal(read_image(str(png)), full)


def test_bad_image_named_in_error(coco):
    _, rec = coco[0]
    transform = TopDownTrainTransform(GaussianHeatmapCodec((192, 256)))
    with pytest.raises(ValueError, match=os.path.basename(rec.image_path)):
        transform(np.zeros((10, 10), np.uint8), rec, sample_rng(0, 0, 0))


def test_normalize_image_bit_identical_to_reference_planes():
    """The fast normalisation (OpenCV-split planes) gives the reference float32 arithmetic's bits for every
    uint8 value of every channel; other dtypes take the reference path."""
    from gluonpose.data.pipeline import normalize_image, normalize_planes
    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = np.ascontiguousarray(np.stack([v, v[::-1], v.T], axis=-1))
    for mean, std in ((IMAGENET_MEAN_RGB, IMAGENET_STD_RGB), ((0.5, 0.4, 0.3), (0.2, 0.3, 0.1))):
        fast, ref = normalize_image(img, mean, std), normalize_planes(img, mean, std)
        assert fast.dtype == np.float32 and fast.shape == (3, 16, 16)
        assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))
        # against an independent float32 formula, (x / 255 - mean) / std, for channel 0
        x = v.astype(np.float32) / np.float32(255.0)
        expect = (x - np.float32(mean[0])) / np.float32(std[0])
        assert np.array_equal(fast[0].view(np.uint32), expect.view(np.uint32))
    as_float = normalize_image(img.astype(np.float32))
    assert np.array_equal(as_float.view(np.uint32), normalize_planes(img).view(np.uint32))


def test_train_transform_fast_paths_equal_reference(coco, monkeypatch):
    """Whole training samples on the real COCO people (official w48 augmentation, both flips): the crop and
    the heatmap+offset targets equal those of the reference paths (per-plane normalisation, whole-map
    encoding)."""
    from gluonpose.data import pipeline
    codec = build_codec("heatmap_offset", input_size_wh=(288, 384), heatmap_size_wh=(72, 96))
    transform = TopDownTrainTransform(codec, sampling="official", rot_factor=45, scale_factor=0.35)
    draws = [(image, rec, epoch, i) for i, (image, rec) in enumerate(coco) for epoch in range(3)]
    fast = [transform(image, rec, sample_rng(0, epoch, i)) for image, rec, epoch, i in draws]
    monkeypatch.setattr(pipeline, "normalize_image", pipeline.normalize_planes)
    monkeypatch.setattr(codec, "encode", codec.encode_dense)
    flips = set()
    for (image, rec, epoch, i), got in zip(draws, fast):
        ref = transform(image, rec, sample_rng(0, epoch, i))
        flips.add(bool(ref["flipped"]))
        assert np.array_equal(got["image"].view(np.uint32), ref["image"].view(np.uint32))
        assert np.array_equal(got["target"], ref["target"])
        assert np.array_equal(got["target_weight"], ref["target_weight"])
        assert np.array_equal(got["keypoints"], ref["keypoints"])
    assert flips == {False, True}
