"""Training: resumption equals an uninterrupted run, 2 dist_sync workers equal 1 worker, loss decreases.

All runs use a width-8 2-stage net at 64x64 on the real COCO sample people (12 labelled), CPU, fixed seed.
"""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import cv2
import mxnet as mx
import numpy as np

import gluonpose
from _helpers import load_script, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train_mshrnet.py")
LAUNCHER = os.path.join(ROOT, "scripts", "launch_dist.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1", MXNET_ENGINE_TYPE="NaiveEngine", PYTHONWARNINGS="ignore")


def _config(tmp_path, data_dir, **overrides):
    coco = os.path.join(data_dir, "samples", "coco")
    text = """
model: {name: mshrnet_w8_2stage, head: heatmap_offset}
codec: {type: heatmap_offset, input_size: [64, 64], heatmap_size: [16, 16]}
data:
  train: [{type: coco, ann_file: %s/test_coco.json, img_prefix: %s}]
augment: {sampling: uniform, rot_factor: 15, scale_factor: 0.2, flip_prob: 0.5, half_body_prob: 0.3}
loader: {batch_size_per_device: 2, num_workers: 0}
train: {lr: 1.0e-3, lr_steps: [1], epochs: 2, warmup_epochs: 0.5, log_interval: 1, seed: 3}
""" % (coco, coco)
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path), ["%s=%s" % kv for kv in overrides.items()]


def _train_cmd(cfg, work_dir, *extra):
    """The train script's command line; ``cfg=None`` runs it on its embedded default config."""
    cmd = [sys.executable, TRAIN, "--no-progress", "--work-dir", str(work_dir)]
    return cmd + (["--config", cfg] if cfg else []) + list(extra)


def _trainable(path):
    """Trainable arrays of a saved .params (BatchNorm running statistics are per device)."""
    arrays = mx.nd.load(path)
    return {k: v.asnumpy() for k, v in arrays.items() if not k.endswith(("running_mean", "running_var"))}


def _max_diff(a, b):
    assert set(a) == set(b)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_resume_after_kill_equals_uninterrupted(tmp_path, data_dir):
    cfg, over = _config(tmp_path, data_dir)
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_train_cmd(cfg, full, *over), env=ENV, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = subprocess.Popen(_train_cmd(cfg, cut, *over), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (cut / "epoch_0001.json").exists():  # written last, atomically
        assert proc.poll() is None and time.time() < deadline, "first epoch never finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "epoch_0002.params").exists(), "killed too late to test resumption"
    before = (cut / "epoch_0001.params").read_bytes()
    subprocess.run(_train_cmd(cfg, cut, "--resume", *over), env=ENV, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (cut / "epoch_0001.params").read_bytes() == before, "a saved checkpoint was rewritten"
    diff = _max_diff(_trainable(str(full / "epoch_0002.params")),
                     _trainable(str(cut / "epoch_0002.params")))
    assert diff < 1e-6, diff
    # --resume PATH (mmpose's form): another work dir's epoch-1 checkpoint, continued into a new work dir
    named = tmp_path / "named"
    subprocess.run(_train_cmd(cfg, named, "--resume", str(full / "epoch_0001.params"), *over), env=ENV,
                   check=True, timeout=300, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert not (named / "epoch_0001.params").exists() and (named / "epoch_0002.params").is_file()
    diff = _max_diff(_trainable(str(full / "epoch_0002.params")),
                     _trainable(str(named / "epoch_0002.params")))
    assert diff < 1e-6, diff
    # the run records what a user needs
    for name in ("log.txt", "metrics.csv", "iterations.csv", "curves.png", "config.yaml", "latest.json"):
        assert (full / name).is_file(), name
    assert not glob.glob(str(full / ".tmp-*")), "temporary files left behind"
    _assert_same_records(full, cut)
    # the threads the user chose are kept, and the log says so
    assert ("threads: OMP_NUM_THREADS=1, MXNET_ENGINE_TYPE=NaiveEngine set by the user"
            in (full / "log.txt").read_text())


def _csv_rows(path):
    from gluonpose.utils.curves import MetricsCSV
    return MetricsCSV(str(path), []).read()


def _assert_same_records(full, resumed):
    """The resumed run's CSVs hold each epoch and iteration once, as the uninterrupted run's."""
    for name, key in (("metrics.csv", ("epoch",)), ("iterations.csv", ("epoch", "iter"))):
        a, b = _csv_rows(full / name), _csv_rows(resumed / name)
        assert len(a) >= 2, name
        assert [tuple(r[k] for k in key) for r in b] == [tuple(r[k] for k in key) for r in a], name
        np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], rtol=1e-5)
    progress = [r["progress"] for r in _csv_rows(resumed / "iterations.csv")]
    assert progress == sorted(set(progress)), "curves.png would draw a loop"


def test_resume_drops_later_csv_rows_and_falls_back_from_a_corrupt_checkpoint(tmp_path, data_dir):
    """A finished 2-epoch run is turned into a killed one: epoch 2's .params truncated (latest.json
    still names it), its CSV rows present. --resume says so, falls back to epoch 1, drops the
    epoch-2 rows, and ends with the uninterrupted run's weights and records."""
    cfg, over = _config(tmp_path, data_dir)
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_train_cmd(cfg, full, *over), env=ENV, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.copytree(full, cut)
    params = (cut / "epoch_0002.params").read_bytes()
    (cut / "epoch_0002.params").write_bytes(params[:len(params) // 2])
    (cut / ".tmp-999999999-dead-epoch_0002.states").write_bytes(b"half a write")
    res = subprocess.run(_train_cmd(cfg, cut, "--resume", *over), env=ENV, timeout=300,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = res.stdout.decode()
    assert res.returncode == 0, out[-3000:]
    assert "epoch_0002.params" in out and "resuming from epoch 1" in out, out[-3000:]
    assert "dropped" in out and "csv row" in out
    diff = _max_diff(_trainable(str(full / "epoch_0002.params")),
                     _trainable(str(cut / "epoch_0002.params")))
    assert diff < 1e-6, diff
    _assert_same_records(full, cut)
    assert not glob.glob(str(cut / ".tmp-*")), "the next save removes a killed write's temp file"


def test_two_workers_equal_one_worker_on_the_combined_batch(tmp_path, data_dir):
    """2 workers + 1 server (dist_sync over loopback) == 1 worker holding 2 devices, same global batch."""
    cfg, over = _config(tmp_path, data_dir, **{"train.epochs": 1})
    single, dist = tmp_path / "single", tmp_path / "dist"
    subprocess.run(_train_cmd(cfg, single, "--gpus", "cpu:2", *over), env=ENV, check=True,
                   timeout=300, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = subprocess.run([sys.executable, LAUNCHER, "-n", "2", "-s", "1", "--launcher", "local",
                          "--timeout", "280", "--"] + _train_cmd(cfg, dist, "--kvstore", "dist_sync", *over),
                         env=ENV, timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert res.returncode == 0, res.stdout.decode()[-3000:]
    a = _trainable(str(single / "epoch_0001.params"))
    b = _trainable(str(dist / "epoch_0001.params"))
    assert _max_diff(a, b) < 1e-5
    # the logged losses are over both workers' samples, as the single run's over its 2 devices
    from gluonpose.utils.curves import MetricsCSV
    for name in ("metrics.csv", "iterations.csv"):
        rows_1 = MetricsCSV(str(single / name), []).read()
        rows_2 = MetricsCSV(str(dist / name), []).read()
        assert len(rows_1) == len(rows_2) > 0
        for r1, r2 in zip(rows_1, rows_2):
            for key in ("loss", "heatmap", "offset"):
                assert abs(r1[key] - r2[key]) <= 1e-5 * abs(r1[key]) + 1e-9, (name, key, r1, r2)
    # and training did move the weights away from the (seeded) initial ones
    mx.random.seed(3)
    init = gluonpose.get_model("mshrnet_w8_2stage", head="heatmap_offset")
    init_arrays = {k: v.data().asnumpy() for k, v in init._collect_params_with_prefix().items()
                   if k in a}
    moved = max(float(np.abs(init_arrays[k] - a[k]).max()) for k in init_arrays)
    assert moved > 1e-4


def test_non_finite_loss_stops_without_overwriting(tmp_path, data_dir):
    cfg, over = _config(tmp_path, data_dir, **{"train.epochs": 2, "train.lr": 1.0e30})
    work = tmp_path / "nan"
    res = subprocess.run(_train_cmd(cfg, work, *over), env=ENV, timeout=300,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = res.stdout.decode()
    assert res.returncode == 3, out[-2000:]
    assert "non-finite loss" in out and ("heatmap=" in out or "offset=" in out), out[-2000:]
    assert not (work / "epoch_0001.params").exists() or (work / "epoch_0001.json").exists()


def test_embedded_synthetic_demo_path_shortened(tmp_path):
    """`make demo` (train_mshrnet.py without --config), shortened to 3 tiny epochs: the loss goes
    down, validation AP is recorded and plotted, the predictions of validation images are drawn,
    and the closing summary names every output and the next commands. Its output goes to a pipe:
    progress comes as short log lines, never a carriage-return bar."""
    work = tmp_path / "syn"
    over = ["data.train=[{type: synthetic, out_dir: %s, num_images: 24, seed: 0}]" % (tmp_path / "data"),
            "data.val={type: synthetic, out_dir: %s, num_images: 3, seed: 1}" % (tmp_path / "val"),
            "codec.input_size=[64,64]", "codec.heatmap_size=[16,16]", "loader.batch_size_per_device=8",
            "loader.num_workers=0", "train.epochs=3", "train.val_interval=3", "train.log_interval=1"]
    res = subprocess.run([sys.executable, TRAIN, "--work-dir", str(work), "--preview", "2"] + over,
                         env=ENV, timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = res.stdout.decode()
    assert res.returncode == 0, out[-3000:]
    from gluonpose.utils.curves import MetricsCSV
    rows = MetricsCSV(str(work / "iterations.csv"), []).read()
    first, last = rows[0]["loss"], rows[-1]["loss"]
    assert len(rows) >= 12 and last < 0.8 * first, (first, last)
    assert (work / "epoch_0003.params").is_file()

    # readable when redirected: no bar redraws, one progress line per few steps, an end-of-epoch line
    log = out[:out.index("training finished")]
    assert "\r" not in out and max(len(line) for line in log.splitlines()) < 300, \
        max(log.splitlines(), key=len)
    assert re.search(r"epoch 2/3 \[\d+/\d+\] loss \S+ hm \S+ off \S+ lr \S+ sps", out), out[-3000:]
    assert len(re.findall(r"epoch \d/3: loss", out)) == 3
    # the two kinds of workers are named
    assert re.search(r"global batch 8 = 1 distributed worker x 1 device x 8 per device; images are "
                     r"read in the training process \(loader.num_workers: 0\)", out), out[-3000:]
    # validation AP at epoch 3 in metrics.csv, and in curves.png's second panel
    epochs = MetricsCSV(str(work / "metrics.csv"), []).read()
    assert [r["AP"] is not None for r in epochs] == [False, False, True]
    from gluonpose.utils.curves import curves_figure
    fig = curves_figure(rows, val_rows=epochs)
    assert any(ax.get_ylabel() == "validation AP" for ax in fig.axes)
    # predictions of 2 validation images side by side (each tile at least the 320 px of its image)
    preview = cv2.imread(str(work / "predictions.png"))
    assert preview is not None and preview.shape[1] >= 2 * 320
    boxes = json.load(open(str(work / "val_boxes.json")))
    (val_json,) = glob.glob(str(tmp_path / "val" / "**" / "person_keypoints_synthetic.json"),
                            recursive=True)
    val_gt = json.load(open(val_json))
    assert len(boxes) == len(val_gt["annotations"])
    # the summary: every output by path, then the next commands, which use files that exist
    summary = out[out.index("training finished"):]
    for name in ("epoch_0003.params", "curves.png", "metrics.csv", "predictions.png",
                 "config.yaml", "log.txt"):
        assert str(work / name) in summary, name
    assert re.search(r"validation AP \d\.\d{3} after epoch 3", summary)
    assert "scripts/test_mshrnet.py --config %s" % (work / "config.yaml") in summary
    assert "scripts/demo.py" in summary and str(work / "val_boxes.json") in summary
    code, text = run_main(load_script("demo").main, shlex.split(
        summary.split("scripts/demo.py", 1)[1].splitlines()[0]))
    assert code == 0 and "3 images" in text, text
    # the other next commands: evaluation with the error analysis, the sample browser, runs compared
    for script, made in (("test_mshrnet", work / "analysis" / "report.html"),
                         ("browse_samples", work / "samples.png"), ("plot_curves", work / "compare.png")):
        argv = shlex.split(summary.split("scripts/%s.py" % script, 1)[1].splitlines()[0])
        argv = [str(work) if a == "OTHER_WORK_DIR" else a for a in argv]
        code, text = run_main(load_script(script).main, argv)
        assert code == 0 and made.is_file(), text


def test_failing_validation_keeps_the_epoch(tmp_path, data_dir):
    """An unreadable (truncated) validation image: the epoch's checkpoint is written first; by
    default the error is logged with its cause, the AP cell stays empty and the run ends normally;
    with train.val_errors=stop the run stops, the checkpoint still there. The same truncated image
    in the training set is skipped and counted (its one labelled person, once per epoch)."""
    coco = os.path.join(data_dir, "samples", "coco")
    val_dir = tmp_path / "val"
    shutil.copytree(coco, val_dir)
    data = (val_dir / "000000000785.jpg").read_bytes()
    (val_dir / "000000000785.jpg").write_bytes(data[:len(data) // 2])
    val = "data.val={type: coco, ann_file: %s, img_prefix: %s}" % (val_dir / "test_coco.json", val_dir)
    cfg, over = _config(tmp_path, data_dir, **{"train.epochs": 1, "train.val_interval": 1})
    over.append("data.train=[{type: coco, ann_file: %s, img_prefix: %s}]"
                % (val_dir / "test_coco.json", val_dir))
    for mode in ("continue", "stop"):
        work = tmp_path / mode
        res = subprocess.run(_train_cmd(cfg, work, *over, val, "train.val_errors=" + mode), env=ENV,
                             timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = res.stdout.decode()
        assert (work / "epoch_0001.params").is_file() and (work / "epoch_0001.json").is_file(), out
        assert "000000000785.jpg" in out and "truncated" in out, out[-3000:]
        if mode == "continue":
            assert res.returncode == 0, out[-3000:]
            assert "validation after epoch 1 failed" in out
            rows = _csv_rows(work / "metrics.csv")
            assert [r["epoch"] for r in rows] == [1.0] and rows[0]["AP"] is None
            assert rows[0]["skipped"] == 1.0 and "1 bad training sample(s) skipped" in out
        else:
            assert res.returncode != 0, out[-3000:]
