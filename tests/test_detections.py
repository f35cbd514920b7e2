"""Detection files (COCO results format) and ground-truth boxes -> test PersonRecords."""
import json
import logging
import os

import numpy as np
import pytest

from gluonpose.data.datasets import DatasetError
from gluonpose.data.datasets import CocoKeypoints
from gluonpose.data.detections import load_detections
from gluonpose.evaluation.runner import gt_boxes


@pytest.fixture()
def coco_sample(data_dir):
    folder = os.path.join(data_dir, "samples", "coco")
    return (os.path.join(folder, "test_coco_det_AP_H_56.json"),
            os.path.join(folder, "test_coco.json"), folder)


def test_coco_sample_detections(coco_sample):
    det_file, gt_file, folder = coco_sample
    with open(det_file) as f:
        raw = json.load(f)
    recs, skipped = load_detections(det_file, gt_file, folder)
    assert len(recs) == len(raw) == 118 and not skipped
    for rec, det in zip(recs, raw):
        np.testing.assert_allclose(rec.bbox, det["bbox"], rtol=1e-6)
        assert rec.score == pytest.approx(det["score"]) and rec.image_id == det["image_id"]
        assert rec.image_path == os.path.join(folder, "%012d.jpg" % det["image_id"])
        assert os.path.isfile(rec.image_path)
        assert rec.keypoints.shape == (17, 3) and not rec.keypoints.any() and rec.ann_id == -1
    thr = 0.5
    kept = load_detections(det_file, gt_file, folder, score_thresh=thr).records
    assert len(kept) == sum(d["score"] >= thr for d in raw) < 118
    assert min(r.score for r in kept) >= thr


def test_crowdpose_sample_detections(data_dir):
    folder = os.path.join(data_dir, "samples", "crowdpose")
    recs = load_detections(os.path.join(folder, "test_crowdpose_det_AP_40.json"),
                           os.path.join(folder, "test_crowdpose.json"), folder).records
    assert len(recs) == 6
    assert {os.path.basename(r.image_path) for r in recs} <= {"103319.jpg", "106848.jpg"}


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture()
def image_list(tmp_path):
    return _write(tmp_path, "images.json", {"images": [
        {"id": 7, "file_name": "seven.jpg", "width": 100, "height": 100},
        {"id": 8, "file_name": "eight.jpg", "width": 100, "height": 100}]})


def test_degenerate_and_filtered_boxes_are_counted(tmp_path, image_list, caplog):
    dets = [{"image_id": 7, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9},
            {"image_id": 7, "category_id": 1, "bbox": [1, 2, 0, 40], "score": 0.9},
            {"image_id": 8, "category_id": 1, "bbox": [1, 2, 30, -4], "score": 0.9},
            {"image_id": 8, "category_id": 1, "bbox": [float("nan"), 2, 30, 4], "score": 0.9},
            {"image_id": 8, "category_id": 1, "bbox": [1, 2, 30], "score": 0.9},
            {"image_id": 8, "category_id": 3, "bbox": [1, 2, 30, 40], "score": 0.9},
            {"image_id": 8, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.05},
            {"image_id": 8, "category_id": 1, "bbox": [5, 6, 7, 8], "score": 0.5},
            {"image_id": 7, "category_id": 1, "bbox": [3, 3, 0, 0], "score": 0.9},
            {"image_id": 7, "category_id": 1, "bbox": [3, 3, 0.4, 0.9], "score": 0.9}]
    det_file = _write(tmp_path, "dets.json", dets)
    with caplog.at_level(logging.INFO, logger="gluonpose.data.detections"):
        recs, skipped = load_detections(det_file, image_list, "img", score_thresh=0.1)
    # NaN, a negative side, 0x0 and below 1 px are degenerate; w = 0, h = 40 is widened by the
    # aspect fix to a 30x40 crop (as the official test would) and kept
    assert [r.extra["det_index"] for r in recs] == [0, 1, 7]
    assert recs[2].image_path == os.path.join("img", "eight.jpg")
    assert skipped == {"degenerate_box": 4, "malformed_box": 1, "not_person": 1, "low_score": 1}
    assert caplog.text.count("degenerate box") == 4 and "3 of 10 detections kept" in caplog.text


def test_unknown_image_ids_are_named(tmp_path, image_list):
    dets = [{"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1.0},
            {"image_id": 12345, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1.0},
            {"image_id": 999, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1.0}]
    with pytest.raises(DatasetError, match=r"2 image ids are not in .*images.json: \[999, 12345\]"):
        load_detections(_write(tmp_path, "d.json", dets), image_list)


def test_empty_detections(tmp_path, image_list, caplog):
    det_file = _write(tmp_path, "empty.json", [])
    with pytest.raises(DatasetError, match="no detection left"):
        load_detections(det_file, image_list)
    with caplog.at_level(logging.WARNING):
        assert load_detections(det_file, image_list, on_empty="warn").records == []
    assert "no detection left" in caplog.text
    low = _write(tmp_path, "low.json", [{"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4],
                                          "score": 0.01}])
    with pytest.raises(DatasetError, match="low_score"):
        load_detections(low, image_list, score_thresh=0.5)


@pytest.mark.parametrize("content, match", [
    (None, "not found"), ("", "empty"), ("[{", "not valid JSON"), ('{"a": 1}', "json list"),
    ('[{"image_id": 7, "bbox": [1, 2, 3, 4]}]', r"detection 0 needs keys"),
])
def test_bad_detection_files(tmp_path, image_list, content, match):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=match):
        load_detections(str(path), image_list)


def test_gt_boxes(coco_sample):
    _, gt_file, folder = coco_sample
    recs = gt_boxes(gt_file, folder).records
    assert len(recs) == 12 and len(CocoKeypoints(gt_file, folder, skip_empty=False).records) == 14
    assert all(r.score == 1.0 and not r.keypoints.any() for r in recs)
    rec = next(r for r in recs if r.ann_id == 442619)
    np.testing.assert_allclose(rec.bbox, [280.79, 44.73, 217.7, 345.68], atol=1e-4)
    assert rec.image_path == os.path.join(folder, "000000000785.jpg")


def test_evaluation_header_counts_the_skipped_boxes(coco_sample, tmp_path):
    """The line naming the boxes says how many were skipped and why (detections and GT boxes)."""
    from gluonpose.evaluation.runner import detection_boxes, gt_boxes

    det_file, gt_file, folder = coco_sample
    with open(det_file) as f:
        raw = json.load(f)
    raw[0]["bbox"] = [10, 10, 0, 0]
    raw[1]["bbox"] = [10, 10, 0.5, float("inf")]
    boxes = detection_boxes(_write(tmp_path, "dets.json", raw), gt_file, folder)
    assert len(boxes.records) == 116
    assert "116 of 118 boxes kept" in boxes.description
    assert boxes.description.endswith("skipped: degenerate_box=2")
    assert gt_boxes(gt_file, folder).description.endswith("skipped: no_keypoints=2")
    with open(gt_file) as f:
        gt = json.load(f)
    gt["annotations"][0]["bbox"][2:] = [0.6, 0.6]
    with pytest.raises(DatasetError, match="annotation id 442619.*degenerate_box"):
        gt_boxes(_write(tmp_path, "gt.json", gt), folder)
