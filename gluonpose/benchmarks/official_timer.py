"""Time the official HRNet code (PyTorch) on the CPU; run by ``scripts/benchmark.py --side-by-side``.

This file is executed with the *official* environment's Python (one with torch), so it imports only torch, the
standard library and what the official code itself imports (cv2 and numpy for the data pipeline). The official files
are read at run time from the repository the user names: a checkout (the work tree) or a git mirror
(``git show HEAD:...``). Nothing of the official code is stored in gluonpose.

Usage:
  python official_timer.py REPO WIDTH H W BATCH THREADS ITERS infer|train
      the pose net of ``lib/models/pose_hrnet.py``; prints
      ``RESULT official <what> samples/s: <median over ITERS timed batches>``.
  python official_timer.py REPO loader H W SAMPLES THREADS COCO_DIR
      the training data pipeline: ``lib/dataset/JointsDataset.py`` (with ``lib/utils/transforms.py``) over the
      people of ``COCO_DIR/test_coco.json``, ``__getitem__`` of SAMPLES samples in one process with the
      augmentation of the official ``w48_384x288_adam_lr1e-3.yaml`` and the official ``ToTensor`` + ImageNet
      ``Normalize`` transform; prints ``RESULT official loader HxW samples/s: <SAMPLES / total time>``.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time


def official_source(repo, rel):
    """The bytes of ``rel`` (a path like ``lib/models/pose_hrnet.py``) in the official checkout or git mirror."""
    path = os.path.join(repo, *rel.split("/"))
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return subprocess.check_output(["git", "-C", repo, "show", "HEAD:" + rel])


def load_pose_module(repo):
    path = os.path.join(tempfile.mkdtemp(), "pose_hrnet.py")
    with open(path, "wb") as f:
        f.write(official_source(repo, "lib/models/pose_hrnet.py"))
    spec = importlib.util.spec_from_file_location("official_pose_hrnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_config(width, num_joints=17):
    """The official w32/w48 experiment's MODEL.EXTRA with the channels of ``width``."""
    def stage(branches, modules):
        return {"NUM_MODULES": modules, "NUM_BRANCHES": branches, "BLOCK": "BASIC", "NUM_BLOCKS": [4] * branches,
                "NUM_CHANNELS": [width * 2 ** i for i in range(branches)], "FUSE_METHOD": "SUM"}
    return {"MODEL": {"NUM_JOINTS": num_joints, "EXTRA": {
        "STAGE2": stage(2, 1), "STAGE3": stage(3, 4), "STAGE4": stage(4, 3),
        "FINAL_CONV_KERNEL": 1, "PRETRAINED_LAYERS": ["*"]}}}


# ---------------------------------------------------------------------------------------------- data pipeline
#: ``experiments/coco/hrnet/w48_384x288_adam_lr1e-3.yaml`` (DATASET and MODEL keys JointsDataset reads) with the
#: defaults of ``lib/config/default.py`` for the keys the yaml leaves out (LOSS.USE_DIFFERENT_JOINTS_WEIGHT False).
OFFICIAL_W48_384 = {"DATASET": {"DATA_FORMAT": "jpg", "COLOR_RGB": True, "FLIP": True, "NUM_JOINTS_HALF_BODY": 8,
                                "PROB_HALF_BODY": 0.3, "ROT_FACTOR": 45, "SCALE_FACTOR": 0.35},
                    "MODEL": {"TARGET_TYPE": "gaussian", "IMAGE_SIZE": [288, 384], "HEATMAP_SIZE": [72, 96],
                              "SIGMA": 3},
                    "LOSS": {"USE_DIFFERENT_JOINTS_WEIGHT": False}, "OUTPUT_DIR": "output"}
COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


class _Node(dict):
    """Attribute access to a nested dict (what the official code reads of its yacs config)."""

    def __getattr__(self, name):
        value = self[name]
        return _Node(value) if isinstance(value, dict) else value


def load_joints_dataset(repo):
    """The official ``JointsDataset`` class, imported from a temporary folder holding ``JointsDataset.py`` and
    ``utils/transforms.py`` of ``repo`` (it imports ``from utils.transforms import ...``)."""
    root = tempfile.mkdtemp()
    os.makedirs(os.path.join(root, "utils"))
    with open(os.path.join(root, "utils", "__init__.py"), "w"):
        pass
    with open(os.path.join(root, "utils", "transforms.py"), "wb") as f:
        f.write(official_source(repo, "lib/utils/transforms.py"))
    path = os.path.join(root, "official_joints_dataset.py")
    with open(path, "wb") as f:
        f.write(official_source(repo, "lib/dataset/JointsDataset.py"))
    sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location("official_joints_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.JointsDataset


def coco_db(ann_file, img_dir, image_size, num_joints=17, pixel_std=200):
    """The training db the official ``COCODataset`` builds from ``ann_file`` (its conventions, restated): non-crowd
    person instances with area > 0 and any keypoint label, the box clipped to the image (``x2 = min(W - 1, x1 +
    max(0, w - 1))``), centre = box centre, the box widened to the input aspect ratio, scale = size / 200 * 1.25,
    visibility min(v, 1)."""
    import json  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    with open(ann_file) as f:
        data = json.load(f)
    images = {im["id"]: im for im in data["images"]}
    aspect = image_size[0] * 1.0 / image_size[1]
    db = []
    for obj in data["annotations"]:
        if obj.get("iscrowd", 0) or obj.get("category_id", 1) != 1:
            continue
        im = images[obj["image_id"]]
        x, y, w, h = obj["bbox"]
        x1, y1 = max(0, x), max(0, y)
        x2 = min(im["width"] - 1, x1 + max(0, w - 1))
        y2 = min(im["height"] - 1, y1 + max(0, h - 1))
        if not (obj["area"] > 0 and x2 >= x1 and y2 >= y1) or max(obj["keypoints"]) == 0:
            continue
        bw, bh = x2 - x1, y2 - y1
        center = np.array([x1 + bw * 0.5, y1 + bh * 0.5], dtype=np.float32)
        if bw > aspect * bh:
            bh = bw * 1.0 / aspect
        elif bw < aspect * bh:
            bw = bh * aspect
        scale = np.array([bw * 1.0 / pixel_std, bh * 1.0 / pixel_std], dtype=np.float32) * 1.25
        kp = np.asarray(obj["keypoints"], dtype=np.float64).reshape(num_joints, 3)
        joints = np.zeros((num_joints, 3), dtype=np.float64)
        joints[:, :2] = kp[:, :2]
        vis = np.zeros((num_joints, 3), dtype=np.float64)
        vis[:, 0] = vis[:, 1] = np.minimum(kp[:, 2], 1)
        db.append({"image": os.path.join(img_dir, im["file_name"]), "center": center, "scale": scale,
                   "joints_3d": joints, "joints_3d_vis": vis, "filename": "", "imgnum": 0})
    return db


def official_transform():
    """``transforms.Compose([ToTensor(), Normalize(ImageNet mean, std)])`` of the official ``train.py``: torchvision's
    when it imports, else the same torch operations as torchvision's ``to_tensor`` and ``normalize`` (HWC uint8 ->
    CHW contiguous, ``.to(float32).div(255)``, then ``clone().sub_(mean).div_(std)``). Returns (callable, name)."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    try:
        import torchvision.transforms as tvt  # pylint: disable=import-outside-toplevel
        return tvt.Compose([tvt.ToTensor(), tvt.Normalize(mean=mean, std=std)]), \
            "torchvision %s" % __import__("torchvision").__version__
    except Exception:  # pylint: disable=broad-except  (absent, or built for another torch)
        import torch  # pylint: disable=import-outside-toplevel

        def transform(pic):
            img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()
            img = img.to(dtype=torch.get_default_dtype()).div(255)
            img = img.clone()
            m = torch.as_tensor(mean, dtype=img.dtype).view(-1, 1, 1)
            s = torch.as_tensor(std, dtype=img.dtype).view(-1, 1, 1)
            if (s == 0).any():
                raise ValueError("std evaluated to zero")
            return img.sub_(m).div_(s)
        return transform, "torch ops equal to torchvision ToTensor + Normalize (torchvision not importable)"


def loader_main(repo, h, w, samples, threads, coco_dir):
    import random  # pylint: disable=import-outside-toplevel
    import cv2  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    joints_dataset = load_joints_dataset(repo)
    cfg = _Node(OFFICIAL_W48_384)
    cfg["MODEL"] = dict(cfg["MODEL"], IMAGE_SIZE=[w, h], HEATMAP_SIZE=[w // 4, h // 4])
    transform, transform_name = official_transform()

    class SampleCOCO(joints_dataset):  # what COCODataset.__init__ sets, with the db built by coco_db
        def __init__(self):
            super().__init__(cfg, coco_dir, "train2017", True, transform)
            self.num_joints = 17
            self.flip_pairs = COCO_FLIP_PAIRS
            self.parent_ids = None
            self.upper_body_ids = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
            self.lower_body_ids = (11, 12, 13, 14, 15, 16)
            self.aspect_ratio = w * 1.0 / h
            self.pixel_std = 200
            self.db = coco_db(os.path.join(coco_dir, "test_coco.json"), coco_dir, (w, h))

    dataset = SampleCOCO()
    np.random.seed(0)
    random.seed(0)
    dataset[0]
    tic = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    per_core = samples / (time.perf_counter() - tic)
    print("official JointsDataset %dx%d: %d people of %s, %d samples, transform: %s; torch %s (%d threads), "
          "cv2 %s (%d threads)" % (h, w, len(dataset), coco_dir, samples, transform_name, torch.__version__,
                                   torch.get_num_threads(), cv2.__version__, cv2.getNumThreads()))
    print("RESULT official loader %dx%d samples/s: %.3f" % (h, w, per_core))


def main(argv):
    if len(argv) > 1 and argv[1] == "loader":
        repo, _, h, w, samples, threads, coco_dir = argv
        return loader_main(repo, int(h), int(w), int(samples), int(threads), coco_dir)
    import torch  # pylint: disable=import-outside-toplevel
    repo, width, h, w, batch, threads, iters, mode = argv
    width, h, w, batch, threads, iters = map(int, (width, h, w, batch, threads, iters))
    torch.set_num_threads(threads)
    net = load_pose_module(repo).PoseHighResolutionNet(official_config(width))
    x = torch.randn(batch, 3, h, w)
    if mode == "train":
        net.train()
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def step():
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    else:
        net.eval()

        def step():
            with torch.no_grad():
                net(x)
    step()
    times = []
    for _ in range(iters):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    times.sort()
    median = times[len(times) // 2]
    print("torch %s, %d threads" % (torch.__version__, torch.get_num_threads()))
    print("RESULT official hrnet_w%d %dx%d batch %d %s samples/s: %.3f" % (width, h, w, batch, mode, batch / median))


if __name__ == "__main__":
    main(sys.argv[1:])
