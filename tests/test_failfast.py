"""Tests of gluonpose/dist/failfast.py and gluonpose/dist/worker.py: the explicit fail-fast
context of a distributed worker (no patched globals)."""
import os
import subprocess
import sys

import pytest

from gluonpose.dist.failfast import WorkerRun, in_distributed_worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Exit(Exception):
    pass


def _run(body, active=True):
    codes = []

    def fake_exit(code):
        codes.append(code)
        raise _Exit(code)
    try:
        with WorkerRun(active=active, exit=fake_exit) as run:
            body(run)
    except _Exit:
        pass
    return codes


def test_environment_decides():
    assert in_distributed_worker({"DMLC_ROLE": "worker"})
    assert not in_distributed_worker({"DMLC_ROLE": "server"})
    assert in_distributed_worker({"HOROVOD_RANK": "0"})
    assert in_distributed_worker({"OMPI_COMM_WORLD_RANK": "3"})
    assert not in_distributed_worker({})


def test_exit_codes():
    """Exceptions -> 1 (KeyboardInterrupt 130), non-zero statuses kept, zero and normal ends
    leave as usual; globals untouched."""
    hook, exit_fn = sys.excepthook, sys.exit

    def boom(run):
        raise ValueError("x")
    assert _run(boom) == [1]

    def interrupted(run):
        raise KeyboardInterrupt
    assert _run(interrupted) == [130]
    assert _run(lambda run: run.finish(2)) == [2]
    assert _run(lambda run: run.finish(0)) == []
    assert _run(lambda run: run.finish(None)) == []

    def exits(code):
        def body(run):
            sys.exit(code)
        return body
    assert _run(exits(3)) == [3]
    assert _run(exits(256 + 4)) == [4]
    assert _run(exits("message")) == [1]
    with pytest.raises(SystemExit):
        _run(exits(0))
    with pytest.raises(ValueError):   # not a distributed worker: nothing changes
        _run(boom, active=False)
    assert _run(lambda run: run.finish(2), active=False) == []
    assert (sys.excepthook, sys.exit) == (hook, exit_fn)


@pytest.mark.parametrize("form, code", [
    ("script", "raise ValueError('bad input on this rank')\n"),
    ("module", "raise ValueError('bad input on this rank')\n"),
    ("code", "raise ValueError('bad input on this rank')\n"),
])
def test_worker_wrapper_runs_programs_like_python(tmp_path, form, code):
    """``python -m gluonpose.dist.worker`` runs a script / module / -c code as python does
    (``__main__``, argv, path) and, in a worker, ends a failing one with os._exit: the atexit
    handler the program registered never runs (it stands for ps-lite's shutdown barrier)."""
    prog = ("import atexit, sys\n"
            "atexit.register(lambda: print('SHUTDOWN-RAN', flush=True))\n"
            "print('argv', sys.argv[1:], __name__, flush=True)\n" + code)
    (tmp_path / "prog_mod.py").write_text(prog)
    target = {"script": [str(tmp_path / "prog_mod.py")], "module": ["-m", "prog_mod"],
              "code": ["-c", prog]}[form]
    env = dict(os.environ, PYTHONPATH=ROOT, DMLC_ROLE="worker")
    res = subprocess.run([sys.executable, "-m", "gluonpose.dist.worker"] + target + ["a", "b"],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert "argv ['a', 'b'] __main__" in res.stdout
    assert "SHUTDOWN-RAN" not in res.stdout
    assert res.stderr.strip().splitlines()[-1] == "ValueError: bad input on this rank"
    # outside a distributed job: plain python behaviour (atexit runs, exit 1)
    env.pop("DMLC_ROLE")
    res = subprocess.run([sys.executable, "-m", "gluonpose.dist.worker"] + target,
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "SHUTDOWN-RAN" in res.stdout


def test_worker_wrapper_keeps_exit_status(tmp_path):
    (tmp_path / "p.py").write_text("import sys\nsys.exit(main() if False else 5)\n")
    env = dict(os.environ, PYTHONPATH=ROOT, DMLC_ROLE="worker")
    res = subprocess.run([sys.executable, "-m", "gluonpose.dist.worker", str(tmp_path / "p.py")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 5
    (tmp_path / "ok.py").write_text("print('fine')\n")
    res = subprocess.run([sys.executable, "-m", "gluonpose.dist.worker", str(tmp_path / "ok.py")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout == "fine\n"
    res = subprocess.run([sys.executable, "-m", "gluonpose.dist.worker"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "usage:" in res.stderr
