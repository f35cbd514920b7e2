"""Keypoint error analysis (Ronchi & Perona's taxonomy) on hand-built cases whose answers are known,
against pycocotools for AP and OKS, and end to end through gluonpose-analyze on the real COCO sample."""
import contextlib
import io
import json
import os
import re

import cv2
import numpy as np
import pytest

from _helpers import load_script, run_main
from gluonpose.evaluation.analyze import KEYPOINT_KINDS, analyze_keypoints
from gluonpose.keypoints import COCO_KEYPOINT_NAMES, COCO_SIGMAS

# one person in a 100 x 200 box (joint x, y); left joints at larger x
TEMPLATE = np.array([[50, 10], [55, 8], [45, 8], [60, 10], [40, 10], [70, 40], [30, 40], [80, 80],
                     [20, 80], [85, 120], [15, 120], [65, 120], [35, 120], [65, 160], [35, 160],
                     [65, 195], [35, 195]], np.float64)
AREA = 20000.0
LEFT_KNEE, LEFT_WRIST, NOSE = 13, 9, 0


def _person(pid, image_id, x0, y0):
    k = np.concatenate([TEMPLATE + (x0, y0), np.full((17, 1), 2.0)], axis=1)
    return {"id": pid, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": AREA,
            "bbox": [x0, y0, 100, 200], "num_keypoints": 17, "keypoints": k.ravel().tolist()}


def _gt(tmp_path):
    """Image 1: people 1 (at x 50) and 2 (at x 400); image 2: person 3; image 3: nobody."""
    gt = {"images": [{"id": i, "file_name": "%d.jpg" % i, "width": 640, "height": 480} for i in (1, 2, 3)],
          "annotations": [_person(1, 1, 50, 50), _person(2, 1, 400, 50), _person(3, 2, 100, 100)],
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINT_NAMES),
                          "skeleton": []}]}
    path = str(tmp_path / "gt.json")
    with open(path, "w") as f:
        json.dump(gt, f)
    return path, {a["id"]: np.asarray(a["keypoints"], np.float64).reshape(17, 3) for a in gt["annotations"]}


def _det(image_id, kpts, score=0.9):
    k = np.asarray(kpts, np.float64).copy()
    k[:, 2] = 1.0
    return {"image_id": image_id, "category_id": 1, "keypoints": k.ravel().tolist(), "score": score}


def _run(tmp_path, dets, **kw):
    gt, _ = _gt(tmp_path)
    res = str(tmp_path / "res.json")
    with open(res, "w") as f:
        json.dump(dets, f)
    return analyze_keypoints(gt, res, **kw)


def _ks(d, area, sigma):
    """The per-joint OKS term as pycocotools writes it: exp(-d^2 / (2 sigma)^2 / (area + eps) / 2)."""
    return np.exp(-d ** 2 / (2.0 * sigma) ** 2 / (area + np.spacing(1)) / 2.0)


def _kinds(analysis, image_id, gt_id):
    md = [m for m in analysis.matched if m.image_id == image_id and m.gt_id == gt_id]
    assert len(md) == 1
    return md[0], [KEYPOINT_KINDS[k] for k in md[0].kinds]


def test_oracle_results_are_all_good(tmp_path):
    _, people = _gt(tmp_path)
    a = _run(tmp_path, [_det(1, people[1], 0.9), _det(1, people[2], 0.8), _det(2, people[3], 0.7)])
    s = a.summary
    assert s["keypoints"] == {"good": 51, "jitter": 0, "inversion": 0, "swap": 0, "miss": 0}
    assert s["background_fp"] == 0 and s["false_negatives"] == 0
    assert s["ap"] == pytest.approx(1.0) and s["ap_at_oks_thr"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in s["ap_if_fixed"].values())
    assert all(v == pytest.approx(0.0) for v in s["ap_gain_if_fixed_alone"].values())


def test_left_right_swap_is_an_inversion(tmp_path):
    _, people = _gt(tmp_path)
    flipped = people[1].copy()
    for a, b in ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)):
        flipped[[a, b]] = flipped[[b, a]]
    a = _run(tmp_path, [_det(1, flipped), _det(1, people[2], 0.8), _det(2, people[3], 0.7)])
    md, kinds = _kinds(a, 1, 1)
    assert kinds[NOSE] == "good" and kinds[1:] == ["inversion"] * 16
    assert (md.target[1:] == 1).all()   # they landed on the matched person (mirrored)
    assert a.summary["keypoints"]["inversion"] == 16


def test_joint_on_another_persons_joint_is_a_swap(tmp_path):
    _, people = _gt(tmp_path)
    det = people[1].copy()
    det[LEFT_WRIST, :2] = people[2][LEFT_WRIST, :2]
    det2 = people[1].copy()
    det2[LEFT_WRIST, :2] = people[2][LEFT_WRIST + 1, :2]    # another person's *mirrored* joint: a swap too
    for d in (det, det2):
        a = _run(tmp_path, [_det(1, d), _det(2, people[3], 0.7)])
        md, kinds = _kinds(a, 1, 1)
        assert kinds[LEFT_WRIST] == "swap" and kinds.count("good") == 16
        assert md.target[LEFT_WRIST] == 2


def test_bands_on_a_dense_grid_of_distances(tmp_path):
    """A joint moved away (into empty space) by d: good / jitter / miss exactly by the ks bands,
    with ks computed here from the formula; the bands' edges included (just inside and outside)."""
    _, people = _gt(tmp_path)
    sigma = COCO_SIGMAS[LEFT_KNEE]
    d_at = lambda k: 2 * sigma * np.sqrt(-2 * AREA * np.log(k))   # noqa: E731
    dists = sorted(set(np.linspace(0, 1.6 * d_at(0.5), 41).tolist()
                       + [d_at(0.85) * (1 + e) for e in (-1e-6, 1e-6)]
                       + [d_at(0.5) * (1 + e) for e in (-1e-6, 1e-6)]))
    # classify each distance alone
    for d in dists:
        k = people[3].copy()
        k[LEFT_KNEE, 0] += d
        got = KEYPOINT_KINDS[_kinds(_run(tmp_path, [_det(2, k)]), 2, 3)[0].kinds[LEFT_KNEE]]
        ks = _ks(k[LEFT_KNEE, 0] - people[3][LEFT_KNEE, 0], AREA, sigma)   # from the positions, as COCO
        want = "good" if ks >= 0.85 else "jitter" if ks >= 0.5 else "miss"
        assert got == want, (d, ks)


def test_fixed_joints_land_on_the_stated_ks(tmp_path):
    _, people = _gt(tmp_path)
    sigma = COCO_SIGMAS[LEFT_KNEE]
    for d, kind, target in ((20.0, "jitter", 0.85), (200.0, "miss", 0.5)):
        k = people[3].copy()
        k[LEFT_KNEE, 0] += d
        md, kinds = _kinds(_run(tmp_path, [_det(2, k)]), 2, 3)
        assert kinds[LEFT_KNEE] == kind
        dist = np.linalg.norm(md.fixed_xy[LEFT_KNEE] - people[3][LEFT_KNEE, :2])
        assert _ks(dist, AREA, sigma) == pytest.approx(target, abs=1e-6)
        assert np.allclose(np.delete(md.fixed_xy, LEFT_KNEE, 0), np.delete(k[:, :2], LEFT_KNEE, 0))


def test_background_fp_and_false_negative(tmp_path):
    _, people = _gt(tmp_path)
    nobody = people[1].copy()
    a = _run(tmp_path, [_det(1, people[1]), _det(1, people[2]), _det(3, nobody, 0.95)])
    s = a.summary
    assert s["background_fp"] == 1 and a.background_fp == [2]
    assert s["false_negatives"] == 1 and a.false_negatives == [3]
    assert s["false_negatives_by_size"] == {"small": 0, "medium": 0, "large": 1}
    assert s["false_negatives_by_labelled_joints"]["16-17"] == 1
    assert s["background_fp_by_score"][">=0.75"] == 1
    assert s["keypoints"]["good"] == 34
    # alone: ignoring the FP (ranked first) and the missed person each raise AP; nothing else does
    gains = s["ap_gain_if_fixed_alone"]
    assert gains["background_fp"] > 0.1 and gains["false_negatives"] > 0.1
    assert all(gains[k] == 0 for k in ("miss", "swap", "inversion", "jitter"))


def test_fixing_every_error_gives_ap_one_and_ap_matches_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, people = _gt(tmp_path)
    d1 = people[1].copy()
    d1[[5, 6]] = d1[[6, 5]]                               # inversion
    d1[LEFT_KNEE, 0] += 20                                # jitter (ks 0.72)
    d1[15, 0] += 200                                      # miss
    d2 = people[2].copy()
    d2[LEFT_WRIST, :2] = people[1][LEFT_WRIST, :2]        # swap
    d2[:, 0] += 5
    dets = [_det(1, d1, 0.3), _det(1, d2, 0.5), _det(3, people[3], 0.9)]   # + background FP, FN person 3
    a = _run(tmp_path, dets)
    s = a.summary
    assert s["keypoints"]["inversion"] == 2 and s["keypoints"]["miss"] >= 1
    assert s["keypoints"]["swap"] == 1 and s["keypoints"]["jitter"] >= 1
    assert s["ap_at_oks_thr"] < 1.0
    assert list(s["ap_if_fixed"]) == ["miss", "swap", "inversion", "jitter", "score", "background_fp",
                                      "false_negatives"]
    assert s["ap_if_fixed"]["false_negatives"] == pytest.approx(1.0)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(COCO(gt), COCO(gt).loadRes(str(tmp_path / "res.json")), "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert s["ap"] == pytest.approx(ev.stats[0], abs=1e-6)
    for md in a.matched:    # our OKS is pycocotools' OKS of the pair
        dt_ids = [d["id"] for d in ev._dts[md.image_id, 1]]
        gt_ids = [g["id"] for g in ev._gts[md.image_id, 1]]
        order = np.argsort([-d["score"] for d in ev._dts[md.image_id, 1]], kind="mergesort")
        row = list(order).index(dt_ids.index(md.index + 1))
        assert md.oks == pytest.approx(ev.ious[md.image_id, 1][row, gt_ids.index(md.gt_id)], abs=1e-9)


@pytest.fixture(scope="module")
def perturbed(coco, tmp_path_factory):
    """Results on the real COCO sample: each person's joints moved (some mirrored, some wrists far),
    one person left out, one detection where nobody is."""
    rng = np.random.RandomState(1)
    with open(coco["gt"]) as f:
        gt = json.load(f)
    people = [a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd")]
    dets = []
    for n, a in enumerate(people[:-1]):
        k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        k[:, :2] += rng.randn(17, 2) * np.sqrt(a["area"]) * 0.03
        if n % 3 == 0:
            k[1:] = k[1:].reshape(8, 2, 3)[:, ::-1].reshape(16, 3)
        dets.append(_det(a["image_id"], k, float(rng.rand())))
    dets.append(_det(gt["images"][0]["id"], np.tile([5.0, 5.0, 1.0], (17, 1)), 0.99))
    path = str(tmp_path_factory.mktemp("analyze") / "res.json")
    with open(path, "w") as f:
        json.dump(dets, f)
    return path


def test_gluonpose_analyze_writes_plots_summary_and_report(repo_root, coco, perturbed, tmp_path):
    out = str(tmp_path / "analysis")
    code, text = run_main(load_script("analyze_errors").main,
                          [perturbed, "--gt", coco["gt"], "--images", coco["dir"], "--out", out])
    assert code == 0, text
    assert "background false positives 1; false negatives 1" in text
    pngs = sorted(n for n in os.listdir(out) if n.endswith(".png"))
    assert pngs == ["ap_gains.png", "background_errors.png", "keypoint_errors.png", "oks_histogram.png",
                    "precision_recall.png"]
    for n in pngs:
        img = cv2.imread(os.path.join(out, n))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 5
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    assert set(s["keypoints"]) == set(KEYPOINT_KINDS) and s["keypoints"]["inversion"] >= 16
    assert s["background_fp"] == 1 and s["false_negatives"] == 1 and 0 < s["ap"] < 1
    assert s["ap_if_fixed"]["false_negatives"] == pytest.approx(1.0)
    assert s["unreadable_images"] == 0 and s["cases_drawn"] == 8 + 1 + 1
    with open(os.path.join(out, "report.html")) as f:
        page = f.read()
    assert not re.search(r"(src|href)=['\"](?!data:)", page)   # self-contained: no file or network links
    uris = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(uris) == len(pngs) + s["cases_drawn"]
    import base64
    for u in uris:                                             # every embedded image decodes
        img = cv2.imdecode(np.frombuffer(base64.b64decode(u), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.size > 0
    for word in ("inversion", "background false positive", "false negative"):
        assert word in page


def test_missing_images_are_counted_not_fatal(coco, perturbed, tmp_path):
    out = str(tmp_path / "a")
    code, text = run_main(load_script("analyze_errors").main,
                          [perturbed, "--gt", coco["gt"], "--images", str(tmp_path / "nowhere"), "--out", out])
    assert code == 0, text
    assert "not found or unreadable" in text
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    assert s["cases_drawn"] == 0 and s["unreadable_images"] == 4


@pytest.mark.parametrize("case", ["missing", "malformed", "unknown_image", "nan", "empty", "bad_oks"])
def test_bad_input_is_one_error_line(coco, perturbed, tmp_path, capsys, case):
    res = str(tmp_path / "r.json")
    extra = []
    with open(perturbed) as f:
        good = json.load(f)
    if case == "malformed":
        open(res, "w").write("[{\"image_id\": 1,")
    elif case == "unknown_image":
        json.dump(good + [dict(good[0], image_id=123456789)], open(res, "w"))
    elif case == "nan":
        bad = dict(good[1])
        bad["keypoints"] = [float("nan")] + bad["keypoints"][1:]
        json.dump(good[:1] + [bad], open(res, "w"))
    elif case == "empty":
        json.dump([], open(res, "w"))
    elif case == "bad_oks":
        res, extra = perturbed, ["--analysis-oks", "1.5"]
    code = load_script("analyze_errors").main([res, "--gt", coco["gt"], "--out", str(tmp_path / "o")] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert ("r.json" in err[0]) if case != "bad_oks" else ("oks_thr" in err[0])
    assert not os.path.exists(tmp_path / "o" / "summary.json")
