"""Keypoint error analysis after Ronchi & Perona, "Benchmarking and Error Diagnosis in Multi-Instance
Pose Estimation" (ICCV 2017; their tool is ``coco-analyze``).

Definitions (the paper's; docs/evaluation.md says the same):

- **Matching.** Detections are matched to ground-truth people by pycocotools' own greedy matching
  (score order, at most ``max_dets`` per image) at a low OKS, ``loc_thr`` = 0.1, so that every
  detection that is *somewhere near* a person counts as a localisation attempt of that person.
- **Keypoint similarity.** For joint j of a detection and joint j' of a person p:
  ``ks = exp(-d^2 / (2 * area_p * (2 sigma_j)^2))`` (the per-joint term of OKS).
- **Per labelled joint of a matched detection** (joints the matched person has labelled, v > 0),
  the best ks over: the matched person's joint j, the matched person's *mirrored* joint (left and
  right exchanged), and joint j and its mirror of every other person of the image:
  **good** best ks >= 0.85 on the correct joint; **jitter** 0.5 <= ks < 0.85 on the correct joint;
  **inversion** ks >= 0.5 on the matched person's mirrored joint; **swap** ks >= 0.5 on another
  person's joint; **miss** best ks < 0.5. (The tool counts ks exactly 0.85 as neither good nor
  jitter; it is good here.)
- **Fixing** (the paper's oracle bars): an error joint is moved onto the ray from its correct joint
  at the distance where ks equals: 0.85 for jitter (the good band), 0.5 for a miss, and the ks it
  had on the joint it went to for an inversion or a swap. Fixes are applied in turn - miss, swap,
  inversion, jitter - and AP is measured at ``oks_thr`` (0.5, the tool's default) after each; then
  **score**: every detection rescored by its best OKS with any person (the oracle ranking);
  **background FP**: detections still matching nobody at ``oks_thr`` are ignored; **false
  negatives**: people still unmatched are ignored. After all of them AP is 1.0 by construction
  (every remaining detection matches its person at ``oks_thr`` and the ranking is perfect).
  Each fix is also measured alone on the original results; alone, the background FPs are the
  detections matching nobody and the false negatives the people nobody matches, at ``loc_thr``.
  Unlike ``coco-analyze``, whose placement uses sigma where OKS uses 2 sigma (its "jitter fixed"
  joints land at ks = 0.85^(1/4) = 0.96), the fixed joints here land exactly on the stated ks.
- **Background false positives**: detections matching nobody after those fixes (duplicates of a
  person included, as in the tool); **false negatives**: people no detection matches, by size
  (COCO small / medium / large area) and by number of labelled joints.

:func:`analyze_keypoints` computes all of it from a results json and a ground-truth json;
:func:`gluonpose.evaluation.analysis_report.write_analysis` writes the plots, ``summary.json`` and
a self-contained ``report.html``.
"""
import contextlib
import io
import logging
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, DatasetError
from ..keypoints import COCO_KEYPOINT_NAMES, COCO_SIGMAS, COCO_SKELETON
from .coco_metric import STATS_NAMES, gc_paused, load_gt_and_results

LOG = logging.getLogger(__name__)

#: the five kinds of a labelled joint of a matched detection, in the paper's order
KEYPOINT_KINDS = ("good", "jitter", "inversion", "swap", "miss")
#: the paper's order of fixing (each step keeps the fixes before it)
FIX_ORDER = ("miss", "swap", "inversion", "jitter", "score", "background_fp", "false_negatives")
#: COCO's area ranges (pixels^2) for the false-negative breakdown
SIZE_BINS = (("small", 0.0, 32.0 ** 2), ("medium", 32.0 ** 2, 96.0 ** 2), ("large", 96.0 ** 2, np.inf))
#: bins of the number of labelled joints of a missed person (the tool's)
JOINT_COUNT_BINS = ((1, 5), (6, 10), (11, 15), (16, 17))
SCORE_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)
_EPS = np.spacing(1)


class AnalysisParams(NamedTuple):
    """Thresholds of the analysis (the paper's values by default)."""

    oks_thr: float = 0.5     # OKS at which the fixed results are scored (AP of the oracle bars)
    loc_thr: float = 0.1     # OKS of the matching that decides which person a detection attempts
    good_ks: float = 0.85    # ks from which a joint is good (below: jitter)
    jitter_ks: float = 0.5   # ks from which a joint is jitter / inversion / swap (below: miss)
    max_dets: int = 20       # detections per image (COCO keypoint evaluation's maxDets)

    def check(self):
        if not 0.0 < self.loc_thr <= self.oks_thr < 1.0:
            raise ConfigError("analysis thresholds need 0 < loc_thr <= oks_thr < 1, got loc_thr %r, "
                              "oks_thr %r" % (self.loc_thr, self.oks_thr))
        if not 0.0 < self.jitter_ks < self.good_ks < 1.0:
            raise ConfigError("keypoint bands need 0 < jitter_ks < good_ks < 1, got %r, %r"
                              % (self.jitter_ks, self.good_ks))
        if int(self.max_dets) < 1:
            raise ConfigError("max_dets must be >= 1, got %r" % (self.max_dets,))
        return self


class MatchedDetection(NamedTuple):
    """A detection matched (at ``loc_thr``) to a person with labelled joints."""

    index: int              # position in the results list
    image_id: int
    gt_id: int
    score: float
    oks: float              # OKS with that person
    kinds: np.ndarray       # (K,) index into KEYPOINT_KINDS, -1 for joints the person lacks
    fixed_xy: np.ndarray    # (K, 2) the fixed position of every error joint (others: as detected)
    target: np.ndarray      # (K,) gt id of the person each joint landed on (-1 miss / unlabelled)


class Analysis(NamedTuple):
    """What :func:`analyze_keypoints` found."""

    summary: dict                 # the numbers of summary.json
    matched: list                 # [MatchedDetection]
    background_fp: list           # result indices of background false positives
    false_negatives: list         # gt ids of missed people
    results: list                 # the results list (COCO results json entries)
    coco_gt: object               # pycocotools COCO of the ground truth
    precision: dict               # {label: (101,) precision over recall 0:.01:1}
    oks_values: np.ndarray        # OKS of every matched detection with its person
    names: tuple                  # joint names
    skeleton: tuple = ()          # limbs (0-based joint pairs) drawn in the report


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def flip_index(names):
    """Index of each joint's mirror (``left_x`` <-> ``right_x``; others map to themselves)."""
    names = list(names)
    out = []
    for i, n in enumerate(names):
        for a, b in (("left_", "right_"), ("right_", "left_"), ("l_", "r_"), ("r_", "l_")):
            if n.startswith(a) and b + n[len(a):] in names:
                out.append(names.index(b + n[len(a):]))
                break
        else:
            out.append(i)
    return np.asarray(out, dtype=np.int64)


def keypoint_similarity(dt_xy, gt_kpts, areas, sigmas):
    """ks of the K detected joints with the same joints of M people.

    Args:
        dt_xy: (K, 2) detected joints; gt_kpts: (M, K, 3) COCO ``[x, y, v]``; areas: (M,).

    Returns:
        (M, K) ks in [0, 1], -1 where the person's joint is not labelled (v == 0).
    """
    gt = np.asarray(gt_kpts, np.float64).reshape(len(areas), -1, 3)
    d2 = ((gt[..., :2] - np.asarray(dt_xy, np.float64)[None]) ** 2).sum(-1)
    var = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    ks = np.exp(-d2 / var[None] / (np.asarray(areas, np.float64)[:, None] + _EPS) / 2.0)
    return np.where(gt[..., 2] > 0, ks, -1.0)


def oks(dt_xy, gt_kpts, area, sigmas):
    """pycocotools' OKS of one detection with one person that has labelled joints."""
    ks = keypoint_similarity(dt_xy, np.asarray(gt_kpts)[None], [area], sigmas)[0]
    lab = ks >= 0
    return float(ks[lab].mean()) if lab.any() else 0.0


def distance_at_ks(ks, area, sigma):
    """The distance from a joint at which ks equals ``ks`` (inverse of the ks formula)."""
    ks = np.clip(np.asarray(ks, np.float64), _EPS, 1.0)
    return 2.0 * np.asarray(sigma) * np.sqrt(-2.0 * (area + _EPS) * np.log(ks))


def classify_keypoints(dt_xy, people, areas, ids, match, *, sigmas, mirror, params=AnalysisParams()):
    """Kinds of the joints of one detection matched to person ``match`` of its image.

    Args:
        dt_xy: (K, 2) detected joints. people: (M, K, 3) every annotated person of the image;
        areas (M,), ids (M,) their areas and ids; match: row of the matched person.
        mirror: :func:`flip_index` of the joints.

    Returns:
        (kinds (K,) int, best ks (K,), fixed (K, 2), target ids (K,)).
    """
    people = np.asarray(people, np.float64).reshape(len(areas), -1, 3)
    m = len(people)
    order = [match] + [i for i in range(m) if i != match]
    cand = np.concatenate([people[order], people[order][:, mirror]], axis=0)
    cand_areas = np.concatenate([np.asarray(areas, np.float64)[order]] * 2)
    cand_ids = np.concatenate([np.asarray(ids)[order]] * 2)
    ks = keypoint_similarity(dt_xy, cand, cand_areas, sigmas)      # (2M, K)
    best = ks.max(axis=0)
    arg = ks.argmax(axis=0)                                         # ties: the correct joint first
    labelled = people[match, :, 2] > 0
    kinds = np.full(len(best), -1, np.int64)
    hit = best >= params.jitter_ks
    kinds[labelled & ~hit] = KEYPOINT_KINDS.index("miss")
    own = labelled & hit & (arg == 0)
    kinds[own & (best >= params.good_ks)] = KEYPOINT_KINDS.index("good")
    kinds[own & (best < params.good_ks)] = KEYPOINT_KINDS.index("jitter")
    kinds[labelled & hit & (arg == m)] = KEYPOINT_KINDS.index("inversion")
    kinds[labelled & hit & (arg != 0) & (arg != m)] = KEYPOINT_KINDS.index("swap")
    # the fixed joints: on the ray +x from the correct joint, at the band's ks (1e-9 inside it)
    target_ks = np.where(kinds == KEYPOINT_KINDS.index("jitter"), params.good_ks,
                         np.where(kinds == KEYPOINT_KINDS.index("miss"), params.jitter_ks, best))
    dist = distance_at_ks(target_ks, float(areas[match]), np.asarray(sigmas)) * (1.0 - 1e-9)
    fixed = np.asarray(dt_xy, np.float64).copy()
    err = labelled & (kinds != KEYPOINT_KINDS.index("good"))
    fixed[err, 0] = people[match, err, 0] + dist[err]
    fixed[err, 1] = people[match, err, 1]
    target = np.where(labelled & hit, cand_ids[arg], -1)
    return kinds, best, fixed, target


def _evaluator(coco_gt, results, params, sigmas, thresholds=None):
    """A pycocotools COCOeval of ``results`` at ``thresholds``, area 'all', ``max_dets``,
    evaluated (evalImgs filled); without ``thresholds``, pycocotools' own keypoint parameters
    (the official evaluation)."""
    from pycocotools.cocoeval import COCOeval

    with _quiet():
        coco_dt = coco_gt.loadRes([dict(r) for r in results])
        e = COCOeval(coco_gt, coco_dt, "keypoints")
        e.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        e.params.useSegm = None
        if thresholds is not None:
            e.params.iouThrs = np.asarray(thresholds, np.float64)
            e.params.areaRng = [[0.0, 1e10]]
            e.params.areaRngLbl = ["all"]
            e.params.maxDets = [int(params.max_dets)]
        e.evaluate()
    return e


def _matches(e):
    """{result index: gt id} of the first threshold, the unmatched non-ignored result indices and
    the unmatched non-ignored gt ids (loadRes numbers results from 1, in list order)."""
    dt_to_gt, fp, fn = {}, [], []
    for ev in e.evalImgs:
        if ev is None:
            continue
        for did, gid, ign in zip(ev["dtIds"], ev["dtMatches"][0], ev["dtIgnore"][0]):
            if gid:
                if not ign:
                    dt_to_gt[int(did) - 1] = int(gid)
            elif not ign:
                fp.append(int(did) - 1)
        for gid, did, ign in zip(ev["gtIds"], ev["gtMatches"][0], ev["gtIgnore"]):
            if not did and not ign:
                fn.append(int(gid))
    return dt_to_gt, sorted(fp), sorted(fn)


def _ap(e, ignore_dts=(), ignore_gts=()):
    """AP at ``e``'s single threshold, optionally with some results / people ignored (the
    tool's way of removing background FPs and false negatives); also the precision curve.
    ``e``'s ignore flags are as they were afterwards, so one evaluation serves several calls."""
    ignore_dts = {i + 1 for i in ignore_dts}
    ignore_gts = set(ignore_gts)
    saved = []
    for ev in e.evalImgs if ignore_dts or ignore_gts else ():
        if ev is None:
            continue
        dts = [j for j, did in enumerate(ev["dtIds"]) if did in ignore_dts]
        gts = [j for j, gid in enumerate(ev["gtIds"]) if gid in ignore_gts]
        if dts or gts:
            saved.append((ev, ev["dtIgnore"].copy(), ev["gtIgnore"].copy()))
            ev["dtIgnore"][:, dts] = True
            ev["gtIgnore"][gts] = 1
    try:
        with _quiet():
            e.accumulate()
    finally:
        for ev, dt_ignore, gt_ignore in saved:
            ev["dtIgnore"], ev["gtIgnore"] = dt_ignore, gt_ignore
    p = e.eval["precision"][0, :, 0, 0, 0]
    return (float(p[p > -1].mean()) if (p > -1).any() else 0.0), np.where(p > -1, p, 0.0)


def _with(results, keypoints=None, scores=None):
    out = []
    for i, r in enumerate(results):
        r = dict(r)
        if keypoints is not None and i in keypoints:
            r["keypoints"] = keypoints[i]
        if scores is not None:
            r["score"] = float(scores[i])
        out.append(r)
    return out


def _fixed_keypoints(results, matched, kinds_to_fix):
    fix = [KEYPOINT_KINDS.index(k) for k in kinds_to_fix]
    out = {}
    for md in matched:
        sel = np.isin(md.kinds, fix)
        if not sel.any():
            continue
        k = np.asarray(results[md.index]["keypoints"], np.float64).reshape(-1, 3).copy()
        k[sel, :2] = md.fixed_xy[sel]
        out[md.index] = k.ravel().tolist()
    return out


def _oracle_scores(coco_gt, results, sigmas):
    """Every result's best OKS with any person (labelled joints, not crowd) of its image."""
    people = {}
    for a in coco_gt.dataset.get("annotations", []):
        if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0):
            people.setdefault(a["image_id"], []).append(a)
    scores = np.zeros(len(results))
    for i, r in enumerate(results):
        anns = people.get(int(r["image_id"]), ())
        if not anns:
            continue
        xy = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)[:, :2]
        ks = keypoint_similarity(xy, np.array([a["keypoints"] for a in anns], np.float64),
                                 np.array([a["area"] for a in anns], np.float64), sigmas)
        lab = ks >= 0
        scores[i] = float(np.max(np.where(lab, ks, 0).sum(1) / np.maximum(lab.sum(1), 1)))
    return scores


def _joint_names(coco_gt, num_joints):
    cats = coco_gt.loadCats(coco_gt.getCatIds())
    names = tuple(cats[0].get("keypoints", ())) if cats else ()
    if len(names) == num_joints:
        return names
    if num_joints == len(COCO_KEYPOINT_NAMES):
        return COCO_KEYPOINT_NAMES
    return tuple("joint_%d" % i for i in range(num_joints))


def analyze_keypoints(gt_json, results_json, *, params=AnalysisParams(), sigmas=None):
    """The error analysis of a COCO keypoint results json against its ground truth.

    Args:
        gt_json: COCO keypoint annotations. results_json: COCO results json (``image_id``,
            ``keypoints`` [x, y, s] * K, ``score``).
        params: :class:`AnalysisParams`. sigmas: (K,) OKS sigmas (default: COCO's, K = 17).

    Returns:
        :class:`Analysis`. Raises :class:`~gluonpose.errors.DatasetError` /
        ``MissingFileError`` naming the file and record at fault.
    """
    params = AnalysisParams(*params).check()
    with gc_paused():
        coco_gt, _, results = load_gt_and_results(gt_json, results_json)
        num_joints = len(results[0]["keypoints"]) // 3
        if sigmas is None:
            if num_joints != len(COCO_SIGMAS):
                raise DatasetError("results json %s has %d joints: pass the OKS sigmas of that layout "
                                   "(COCO's 17 are the default)" % (results_json, num_joints))
            sigmas = COCO_SIGMAS
        sigmas = np.asarray(sigmas, np.float64)
        names = _joint_names(coco_gt, num_joints)
        return _analyze(coco_gt, results, params, sigmas, names)


def _skeleton(coco_gt, names):
    if tuple(names) == COCO_KEYPOINT_NAMES:
        return COCO_SKELETON
    cats = coco_gt.loadCats(coco_gt.getCatIds())
    limbs = [tuple(int(j) - 1 for j in limb) for limb in (cats[0].get("skeleton") or [])] if cats else []
    return tuple(limb for limb in limbs if len(limb) == 2 and all(0 <= j < len(names) for j in limb))


def _people_of(coco_gt, image_id, num_joints):
    anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id]))
    kp = np.array([a.get("keypoints") or [0.0] * (3 * num_joints) for a in anns],
                  np.float64).reshape(len(anns), num_joints, 3)
    return kp, np.array([float(a.get("area", 0.0)) for a in anns]), np.array([a["id"] for a in anns])


def _analyze(coco_gt, results, params, sigmas, names):
    num_joints = len(sigmas)
    mirror = flip_index(names)
    # 1. the baseline: pycocotools' ten thresholds (the official AP) and its PR curves
    base = _evaluator(coco_gt, results, params, sigmas)
    with _quiet():
        base.accumulate()
        base.summarize()
    prec = base.eval["precision"][:, :, 0, 0, -1]     # thresholds x recall, area all, 20 detections
    precision = OrderedDict(("OKS %.2f" % t, np.where(prec[i] > -1, prec[i], 0.0))
                            for i, t in ((0, .5), (5, .75), (9, .95)))
    ap_all = [float(prec[i][prec[i] > -1].mean()) if (prec[i] > -1).any() else 0.0 for i in range(10)]
    coco_ap = float(np.mean(ap_all))
    # 2. localisation matching and the kinds of every labelled joint of a matched detection
    dt_to_gt, fp_loc, fn_loc = _matches(_evaluator(coco_gt, results, params, sigmas, [params.loc_thr]))
    cache, matched, skipped_zero = {}, [], 0
    for idx in sorted(dt_to_gt):
        r = results[idx]
        img = int(r["image_id"])
        if img not in cache:
            cache[img] = _people_of(coco_gt, img, num_joints)
        kp, areas, ids = cache[img]
        row = int(np.flatnonzero(ids == dt_to_gt[idx])[0])
        if not (kp[row, :, 2] > 0).any():
            skipped_zero += 1
            continue
        xy = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)[:, :2]
        kinds, _, fixed, target = classify_keypoints(xy, kp, areas, ids, row, sigmas=sigmas,
                                                     mirror=mirror, params=params)
        matched.append(MatchedDetection(idx, img, int(ids[row]), float(r["score"]),
                                        oks(xy, kp[row], areas[row], sigmas), kinds, fixed, target))
    ap0, ap_fixed, ap_alone, curves, background_fp, false_negatives = _oracle_steps(
        coco_gt, results, matched, params, sigmas, fp_loc, fn_loc)
    summary = _summary(coco_gt, results, params, names, matched, background_fp, false_negatives,
                       coco_ap, ap_all, base.stats, ap0, ap_fixed, ap_alone, skipped_zero)
    return Analysis(summary, matched, background_fp, false_negatives, results, coco_gt,
                    OrderedDict(list(precision.items()) + [("fix " + k, v) for k, v in curves.items()]),
                    np.array([m.oks for m in matched]), tuple(names), _skeleton(coco_gt, names))


def _oracle_steps(coco_gt, results, matched, params, sigmas, fp_loc, fn_loc):
    """AP at ``oks_thr``: original, after each fix in turn (the paper's order) and each alone
    (``fp_loc`` / ``fn_loc``: the results / people unmatched at ``loc_thr``, what background FPs
    and false negatives are when fixed alone)."""
    ap_fixed, ap_alone, curves = OrderedDict(), OrderedDict(), OrderedDict()
    e0 = _evaluator(coco_gt, results, params, sigmas, [params.oks_thr])
    ap0, curves["original"] = _ap(e0)
    kp_fixes = FIX_ORDER[:4]
    for i, kind in enumerate(kp_fixes):
        e = _evaluator(coco_gt, _with(results, _fixed_keypoints(results, matched, kp_fixes[:i + 1])),
                       params, sigmas, [params.oks_thr])
        ap_fixed[kind], curves[kind] = _ap(e)
        ap_alone[kind] = _ap(_evaluator(coco_gt, _with(results, _fixed_keypoints(results, matched, [kind])),
                                        params, sigmas, [params.oks_thr]))[0]
    all_fixed = _with(results, _fixed_keypoints(results, matched, kp_fixes))
    rescored = _with(all_fixed, scores=_oracle_scores(coco_gt, all_fixed, sigmas))
    e = _evaluator(coco_gt, rescored, params, sigmas, [params.oks_thr])
    ap_fixed["score"], curves["score"] = _ap(e)
    ap_alone["score"] = _ap(_evaluator(coco_gt, _with(results, scores=_oracle_scores(coco_gt, results, sigmas)),
                                       params, sigmas, [params.oks_thr]))[0]
    _, background_fp, false_negatives = _matches(e)
    ap_fixed["background_fp"], curves["background_fp"] = _ap(e, ignore_dts=background_fp)
    ap_fixed["false_negatives"], curves["false_negatives"] = _ap(
        e, ignore_dts=background_fp, ignore_gts=false_negatives)
    ap_alone["background_fp"] = _ap(e0, ignore_dts=fp_loc)[0]
    ap_alone["false_negatives"] = _ap(e0, ignore_gts=fn_loc)[0]
    return ap0, ap_fixed, ap_alone, curves, background_fp, false_negatives


def _bins_count(values, bins):
    return OrderedDict(("%g-%g" % (lo, hi), int(sum(lo <= v <= hi for v in values))) for lo, hi in bins)


def _summary(coco_gt, results, params, names, matched, background_fp, false_negatives, coco_ap,
             ap_all, stats, ap0, ap_fixed, ap_alone, skipped_zero):
    counts = np.zeros((len(names), len(KEYPOINT_KINDS)), np.int64)
    for md in matched:
        lab = md.kinds >= 0
        np.add.at(counts, (np.flatnonzero(lab), md.kinds[lab]), 1)
    fn_anns = coco_gt.loadAnns(false_negatives)
    fp_scores = [float(results[i]["score"]) for i in background_fp]
    score_edges = list(SCORE_BINS[:-1]) + [np.inf]
    fp_by_score = OrderedDict()
    for lo, hi in zip(score_edges[:-1], score_edges[1:]):
        label = "%g-%g" % (lo, hi) if np.isfinite(hi) else ">=%g" % lo
        fp_by_score[label] = int(sum(lo <= s < hi for s in fp_scores))
    ap_fixed = OrderedDict((k, round(v, 6)) for k, v in ap_fixed.items())
    return OrderedDict([
        ("keypoints", OrderedDict((k, int(counts[:, i].sum())) for i, k in enumerate(KEYPOINT_KINDS))),
        ("background_fp", len(background_fp)),
        ("false_negatives", len(false_negatives)),
        ("ap", round(coco_ap, 6)),
        ("oks_thr", params.oks_thr),
        ("ap_at_oks_thr", round(ap0, 6)),
        ("ap_if_fixed", ap_fixed),
        ("ap_gain_if_fixed_alone", OrderedDict((k, round(v - ap0, 6)) for k, v in ap_alone.items())),
        ("keypoints_per_joint", OrderedDict(
            (n, OrderedDict((k, int(counts[j, i])) for i, k in enumerate(KEYPOINT_KINDS)))
            for j, n in enumerate(names))),
        ("background_fp_by_score", fp_by_score),
        ("false_negatives_by_size", OrderedDict(
            (label, int(sum(lo <= a["area"] < hi for a in fn_anns))) for label, lo, hi in SIZE_BINS)),
        ("false_negatives_by_labelled_joints",
         _bins_count([a.get("num_keypoints", 0) for a in fn_anns], JOINT_COUNT_BINS)),
        ("coco_stats", OrderedDict((n, round(float(v), 6)) for n, v in zip(STATS_NAMES, stats))
         if len(stats) == len(STATS_NAMES) else None),
        ("ap_per_oks", OrderedDict(("%.2f" % t, round(a, 6)) for t, a in zip(np.linspace(.5, .95, 10), ap_all))),
        ("detections", len(results)),
        ("matched_detections", len(matched)),
        ("matched_to_people_without_joints", skipped_zero),
        ("people", int(sum(1 for a in coco_gt.dataset.get("annotations", [])
                           if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0)))),
        ("params", OrderedDict(params._asdict())),
        ("definitions", "Ronchi & Perona, ICCV 2017 (coco-analyze): ks bands good >= %g, jitter "
                        "[%g, %g), inversion / swap >= %g on the mirrored / another person's joint, miss "
                        "< %g; matching at OKS %g; fixes cumulative in the order %s, AP at OKS %g"
         % (params.good_ks, params.jitter_ks, params.good_ks, params.jitter_ks, params.jitter_ks,
            params.loc_thr, ", ".join(FIX_ORDER), params.oks_thr)),
    ])
