"""Threads per context (gluonpose/utils/threads.py) and per worker (scripts/launch_dist.py):
chosen from the contexts and cores unless the user chose, and in effect in MXNet's OpenMP
runtime (it reads OMP_NUM_THREADS once, when MXNet loads)."""
import os
import subprocess
import sys

import pytest

from gluonpose.dist.launch import build_local_plan, local_thread_env
from gluonpose.utils.threads import (AUTO_MARK, configure_threads, count_cpu_contexts,
                                     describe_threads, threads_for)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("spec, n", [("cpu:2", 2), ("CPU:4", 4), ("", 1), (None, 1), ("cpu", 1),
                                     ("0-3", 0), ("1", 0)])
def test_count_cpu_contexts(spec, n):
    assert count_cpu_contexts(spec) == n


def test_threads_for():
    assert [threads_for(2, 2), threads_for(2, 4), threads_for(8, 3), threads_for(6, 1)] == [1, 1, 2, 6]


def test_configure_threads_chooses_unless_the_user_did():
    env = {}
    note = configure_threads("cpu:2", env=env, cores=2)
    assert env["OMP_NUM_THREADS"] == "1" and "OMP_NUM_THREADS=1 per context" in note
    assert "2 cores / 2 CPU contexts" in note and describe_threads(env) == note
    env = {}
    configure_threads("cpu:3", env=env, cores=8)
    assert env["OMP_NUM_THREADS"] == "2"
    env = {}
    configure_threads("0-3", env=env, cores=4)   # GPU contexts do not divide the CPU threads
    assert env["OMP_NUM_THREADS"] == "4"
    # the user's choice is kept
    for user in ({"OMP_NUM_THREADS": "3"}, {"MXNET_ENGINE_TYPE": "NaiveEngine"},
                 {"MXNET_CPU_WORKER_NTHREADS": "2"}):
        env = dict(user)
        note = configure_threads("cpu:2", env=env, cores=8)
        assert env.get("OMP_NUM_THREADS") == user.get("OMP_NUM_THREADS") and "by the user" in note
    # a launcher's automatic per-worker share is divided further over the contexts
    env = {"OMP_NUM_THREADS": "4", AUTO_MARK: "4"}
    note = configure_threads("cpu:2", env=env, cores=64)
    assert env["OMP_NUM_THREADS"] == "2" and "share" in note


_PROBE = r"""
import ctypes, os, sys
sys.path.insert(0, %r)
if sys.argv[1] == "configure":
    from gluonpose.utils.threads import configure_threads
    configure_threads("cpu:2")
import mxnet as mx
x = mx.nd.ones((64, 64), ctx=mx.cpu(1))
(x * 2).wait_to_read()
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l.split()[-1]})
print(ctypes.CDLL(libs[0]).omp_get_max_threads() if libs else "no-libgomp")
"""


def _probe(mode, env):
    res = subprocess.run([sys.executable, "-c", _PROBE % ROOT, mode], env=env, check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
    return res.stdout.decode().strip().splitlines()[-1]


def test_the_choice_is_in_effect_in_mxnet():
    """A worker given 4 threads by the launcher runs cpu:2 with 2 per context: MXNet's OpenMP
    runtime sees 2 when configure_threads ran before the import, 4 otherwise."""
    env = {k: v for k, v in os.environ.items() if k not in
           ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "MXNET_CPU_WORKER_NTHREADS",
            "MXNET_ENGINE_TYPE", AUTO_MARK)}
    env.update(OMP_NUM_THREADS="4", **{AUTO_MARK: "4"})
    configured = _probe("configure", env)
    if configured == "no-libgomp":
        pytest.skip("this MXNet build does not use libgomp")
    assert configured == "2"
    assert _probe("plain", env) == "4"


def test_launcher_threads_per_worker():
    workers, servers, note = local_thread_env(4, {}, cores=8)
    assert workers == {"OMP_NUM_THREADS": "2", AUTO_MARK: "2"}
    assert servers["OMP_NUM_THREADS"] == "1" and "8 cores / 4 worker(s)" in note
    assert local_thread_env(4, {"OMP_NUM_THREADS": "3"}, cores=8)[:2] == ({}, {})
    assert local_thread_env(4, {}, {"OMP_NUM_THREADS": "3"}, cores=8)[:2] == ({}, {})
    notes = []
    plan = build_local_plan(["python", "w.py"], 2, 1, port=9000, base_env={}, notes=notes)
    share = str(threads_for(len(os.sched_getaffinity(0)), 2))
    for spec in plan:
        expected = share if spec.role == "worker" else "1"
        assert spec.env["OMP_NUM_THREADS"] == expected, spec.name
    assert notes and "per worker" in notes[0]
    plan = build_local_plan(["python", "w.py"], 2, 1, port=9000,
                            base_env={"OMP_NUM_THREADS": "7"})
    assert all(spec.env["OMP_NUM_THREADS"] == "7" and AUTO_MARK not in spec.env for spec in plan)
