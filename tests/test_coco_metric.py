"""COCO keypoint metric: rescoring by hand, and a pycocotools oracle on the real sample annotations."""
import contextlib
import io
import json
import os

import numpy as np
import pytest

from gluonpose.evaluation.coco_metric import (STATS_NAMES, evaluate_keypoints, format_stats_table,
                                              nms_per_image, rescore, write_coco_results,
                                              write_keypoint_results)


@pytest.fixture(scope="module")
def gt_path(data_dir):
    path = os.path.join(data_dir, "samples", "coco", "test_coco.json")
    if not os.path.isfile(path):
        pytest.skip("sample COCO annotations absent: %s" % path)
    return path


def _gt_people(gt_path):
    """Labelled GT persons (num_keypoints > 0) -> image ids (P,), keypoints (P, 17, 3), boxes (P, 4)."""
    with open(gt_path) as f:
        anns = [a for a in json.load(f)["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    ids = np.array([a["image_id"] for a in anns])
    kpts = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)
    boxes = np.array([a["bbox"] for a in anns], dtype=np.float64)
    return ids, kpts, boxes


def _as_predictions(ids, kpts):
    """GT triplets -> predictions with joint score 1 where labelled, 0 elsewhere, person score 1."""
    pred = kpts.copy()
    pred[:, :, 2] = (kpts[:, :, 2] > 0).astype(np.float64)
    return [{"image_id": int(i), "keypoints": p, "score": 1.0} for i, p in zip(ids, pred)]


def _pycocotools_stats(gt_path, results):
    """The 10 stats computed directly with pycocotools on an in-memory results list."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)


def test_rescore_hand_computed():
    ks = np.array([[0.1, 0.5, 0.9, 0.2],      # 0.2 itself is not above the threshold
                   [0.1, 0.15, 0.0, 0.2],     # nothing above -> 0
                   [1.0, 1.0, 1.0, 1.0]])
    got = rescore(ks, [0.8, 0.9, 0.5], in_vis_thr=0.2)
    np.testing.assert_allclose(got, [0.8 * 0.7, 0.0, 0.5])
    np.testing.assert_allclose(rescore(ks, [1, 1, 1], in_vis_thr=0.0), [0.425, 0.15, 1.0])
    with pytest.raises(ValueError):
        rescore(ks, [1.0, 1.0])


def test_ground_truth_as_predictions_gives_ap_one(gt_path, tmp_path):
    ids, kpts, _ = _gt_people(gt_path)
    res = tmp_path / "res.json"
    assert write_coco_results(_as_predictions(ids, kpts), str(res)) == len(ids)
    written = json.loads(res.read_text())
    assert {tuple(sorted(r)) for r in written} == {("category_id", "image_id", "keypoints", "score")}
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 51 for r in written)
    stats = evaluate_keypoints(gt_path, str(res))
    assert list(stats) == list(STATS_NAMES)
    for name in ("AP", "AP .5", "AP .75", "AR", "AR .5", "AR .75"):
        assert stats[name] == pytest.approx(1.0), name
    np.testing.assert_allclose(list(stats.values()), _pycocotools_stats(gt_path, written))
    assert not [p for p in os.listdir(tmp_path) if p != "res.json"], "temp file left behind"


def test_noisy_predictions_lower_ap_and_match_pycocotools(gt_path, tmp_path):
    ids, kpts, _ = _gt_people(gt_path)
    rng = np.random.default_rng(2019)
    previous_ap = 1.0
    for noise_px in (2.0, 8.0):
        noisy = kpts.copy()
        noisy[:, :, :2] += rng.normal(0.0, noise_px, size=noisy[:, :, :2].shape)
        preds = _as_predictions(ids, noisy)
        for i, p in enumerate(preds):           # distinct scores so the ranking is defined
            p["score"] = 1.0 - 0.01 * i
        res = tmp_path / ("noisy_%g.json" % noise_px)
        write_coco_results(preds, str(res))
        stats = evaluate_keypoints(gt_path, str(res))
        independent = [{"image_id": int(i), "category_id": 1,
                        "keypoints": p["keypoints"].reshape(-1).tolist(), "score": p["score"]}
                       for i, p in zip(ids, preds)]
        np.testing.assert_allclose(list(stats.values()), _pycocotools_stats(gt_path, independent),
                                   rtol=0, atol=1e-9)
        assert stats["AP"] < previous_ap
        previous_ap = stats["AP"]
    assert previous_ap < 0.9


def test_pipeline_rescores_suppresses_duplicates_and_keeps_people(gt_path, tmp_path):
    ids, kpts, boxes = _gt_people(gt_path)
    pred = np.stack([p["keypoints"] for p in _as_predictions(ids, kpts)])
    dup = pred.copy()
    dup[:, :, :2] += 0.7                     # near-identical second detection of every person
    all_kpts = np.concatenate([pred, dup])
    box_scores = np.concatenate([np.ones(len(ids)), np.full(len(ids), 0.6)])
    areas = np.tile(np.prod(boxes[:, 2:], axis=1) * 1.25 ** 2, 2)
    all_ids = np.tile(ids, 2)
    kept = nms_per_image(all_kpts, box_scores, areas, all_ids, in_vis_thr=0.2, oks_thr=0.9)
    assert sorted(k["index"] for k in kept) == list(range(len(ids)))
    assert all(k["score"] == pytest.approx(1.0) for k in kept)
    res = tmp_path / "pipe.json"
    assert write_keypoint_results(str(res), all_kpts, box_scores, areas, all_ids) == len(ids)
    assert evaluate_keypoints(gt_path, str(res))["AP"] == pytest.approx(1.0)
    # Without suppression (threshold 1) every duplicate survives with its rescored score 0.6.
    loose = nms_per_image(all_kpts, box_scores, areas, all_ids, oks_thr=1.0)
    assert len(loose) == 2 * len(ids)
    assert sorted(k["score"] for k in loose)[0] == pytest.approx(0.6)


def test_empty_results_and_unknown_images(gt_path, tmp_path):
    empty = tmp_path / "empty.json"
    assert write_coco_results([], str(empty)) == 0
    with pytest.raises(ValueError, match="empty"):
        evaluate_keypoints(gt_path, str(empty))
    zeros = evaluate_keypoints(gt_path, str(empty), allow_empty=True)
    assert list(zeros.values()) == [0.0] * 10
    ids, kpts, _ = _gt_people(gt_path)
    preds = _as_predictions(ids, kpts)
    preds[0]["image_id"] = 123456789
    bad = tmp_path / "bad.json"
    write_coco_results(preds, str(bad))
    with pytest.raises(ValueError, match="123456789"):
        evaluate_keypoints(gt_path, str(bad))
    with pytest.raises(ValueError, match="prediction 0"):
        write_coco_results([{"image_id": 1, "keypoints": [np.nan] * 51, "score": 1.0}],
                           str(tmp_path / "nan.json"))
    assert not (tmp_path / "nan.json").exists()
    with pytest.raises(ValueError, match="row 1"):
        nms_per_image(np.stack([kpts[0], kpts[0] * np.nan]), [1, 1], [1e4, 1e4], [1, 1])


def test_writer_overwrites_atomically(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_coco_results([{"image_id": 5, "keypoints": np.ones((17, 3)), "score": 0.5}], str(path))
    write_coco_results([{"image_id": 7, "keypoints": np.zeros(51), "score": 0.25}], str(path))
    assert json.loads(path.read_text()) == [
        {"image_id": 7, "category_id": 1, "keypoints": [0.0] * 51, "score": 0.25}]
    assert os.listdir(path.parent) == ["r.json"]


def test_format_stats_table():
    stats = dict(zip(STATS_NAMES, np.linspace(0.1, 1.0, 10)))
    table = format_stats_table(stats, name="w48")
    lines = table.splitlines()
    assert len(lines) == 3
    assert all(name in lines[0] for name in STATS_NAMES)
    assert lines[2].startswith("| w48 | 0.100 | 0.200 |") and lines[2].endswith("| 1.000 |")
