"""Synthetic COCO-format keypoint generator: valid COCO json, keypoints in images, determinism."""
import filecmp
import json
import os
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from gluonpose.data.datasets import build_dataset
from gluonpose.data.synthetic import (generate_synthetic_coco, joint_colors_bgr,
                                      render_synthetic_image, synthetic_image_dir, synthetic_key)

W, H = 320, 240
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    return generate_synthetic_coco(str(out), num_images=30, seed=3, image_size_wh=(W, H))


def test_valid_coco_json_with_keypoints_inside_images(generated):
    path = generated
    coco = COCO(path)
    assert len(coco.getImgIds()) == 30
    assert coco.loadCats(1)[0]["keypoints"][9] == "left_wrist"
    anns = coco.loadAnns(coco.getAnnIds())
    assert 30 <= len(anns) <= 90  # 1-3 people per image
    per_image = np.bincount([a["image_id"] for a in anns], minlength=31)[1:]
    assert per_image.max() <= 3
    img_dir = synthetic_image_dir(os.path.dirname(path))
    for info in coco.loadImgs(coco.getImgIds()):
        img = cv2.imread(os.path.join(img_dir, info["file_name"]))
        assert img is not None and img.shape == (H, W, 3) == (info["height"], info["width"], 3)
    for a in anns:
        kp = np.reshape(a["keypoints"], (17, 3))
        assert set(np.unique(kp[:, 2])) <= {0, 1, 2}
        assert a["num_keypoints"] == int((kp[:, 2] > 0).sum()) > 0
        lab = kp[kp[:, 2] > 0]
        assert (lab[:, 0] >= 0).all() and (lab[:, 0] <= W - 1).all()
        assert (lab[:, 1] >= 0).all() and (lab[:, 1] <= H - 1).all()
        assert not kp[kp[:, 2] == 0].any()
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and x + w <= W - 1 + 1e-6 and y + h <= H - 1 + 1e-6
        assert (lab[:, 0] >= x - 1e-6).all() and (lab[:, 0] <= x + w + 1e-6).all()
        assert (lab[:, 1] >= y - 1e-6).all() and (lab[:, 1] <= y + h + 1e-6).all()
        assert a["area"] > 0 and a["iscrowd"] == 0


def test_visible_joints_carry_their_colour(generated):
    """A visible limb joint's pixel is nearer its own blob colour than its left/right partner's."""
    path = generated
    coco = COCO(path)
    colors = joint_colors_bgr().astype(np.float64)
    partner = {j: j + 1 if j % 2 else j - 1 for j in range(5, 17)}
    img_dir = synthetic_image_dir(os.path.dirname(path))
    hits = total = 0
    for a in coco.loadAnns(coco.getAnnIds()):
        img = cv2.imread(os.path.join(img_dir, coco.loadImgs(a["image_id"])[0]["file_name"]))
        kp = np.reshape(a["keypoints"], (17, 3))
        for j in range(5, 17):
            if kp[j, 2] == 2:
                px = img[int(round(kp[j, 1])), int(round(kp[j, 0]))].astype(np.float64)
                total += 1
                hits += np.abs(px - colors[j]).sum() < np.abs(px - colors[partner[j]]).sum()
    assert total > 300 and hits / total > 0.9


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_synthetic_coco(str(tmp_path / "a"), num_images=4, seed=11)
    b = generate_synthetic_coco(str(tmp_path / "b"), num_images=4, seed=11)
    c = generate_synthetic_coco(str(tmp_path / "c"), num_images=2, seed=11)
    d = generate_synthetic_coco(str(tmp_path / "d"), num_images=4, seed=12)
    with open(a) as fa, open(b) as fb, open(d) as fd:
        ja, jb, jd = json.load(fa), json.load(fb), json.load(fd)
    assert ja == jb and ja["annotations"] != jd["annotations"]
    images = {k: synthetic_image_dir(os.path.dirname(p)) for k, p in (("a", a), ("b", b), ("c", c))}
    for i in range(4):
        name = f"{i:06d}.jpg"
        assert filecmp.cmp(os.path.join(images["a"], name), os.path.join(images["b"], name),
                           shallow=False)
    # image i does not depend on how many images are generated
    assert filecmp.cmp(os.path.join(images["a"], "000001.jpg"),
                       os.path.join(images["c"], "000001.jpg"), shallow=False)


def test_occlusion_flags():
    """No occluder and one person: every labelled joint in the image is visible; with occluders on,
    some labelled joints are marked occluded (v=1)."""
    for s in range(20):
        _, people = render_synthetic_image(np.random.default_rng(s), (W, H), max_people=1,
                                           occlusion_prob=0.0)
        for p in people:
            assert set(p["keypoints"][:, 2].tolist()) <= {0.0, 2.0}
    flags = np.concatenate([p["keypoints"][:, 2] for s in range(20) for p in
                            render_synthetic_image(np.random.default_rng(s), (W, H), 3, 1.0)[1]])
    assert (flags == 1).sum() >= 10 and (flags == 2).sum() > (flags == 1).sum()


def test_build_dataset_synthetic_reads_back(tmp_path):
    ds = build_dataset(type="synthetic", out_dir=str(tmp_path), num_images=5, seed=0,
                       check_images=True)
    assert os.path.dirname(ds.ann_file) == os.path.join(str(tmp_path), synthetic_key(num_images=5))
    with open(ds.ann_file) as f:
        assert len(ds) == len(json.load(f)["annotations"])
    assert all(r.dataset == "synthetic" and os.path.isfile(r.image_path) for r in ds)
    with pytest.raises(TypeError, match="unknown arguments"):
        build_dataset(type="synthetic", out_dir=str(tmp_path), num_imgs=5)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        generate_synthetic_coco(str(tmp_path), num_images=0)
    with pytest.raises(ValueError, match="image_size_wh"):
        generate_synthetic_coco(str(tmp_path), num_images=1, image_size_wh=(16, 240))


_GENERATE = ("import sys; from gluonpose.data.synthetic import generate_synthetic_coco; "
             "print(generate_synthetic_coco(sys.argv[1], num_images=3, seed=4, image_size_wh=(48, 40)))")


def _stamps(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), folder)] = (st.st_ino, st.st_mtime_ns)
    return out


def _generate_concurrently(out_dir, n):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", _GENERATE, str(out_dir)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(n)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-2000:] for o in outs]
    return {o[0].decode().strip() for o in outs}


def test_concurrent_generators_make_one_complete_set_and_reuse_it(tmp_path):
    """Several processes (ranks) generating the same set at once end with one complete folder keyed
    by the parameters; later calls reuse it without rewriting a file."""
    from gluonpose.data.imageio import read_image

    out = tmp_path / "syn"
    paths = _generate_concurrently(out, 4)
    assert len(paths) == 1
    path = paths.pop()
    folder = os.path.dirname(path)
    assert os.path.basename(folder) == synthetic_key(num_images=3, seed=4, image_size_wh=(48, 40))
    assert [n for n in os.listdir(out) if not n.endswith(".lock")] == [os.path.basename(folder)]
    reference = generate_synthetic_coco(str(tmp_path / "ref"), num_images=3, seed=4,
                                        image_size_wh=(48, 40))
    with open(path) as a, open(reference) as b:
        assert json.load(a) == json.load(b)
    for i in range(3):
        name = f"{i:06d}.jpg"
        assert filecmp.cmp(os.path.join(folder, "images", name),
                           os.path.join(os.path.dirname(reference), "images", name), shallow=False)
        assert read_image(os.path.join(folder, "images", name)).shape == (40, 48, 3)
    # a set in use is never rewritten: the same files (inode, mtime) after more runs
    before = _stamps(folder)
    assert _generate_concurrently(out, 2) == {path}
    assert generate_synthetic_coco(str(out), num_images=3, seed=4, image_size_wh=(48, 40)) == path
    assert _stamps(folder) == before
    # other parameters: another folder, the first one untouched
    other = generate_synthetic_coco(str(out), num_images=2, seed=4, image_size_wh=(48, 40))
    assert os.path.dirname(other) != folder and _stamps(folder) == before


def test_a_killed_generators_temp_folder_is_removed(tmp_path):
    key = synthetic_key(num_images=1, seed=0, image_size_wh=(40, 40))
    stale = tmp_path / f".tmp-{key}-{socket.gethostname()}-999999999-abcd"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "000000.jpg").write_bytes(b"half")
    path = generate_synthetic_coco(str(tmp_path), num_images=1, seed=0, image_size_wh=(40, 40))
    assert not stale.exists() and os.path.isfile(path)
    assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".lock")) == [key]
