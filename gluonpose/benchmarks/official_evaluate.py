"""Run the official HRNet COCO evaluation path on given poses; run by ``scripts/benchmark.py --postprocess
--side-by-side``.

This file is executed with the *official* environment's Python: it imports only the standard library, numpy and
what the official ``lib/dataset/coco.py`` imports (pycocotools, json_tricks; numpy < 1.24, as that file uses
``np.float``). torch is not needed. The official files are read at run time from the checkout or git mirror the
user names (:func:`official_timer.official_source`); nothing of the official code is stored in gluonpose.

What is loaded, and what stands in for the rest:

* ``lib/nms/nms.py`` as module ``nms.nms`` (with ``lib/nms/__init__.py``). It imports the compiled ``.cpu_nms``
  and ``.gpu_nms`` (Cython / CUDA extensions built by the official ``lib/Makefile``) at the top; the box NMS they
  implement is never called on the keypoint evaluation path, so they are empty stub modules in ``sys.modules``
  whose functions raise if called.
* ``lib/dataset/coco.py`` as module ``dataset.coco``. Its base class ``dataset.JointsDataset`` (torch, cv2 and
  ``utils.transforms``, for reading and augmenting images) is a stub whose ``__init__`` keeps what the real one
  stores from its arguments (``is_train``, ``root``, ``image_set``, ``transform``); ``evaluate`` reads nothing
  else of it. ``dataset/__init__.py`` (it imports every dataset) is not run.
* ``COCODataset`` is built by its own ``__init__`` (``COCO(gt)``, classes, thresholds from a cfg holding the TEST
  values of the official COCO yamls: OKS threshold 0.9, ``IN_VIS_THRE`` 0.2, greedy NMS), in a subclass that only
  points ``_get_ann_file_keypoint`` at the given ground truth and makes ``_get_db`` return ``[]`` (the detection db
  feeds inference, which is not timed here: the poses are given).

Timed: the dataset construction (``COCO(gt)``) and the official ``evaluate(cfg, preds, output_dir, all_boxes,
img_path)`` as it stands: its rescoring loop and per-image ``oks_nms``, its ``_write_coco_keypoint_results``
(json_tricks, with its read-back check) and its ``_do_python_keypoint_eval`` (``COCOeval`` evaluate, accumulate,
summarize). The two methods are wrapped on the instance to time them; evaluate's own code is unchanged. Its inputs
are what the official ``validate`` hands it: ``preds`` (N, 17, 3) float32, ``all_boxes`` (N, 6) float64
``[center, scale / 200, area, box score]``, ``img_path`` ending in ``<12-digit image id>.jpg``.

Usage:
  python official_evaluate.py REPO check
      load the official modules only; exit 0, or print one ``error: ...`` line and exit 2.
  python official_evaluate.py REPO POSES.npz GT_JSON OUT_DIR TIMINGS.jsonl
      evaluate; append one json line (stage times, stats, results json path) to TIMINGS.jsonl and print
      ``RESULT official postprocess <N> poses samples/s: <N / total seconds>``.
"""
import json
import os
import sys
import tempfile
import time
import types

try:
    from .official_timer import _Node, official_source
except ImportError:  # run as a script: official_timer.py is beside this file (sys.path[0])
    from official_timer import _Node, official_source  # pylint: disable=import-error

#: cfg keys ``COCODataset.__init__`` and ``evaluate`` read (TEST: the official COCO yamls' values for detected
#: boxes; ``USE_GT_BBOX`` only chooses the db, which is not built here).
OFFICIAL_TEST_CFG = {"TEST": {"NMS_THRE": 1.0, "IMAGE_THRE": 0.0, "SOFT_NMS": False, "OKS_THRE": 0.9,
                              "IN_VIS_THRE": 0.2, "COCO_BBOX_FILE": "", "USE_GT_BBOX": False},
                     "MODEL": {"IMAGE_SIZE": [288, 384]}, "DATASET": {"SELECT_DATA": False}, "RANK": 0}


class OfficialLoadError(Exception):
    """The official code cannot be loaded in this Python (a missing file or module); the message says which."""


def _stub_module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _not_built(name):
    def call(*_args, **_kwargs):
        raise RuntimeError("%s is a stub: the compiled official extension is not loaded here" % name)
    return call


class _JointsDatasetStub:
    """Stands in for the official ``JointsDataset`` (torch): keeps what its ``__init__`` stores from its arguments."""

    def __init__(self, cfg, root, image_set, is_train, transform=None):
        del cfg
        self.is_train = is_train
        self.root = root
        self.image_set = image_set
        self.transform = transform


def load_official(repo):
    """Import the official ``dataset.coco`` (with ``nms.nms``) from ``repo``; returns the ``dataset.coco`` module.

    Raises :class:`OfficialLoadError` naming the missing file or module.
    """
    root = tempfile.mkdtemp(prefix="official_eval_")
    files = {"lib/nms/__init__.py": "nms/__init__.py", "lib/nms/nms.py": "nms/nms.py",
             "lib/dataset/coco.py": "dataset/coco.py"}
    for rel, dst in files.items():
        try:
            text = official_source(repo, rel)
        except Exception as err:  # pylint: disable=broad-except  (not a checkout, not a git mirror, no such file)
            raise OfficialLoadError("%s: no %s in this checkout or git mirror (%s)" % (repo, rel, err)) from None
        path = os.path.join(root, *dst.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(text)
    sys.path.insert(0, root)
    _stub_module("nms.cpu_nms", cpu_nms=_not_built("cpu_nms"))
    _stub_module("nms.gpu_nms", gpu_nms=_not_built("gpu_nms"))
    _stub_module("dataset", __path__=[os.path.join(root, "dataset")])
    _stub_module("dataset.JointsDataset", JointsDataset=_JointsDatasetStub)
    try:
        import numpy as np  # pylint: disable=import-outside-toplevel
        if not hasattr(np, "float"):
            raise OfficialLoadError("the official lib/dataset/coco.py uses np.float, which numpy %s no longer has: "
                                    "use a Python with numpy<1.24" % np.__version__)
        import importlib  # pylint: disable=import-outside-toplevel
        return importlib.import_module("dataset.coco")
    except ImportError as err:
        raise OfficialLoadError("this Python (%s) cannot import %s, which the official lib/dataset/coco.py or "
                                "lib/nms/nms.py needs (pip install %s)"
                                % (sys.executable, err.name, (err.name or "?").replace("_", "-"))) from None


def official_inputs(poses_npz):
    """(preds, all_boxes, img_path) of the official ``validate`` from the poses file (see
    ``gluonpose.benchmarks.postprocess.save_poses``)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    with np.load(poses_npz) as data:
        preds = data["keypoints"].astype(np.float32)
        num = preds.shape[0]
        all_boxes = np.zeros((num, 6))
        all_boxes[:, 0:2] = data["centers"]
        all_boxes[:, 2:4] = data["scales"]
        all_boxes[:, 4] = data["areas"]
        all_boxes[:, 5] = data["box_scores"]
        img_path = ["images/val2017/%012d.jpg" % int(i) for i in data["image_ids"]]
    return preds, all_boxes, img_path


def _timed(times, key, method):
    def call(*args, **kwargs):
        tic = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            times[key] = times.get(key, 0.0) + time.perf_counter() - tic
    return call


def evaluate_main(repo, poses_npz, gt_json, out_dir, timings):
    """Build the official dataset, run its ``evaluate``, append the timings record, print the RESULT line."""
    import logging  # pylint: disable=import-outside-toplevel
    import warnings  # pylint: disable=import-outside-toplevel
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore", DeprecationWarning)        # np.float, np.int of the official code
    coco = load_official(repo)
    preds, all_boxes, img_path = official_inputs(poses_npz)
    cfg = _Node(OFFICIAL_TEST_CFG)

    class EvalDataset(coco.COCODataset):  # pylint: disable=too-few-public-methods
        """The official COCODataset on ``gt_json``, without the detection db (inference input, not needed)."""

        def _get_ann_file_keypoint(self):
            return gt_json

        def _get_db(self):
            return []

    times = {}
    stdout = sys.stdout
    tic = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        sys.stdout = quiet                                     # pycocotools' prints
        try:
            dataset = EvalDataset(cfg, out_dir, "val2017", False)
            times["gt"] = time.perf_counter() - tic
            dataset._write_coco_keypoint_results = _timed(      # pylint: disable=protected-access
                times, "json", dataset._write_coco_keypoint_results)  # pylint: disable=protected-access
            dataset._do_python_keypoint_eval = _timed(          # pylint: disable=protected-access
                times, "cocoeval", dataset._do_python_keypoint_eval)  # pylint: disable=protected-access
            tic_eval = time.perf_counter()
            name_value, _ = dataset.evaluate(cfg, preds, out_dir, all_boxes, img_path)
            evaluate = time.perf_counter() - tic_eval
        finally:
            sys.stdout = stdout
    total = time.perf_counter() - tic
    stages = {"rescoring + OKS-NMS": evaluate - times["json"] - times["cocoeval"], "results json": times["json"],
              "pycocotools": times["gt"] + times["cocoeval"]}
    record = {"side": "official", "stages": stages, "total": total, "poses": int(preds.shape[0]),
              "stats": [float(v) for v in name_value.values()],
              "results_json": os.path.join(out_dir, "results", "keypoints_val2017_results_0.json"),
              "detail": {"COCO(gt) in __init__": times["gt"], "_do_python_keypoint_eval": times["cocoeval"]}}
    with open(timings, "a") as f:
        f.write(json.dumps(record) + "\n")
    for name, seconds in stages.items():
        print("official %-22s %8.3f s" % (name, seconds))
    print("official AP %.4f" % record["stats"][0])
    print("RESULT official postprocess %d poses samples/s: %.3f" % (preds.shape[0], preds.shape[0] / total))


def main(argv):
    if len(argv) == 2 and argv[1] == "check":
        try:
            load_official(argv[0])
        except OfficialLoadError as err:
            print("error: %s" % err)
            return 2
        return 0
    if len(argv) != 5:
        print("usage: official_evaluate.py REPO check | REPO POSES.npz GT_JSON OUT_DIR TIMINGS.jsonl")
        return 2
    evaluate_main(*argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
