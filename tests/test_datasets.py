"""Dataset readers onto COCO-17: the real samples, hand-checked mappings, bad data, combined set."""
import copy
import json
import logging
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from gluonpose.data.datasets import (AicKeypoints, CocoKeypoints, CombinedDataset,
                                     CrowdPoseKeypoints, DatasetError, MpiiKeypoints,
                                     build_dataset, dataset_types)
from gluonpose.data.keypoints import get_keypoint_map, map_to_coco
from gluonpose.keypoints import COCO_KEYPOINT_NAMES
from gluonpose.data.records import PersonRecord


def _sample(data_dir, name, file):
    folder = os.path.join(data_dir, "samples", name)
    return os.path.join(folder, file), folder


def _raw(path):
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- real samples

def test_coco_sample_counts_and_cleaning(data_dir):
    ann, folder = _sample(data_dir, "coco", "test_coco.json")
    coco = COCO(ann)
    n_all = len(coco.getAnnIds(catIds=[1], iscrowd=False))
    n_labelled = sum(max(a["keypoints"]) > 0 for a in coco.loadAnns(coco.getAnnIds(iscrowd=False)))
    keep_all = CocoKeypoints(ann, folder, skip_empty=False, check_images=True)
    train = CocoKeypoints(ann, folder)
    assert (len(keep_all), n_all) == (14, 14)
    assert len({r.image_id for r in keep_all}) == 4
    assert len(train) == n_labelled == 12
    assert train.skipped == {"no_keypoints": 2}
    rec = next(r for r in train if r.ann_id == 442619)
    # raw bbox [280.79, 44.73, 218.7, 346.68] in a 640x425 image: x2 = x1 + w - 1, nothing clipped
    np.testing.assert_allclose(rec.bbox, [280.79, 44.73, 217.7, 345.68], atol=1e-4)
    raw = coco.loadAnns(442619)[0]
    np.testing.assert_array_equal(rec.keypoints, np.reshape(raw["keypoints"], (17, 3)))
    assert rec.image_path == os.path.join(folder, "000000000785.jpg")
    assert rec.image_id == 785 and rec.dataset == "coco" and rec.area == pytest.approx(27789.11055)


def test_mpii_sample(data_dir):
    ann, folder = _sample(data_dir, "mpii", "test_mpii.json")
    raw = _raw(ann)
    reader = MpiiKeypoints(ann, folder, check_images=True)
    assert len(reader) == len(raw) == 5
    rec = reader[0]  # 005808361.jpg, all 16 joints labelled
    assert rec.image_path.endswith("005808361.jpg") and rec.image_id == 5808361
    # MPII 15 = left wrist (1142, 478) -> COCO 9, 1-based -> 0-based
    np.testing.assert_array_equal(rec.keypoints[9], [1141.0, 477.0, 2.0])
    np.testing.assert_array_equal(rec.keypoints[16], [803.0, 710.0, 2.0])  # MPII 0 r_ankle (804, 711)
    np.testing.assert_array_equal(rec.keypoints[6], [901.0, 252.0, 2.0])  # MPII 12 r_sho (902, 253)
    assert not rec.keypoints[:5].any()  # MPII has no face joints
    # centre (966, 340), scale 4.718488: cy += 15 * s, both -1, square side 200 s
    side = 943.6976
    np.testing.assert_allclose(rec.bbox, [965 - side / 2, 339 + 70.77732 - side / 2, side, side],
                               rtol=1e-6)
    rec2 = reader[2]  # 051423444.jpg: r/l ankle unlabelled (joints_vis 0, coordinates -1)
    assert rec2.keypoints[16, 2] == 0 and rec2.keypoints[15, 2] == 0
    assert (rec2.keypoints[16, :2] == 0).all()
    assert rec2.num_visible == 10


def test_aic_coco_style_sample(data_dir):
    ann, folder = _sample(data_dir, "aic", "test_aic.json")
    reader = AicKeypoints(ann, folder, check_images=True)
    assert len(reader) == 9 and len({r.image_path for r in reader}) == 3
    rec = next(r for r in reader if r.ann_id == 4)
    # raw: r_sho (313, 201, 2), l_sho (406, 197, 1), r_knee (0, 0, 0), head top (395, 74, 2)
    np.testing.assert_array_equal(rec.keypoints[6], [313, 201, 2])
    np.testing.assert_array_equal(rec.keypoints[5], [406, 197, 1])
    np.testing.assert_array_equal(rec.keypoints[9], [459, 269, 2])  # AIC 5 l_wrist
    assert rec.keypoints[14, 2] == 0
    assert not rec.keypoints[:5].any() and not (rec.keypoints[:, :2] == [395, 74]).all(1).any()


def test_crowdpose_sample(data_dir):
    ann, folder = _sample(data_dir, "crowdpose", "test_crowdpose.json")
    assert len(CrowdPoseKeypoints(ann, folder, skip_empty=False)) == 5
    reader = CrowdPoseKeypoints(ann, folder)
    assert len(reader) == 4 and reader.skipped["no_keypoints"] == 1
    rec = next(r for r in reader if r.ann_id == 123803)
    # raw: idx 1 r_sho (208, 108, 2), idx 3 r_elb (278, 158, 2), head/neck (v=1) dropped
    np.testing.assert_array_equal(rec.keypoints[6], [208, 108, 2])
    np.testing.assert_array_equal(rec.keypoints[8], [278, 158, 2])
    assert rec.num_visible == 5  # raw joints 1, 3, 4, 5, 7 labelled among the 12 mapped ones


@pytest.mark.parametrize("layout, sample", [("aic", "aic/test_aic.json"),
                                            ("crowdpose", "crowdpose/test_crowdpose.json")])
def test_mapping_tables_agree_with_sample_joint_names(data_dir, layout, sample):
    names = _raw(os.path.join(data_dir, "samples", sample))["categories"][0]["keypoints"]
    norm = [n.lower().replace(" ", "_") for n in names]
    kmap = get_keypoint_map(layout)
    assert len(norm) == kmap.num_joints
    for s, d in zip(kmap.src, kmap.dst):  # every mapped joint lands on the COCO joint of its name
        assert norm[s] == COCO_KEYPOINT_NAMES[d], (layout, s, d)


@pytest.mark.parametrize("layout", ["coco", "mpii", "aic", "crowdpose"])
def test_mapping_is_name_consistent_and_unmapped_get_v0(layout):
    kmap = get_keypoint_map(layout)
    for s, d in zip(kmap.src, kmap.dst):
        assert kmap.names[s] == COCO_KEYPOINT_NAMES[d]
    src = np.ones((kmap.num_joints, 3), dtype=np.float32) * [5, 7, 2]
    out = map_to_coco(src, layout)
    assert out.shape == (17, 3)
    assert set(np.flatnonzero(out[:, 2] == 2)) == set(kmap.dst.tolist())
    assert not out[out[:, 2] == 0].any()


# ---------------------------------------------------------------- AIC original format

def test_aic_original_format(tmp_path):
    kp1 = [10, 20, 1, 30, 40, 2, 0, 0, 3] + [50, 60, 1] * 11
    data = [{"image_id": "abc123", "keypoint_annotations": {"human1": kp1, "human2": [0, 0, 3] * 14},
             "human_annotations": {"human1": [5, 6, 105, 206], "human2": [1, 1, 50, 50]}}]
    path = tmp_path / "aic_raw.json"
    path.write_text(json.dumps(data))
    reader = AicKeypoints(str(path), "imgs")
    assert len(reader) == 1 and reader.skipped["no_keypoints"] == 1
    rec = reader[0]
    np.testing.assert_array_equal(rec.bbox, [5, 6, 100, 200])
    assert rec.image_path == os.path.join("imgs", "abc123.jpg")
    np.testing.assert_array_equal(rec.keypoints[6], [10, 20, 2])   # AIC 0 r_sho, visible 1 -> 2
    np.testing.assert_array_equal(rec.keypoints[8], [30, 40, 1])   # AIC 1 r_elb, occluded 2 -> 1
    np.testing.assert_array_equal(rec.keypoints[10], [0, 0, 0])    # AIC 2 r_wri, unlabelled 3 -> 0
    data[0]["keypoint_annotations"]["human1"][9:12] = [float("nan"), 3, 1]
    data[0]["keypoint_annotations"]["human2"] = [0, 0, 3] * 13 + [5000, 10, 1]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"aic_raw.json: entry 0 \(image abc123, human1\)"):
        AicKeypoints(str(path))
    reader = AicKeypoints(str(path), on_bad="skip")
    assert len(reader) == 0
    assert reader.skipped == {"non_finite": 1, "keypoints_outside_image": 1}


# ---------------------------------------------------------------- bad data

def _tiny_coco():
    kp = [0] * 51
    kp[15:18] = [50, 60, 2]
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
            "annotations": [{"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "bbox": [10, 10, 50, 50], "area": 900.0, "keypoints": list(kp)},
                            {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "bbox": [20, 5, 30, 40], "area": 800.0, "keypoints": list(kp)}]}


def _corrupt(field, value):
    def apply(d):
        d["annotations"][1][field] = value
        return d
    return apply


def _set_kp(index, value):
    def apply(d):
        d["annotations"][1]["keypoints"][index] = value
        return d
    return apply


BAD_CASES = [
    ("nan_box", _corrupt("bbox", [float("nan"), 1, 2, 3]), "non_finite"),
    ("inf_keypoint", _set_kp(15, float("inf")), "non_finite"),
    ("negative_width", _corrupt("bbox", [20, 5, -30, 40]), "bad_box"),
    ("keypoint_far_outside", _set_kp(15, 5000), "keypoints_outside_image"),
    ("bad_visibility", _set_kp(17, 7), "bad_visibility"),
    ("short_keypoints", _corrupt("keypoints", [1, 2, 2]), "malformed"),
    ("unknown_image", _corrupt("image_id", 99), "unknown_image"),
    ("missing_key", lambda d: (d["annotations"][1].pop("bbox"), d)[1], "malformed"),
]


@pytest.mark.parametrize("name, corrupt, reason", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_records_raise_or_skip(tmp_path, caplog, name, corrupt, reason):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(corrupt(copy.deepcopy(_tiny_coco()))))
    with pytest.raises(DatasetError) as err:
        CocoKeypoints(str(path), on_bad="raise")
    msg = str(err.value)
    assert str(path) in msg and "annotation id 12" in msg and reason in msg
    with caplog.at_level(logging.INFO, logger="gluonpose.data.datasets"):
        reader = CocoKeypoints(str(path), on_bad="skip")
    assert [r.ann_id for r in reader] == [11]
    assert reader.skipped == {reason: 1}
    assert f"{reason}=1" in caplog.text


def test_missing_image_checked_only_on_request(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_tiny_coco()))
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert len(CocoKeypoints(str(path), str(tmp_path), check_images=True)) == 2
    assert len(CocoKeypoints(str(path), str(tmp_path / "nowhere"))) == 2
    with pytest.raises(DatasetError, match="image file not found.*a.jpg"):
        CocoKeypoints(str(path), str(tmp_path / "nowhere"), check_images=True)
    reader = CocoKeypoints(str(path), str(tmp_path / "nowhere"), check_images=True, on_bad="skip")
    assert len(reader) == 0 and reader.skipped == {"missing_image": 2}


@pytest.mark.parametrize("content, match", [
    (None, "not found"), ("", "empty"), ("{not json", "not valid JSON"),
    ('{"images": [], "annotations": []}', "no annotations"), ("[1, 2]", "not a COCO-style"),
])
def test_file_level_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "ann.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=match) as err:
        CocoKeypoints(str(path), on_bad="skip")
    assert str(path) in str(err.value)


def test_official_cleaning_skips(tmp_path):
    d = _tiny_coco()
    extra = [dict(d["annotations"][0], id=20 + i) for i in range(4)]
    extra[0]["iscrowd"] = 1
    extra[1]["bbox"] = [200, 200, 10, 10]      # starts outside the 100x80 image
    extra[2]["area"] = 0
    extra[3]["category_id"] = 2
    d["annotations"] += extra
    path = tmp_path / "c.json"
    path.write_text(json.dumps(d))
    reader = CocoKeypoints(str(path), on_bad="raise")  # cleaning never raises
    assert len(reader) == 2
    assert reader.skipped == {"iscrowd": 1, "box_outside_image": 1, "zero_area": 1,
                              "not_person": 1}


def test_mpii_bad_entries(tmp_path, data_dir):
    ann, _ = _sample(data_dir, "mpii", "test_mpii.json")
    raw = _raw(ann)
    raw[1]["scale"] = -2.0
    raw[3]["joints"][4][0] = float("nan")
    del raw[4]["center"]
    raw[0]["joints"][15] = [90000.0, 478.0]  # far outside the person box (image size unknown)
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=r"mpii.json: entry 0 \(image 005808361.jpg\).*outside"):
        MpiiKeypoints(str(path))
    reader = MpiiKeypoints(str(path), on_bad="skip")
    assert [r.ann_id for r in reader] == [2]
    assert reader.skipped == {"bad_box": 1, "non_finite": 1, "malformed": 1,
                              "keypoints_outside_image": 1}


def test_on_bad_must_be_valid(data_dir):
    ann, _ = _sample(data_dir, "coco", "test_coco.json")
    with pytest.raises(ValueError, match="on_bad"):
        CocoKeypoints(ann, on_bad="ignore")


# ---------------------------------------------------------------- combined dataset and factory

def _records(name, n):
    return [PersonRecord(image_path=f"{name}{i}.jpg", bbox=np.zeros(4, np.float32),
                         keypoints=np.zeros((17, 3), np.float32), image_id=i, dataset=name,
                         ann_id=i) for i in range(n)]


def test_combined_ratios_and_determinism():
    a, b, c = _records("a", 10), _records("b", 4), _records("c", 6)
    ds = CombinedDataset([a, b, c], ratios=[0.5, 2.0, 1.5], seed=7)
    assert len(ds) == 5 + 8 + 9
    assert ds.counts() == {"a": {"source": 10, "ratio": 0.5, "used": 5},
                           "b": {"source": 4, "ratio": 2.0, "used": 8},
                           "c": {"source": 6, "ratio": 1.5, "used": 9}}
    items = [ds[i] for i in range(len(ds))]
    ids = {k: [r.ann_id for r in items if r.dataset == k] for k in "abc"}
    assert len(set(ids["a"])) == 5                          # half, without repeats
    assert sorted(ids["b"]) == sorted(list(range(4)) * 2)   # twice
    assert set(ids["c"]) == set(range(6)) and len(set(ids["c"][6:])) == 3
    again = CombinedDataset([a, b, c], ratios=[0.5, 2.0, 1.5], seed=7)
    assert [again[i].image_path for i in range(len(ds))] == [r.image_path for r in items]
    draws = {tuple(r.ann_id for r in (CombinedDataset([a], [0.5], seed=s)[i] for i in range(5)))
             for s in range(6)}
    assert len(draws) > 1                                   # the seed matters
    assert ds[-1] is items[-1]
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert "a 10 x0.5 -> 5" in ds.summary()


def test_combined_rejects_bad_ratios():
    with pytest.raises(ValueError, match="ratio"):
        CombinedDataset([_records("a", 3)], ratios=[-1.0])
    with pytest.raises(ValueError, match="2 ratios"):
        CombinedDataset([_records("a", 3)], ratios=[1.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        CombinedDataset([_records("a", 3)], ratios=[0.0])


def test_build_dataset_all_samples_combined(data_dir):
    root = os.path.join(data_dir, "samples")
    specs = [dict(type="coco", ann_file=f"{root}/coco/test_coco.json", img_prefix=f"{root}/coco"),
             dict(type="mpii", ann_file=f"{root}/mpii/test_mpii.json", img_prefix=f"{root}/mpii"),
             dict(type="aic", ann_file=f"{root}/aic/test_aic.json", img_prefix=f"{root}/aic"),
             dict(type="crowdpose", ann_file=f"{root}/crowdpose/test_crowdpose.json",
                  img_prefix=f"{root}/crowdpose")]
    ds = build_dataset(type="combined", datasets=specs, ratios=[1, 2, 1, 0.5], seed=0,
                       on_bad="skip")
    assert {k: v["used"] for k, v in ds.counts().items()} == \
        {"coco": 12, "mpii": 10, "aic": 9, "crowdpose": 2}
    assert all(isinstance(ds[i], PersonRecord) and os.path.isfile(ds[i].image_path)
               for i in range(len(ds)))


def test_build_dataset_errors():
    with pytest.raises(ValueError) as err:
        build_dataset(type="cocoo", ann_file="x.json")
    for t in ("coco", "mpii", "aic", "crowdpose", "combined", "synthetic"):
        assert t in str(err.value) and t in dataset_types()
    with pytest.raises(TypeError, match="unknown arguments.*'ratio_x'"):
        build_dataset(type="coco", ann_file="x.json", ratio_x=1)


# ---------------------------------------------------------------- degenerate boxes, every reader

def _degenerate_sample(data_dir, tmp_path, name, file):
    """The real sample with the first annotation's box made degenerate; (path, folder, original)."""
    src, folder = _sample(data_dir, name, file)
    raw = _raw(src)
    if name == "mpii":
        raw[1]["scale"] = 0.004  # a 0.8 px square: nothing to crop
    else:
        x, y = raw["annotations"][0]["bbox"][:2]
        raw["annotations"][0]["bbox"] = [x, y, 1.0, 1.0]  # official cleaning: x2 = x1 -> 0 x 0
    path = tmp_path / f"degenerate_{name}.json"
    path.write_text(json.dumps(raw))
    return str(path), folder, src


READER_SPECS = [("coco", "coco", "test_coco.json", {}),
                ("crowdpose", "crowdpose", "test_crowdpose.json", {}),
                ("aic", "aic", "test_aic.json", {}),
                ("coco_style", "crowdpose", "test_crowdpose.json", {"layout": "crowdpose"}),
                ("mpii", "mpii", "test_mpii.json", {})]


@pytest.mark.parametrize("kind, name, file, extra", READER_SPECS, ids=[s[0] for s in READER_SPECS])
def test_degenerate_box_is_named_or_counted(tmp_path, data_dir, kind, name, file, extra):
    path, folder, src = _degenerate_sample(data_dir, tmp_path, name, file)
    with pytest.raises(DatasetError, match="degenerate_box") as err:
        build_dataset(type=kind, ann_file=path, img_prefix=folder, on_bad="raise", **extra)
    assert path in str(err.value) and "below 1 px" in str(err.value)
    original = build_dataset(type=kind, ann_file=src, img_prefix=folder, on_bad="raise", **extra)
    reader = build_dataset(type=kind, ann_file=path, img_prefix=folder, on_bad="skip", **extra)
    assert len(reader) == len(original) - 1
    assert reader.skipped == dict(original.skipped, degenerate_box=1)
    assert all(max(r.bbox[2], r.bbox[3]) >= 1 for r in reader)


def test_degenerate_box_aic_original_format(tmp_path):
    data = [{"image_id": "abc", "keypoint_annotations": {"h1": [50, 60, 1] * 14, "h2": [5, 6, 1] * 14},
             "human_annotations": {"h1": [5, 6, 105, 206], "h2": [5, 6, 5.5, 6.5]}}]
    path = tmp_path / "aic_raw.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"image abc, h2.*degenerate_box"):
        AicKeypoints(str(path))
    reader = AicKeypoints(str(path), on_bad="skip")
    assert [r.extra["human"] for r in reader] == ["h1"] and reader.skipped == {"degenerate_box": 1}


def test_combined_counts_the_skips_of_every_set(tmp_path, data_dir, caplog):
    from gluonpose.data.builder import build_train_records

    coco, coco_dir, _ = _degenerate_sample(data_dir, tmp_path, "coco", "test_coco.json")
    mpii, mpii_dir, _ = _degenerate_sample(data_dir, tmp_path, "mpii", "test_mpii.json")
    specs = [{"type": "coco", "ann_file": coco, "img_prefix": coco_dir},
             {"type": "mpii", "ann_file": mpii, "img_prefix": mpii_dir, "ratio": 2}]
    with pytest.raises(DatasetError, match="degenerate_box"):
        build_dataset(type="combined", datasets=[dict(s) for s in specs[:1]])
    with caplog.at_level(logging.INFO, logger="gluonpose.data.builder"):
        ds = build_train_records({"train": specs, "on_bad": "skip"})
    assert ds.skipped == {"degenerate_box": 2, "no_keypoints": 2}
    assert ds.skipped_by_set() == {"coco": {"degenerate_box": 1, "no_keypoints": 2},
                                   "mpii": {"degenerate_box": 1}}
    assert {k: v["used"] for k, v in ds.counts().items()} == {"coco": 11, "mpii": 8}
    # printed once, at the start of a run
    assert caplog.text.count("skipped at reading: degenerate_box=2, no_keypoints=2") == 1
