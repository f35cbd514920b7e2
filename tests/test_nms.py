"""OKS and OKS-NMS: against pycocotools' own OKS and hand-built duplicate / distinct poses."""
import contextlib
import io

import numpy as np
import pytest

from gluonpose.keypoints import COCO_SIGMAS
from gluonpose.evaluation.nms import (oks_iou, oks_nms, oks_nms_arrays,
                                      soft_oks_nms, soft_oks_nms_arrays)

# A plausible standing person (COCO-17 order), about 100 x 250 px.
BASE_POSE = np.array([
    [250, 100], [255, 95], [245, 95], [262, 98], [238, 98], [280, 140], [220, 140],
    [290, 190], [210, 190], [295, 235], [205, 235], [270, 240], [230, 240],
    [272, 300], [228, 300], [274, 350], [226, 350]], dtype=np.float64)


def _pose(offset=(0.0, 0.0), score=0.9):
    kp = np.zeros((17, 3))
    kp[:, :2] = BASE_POSE + np.asarray(offset)
    kp[:, 2] = score
    return kp


def _pycocotools_oks(gt_kpts, gt_area, dt_kpts):
    """OKS of each detection against one GT with pycocotools COCOeval.computeOks -> (D,)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "width": 640, "height": 480}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "area": float(gt_area), "bbox": [200.0, 80.0, 100.0, 280.0],
                         "num_keypoints": int((gt_kpts[:, 2] > 0).sum()),
                         "keypoints": gt_kpts.reshape(-1).tolist()}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dets = [{"image_id": 1, "category_id": 1, "keypoints": d.reshape(-1).tolist(),
                 "score": 1.0 - 0.01 * i} for i, d in enumerate(dt_kpts)]
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "keypoints")
        ev._prepare()
        ious = ev.computeOks(1, 1)
    return np.asarray(ious)[:, 0]      # detections are already in score order


def test_oks_matches_pycocotools_all_visible():
    rng = np.random.default_rng(0)
    gt = _pose(score=2)
    dets = np.stack([_pose(rng.normal(0, s, size=(17, 2)), score=1) for s in (0.5, 3, 8, 20)])
    area = 21000.0
    want = _pycocotools_oks(gt, area, dets)
    # With equal areas the official (a_g + a_d) / 2 equals the GT area pycocotools uses.
    got = oks_iou(gt, dets, area, np.full(len(dets), area), sigmas=COCO_SIGMAS)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] > got[1] > got[2] > got[3]
    assert 0.0 < got[-1] < 0.9


def test_oks_matches_pycocotools_partial_visibility():
    rng = np.random.default_rng(1)
    gt = _pose(score=2)
    gt[[0, 3, 9, 16], :] = 0.0          # unlabelled GT joints: pycocotools ignores them
    dets = np.stack([_pose(rng.normal(0, 5, size=(17, 2)), score=1) for _ in range(3)])
    area = 15000.0
    want = _pycocotools_oks(gt, area, dets)
    got = oks_iou(gt.reshape(-1), dets.reshape(3, -1), area, [area] * 3, in_vis_thr=0.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # Without the visibility mask the unlabelled (0, 0) joints drag the OKS down.
    assert (oks_iou(gt, dets, area, [area] * 3) < got).all()


def test_oks_uniform_shift_hand_computed():
    shift, area = 4.0, 10000.0
    got = oks_iou(_pose(), _pose((shift, 0))[None], area, [area])[0]
    want = np.mean(np.exp(-shift ** 2 / (2 * area * (2 * COCO_SIGMAS) ** 2)))
    assert got == pytest.approx(want, rel=1e-12)
    # Different areas: the scale is their mean.
    got2 = oks_iou(_pose(), _pose((shift, 0))[None], 6000.0, [14000.0])[0]
    assert got2 == pytest.approx(want, rel=1e-12)


def test_greedy_nms_suppresses_duplicates_keeps_distinct():
    poses = np.stack([
        _pose((0, 0)),            # 0: person A
        _pose((1.5, -1.0)),       # 1: duplicate of A
        _pose((300, 10)),         # 2: person B, far away
        _pose((-0.5, 0.8)),       # 3: duplicate of A (highest score)
        _pose((301, 11)),         # 4: duplicate of B
        _pose((60, 0)),           # 5: person C, overlapping A but clearly distinct
    ])
    scores = np.array([0.8, 0.7, 0.6, 0.95, 0.5, 0.4])
    areas = np.full(6, 25000.0)
    keep = oks_nms_arrays(poses, scores, areas, thr=0.9)
    assert keep.tolist() == [3, 2, 5]
    db = [{"keypoints": p, "score": s, "area": a} for p, s, a in zip(poses, scores, areas)]
    assert oks_nms(db, 0.9, sigmas=COCO_SIGMAS) == [3, 2, 5]
    # A lower threshold also suppresses the overlapping person C; a threshold of 1 keeps all.
    oks_ac = oks_iou(poses[3], poses[5][None], 25000.0, [25000.0])[0]
    assert oks_nms_arrays(poses, scores, areas, thr=oks_ac - 1e-6).tolist() == [3, 2]
    assert sorted(oks_nms_arrays(poses, scores, areas, thr=1.0).tolist()) == list(range(6))


def test_nms_threshold_is_strict_greater():
    a, b = _pose(), _pose((3.0, 0))
    ovr = oks_iou(a, b[None], 20000.0, [20000.0])[0]
    both = np.stack([a, b])
    assert oks_nms_arrays(both, [0.9, 0.8], [2e4, 2e4], thr=ovr).tolist() == [0, 1]
    assert oks_nms_arrays(both, [0.9, 0.8], [2e4, 2e4], thr=ovr - 1e-9).tolist() == [0]


def test_soft_nms_demotes_duplicates():
    poses = np.stack([_pose(), _pose((0.5, 0.5)), _pose((300, 0))])
    scores = [0.9, 0.85, 0.5]
    # After picking 0, the duplicate decays to ~0.85 * exp(-1 / 0.9) = 0.28 < 0.5.
    keep = soft_oks_nms_arrays(poses, scores, [2e4] * 3, thr=0.9)
    assert keep.tolist() == [0, 2, 1]
    assert soft_oks_nms_arrays(poses, scores, [2e4] * 3, thr=0.9, max_dets=2).tolist() == [0, 2]
    db = [{"keypoints": p.reshape(-1), "score": s, "area": 2e4} for p, s in zip(poses, scores)]
    assert soft_oks_nms(db, 0.9) == [0, 2, 1]


def test_empty_and_bad_inputs():
    assert oks_nms([], 0.9) == []
    assert soft_oks_nms([], 0.9) == []
    with pytest.raises(ValueError, match="sigmas"):
        oks_iou(_pose(), _pose()[None], 1.0, [1.0], sigmas=np.ones(14))
    with pytest.raises(KeyError, match="area"):
        oks_nms([{"keypoints": _pose(), "score": 1.0}], 0.9)
    assert not COCO_SIGMAS.flags.writeable
