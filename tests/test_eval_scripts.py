"""End to end: scripts/test_mshrnet.py and scripts/ensemble_eval.py on the real COCO / CrowdPose
samples with two tiny random-weight models; results json checked with pycocotools directly."""
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _helpers import load_script, run_main, write_tiny_model

MEMBERS = {
    "a": ("mshrnet_w8_2stage", (96, 128)),
    "b": ("hrnet_w8", (128, 160)),
}


@pytest.fixture(scope="module")
def members(tmp_path_factory, coco):
    """Two tiny models: config yaml + random-init .params each."""
    folder = tmp_path_factory.mktemp("members")
    val = "data:\n  val: {type: coco, ann_file: %s, img_prefix: %s}\n" % (coco["gt"], coco["dir"])
    return {key: write_tiny_model(folder, key, name, size, val)[:2]
            for key, (name, size) in MEMBERS.items()}


def _pycocotools_ap(gt, results_json, num_joints=17, sigmas=None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(COCO(gt), COCO(gt).loadRes(results_json), "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = sigmas
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def _pycocotools_ap_of_layout(results_json, gt):
    """pycocotools AP of a results json on the joints gluonpose-test scored (the rewritten ground
    truth next to the results, with the COCO sigmas of those joints)."""
    from gluonpose.evaluation.gt_layout import prepare_eval_target
    target = prepare_eval_target(gt, "crowdpose", os.path.dirname(results_json))
    return _pycocotools_ap(target.gt_json, results_json, sigmas=target.sigmas)


def _check_results(path, gt, num_joints=17):
    with open(path) as f:
        results = json.load(f)
    with open(gt) as f:
        image_ids = {img["id"] for img in json.load(f)["images"]}
    assert isinstance(results, list) and results
    for r in results:
        assert r["category_id"] == 1 and r["image_id"] in image_ids
        assert len(r["keypoints"]) == 3 * num_joints and np.isfinite(r["keypoints"]).all()
        assert np.isfinite(r["score"])
    return results


def test_help_of_both_scripts(repo_root):
    for name in ("test_mshrnet.py", "ensemble_eval.py"):
        proc = subprocess.run([sys.executable, os.path.join(repo_root, "scripts", name), "--help"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "--det-json" in proc.stdout and "--use-gt-boxes" in proc.stdout
    assert "--rotations" in proc.stdout and "--scales" in proc.stdout


def test_ensemble_eval_two_models_with_tta(repo_root, members, coco, tmp_path):
    main = load_script("ensemble_eval").main
    out = str(tmp_path / "ens.json")
    code, text = run_main(main, [
        "--models", "%s:%s" % members["a"], "%s:%s" % members["b"], "--rotations", "0", "20",
        "--scales", "1.0", "--flip", "--det-json", coco["det"], "--image-thr", "0.99",
        "--out", out, "--no-progress"])
    assert code == 0, text
    results = _check_results(out, coco["gt"])
    assert len(results) <= 12
    assert "12 of 118 boxes kept (score >= 0.99)" in text
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in text           # pycocotools' own table
    rows = {m.group(1).strip(): float(m.group(2))
            for m in re.finditer(r"^\| ([^|]+?) +\| +([0-9.]+) \|", text, flags=re.M)}
    assert set(rows) == {"member a", "member b", "view rot 0 x1", "view rot +20 x1", "ensemble"}
    assert rows["ensemble"] == pytest.approx(_pycocotools_ap(coco["gt"], out), abs=1e-3)


def test_ensemble_eval_from_config_file(repo_root, members, coco, tmp_path):
    conf = tmp_path / "ens.yaml"
    conf.write_text("members:\n  - {config: %s, weights: %s, name: only}\n"
                    "tta: {rotations: [0], scales: [0.9, 1.1], flip: false, average: mean}\n"
                    "boxes: {use_gt_boxes: true}\n" % members["a"])
    out = str(tmp_path / "cfg.json")
    code, text = run_main(load_script("ensemble_eval").main,
                      ["--config", str(conf), "--out", out, "--no-progress"])
    assert code == 0, text
    _check_results(out, coco["gt"])
    assert "ground-truth boxes of %s: 12 people" % coco["gt"] in text
    assert "flip test off, mean averaging" in text and "view rot 0 x1.1" in text


def test_test_mshrnet_det_and_gt_boxes(repo_root, members, coco, tmp_path):
    main = load_script("test_mshrnet").main
    cfg, weights = members["b"]
    out = str(tmp_path / "det.json")
    code, text = run_main(main, ["--config", cfg, "--weights", weights, "--det-json", coco["det"],
                             "--out", out, "--no-progress", "test.image_thr=0.99"])
    assert code == 0, text
    assert "12 of 118 boxes kept (score >= 0.99)" in text and "flip test: on" in text
    _check_results(out, coco["gt"])
    ap = float(re.search(r"^\| hrnet_w8 \| ([0-9.]+) \|", text, flags=re.M).group(1))
    assert ap == pytest.approx(_pycocotools_ap(coco["gt"], out), abs=1e-3)
    out = str(tmp_path / "gt.json")
    code, text = run_main(main, ["--config", cfg, "--weights", weights, "--use-gt-boxes", "--no-flip",
                             "--out", out, "--no-progress"])
    assert code == 0, text
    assert "ground-truth boxes of" in text and "flip test: off" in text
    assert len(_check_results(out, coco["gt"])) <= 12


def test_test_mshrnet_crowdpose(repo_root, members, data_dir, tmp_path):
    folder = os.path.join(data_dir, "samples", "crowdpose")
    gt = os.path.join(folder, "test_crowdpose.json")
    cfg, weights = members["a"]
    out = str(tmp_path / "cp.json")
    code, text = run_main(load_script("test_mshrnet").main, [
        "--config", cfg, "--weights", weights, "--out", out, "--no-progress", "--det-json",
        os.path.join(folder, "test_crowdpose_det_AP_40.json"), "--gt-json", gt, "--img-prefix",
        folder, "--layout", "crowdpose", "--analyze", str(tmp_path / "analysis")])
    assert code == 0, text
    assert "6 of 6 boxes kept" in text and "12 joints it shares with COCO-17" in text
    _check_results(out, gt, num_joints=12)
    # --analyze: the error analysis of those 12 joints (their COCO sigmas), every labelled joint counted
    with open(tmp_path / "analysis" / "summary.json") as f:
        summary = json.load(f)
    assert len(summary["keypoints_per_joint"]) == 12
    assert summary["ap"] == pytest.approx(_pycocotools_ap_of_layout(out, gt), abs=1e-6)
    assert summary["unreadable_images"] == 0 and "report.html" in os.listdir(tmp_path / "analysis")


def test_scripts_report_bad_input(repo_root, members, coco, tmp_path, capsys):
    main = load_script("test_mshrnet").main
    cfg, _ = members["a"]
    code = main(["--config", cfg, "--weights", str(tmp_path / "none.params"), "--use-gt-boxes",
                 "--out", str(tmp_path / "x.json")])
    assert code == 2 and "weights file not found" in capsys.readouterr().err
    cfg_b, weights_b = members["b"]
    code = main(["--config", cfg, "--weights", weights_b, "--use-gt-boxes",
                 "--out", str(tmp_path / "x.json")])
    assert code == 2 and "do not fit model mshrnet_w8_2stage" in capsys.readouterr().err
    ens = load_script("ensemble_eval").main
    code = ens(["--models", "%s:%s" % members["a"], "--out", str(tmp_path / "y.json")])
    assert code == 2 and "no boxes" in capsys.readouterr().err
