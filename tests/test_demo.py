"""scripts/demo.py on a real COCO sample image with its detection file: the drawn joints are where the
predicted coordinates (written with --out-json) say, and nowhere else."""
import contextlib
import io
import json
import os

import cv2
import numpy as np
import pytest


from _helpers import load_script, run_main, write_tiny_model

MAGENTA_BGR = (255, 0, 255)
IMAGE = "000000196141.jpg"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    return write_tiny_model(folder, "m", "mshrnet_w8_2stage", (96, 128), seed=5)[:2]


def _demo(argv):
    return run_main(load_script("demo").main, argv)


def test_demo_draws_joints_where_the_predictions_are(data_dir, tiny_model, tmp_path):
    folder = os.path.join(data_dir, "samples", "coco")
    image_path = os.path.join(folder, IMAGE)
    det = os.path.join(folder, "test_coco_det_AP_H_56.json")
    out, poses = str(tmp_path / "vis.png"), str(tmp_path / "poses.json")
    cfg, weights = tiny_model
    code, text = _demo(["--config", cfg, "--weights", weights, "--image", image_path, "--boxes", det,
                        "--out", out, "--out-json", poses, "--joint-color", "255,0,255",
                        "--score-thr=-1e9", "--no-scores", "--nms-thr", "0", "--box-thr", "0.5"])
    assert code == 0, text
    original = cv2.imread(image_path)
    drawn = cv2.imread(out)
    assert drawn is not None and drawn.shape == original.shape

    # one pose per detection of this image (image_id 196141 from the numeric file name) above 0.5
    dets = [d for d in json.load(open(det)) if d["image_id"] == 196141 and d["score"] >= 0.5]
    results = json.load(open(poses))
    assert len(results) == len(dets) > 0
    assert "%d people: %d with at least one joint drawn" % (len(dets), len(dets)) in text, text
    assert all(r["image_id"] == 196141 for r in results)

    h, w = original.shape[:2]
    radius = max(2, int(round(max(h, w) / 220.0)))        # the drawing's default joint radius
    is_magenta = np.all(drawn == MAGENTA_BGR, axis=-1)
    near_joint = np.zeros((h, w), bool)
    yy, xx = np.mgrid[:h, :w]
    inside = 0
    for r in results:
        kpts = np.asarray(r["keypoints"], np.float64).reshape(17, 3)
        for x, y, _ in kpts:
            px, py = int(round(x)), int(round(y))
            if 0 <= px < w and 0 <= py < h:
                inside += 1
                assert is_magenta[py, px], "no joint drawn at predicted (%.1f, %.1f)" % (x, y)
            near_joint |= (xx - px) ** 2 + (yy - py) ** 2 <= (radius + 1) ** 2
    assert inside >= 17
    # every joint-coloured pixel belongs to a disk around a predicted joint
    assert not (is_magenta & ~near_joint).any()
    assert not np.all(original == MAGENTA_BGR, axis=-1).any()


def test_demo_counts_people_with_a_joint_drawn_and_labels_each_person_once(data_dir, tiny_model,
                                                                           tmp_path):
    folder = os.path.join(data_dir, "samples", "coco")
    image_path = os.path.join(folder, IMAGE)
    det = os.path.join(folder, "test_coco_det_AP_H_56.json")
    dets = [d for d in json.load(open(det)) if d["image_id"] == 196141 and d["score"] >= 0.5]
    cfg, weights = tiny_model
    common = ["--config", cfg, "--weights", weights, "--image", image_path, "--boxes", det,
              "--nms-thr", "0", "--box-thr", "0.5"]
    # no joint reaches the threshold: every person is predicted, none is drawn, and the line says so
    code, text = _demo(common + ["--out", str(tmp_path / "none.png"), "--score-thr", "1e9"])
    assert code == 0, text
    assert "%d people: 0 with at least one joint drawn" % len(dets) in text, text

    def drawing(scores):
        out = str(tmp_path / ("%s.png" % scores))
        code, text = _demo(common + ["--out", out, "--score-thr=-1e9", "--scores", scores])
        assert code == 0, text
        return cv2.imread(out).astype(int)

    bare, person, joint = drawing("none"), drawing("person"), drawing("joint")
    h, w = bare.shape[:2]
    labels = np.zeros((h, w), bool)        # where a person's label may go: inside its box's top-left
    for d in dets:
        x, y = int(d["bbox"][0]), int(d["bbox"][1])
        labels[max(y, 0):y + 18, max(x, 0):x + 56] = True
    changed = (person != bare).any(axis=-1)
    assert changed.any() and not (changed & ~labels).any()     # one label per person, nothing else
    assert ((joint != bare).any(axis=-1) & ~labels).sum() > 10 * len(dets)   # joint labels on request


def test_demo_missing_detector_weights_says_how_to_get_them(data_dir, tiny_model, tmp_path):
    cfg, weights = tiny_model
    image = os.path.join(data_dir, "samples", "coco", IMAGE)
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        code, _ = _demo(["--config", cfg, "--weights", weights, "--image", image,
                         "--detector", "yolo3_darknet53_coco", "--detector-root", str(tmp_path),
                         "--out", str(tmp_path / "v.jpg")])
    assert code == 2
    err = buf.getvalue()
    assert "yolo3_darknet53_coco" in err and str(tmp_path) in err


def test_demo_boxes_file_errors_name_the_file(data_dir, tiny_model, tmp_path):
    cfg, weights = tiny_model
    image = os.path.join(data_dir, "samples", "coco", IMAGE)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        code, _ = _demo(["--config", cfg, "--weights", weights, "--image", image,
                         "--boxes", str(bad), "--out", str(tmp_path / "v.jpg")])
    assert code == 2 and str(bad) in buf.getvalue()


def test_demo_on_a_video_and_a_folder(data_dir, tiny_model, tmp_path):
    folder = os.path.join(data_dir, "samples", "coco")
    frame = cv2.imread(os.path.join(folder, IMAGE))
    frame = frame[:frame.shape[0] // 2 * 2, :frame.shape[1] // 2 * 2]   # MJPG keeps even sizes
    h, w = frame.shape[:2]
    clip = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (w, h))
    assert writer.isOpened()
    for _ in range(3):
        writer.write(frame)
    writer.release()
    dets = [d for d in json.load(open(os.path.join(folder, "test_coco_det_AP_H_56.json")))
            if d["image_id"] == 196141 and d["score"] >= 0.5]
    boxes = str(tmp_path / "frames.json")                # video frames match image_id = frame index
    with open(boxes, "w") as f:
        json.dump([dict(d, image_id=i) for i in range(3) for d in dets], f)
    cfg, weights = tiny_model
    out, poses = str(tmp_path / "out.avi"), str(tmp_path / "poses.json")
    code, text = _demo(["--config", cfg, "--weights", weights, "--image", clip, "--boxes", boxes,
                        "--out", out, "--out-json", poses, "--nms-thr", "0"])
    assert code == 0, text
    cap = cv2.VideoCapture(out)
    frames = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == frame.shape
        frames += 1
    cap.release()
    assert frames == 3
    results = json.load(open(poses))
    assert sorted({r["image_id"] for r in results}) == [0, 1, 2]
    assert len(results) == 3 * len(dets)

    images = tmp_path / "images"
    images.mkdir()
    for name in (IMAGE, "000000000785.jpg"):
        os.symlink(os.path.join(folder, name), str(images / name))
    code, text = _demo(["--config", cfg, "--weights", weights, "--image", str(images),
                        "--boxes", os.path.join(folder, "test_coco_det_AP_H_56.json"),
                        "--out", str(tmp_path / "vis")])
    assert code == 0, text
    for name in (IMAGE, "000000000785.jpg"):
        assert cv2.imread(str(tmp_path / "vis" / name)).shape[2] == 3


@pytest.fixture(scope="module")
def detector_root(tmp_path_factory):
    """A local GluonCV model store holding (random) yolo3_mobilenet1.0_coco weights under the file
    name GluonCV's store gives them: the same layout as ~/.mxnet/models after a real download."""
    pytest.importorskip("gluoncv", reason="--detector needs gluoncv")
    import mxnet as mx
    from gluoncv import model_zoo

    from gluonpose.demo.detector import detector_weights_path
    root = str(tmp_path_factory.mktemp("models"))
    net = model_zoo.get_model(DETECTOR, pretrained=False, pretrained_base=False)
    net.initialize()
    net(mx.nd.zeros((1, 3, 416, 416)))
    net.save_parameters(detector_weights_path(DETECTOR, root))
    return root


DETECTOR = "yolo3_mobilenet1.0_coco"


def test_demo_with_a_local_gluoncv_detector(data_dir, tiny_model, detector_root, tmp_path):
    from gluonpose.data.imageio import read_image
    from gluonpose.demo.detector import PersonDetector
    image_path = os.path.join(data_dir, "samples", "coco", IMAGE)
    image = read_image(image_path)
    det = PersonDetector(DETECTOR, root=detector_root, score_thr=0.0)
    boxes, scores = det(image)
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(scores) > 0
    assert (boxes[:, 2:] > 0).all() and np.isfinite(boxes).all() and (scores >= 0).all()

    cfg, weights = tiny_model
    out, poses = str(tmp_path / "vis.jpg"), str(tmp_path / "poses.json")
    code, text = _demo(["--config", cfg, "--weights", weights, "--image", image_path,
                        "--detector", DETECTOR, "--detector-root", detector_root, "--box-thr", "0",
                        "--nms-thr", "0", "--out", out, "--out-json", poses])
    assert code == 0, text
    assert cv2.imread(out).shape == image.shape
    assert len(json.load(open(poses))) == len(boxes)     # one pose per detected person box


def test_detector_weights_that_do_not_fit_are_named(tiny_model, tmp_path):
    pytest.importorskip("gluoncv", reason="--detector needs gluoncv")
    from gluonpose.demo.detector import PersonDetector
    _, weights = tiny_model                               # a pose net's parameters, not a detector's
    with pytest.raises(ValueError, match="do not fit"):
        PersonDetector(DETECTOR, weights=weights)
