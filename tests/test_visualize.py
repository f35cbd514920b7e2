"""Visualisation helpers on real COCO samples: a training sample's offset arrows end on its keypoints,
predictions and ground truth are drawn at their coordinates, training curves are plotted from a CSV."""
import json
import os

import cv2
import numpy as np
import pytest

from gluonpose.codecs import HeatmapOffsetCodec
from gluonpose.data.imageio import read_image
from gluonpose.data.pipeline import TopDownTrainTransform, sample_rng
from gluonpose.data.records import PersonRecord
from gluonpose.utils.curves import MetricsCSV
from gluonpose.evaluation.visualize import (GT_COLOR_BGR, PRED_COLOR_BGR, denormalize_crop,
                                       draw_predictions_vs_gt, draw_sample, offset_vectors,
                                       plot_training_curves, save_image)


@pytest.fixture(scope="module")
def person(data_dir):
    root = os.path.join(data_dir, "samples", "coco")
    data = json.load(open(os.path.join(root, "test_coco.json")))
    ann = next(a for a in data["annotations"] if a["num_keypoints"] == 17)
    image = next(im for im in data["images"] if im["id"] == ann["image_id"])
    path = os.path.join(root, image["file_name"])
    rec = PersonRecord(image_path=path, bbox=np.array(ann["bbox"], np.float32),
                       keypoints=np.array(ann["keypoints"], np.float32).reshape(17, 3),
                       image_id=ann["image_id"], area=ann["area"], dataset="coco", ann_id=ann["id"])
    return read_image(path), rec


def test_offset_arrows_end_on_the_keypoints(person, tmp_path):
    image, rec = person
    codec = HeatmapOffsetCodec((192, 256))
    sample = TopDownTrainTransform(codec, rot_factor=15.0, half_body_prob=0.0)(image, rec,
                                                                            sample_rng(0, 0, 0))
    joints, starts, ends = offset_vectors(sample["target"], codec)
    assert len(joints) >= 17 * 9                         # every joint's disk has arrows
    kps = sample["keypoints"]
    np.testing.assert_allclose(ends, kps[joints, :2], atol=1e-3)
    assert (np.linalg.norm(starts - ends, axis=1) <= codec.radius * max(codec.stride) + 1e-6).all()

    canvas = draw_sample(sample, codec)
    assert canvas.shape == (256, 384, 3) and canvas.dtype == np.uint8
    crop = denormalize_crop(sample["image"])
    right = canvas[:, 192:]
    for x, y, v in kps:                                  # white keypoint dots on the right panel
        if v > 0 and 0 <= x < 191.5 and 0 <= y < 255.5:
            assert tuple(right[int(round(y)), int(round(x))]) == (255, 255, 255)
    assert (canvas[:, :192] != crop).any()               # the heatmap overlay changed the left
    path = save_image(str(tmp_path / "sample.png"), canvas)
    assert cv2.imread(path).shape == canvas.shape


def test_predictions_and_ground_truth_drawn_at_their_coordinates(person):
    image, rec = person
    bgr = np.ascontiguousarray(image[..., ::-1])
    gt = rec.keypoints[None].astype(np.float64)
    pred = gt.copy()
    pred[..., 0] += 25.0                                 # 25 px right, every joint
    pred[..., 2] = 0.9
    out = draw_predictions_vs_gt(bgr, pred, gt)
    h, w = out.shape[:2]
    gt_shown = 0
    for (gx, gy, v), (px, py, _) in zip(gt[0], pred[0]):
        if v > 0 and 0 <= px < w - 0.5:
            # predictions are drawn last: their joint centres always show; a GT joint may lie
            # under a prediction limb
            assert tuple(out[int(round(py)), int(round(px))]) == PRED_COLOR_BGR
            gt_shown += tuple(out[int(round(gy)), int(round(gx))]) == GT_COLOR_BGR
    assert gt_shown >= 12
    assert not (out == image[..., ::-1]).all(axis=-1)[:40, :120].all()     # the legend


def test_training_curves_from_metrics(tmp_path):
    csv = MetricsCSV(str(tmp_path / "iterations.csv"), ["progress", "loss", "heatmap", "offset", "lr"])
    for i in range(20):
        csv.append({"progress": i / 4.0, "loss": 1.0 / (i + 1), "heatmap": 0.6 / (i + 1),
                    "offset": 0.4 / (i + 1), "lr": 1e-3 if i < 15 else 1e-4})
    path = plot_training_curves(str(tmp_path))
    assert path == str(tmp_path / "curves.png")
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 100 and img.std() > 10
    with pytest.raises(FileNotFoundError, match="empty"):
        plot_training_curves(str(tmp_path / "empty"))


def test_metrics_csv_rows_are_replaced_dropped_and_migrated(tmp_path):
    path = str(tmp_path / "metrics.csv")
    with open(path, "w") as f:  # an older version's columns, and a row torn by a kill
        f.write("epoch,loss\n1,0.5\n2,0.25\n3,0.1\n4,0.0")
    csv = MetricsCSV(path, ["epoch", "loss", "AP"])
    assert [(r["epoch"], r["loss"], r["AP"]) for r in csv.read()] == \
        [(1, 0.5, None), (2, 0.25, None), (3, 0.1, None), (4, 0.0, None)]
    assert csv.drop_after_epoch(2) == 2
    csv.replace_last({"epoch": 2, "loss": 0.25, "AP": 0.75})
    csv.append({"epoch": 3, "loss": 0.125})
    assert [(r["epoch"], r["loss"], r["AP"]) for r in csv.read()] == \
        [(1, 0.5, None), (2, 0.25, 0.75), (3, 0.125, None)]
    assert csv.drop_after_epoch(3) == 0 and len(csv.read()) == 3
    with open(path, "a") as f:
        f.write("3")  # a line torn by a kill (no newline): dropped even though epoch "3" <= 3
    assert MetricsCSV(path, ["epoch", "loss", "AP"]).drop_after_epoch(3) == 1
    assert [r["epoch"] for r in MetricsCSV(path, []).read()] == [1, 2, 3]


def test_training_curves_plot_validation_ap_when_there_is_one(tmp_path):
    from gluonpose.utils.curves import curves_figure

    iters = MetricsCSV(str(tmp_path / "iterations.csv"), ["progress", "loss", "heatmap", "offset", "lr"])
    for i in range(16):
        iters.append({"progress": (i + 1) / 4.0, "loss": 1.0 / (i + 1), "heatmap": 0.6 / (i + 1),
                      "offset": 0.4 / (i + 1), "lr": 1e-3})
    epochs = MetricsCSV(str(tmp_path / "metrics.csv"), ["epoch", "loss", "AP"])
    for e, ap in ((1, None), (2, 0.25), (3, None), (4, 0.61)):  # validation every 2 epochs
        epochs.append({"epoch": e, "loss": 1.0 / e, "AP": ap})

    fig = curves_figure(iters.read(), val_rows=epochs.read())
    ap_axes = [ax for ax in fig.axes if ax.get_ylabel() == "validation AP"]
    assert len(ap_axes) == 1
    (line,) = ap_axes[0].get_lines()
    assert list(line.get_xdata()) == [2.0, 4.0] and list(line.get_ydata()) == [0.25, 0.61]
    # the same x axis as the loss panel, whose curves are still all there
    loss_ax = [ax for ax in fig.axes if ax.get_ylabel() == "loss"][0]
    assert loss_ax.get_shared_x_axes().joined(loss_ax, ap_axes[0])
    assert sorted(ln.get_label() for ln in loss_ax.get_lines()) == ["heatmap", "loss", "offset"]

    # no validation values -> the loss panel alone
    no_val = [dict(r, AP=None) for r in epochs.read()]
    assert not any(ax.get_ylabel() == "validation AP"
                   for ax in curves_figure(iters.read(), val_rows=no_val).axes)
    # the work-dir helper reads metrics.csv for it: the PNG has the taller two-panel layout
    two = cv2.imread(plot_training_curves(str(tmp_path), str(tmp_path / "two.png")))
    os.remove(str(tmp_path / "metrics.csv"))
    one = cv2.imread(plot_training_curves(str(tmp_path), str(tmp_path / "one.png")))
    assert two.shape[0] > one.shape[0] * 1.3
