"""Synthetic COCO-format person keypoint data: articulated figures on textured backgrounds.

Each image holds 1..``max_people`` figures built on the COCO-17 skeleton with random, plausible
poses (torso lean, arm/leg swing and bend, head tilt and yaw, front or back view, body turn) and
sizes. Limbs are filled ellipses, the torso a quadrilateral, the head a disc; every labelled joint
carries a blob of a fixed colour (see :func:`joint_colors_bgr`: left/right of a pair have opposite
hues), so joints sit at visually distinct places and left is distinguishable from right.
Backgrounds mix gradients, stripes, low-frequency noise and distractor shapes. Random rectangles
occlude some joints, and figures occlude each other: a labelled joint is ``v = 2`` where its own
figure is the top-most thing at that pixel, ``v = 1`` where something covers it, ``v = 0`` when it
is outside the image or not labelled (face joints of a back view).

Everything is drawn from ``np.random.default_rng([seed, image index])``: deterministic, and image
``i`` does not depend on ``num_images``. :func:`generate_synthetic_coco` writes a data set once into
a folder keyed by its parameters (temp folder + atomic rename) and reuses it afterwards.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket

import cv2
import numpy as np

from ..errors import ConfigError, DatasetError
from ..keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON, NUM_COCO_KEYPOINTS

_SHIFT = 4  # fixed-point bits for sub-pixel polygon drawing
_LIMBS = ((5, 7, "arm"), (7, 9, "arm"), (6, 8, "arm"), (8, 10, "arm"),
          (11, 13, "leg"), (13, 15, "leg"), (12, 14, "leg"), (14, 16, "leg"))


def synthetic_image_dir(out_dir):
    """Folder of the generated jpgs (the ``img_prefix`` of the generated json)."""
    return os.path.join(out_dir, "images")


def joint_colors_bgr():
    """(17, 3) uint8 BGR blob colour of each COCO joint.

    Limb joints: pair k (shoulders, elbows, wrists, hips, knees, ankles) gets hue ``30 k`` degrees
    for the left joint and ``30 k + 180`` for the right one, fully saturated. Face: white nose,
    pale eyes / ears with opposite hues for left and right.
    """
    hsv = np.zeros((NUM_COCO_KEYPOINTS, 3), dtype=np.float32)
    hsv[:, 1:] = 1.0
    for k in range(6):
        hsv[5 + 2 * k, 0] = 30.0 * k
        hsv[6 + 2 * k, 0] = 30.0 * k + 180.0
    hsv[0] = (0.0, 0.0, 1.0)
    hsv[1:5, 0] = (15.0, 195.0, 105.0, 285.0)
    hsv[1:5, 1] = 0.55
    bgr = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]
    return np.round(bgr * 255.0).astype(np.uint8)


def random_background(rng, size_wh):
    """(h, w, 3) uint8 BGR texture: gradient + stripes or noise + distractor shapes, desaturated."""
    w, h = size_wh
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(ang) + yy * np.sin(ang)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0, c1, c2 = rng.uniform(30, 225, size=(3, 3)).astype(np.float32)
    img = c0 + (c1 - c0) * ramp[..., None]
    kind = rng.integers(3)
    if kind in (0, 2):  # stripes
        a2, period = rng.uniform(0, np.pi), rng.uniform(6, 50)
        s = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(a2) + yy * np.sin(a2)) / period
                               + rng.uniform(0, 2 * np.pi))
        alpha = rng.uniform(0.3, 0.8)
        img = (1 - alpha) * img + alpha * (c2 * s[..., None] + c0 * (1 - s[..., None]))
    if kind in (1, 2):  # low-frequency noise
        cell = int(rng.integers(8, 40))
        low = rng.normal(0, rng.uniform(15, 45), size=(h // cell + 2, w // cell + 2, 3))
        img = img + cv2.resize(low.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(0, 5))):
        color = rng.uniform(30, 225, size=3).tolist()
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(4, 0.2 * min(w, h))
        if rng.random() < 0.5:
            cv2.circle(img, (int(x), int(y)), int(r), color, -1)
        else:
            cv2.rectangle(img, (int(x - r), int(y - r / 2)), (int(x + r), int(y + r / 2)), color, -1)
    gray = img.mean(axis=2, keepdims=True)
    img = gray + 0.6 * (img - gray) + rng.normal(0, 5, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _dir(angle, down, out):
    """Unit vector ``angle`` radians from ``down`` towards ``out``."""
    return np.cos(angle) * down + np.sin(angle) * out


def sample_pose(rng, height, neck_xy):
    """Random figure of ``height`` px (head top to ankles) with its neck at ``neck_xy``.

    Returns:
        points: (19, 2) float64: the 17 COCO joints, then head centre and head top.
        labelled: (17,) bool, False for face joints hidden by a back view / strong yaw.
        head_radius: float, px.
    """
    H = float(height)
    lean = rng.normal(0, 0.12)
    down = np.array([np.sin(lean), np.cos(lean)])
    perp = np.array([np.cos(lean), -np.sin(lean)])  # image-right when upright
    front = rng.random() < 0.8
    out_l = perp if front else -perp  # a front view has the person's left on the image right
    turn = rng.uniform(0.45, 1.0)
    p = np.zeros((19, 2))
    neck = np.asarray(neck_xy, dtype=np.float64)
    pelvis = neck + 0.30 * H * down
    for side, out in ((0, out_l), (1, -out_l)):
        sho, hip = neck + 0.11 * H * turn * out, pelvis + 0.075 * H * turn * out
        a1 = rng.uniform(-0.4, 2.7)
        a2 = a1 + rng.uniform(-2.3, 0.4)
        b1 = rng.uniform(-0.25, 0.6)
        b2 = b1 + rng.uniform(-0.6, 0.3)
        elbow = sho + 0.16 * H * _dir(a1, down, out)
        knee = hip + 0.24 * H * _dir(b1, down, out)
        p[[5 + side, 7 + side, 9 + side]] = sho, elbow, elbow + 0.14 * H * _dir(a2, down, out)
        p[[11 + side, 13 + side, 15 + side]] = hip, knee, knee + 0.23 * H * _dir(b2, down, out)
    tilt = rng.normal(0, 0.2)
    hd, hp = _dir(tilt, down, perp), _dir(tilt + np.pi / 2, down, perp)
    r = 0.065 * H
    head = neck - 0.10 * H * hd
    yaw = rng.uniform(-0.6, 0.6)
    hl = hp if front else -hp  # head direction of the person's left
    p[17], p[18] = head, head - r * hd
    p[0] = head + r * (0.3 * hd + 0.6 * yaw * hp)
    p[1] = head + r * (-0.15 * hd + 0.6 * yaw * hp) + 0.38 * r * hl
    p[2] = head + r * (-0.15 * hd + 0.6 * yaw * hp) - 0.38 * r * hl
    p[3], p[4] = head + 0.95 * r * hl, head - 0.95 * r * hl
    labelled = np.ones(NUM_COCO_KEYPOINTS, dtype=bool)
    if not front:
        labelled[:3] = False
    elif abs(yaw) > 0.35:  # the ear on the far side of the turned head is hidden
        labelled[3 if (yaw > 0) == (hl @ hp > 0) else 4] = False
    return p, labelled, r


def _ellipse_pts(p0, p1, half_width, n=20):
    """(n, 2) float polygon of an ellipse spanning p0..p1 with the given half width."""
    c, v = (p0 + p1) / 2.0, (p1 - p0) / 2.0
    length = max(float(np.hypot(*v)), 1e-3)
    u = v / length
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return c + np.cos(t) * (length + 0.4 * half_width) * u + np.sin(t) * half_width * u[::-1] * [-1, 1]


def _fill(img, mask, label, pts, color):
    poly = [np.round(np.asarray(pts) * (1 << _SHIFT)).astype(np.int32)]
    cv2.fillPoly(img, poly, [int(c) for c in color], cv2.LINE_AA, _SHIFT)
    cv2.fillPoly(mask, poly, int(label), cv2.LINE_8, _SHIFT)


def _disc(center, radius, n=20):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return np.asarray(center) + radius * np.concatenate([np.cos(t), np.sin(t)], axis=1)


def draw_person(img, mask, label, points, labelled, head_radius, height, rng, colors):
    """Draw one figure onto ``img`` (h, w, 3) uint8 and ``label`` into ``mask`` (h, w) uint8."""
    H = float(height)

    def dull():  # a desaturated clothing colour, away from the saturated joint blobs
        return rng.uniform(40, 210, 3) * 0.5 + rng.uniform(40, 210) * 0.5

    limb_color = {"arm": dull(), "leg": dull()}
    half = {"arm": max(1.5, 0.028 * H), "leg": max(2.0, 0.038 * H)}
    for a, b, kind in _LIMBS[4:]:
        _fill(img, mask, label, _ellipse_pts(points[a], points[b], half[kind]), limb_color[kind])
    _fill(img, mask, label, points[[5, 6, 12, 11]], dull())
    _fill(img, mask, label, _ellipse_pts((points[5] + points[6]) / 2, points[17], 0.025 * H), dull())
    for a, b, kind in _LIMBS[:4]:
        _fill(img, mask, label, _ellipse_pts(points[a], points[b], half[kind]), limb_color[kind])
    skin = np.array([rng.uniform(60, 200), rng.uniform(90, 210), rng.uniform(120, 240)])
    _fill(img, mask, label, _disc(points[17], head_radius), skin)
    blob = max(2.0, 0.026 * H)
    for j in range(NUM_COCO_KEYPOINTS):
        if labelled[j]:
            _fill(img, mask, label, _disc(points[j], blob * (0.5 if j < 5 else 1.0), 12), colors[j])


def render_synthetic_image(rng, image_size_wh=(320, 240), max_people=3, occlusion_prob=0.3):
    """Render one image.

    Returns:
        image: (h, w, 3) uint8 BGR.
        people: list of dicts with ``keypoints`` (17, 3) float64 ``[x, y, v]``, ``bbox``
            ``[x, y, w, h]`` and ``area`` (visible pixels); figures without a labelled joint or
            with a box under 2 px are left out.
    """
    w, h = image_size_wh
    img = random_background(rng, image_size_wh)
    mask = np.zeros((h, w), dtype=np.uint8)
    colors = joint_colors_bgr()
    n = int(rng.integers(1, max_people + 1))
    figures = []
    for i in range(n):
        height = rng.uniform(0.45, 0.95) * h * (1.0 if n == 1 else rng.uniform(0.7, 1.0))
        cx = (i + rng.uniform(0.25, 0.75)) * w / n
        lo, hi = 0.17 * height, h - 0.77 * height
        neck_y = rng.uniform(lo, hi) if hi > lo else rng.uniform(hi, lo)
        points, labelled, r = sample_pose(rng, height, (cx, neck_y))
        draw_person(img, mask, i + 1, points, labelled, r, height, rng, colors)
        figures.append((points, labelled, height))
    for points, labelled, height in figures:
        if rng.random() < occlusion_prob:
            j = rng.choice(np.flatnonzero(labelled))
            size = rng.uniform(0.12, 0.3, 2) * height
            c = points[j] + rng.uniform(-0.3, 0.3, 2) * size
            x0, y0 = np.round(c - size / 2).astype(int)
            x1, y1 = np.round(c + size / 2).astype(int)
            cv2.rectangle(img, (x0, y0), (x1, y1), rng.uniform(0, 255, 3).tolist(), -1)
            cv2.rectangle(mask, (x0, y0), (x1, y1), 255, -1)
    people = []
    for i, (points, labelled, height) in enumerate(figures):
        kpts = np.zeros((NUM_COCO_KEYPOINTS, 3))
        xy = points[:NUM_COCO_KEYPOINTS]
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
        for j in np.flatnonzero(labelled & inside):
            px, py = int(round(xy[j, 0])), int(round(xy[j, 1]))
            kpts[j] = (xy[j, 0], xy[j, 1], 2 if mask[py, px] == i + 1 else 1)
        margin = 0.04 * height
        x0, y0 = np.clip(points.min(0) - margin, 0, None)
        x1, y1 = np.minimum(points.max(0) + margin, (w - 1, h - 1))
        if not (kpts[:, 2] > 0).any() or x1 - x0 < 2 or y1 - y0 < 2:
            continue
        area = max(float((mask == i + 1).sum()), 1.0)
        people.append({"keypoints": kpts, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": area})
    return img, people


#: Version of the generator's output; part of the folder key, bump it when the drawing changes.
SYNTHETIC_FORMAT = 1


def synthetic_key(num_images=100, seed=0, image_size_wh=(320, 240), max_people=3,
                  occlusion_prob=0.3, jpeg_quality=95, json_name="person_keypoints_synthetic.json"):
    """Folder name of one parameter set: ``n<num>_seed<seed>_<w>x<h>_<digest of all parameters>``."""
    w, h = (int(v) for v in image_size_wh)
    params = {"num_images": int(num_images), "seed": int(seed), "image_size_wh": [w, h],
              "max_people": int(max_people), "occlusion_prob": float(occlusion_prob),
              "jpeg_quality": int(jpeg_quality), "json_name": str(json_name),
              "format": SYNTHETIC_FORMAT}
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return f"n{int(num_images)}_seed{int(seed)}_{w}x{h}_{digest}"


@contextlib.contextmanager
def _folder_lock(path):
    """Exclusive ``flock`` on ``path`` (best effort: where flock is unsupported, the atomic
    rename alone keeps the data set whole)."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except OSError:
            pass
        try:
            yield
        finally:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            except OSError:
                pass


def _remove_stale_tmp_dirs(out_dir, key):
    """Temp folders of ``key`` left on this host by a generator that was killed."""
    prefix = f".tmp-{key}-{socket.gethostname()}-"
    for name in os.listdir(out_dir):
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)


def generate_synthetic_coco(out_dir, num_images=100, seed=0, image_size_wh=(320, 240),
                            max_people=3, occlusion_prob=0.3, jpeg_quality=95,
                            json_name="person_keypoints_synthetic.json"):
    """The synthetic data set of these parameters, generated once; returns its json path.

    The data set lives in ``out_dir/<synthetic_key(...)>/`` (``json_name`` and ``images/``). It is
    written into a temp folder and renamed into place in one step, so the folder either does not
    exist or is complete; an existing one is reused and never rewritten (a running job may be
    reading it). Concurrent callers (ranks, parallel runs) wait on a lock file and then reuse
    the folder the first one made.
    """
    if int(num_images) < 1 or int(max_people) < 1:
        raise ConfigError(f"num_images and max_people must be >= 1, got {num_images}, {max_people}")
    w, h = (int(v) for v in image_size_wh)
    if w < 32 or h < 32:
        raise ConfigError(f"image_size_wh must be at least 32x32, got {image_size_wh}")
    key = synthetic_key(num_images, seed, (w, h), max_people, occlusion_prob, jpeg_quality, json_name)
    final = os.path.join(out_dir, key)
    json_path = os.path.join(final, json_name)
    if os.path.isfile(json_path):
        return json_path
    os.makedirs(out_dir, exist_ok=True)
    with _folder_lock(os.path.join(out_dir, f".{key}.lock")):
        if os.path.isfile(json_path):  # made by another process while we waited
            return json_path
        if os.path.exists(final):
            raise DatasetError(f"{final} exists but holds no {json_name}: not a folder this "
                               "generator made; remove it")
        _remove_stale_tmp_dirs(out_dir, key)
        tmp = os.path.join(out_dir, f".tmp-{key}-{socket.gethostname()}-{os.getpid()}-"
                                    f"{secrets.token_hex(4)}")
        try:
            _write_synthetic_coco(tmp, int(num_images), int(seed), (w, h), int(max_people),
                                  float(occlusion_prob), int(jpeg_quality), json_name)
            try:
                os.rename(tmp, final)
            except OSError:
                if not os.path.isfile(json_path):  # not another generator's complete folder
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return json_path


def _write_synthetic_coco(out_dir, num_images, seed, size_wh, max_people, occlusion_prob,
                          jpeg_quality, json_name):
    """Write the jpgs to ``out_dir/images`` and the COCO keypoint json to ``out_dir/json_name``."""
    w, h = size_wh
    img_dir = synthetic_image_dir(out_dir)
    os.makedirs(img_dir)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, index])
        img, people = render_synthetic_image(rng, (w, h), max_people, occlusion_prob)
        file_name = f"{index:06d}.jpg"
        if not cv2.imwrite(os.path.join(img_dir, file_name), img,
                           [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
            raise OSError(f"could not write {os.path.join(img_dir, file_name)}")
        images.append({"id": index + 1, "file_name": file_name, "width": w, "height": h})
        for person in people:
            x, y, bw, bh = (round(float(v), 2) for v in person["bbox"])
            kp = person["keypoints"]
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": 1, "iscrowd": 0,
                "bbox": [x, y, bw, bh], "area": round(person["area"], 2),
                "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "keypoints": [round(float(v), 2) if k % 3 < 2 else int(v)
                              for k, v in enumerate(kp.reshape(-1))]})
    data = {
        "info": {"description": "gluonpose synthetic person keypoints", "seed": seed,
                 "num_images": num_images, "image_size_wh": [w, h], "max_people": max_people,
                 "occlusion_prob": occlusion_prob, "jpeg_quality": jpeg_quality,
                 "format": SYNTHETIC_FORMAT},
        "licenses": [], "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person",
                        "keypoints": list(COCO_KEYPOINT_NAMES),
                        "skeleton": [[a + 1, b + 1] for a, b in COCO_SKELETON]}]}
    with open(os.path.join(out_dir, json_name), "w", encoding="utf-8") as f:
        json.dump(data, f)
