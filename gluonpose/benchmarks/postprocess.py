"""COCO-val-sized post-processing, ours and side by side with the official HRNet ``evaluate`` path.

The work after inference: rescoring (box score x mean confident joint score), per-image OKS-NMS, the results
json and pycocotools (``COCO(gt)``, ``loadRes``, evaluate, accumulate, summarize), on 104,125 poses of 5,000
images (:func:`gluonpose.benchmarks.coco_val.coco_val_job`).

* Ours is what :func:`gluonpose.evaluation.runner.score_keypoints` runs: :func:`nms_per_image`,
  :func:`write_coco_results`, :func:`evaluate_keypoints`, each timed.
* The official side is ``gluonpose/benchmarks/official_evaluate.py`` run by the official Python on the official code
  read from the user's checkout or git mirror (its ``COCODataset.evaluate``: rescoring loop, ``oks_nms``,
  ``_write_coco_keypoint_results``, ``_do_python_keypoint_eval``).

Both read the same poses file (:func:`make_poses`, :func:`save_poses`) and run in their own processes, interleaved
(:mod:`gluonpose.benchmarks.sidebyside`); each appends its stage times to a json-lines file. Afterwards the two results
jsons are compared (:func:`compare_kept`): the same poses kept in every image, scores equal within float
rounding. The poses are float32 values (the official ``validate`` holds its predictions in float32), so the
keypoints written by both sides are the same numbers.
"""
import json
import os
import statistics
import sys
import tempfile
import time
from collections import OrderedDict, defaultdict
from typing import NamedTuple

import numpy as np

from ..data.geometry import box_to_center_scale
from ..errors import DatasetError, MissingDependencyError, MissingFileError
from ..evaluation.coco_metric import evaluate_keypoints, nms_per_image, write_coco_results
from ..evaluation.gt_layout import prepare_eval_target
from .coco_val import COCO_VAL_BOXES, COCO_VAL_IMAGES, coco_val_job

#: the crop whose padded box gives the OKS areas (the official w48 384x288 setting), and the box padding
INPUT_SIZE_WH = (288, 384)
BOX_PADDING = 1.25
#: stage names, in order, as both sides report them
STAGES = ("rescoring + OKS-NMS", "results json", "pycocotools")
#: relative score tolerance of :func:`compare_kept`: both sides rescore in float64, the official code summing the
#: joint scores one by one, ours with numpy's (pairwise) sum, so the last bits may differ
SCORE_RTOL = 1e-9


def _read_json(path, what):
    if not os.path.isfile(path):
        raise MissingFileError("%s: no such file %s" % (what, path))
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:
        raise DatasetError("%s %s is not valid json: %s" % (what, path, err)) from None


def make_poses(gt_json, det_json, *, input_size_wh=INPUT_SIZE_WH, box_padding=BOX_PADDING, seed=0,
               match_iou=0.5, jitter=0.02):
    """Deterministic, plausible poses for every person detection of ``det_json`` (no network, no model).

    A box that overlaps a labelled ground-truth person of its image (IoU >= ``match_iou``, the best one) gets that
    person's labelled joints moved by Gaussian noise of ``jitter`` x sqrt(box area) with scores uniform in
    [0.4, 1], and random points inside the box with scores in [0, 0.5] for the unlabelled joints; any other box
    gets random points inside its padded box with scores in [0, 0.6]. Positions are rounded to float32 (the dtype
    of the official ``validate``'s predictions), so both sides see identical values.

    Returns:
        dict of arrays: ``keypoints`` (N, 17, 3) float32, ``box_scores`` (N,), ``areas`` (N,) official OKS areas
        (``prod`` of the float32 padded box size in px, as :func:`gluonpose.evaluation.inference.predict_records`),
        ``centers`` (N, 2) px, ``scales`` (N, 2) in units of 200 px (the official ``all_boxes`` columns),
        ``image_ids`` (N,) int64.
    """
    gt = _read_json(gt_json, "ground truth")
    dets = [d for d in _read_json(det_json, "detections") if d.get("category_id", 1) == 1]
    people = defaultdict(list)
    for ann in gt.get("annotations", []):
        if not ann.get("iscrowd", 0) and ann.get("num_keypoints", 1) > 0:
            people[ann["image_id"]].append(ann)
    num, joints = len(dets), 17
    rng = np.random.default_rng(seed)
    unit = rng.random((num, joints, 2))          # random points (fractions of a box)
    noise = rng.standard_normal((num, joints, 2))
    score_u = rng.random((num, joints))
    keypoints = np.zeros((num, joints, 3))
    boxes = np.array([d["bbox"] for d in dets], dtype=np.float64).reshape(num, 4)
    centers, scales_px = np.zeros((num, 2)), np.zeros((num, 2))
    areas = np.zeros(num)
    for i in range(num):
        centers[i], scales_px[i] = box_to_center_scale(boxes[i], input_size_wh, box_padding)
        areas[i] = float(np.prod(scales_px[i].astype(np.float32)))
    image_ids = np.array([int(d["image_id"]) for d in dets], dtype=np.int64)
    order = np.argsort(image_ids, kind="stable")
    starts = np.flatnonzero(np.r_[True, image_ids[order][1:] != image_ids[order][:-1]])
    for rows in np.split(order, starts[1:]):
        anns = people.get(int(image_ids[rows[0]]), [])
        best = np.full(rows.size, -1)
        if anns:
            iou = _iou_xywh(boxes[rows], np.array([a["bbox"] for a in anns], dtype=np.float64))
            best = np.where(iou.max(axis=1) >= match_iou, iou.argmax(axis=1), -1)
        for row, b in zip(rows, best):
            x, y, w, h = boxes[row]
            inside = np.array([x, y]) + unit[row] * np.array([w, h])
            if b < 0:
                lo = centers[row] - scales_px[row] / 2
                keypoints[row, :, :2] = lo + unit[row] * scales_px[row]
                keypoints[row, :, 2] = 0.6 * score_u[row]
                continue
            kp = np.asarray(anns[b]["keypoints"], dtype=np.float64).reshape(joints, 3)
            labelled = kp[:, 2] > 0
            moved = kp[:, :2] + noise[row] * jitter * np.sqrt(w * h)
            keypoints[row, :, :2] = np.where(labelled[:, None], moved, inside)
            keypoints[row, :, 2] = np.where(labelled, 0.4 + 0.6 * score_u[row], 0.5 * score_u[row])
    return {"keypoints": keypoints.astype(np.float32),
            "box_scores": np.array([float(d["score"]) for d in dets], dtype=np.float64),
            "areas": areas, "centers": centers, "scales": scales_px / 200.0, "image_ids": image_ids}


def _iou_xywh(a, b):
    """(len(a), len(b)) IoU of ``[x, y, w, h]`` boxes."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    union = np.prod(a[:, 2:], axis=1)[:, None] + np.prod(b[:, 2:], axis=1)[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def save_poses(path, poses):
    """Write :func:`make_poses`' arrays to ``path`` (npz; both sides read it)."""
    np.savez(path, **poses)


def load_poses(path):
    """The arrays of :func:`save_poses` (a missing file is a :class:`MissingFileError`)."""
    if not os.path.isfile(path):
        raise MissingFileError("poses file: no such file %s" % path)
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def run_ours(poses, gt_json, out_json, *, in_vis_thr=0.2, oks_thr=0.9, clock=time.perf_counter):
    """Our post-processing of ``poses``: the steps of :func:`gluonpose.evaluation.runner.score_keypoints` on a
    COCO ground truth, each stage timed (rescoring + OKS-NMS; the joint selection of the evaluation target and the
    results json; pycocotools with ``COCO(gt)``).

    Returns:
        (stats OrderedDict, number of poses written, OrderedDict stage -> seconds in :data:`STAGES` order).
    """
    target = prepare_eval_target(gt_json, "coco")
    times = OrderedDict()
    tic = clock()
    preds = nms_per_image(poses["keypoints"].astype(np.float64), poses["box_scores"], poses["areas"],
                          poses["image_ids"], in_vis_thr=in_vis_thr, oks_thr=oks_thr)
    times[STAGES[0]] = clock() - tic
    tic = clock()
    for p in preds:
        p["keypoints"] = np.asarray(p["keypoints"])[target.joints]
    count = write_coco_results(preds, out_json)
    times[STAGES[1]] = clock() - tic
    tic = clock()
    stats = evaluate_keypoints(target.gt_json, out_json, sigmas=target.sigmas, allow_empty=True)
    times[STAGES[2]] = clock() - tic
    return stats, count, times


class KeptComparison(NamedTuple):
    """What :func:`compare_kept` found."""

    identical: bool
    message: str
    images: int
    poses: tuple            # (ours, official) numbers of poses kept
    max_score_rel_diff: float


def _kept(path, what):
    out = defaultdict(dict)
    for i, r in enumerate(_read_json(path, what)):
        try:
            key = tuple(float(v) for v in r["keypoints"])
            out[int(r["image_id"])].setdefault(key, []).append(float(r["score"]))
        except (KeyError, TypeError, ValueError):
            raise DatasetError("%s %s: result %d lacks image_id, keypoints or score" % (what, path, i)) from None
    return out


def compare_kept(ours_json, official_json, *, score_rtol=SCORE_RTOL):
    """Compare two COCO keypoint results jsons: the same poses (exact keypoint values) in every image, and their
    scores equal within ``score_rtol`` (relative).

    Returns:
        :class:`KeptComparison` (``message`` names the first difference).
    """
    ours, official = _kept(ours_json, "gluonpose results"), _kept(official_json, "official results")
    counts = tuple(sum(len(v) for per in side.values() for v in per.values()) for side in (ours, official))
    problems, worst = [], 0.0
    for img in sorted(set(ours) | set(official)):
        a, b = ours.get(img, {}), official.get(img, {})
        only_a = sum(len(a[k]) for k in a if k not in b)
        only_b = sum(len(b[k]) for k in b if k not in a)
        if only_a or only_b:
            problems.append("image %d: %d pose(s) kept only by gluonpose, %d only by the official code"
                            % (img, only_a, only_b))
            continue
        for key, scores in a.items():
            if len(scores) != len(b[key]):
                problems.append("image %d: a pose kept %d time(s) by gluonpose, %d by the official code"
                                % (img, len(scores), len(b[key])))
                continue
            for s, t in zip(sorted(scores), sorted(b[key])):
                rel = abs(s - t) / max(abs(t), 1e-300)
                worst = max(worst, rel)
                if rel > score_rtol:
                    problems.append("image %d: score %.9g vs official %.9g" % (img, s, t))
    images = len(set(ours) | set(official))
    if problems:
        message = "kept sets DIFFER in %d place(s) (gluonpose %d poses, official %d); first: %s" % (
            len(problems), counts[0], counts[1], problems[0])
    else:
        message = ("kept sets identical: %d images, %d poses on both sides; scores agree within %.1e "
                   "(relative, tolerance %.0e)" % (images, counts[0], worst, score_rtol))
    return KeptComparison(not problems, message, images, counts, worst)


def ours_main(argv):
    """Subprocess entry: ``python -m gluonpose.benchmarks.postprocess POSES.npz GT_JSON OUT_JSON TIMINGS.jsonl``;
    appends one json line to TIMINGS.jsonl and prints ``RESULT gluonpose postprocess <N> poses samples/s: X``."""
    if len(argv) != 4:
        print("usage: python -m gluonpose.benchmarks.postprocess POSES.npz GT_JSON OUT_JSON TIMINGS.jsonl",
              file=sys.stderr)
        return 2
    poses_npz, gt_json, out_json, timings = argv
    poses = load_poses(poses_npz)
    tic = time.perf_counter()
    stats, count, times = run_ours(poses, gt_json, out_json)
    total = time.perf_counter() - tic
    num = int(poses["keypoints"].shape[0])
    record = {"side": "gluonpose", "stages": times, "total": total, "poses": num, "kept": count,
              "stats": list(stats.values()), "results_json": out_json}
    with open(timings, "a") as f:
        f.write(json.dumps(record) + "\n")
    for name, seconds in times.items():
        print("gluonpose %-22s %8.3f s" % (name, seconds))
    print("gluonpose AP %.4f (%d poses kept)" % (stats["AP"], count))
    print("RESULT gluonpose postprocess %d poses samples/s: %.3f" % (num, num / total))
    return 0


def official_script():
    """Path of the official-side script (run by the official Python)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_evaluate.py")


def check_official(official_repo, official_python, *, run=None):
    """Raise a :class:`~gluonpose.errors.UserError` naming the path or module when the official side cannot run:
    no checkout at ``official_repo``, no Python at ``official_python``, or a module its code imports missing there
    (the official script's ``check`` mode loads the official modules and exits 2 with one ``error:`` line)."""
    import subprocess
    if not official_repo or not os.path.exists(official_repo):
        raise MissingFileError("--official-repo: no checkout or git mirror of the official HRNet at %r"
                               % official_repo)
    if not official_python or not os.path.isfile(official_python):
        raise MissingFileError("--official-python: no Python at %r (one with numpy<1.24, pycocotools and "
                               "json_tricks)" % official_python)
    run = run or subprocess.run
    proc = run([official_python, official_script(), official_repo, "check"], stdout=subprocess.PIPE,
               stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        lines = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]
        detail = lines[-1][len("error: "):] if lines else proc.stdout.strip()[-500:]
        raise MissingDependencyError("--official-python %s cannot run the official evaluation: %s"
                                     % (official_python, detail))


def _records(timings):
    out = defaultdict(list)
    if os.path.isfile(timings):
        with open(timings) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    out[record["side"]].append(record)
    return out


def stage_table(records, sides):
    """Markdown table of the per-stage medians (seconds) of each side's runs."""
    head = "| stage | " + " | ".join("%s (median of %d)" % (s, len(records[s])) for s in sides) + " |"
    lines = [head, "|---|" + "---:|" * len(sides)]
    for stage in STAGES + ("total",):
        cells = []
        for side in sides:
            values = [r["total"] if stage == "total" else r["stages"][stage] for r in records[side]]
            cells.append("%.3f s" % statistics.median(values))
        lines.append("| %s | %s |" % (stage, " | ".join(cells)))
    return lines


def prepare_job(cache_root, *, images=COCO_VAL_IMAGES, boxes=COCO_VAL_BOXES, work_dir, log=print):
    """The COCO-val-sized job (cached under ``cache_root``) and its poses file in ``work_dir``.

    Returns:
        (job dict of :func:`coco_val_job`, poses path, number of images, number of poses).
    """
    job = coco_val_job(cache_root, images=images, boxes=boxes)
    poses = make_poses(job["gt_json"], job["det_json"])
    path = os.path.join(work_dir, "poses.npz")
    save_poses(path, poses)
    num_images = len(np.unique(poses["image_ids"]))
    log("job %s: %d images, %d poses (float32 joints, official padded-box areas at %dx%d)"
        % (job["folder"], num_images, len(poses["areas"]), INPUT_SIZE_WH[1], INPUT_SIZE_WH[0]))
    return job, path, num_images, len(poses["areas"])


def run_postprocess(*, cache_root, side_by_side=False, official_repo="", official_python="", rounds=3,
                    quiet_wait=60.0, threads=0, images=COCO_VAL_IMAGES, boxes=COCO_VAL_BOXES, log=print):
    """``scripts/benchmark.py --postprocess [--side-by-side]``: time our post-processing (and the official one,
    interleaved) for ``rounds`` rounds, print the per-stage medians, the kept-set check, the ratio and the RESULT
    line. Returns the exit status: 0, or 1 when the two sides kept different poses."""
    from . import sidebyside
    if side_by_side:
        check_official(official_repo, official_python)
    threads = threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory(prefix="gluonpose_postprocess_") as work:
        job, poses_path, num_images, num = prepare_job(cache_root, images=images, boxes=boxes, work_dir=work,
                                                       log=log)
        timings = os.path.join(work, "timings.jsonl")
        ours_json = os.path.join(work, "gluonpose_results.json")
        commands = [("gluonpose", [sys.executable, "-m", "gluonpose.benchmarks.postprocess", poses_path,
                                   job["gt_json"], ours_json, timings])]
        if side_by_side:
            official_dir = os.path.join(work, "official")
            commands.append(("official", [official_python, official_script(), official_repo, poses_path,
                                          job["gt_json"], official_dir, timings]))
        log("%s, %d rounds, OMP_NUM_THREADS=%d, one process per run"
            % ("side by side with the official evaluate" if side_by_side else "gluonpose only", rounds, threads))
        figures = sidebyside.run_interleaved(commands, rounds, env=env, quiet_wait=quiet_wait, log=log)
        records = _records(timings)
        sides = [label for label, _ in commands]
        for line in stage_table(records, sides):
            log(line)
        if side_by_side:
            detail = records["official"][0]["detail"]
            log("official pycocotools = %s (medians)" % " + ".join(
                "%s %.3f s" % (name, statistics.median(r["detail"][name] for r in records["official"]))
                for name in detail))
        for side in sides:
            stats = records[side][-1]["stats"]
            log("%s: AP %.4f, AP .5 %.4f, AR %.4f" % (side, stats[0], stats[1], stats[5]))
        what = "postprocess %d images %d poses" % (num_images, num)
        if not side_by_side:
            median = statistics.median(figures["gluonpose"])
            log("RESULT %s samples/s: %.3f" % (what, median))
            return 0
        kept = compare_kept(ours_json, records["official"][-1]["results_json"])
        log(kept.message)
        ours_stats, official_stats = records["gluonpose"][-1]["stats"], records["official"][-1]["stats"]
        differ = [i for i, (a, b) in enumerate(zip(ours_stats, official_stats)) if a != b]
        log("AP gluonpose %.6f, official %.6f; %s" % (
            ours_stats[0], official_stats[0], "all 10 COCO statistics equal" if not differ else
            "%d of the 10 COCO statistics DIFFER (first: index %d)" % (len(differ), differ[0])))
        medians, ratio = sidebyside.summarize(figures, "gluonpose", "official")
        log("median gluonpose %.1f poses/s (%.3f s), official %.1f poses/s (%.3f s): ratio %.2f"
            % (medians["gluonpose"], num / medians["gluonpose"], medians["official"],
               num / medians["official"], ratio))
        log("RESULT %s side-by-side, kept sets %s, gluonpose/official ratio %.3f, gluonpose samples/s: %.3f"
            % (what, "identical" if kept.identical else "DIFFER", ratio, medians["gluonpose"]))
        return 0 if kept.identical else 1


if __name__ == "__main__":
    sys.exit(ours_main(sys.argv[1:]))
