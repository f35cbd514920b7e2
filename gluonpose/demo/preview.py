"""What a finished training run shows its user: predictions drawn on a few validation images.

:func:`draw_val_predictions` runs a trained model on the first images of the config's ``data.val``
(ground-truth person boxes, the config's flip test) and tiles the drawn skeletons into one PNG;
:func:`write_box_file` saves those boxes as a COCO-results json that ``scripts/demo.py --boxes``
reads, so the next command a user tries works on the same images.
"""
import logging
import os
from typing import NamedTuple

import cv2
import numpy as np

from ..evaluation.visualize import caption_tile as _tile, tile_grid as _grid

LOG = logging.getLogger(__name__)


class Preview(NamedTuple):
    """What :func:`draw_val_predictions` drew."""

    path: str              # the PNG
    images: int            # validation images drawn
    people: int            # people (ground-truth boxes) in them
    people_drawn: int      # people with at least one joint at or above the score threshold
    image_dir: str         # folder of the validation images
    boxes: list            # COCO-results entries of the boxes of every validation image


def draw_val_predictions(cfg, weights, out_path, num_images=4, score_thr=0.3, ctx=None,
                         columns=2, scale=2.0):
    """Draw the predictions of ``weights`` (a model of ``cfg``) on the first ``num_images``
    validation images that hold people; write one PNG grid to ``out_path``.

    Boxes: the ground-truth boxes of ``cfg.data.val`` (drawn in grey); joints scoring at least
    ``score_thr`` are drawn (the demo's default), limbs between two drawn joints, no score labels.
    An image that cannot be read is left out (ValueError when none can). Returns a :class:`Preview`.
    """
    from ..evaluation.inference import group_by_image, predict_records
    from ..evaluation.runner import gt_boxes, predictor_from_config, resolve_val_set
    from ..models.builder import build_net_from_config

    if int(num_images) < 1:
        raise ValueError("num_images must be >= 1, got %r" % (num_images,))
    gt_json, img_prefix, layout = resolve_val_set(cfg.data.val)
    records = gt_boxes(gt_json, img_prefix, layout).records
    by_image = group_by_image(records)
    chosen = list(by_image)[:int(num_images)]
    if not chosen:
        raise ValueError("the validation set %s has no labelled people to draw" % gt_json)
    rows = [i for path in chosen for i in by_image[path]]
    import mxnet as mx

    ctx = list(ctx) if ctx else [mx.cpu()]
    net, codec = build_net_from_config(cfg, weights, ctx)
    predictor = predictor_from_config(net, codec, cfg, ctx=ctx)
    result = predict_records(predictor, [records[i] for i in rows], progress=False,
                             on_bad_image="skip")
    kpts = dict(zip(result.record_index.tolist(), result.keypoints()))  # unreadable images: absent
    tiles, drawn_images, people_drawn = _draw_tiles(chosen, rows, records, kpts, score_thr, scale)
    if not tiles:
        raise ValueError("none of the first %d validation images of %s could be read"
                         % (len(chosen), gt_json))
    _write_png(_grid(tiles, columns), out_path)
    boxes = [{"image_id": int(r.image_id), "file_name": os.path.basename(r.image_path),
              "category_id": 1, "bbox": [round(float(v), 2) for v in r.bbox], "score": 1.0}
             for r in records]
    people = sum(len(by_image[p]) for p in drawn_images)
    return Preview(out_path, len(drawn_images), people, people_drawn,
                   os.path.dirname(drawn_images[0]), boxes)


def _draw_tiles(chosen, rows, records, kpts, score_thr, scale):
    """One drawn tile per readable chosen image: (tiles, drawn image paths, people drawn)."""
    from ..data.imageio import read_image
    from ..evaluation.visualize import draw_poses
    tiles, drawn_images, people_drawn = [], [], 0
    for path in chosen:
        mine = [n for n, i in enumerate(rows) if records[i].image_path == path]
        if not all(n in kpts for n in mine):
            continue
        drawn_images.append(path)
        person_kpts = np.stack([kpts[n] for n in mine])
        drawn = int(((person_kpts[..., 2] >= score_thr).any(axis=1)).sum())
        people_drawn += drawn
        boxes = np.stack([records[rows[n]].bbox for n in mine]).astype(np.float64)
        image = draw_poses(read_image(path)[..., ::-1], person_kpts, score_thr=score_thr, boxes=boxes,
                           draw_scores=False)
        tiles.append(_tile(image, "%s: %d of %d people drawn"
                           % (os.path.basename(path), drawn, len(mine)), scale))
    return tiles, drawn_images, people_drawn


def _write_png(image, out_path):
    """Encode ``image`` as PNG and write it atomically."""
    from ..utils.io import atomic_write
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise IOError("could not encode the predictions image %s" % out_path)

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(png.tobytes())

    atomic_write(out_path, write)


def write_box_file(preview, path):
    """Save the validation boxes of ``preview`` as a COCO-results json (``demo.py --boxes``)."""
    from ..utils.io import atomic_write_json

    atomic_write_json(preview.boxes, path)
    return path
