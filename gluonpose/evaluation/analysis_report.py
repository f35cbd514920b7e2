"""What :mod:`.analyze` found, for people: five plots, ``summary.json`` and one self-contained
``report.html`` (images embedded as data URIs) with the worst cases drawn on their images."""
import base64
import html
import logging
import os
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..utils.curves import agg_pyplot, save_png
from ..utils.io import atomic_write, atomic_write_json
from .analyze import KEYPOINT_KINDS

LOG = logging.getLogger(__name__)


KIND_COLORS = {"good": "#4caf50", "jitter": "#8C4646", "inversion": "#D96459", "swap": "#F2AE72",
               "miss": "#F2E394"}
KIND_BGR = {"good": (80, 175, 76), "jitter": (70, 70, 140), "inversion": (89, 100, 217),
            "swap": (114, 174, 242), "miss": (0, 215, 255)}
FIX_LABELS = {"miss": "Miss", "swap": "Swap", "inversion": "Inversion", "jitter": "Jitter",
              "score": "Score", "background_fp": "Bkg. FP", "false_negatives": "FN"}


def _save_figure(fig, path):
    return save_png(fig, path, what="analysis plot")


def plot_keypoint_errors(analysis, path):
    """Stacked bars: the share of each kind per joint (and over all joints)."""
    plt = agg_pyplot()
    per = analysis.summary["keypoints_per_joint"]
    labels = list(per) + ["all"]
    rows = np.array([[per[n][k] for k in KEYPOINT_KINDS] for n in per]
                    + [[analysis.summary["keypoints"][k] for k in KEYPOINT_KINDS]], np.float64)
    share = rows / np.maximum(rows.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(10, 6))
    left = np.zeros(len(labels))
    for i, k in enumerate(KEYPOINT_KINDS):
        ax.barh(labels, share[:, i], left=left, color=KIND_COLORS[k], edgecolor="k", lw=0.5,
                label="%s (%d)" % (k, rows[-1, i]))
        left += share[:, i]
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the labelled joints of matched detections")
    ax.set_title("Keypoint errors per joint (%d matched detections)" % len(analysis.matched))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_ap_gains(analysis, path):
    """The oracle bars: AP at ``oks_thr`` after each fix in turn, and the gain of each alone."""
    plt = agg_pyplot()
    s = analysis.summary
    steps = ["original"] + list(s["ap_if_fixed"])
    values = [s["ap_at_oks_thr"]] + list(s["ap_if_fixed"].values())
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax.bar([FIX_LABELS.get(k, k) for k in steps], values, color="#4F82BD", edgecolor="k")
    for x, v in enumerate(values):
        ax.text(x, v + 0.01, "%.3f" % v, ha="center", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("AP at OKS %g" % s["oks_thr"])
    ax.set_title("AP after fixing each error type in turn")
    ax.tick_params(axis="x", rotation=30)
    gains = s["ap_gain_if_fixed_alone"]
    ax2.bar([FIX_LABELS.get(k, k) for k in gains], list(gains.values()), color="#D96459", edgecolor="k")
    for x, v in enumerate(gains.values()):
        ax2.text(x, v + 0.005, "+%.3f" % v, ha="center", fontsize=8)
    ax2.set_ylabel("AP gain at OKS %g" % s["oks_thr"])
    ax2.set_title("AP gained by fixing one error type alone")
    ax2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_precision_recall(analysis, path):
    """Precision-recall at OKS .5 / .75 / .95, and at ``oks_thr`` after each fix (the tool's plot)."""
    plt = agg_pyplot()
    rec = np.linspace(0, 1, 101)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, p in analysis.precision.items():
        if not label.startswith("fix "):
            ax.plot(rec, p, lw=2, label="%s: AP %.3f" % (label, p.mean()))
    ax.set_title("Precision-recall (original results)")
    prev = None
    for i, (label, p) in enumerate((k[4:], v) for k, v in analysis.precision.items() if k.startswith("fix ")):
        ax2.plot(rec, p, color="k", lw=1)
        if prev is not None:
            ax2.fill_between(rec, prev, p, where=p >= prev, interpolate=True,
                             color=plt.cm.tab10(i % 10), alpha=0.7,
                             label="%s: %.3f" % (FIX_LABELS.get(label, label), p.mean()))
        else:
            ax2.plot([], [], color="k", label="original: %.3f" % p.mean())
        prev = p
    ax2.set_title("At OKS %g, fixing in turn" % analysis.summary["oks_thr"])
    for a in (ax, ax2):
        a.set_xlim(0, 1)
        a.set_ylim(0, 1.02)
        a.set_xlabel("recall")
        a.set_ylabel("precision")
        a.grid(True, alpha=0.3)
        a.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_oks_histogram(analysis, path):
    """OKS of the matched detections with their person."""
    plt = agg_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(analysis.oks_values, bins=np.linspace(0, 1, 41), color="#4F82BD", edgecolor="k")
    for t in (.5, .75, .95):
        ax.axvline(t, color="r", ls="--", lw=1)
    ax.set_xlabel("OKS with the matched person")
    ax.set_ylabel("detections")
    ax.set_title("OKS of %d matched detections (median %.3f)"
                 % (len(analysis.oks_values),
                    float(np.median(analysis.oks_values)) if len(analysis.oks_values) else 0.0))
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_background_errors(analysis, path):
    """Background false positives by score; false negatives by size and labelled joints."""
    plt = agg_pyplot()
    s = analysis.summary
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, key, title, color in (
            (axes[0], "background_fp_by_score", "background FP (%d) by score" % s["background_fp"], "#8063A3"),
            (axes[1], "false_negatives_by_size", "false negatives (%d) by size" % s["false_negatives"], "seagreen"),
            (axes[2], "false_negatives_by_labelled_joints", "false negatives by labelled joints", "seagreen")):
        ax.bar(list(s[key]), list(s[key].values()), color=color, edgecolor="k")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)


PLOTS = (("keypoint_errors.png", plot_keypoint_errors), ("ap_gains.png", plot_ap_gains),
         ("precision_recall.png", plot_precision_recall), ("oks_histogram.png", plot_oks_histogram),
         ("background_errors.png", plot_background_errors))


# --------------------------------------------------------------------------------- worst cases

class Case(NamedTuple):
    kind: str            # "localisation" | "background_fp" | "false_negative"
    image_id: int
    title: str
    image: object        # BGR crop or None when the image could not be read


def worst_cases(analysis, num=8):
    """The cases the report draws: matched detections by score x (1 - OKS), background FPs by
    score, false negatives by area (largest first). Returns three lists of (rank key, item)."""
    loc = sorted(analysis.matched, key=lambda m: (-(m.score * (1.0 - m.oks)), m.index))[:num]
    fps = sorted(analysis.background_fp, key=lambda i: (-float(analysis.results[i]["score"]), i))[:num]
    anns = analysis.coco_gt.loadAnns(analysis.false_negatives)
    fns = sorted(anns, key=lambda a: (-float(a.get("area", 0)), a["id"]))[:num]
    return loc, fps, fns


def _crop(image, points, pad=0.25, height=300):
    import cv2

    pts = np.asarray(points, np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    h, w = image.shape[:2]
    if len(pts) == 0:
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        px, py = max(x1 - x0, 16) * pad, max(y1 - y0, 16) * pad
        x0, y0 = int(max(0, x0 - px)), int(max(0, y0 - py))
        x1, y1 = int(min(w, x1 + px + 1)), int(min(h, y1 + py + 1))
        if x1 <= x0 or y1 <= y0:
            x0, y0, x1, y1 = 0, 0, w, h
    out = image[y0:y1, x0:x1]
    scale = height / max(out.shape[0], 1)
    return cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR), (x0, y0), scale


def _box_points(bbox):
    x, y, w, h = [float(v) for v in bbox]
    return [[x, y], [x + w, y + h]]


def _draw_case(image, gt_kpts, pred_kpts, kinds, names, skeleton):
    """GT green, prediction red (joints the detection scores), error joints ringed and lettered."""
    import cv2

    from .visualize import draw_poses, GT_COLOR_BGR, PRED_COLOR_BGR

    out = image
    if gt_kpts is not None:
        g = np.asarray(gt_kpts, np.float64).reshape(-1, len(names), 3).copy()
        g[..., 2] = (g[..., 2] > 0).astype(np.float64)
        out = draw_poses(out, g, score_thr=0.5, names=names, skeleton=skeleton, draw_scores=False,
                         joint_color=GT_COLOR_BGR, limb_color=GT_COLOR_BGR)
    if pred_kpts is not None:
        p = np.asarray(pred_kpts, np.float64).reshape(-1, len(names), 3).copy()
        p[..., 2] = 1.0
        if gt_kpts is not None and kinds is not None:
            for j in np.flatnonzero(np.asarray(kinds) > 0):
                cv2.line(out, tuple(int(round(v)) for v in g[0, j, :2]),
                         tuple(int(round(v)) for v in p[0, j, :2]), (255, 255, 255), 1, cv2.LINE_AA)
        out = draw_poses(out, p, score_thr=0.5, names=names, skeleton=skeleton, draw_scores=False,
                         joint_color=PRED_COLOR_BGR, limb_color=PRED_COLOR_BGR)
        if kinds is not None:
            for j in np.flatnonzero(np.asarray(kinds) > 0):
                kind = KEYPOINT_KINDS[kinds[j]]
                c = tuple(int(round(v)) for v in p[0, j, :2])
                cv2.circle(out, c, 7, KIND_BGR[kind], 2, cv2.LINE_AA)
                cv2.putText(out, kind[0].upper(), (c[0] + 8, c[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(out, kind[0].upper(), (c[0] + 8, c[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            KIND_BGR[kind], 1, cv2.LINE_AA)
    return out


def _shift(kpts, origin, scale):
    k = np.asarray(kpts, np.float64).reshape(-1, 3).copy()
    k[:, 0] = (k[:, 0] - origin[0]) * scale
    k[:, 1] = (k[:, 1] - origin[1]) * scale
    return k


def draw_worst_cases(analysis, image_dir, num=8):
    """Draw :func:`worst_cases` on their images; returns ([Case], images not found or unreadable)."""
    from ..data.imageio import read_image

    coco_gt, names = analysis.coco_gt, analysis.names
    loc, fps, fns = worst_cases(analysis, num)
    cases, unreadable, images = [], set(), {}

    def load(image_id):
        if image_id not in images:
            info = coco_gt.imgs.get(image_id, {})
            path = os.path.join(image_dir or "", info.get("file_name", ""))
            try:
                images[image_id] = np.ascontiguousarray(read_image(path)[:, :, ::-1])
            except (OSError, ValueError) as err:
                LOG.warning("analysis: image %s of image_id %s not drawn: %s", path, image_id, err)
                images[image_id] = None
                unreadable.add(path)
        return images[image_id]

    for md in loc:
        img = load(md.image_id)
        gt = np.asarray(coco_gt.anns[md.gt_id]["keypoints"], np.float64).reshape(-1, 3)
        pred = np.asarray(analysis.results[md.index]["keypoints"], np.float64).reshape(-1, 3)
        errors = ", ".join("%s %s" % (names[j], KEYPOINT_KINDS[k]) for j, k in enumerate(md.kinds) if k > 0)
        title = ("result %d, image %d, person %d: score %.3f, OKS %.3f; %s"
                 % (md.index, md.image_id, md.gt_id, md.score, md.oks, errors or "no joint errors"))
        crop = None
        if img is not None:
            pts = np.concatenate([gt[gt[:, 2] > 0, :2], pred[:, :2],
                                  _box_points(coco_gt.anns[md.gt_id]["bbox"])])
            crop, origin, scale = _crop(img, pts)
            crop = _draw_case(crop, _shift(gt, origin, scale), _shift(pred, origin, scale), md.kinds,
                              names, analysis.skeleton)
        cases.append(Case("localisation", md.image_id, title, crop))
    for idx in fps:
        r = analysis.results[idx]
        img = load(int(r["image_id"]))
        pred = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)
        crop = None
        if img is not None:
            crop, origin, scale = _crop(img, pred[:, :2])
            crop = _draw_case(crop, None, _shift(pred, origin, scale), None, names, analysis.skeleton)
        cases.append(Case("background_fp", int(r["image_id"]),
                          "result %d, image %s: background false positive, score %.3f"
                          % (idx, r["image_id"], float(r["score"])), crop))
    for a in fns:
        img = load(a["image_id"])
        gt = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        crop = None
        if img is not None:
            crop, origin, scale = _crop(img, np.concatenate([gt[gt[:, 2] > 0, :2], _box_points(a["bbox"])]))
            crop = _draw_case(crop, _shift(gt, origin, scale), None, None, names, analysis.skeleton)
        cases.append(Case("false_negative", a["image_id"],
                          "person %d, image %d: false negative, area %.0f, %d labelled joints"
                          % (a["id"], a["image_id"], a.get("area", 0), a.get("num_keypoints", 0)), crop))
    return cases, sorted(unreadable)


def _png_data_uri(path=None, image=None):
    import cv2

    if image is not None:
        ok, buf = cv2.imencode(".png", image)
        data = buf.tobytes()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _html(analysis, plots, cases, unreadable, image_dir, sources):
    s = analysis.summary
    esc = html.escape
    rows = "".join("<tr><td>%s</td><td>%d</td></tr>" % (esc(k), v) for k, v in s["keypoints"].items())
    fixes = "".join("<tr><td>%s</td><td>%.3f</td><td>%+.3f</td></tr>"
                    % (esc(FIX_LABELS[k]), v, s["ap_gain_if_fixed_alone"][k])
                    for k, v in s["ap_if_fixed"].items())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>gluonpose error analysis</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 8px;text-align:right}td:first-child{text-align:left}"
        "figure{display:inline-block;margin:6px;vertical-align:top;max-width:420px}"
        "figcaption{font-size:12px}img{max-width:100%}</style></head><body>",
        "<h1>Keypoint error analysis</h1>",
        "<p>Results <code>%s</code> against <code>%s</code>. %s.</p>"
        % (esc(sources[0]), esc(sources[1]), esc(s["definitions"])),
        "<p>COCO AP (OKS .50:.95) <b>%.3f</b>; AP at OKS %g: %.3f. %d detections, %d matched to people "
        "with labelled joints; %d background false positives; %d false negatives of %d people.</p>"
        % (s["ap"], s["oks_thr"], s["ap_at_oks_thr"], s["detections"], s["matched_detections"],
           s["background_fp"], s["false_negatives"], s["people"]),
        "<h2>Labelled joints of matched detections</h2><table><tr><th>kind</th><th>joints</th></tr>%s</table>"
        % rows,
        "<h2>Fixing errors (AP at OKS %g)</h2><table><tr><th>fixed, in turn</th><th>AP</th>"
        "<th>gain alone</th></tr>%s</table>" % (s["oks_thr"], fixes),
    ]
    for name, path in plots:
        parts.append("<h3>%s</h3><img alt='%s' src='%s'>" % (esc(name), esc(name), _png_data_uri(path)))
    titles = {"localisation": "Worst localisation errors (score x (1 - OKS))",
              "background_fp": "Highest-scoring background false positives",
              "false_negative": "Largest missed people"}
    parts.append("<h2>Worst cases</h2><p>Ground truth green, prediction red; error joints ringed: "
                 "J jitter, I inversion, S swap, M miss.</p>")
    for kind, title in titles.items():
        chosen = [c for c in cases if c.kind == kind]
        parts.append("<h3>%s (%d)</h3>" % (esc(title), len(chosen)))
        for c in chosen:
            img = ("<img src='%s'>" % _png_data_uri(image=c.image)) if c.image is not None \
                else "<p><i>image not found or unreadable</i></p>"
            parts.append("<figure>%s<figcaption>%s</figcaption></figure>" % (img, esc(c.title)))
    if unreadable:
        parts.append("<p>%d image(s) under <code>%s</code> could not be read, their cases are not drawn: %s</p>"
                     % (len(unreadable), esc(str(image_dir)), esc(", ".join(unreadable[:20]))))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_analysis(analysis, out_dir, *, image_dir=None, num_cases=8, sources=("", "")):
    """Write the plots (:data:`PLOTS`), ``summary.json`` and ``report.html`` into ``out_dir``.

    Returns {name: path} of everything written, plus ``"unreadable_images"``: the count of images
    whose cases could not be drawn (missing or unreadable files are counted, never fatal).
    """
    from ..utils.io import check_writable

    check_writable(out_dir, "the analysis folder")
    written = OrderedDict()
    for name, fn in PLOTS:
        written[name] = fn(analysis, os.path.join(out_dir, name))
    cases, unreadable = draw_worst_cases(analysis, image_dir, num_cases)
    summary = OrderedDict(analysis.summary)
    summary["unreadable_images"] = len(unreadable)
    summary["cases_drawn"] = sum(c.image is not None for c in cases)
    written["summary.json"] = os.path.join(out_dir, "summary.json")
    atomic_write_json(summary, written["summary.json"], indent=1)
    page = _html(analysis, [(n, p) for n, p in written.items() if n.endswith(".png")], cases,
                 unreadable, image_dir, sources)
    written["report.html"] = os.path.join(out_dir, "report.html")

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
    atomic_write(written["report.html"], write, what="analysis report")
    written["unreadable_images"] = len(unreadable)
    return written


def format_summary(summary):
    """A few lines for the terminal."""
    k = summary["keypoints"]
    total = max(sum(k.values()), 1)
    lines = ["keypoints of matched detections: " + ", ".join(
        "%s %d (%.1f%%)" % (n, v, 100.0 * v / total) for n, v in k.items()),
        "background false positives %d; false negatives %d of %d people"
        % (summary["background_fp"], summary["false_negatives"], summary["people"]),
        "AP %.3f (OKS .50:.95); at OKS %g: %.3f -> after fixing in turn: %s"
        % (summary["ap"], summary["oks_thr"], summary["ap_at_oks_thr"],
           ", ".join("%s %.3f" % (FIX_LABELS[n], v) for n, v in summary["ap_if_fixed"].items()))]
    return "\n".join(lines)
