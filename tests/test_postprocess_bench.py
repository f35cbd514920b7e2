"""COCO-val-sized post-processing benchmark (``benchmark.py --postprocess [--side-by-side]``) on a small job.

The "official" side here is a stand-in repository written by the test (``lib/dataset/coco.py``, ``lib/nms/nms.py``
with the official module layout and interfaces: a ``COCODataset`` on a torch-free ``JointsDataset`` stub, an
``oks_nms`` next to compiled ``cpu_nms`` / ``gpu_nms`` imports), run by ``gluonpose/benchmarks/official_evaluate.py``
in this Python: the loader, the kept-set comparison, the per-stage table, the medians, ratio and RESULT line are
the real ones. Also: the vectorised OKS-NMS against a plain greedy loop written here.
"""
import json
import math
import os
import re
import statistics
import sys

import numpy as np
import pytest

from gluonpose.benchmarks import postprocess
from gluonpose.data.geometry import box_to_center_scale
from gluonpose.evaluation.coco_metric import nms_per_image
from gluonpose.evaluation.nms import _oks_rows, oks_iou, oks_nms_arrays, oks_nms_grouped
from gluonpose.keypoints import COCO_SIGMAS
from gluonpose.tools import benchmark

# ------------------------------------------------------------------------------------------- stand-in official
STAND_IN_NMS = '''
import numpy as np
from .cpu_nms import cpu_nms
from .gpu_nms import gpu_nms


def oks_nms(kpts_db, thresh, sigmas=None, in_vis_thre=None):
    """Plain greedy OKS-NMS, one pair at a time."""
    sig = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
    order = sorted(range(len(kpts_db)), key=lambda i: -kpts_db[i]["score"])
    keep = []
    for i in order:
        gi = np.asarray(kpts_db[i]["keypoints"], dtype=np.float64)
        dropped = False
        for j in keep:
            gj = np.asarray(kpts_db[j]["keypoints"], dtype=np.float64)
            s = (kpts_db[i]["area"] + kpts_db[j]["area"]) / 2 + np.spacing(1)
            d2 = ((gi[:, :2] - gj[:, :2]) ** 2).sum(axis=1)
            if np.mean(np.exp(-d2 / (2 * s * (2 * sig) ** 2))) > thresh:
                dropped = True
                break
        if not dropped:
            keep.append(i)
    return keep
'''

STAND_IN_COCO = '''
import json
import os
from collections import OrderedDict, defaultdict

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dataset.JointsDataset import JointsDataset
from nms.nms import oks_nms
import {extra_import}


class COCODataset(JointsDataset):
    def __init__(self, cfg, root, image_set, is_train, transform=None):
        super().__init__(cfg, root, image_set, is_train, transform)
        self.oks_thre = cfg.TEST.OKS_THRE
        self.in_vis_thre = cfg.TEST.IN_VIS_THRE
        self.coco = COCO(self._get_ann_file_keypoint())
        self.db = self._get_db()

    def _get_ann_file_keypoint(self):
        raise NotImplementedError

    def _get_db(self):
        raise NotImplementedError

    def evaluate(self, cfg, preds, output_dir, all_boxes, img_path, *args, **kwargs):
        res_folder = os.path.join(output_dir, "results")
        os.makedirs(res_folder, exist_ok=True)
        res_file = os.path.join(res_folder, "keypoints_%s_results_%d.json" % (self.image_set, cfg.RANK))
        kpts = defaultdict(list)
        for idx, kpt in enumerate(preds):
            kpts[int(img_path[idx][-16:-4])].append(
                {{"keypoints": kpt, "area": all_boxes[idx][4], "score": all_boxes[idx][5],
                  "image": int(img_path[idx][-16:-4])}})
        kept = []
        for img, people in kpts.items():
            for p in people:
                joint = [float(s) for s in p["keypoints"][:, 2] if s > self.in_vis_thre]
                p["score"] = p["score"] * (sum(joint) / len(joint) if joint else 0)
            keep = oks_nms(people, self.oks_thre)
            {drop}
            kept.append([people[k] for k in keep])
        self._write_coco_keypoint_results(kept, res_file)
        name_value = OrderedDict(self._do_python_keypoint_eval(res_file, res_folder))
        return name_value, name_value["AP"]

    def _write_coco_keypoint_results(self, keypoints, res_file):
        results = [{{"image_id": p["image"], "category_id": 1, "score": float(p["score"]),
                    "keypoints": [float(v) for v in np.asarray(p["keypoints"], dtype=np.float64).reshape(-1)]}}
                   for people in keypoints for p in people]
        with open(res_file, "w") as f:
            json.dump(results, f)

    def _do_python_keypoint_eval(self, res_file, res_folder):
        coco_eval = COCOeval(self.coco, self.coco.loadRes(res_file), "keypoints")
        coco_eval.params.useSegm = None
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        names = ["AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]
        return [(n, coco_eval.stats[i]) for i, n in enumerate(names)]
'''


def _stand_in_repo(folder, *, drop_one=False, extra_import="os"):
    """A folder with the official layout: ``lib/nms/{__init__,nms}.py`` and ``lib/dataset/coco.py``.

    ``drop_one``: the stand-in's NMS loses the last kept pose of every image with more than one (a wrong
    official side); ``extra_import``: a module its coco.py imports (a missing one plays a missing dependency)."""
    drop = "keep = keep[:-1] if len(keep) > 1 else keep" if drop_one else "pass"
    files = {"lib/nms/__init__.py": "", "lib/nms/nms.py": STAND_IN_NMS,
             "lib/dataset/coco.py": STAND_IN_COCO.format(drop=drop, extra_import=extra_import)}
    for rel, text in files.items():
        path = os.path.join(str(folder), *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return str(folder)


def _round_figures(lines, label):
    return [float(m.group(1)) for m in (re.match(r"round \d+ %s +([0-9.]+) samples/s" % label, x) for x in lines)
            if m]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Cache root of the small jobs (8 images, 160 boxes, made from the COCO samples)."""
    return str(tmp_path_factory.mktemp("postprocess_jobs"))


def test_side_by_side_with_a_stand_in_official(tmp_path, cache):
    repo = _stand_in_repo(tmp_path / "official")
    lines = []
    code = postprocess.run_postprocess(cache_root=cache, side_by_side=True, official_repo=repo,
                                       official_python=sys.executable, rounds=3, quiet_wait=0, images=8, boxes=160,
                                       log=lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    assert re.search(r"kept sets identical: 8 images, \d+ poses on both sides", text), text
    assert "all 10 COCO statistics equal" in text, text
    ours, official = _round_figures(lines, "gluonpose"), _round_figures(lines, "official")
    assert len(ours) == 3 and len(official) == 3
    for stage in postprocess.STAGES + ("total",):
        assert re.search(r"^\| %s \| [0-9.]+ s \| [0-9.]+ s \|$" % re.escape(stage), text, re.M), stage
    aps = [float(v) for v in re.findall(r"^(?:gluonpose|official): AP ([0-9.]+)", text, re.M)]
    assert len(aps) == 2 and aps[0] == aps[1] and 0.3 < aps[0] <= 1.0
    result = re.fullmatch(r"RESULT postprocess 8 images 160 poses side-by-side, kept sets identical, "
                          r"gluonpose/official ratio ([0-9.]+), gluonpose samples/s: ([0-9.]+)", lines[-1])
    assert result, lines[-1]
    assert float(result.group(2)) == pytest.approx(statistics.median(ours), abs=1e-3)
    assert float(result.group(1)) == pytest.approx(statistics.median(ours) / statistics.median(official), rel=1e-3)


def test_a_differing_official_side_is_reported(tmp_path, cache):
    repo = _stand_in_repo(tmp_path / "official", drop_one=True)
    lines = []
    code = postprocess.run_postprocess(cache_root=cache, side_by_side=True, official_repo=repo,
                                       official_python=sys.executable, rounds=1, quiet_wait=0, images=8, boxes=160,
                                       log=lines.append)
    text = "\n".join(lines)
    assert code == 1, text
    assert re.search(r"kept sets DIFFER in \d+ place\(s\).*image \d+: 1 pose\(s\) kept only by gluonpose, 0 only "
                     r"by the official code", text), text
    assert "kept sets DIFFER" in lines[-1] and lines[-1].startswith("RESULT postprocess 8 images 160 poses")


def test_ours_alone(cache):
    lines = []
    assert postprocess.run_postprocess(cache_root=cache, rounds=2, quiet_wait=0, images=8, boxes=160,
                                       log=lines.append) == 0
    ours = _round_figures(lines, "gluonpose")
    result = re.fullmatch(r"RESULT postprocess 8 images 160 poses samples/s: ([0-9.]+)", lines[-1])
    assert result and len(ours) == 2, lines
    assert float(result.group(1)) == pytest.approx(statistics.median(ours), abs=1e-3)
    assert not _round_figures(lines, "official") and not any(line.startswith("official") for line in lines)


def _error(capsys, argv):
    code = benchmark.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert [line for line in lines if "error: " in line] == lines[-1:] and lines[-1].startswith("error: "), err
    return lines[-1]


def test_user_errors_are_one_line(tmp_path, capsys):
    missing = str(tmp_path / "no_repo")
    line = _error(capsys, ["--postprocess", "--side-by-side", "--official-repo", missing,
                           "--official-python", sys.executable])
    assert "--official-repo" in line and missing in line, line
    line = _error(capsys, ["--postprocess", "--side-by-side", "--official-repo", str(tmp_path),
                           "--official-python", str(tmp_path / "python")])
    assert "--official-python" in line and str(tmp_path / "python") in line, line
    empty = tmp_path / "empty_checkout"
    empty.mkdir()
    line = _error(capsys, ["--postprocess", "--side-by-side", "--official-repo", str(empty),
                           "--official-python", sys.executable])
    assert "lib/nms/__init__.py" in line and str(empty) in line, line
    repo = _stand_in_repo(tmp_path / "needs_more", extra_import="json_tricks_not_installed_here")
    line = _error(capsys, ["--postprocess", "--side-by-side", "--official-repo", repo,
                           "--official-python", sys.executable])
    assert "json_tricks_not_installed_here" in line and sys.executable in line, line


# ----------------------------------------------------------------------------------------------- kept sets
def _write(path, results):
    with open(str(path), "w") as f:
        json.dump(results, f)
    return str(path)


def test_compare_kept(tmp_path):
    a = [{"image_id": 1, "keypoints": [1.5, 2.0, 0.5] * 17, "score": 0.7},
         {"image_id": 1, "keypoints": [3.0, 4.0, 0.5] * 17, "score": 0.3},
         {"image_id": 2, "keypoints": [5.0, 6.0, 0.9] * 17, "score": 0.9}]
    ours = _write(tmp_path / "a.json", a)
    shuffled = [dict(a[1], score=0.3 * (1 + 1e-12)), a[2], a[0]]
    same = postprocess.compare_kept(ours, _write(tmp_path / "b.json", shuffled))
    assert same.identical and same.poses == (3, 3) and same.images == 2, same
    assert 0 < same.max_score_rel_diff < 1e-11
    fewer = postprocess.compare_kept(ours, _write(tmp_path / "c.json", a[:2]))
    assert not fewer.identical and "image 2: 1 pose(s) kept only by gluonpose" in fewer.message, fewer
    moved = [a[0], dict(a[1], keypoints=[3.0, 4.0 + 1e-9, 0.5] * 17), a[2]]
    assert not postprocess.compare_kept(ours, _write(tmp_path / "d.json", moved)).identical
    rescored = postprocess.compare_kept(ours, _write(tmp_path / "e.json", [a[0], dict(a[1], score=0.31), a[2]]))
    assert not rescored.identical and "score 0.3 vs official 0.31" in rescored.message, rescored


def test_poses_are_deterministic_with_official_areas(coco, tmp_path):
    one = postprocess.make_poses(coco["gt"], coco["det"])
    two = postprocess.make_poses(coco["gt"], coco["det"])
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
    dets = json.load(open(coco["det"]))
    assert one["keypoints"].shape == (len(dets), 17, 3) and one["keypoints"].dtype == np.float32
    scores = one["keypoints"][:, :, 2]
    assert scores.min() >= 0 and scores.max() <= 1
    i = 7
    _, scale = box_to_center_scale(dets[i]["bbox"], postprocess.INPUT_SIZE_WH, 1.25)
    assert one["areas"][i] == float(np.prod(scale.astype(np.float32)))
    np.testing.assert_allclose(one["scales"][i] * 200.0, scale)
    assert one["box_scores"][i] == dets[i]["score"] and one["image_ids"][i] == dets[i]["image_id"]
    # the boxes on people carry their poses: most of them survive a strict NMS, some duplicates do not
    kept = nms_per_image(one["keypoints"].astype(np.float64), one["box_scores"], one["areas"], one["image_ids"])
    assert len(dets) // 2 < len(kept) < len(dets)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none.json"))):
        postprocess.make_poses(str(tmp_path / "none.json"), coco["det"])


# ----------------------------------------------------------------------------------------- vectorised NMS
def _plain_greedy(kpts, scores, areas, thr):
    """Greedy OKS-NMS, one pair and one joint at a time (math.exp), ties: the later row first."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], -i))
    keep = []
    for i in order:
        ok = True
        for j in keep:
            s = (areas[i] + areas[j]) / 2 + np.spacing(1)
            oks = sum(math.exp(-((kpts[i, k, 0] - kpts[j, k, 0]) ** 2 + (kpts[i, k, 1] - kpts[j, k, 1]) ** 2)
                               / (2 * s * (2 * COCO_SIGMAS[k]) ** 2)) for k in range(17)) / 17
            if oks > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def _random_images(seed, sizes):
    """Poses of images of the given sizes: a few people per image, each seen by several jittered boxes."""
    rng = np.random.default_rng(seed)
    kpts, ids = [], []
    for img, size in enumerate(sizes):
        people = rng.uniform(0, 500, (max(1, size // 3), 17, 2))
        for _ in range(size):
            p = people[rng.integers(len(people))] + rng.normal(0, rng.choice([0.5, 2, 6]), (17, 2))
            kpts.append(np.concatenate([p, rng.random((17, 1))], axis=1))
            ids.append(1000 - 7 * img)                  # ids not in row order
    num = len(ids)
    return np.array(kpts), rng.random(num), rng.uniform(2e3, 3e4, num), np.array(ids)


@pytest.mark.parametrize("block_bytes", [64 << 20, 1])
def test_grouped_nms_keeps_what_a_plain_greedy_loop_keeps(block_bytes):
    sizes = [1, 2, 3, 5, 8, 8, 13, 21, 21, 21, 30, 2, 1, 17]
    kpts, scores, areas, ids = _random_images(0, sizes)
    kept = oks_nms_grouped(kpts, scores, areas, ids, 0.9, block_bytes=block_bytes)
    want = []
    for img in sorted(set(ids.tolist())):
        rows = np.flatnonzero(ids == img)
        plain = rows[_plain_greedy(kpts[rows], scores[rows], areas[rows], 0.9)]
        per_image = rows[oks_nms_arrays(kpts[rows], scores[rows], areas[rows], 0.9)]
        assert plain.tolist() == per_image.tolist(), img
        want += plain.tolist()
    assert kept.tolist() == want
    assert len(sizes) < len(want) < len(ids)               # some suppressed, more than one kept per image


def test_grouped_nms_ties_and_thresholds_like_the_per_image_loop():
    kpts, scores, areas, ids = _random_images(1, [6, 9, 4])
    scores[:] = np.round(scores * 3) / 3                    # many equal scores
    kpts[[1, 8, 12]], areas[[1, 8, 12]] = kpts[[0, 7, 11]], areas[[0, 7, 11]]    # exact copies: OKS 1.0
    for thr in (0.0, 0.5, 0.9, 1.0):
        got = oks_nms_grouped(kpts, scores, areas, ids, thr)
        want = np.concatenate([np.flatnonzero(ids == img)[oks_nms_arrays(kpts[ids == img], scores[ids == img],
                                                                           areas[ids == img], thr)]
                               for img in sorted(set(ids.tolist()))])
        assert got.tolist() == want.tolist(), thr
    assert oks_nms_grouped(np.zeros((0, 17, 3)), [], [], []).size == 0


def test_oks_rows_are_bit_identical_to_oks_iou():
    kpts, _, areas, _ = _random_images(2, [12])
    got = _oks_rows(kpts[None, 0, :, 0], kpts[None, 0, :, 1], kpts[None, 1:, :, 0], kpts[None, 1:, :, 1],
                    areas[None, 0], areas[None, 1:], (2 * COCO_SIGMAS) ** 2)[0]
    np.testing.assert_array_equal(got, oks_iou(kpts[0], kpts[1:], areas[0], areas[1:]))
