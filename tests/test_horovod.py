"""Horovod as the second engine (gluonpose/dist/horovod.py), run for real with
``horovodrun --gloo`` on this machine: 2 ranks == 1 process on the same global batch, resumed ==
uninterrupted, a failing rank ends the job with its error named, nothing outlives a killed
horovodrun, and the ``gluon.Trainer(kvstore='horovod')`` trap is refused.

Horovod is part of the test install (``make test`` builds the ``horovod`` extra); these tests do
not skip when it is missing: they fail, naming the install command."""
import os
import subprocess
import sys
import time
import uuid

import mxnet as mx
import numpy as np
import pytest

from gluonpose.dist import kvstore as dist
from gluonpose.errors import ConfigError
from _procs import kill_tagged, tagged_pids, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = os.path.join(ROOT, "tests", "_dist_toy_train.py")
TRAIN = os.path.join(ROOT, "scripts", "train_mshrnet.py")
HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, PYTHONWARNINGS="ignore",
           PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
GLOBAL_BATCH = 8
EPOCHS = 3


def test_horovod_is_installed():
    """The suite's install builds Horovod for MXNet with Gloo (no skip when it is missing)."""
    import horovod.mxnet as hvd   # noqa: F401  (ImportError: run `make test`, see the Makefile)
    assert os.path.isfile(HOROVODRUN), HOROVODRUN
    from horovod.common.util import gloo_built
    assert gloo_built(), "horovod was built without Gloo"


def _horovodrun(args, tag, timeout=120, np_=2):
    start = time.monotonic()
    try:
        res = subprocess.run([HOROVODRUN, "--gloo", "-np", str(np_), "-H", "localhost:%d" % np_,
                              sys.executable] + list(args),
                             env=dict(ENV, GLUONPOSE_TEST_TAG=tag), cwd=ROOT, timeout=timeout,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - start
        assert wait_gone(tag, 10) == [], "processes left behind"
    finally:
        kill_tagged(tag)
    return res.returncode, res.stdout.decode("utf-8", "replace"), seconds


def _fit(out, kvstore, batch, *extra):
    return [TOY, "--mode", "fit", "--kvstore", kvstore, "--batch-per-worker", str(batch),
            "--out", str(out), "--epochs", str(EPOCHS)] + list(extra)


def _params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    subprocess.run([sys.executable] + _fit(out, "none", GLOBAL_BATCH), env=ENV, cwd=ROOT,
                   check=True, timeout=120, stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("hvd")
    rc, log, _ = _horovodrun(_fit(out, "horovod", GLOBAL_BATCH // 2), uuid.uuid4().hex)
    assert rc == 0, log[-3000:]
    return out


def test_two_ranks_equal_one_process(single, two_ranks):
    """2 horovod ranks (different initial weights, broadcast from rank 0; gradients summed, step
    by the global batch) end where 1 process on the global batch ends, to fp32 summation order:
    measured max |difference| 3e-8 on weights of magnitude 0.34 after 3 epochs (bound 1e-6).
    The logged losses are over both ranks' samples (relative 1e-6)."""
    final, ref = _params(two_ranks / "epoch_0003.params"), _params(single / "epoch_0003.params")
    assert sorted(final) == sorted(ref)
    assert max(float(np.abs(final[k] - v).max()) for k, v in ref.items()) < 1e-6
    init = _params(single / "epoch_0001.params")
    assert max(float(np.abs(init[k] - v).max()) for k, v in ref.items()) > 1e-3   # it trained
    import csv
    rows = [list(csv.DictReader(open(d / "metrics.csv"))) for d in (single, two_ranks)]
    assert len(rows[0]) == len(rows[1]) == EPOCHS
    for a, b in zip(*rows):
        for key in ("loss", "heatmap", "offset"):
            assert abs(float(a[key]) - float(b[key])) <= 1e-6 * abs(float(a[key]))


def test_resumed_equals_uninterrupted(tmp_path, two_ranks):
    """Rank 1 SIGKILLed once epoch 2 is saved: horovodrun ends the job; --resume (parameters
    and Adam states loaded, then broadcast from rank 0) ends bit for bit where the uninterrupted
    2-rank run ends."""
    cut = tmp_path / "cut"
    rc, log, _ = _horovodrun(_fit(cut, "horovod", GLOBAL_BATCH // 2, "--fail", "kill",
                                  "--fail-rank", "1", "--fail-at", "2:0"), uuid.uuid4().hex)
    assert rc != 0, log[-3000:]
    assert (cut / "epoch_0002.json").exists() and not (cut / "epoch_0003.params").exists()
    rc, log, _ = _horovodrun(_fit(cut, "horovod", GLOBAL_BATCH // 2, "--resume"),
                             uuid.uuid4().hex)
    assert rc == 0, log[-3000:]
    resumed, full = _params(cut / "epoch_0003.params"), _params(two_ranks / "epoch_0003.params")
    assert sorted(resumed) == sorted(full)
    assert all(np.array_equal(resumed[k], full[k]) for k in full)


@pytest.mark.parametrize("mode, code, line", [
    ("dataset", 2, "error: toy.json: record 1: bad keypoints on rank 1"),
    ("raise", 1, "RuntimeError: toy failure on rank 1 at epoch 0 step 1")])
def test_failing_rank_ends_the_job_with_its_error(tmp_path, mode, code, line):
    """Rank 1 fails mid-epoch while rank 0 waits in an all-reduce: the job ends within seconds,
    rank 1's error line is in the output (prefixed with its rank) and horovodrun reports the
    failed job."""
    rc, log, seconds = _horovodrun(_fit(tmp_path, "horovod", GLOBAL_BATCH // 2, "--fail", mode,
                                        "--fail-rank", "1", "--fail-at", "0:1"),
                                   uuid.uuid4().hex)
    assert rc != 0
    assert "[1]<stderr>:%s" % line in log, log[-3000:]
    # horovodrun names the first rank it saw exit: rank 1 (its code), or rank 0 (code 1, its
    # all-reduce ended by "Horovod has been shut down") when rank 0's exit was polled first
    assert ("Process name: 1\nExit code: %d" % code in log
            or "Process name: 0\nExit code: 1" in log and "Horovod has been shut down" in log), \
        log[-3000:]
    assert seconds < 60, seconds


_SLEEPER = ("import os, sys, time\n"
            "from gluonpose.dist.kvstore import create_kvstore\n"
            "kv, rank, n = create_kvstore('horovod')\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    time.sleep(300)\n"
            "    os._exit(0)\n"
            "path = os.path.join(sys.argv[1], 'w%d.pid' % rank)\n"
            "open(path + '.tmp', 'w').write('%d %d' % (os.getpid(), child))\n"
            "os.replace(path + '.tmp', path)\n"
            "time.sleep(300)\n")


def test_killed_horovodrun_leaves_no_process(tmp_path):
    """SIGKILL of horovodrun: its ranks end, and so do the processes they forked (loader
    workers; horovod alone leaves those behind, measured)."""
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([HOROVODRUN, "--gloo", "-np", "2", "-H", "localhost:2",
                             sys.executable, "-c", _SLEEPER, str(tmp_path)],
                            env=dict(ENV, GLUONPOSE_TEST_TAG=tag), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        paths = [tmp_path / "w0.pid", tmp_path / "w1.pid"]
        deadline = time.monotonic() + 90
        while not all(p.exists() for p in paths):
            assert proc.poll() is None and time.monotonic() < deadline, "ranks did not start"
            time.sleep(0.1)
        pids = [int(v) for p in paths for v in p.read_text().split()]
        assert set(pids) <= set(tagged_pids(tag))
        proc.kill()
        proc.wait(timeout=30)
        assert wait_gone(tag, 15) == []
    finally:
        kill_tagged(tag)


def test_trainer_kvstore_horovod_spelling_is_refused():
    """gluon.Trainer(kvstore='horovod') trains without any sync on MXNet 1.9.1 (one context per
    process): the trainer factory refuses it and names the right spelling."""
    net = mx.gluon.nn.Dense(2, in_units=3)
    net.initialize()
    with pytest.raises(ConfigError, match="no kvstore and trains without any gradient sync"):
        dist.make_trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, "horovod")
    # the trap itself, as measured: MXNet creates no kvstore for it
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1},
                               kvstore="horovod")
    trainer._init_kvstore()
    assert trainer._kvstore is None


def test_train_command_two_ranks_equal_one_process_with_two_devices(tmp_path, data_dir):
    """The training command with ``--kvstore horovod`` on 2 ranks == 1 process holding 2 CPU
    devices, same global batch (2-stage width-8 net, 1 epoch on the COCO sample)."""
    from test_train import _config, _train_cmd, _trainable, _max_diff
    cfg, over = _config(tmp_path, data_dir, **{"train.epochs": 1})
    single, hvd = tmp_path / "single", tmp_path / "hvd"
    subprocess.run(_train_cmd(cfg, single, "--gpus", "cpu:2", *over), env=ENV, check=True,
                   timeout=300, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc, log, _ = _horovodrun(_train_cmd(cfg, hvd, "--kvstore", "horovod", *over)[1:],
                             uuid.uuid4().hex, timeout=300)
    assert rc == 0, log[-3000:]
    assert "engine horovod: gradients summed over 2 ranks" in log, log[-3000:]
    assert _max_diff(_trainable(str(single / "epoch_0001.params")),
                     _trainable(str(hvd / "epoch_0001.params"))) < 1e-5
