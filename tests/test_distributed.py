"""Tests of gluonpose/dist/kvstore.py and context.py, including a real 2-worker
dist_sync run over loopback (through scripts/launch_dist.py) checked against 1 worker."""
import csv
import json
import os
import pickle
import subprocess
import sys
import time
import uuid

import mxnet as mx
import numpy as np
import pytest

from gluonpose.data.sampler import ShardSampler
from gluonpose.dist import kvstore as dist
from gluonpose.engine.context import get_contexts, parse_device_ids
from _procs import kill_tagged, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "scripts", "launch_dist.py")
TOY = os.path.join(ROOT, "tests", "_dist_toy_train.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1")
for _name in [k for k in ENV if k.startswith("DMLC_")]:
    del ENV[_name]
GLOBAL_BATCH = 8


# ---------------------------------------------------------------- context parsing

@pytest.mark.parametrize("spec, ids", [
    ("0-7", list(range(8))), ("0,1,2,3", [0, 1, 2, 3]), ("0-3,6", [0, 1, 2, 3, 6]),
    (" 2 , 5-6 ", [2, 5, 6]), ("4", [4]), ("", []), (None, []), ("cpu", [])])
def test_parse_device_ids(spec, ids):
    assert parse_device_ids(spec) == ids


@pytest.mark.parametrize("spec", ["3-1", "a", "1,,2", "-1", "1.5", "0-", "1,1", "0-3,2"])
def test_parse_device_ids_rejects(spec):
    with pytest.raises(ValueError, match="malformed GPU spec"):
        parse_device_ids(spec)


def test_get_contexts():
    assert get_contexts("") == [mx.cpu()]
    assert get_contexts("0-2,5") == [mx.gpu(0), mx.gpu(1), mx.gpu(2), mx.gpu(5)]
    with pytest.raises(ValueError, match="sees only"):
        get_contexts("0-%d" % (mx.context.num_gpus() + 1), check_available=True)


# ---------------------------------------------------------------- ShardSampler

@pytest.mark.parametrize("length, parts", [(10, 3), (12, 4), (5, 8), (7, 1)])
def test_shard_sampler_parts(length, parts):
    samplers = [ShardSampler(length, parts, p, shuffle=True, seed=3, epoch=1)
                for p in range(parts)]
    per_part = -(-length // parts)
    shards = [list(s) for s in samplers]
    assert all(len(s) == per_part == len(shard) for s, shard in zip(samplers, shards))
    flat = np.concatenate(shards)
    assert set(flat.tolist()) == set(range(length))            # every sample is used
    counts = np.bincount(flat, minlength=length)
    assert counts.max() - counts.min() <= (1 if parts <= length else parts)  # only wrap padding
    if length % parts == 0:
        assert sorted(flat.tolist()) == list(range(length))     # disjoint when it divides


def test_shard_sampler_deterministic_and_epoch_dependent():
    a = ShardSampler(100, 2, 1, shuffle=True, seed=5, epoch=0)
    b = ShardSampler(100, 2, 1, shuffle=True, seed=5, epoch=0)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)
    assert list(ShardSampler(100, 2, 1, shuffle=True, seed=6)) != list(
        ShardSampler(100, 2, 1, shuffle=True, seed=5))
    assert list(ShardSampler(7, 2, 1, shuffle=False)) == [1, 3, 5, 0]


def test_shard_batches_union_is_global_batch():
    """Per-worker batch t of every part together = the single-worker global batch t."""
    parts, per_worker = 3, 4
    single = ShardSampler(36, 1, 0, shuffle=True, seed=9, epoch=2).indices()
    shards = [ShardSampler(36, parts, p, shuffle=True, seed=9, epoch=2).indices()
              for p in range(parts)]
    for t in range(36 // (parts * per_worker)):
        union = np.concatenate([s[t * per_worker:(t + 1) * per_worker] for s in shards])
        glob = single[t * parts * per_worker:(t + 1) * parts * per_worker]
        assert sorted(union.tolist()) == sorted(glob.tolist())


def test_shard_sampler_rejects_bad_args():
    with pytest.raises(ValueError, match="part_index"):
        ShardSampler(10, 2, 2)
    with pytest.raises(ValueError, match="length"):
        ShardSampler(0, 2, 0)


# ---------------------------------------------------------------- single-process behaviour

def test_single_process_helpers():
    assert dist.create_kvstore(None) == (None, 0, 1)
    assert dist.create_kvstore("local") == ("local", 0, 1)
    with pytest.raises(ValueError, match="unknown kvstore"):
        dist.create_kvstore("dist_sink")
    if "DMLC_ROLE" not in os.environ:
        with pytest.raises(RuntimeError, match="launch_dist"):
            dist.create_kvstore("dist_sync")
    assert dist.global_batch_size(16, 4) == 64
    with pytest.raises(ValueError):
        dist.global_batch_size(0, 2)
    assert dist.allreduce_scalars(None, {"b": 2, "a": 0.5}) == {"a": 0.5, "b": 2.0}
    dist.barrier(None)
    net = mx.gluon.nn.Dense(2, in_units=3)
    net.initialize()
    with pytest.raises(ValueError, match="create_kvstore"):
        dist.make_trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, "dist_sync")
    trainer = dist.make_trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, None)
    assert isinstance(trainer, mx.gluon.Trainer)


# ---------------------------------------------------------------- real dist_sync run

def _run_single(out):
    subprocess.run([sys.executable, TOY, "--kvstore", "none", "--batch-per-worker",
                    str(GLOBAL_BATCH), "--out", str(out)], env=ENV, cwd=ROOT, check=True,
                   timeout=60)


def _run_dist(out, workers, servers):
    res = subprocess.run([sys.executable, LAUNCHER, "-n", str(workers), "-s", str(servers),
                          "--launcher", "local", "--timeout", "60", "--env", "OMP_NUM_THREADS=1",
                          "--", sys.executable, TOY, "--kvstore", "dist_sync",
                          "--batch-per-worker", str(GLOBAL_BATCH // workers), "--out", str(out)],
                         env=ENV, cwd=ROOT, timeout=90, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    assert res.returncode == 0, res.stdout.decode()[-4000:]


def _max_diff(a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    assert sorted(a.files) == sorted(b.files)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a.files)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    _run_single(out)
    return out


@pytest.mark.parametrize("servers", [1, 2])
def test_dist_sync_matches_single_worker(single_run, tmp_path, servers):
    _run_dist(tmp_path, workers=2, servers=servers)
    one = single_run
    # the ranks really started from different weights, and the broadcast fixed that
    assert _max_diff(tmp_path / "pre_rank0.npz", tmp_path / "pre_rank1.npz") > 1e-2
    for r in (0, 1):
        assert _max_diff(one / "init_rank0.npz", tmp_path / ("init_rank%d.npz" % r)) == 0.0
    # training moved the weights, and both workers end where 1 worker on the global batch ends
    assert _max_diff(one / "init_rank0.npz", one / "final_rank0.npz") > 1e-2
    for r in (0, 1):
        assert _max_diff(one / "final_rank0.npz", tmp_path / ("final_rank%d.npz" % r)) < 1e-5
    assert _max_diff(tmp_path / "final_rank0.npz", tmp_path / "final_rank1.npz") == 0.0

    # metric reduction: each worker's total equals the single run's, in float64 precision
    single = json.loads((one / "metrics_rank0.json").read_text())
    ms = [json.loads((tmp_path / ("metrics_rank%d.json" % r)).read_text()) for r in (0, 1)]
    assert sorted(m["rank"] for m in ms) == [0, 1] and all(m["num_workers"] == 2 for m in ms)
    assert all(m["steps"] == single["steps"] for m in ms)
    local_sum = sum(m["local"]["loss_sum"] for m in ms)
    for m in ms:
        assert m["total"]["count"] == single["total"]["count"] == 64
        assert abs(m["total"]["loss_sum"] - local_sum) < 1e-12
        assert abs(m["total"]["loss_sum"] - single["total"]["loss_sum"]) < 1e-4

    # trainer states were saved in dist mode and hold the same Adam moments as the single run
    states_d, opt_d = pickle.loads((tmp_path / "trainer.states").read_bytes())
    states_1, opt_1 = pickle.loads((one / "trainer.states").read_bytes())
    assert isinstance(opt_d, mx.optimizer.Adam) and opt_d.num_update == opt_1.num_update > 0
    assert sorted(states_d) == sorted(states_1)
    for idx in states_1:
        for m_d, m_1 in zip(states_d[idx], states_1[idx]):
            np.testing.assert_allclose(m_d.asnumpy(), m_1.asnumpy(), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- fit(): faults, resume, logs

FIT_EPOCHS = 3


def _fit_cmd(out, kvstore, batch, *extra):
    return [sys.executable, TOY, "--mode", "fit", "--kvstore", kvstore, "--batch-per-worker",
            str(batch), "--out", str(out), "--epochs", str(FIT_EPOCHS)] + list(extra)


def _run_fit_dist(out, *extra, timeout=100, servers=1):
    """2 workers + ``servers`` servers; returns (exit code, output, seconds); checks nothing is
    left."""
    tag = uuid.uuid4().hex
    start = time.monotonic()
    try:
        res = subprocess.run([sys.executable, LAUNCHER, "-n", "2", "-s", str(servers), "--timeout",
                              str(timeout), "--"] + _fit_cmd(out, "dist_sync", GLOBAL_BATCH // 2,
                                                             *extra),
                             env=dict(ENV, GLUONPOSE_TEST_TAG=tag), cwd=ROOT, timeout=timeout + 20,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - start
        assert wait_gone(tag, 10) == [], "processes left behind"
    finally:
        kill_tagged(tag)
    return res.returncode, res.stdout.decode(), seconds


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def test_fit_dist_logs_all_workers_and_resumes_a_killed_run_exactly(tmp_path):
    """fit() on 2 workers (hybridized net, forward pass right before make_trainer: the issue-10
    "init N first" case): metrics.csv and iterations.csv hold the losses over both workers'
    samples (= a single worker on the global batch; 4 steps per epoch, a row at steps 0, 2, 3),
    and a run whose worker 1 is SIGKILLed after
    epoch 2 was saved resumes (--resume) to the uninterrupted run's weights, bit for bit."""
    single, full, cut = tmp_path / "single", tmp_path / "full", tmp_path / "cut"
    subprocess.run(_fit_cmd(single, "none", GLOBAL_BATCH), env=ENV, cwd=ROOT, check=True,
                   timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc, out, _ = _run_fit_dist(full)
    assert rc == 0, out[-3000:]
    for name in ("metrics.csv", "iterations.csv"):
        a, b = _csv(single / name), _csv(full / name)
        assert len(a) == len(b) == (FIT_EPOCHS if name == "metrics.csv" else FIT_EPOCHS * 3)
        for ra, rb in zip(a, b):
            for key in ("loss", "heatmap", "offset"):
                assert abs(float(ra[key]) - float(rb[key])) <= 1e-5 * abs(float(ra[key])), \
                    (name, ra, rb)
    final = _params(full / "epoch_0003.params")
    assert max(float(np.abs(final[k] - v).max())
               for k, v in _params(single / "epoch_0003.params").items()) < 1e-5

    rc, out, seconds = _run_fit_dist(cut, "--fail", "kill", "--fail-rank", "1", "--fail-at", "2:0")
    assert rc == 128 + 9, out[-3000:]
    assert "(worker on 127.0.0.1) was killed by SIGKILL" in out, out[-3000:]
    assert (cut / "epoch_0002.json").exists() and not (cut / "epoch_0003.params").exists()
    rc, out, _ = _run_fit_dist(cut, "--resume")
    assert rc == 0, out[-3000:]
    resumed = _params(cut / "epoch_0003.params")
    assert sorted(resumed) == sorted(final)
    assert all(np.array_equal(resumed[k], final[k]) for k in final)
    columns = ("epoch", "lr", "loss", "heatmap", "offset")
    assert ([[r[k] for k in columns] for r in _csv(cut / "metrics.csv")]
            == [[r[k] for k in columns] for r in _csv(full / "metrics.csv")])


@pytest.mark.parametrize("mode, code, line", [
    ("dataset", 2, "error: toy.json: record 1: bad keypoints on rank 1"),
    ("nan", 3, "error: non-finite loss at epoch 1 iteration 1"),
    ("dataset --naive-exit", 2, "error: toy.json: record 1: bad keypoints on rank 1")])
def test_fit_failure_on_one_rank_ends_the_job(tmp_path, mode, code, line):
    """Bad data (a DatasetError turned into an 'error:' line + exit 2, as the scripts do) or a
    non-finite loss on rank 1 only: the other rank waits for rank 1's gradients, rank 1 used to
    stall in ps-lite's shutdown. The job ends promptly with rank 1's code and error line, also
    for a script ending in ``sys.exit(main())`` (the launcher runs it inside WorkerRun through
    gluonpose.dist.worker, which keeps its exit code)."""
    rc, out, seconds = _run_fit_dist(tmp_path, "--fail", *mode.split(), "--fail-rank", "1",
                                     "--fail-at", "0:1")
    assert rc == code, out[-3000:]
    assert "(worker on 127.0.0.1) failed with exit code %d: %s" % (code, line) in out, out[-3000:]
    assert "timeout" not in out
    assert seconds < 60, seconds


def test_resume_from_different_epochs_fails_clearly(tmp_path):
    """--resume with work dirs that are not shared: one rank finds epoch 1, the other nothing.
    Every rank stops with a message naming the epochs instead of hanging."""
    subprocess.run(_fit_cmd(tmp_path / "w0", "none", GLOBAL_BATCH, "--epochs", "1"), env=ENV,
                   cwd=ROOT, check=True, timeout=60, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    rc, out, seconds = _run_fit_dist(str(tmp_path / "w{index}"), "--resume")
    assert rc == 2, out[-3000:]
    assert "failed with exit code 2: error: --resume: the workers would start from different " \
           "epochs (rank 0: " in out, out[-3000:]
    assert "epoch 1" in out and "no checkpoint" in out
    assert not (tmp_path / "w1" / "epoch_0002.params").exists()
    assert not (tmp_path / "w0" / "epoch_0002.params").exists()


# ---------------------------------------------------------------- communication options


def test_overlapped_step_with_sharded_arrays_equals_one_worker(tmp_path):
    """fit()'s step (loss read queued before the backward pass, per-parameter push/pull with
    priorities going on during it) on 2 workers and 2 servers, with every array above 16
    elements split over both servers: the weights equal 1 worker on the global batch."""
    single, dist_dir = tmp_path / "single", tmp_path / "dist"
    subprocess.run(_fit_cmd(single, "none", GLOBAL_BATCH), env=ENV, cwd=ROOT, check=True,
                   timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc, out, _ = _run_fit_dist(dist_dir, "--bigarray-bound", "16", servers=2)
    assert rc == 0, out[-3000:]
    final, ref = _params(dist_dir / "epoch_0003.params"), _params(single / "epoch_0003.params")
    assert sorted(final) == sorted(ref)
    assert max(float(np.abs(final[k] - v).max()) for k, v in ref.items()) < 1e-6


def test_gradient_compression_reaches_the_kvstore_and_training_runs(tmp_path):
    """train.gradient_compression=2bit: the all-reduced gradient of 2 workers holds only sums of
    two values in {-t, 0, t} (t = 0.05, MXNet's 2-bit quantizer), rank 1 starts from rank 0's
    weights (broadcast without pushes), the logged step-0 losses over both workers equal one
    worker's on the global batch (scalar all-gather through the compressing kvstore), and 3
    epochs train to finite losses."""
    t = 0.05
    single, comp = tmp_path / "single", tmp_path / "comp{index}"
    subprocess.run(_fit_cmd(single, "none", GLOBAL_BATCH), env=ENV, cwd=ROOT, check=True,
                   timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc, out, _ = _run_fit_dist(str(comp), "--compression", str(t), "--dump-grads")
    assert rc == 0, out[-3000:]
    dirs = [tmp_path / "comp0", tmp_path / "comp1"]
    grads = [np.load(d / ("grads_rank%d.npz" % r)) for r in (0, 1) for d in dirs
             if (d / ("grads_rank%d.npz" % r)).exists()]
    assert len(grads) == 2
    levels = np.arange(-2, 3) * np.float32(t)
    nonzero = 0
    for g in grads:
        for name in g.files:
            v = g[name].ravel()
            assert np.abs(v[:, None] - levels[None, :]).min(axis=1).max() < 1e-7, name
            nonzero += int(np.count_nonzero(v))
    assert nonzero > 0
    inits = [np.load(d / ("init_rank%d.npz" % r)) for r in (0, 1) for d in dirs
             if (d / ("init_rank%d.npz" % r)).exists()]
    assert all(np.array_equal(inits[0][k], inits[1][k]) for k in inits[0].files)
    rank0 = next(d for d in dirs if (d / "metrics.csv").exists())
    rows = _csv(rank0 / "metrics.csv")
    assert len(rows) == FIT_EPOCHS and all(np.isfinite(float(r["loss"])) for r in rows)
    first, ref = _csv(rank0 / "iterations.csv")[0], _csv(single / "iterations.csv")[0]
    for key in ("loss", "heatmap", "offset"):
        assert abs(float(first[key]) - float(ref[key])) <= 1e-5 * abs(float(ref[key])), key


def test_kvstore_options_are_type_checked():
    from gluonpose.config import load_config
    from gluonpose.engine.runner import kvstore_options
    from gluonpose.errors import ConfigError
    assert kvstore_options(load_config().train) == (None, 1000000)
    cfg = load_config(None, ["train.gradient_compression=2bit", "train.compression_threshold=1",
                             "train.kvstore_bigarray_bound=5000"])
    assert kvstore_options(cfg.train) == ({"type": "2bit", "threshold": 1.0}, 5000)
    for bad, key in (("train.gradient_compression=1bit", "train.gradient_compression"),
                     ("train.gradient_compression=true", "train.gradient_compression"),
                     ("train.compression_threshold=0", "train.compression_threshold"),
                     ("train.compression_threshold=abc", "train.compression_threshold"),
                     ("train.kvstore_bigarray_bound=1.5", "train.kvstore_bigarray_bound"),
                     ("train.kvstore_bigarray_bound=0", "train.kvstore_bigarray_bound"),
                     ("train.static_alloc=1", "train.static_alloc")):
        with pytest.raises(ConfigError, match=key):
            kvstore_options(load_config(None, [bad]).train)
    with pytest.raises(ValueError):
        dist.check_compression({"type": "2bit", "threshold": -1})
    with pytest.raises(ValueError):
        dist.check_compression({"type": "1bit", "threshold": 0.5})


def test_gpus_local_is_the_launchers_local_rank(monkeypatch):
    """``--gpus local`` (one process per GPU, Horovod): the GPU of the process's local rank."""
    from gluonpose.engine.context import LOCAL_RANK_VARIABLES, local_rank
    from gluonpose.errors import ContextError
    for name in LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ContextError, match="needs the process's local rank"):
        get_contexts("local")
    monkeypatch.setenv("SLURM_LOCALID", "5")
    monkeypatch.setenv("HOROVOD_LOCAL_RANK", "3")   # the first listed wins
    assert local_rank() == 3 and get_contexts("local") == [mx.gpu(3)]
    assert local_rank({"OMPI_COMM_WORLD_LOCAL_RANK": "1"}) == 1
    with pytest.raises(ContextError, match="not a process index"):
        local_rank({"SLURM_LOCALID": "x"})
