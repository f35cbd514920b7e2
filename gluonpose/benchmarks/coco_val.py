"""A COCO-val-sized evaluation job made from the sample images, generated once and cached.

COCO val2017 with the official person detections (``COCO_val2017_detections_AP_H_56_person.json``)
is 5,000 images and 104,125 boxes. The job written here has the same sizes: image ``i`` is a
hard link (or copy) of sample image ``i % 4`` under a new name, its ground truth the sample's
annotations (new ids), its detections the sample's detection boxes, jittered by up to 2 px, 20 or
21 per image so that the total is exactly 104,125. The folder is named after its parameters and
written into a temporary folder that is renamed when complete, so it is complete or absent.
"""
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from ..errors import MissingFileError

COCO_VAL_IMAGES = 5000
COCO_VAL_BOXES = 104125


def _sample_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(here)), "tests", "data", "samples", "coco")


def coco_val_job(cache_root, *, images=COCO_VAL_IMAGES, boxes=COCO_VAL_BOXES, seed=0,
                 sample_dir=None):
    """Paths of the job, generated on first use: dict(gt_json, det_json, img_prefix, folder).

    Args:
        cache_root: folder that holds the cached jobs (e.g. ``work_dirs/bench``).
        images, boxes: sizes (default COCO val2017's).
        sample_dir: folder with ``test_coco.json``, ``test_coco_det_AP_H_56.json`` and their jpgs
            (default: the repository's ``tests/data/samples/coco``).
    """
    sample_dir = sample_dir or _sample_dir()
    gt_src = os.path.join(sample_dir, "test_coco.json")
    det_src = os.path.join(sample_dir, "test_coco_det_AP_H_56.json")
    for path in (gt_src, det_src):
        if not os.path.isfile(path):
            raise MissingFileError("COCO-val-sized job: missing sample file %s" % path)
    key = hashlib.sha1(("%s|%s|%d|%d|%d" % (os.path.abspath(gt_src), os.path.abspath(det_src),
                                              images, boxes, seed)).encode()).hexdigest()[:8]
    folder = os.path.join(cache_root, "coco_val_i%d_b%d_s%d_%s" % (images, boxes, seed, key))
    paths = {"gt_json": os.path.join(folder, "gt.json"), "det_json": os.path.join(folder, "det.json"),
             "img_prefix": os.path.join(folder, "images"), "folder": folder}
    if os.path.isfile(os.path.join(folder, "DONE")):
        return paths
    os.makedirs(cache_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".coco_val_", dir=cache_root)
    try:
        _generate(tmp, gt_src, det_src, sample_dir, images, boxes, seed)
        try:
            os.rename(tmp, folder)
        except OSError:                  # another process finished first: keep its folder
            if not os.path.isfile(os.path.join(folder, "DONE")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return paths


def _generate(out, gt_src, det_src, sample_dir, num_images, num_boxes, seed):
    with open(gt_src) as f:
        gt = json.load(f)
    with open(det_src) as f:
        dets = json.load(f)
    rng = np.random.default_rng(seed)
    samples = sorted(gt["images"], key=lambda im: im["id"])
    anns_of = {im["id"]: [a for a in gt["annotations"] if a["image_id"] == im["id"]]
               for im in samples}
    dets_of = {im["id"]: sorted((d for d in dets if d["image_id"] == im["id"]),
                                key=lambda d: -d["score"]) for im in samples}
    img_dir = os.path.join(out, "images")
    os.makedirs(img_dir)
    per_image = np.full(num_images, num_boxes // num_images)
    per_image[:num_boxes - per_image.sum()] += 1
    rng.shuffle(per_image)
    images, anns, out_dets = [], [], []
    ann_id = 1
    for i in range(num_images):
        src = samples[i % len(samples)]
        image_id = i + 1
        name = "%012d.jpg" % image_id
        _link(os.path.join(sample_dir, src["file_name"]), os.path.join(img_dir, name))
        images.append(dict(src, id=image_id, file_name=name))
        for a in anns_of[src["id"]]:
            anns.append(dict(a, id=ann_id, image_id=image_id))
            ann_id += 1
        pool = dets_of[src["id"]]
        for j in range(int(per_image[i])):
            d = pool[j % len(pool)]
            x, y, w, h = d["bbox"]
            jx, jy, jw, jh = rng.uniform(-2.0, 2.0, 4)
            bbox = [max(0.0, x + jx), max(0.0, y + jy), max(1.0, w + jw), max(1.0, h + jh)]
            out_dets.append({"image_id": image_id, "category_id": 1,
                             "bbox": [round(v, 2) for v in bbox],
                             "score": round(float(d["score"]) * float(rng.uniform(0.9, 1.0)), 6)})
    with open(os.path.join(out, "gt.json"), "w") as f:
        json.dump(dict(gt, images=images, annotations=anns), f)
    with open(os.path.join(out, "det.json"), "w") as f:
        json.dump(out_dets, f)
    with open(os.path.join(out, "DONE"), "w") as f:
        f.write("%d images, %d boxes\n" % (num_images, len(out_dets)))


def _link(src, dst):
    try:
        os.link(src, dst)
    except OSError:                      # another file system: copy
        shutil.copyfile(src, dst)
