"""Test-time augmentation over a rotation x scale grid and model ensembles.

Every member (model) predicts every box under every view (crop rotation in degrees, crop scale
factor), with or without the flip test inside each view (:mod:`.inference`). All predictions are
already in image pixels (rotation and scale undone exactly by the inverse crop affine), so fusing
is an average over (member, view) pairs with :func:`.ensemble.average_keypoints` (score-weighted
positions by default, mean scores), member weights repeated over that member's views.

Ensemble config file (YAML, read by :func:`gluonpose.config.load_yaml_config`: the same ``_base_``
inheritance, key and type checks and error messages as the model configs; every key optional
except ``members``)::

    members:
      - {config: configs/a.yaml, weights: a.params, weight: 1.0, name: a}
    tta: {rotations: [-20, 0, 20], scales: [0.9, 1.0, 1.1], flip: true, average: score_weighted}
    boxes: {det_json: dets.json, use_gt_boxes: false, gt_json: gt.json, img_prefix: images,
            image_thr: 0.0, layout: coco}
    test: {in_vis_thr: 0.2, oks_thr: 0.9, batch_size: 32, workers: 2}
"""
import itertools
import os

import numpy as np

from ..config import Choice, check_section, load_yaml_config
from ..errors import ConfigError
from .ensemble import MODES, average_keypoints

#: Defaults and schema of an ensemble config (values must have the type of their default).
ENSEMBLE_DEFAULTS = {
    "members": [],
    "tta": {"rotations": [0.0], "scales": [1.0], "flip": True, "average": "score_weighted"},
    "boxes": {"det_json": "", "use_gt_boxes": False, "gt_json": "", "img_prefix": "",
              "image_thr": 0.0, "layout": ""},
    "test": {"in_vis_thr": 0.2, "oks_thr": 0.9, "batch_size": 32, "workers": 2},
}
ENSEMBLE_TYPES = {"members": "list[dict]"}
ENSEMBLE_CHECKS = {"tta.average": Choice(MODES)}
#: Defaults and schema of one ``members`` entry (``config`` and ``weights`` are required).
MEMBER_DEFAULTS = {"config": "", "weights": "", "weight": 1.0, "name": ""}


def tta_views(rotations=(0.0,), scales=(1.0,)):
    """The rotation x scale grid as a tuple of (rotation degrees, scale factor), rotations outer."""
    rotations = [float(r) for r in rotations]
    scales = [float(s) for s in scales]
    if not rotations or not scales:
        raise ConfigError("TTA needs at least one rotation and one scale")
    bad = [s for s in scales if not s > 0]
    if bad:
        raise ConfigError("TTA scale factors must be > 0, got %s" % bad)
    return tuple(itertools.product(rotations, scales))


def view_label(view):
    """Short label of a view, e.g. ``'rot -20 x0.9'``."""
    return "rot %+g x%g" % (view[0], view[1]) if view[0] else "rot 0 x%g" % view[1]


def parse_member_spec(text):
    """``'CONFIG:WEIGHTS'`` -> member dict (split at the last ':')."""
    if ":" not in text:
        raise ConfigError("--models entries look like CONFIG.yaml:WEIGHTS.params, got %r" % text)
    config, weights = text.rsplit(":", 1)
    if not config or not weights:
        raise ConfigError("--models entry %r needs both a config and a weights file" % text)
    return {"config": config, "weights": weights, "weight": 1.0,
            "name": os.path.splitext(os.path.basename(config))[0]}


def distinct_member_names(members):
    """Give members that share a name (by default the config's file stem) distinct ones for the
    tables: ``name [weights stem]`` when their weights files differ, else ``name #i`` (1-based
    member index). Unique names are kept. Returns new member dicts."""
    from collections import Counter

    def stem(path):
        return os.path.splitext(os.path.basename(path))[0]

    count = Counter(m["name"] for m in members)
    out = [dict(m) for m in members]
    for m in out:
        if count[m["name"]] > 1:
            m["name"] = "%s [%s]" % (m["name"], stem(m["weights"]))
    count = Counter(m["name"] for m in out)
    for i, m in enumerate(out):
        if count[m["name"]] > 1:
            m["name"] = "%s #%d" % (m["name"], i + 1)
    return out


def _check_member(i, m):
    where = "members[%d]" % i
    if not isinstance(m, dict) or not m.get("config") or not m.get("weights"):
        raise ConfigError("%s needs config and weights, got %r" % (where, m))
    member = check_section(m, MEMBER_DEFAULTS, where)
    if not (np.isfinite(member["weight"]) and member["weight"] >= 0):
        raise ConfigError("%s must be finite and >= 0, got %r"
                          % (where + ".weight", member["weight"]))
    member["name"] = member["name"] or os.path.splitext(os.path.basename(member["config"]))[0]
    return member


def load_ensemble_config(path=None, overrides=()):
    """Read an ensemble YAML (see module docstring) into a plain dict with every default filled
    (``path=None``: the defaults).

    Relative member / box paths stay relative to the working directory (as on the command line).
    ``overrides`` are ``section.key=value`` texts, as for model configs. Errors are
    :class:`~gluonpose.errors.ConfigError` naming the file and the key.
    """
    try:
        out = load_yaml_config(path, ENSEMBLE_DEFAULTS, ENSEMBLE_TYPES, overrides,
                               checks=ENSEMBLE_CHECKS)
        out["members"] = [_check_member(i, m) for i, m in enumerate(out["members"])]
    except ConfigError as err:
        if not path or os.path.abspath(path) in str(err):
            raise
        raise ConfigError("%s: %s" % (path, err)) from None
    return out


def fuse(coords, scores, *, members=None, views=None, member_weights=None, mode="score_weighted"):
    """Average a subset of (member, view) predictions.

    Args:
        coords: (M, V, N, K, 2) image pixels; scores: (M, V, N, K).
        members, views: indices to use (default all).
        member_weights: (M,) weights (default 1), repeated over each member's views.

    Returns:
        keypoints (N, K, 3) ``[x, y, fused score]`` float64.
    """
    coords, scores = np.asarray(coords), np.asarray(scores)
    num_m, num_v = coords.shape[:2]
    members = range(num_m) if members is None else list(members)
    views = range(num_v) if views is None else list(views)
    w = np.ones(num_m) if member_weights is None else np.asarray(member_weights, np.float64)
    pairs = [(m, v) for m in members for v in views]
    if not pairs:
        raise ValueError("fuse: no (member, view) pair selected")
    fused_c, fused_s = average_keypoints([coords[m, v] for m, v in pairs],
                                         [scores[m, v] for m, v in pairs], mode=mode,
                                         weights=[w[m] for m, _ in pairs])
    return np.concatenate([fused_c, fused_s[..., None]], axis=-1)


def breakdown(coords, scores, member_names, views, *, member_weights=None, mode="score_weighted"):
    """Labelled fused predictions: each member over its views, each view over the members, all.

    Rows for a single member or a single view are left out when they would repeat the ensemble.

    Returns:
        list of (label, keypoints (N, K, 3)); the last row is ``'ensemble'``.
    """
    rows = []
    num_m, num_v = len(member_names), len(views)
    if num_m > 1:
        for m, name in enumerate(member_names):
            rows.append(("member %s" % name, fuse(coords, scores, members=[m],
                                                  member_weights=member_weights, mode=mode)))
    if num_v > 1:
        for v, view in enumerate(views):
            rows.append(("view %s" % view_label(view),
                         fuse(coords, scores, views=[v], member_weights=member_weights, mode=mode)))
    rows.append(("ensemble", fuse(coords, scores, member_weights=member_weights, mode=mode)))
    return rows


def format_summary_table(rows, keys=("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR")):
    """Markdown table of several stat dicts.

    Args:
        rows: list of (label, stats mapping).
        keys: columns (default the main APs and AR).
    """
    width = max([len("setting")] + [len(label) for label, _ in rows])
    cols = [max(len(k), 5) for k in keys]
    head = "| %s | " % "setting".ljust(width) + " | ".join(k.rjust(c) for k, c in zip(keys, cols))
    lines = [head + " |", "|-%s-|" % ("-" * width) + "|".join("-" * (c + 2) for c in cols) + "|"]
    for label, stats in rows:
        vals = " | ".join(("%.3f" % float(stats[k])).rjust(c) for k, c in zip(keys, cols))
        lines.append("| %s | %s |" % (label.ljust(width), vals))
    return "\n".join(lines)


def evaluate_ensemble(predictors, boxes, views, *, gt_json, layout, out_json, member_weights=None,
                      mode="score_weighted", with_breakdown=True, in_vis_thr=0.2, oks_thr=0.9,
                      workers=2, progress=False, stats=None, log=print, verbose=True):
    """Every member under every view (:func:`~.inference.predict_records`), fused rows
    (:func:`breakdown`, or only the ensemble), each row rescored, OKS-NMS'd and scored by
    pycocotools (its table printed for the ensemble row with ``verbose``); the ensemble's
    results json is ``out_json``.

    Returns:
        (table: list of (label, stats), number of boxes, number of poses written).
    """
    import tempfile

    from .gt_layout import prepare_eval_target
    from .inference import predict_records
    from .runner import score_keypoints

    result = predict_records(predictors, boxes.records, views=views, progress=progress,
                             desc="ensemble", workers=workers, stats=stats)
    names = [p.name for p in predictors]
    if with_breakdown:
        rows = breakdown(result.coords, result.scores, names, views,
                         member_weights=member_weights, mode=mode)
    else:
        rows = [("ensemble", fuse(result.coords, result.scores, member_weights=member_weights,
                                  mode=mode))]
    table, count = [], 0
    with tempfile.TemporaryDirectory(prefix="gluonpose_ens_") as tmp:
        target = prepare_eval_target(gt_json, layout, os.path.dirname(os.path.abspath(out_json)))
        log("evaluation: %s" % target.note)
        for i, (label, kpts) in enumerate(rows):
            last = label == "ensemble"
            path = out_json if last else os.path.join(tmp, "row%d.json" % i)
            if last and verbose:
                log("pycocotools, ensemble:")
            stats_row, count = score_keypoints(kpts, result.box_scores, result.areas,
                                               result.image_ids, target, path,
                                               in_vis_thr=in_vis_thr, oks_thr=oks_thr,
                                               verbose=last and verbose)
            table.append((label, stats_row))
    return table, len(result.box_scores), count
