"""Parse device specifications such as ``--gpus 0-3,6`` into MXNet contexts."""
import os
import re

import mxnet as mx

from ..errors import ContextError

__all__ = ["parse_device_ids", "get_contexts", "check_gpus_available"]

_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_device_ids(spec):
    """Parse a GPU id spec into a sorted-as-written list of ints.

    Accepted forms: ``''`` / ``None`` / ``'cpu'`` (no GPU -> ``[]``), ``'3'``, ``'0,1,2,3'``,
    ``'0-7'`` (inclusive range), and mixtures such as ``'0-3,6'``. Whitespace around items is
    ignored. Ids keep the order in which they are written.

    Raises :class:`~gluonpose.errors.ContextError` (a ValueError) naming the offending spec on empty
    items (``'1,,2'``), reversed ranges (``'3-1'``), negative or non-integer ids (``'-1'``, ``'a'``,
    ``'1.5'``) and duplicates.
    """
    if spec is None:
        return []
    if isinstance(spec, int):
        spec = str(spec)
    if not isinstance(spec, str):
        raise TypeError("GPU spec must be a string such as '0-3,6', got %r" % (spec,))
    text = spec.strip()
    if text == "" or text.lower() == "cpu":
        return []
    ids = []
    for item in text.split(","):
        item = item.strip()
        match = _ITEM.match(item)
        if match is None:
            raise ContextError("malformed GPU spec %r: item %r is not an id ('3') or an "
                               "inclusive range ('0-7')" % (spec, item))
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ContextError("malformed GPU spec %r: range %r runs backwards" % (spec, item))
        ids.extend(range(first, last + 1))
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ContextError("malformed GPU spec %r: GPU ids %s are listed more than once"
                           % (spec, duplicates))
    return ids


_CPUS = re.compile(r"^cpu:(\d+)$")

#: where launchers put a process's index among the processes of its machine
LOCAL_RANK_VARIABLES = ("HOROVOD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                        "SLURM_LOCALID")


def local_rank(environ=None):
    """This process's index on its machine (one process per GPU: ``--gpus local``), from the
    first of :data:`LOCAL_RANK_VARIABLES` that is set; ContextError when none is."""
    env = os.environ if environ is None else environ
    for name in LOCAL_RANK_VARIABLES:
        value = env.get(name, "")
        if value != "":
            if not value.isdigit():
                raise ContextError("--gpus local: %s=%r is not a process index" % (name, value))
            return int(value)
    raise ContextError("--gpus local needs the process's local rank from its launcher (one of %s); "
                       "start it with horovodrun, mpirun or srun" % ", ".join(LOCAL_RANK_VARIABLES))


def get_contexts(spec, check_available=False):
    """Return a list of ``mx.Context`` for a GPU spec; ``[mx.cpu()]`` when it names no GPU.

    ``'cpu:N'`` gives N CPU contexts ``cpu(0) .. cpu(N-1)``: the multi-device code path
    (``split_and_load``, per-device BatchNorm, gradient reduction) on a machine without GPUs.
    ``'local'`` is the one GPU of a process started one per GPU (Horovod): GPU number
    :func:`local_rank`.

    With ``check_available=True`` a :class:`~gluonpose.errors.ContextError` is raised when this MXNet
    build has no CUDA support or an id is not below ``mx.context.num_gpus()`` (the GPUs MXNet sees):
    commands call this first, before any data or network is built.
    """
    match = _CPUS.match(spec.strip().lower()) if isinstance(spec, str) else None
    if match:
        if int(match.group(1)) < 1:
            raise ContextError("malformed device spec %r: cpu:N needs N >= 1" % spec)
        return [mx.cpu(i) for i in range(int(match.group(1)))]
    if isinstance(spec, str) and spec.strip().lower() == "local":
        ids = [local_rank()]
    else:
        ids = parse_device_ids(spec)
    if not ids:
        return [mx.cpu()]
    if check_available:
        check_gpus_available(spec, ids)
    return [mx.gpu(i) for i in ids]


def check_gpus_available(spec, ids):
    """:class:`~gluonpose.errors.ContextError` unless this machine and MXNet build provide GPUs ``ids``."""
    cuda = mx.runtime.Features().is_enabled("CUDA")
    available = mx.context.num_gpus() if cuda else 0
    missing = [i for i in ids if i >= available]
    if missing:
        why = ("this MXNet build is CPU-only (install mxnet-cu112 for GPUs)" if not cuda else
               "ids 0-%d exist" % (available - 1) if available else "this machine has no GPU MXNet can use")
        raise ContextError("--gpus %r asks for GPU id(s) %s but MXNet sees only %d GPU(s): %s; "
                           "--gpus '' runs on the CPU" % (spec, missing, available, why))
