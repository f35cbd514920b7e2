"""CPU threads per MXNet context, chosen before MXNet is imported (this module never imports it).

Each CPU context (``--gpus cpu:N``) gets its own engine worker running its own operators, each
with ``OMP_NUM_THREADS`` OpenMP threads, so ``OMP_NUM_THREADS`` = cores oversubscribes the
machine N times (issue 12: cpu:2 with 2 threads per context ran at half the speed of 1 thread
per context on 2 cores). The OpenMP runtime reads ``OMP_NUM_THREADS`` once, when MXNet is loaded,
so :func:`configure_threads` must run before ``import mxnet`` in the process (the training CLI
does; scripts/launch_dist.py sets the variable for the processes it starts).

Rule: unless the user set ``OMP_NUM_THREADS`` or one of MXNet's thread variables, each process
gets ``max(1, cores // CPU contexts)`` threads, where "cores" is the CPU affinity of the process,
or the share the launcher gave this worker (``GLUONPOSE_AUTO_THREADS``: cores // workers on the
host). GPU contexts do not divide the budget.
"""
import os
import re
import sys

__all__ = ["USER_THREAD_VARS", "available_cores", "count_cpu_contexts", "threads_for",
           "configure_threads", "describe_threads", "AUTO_MARK"]

#: Variables by which a user chooses threads (then gluonpose changes nothing).
USER_THREAD_VARS = ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "MXNET_CPU_WORKER_NTHREADS",
                    "MXNET_ENGINE_TYPE")
#: Set next to an OMP_NUM_THREADS that gluonpose chose: the core budget it was chosen from.
AUTO_MARK = "GLUONPOSE_AUTO_THREADS"
_NOTE = "GLUONPOSE_THREADS"
_CPUS = re.compile(r"^cpu:(\d+)$")


def available_cores():
    """Cores this process may run on (its CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def count_cpu_contexts(spec):
    """CPU contexts a ``--gpus``/``train.gpus`` spec gives: ``'cpu:N'`` -> N, GPU ids -> 0,
    ``''``/``'cpu'``/None -> 1 (the same forms :func:`gluonpose.engine.context.get_contexts`
    reads; malformed specs count as 1 and are reported there)."""
    text = "" if spec is None else str(spec).strip().lower()
    match = _CPUS.match(text)
    if match:
        return max(1, int(match.group(1)))
    if text in ("", "cpu"):
        return 1
    return 0


def threads_for(cores, cpu_contexts):
    """OpenMP threads per context: the cores shared by the CPU contexts, at least 1."""
    return max(1, int(cores) // max(1, int(cpu_contexts)))


def user_thread_settings(env):
    """The thread variables in ``env`` that the user set (not gluonpose)."""
    names = [n for n in USER_THREAD_VARS if n in env]
    if AUTO_MARK in env and "OMP_NUM_THREADS" in names:
        names.remove("OMP_NUM_THREADS")
    return names


def configure_threads(gpus_spec, env=None, cores=None):
    """Set ``OMP_NUM_THREADS`` in ``env`` (default ``os.environ``) for the contexts of
    ``gpus_spec``, unless the user chose threads; returns the one-line description that is also
    stored for :func:`describe_threads` (the training log prints it).

    Must be called before MXNet is imported in this process when ``env`` is ``os.environ``;
    afterwards it changes nothing and says so.
    """
    env = os.environ if env is None else env
    user = user_thread_settings(env)
    if user:
        note = "%s set by the user (gluonpose does not change threads)" % ", ".join(
            "%s=%s" % (n, env[n]) for n in user)
    elif env is os.environ and "mxnet" in sys.modules:
        note = ("OMP_NUM_THREADS=%s: MXNet was imported before gluonpose could choose threads"
                % env.get("OMP_NUM_THREADS", "unset"))
    else:
        contexts = count_cpu_contexts(gpus_spec)
        if AUTO_MARK in env:
            budget, source = int(env[AUTO_MARK]), "this worker's share of the host's cores"
        else:
            budget = available_cores() if cores is None else int(cores)
            source = "cores"
        per = threads_for(budget, contexts) if contexts else budget
        env["OMP_NUM_THREADS"] = str(per)
        env[AUTO_MARK] = str(budget)
        note = ("OMP_NUM_THREADS=%d per context (chosen: %d %s / %d CPU context%s; set "
                "OMP_NUM_THREADS to choose yourself)" % (per, budget, source, contexts,
                                                          "" if contexts == 1 else "s"))
    env[_NOTE] = note
    return note


def describe_threads(env=None):
    """What :func:`configure_threads` chose, or the thread variables as they are."""
    env = os.environ if env is None else env
    if _NOTE in env:
        return env[_NOTE]
    return "OMP_NUM_THREADS=%s (not chosen by gluonpose)" % env.get("OMP_NUM_THREADS", "unset")
