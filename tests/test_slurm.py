"""Tests of gluonpose/dist/slurm.py and ``gluonpose-launch --slurm``: the hostlist parser, fake
SLURM environments of 1-4 nodes, the dry-run plan, and a real 2-node job whose "nodes" are two
loopback addresses (127.0.0.1, 127.0.0.2), each with its own launcher as srun would start them."""
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from gluonpose.dist import slurm
from gluonpose.errors import ConfigError, LaunchError
from _procs import kill_tagged, tagged_pids, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "scripts", "launch_dist.py")
TOY = os.path.join(ROOT, "tests", "_dist_toy_train.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, PYTHONWARNINGS="ignore")


@pytest.mark.parametrize("text, hosts", [
    ("node1", ["node1"]),
    ("gpu-a[01-04,07],gpu-b2", ["gpu-a01", "gpu-a02", "gpu-a03", "gpu-a04", "gpu-a07", "gpu-b2"]),
    ("n[8-11]", ["n8", "n9", "n10", "n11"]),
    ("n[008-011]", ["n008", "n009", "n010", "n011"]),
    ("a,b,c", ["a", "b", "c"]),
    ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
    ("x[3],y[1,5-6]z", ["x3", "y1z", "y5z", "y6z"]),
    ("10.0.0.[1-3]", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
])
def test_expand_hostlist(text, hosts):
    assert slurm.expand_hostlist(text) == hosts


@pytest.mark.parametrize("text, match", [
    ("", "empty"), ("a[1-3", "not closed"), ("a]1", "without"), ("a[3-1]", "backwards"),
    ("a[x]", "bad range"), ("a,,b", "empty item"), ("a[1-2],a1", "twice"), ("a[[1]]", "nested"),
])
def test_expand_hostlist_rejects(text, match):
    with pytest.raises(ConfigError, match=match):
        slurm.expand_hostlist(text)


def _env(nodelist, nnodes, node_id=0, job_id=731, **extra):
    env = {"SLURM_JOB_ID": str(job_id), "SLURM_JOB_NODELIST": nodelist,
           "SLURM_NNODES": str(nnodes), "SLURM_PROCID": str(node_id),
           "SLURM_LOCALID": "0", "SLURM_NODEID": str(node_id)}
    env.update(extra)
    return env


NODELISTS = {1: "gpu1", 2: "gpu-a[01-02]", 3: "gpu-a[01,03],gpu-b7", 4: "gpu-a[01-04]"}


@pytest.mark.parametrize("nodes", [1, 2, 3, 4])
def test_ps_plan_over_fake_allocations(nodes):
    """Scheduler on the first node, one server and one worker per node, the same scheduler
    address and job-derived port everywhere, every process's DMLC_NODE_HOST its own node; the
    per-node plans (what each srun task starts) partition the job's plan."""
    hosts = slurm.expand_hostlist(NODELISTS[nodes])
    job = slurm.slurm_job(_env(NODELISTS[nodes], nodes, node_id=nodes - 1))
    assert job.nodes == tuple(hosts) and job.node_id == nodes - 1 and job.job_id == 731
    plan = slurm.ps_plan(job, ["python", "train.py"], base_env={})
    assert [p.role for p in plan] == ["scheduler"] + ["server"] * nodes + ["worker"] * nodes
    assert plan[0].host == hosts[0]
    assert [p.host for p in plan if p.role == "server"] == hosts
    assert [p.host for p in plan if p.role == "worker"] == hosts
    for p in plan:
        assert p.env["DMLC_ROLE"] == p.role
        assert p.env["DMLC_PS_ROOT_URI"] == hosts[0]
        assert p.env["DMLC_PS_ROOT_PORT"] == str(slurm.PORT_BASE + 731)
        assert p.env["DMLC_NUM_SERVER"] == p.env["DMLC_NUM_WORKER"] == str(nodes)
        assert p.env["DMLC_NODE_HOST"] == p.host
    assert plan[-1].argv == ["python", "-m", "gluonpose.dist.worker", "train.py"]
    per_node = [slurm.ps_plan(job, ["python", "train.py"], base_env={}, only_node=i)
                for i in range(nodes)]
    assert [p.name for part in per_node for p in part] == [
        "scheduler"] + ["server0", "worker0"] + [n for i in range(1, nodes)
                                                 for n in ("server%d" % i, "worker%d" % i)]
    assert sum(len(part) for part in per_node) == len(plan)
    two = slurm.ps_plan(job, ["python", "train.py"], base_env={}, workers_per_node=2)
    assert [p.host for p in two if p.role == "worker"] == [h for h in hosts for _ in (0, 1)]


def test_job_port_and_legacy_names():
    assert slurm.job_port(123456) == slurm.PORT_BASE + 123456 % slurm.PORT_SPAN
    assert slurm.PORT_BASE <= slurm.job_port(99999999) < slurm.PORT_BASE + slurm.PORT_SPAN
    job = slurm.slurm_job({"SLURM_JOBID": "5", "SLURM_NODELIST": "a[1-2]",
                           "SLURM_JOB_NUM_NODES": "2"}, need_step=False)
    assert job.nodes == ("a1", "a2") and job.node_id is None


@pytest.mark.parametrize("env, match", [
    ({}, "SLURM_JOB_ID, SLURM_JOB_NODELIST, SLURM_NNODES, SLURM_PROCID"),
    (_env("a[1-2]", 3), "SLURM_NNODES=3 but SLURM_JOB_NODELIST='a\\[1-2\\]' names 2"),
    (_env("a[1-2", 2), "SLURM_JOB_NODELIST: hostlist"),
    (_env("a[1-2]", 2, node_id=5), "SLURM_NODEID=5 outside"),
    (_env("a[1-2]", "two"), "SLURM_NNODES='two' is not an integer"),
])
def test_slurm_job_errors_name_the_variable(env, match):
    with pytest.raises(LaunchError, match=match):
        slurm.slurm_job(env)


def test_dry_run_prints_one_line_per_process():
    env = dict(ENV, **_env("gpu-a[01-04]", 4, job_id=4242))
    for name in ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID"):
        env.pop(name)   # in salloc, before srun: the dry run needs none of them
    res = subprocess.run([sys.executable, LAUNCHER, "--slurm", "--dry-run", "--", "python",
                          "train.py", "--kvstore", "dist_sync"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 + 4 + 4
    words = [line.split() for line in lines]
    assert [w[:3] for w in words[:2]] == [["scheduler", "scheduler", "gpu-a01"],
                                          ["server0", "server", "gpu-a01"]]
    assert words[-1][:3] == ["worker3", "worker", "gpu-a04"]
    for w in words:
        var = dict(x.split("=", 1) for x in w[3:])
        assert var["DMLC_ROLE"] == w[1] and var["DMLC_NODE_HOST"] == w[2]
        assert var["DMLC_PS_ROOT_PORT"] == "24242" and var["DMLC_PS_ROOT_URI"] == "gpu-a01"
    res = subprocess.run([sys.executable, LAUNCHER, "--slurm", "--dry-run", "--engine", "horovod",
                          "--workers-per-node", "8", "--", "python", "train.py"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("horovodrun: horovodrun --gloo -np 32 -H gpu-a01:8,gpu-a02:8,"
                               "gpu-a03:8,gpu-a04:8 python -m gluonpose.dist.worker train.py")
    assert len(lines) == 1 + 32 and "HOROVOD_RANK=31 HOROVOD_SIZE=32" in lines[-1]
    res = subprocess.run([sys.executable, LAUNCHER, "--slurm", "--", "python", "t.py"],
                         env=ENV, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("error: --slurm: SLURM_JOB_ID")


def _start_nodes(tmp_path, tag, cmd, job_id):
    """Two launchers as ``srun --ntasks-per-node=1`` starts them on 2 nodes (127.0.0.1/2)."""
    procs = []
    for node in (0, 1):
        env = dict(ENV, GLUONPOSE_TEST_TAG=tag, **_env("127.0.0.[1-2]", 2, node_id=node,
                                                       job_id=job_id))
        procs.append(subprocess.Popen([sys.executable, LAUNCHER, "--slurm", "--timeout", "100",
                                       "--"] + cmd, env=env, cwd=str(tmp_path),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return procs


def test_two_node_job_equals_one_worker(tmp_path):
    """A real dist_sync job over the SLURM mapping (scheduler, server0, worker0 on node 0;
    server1, worker1 on node 1) trains like one process on the global batch."""
    single = tmp_path / "single"
    subprocess.run([sys.executable, TOY, "--mode", "fit", "--kvstore", "none",
                    "--batch-per-worker", "8", "--out", str(single), "--epochs", "2"],
                   env=ENV, check=True, timeout=120, stdout=subprocess.DEVNULL)
    tag = uuid.uuid4().hex
    procs = _start_nodes(tmp_path, tag, [sys.executable, TOY, "--mode", "fit", "--kvstore",
                                         "dist_sync", "--batch-per-worker", "4", "--out",
                                         str(tmp_path / "dist"), "--epochs", "2"],
                         job_id=os.getpid() % 9000 + 500)
    try:
        outs = [p.communicate(timeout=150)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert "node 0 of 2 (127.0.0.1): scheduler, server0, worker0" in outs[0]
        assert "node 1 of 2 (127.0.0.2): server1, worker1" in outs[1]
        import mxnet as mx
        a = mx.nd.load(str(single / "epoch_0002.params"))
        b = mx.nd.load(str(tmp_path / "dist" / "epoch_0002.params"))
        assert max(float(np.abs(a[k].asnumpy() - b[k].asnumpy()).max()) for k in a) < 1e-5
        assert wait_gone(tag, 10) == []
    finally:
        kill_tagged(tag)


_SLEEPER = ("import time\n"
            "from gluonpose.dist.kvstore import create_kvstore\n"
            "kv, rank, n = create_kvstore('dist_sync')\n"
            "open('ready%d' % rank, 'w').close()\n"
            "time.sleep(300)\n")


def test_sigterm_ends_every_role(tmp_path):
    """SLURM's SIGTERM (time limit, preemption) to each node's launcher: every role of the job
    ends, the launchers exit 143 (128 + SIGTERM) and say why."""
    tag = uuid.uuid4().hex
    procs = _start_nodes(tmp_path, tag, [sys.executable, "-c", _SLEEPER],
                         job_id=os.getpid() % 9000 + 9500)
    try:
        deadline = time.monotonic() + 90
        while not all((tmp_path / ("ready%d" % r)).exists() for r in (0, 1)):
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
            time.sleep(0.1)
        assert len(tagged_pids(tag)) >= 2 + 3 + 2   # launchers, scheduler, servers, workers
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=30)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [143, 143], outs
        assert all("terminated; passing SIGTERM to the workers" in o for o in outs), outs
        assert wait_gone(tag, 10) == []
    finally:
        kill_tagged(tag)
