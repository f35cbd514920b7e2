"""Multi-machine data-parallel helpers on MXNet's ps-lite KVStore.

Facts this module is built around (MXNet 1.9.1):

* ``dist_sync`` SUMS gradients over workers, so the optimizer must normalise by the global
  batch: ``trainer.step(global_batch_size(per_worker, num_workers))``.
* With the default ``update_on_kvstore=True`` the optimizer lives on the servers and trainer
  states cannot be saved; :func:`make_trainer` therefore uses ``update_on_kvstore=False`` for
  synchronous dist kvstores (``dist_async`` requires ``True``).
* On CPU the dist kvstore uses the pushed array itself as its send/receive buffer, and ps-lite
  needs plain (default-layout) memory. After a forward pass with oneDNN (MKLDNN) a parameter may
  hold oneDNN-layout data: Gluon's Trainer initialises its keys with ``kv.broadcast(param)``,
  so rank 0 then pulls into that parameter and fails ("We can't generate TBlob for MKLDNN
  data"), never inits the remaining keys, and the server aborts with "init N first" on
  another worker's pull (8 of 8 tries in issue 10). :func:`make_trainer` and the helpers below
  therefore hand the kvstore default-layout copies only, and copy the result into the
  parameters.
* ``kv.init`` is not ordered with a later pull: rank 0 queues its init push and waits for it
  with ``WaitToWrite``, which (``ThreadedEngine::WaitForVar``) waits for pending *writes* only,
  not for that push (a read), before the init barrier. Every init here is therefore followed by
  an engine wait (on rank 0 the pushes are then acknowledged by the servers) and a barrier
  before anything is pulled.
* Every worker must run the same number of steps or ``dist_sync`` hangs: :class:`ShardSampler`
  pads every part to the same length.

The helpers :func:`broadcast_parameters` and :func:`allreduce_scalars` use kvstore integer keys
in a reserved range (well above the Trainer's keys ``0..num_params-1`` and below the value where
MXNet's ``key * 9973`` server hash would overflow). They rely on the servers holding no
optimizer (true for trainers made by :func:`make_trainer` with a sync kvstore). Which keys were
initialised is recorded on the kvstore object itself (attribute ``_gluonpose_keys``).

Horovod (``train.kvstore: horovod``) is the second engine: :func:`create_kvstore` returns a
:class:`gluonpose.dist.horovod.HorovodStore` and every helper here dispatches to it, so the
training loop is the same for both (gradients summed over ranks, ``trainer.step(global_batch)``).

A failing worker must end at once rather than wait in a collective: run it inside
:class:`gluonpose.dist.failfast.WorkerRun` (the training command and
``python -m gluonpose.dist.worker`` do). Under the launcher (``GLUONPOSE_LAUNCHED`` set),
:func:`create_kvstore` also makes the worker die with the process that started it.
"""
import logging
import os
import zlib

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..config import KVSTORES
from ..errors import CheckpointError, ConfigError, LaunchError
from .arrays import plain_copy
from .failfast import watch_parent

LOG = logging.getLogger(__name__)

__all__ = ["create_kvstore", "is_distributed", "barrier", "broadcast_parameters",
           "make_trainer", "check_compression", "compression_threshold", "global_batch_size",
           "allreduce_scalars", "allgather_scalars",
           "check_same_start_epoch", "broadcast_trainer_states", "is_horovod"]

_BROADCAST_KEY_BASE = 100000   # + parameter index
_COMPRESSED_BROADCAST_BASE = 110000   # + call x number of parameters + index
_SCALAR_KEY_BASE = 150000      # + hash of the scalar names
_SCALAR_KEY_SPAN = 50000


def is_horovod(kv):
    """True for the Horovod engine (:class:`gluonpose.dist.horovod.HorovodStore`)."""
    return getattr(kv, "type", None) == "horovod" and not isinstance(kv, mx.kv.KVStore)


def is_distributed(kv):
    """True for an ``mx.kv.KVStore`` of a ``dist_*`` type and for the Horovod engine."""
    return (isinstance(kv, mx.kv.KVStore) and "dist" in kv.type) or is_horovod(kv)


def create_kvstore(name, bigarray_bound=None):
    """Create the engine named by ``train.kvstore`` / ``--kvstore``.

    ``bigarray_bound``: arrays with more elements are split evenly over all servers (MXNet's
    ``MXNET_KVSTORE_BIGARRAY_BOUND``, read when a dist kvstore is created; smaller arrays go
    whole to one server chosen by key). None keeps MXNet's default (1,000,000); a value the
    user put in the environment wins (it is what the process was started with).

    Returns ``(kv, rank, num_workers)``: ``kv`` is ``None`` for ``None``/``''``/``'none'``
    (single context, no kvstore); the plain name for ``'local'``/``'device'`` (the Trainer
    creates those itself); an ``mx.kv.KVStore`` for ``dist_*`` names, whose rank and worker
    count come from ps-lite; a :class:`~gluonpose.dist.horovod.HorovodStore` for ``'horovod'``
    (rank and size from Horovod). A ``dist_*`` name outside a launched job (no ``DMLC_ROLE``)
    raises a LaunchError pointing at ``scripts/launch_dist.py`` instead of letting ps-lite
    abort; ``'horovod'`` without the package raises one naming the install command.

    When started by the launcher, the worker dies with it (:func:`~.failfast.watch_parent`).
    """
    if isinstance(name, mx.kv.KVStore) or is_horovod(name):
        return name, name.rank, name.num_workers
    if name is None or name == "" or str(name).lower() == "none":
        return None, 0, 1
    if name not in KVSTORES:
        raise ConfigError("unknown kvstore %r; expected one of %s or None"
                          % (name, ", ".join(KVSTORES)))
    if name == "horovod":
        from .horovod import HorovodStore
        kv = HorovodStore.create()
        _LIVE.setdefault("kvstores", []).append(kv)
        return kv, kv.rank, kv.num_workers
    if not name.startswith("dist"):
        return name, 0, 1
    if "DMLC_ROLE" not in os.environ:
        raise LaunchError("kvstore %r needs the DMLC_* environment of a distributed job; start "
                          "the script through scripts/launch_dist.py" % name)
    if os.environ.get("GLUONPOSE_LAUNCHED"):
        watch_parent()
    if bigarray_bound is not None and "MXNET_KVSTORE_BIGARRAY_BOUND" not in os.environ:
        if int(bigarray_bound) != bigarray_bound or bigarray_bound < 1:
            raise ValueError("kvstore big-array bound must be a positive integer, got %r"
                             % (bigarray_bound,))
        os.environ["MXNET_KVSTORE_BIGARRAY_BOUND"] = str(int(bigarray_bound))
    kv = mx.kv.create(name)
    # Held until exit: a kvstore freed early (e.g. by the garbage collector while an error is
    # being reported) would wait in ps-lite's shutdown barrier right there.
    _LIVE.setdefault("kvstores", []).append(kv)
    return kv, kv.rank, kv.num_workers


_LIVE = {}


def barrier(kv):
    """Block until every worker reaches this point; a no-op without a dist kvstore."""
    if is_distributed(kv):
        kv._barrier()   # HorovodStore has one too


def global_batch_size(per_worker, num_workers):
    """Samples per optimizer step over all workers (``dist_sync`` sums gradients)."""
    for label, value in (("per_worker", per_worker), ("num_workers", num_workers)):
        if int(value) != value or value < 1:
            raise ValueError("%s must be a positive integer, got %r" % (label, value))
    return int(per_worker) * int(num_workers)


def _param_list(params):
    """Parameters of a ParameterDict / dict / list, in their given (deterministic) order."""
    if hasattr(params, "values"):
        params = list(params.values())
    params = list(params)
    for p in params:
        if not isinstance(p, gluon.Parameter):
            raise TypeError("expected gluon Parameters, got %r" % (p,))
    return params


def _require_sync(kv, what):
    if "async" in kv.type:
        raise ValueError("%s needs a synchronous dist kvstore (pushes are summed), got %r"
                         % (what, kv.type))


def _init_keys(kv, keys, values):
    """``kv.init`` followed by what makes it safe to pull: all engine work done (on rank 0 the
    init pushes are then acknowledged by the servers) and a barrier. See the module notes."""
    mx.nd.waitall()
    kv.init(keys, values)
    mx.nd.waitall()
    kv._barrier()


def _ensure_keys(kv, keys, templates):
    """Init the not-yet-initialised ``keys`` of ``kv`` (collective), checking shapes on reuse."""
    registry = getattr(kv, "_gluonpose_keys", None)
    if registry is None:
        registry = {}
        kv._gluonpose_keys = registry
    new_keys, new_values = [], []
    for key, arr in zip(keys, templates):
        signature = (tuple(arr.shape), np.dtype(arr.dtype).name)
        if key in registry:
            if registry[key] != signature:
                raise RuntimeError("kvstore key %d was used for %s, now for %s"
                                   % (key, registry[key], signature))
            continue
        new_keys.append(key)
        new_values.append(mx.nd.zeros(arr.shape, dtype=arr.dtype))
    if new_keys:
        _init_keys(kv, new_keys, new_values)
        for key, arr in zip(new_keys, new_values):
            registry[key] = (tuple(arr.shape), np.dtype(arr.dtype).name)


def broadcast_parameters(params, kv):
    """Overwrite every worker's parameter values (all context copies) with rank 0's, then barrier.

    Works as a sum-allreduce in which rank 0 contributes its values and the others zeros, so
    it may be called any number of times. A no-op without a dist kvstore. Parameters must be
    initialised (no deferred shapes): run one forward pass or give ``in_units``/``in_channels``.
    """
    if not is_distributed(kv):
        return
    if is_horovod(kv):
        kv.broadcast_parameters(_param_list(params))
        return
    _require_sync(kv, "broadcast_parameters")
    params = _param_list(params)
    datas = []
    for p in params:
        try:
            datas.append(p.list_data())
        except gluon.parameter.DeferredInitializationError:
            raise RuntimeError("parameter %s is not initialised yet (deferred shape); run a "
                               "forward pass before broadcast_parameters" % p.name)
    keys = [_BROADCAST_KEY_BASE + i for i in range(len(params))]
    if keys and keys[-1] >= _SCALAR_KEY_BASE:
        raise ValueError("too many parameters (%d) for the reserved broadcast key range"
                         % len(params))
    if compression_threshold(kv) is not None:
        _broadcast_by_init(kv, datas)
        return
    _ensure_keys(kv, keys, [d[0] for d in datas])
    rank0 = kv.rank == 0
    for key, data in zip(keys, datas):
        contrib = plain_copy(data[0]) if rank0 else mx.nd.zeros(data[0].shape,
                                                                   ctx=data[0].context,
                                                                   dtype=data[0].dtype)
        kv.pushpull(key, contrib, out=data)
    mx.nd.waitall()
    kv._barrier()


def check_compression(compression):
    """``None``/``'none'`` -> None; ``{'type': '2bit', 'threshold': t > 0}`` -> that dict (as
    MXNet's ``set_gradient_compression`` takes it); anything else: ValueError."""
    if compression is None or compression == "none":
        return None
    if (not isinstance(compression, dict) or compression.get("type") != "2bit"
            or set(compression) != {"type", "threshold"}):
        raise ValueError("gradient compression must be None or {'type': '2bit', 'threshold': t}, "
                         "got %r" % (compression,))
    t = compression["threshold"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf"):
        raise ValueError("2bit gradient compression needs a positive threshold, got %r" % (t,))
    return {"type": "2bit", "threshold": float(t)}


def compression_threshold(kv):
    """The 2-bit threshold :func:`make_trainer` set on ``kv``, or None."""
    return getattr(kv, "_gluonpose_compression", None)


class _PushThenPullTrainer(gluon.Trainer):
    """A Trainer whose gradient all-reduce is a push and then a pull per parameter (priority
    ``-index``, as Gluon's), not a pushpull: MXNet 1.9's dist kvstore refuses pushpull under
    gradient compression ("Compression not supported with PushPull"). Sync kvstores with
    ``update_on_kvstore=False`` only (what :func:`make_trainer` builds)."""

    def _allreduce_grads(self):
        if not self._kvstore:
            return
        for i, param in enumerate(self._params):
            if param.grad_req != "null":
                grads = param.list_grad()
                self._kvstore.push(i, grads, priority=-i)
                self._kvstore.pull(i, grads, priority=-i, ignore_sparse=self._distributed)


def _broadcast_by_init(kv, datas):
    """Broadcast under gradient compression (where a push would be quantized): fresh keys are
    initialised with rank 0's values (an init push is never compressed, and only rank 0's is
    sent), then every worker pulls them."""
    count = getattr(kv, "_gluonpose_broadcasts", 0)
    base = _COMPRESSED_BROADCAST_BASE + count * len(datas)
    if base + len(datas) > _SCALAR_KEY_BASE:
        raise RuntimeError("broadcast_parameters called too often under gradient compression")
    kv._gluonpose_broadcasts = count + 1
    keys = list(range(base, base + len(datas)))
    _init_keys(kv, keys, [plain_copy(d[0]) for d in datas])
    pulled = [mx.nd.zeros(d[0].shape, ctx=d[0].context, dtype=d[0].dtype) for d in datas]
    kv.pull(keys, out=pulled)
    for buf, data in zip(pulled, datas):
        for arr in data:
            buf.copyto(arr)
    mx.nd.waitall()
    kv._barrier()


def make_trainer(params, optimizer, optimizer_params=None, kvstore=None, compression=None):
    """Build a ``gluon.Trainer`` that can save its states in distributed mode.

    ``kvstore``: ``None``, a name (``'local'``, ``'device'``) or a KVStore from
    :func:`create_kvstore`. For synchronous dist kvstores the trainer uses
    ``update_on_kvstore=False`` (states live on the workers; ``trainer.save_states`` works) and
    is initialised eagerly: its kvstore keys are created (all at once, then engine wait + barrier,
    so no pull can reach a server before rank 0's init push: see the module notes), rank 0's
    weights are pulled into every worker and a barrier is passed before this returns. It may be
    called right after :func:`create_kvstore` or a forward pass (pending engine work is fine).
    ``dist_async`` keeps ``update_on_kvstore=True`` (MXNet requires it; states cannot be saved).
    Call ``trainer.step(global_batch_size(per_worker, num_workers))``.

    ``compression``: None, or ``{'type': '2bit', 'threshold': t}`` for MXNet's 2-bit gradient
    compression of the pushes (dist kvstores only; it is set before any key is created, as MXNet
    requires; elsewhere it is ignored with a warning). Every later push through that kvstore is
    quantized, so :func:`broadcast_parameters` and :func:`allreduce_scalars` then use
    transports that survive it (init + pull; values sent as bits of exactly 0 or t).
    """
    compression = check_compression(compression)
    if compression and not is_distributed(kvstore):
        LOG.warning(
            "gradient compression applies to dist kvstores only; not used with kvstore %r",
            getattr(kvstore, "type", kvstore))
        compression = None
    if isinstance(kvstore, str) and kvstore == "horovod":
        raise ConfigError(
            "make_trainer(kvstore='horovod'): MXNet 1.9's gluon.Trainer accepts that name but, with "
            "one context per process, creates no kvstore and trains without any gradient sync; "
            "create the engine with create_kvstore('horovod') and pass that object")
    if is_horovod(kvstore):
        if compression:
            raise ConfigError("train.gradient_compression %r is a ps-lite (dist_*) option; "
                              "horovod sends full fp32 gradients" % compression["type"])
        return kvstore.make_trainer(params, optimizer, optimizer_params)
    if isinstance(kvstore, str) and kvstore.startswith("dist"):
        raise ValueError("make_trainer needs the KVStore object for %r: create it once with "
                         "create_kvstore(%r) and pass that" % (kvstore, kvstore))
    if not is_distributed(kvstore):
        return gluon.Trainer(params, optimizer, optimizer_params, kvstore=kvstore)
    deferred = [p.name for p in _param_list(params) if p._deferred_init]
    if deferred:
        raise RuntimeError("parameters %s are not initialised yet (deferred shape); run a "
                           "forward pass before make_trainer in distributed mode" % deferred[:5])
    update_on_kvstore = "async" in kvstore.type
    cls = _PushThenPullTrainer if compression else gluon.Trainer
    trainer = cls(params, optimizer, optimizer_params, kvstore=kvstore,
                  update_on_kvstore=update_on_kvstore, compression_params=compression)
    _init_kvstore_eagerly(trainer, kvstore, compression)
    return trainer


def _init_kvstore_eagerly(trainer, kvstore, compression):
    """Private Trainer hooks (MXNet 1.9): create the kvstore now instead of in step 1, and do the
    work of ``Trainer._init_params`` (``kv.broadcast`` per key = init + immediate pull, which
    races) ourselves: init every key, wait + barrier, then pull rank 0's values."""
    trainer._init_kvstore()   # sets the compression (before any key of it is created)
    if compression:
        kvstore._gluonpose_compression = compression["threshold"]
    params = [p for p in trainer._params_to_init]
    sparse = [p.name for p in params if p._stype != "default"]
    if sparse:
        raise ValueError("make_trainer supports dense parameters only, got sparse %s" % sparse[:5])
    keys = [trainer._param2idx[p.name] for p in params]
    datas = [p.list_data() for p in params]
    if keys:
        values = [plain_copy(d[0]) for d in datas]
        _init_keys(kvstore, keys, values)
        pulled = [mx.nd.zeros(v.shape, ctx=v.context, dtype=v.dtype) for v in values]
        kvstore.pull(keys, out=pulled)
        for buf, data in zip(pulled, datas):
            for arr in data:
                buf.copyto(arr)
        mx.nd.waitall()
    trainer._params_to_init = []
    kvstore._barrier()


def _scalar_key(names):
    digest = zlib.crc32("\x1f".join(names).encode("utf-8"))
    return _SCALAR_KEY_BASE + digest % _SCALAR_KEY_SPAN


def _split_f64(values):
    """(n,) float64 -> (n, 3) float32 parts whose float64 sum restores each value exactly."""
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > np.finfo(np.float32).max):
        raise ValueError("allreduce_scalars needs finite values within float32 range, got %s"
                         % values.tolist())
    hi = values.astype(np.float32)
    mid = (values - hi).astype(np.float32)
    lo = (values - hi - mid).astype(np.float32)
    return np.stack([hi, mid, lo], axis=1)


def allreduce_scalars(kv, values):
    """Sum a dict of floats over all workers; returns a new dict with the same names.

    Without a dist kvstore it returns the values unchanged (as floats). Every worker must call
    it with the same names (in any order). The dist kvstore moves float32 only (float64 arrays
    are rounded on the way), so each worker's float64 values are sent exactly as three float32
    parts in the worker's own slot (an all-gather) and summed in float64 in rank order: every
    worker gets the same, float64-accurate totals. Values must be finite.
    """
    gathered = allgather_scalars(kv, values)
    names = sorted(values)
    return {n: float(np.sum([g[n] for g in gathered], dtype=np.float64)) for n in names}


def allgather_scalars(kv, values):
    """Every worker's dict of floats, as a list in rank order (the same list on every worker).

    Without a dist kvstore: ``[values]`` (as floats). Same rules as :func:`allreduce_scalars`
    (same names on every worker, finite values, exact float64 transport)."""
    names = sorted(values)
    for name in names:
        if not isinstance(name, str):
            raise TypeError("allreduce_scalars needs string names, got %r" % (name,))
    local = np.array([float(values[n]) for n in names], dtype=np.float64)
    if not is_distributed(kv) or not names:
        return [dict(zip(names, local.tolist()))]
    if is_horovod(kv):
        return [dict(zip(names, row)) for row in kv.allgather_f64(local, names).tolist()]
    _require_sync(kv, "allgather_scalars")
    threshold = compression_threshold(kv)
    if threshold is not None:
        return [dict(zip(names, row)) for row in _allgather_bits(kv, names, local, threshold)]
    slots = np.zeros((kv.num_workers, len(names), 3), dtype=np.float32)
    slots[kv.rank] = _split_f64(local)
    key = _scalar_key(names)
    arr = mx.nd.array(slots, dtype=np.float32)
    _ensure_keys(kv, [key], [arr])
    out = mx.nd.zeros_like(arr)
    kv.pushpull(key, arr, out=out)
    gathered = out.asnumpy().astype(np.float64).sum(axis=2)   # (num_workers, n) exact values
    return [dict(zip(names, row)) for row in gathered.tolist()]


def _allgather_bits(kv, names, local, threshold):
    """All-gather through a 2-bit compressing kvstore: each worker sends the 96 bits of each
    value's three float32 parts as elements of exactly 0 or ``threshold`` in its own slot (the
    quantizer passes those unchanged and leaves no residual); the pulled sums are decoded back.
    Returns a (num_workers, n) float64 array."""
    parts = _split_f64(local)                                         # (n, 3) float32
    bits = np.unpackbits(parts.view(np.uint8).reshape(-1))           # (n * 3 * 32,)
    slots = np.zeros((kv.num_workers, bits.size), dtype=np.float32)
    slots[kv.rank] = bits.astype(np.float32) * np.float32(threshold)
    key = _scalar_key(names + ["__2bit__"])
    arr = mx.nd.array(slots, dtype=np.float32)
    _ensure_keys(kv, [key], [arr])
    out = mx.nd.zeros_like(arr)
    kv.push(key, arr)   # no pushpull under compression (MXNet 1.9)
    kv.pull(key, out=out)
    ratio = out.asnumpy() / np.float32(threshold)
    decoded = np.rint(ratio)
    if np.abs(ratio - decoded).max() > 0.25 or decoded.min() < 0 or decoded.max() > 1:
        raise RuntimeError("scalar all-gather through the compressing kvstore came back garbled")
    raw = np.packbits(decoded.astype(np.uint8), axis=1).view(np.float32)
    return raw.reshape(kv.num_workers, len(names), 3).astype(np.float64).sum(axis=2)


def check_same_start_epoch(kv, epoch, work_dir=None):
    """Raise CheckpointError on every worker unless all workers start at the same ``epoch``.

    ``epoch`` is the number of epochs this worker's checkpoint says are done (0 without one).
    With work dirs that are not shared between machines, ``--resume`` could otherwise start one
    rank from scratch, broadcast its weights over the resumed ones, and then hang on unequal
    step counts. A no-op without a dist kvstore.
    """
    if not is_distributed(kv):
        return
    epochs = [int(round(g["start_epoch"]))
              for g in allgather_scalars(kv, {"start_epoch": float(epoch)})]
    if len(set(epochs)) > 1:
        raise CheckpointError(
            "--resume: the workers would start from different epochs (%s); every rank reads the "
            "checkpoints in its own train.work_dir (this is rank %d: %s). Give all ranks the same "
            "checkpoints (a shared work_dir, or copy the newest epoch_*.params/.states/.json and "
            "latest.json to every machine), or start all from scratch without --resume."
            % (", ".join("rank %d: %s" % (r, ("epoch %d" % e) if e else "no checkpoint")
                         for r, e in enumerate(epochs)), kv.rank, work_dir or "?"))



def broadcast_trainer_states(trainer, kv):
    """Give every worker rank 0's optimizer states (e.g. Adam's moments and update counts after
    ``--resume``). Horovod: broadcast from rank 0. ps-lite: every rank has loaded the same
    checkpoint (:func:`check_same_start_epoch` made sure of the epoch), so this checks that the
    states agree (a digest all-gathered) and raises CheckpointError naming the ranks that
    differ. A no-op without a distributed engine."""
    if not is_distributed(kv):
        return
    if is_horovod(kv):
        kv.broadcast_trainer_states(trainer)
        return
    digest = _states_digest(trainer)
    gathered = allgather_scalars(kv, {"states_crc": float(digest)})
    crcs = [int(g["states_crc"]) for g in gathered]
    if len(set(crcs)) > 1:
        raise CheckpointError(
            "--resume: the workers loaded different optimizer states (rank %s differ from rank 0); "
            "give every rank the same checkpoint files" % ", ".join(
                str(r) for r, c in enumerate(crcs) if c != crcs[0]))


def _states_digest(trainer):
    """CRC32 of the trainer's optimizer states (their values, in key order)."""
    crc = 0
    for updater in getattr(trainer, "_updaters", [])[:1]:
        for key in sorted(updater.states):
            state = updater.states[key]
            for arr in (state if isinstance(state, (tuple, list)) else (state,)):
                if arr is not None:
                    crc = zlib.crc32(np.ascontiguousarray(arr.asnumpy()).tobytes(), crc)
    return crc
