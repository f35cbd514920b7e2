"""Tests of the ps-lite job launcher (gluonpose/dist/launch.py, scripts/launch_dist.py)."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid

import pytest

from gluonpose.dist import launch
from _procs import kill_tagged, tagged_pids, tagged_roles, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "scripts", "launch_dist.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run_launcher(args, timeout=60, **kwargs):
    return subprocess.run([sys.executable, LAUNCHER] + args, env=ENV, cwd=ROOT, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------- plan construction

def test_parse_hostfile(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("# cluster\nnode1\n\n  node2:2222  # second\n10.0.0.3\n")
    assert launch.parse_hostfile(str(path)) == [("node1", None), ("node2", 2222),
                                                ("10.0.0.3", None)]
    path.write_text("node1:ssh\n")
    with pytest.raises(ValueError, match="hosts:1"):
        launch.parse_hostfile(str(path))
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no host"):
        launch.parse_hostfile(str(path))


def test_parse_env_items():
    assert launch.parse_env_items(["A=1", "B_2=x=y", "C="]) == {"A": "1", "B_2": "x=y", "C": ""}
    for bad in (["NOEQUALS"], ["1A=2"], ["=v"]):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            launch.parse_env_items(bad)


def test_local_plan_env():
    cmd = ["python", "train.py", "--kvstore", "dist_sync"]
    plan = launch.build_local_plan(cmd, num_workers=3, num_servers=2, port=9123,
                                   env={"OMP_NUM_THREADS": "1"}, verbose=1, base_env={"X": "y"})
    assert [p.name for p in plan] == ["scheduler", "server0", "server1", "worker0", "worker1",
                                      "worker2"]
    for p in plan:
        assert p.env["DMLC_ROLE"] == p.role
        assert p.env["DMLC_PS_ROOT_URI"] == "127.0.0.1" == p.env["DMLC_NODE_HOST"]
        assert p.env["DMLC_PS_ROOT_PORT"] == "9123"
        assert (p.env["DMLC_NUM_WORKER"], p.env["DMLC_NUM_SERVER"]) == ("3", "2")
        assert p.env["PS_VERBOSE"] == "1" and p.env["OMP_NUM_THREADS"] == "1"
        assert p.env["X"] == "y"
    wrapped = ["python", "-m", "gluonpose.dist.worker", "train.py", "--kvstore", "dist_sync"]
    assert [p.argv for p in plan if p.role == "worker"] == [wrapped] * 3
    assert all(p.env["PYTHONPATH"].split(os.pathsep)[0] == ROOT for p in plan)
    plain = launch.build_local_plan(cmd, 1, 1, port=9123, fail_fast=False, base_env={})
    assert plain[-1].argv == cmd and "PYTHONPATH" not in plain[-1].env
    assert plan[1].argv == plan[0].argv == launch.ps_role_command()
    assert plan[1].argv[-1].rstrip().endswith("import mxnet")
    assert all(p.env["GLUONPOSE_LAUNCHED"] == "1" and p.env["PYTHONUNBUFFERED"] == "1"
               for p in plan)
    assert [p.env["GLUONPOSE_LAUNCH_INDEX"] for p in plan[3:]] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="server"):
        launch.build_local_plan(cmd, num_workers=2, num_servers=0)


@pytest.mark.parametrize("cmd, expected", [
    (["python3", "t.py", "-x"], ["python3", "-m", "gluonpose.dist.worker", "t.py", "-x"]),
    (["/usr/bin/python3.11", "-u", "-W", "ignore", "-m", "pkg.mod", "a"],
     ["/usr/bin/python3.11", "-u", "-W", "ignore", "-m", "gluonpose.dist.worker", "-m", "pkg.mod",
      "a"]),
    (["python", "-c", "print(1)"], ["python", "-m", "gluonpose.dist.worker", "-c", "print(1)"]),
    (["python", "-m", "gluonpose.dist.worker", "t.py"], ["python", "-m", "gluonpose.dist.worker",
                                                         "t.py"]),
    (["python"], ["python"]), (["python", "-"], ["python", "-"]),
    (["bash", "run.sh"], ["bash", "run.sh"]), (["pythonista", "x.py"], ["pythonista", "x.py"]),
])
def test_worker_command(cmd, expected):
    """Python commands (script, -m, -c, interpreter options kept in front) go through the
    fail-fast wrapper; other programs, and stdin programs, are left alone."""
    assert launch.worker_command(cmd) == expected


def test_local_plan_picks_free_port():
    plan = launch.build_local_plan(["true"], 1, 1)
    port = int(plan[0].env["DMLC_PS_ROOT_PORT"])
    assert 0 < port < 65536
    assert {p.env["DMLC_PS_ROOT_PORT"] for p in plan} == {str(port)}


def test_ssh_plan_round_robin_and_command(tmp_path):
    hosts = [("nodeA", None), ("nodeB", 2222)]
    cmd = ["python", "train.py", "--name", "a b's"]
    plan = launch.build_ssh_plan(cmd, hosts, num_workers=3, num_servers=2, port=9000,
                                 env={"OMP_NUM_THREADS": "2"}, scheduler_host="10.1.1.1",
                                 cwd="/data/my dir", server_command=["python3", "-c",
                                                                     "import mxnet"])
    sched = plan[0]
    assert sched.argv == ["python3", "-c", "import mxnet"]   # runs here, not over ssh
    assert sched.env["DMLC_ROLE"] == "scheduler" and sched.env["DMLC_NODE_HOST"] == "10.1.1.1"
    remote = plan[1:]
    assert [p.host for p in remote] == ["nodeA", "nodeB", "nodeA", "nodeB", "nodeA"]
    for p in remote:
        assert p.argv[0] == "ssh" and "-tt" in p.argv
        assert p.argv[-2] == p.host
        assert ("-p" in p.argv) == (p.host == "nodeB")
        if p.host == "nodeB":
            assert p.argv[p.argv.index("-p") + 1] == "2222"
        words = shlex.split(p.argv[-1])
        assert words[:3] == ["cd", "/data/my dir", "&&"]
        exported = dict(w.split("=", 1) for w in words[words.index("export") + 1:
                                                        words.index("exec") - 1])
        assert exported["DMLC_ROLE"] == p.role
        assert exported["DMLC_NODE_HOST"] == p.host
        assert exported["DMLC_PS_ROOT_URI"] == "10.1.1.1"
        assert exported["DMLC_PS_ROOT_PORT"] == "9000"
        assert exported["OMP_NUM_THREADS"] == "2"
        assert exported["GLUONPOSE_LAUNCHED"] == "1"
        tail = words[words.index("exec") + 1:]
        assert tail == (launch.worker_command(cmd) if p.role == "worker"
                        else ["python3", "-c", "import mxnet"])


def test_ssh_remote_string_runs_in_a_shell(tmp_path):
    """The remote part, given to a real shell (as sshd would), sets cwd and env and keeps
    arguments with spaces and quotes intact."""
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    probe = ("import os, sys, json; print(json.dumps([os.getcwd(), os.environ['DMLC_ROLE'], "
             "os.environ['WEIRD'], sys.argv[1:]]))")
    argv = launch.ssh_argv("host", None, {"DMLC_ROLE": "worker", "WEIRD": "a 'b' $c"},
                           str(workdir), [sys.executable, "-c", probe, "x y", "it's"])
    out = subprocess.run(["bash", "-c", argv[-1]], stdout=subprocess.PIPE, timeout=30,
                         check=True).stdout
    cwd, role, weird, args = json.loads(out)
    assert os.path.samefile(cwd, workdir)
    assert (role, weird, args) == ("worker", "a 'b' $c", ["x y", "it's"])


def test_last_output_line(tmp_path):
    """The line a failure report quotes: the last non-empty one as a terminal shows it (after
    a progress bar's carriage returns, without ssh -tt's CRLF), also from a --log-dir file."""
    assert launch._visible(b"epoch 1:  10%\repoch 1:  50%\r\n") == "epoch 1:  50%"
    path = tmp_path / "worker1.log"
    path.write_bytes(b"step 1\r\nTraceback (most recent call last):\n  File \"x.py\"\n"
                     b"ValueError: bad value\r\n\n  \n")
    assert launch._last_line_of_file(str(path)) == "ValueError: bad value"
    assert launch._last_line_of_file(str(tmp_path / "missing.log")) == ""


# ---------------------------------------------------------------- supervision (real processes)

def test_failing_worker_stops_everything(tmp_path):
    """Worker 1 joins the kvstore then crashes; worker 0 would wait in a barrier forever."""
    pidfile = tmp_path / "worker0.pid"
    script = ("import os, time, mxnet as mx\n"
              "kv = mx.kv.create('dist_sync')\n"
              "if os.environ['GLUONPOSE_LAUNCH_INDEX'] == '1':\n"
              "    time.sleep(0.5); os._exit(1)\n"
              "open(%r, 'w').write(str(os.getpid()))\n"
              "kv._barrier()\n"
              "time.sleep(120)\n" % str(pidfile))
    start = time.monotonic()
    res = run_launcher(["-n", "2", "-s", "1", "--timeout", "45", "--", sys.executable, "-c",
                        script], timeout=60)
    elapsed = time.monotonic() - start
    out = res.stdout.decode()
    assert res.returncode == 1, out
    assert "worker1 (worker on 127.0.0.1) failed with exit code 1" in out
    assert elapsed < 20, (elapsed, out)
    assert not pid_alive(int(pidfile.read_text()))


def test_timeout_stops_everything(tmp_path):
    script = "import os, time; print('up', flush=True); time.sleep(120)"
    start = time.monotonic()
    res = run_launcher(["-n", "2", "-s", "1", "--timeout", "2", "--", sys.executable, "-c",
                        script], timeout=30)
    assert res.returncode == 124, res.stdout.decode()
    assert time.monotonic() - start < 15
    assert "timeout" in res.stdout.decode()


def test_sigterm_stops_everything(tmp_path):
    script = ("import os, sys, time\n"
              "open(os.path.join(sys.argv[1], 'w%s.pid' % os.environ['GLUONPOSE_LAUNCH_INDEX'])"
              ", 'w').write(str(os.getpid()))\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, LAUNCHER, "-n", "2", "-s", "1", "--timeout", "60",
                             "--", sys.executable, "-c", script, str(tmp_path)], env=ENV,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        pidfiles = [tmp_path / "w0.pid", tmp_path / "w1.pid"]
        deadline = time.monotonic() + 30
        while not all(p.exists() and p.read_text() for p in pidfiles):
            assert time.monotonic() < deadline, "workers did not start"
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.1)
        pids = [int(p.read_text()) for p in pidfiles]
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 143
    assert not any(pid_alive(pid) for pid in pids)


def test_prefixed_output_and_log_dir(tmp_path):
    script = "import os; print('hello from', os.environ['GLUONPOSE_LAUNCH_INDEX'])"
    res = run_launcher(["-n", "2", "-s", "1", "--grace", "0.5", "--timeout", "30", "--",
                        sys.executable, "-c", script], timeout=60)
    out = res.stdout.decode()
    assert res.returncode == 0, out
    assert "[worker0] hello from 0" in out and "[worker1] hello from 1" in out
    logs = tmp_path / "logs"
    res = run_launcher(["-n", "2", "-s", "1", "--grace", "0.5", "--timeout", "30",
                        "--log-dir", str(logs), "--", sys.executable, "-c", script], timeout=60)
    assert res.returncode == 0, res.stdout.decode()
    assert (logs / "worker1.log").read_text().strip() == "hello from 1"
    assert sorted(os.listdir(logs)) == ["scheduler.log", "server0.log", "worker0.log",
                                        "worker1.log"]


def test_cli_errors():
    res = run_launcher(["-n", "2", "python", "x.py"], timeout=30)
    assert res.returncode == 2 and b"after '--'" in res.stdout
    res = run_launcher(["-n", "2", "--env", "BAD", "--", "true"], timeout=30)
    assert res.returncode == 2 and b"NAME=VALUE" in res.stdout
    res = run_launcher(["-n", "1", "--launcher", "ssh", "--", "true"], timeout=30)
    assert res.returncode == 2 and b"hostfile" in res.stdout


# ---------------------------------------------------------------- worker failures, launcher death

def _tagged_env(tag, **extra):
    return dict(ENV, GLUONPOSE_TEST_TAG=tag, PYTHONPATH=ROOT, **extra)


def test_worker_exception_ends_the_job(tmp_path):
    """An ordinary exception in worker 1 while worker 0 waits for its gradients (a pushpull):
    before, worker 1 stalled in ps-lite's shutdown barrier and the job hung until --timeout.
    Now the job ends at once with the worker's exit code, and the launcher names the worker,
    its role and host, and its error line."""
    tag = uuid.uuid4().hex
    script = ("import os, time\n"
              "from gluonpose.dist.kvstore import allreduce_scalars, create_kvstore\n"
              "kv, rank, n = create_kvstore('dist_sync')\n"
              "allreduce_scalars(kv, {'x': 1.0})\n"
              "if os.environ['GLUONPOSE_LAUNCH_INDEX'] == '1':\n"
              "    raise ValueError('bad value in worker 1')\n"
              "allreduce_scalars(kv, {'x': 2.0})   # waits for worker 1 forever\n")
    start = time.monotonic()
    try:
        res = subprocess.run([sys.executable, LAUNCHER, "-n", "2", "-s", "1", "--timeout", "100",
                              "--", sys.executable, "-c", script], env=_tagged_env(tag),
                             cwd=ROOT, timeout=120, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        elapsed = time.monotonic() - start
        out = res.stdout.decode()
        assert res.returncode == 1, out[-3000:]
        assert ("worker1 (worker on 127.0.0.1) failed with exit code 1: "
                "ValueError: bad value in worker 1\n[launch] stopping all processes") in out, \
            out[-3000:]
        assert "timeout" not in out
        assert elapsed < 60, elapsed   # 4 mxnet imports on a loaded 2-core machine; was: hang
        assert wait_gone(tag, 10) == []
    finally:
        kill_tagged(tag)


_RAW_WORKER = """
import os, sys
import mxnet as mx
def main():
    kv = mx.kv.create('dist_sync')
    kv.init(3, mx.nd.zeros((4,)))
    out = mx.nd.zeros((4,))
    kv.pushpull(3, mx.nd.ones((4,)), out=out)
    out.wait_to_read()
    if kv.rank == 1:
        raise RuntimeError('hand-written worker failed on rank 1')
    kv.pushpull(3, mx.nd.ones((4,)), out=out)   # waits for rank 1 forever
    out.wait_to_read()
    return 0
sys.exit(main())
"""


def test_hand_written_worker_failure_ends_the_job(tmp_path):
    """A worker written with plain MXNet (no gluonpose helper, ``sys.exit(main())``) that
    raises on one rank: before, the job hung until the launcher's timeout (forever without
    one); the launcher now runs Python workers through gluonpose.dist.worker, so the job ends at
    once with the error named."""
    tag = uuid.uuid4().hex
    script = tmp_path / "raw_worker.py"
    script.write_text(_RAW_WORKER)
    start = time.monotonic()
    try:
        res = subprocess.run([sys.executable, LAUNCHER, "-n", "2", "-s", "1", "--timeout", "100",
                              "--", sys.executable, str(script)], env=_tagged_env(tag),
                             cwd=str(tmp_path), timeout=120, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        elapsed = time.monotonic() - start
        out = res.stdout.decode()
        assert res.returncode == 1, out[-3000:]
        assert re.search(r"worker\d \(worker on 127.0.0.1\) failed with exit code 1: "
                         r"RuntimeError: hand-written worker failed on rank 1", out), out[-3000:]
        assert "timeout" not in out
        assert elapsed < 60, elapsed
        assert wait_gone(tag, 10) == []
    finally:
        kill_tagged(tag)


_SLEEPER = ("import os, sys, time\n"
            "from gluonpose.dist.kvstore import create_kvstore\n"
            "kv, rank, n = create_kvstore('dist_sync')\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    time.sleep(300)\n"
            "    os._exit(0)\n"
            "path = os.path.join(sys.argv[1], 'w%s.pid' % os.environ['GLUONPOSE_LAUNCH_INDEX'])\n"
            "open(path + '.tmp', 'w').write('%d %d' % (os.getpid(), child))\n"
            "os.replace(path + '.tmp', path)\n"
            "time.sleep(300)\n")


def _wait_for_pidfiles(paths, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(p) for p in paths):
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.1)
    return [int(v) for p in paths for v in open(p).read().split()]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_killed_launcher_leaves_no_process(tmp_path, sig):
    """SIGKILL (nothing can be cleaned up by the launcher) or SIGHUP (a closed terminal) of the
    launcher ends scheduler, server, workers and the workers' forked children."""
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, LAUNCHER, "-n", "2", "-s", "1", "--", sys.executable,
                             "-c", _SLEEPER, str(tmp_path)], env=_tagged_env(tag), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        pids = _wait_for_pidfiles([str(tmp_path / "w0.pid"), str(tmp_path / "w1.pid")], proc)
        before = tagged_pids(tag)
        assert set(pids) <= set(before) and len(before) >= 1 + 1 + 1 + 4, before
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
        assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGHUP)
        assert wait_gone(tag, 15) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_tagged(tag)


@pytest.mark.parametrize("role", ["server", "scheduler"])
def test_killed_server_or_scheduler_stops_the_job(tmp_path, role):
    """kill -9 of the server or the scheduler while the workers run: the launcher names it and
    stops everything (a killed worker: tests/test_distributed.py, the killed fit run)."""
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, LAUNCHER, "-n", "2", "-s", "1", "--", sys.executable,
                             "-c", _SLEEPER, str(tmp_path)], env=_tagged_env(tag), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_pidfiles([str(tmp_path / "w0.pid"), str(tmp_path / "w1.pid")], proc)
        victim = [pid for pid, r in tagged_roles(tag).items() if r == role]
        assert len(victim) == 1, tagged_roles(tag)
        os.kill(victim[0], signal.SIGKILL)
        rc = proc.wait(timeout=30)
        out = proc.stdout.read().decode()
        name = "server0" if role == "server" else "scheduler"
        assert rc == 128 + signal.SIGKILL, out[-3000:]
        assert "%s (%s on 127.0.0.1) was killed by SIGKILL" % (name, role) in out, out[-3000:]
        assert wait_gone(tag, 15) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_tagged(tag)


_FAKE_SSH = """#!%s
# Stand-in for ssh -tt + sshd on this machine: runs the remote command line in a new session
# whose controlling terminal is a pty (as sshd does) and relays its output. When this process
# dies its pty master closes: the kernel hangs up the session (SIGHUP), as when sshd loses the
# connection.
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp("bash", ["bash", "-c", sys.argv[-1]])
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    os.write(1, data)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF)
"""


def test_ssh_launcher_killed_hangs_up_remote_commands(tmp_path):
    """ssh launcher, launcher SIGKILLed: the local ssh clients die with it and the remote
    commands (plain ones here, without gluonpose's parent watcher) are hung up with their
    connection's terminal."""
    tag = uuid.uuid4().hex
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(_FAKE_SSH % sys.executable)
    os.chmod(bindir / "ssh", 0o755)
    hostfile = tmp_path / "hosts"
    hostfile.write_text("127.0.0.1\n")
    worker = ("import os, sys, time\n"
              "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
              "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
              "time.sleep(300)\n")
    env = _tagged_env(tag, PATH=str(bindir) + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen([sys.executable, LAUNCHER, "-n", "1", "-s", "1", "-H", str(hostfile),
                             "--scheduler-host", "127.0.0.1", "--env", "GLUONPOSE_TEST_TAG=" + tag,
                             "--server-command", "%s -c 'import mxnet'" % sys.executable, "--",
                             sys.executable, "-c", worker, str(tmp_path / "w0.pid")],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        remote_worker = _wait_for_pidfiles([str(tmp_path / "w0.pid")], proc)[0]
        assert remote_worker in tagged_pids(tag)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_gone(tag, 15) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_tagged(tag)
