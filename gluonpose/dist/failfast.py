"""A failing distributed worker ends at once: one explicit context around the worker's run.

Why: a worker of a synchronous job that raises (or returns a non-zero status) would otherwise
run the interpreter's normal shutdown, where MXNet's dist kvstore waits in a barrier for the
other workers, which themselves wait for this worker's gradients: the job hangs (until a
launcher's timeout, forever without one). Horovod ranks behave alike in their next collective.

:class:`WorkerRun` is that context::

    with WorkerRun() as run:
        return run.finish(main())

Inside a distributed worker (``DMLC_ROLE=worker``, or a Horovod/MPI/SLURM-launched rank) an
exception leaving the block prints its traceback, a ``SystemExit``/``finish`` with a non-zero
status keeps its code; then stdout/stderr and logging are flushed and the process leaves with
``os._exit`` (no interpreter shutdown, so no barrier). The launcher sees the exit code, names the
worker and its last output line, and stops the others. Status 0 and a normal end are unchanged.
Outside a distributed worker the context does nothing.

No global is patched: ``sys.exit`` and ``sys.excepthook`` stay as they are. Any script can be
run inside the context by ``python -m gluonpose.dist.worker script.py ...`` (what the launchers
do for Python commands).

:func:`watch_parent` makes a launched worker die with its launcher (see
:mod:`gluonpose.dist.launch`).
"""
import logging
import os
import signal
import sys
import threading
import time
import traceback

__all__ = ["WorkerRun", "in_distributed_worker", "flush_and_exit", "watch_parent"]

#: variables that mark a process as one rank of a multi-process job
_RANK_VARIABLES = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")

_STATE = {}


def in_distributed_worker(environ=None):
    """True in a worker of a ps-lite job (``DMLC_ROLE=worker``) or a Horovod/MPI rank."""
    env = os.environ if environ is None else environ
    return env.get("DMLC_ROLE") == "worker" or any(v in env for v in _RANK_VARIABLES)


def flush_and_exit(code):
    """Flush what the process wrote and leave without the interpreter's shutdown."""
    try:
        logging.shutdown()
    except Exception:   # noqa: BLE001 - best effort while dying
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:   # noqa: BLE001
            pass
    os._exit(code)


def _exit_status(code):
    """The process exit status of ``sys.exit(code)`` (message codes print and give 1)."""
    if code is None:
        return 0
    if isinstance(code, bool) or not isinstance(code, int):
        try:
            sys.stdout.flush()
        except Exception:   # noqa: BLE001
            pass
        print(code, file=sys.stderr)
        return 1
    return code & 0xFF or (1 if code else 0)


class WorkerRun:
    """Context for the run of one distributed worker (see the module notes).

    ``active``: None (default) decides from the environment (:func:`in_distributed_worker`);
    True/False forces it. ``exit=os._exit``-like callable for tests.
    """

    def __init__(self, *, active=None, exit=None):
        self.active = in_distributed_worker() if active is None else bool(active)
        self._exit = exit or flush_and_exit
        self.status = None

    def __enter__(self):
        if self.active and os.environ.get("GLUONPOSE_LAUNCHED"):
            watch_parent()
        return self

    def finish(self, status):
        """Record the worker's return status (returned unchanged); a non-zero one ends a
        distributed worker at once when the block is left."""
        self.status = status
        return status

    def __exit__(self, etype, value, tb):
        if not self.active:
            return False
        if etype is None:
            code = _exit_status(self.status)
        elif issubclass(etype, SystemExit):
            code = _exit_status(value.code)
        else:
            try:
                sys.stdout.flush()   # earlier output first, the traceback last
            except Exception:   # noqa: BLE001
                pass
            traceback.print_exception(etype, value, tb)
            code = 130 if issubclass(etype, KeyboardInterrupt) else 1
        if code:
            self._exit(code)
        return False


def watch_parent(poll_s=0.25):
    """End this process (and its process group, when it leads it) once its parent is gone.

    A daemon thread polls ``os.getppid()``; it runs while the main thread blocks in a
    collective (those release the GIL). Processes forked from here on (DataLoader workers) get
    ``PR_SET_PDEATHSIG`` = SIGKILL on Linux, so they die with this process. A worker never
    outlives a launcher killed with SIGKILL, or (ssh) a dropped connection. Idempotent.
    """
    from .launch import parent_death_signal_available, set_parent_death_signal
    if _STATE.get("watch_parent"):
        return
    _STATE["watch_parent"] = True
    parent = os.getppid()
    if hasattr(os, "register_at_fork") and parent_death_signal_available():
        os.register_at_fork(after_in_child=set_parent_death_signal)

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        try:
            sys.stderr.write("parent process %d is gone: exiting\n" % parent)
            sys.stderr.flush()
        except Exception:   # noqa: BLE001
            pass
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="gluonpose-watch-parent", daemon=True).start()
