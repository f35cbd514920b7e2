"""Drawing helpers (OpenCV): skeletons with keypoint scores, training samples with their targets,
contact sheets of augmented samples with their targets decoded back (``gluonpose-browse``),
captioned tiles in a grid, predictions against ground truth, and training curves of a work dir.

Images are (H, W, 3) uint8 **BGR** (OpenCV's order, what ``cv2.imwrite`` expects); functions
return a new image and never modify their input. Keypoints are ``[x, y, score]`` (or COCO
``[x, y, v]``) in pixels of the image they are drawn on.

Colours: every limb has its own colour; limbs of the left side are blue/green, the right side
orange/red, the centre line yellow (the side is read from the joint names, ``left_*`` /
``right_*``). Joints take the colour of their side unless ``joint_color`` is given.
"""
import os

import cv2
import numpy as np

from ..codecs import layout
from ..keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON
from ..data.pipeline import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from ..errors import OutputError

#: BGR shades per body side; limbs of one side cycle through their shades.
SIDE_SHADES_BGR = {
    "left": ((255, 128, 0), (255, 200, 0), (200, 255, 0), (128, 255, 64), (255, 96, 64)),
    "right": ((0, 128, 255), (0, 64, 255), (0, 0, 230), (64, 160, 255), (0, 190, 255)),
    "center": ((0, 255, 255), (64, 230, 230)),
}
JOINT_COLORS_BGR = {"left": (255, 96, 0), "right": (0, 96, 255), "center": (0, 230, 255)}
GT_COLOR_BGR = (0, 200, 0)
PRED_COLOR_BGR = (0, 0, 255)


def joint_side(name):
    """``'left'`` / ``'right'`` / ``'center'`` from a joint name."""
    name = str(name).lower()
    if name.startswith("left") or name.startswith("l_"):
        return "left"
    if name.startswith("right") or name.startswith("r_"):
        return "right"
    return "center"


def limb_side(limb, names=COCO_KEYPOINT_NAMES):
    """Side of a limb (a, b): the side shared by its ends, or the non-centre end's side."""
    sides = {joint_side(names[limb[0]]), joint_side(names[limb[1]])}
    if len(sides) == 1:
        return sides.pop()
    sides.discard("center")
    return sides.pop() if len(sides) == 1 else "center"


def limb_colors(skeleton=COCO_SKELETON, names=COCO_KEYPOINT_NAMES):
    """One BGR colour per limb of ``skeleton`` (list of tuples)."""
    counters = {side: 0 for side in SIDE_SHADES_BGR}
    colors = []
    for limb in skeleton:
        side = limb_side(limb, names)
        shades = SIDE_SHADES_BGR[side]
        colors.append(shades[counters[side] % len(shades)])
        counters[side] += 1
    return colors


def _auto_size(image, radius, thickness):
    side = max(image.shape[:2])
    radius = int(radius) if radius else max(2, int(round(side / 220.0)))
    thickness = int(thickness) if thickness else max(1, int(round(side / 320.0)))
    return radius, thickness


def _pt(xy):
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def draw_poses(image, keypoints, *, score_thr=0.3, skeleton=COCO_SKELETON, names=COCO_KEYPOINT_NAMES,
               boxes=None, box_scores=None, draw_scores=True, joint_color=None, limb_color=None,
               radius=None, thickness=None):
    """Draw people's skeletons and joint scores.

    Args:
        image: (H, W, 3) uint8 BGR.
        keypoints: (N, K, 3) ``[x, y, score]`` image pixels; a joint is drawn when its score is
            ``>= score_thr``, a limb when both ends are.
        boxes: optional (N, 4) ``[x, y, w, h]`` drawn in grey with ``box_scores`` (N,).
        draw_scores: write each drawn joint's score next to it.
        joint_color / limb_color: one BGR colour for all joints / limbs (default: per side / limb).
        radius, thickness: joint radius and line width in px (default: from the image size).

    Returns:
        the new (H, W, 3) uint8 BGR image. Drawing order: boxes, limbs (all people), scores,
        joints (all people), so a joint's centre pixel always has its joint colour.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, len(names), 3)
    radius, thickness = _auto_size(out, radius, thickness)
    colors = limb_colors(skeleton, names)
    shown = (kpts[..., 2] >= score_thr) & np.isfinite(kpts[..., :2]).all(-1)
    if boxes is not None:
        for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
            x, y, w, h = box
            cv2.rectangle(out, _pt((x, y)), _pt((x + w, y + h)), (160, 160, 160), thickness)
            if box_scores is not None:
                cv2.putText(out, "%.2f" % float(box_scores[i]), _pt((x + 2, y + 12)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, (160, 160, 160), 1, cv2.LINE_AA)
    for person, ok in zip(kpts, shown):
        for (a, b), color in zip(skeleton, colors):
            if ok[a] and ok[b]:
                cv2.line(out, _pt(person[a]), _pt(person[b]), limb_color or color,
                         thickness + 1, cv2.LINE_AA)
    if draw_scores:
        font = 0.3 + 0.1 * thickness
        for person, ok in zip(kpts, shown):
            for j in np.flatnonzero(ok):
                org = _pt(person[j, :2] + (radius + 2, -(radius + 2)))
                cv2.putText(out, "%.2f" % person[j, 2], org, cv2.FONT_HERSHEY_SIMPLEX, font,
                            (255, 255, 255), 1, cv2.LINE_AA)
    for person, ok in zip(kpts, shown):
        for j in np.flatnonzero(ok):
            color = joint_color or JOINT_COLORS_BGR[joint_side(names[j])]
            cv2.circle(out, _pt(person[j]), radius, color, -1, cv2.LINE_8)
    return out


def draw_predictions_vs_gt(image, predictions, ground_truth, *, score_thr=0.3, skeleton=COCO_SKELETON,
                           names=COCO_KEYPOINT_NAMES, pred_color=PRED_COLOR_BGR,
                           gt_color=GT_COLOR_BGR, error_lines=True):
    """Predictions (red) over ground truth (green).

    Args:
        image: (H, W, 3) uint8 BGR.
        predictions: (N, K, 3) ``[x, y, score]``; ground_truth: (M, K, 3) COCO ``[x, y, v]``
            (joints with ``v > 0`` drawn).
        error_lines: when N == M (person i predicted from ground-truth person i), draw a white
            line from each labelled GT joint to its prediction.

    Returns:
        (H, W, 3) uint8 BGR with a small legend in the top-left corner.
    """
    gt = np.asarray(ground_truth, dtype=np.float64).reshape(-1, len(names), 3)
    pred = np.asarray(predictions, dtype=np.float64).reshape(-1, len(names), 3)
    gt_scored = gt.copy()
    gt_scored[..., 2] = (gt[..., 2] > 0).astype(np.float64)
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if error_lines and len(gt) == len(pred):  # under the joints, so joint centres keep their colour
        for g, p in zip(gt, pred):
            for j in np.flatnonzero((g[:, 2] > 0) & (p[:, 2] >= score_thr)):
                cv2.line(out, _pt(g[j]), _pt(p[j]), (255, 255, 255), 1, cv2.LINE_AA)
    out = draw_poses(out, gt_scored, score_thr=0.5, skeleton=skeleton, names=names,
                     draw_scores=False, joint_color=gt_color, limb_color=gt_color)
    out = draw_poses(out, pred, score_thr=score_thr, skeleton=skeleton, names=names,
                     draw_scores=False, joint_color=pred_color, limb_color=pred_color)
    for row, (text, color) in enumerate((("ground truth", gt_color), ("prediction", pred_color))):
        cv2.putText(out, text, (6, 16 + 16 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                    cv2.LINE_AA)
    return out


def denormalize_crop(image_chw, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB):
    """(3, h, w) float32 normalised RGB crop (the pipeline's ``sample['image']``) -> (h, w, 3) BGR."""
    x = np.asarray(image_chw, dtype=np.float32).transpose(1, 2, 0)
    x = (x * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * 255.0
    return np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8)[..., ::-1])


def _stage_codec(codec, stage):
    return codec.stages[stage]


def _stage_target(sample, stage):
    target = np.asarray(sample["target"], dtype=np.float32)
    return target[stage] if target.ndim == 4 else target


def offset_vectors(target, codec, min_heat=0.5):
    """Offset targets as arrows in input-crop pixels.

    Args:
        target: (3K, H, W) heatmap+offset target (blocked layout, ``codecs/layout.py``).
        codec: its :class:`~gluonpose.codecs.offset.HeatmapOffsetCodec` (``radius``, ``stride``).
        min_heat: heatmap pixels above this value give an arrow.

    Returns:
        (joint (M,) int, starts (M, 2), ends (M, 2)) with starts at the heatmap pixels and ends at
        ``pixel + radius * offset``, both mapped to crop pixels (ends land on the keypoint).
    """
    parts = layout.split(layout.HEATMAP_OFFSET, np.asarray(target)[None], codec.num_joints)
    k, ys, xs = np.nonzero(parts["heatmap"][0] > min_heat)
    starts = np.stack([xs, ys], axis=1).astype(np.float64)
    offs = np.stack([parts["offset_x"][0][k, ys, xs], parts["offset_y"][0][k, ys, xs]], axis=1)
    stride = np.asarray(codec.stride, np.float64)
    return k, starts * stride, (starts + codec.radius * offs) * stride


def draw_sample(sample, codec, *, stage=-1, joint=None, alpha=0.5, mean=IMAGENET_MEAN_RGB,
                std=IMAGENET_STD_RGB, arrow_every=1):
    """A training sample with its targets: two crops side by side.

    Left: the crop with the heatmap target (max over joints, or ``joint`` only) as a JET overlay.
    Right: the crop with the offset target as arrows (heatmap+offset layout only) and the sample's
    keypoints (``sample['keypoints']``, weight > 0) as white dots.

    Args:
        sample: the pipeline's dict (``image`` (3, h, w), ``target`` (C, H, W) or (S, C, H, W),
            ``keypoints`` (K, 3) crop pixels + weight).
        codec: the codec (or MultiStageTargets) that made ``target``; ``stage`` picks one stage.
        arrow_every: draw every n-th arrow (offsets fill whole disks).

    Returns:
        (h, 2 w, 3) uint8 BGR.
    """
    crop = denormalize_crop(sample["image"], mean, std)
    h, w = crop.shape[:2]
    c = _stage_codec(codec, stage)
    target = _stage_target(sample, stage)
    k = c.num_joints
    heat = target[:k] if joint is None else target[joint:joint + 1]
    heat = cv2.resize(np.clip(heat.max(axis=0), 0, 1), (w, h), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    left = cv2.addWeighted(crop, 1.0 - alpha, colored, alpha, 0.0)
    right = crop.copy()
    if c.layout == layout.HEATMAP_OFFSET:
        ks, starts, ends = offset_vectors(target, c)
        keep = np.arange(len(ks)) % max(1, int(arrow_every)) == 0
        if joint is not None:
            keep &= ks == joint
        colors = [JOINT_COLORS_BGR[joint_side(n)] for n in COCO_KEYPOINT_NAMES] \
            if k == len(COCO_KEYPOINT_NAMES) else [(0, 255, 255)] * k
        for j, s, e in zip(ks[keep], starts[keep], ends[keep]):
            cv2.arrowedLine(right, _pt(s), _pt(e), colors[j], 1, cv2.LINE_AA, tipLength=0.2)
    kps = np.asarray(sample["keypoints"], dtype=np.float64)
    for x, y, v in kps:
        if v > 0:
            cv2.circle(right, _pt((x, y)), 2, (255, 255, 255), -1, cv2.LINE_8)
    return np.concatenate([left, right], axis=1)


#: BGR colour of the targets decoded back by the codec (:func:`draw_augmented_sample`).
DECODED_COLOR_BGR = (255, 0, 255)
CAPTION_LINE_PX = 18


def caption_tile(image, caption, scale=1.0, font_scale=0.5):
    """``image`` resized by ``scale`` under a white bar with ``caption`` in black: one line (a
    str) or several (a list of str), 22 px for the first line and ``CAPTION_LINE_PX`` per further
    line. Returns a new (bar + h, w, 3) uint8 BGR image."""
    lines = [caption] if isinstance(caption, str) else list(caption)
    out = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    bar = np.full((22 + CAPTION_LINE_PX * max(0, len(lines) - 1), out.shape[1], 3), 255, np.uint8)
    for row, text in enumerate(lines):
        cv2.putText(bar, text, (6, 16 + CAPTION_LINE_PX * row), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, out], axis=0)


def tile_grid(tiles, columns):
    """Tiles (BGR images) row by row, ``columns`` per row, each in a cell of the largest tile's
    size (top-left aligned, white elsewhere). Returns the (rows * h, min(columns, n) * w, 3) sheet."""
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    canvas = np.full((rows * h, min(columns, len(tiles)) * w, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[r * h:r * h + t.shape[0], c * w:c * w + t.shape[1]] = t
    return canvas


def target_as_output(codec, target):
    """A sample's ``target`` ((C, H, W) or (S, C, H, W): the last stage) as the (1, C, H, W)
    output of a perfect network for ``codec.decode``: the target itself, with the heatmap channels
    turned into logits when the codec's ``heatmap_activation`` is ``'sigmoid'``."""
    out = np.array(_stage_target({"target": target}, -1), dtype=np.float32)[None]
    if codec.last.heatmap_activation == "sigmoid":
        k = codec.num_joints
        p = np.clip(out[:, :k], 1e-6, 1.0 - 1e-6)
        out[:, :k] = np.log(p / (1.0 - p))
    return out


def decode_targets(codec, samples):
    """Decode the samples' targets back with ``codec`` (its last stage, as for network outputs).

    Returns:
        (coords (N, K, 2) float64 input-crop pixels, trained (N, K) bool: the last stage's
        ``target_weight`` > 0, the joints whose decoded position means something).
    """
    outputs = np.concatenate([target_as_output(codec, s["target"]) for s in samples])
    coords = np.asarray(codec.decode(outputs)[0], dtype=np.float64)
    trained = np.stack([np.asarray(s["target_weight"]).reshape(-1, codec.num_joints)[-1] > 0
                        for s in samples])
    return coords, trained


def draw_augmented_sample(sample, decoded, caption, *, scale=1.0, mean=IMAGENET_MEAN_RGB,
                          std=IMAGENET_STD_RGB, skeleton=COCO_SKELETON, names=COCO_KEYPOINT_NAMES,
                          marker_size=9):
    """One training sample as the network sees it, for a contact sheet.

    The de-normalised input crop, enlarged by ``scale``; the skeleton of the sample's crop-space
    ``keypoints`` (weight > 0) in the side colours of :func:`draw_poses`; the decoded target
    ``decoded`` ((K, 3) ``[x, y, shown]`` crop pixels, drawn where ``shown`` > 0) as crosses of
    ``DECODED_COLOR_BGR`` on top (so they must sit on the joint dots); ``caption`` (str or lines)
    in a bar above (:func:`caption_tile`).

    Returns:
        (22 + 18 (lines - 1) + round(h scale), round(w scale), 3) uint8 BGR.
    """
    crop = denormalize_crop(sample["image"], mean, std)
    big = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    kps = np.array(sample["keypoints"], dtype=np.float64)
    kps[:, :2] *= scale
    big = draw_poses(big, kps[None], score_thr=0.5, skeleton=skeleton, names=names,
                     draw_scores=False)
    for x, y, shown in np.asarray(decoded, dtype=np.float64):
        if shown > 0 and np.isfinite(x) and np.isfinite(y):
            cv2.drawMarker(big, _pt((x * scale, y * scale)), DECODED_COLOR_BGR, cv2.MARKER_CROSS,
                           int(marker_size), 1, cv2.LINE_8)
    return caption_tile(big, caption, 1.0, font_scale=0.4)


def contact_sheet(samples, codec, captions, *, columns=4, scale=None, mean=IMAGENET_MEAN_RGB,
                  std=IMAGENET_STD_RGB):
    """Training samples (the pipeline's dicts) tiled into one sheet: :func:`draw_augmented_sample`
    of each with its targets decoded by ``codec`` (:func:`decode_targets`).

    Args:
        captions: one caption (str or list of lines) per sample.
        scale: enlargement of the crops (default: at least 224 px wide and 256 px high).

    Returns:
        (sheet (H, W, 3) uint8 BGR, decoded coords (N, K, 2) crop pixels, trained (N, K) bool).
    """
    if not samples:
        raise ValueError("contact_sheet needs at least one sample")
    h, w = np.asarray(samples[0]["image"]).shape[1:]
    if scale is None:
        scale = max(1.0, 224.0 / w, 256.0 / h)
    coords, trained = decode_targets(codec, samples)
    tiles = [draw_augmented_sample(s, np.concatenate([xy, ok[:, None]], axis=1), cap, scale=scale,
                                   mean=mean, std=std)
             for s, xy, ok, cap in zip(samples, coords, trained, captions)]
    return tile_grid(tiles, int(columns)), coords, trained


def plot_training_curves(work_dir, out_path=None):
    """Plot a work dir's loss / learning-rate curves (and validation AP, when ``metrics.csv`` has
    any) with :func:`gluonpose.utils.curves.plot_curves`.

    Reads ``iterations.csv`` (x axis: fractional epoch ``progress``) or, without it,
    ``metrics.csv`` (x axis: epoch). Writes ``out_path`` (default ``work_dir/curves.png``).

    Returns:
        the PNG path. Raises FileNotFoundError naming the work dir when it has neither CSV, and
        ValueError when the CSV has no rows.
    """
    from ..utils.curves import MetricsCSV, plot_curves

    out_path = out_path or os.path.join(work_dir, "curves.png")
    epochs_path = os.path.join(work_dir, "metrics.csv")
    val_rows = MetricsCSV(epochs_path, []).read() if os.path.isfile(epochs_path) else None
    for name, x_key in (("iterations.csv", "progress"), ("metrics.csv", "epoch")):
        path = os.path.join(work_dir, name)
        if os.path.isfile(path):
            rows = MetricsCSV(path, []).read()
            if not rows:
                raise ValueError("%s has no rows to plot" % path)
            return plot_curves(rows, out_path, x_key=x_key, val_rows=val_rows)
    raise FileNotFoundError("no iterations.csv or metrics.csv in work dir %s (written by "
                            "scripts/train_mshrnet.py)" % work_dir)


def save_image(path, image):
    """Write a BGR image; the format follows the extension. Raises naming the path on failure."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, image):
        raise OutputError("could not write image %s (unsupported extension or unwritable folder)" % path)
    return path
