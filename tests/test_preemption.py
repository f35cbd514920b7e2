"""Preemption and time limits (issue 19): SIGTERM / SIGUSR1 save a mid-epoch checkpoint after the
current step and end the run with exit 0; ``train.checkpoint_minutes`` saves one and goes on;
``--resume`` continues mid-epoch and ends bit for bit where an uninterrupted run ends, on one
worker and on 2 dist workers."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import mxnet as mx
import numpy as np
import pytest

from _procs import kill_tagged, wait_gone
from test_train import ENV, _config, _train_cmd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "scripts", "launch_dist.py")
TOY = os.path.join(ROOT, "tests", "_dist_toy_train.py")


def _arrays(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def _identical(a, b):
    a, b = _arrays(a), _arrays(b)
    return sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def _iterations(work):
    path = work / "iterations.csv"
    return path.read_text().splitlines()[1:] if path.exists() else []


def _loss_columns(path):
    import csv
    rows = list(csv.DictReader(open(path)))
    return [[r[k] for k in ("epoch", "loss", "heatmap", "offset") if k in r] for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("full")
    cfg, over = _config(tmp, data_dir, **{"train.checkpoint_minutes": 0})
    subprocess.run(_train_cmd(cfg, tmp / "run", *over), env=ENV, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cfg, over, tmp / "run"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_mid_epoch_and_resume_is_bit_identical(uninterrupted, tmp_path, sig):
    cfg, over, full = uninterrupted
    work = tmp_path / "cut"
    proc = subprocess.Popen(_train_cmd(cfg, work, *over), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while len(_iterations(work)) < 2:   # two steps of epoch 1 logged (log_interval 1)
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-3000:]
        time.sleep(0.02)
    proc.send_signal(sig)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out[-3000:]
    latest = json.loads((work / "latest.json").read_text())
    assert latest["epoch"] == 0 and latest["step"] >= 2 and latest["params"].startswith("midepoch_0001_")
    assert "received %s: mid-epoch checkpoint after step" % signal.Signals(sig).name in out
    assert "--resume to continue" in out and not (work / "epoch_0001.params").exists()
    res = subprocess.run(_train_cmd(cfg, work, "--resume", *over), env=ENV, timeout=300,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _identical(full / "epoch_0002.params", work / "epoch_0002.params")
    assert _loss_columns(full / "metrics.csv") == _loss_columns(work / "metrics.csv")
    assert [r.split(",")[1:5] for r in _iterations(full)] == [r.split(",")[1:5] for r in _iterations(work)]
    assert not [n for n in os.listdir(work) if n.startswith("midepoch_")]   # superseded


def test_timer_checkpoints_do_not_change_the_run(uninterrupted, tmp_path):
    """train.checkpoint_minutes tiny: a mid-epoch checkpoint after every step; the run goes on
    and ends bit for bit as without them; resuming from one taken mid-epoch is exact too."""
    cfg, over, full = uninterrupted
    work = tmp_path / "timer"
    res = subprocess.run(_train_cmd(cfg, work, *over, "train.checkpoint_minutes=0.00001"), env=ENV,
                         timeout=300, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("timer: mid-epoch checkpoint after step") >= 2
    assert _identical(full / "epoch_0002.params", work / "epoch_0002.params")
    assert not [n for n in os.listdir(work) if n.startswith("midepoch_")]


def test_two_dist_workers_sigterm_then_resume(tmp_path):
    """2 workers + 1 server: SIGTERM to the launcher (what srun passes on at a time limit) goes
    to the workers first; they agree to stop after the same step, rank 0 saves a mid-epoch
    checkpoint, and --resume ends bit for bit where an uninterrupted 2-worker run ends."""
    def launch(out, *extra):
        return [sys.executable, LAUNCHER, "-n", "2", "-s", "1", "--timeout", "150", "--",
                sys.executable, TOY, "--mode", "fit", "--kvstore", "dist_sync",
                "--batch-per-worker", "4", "--out", str(out), "--epochs", "3"] + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, PYTHONWARNINGS="ignore")
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(launch(full), env=env, check=True, timeout=200, capture_output=True)
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(launch(cut, "--step-sleep", "0.15"), env=dict(env, GLUONPOSE_TEST_TAG=tag),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 150
        while not (cut / "epoch_0001.json").exists() or len(_iterations(cut)) < 4:
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-3000:]
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0].decode()
        assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
        assert "passing SIGTERM to the workers" in out
        assert "failed" not in out, out[-3000:]   # both workers ended with exit 0
        latest = json.loads((cut / "latest.json").read_text())
        assert latest["epoch"] >= 1 and latest["step"] >= 1, latest
        assert wait_gone(tag, 10) == []
    finally:
        kill_tagged(tag)
    res = subprocess.run(launch(cut, "--resume"), env=env, timeout=200, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]
    assert _identical(full / "epoch_0003.params", cut / "epoch_0003.params")


def test_chaos_random_kills_then_resume_is_bit_identical(tmp_path, data_dir):
    """A 6-epoch run with validation every epoch, a mid-epoch checkpoint after nearly every
    step (timer) and retention keeping one checkpoint, killed at 10 seeded random moments
    (SIGKILL and SIGTERM alternately: start-up, steps, checkpoint saves, retention removals,
    validation) and resumed after each, ends bit for bit like the uninterrupted run (weights,
    losses and validation APs)."""
    import random
    coco = os.path.join(data_dir, "samples", "coco")
    val = "data.val={type: coco, ann_file: %s, img_prefix: %s}" % (
        os.path.join(coco, "test_coco.json"), coco)
    cfg, over = _config(tmp_path, data_dir, **{"train.epochs": 6, "train.val_interval": 1,
                                               "train.keep_checkpoints": 1,
                                               "train.checkpoint_minutes": 0.002})
    over.append(val)
    full, work = tmp_path / "full", tmp_path / "chaos"
    start = time.time()
    subprocess.run(_train_cmd(cfg, full, *over), env=ENV, check=True, timeout=300,
                   capture_output=True)
    duration = time.time() - start
    rng = random.Random(19)
    kills = []
    while len(kills) < 10:
        proc = subprocess.Popen(_train_cmd(cfg, work, "--resume", *over), env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # short runs (start-up is ~3 s): ten of them must not reach the end of the training
        delay = rng.uniform(0.5, min(5.0, duration / 3))
        try:
            proc.wait(timeout=delay)
            break   # finished before this kill
        except subprocess.TimeoutExpired:
            sig = signal.SIGKILL if len(kills) % 2 == 0 else signal.SIGTERM
            proc.send_signal(sig)
            kills.append((round(delay, 2), signal.Signals(sig).name, proc.wait(timeout=120)))
    assert len(kills) == 10, kills
    # SIGKILL: -9; SIGTERM: saved and exit 0, or -15 when it came during start-up (before the
    # first step: nothing to save, the process ends as without a handler)
    assert all(rc == -9 if name == "SIGKILL" else rc in (0, -15) for _, name, rc in kills), kills
    assert sum(rc == 0 for _, _, rc in kills) >= 2, kills
    res = subprocess.run(_train_cmd(cfg, work, "--resume", *over), env=ENV, timeout=300,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _identical(full / "epoch_0006.params", work / "epoch_0006.params"), kills
    import csv
    rows = [list(csv.DictReader(open(d / "metrics.csv"))) for d in (full, work)]
    assert [[r[k] for k in ("epoch", "loss", "heatmap", "offset", "AP")] for r in rows[0]] == \
        [[r[k] for k in ("epoch", "loss", "heatmap", "offset", "AP")] for r in rows[1]], kills
