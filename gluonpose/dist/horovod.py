"""Horovod as the second multi-machine engine (``train.kvstore: horovod``).

:class:`HorovodStore` gives Horovod the face of the kvstore objects the rest of gluonpose
uses (``type``, ``rank``, ``num_workers``, ``_barrier``) plus the collectives the helpers of
:mod:`gluonpose.dist.kvstore` dispatch to: parameter and optimizer-state broadcast from rank
0, an exact float64 all-gather of scalars (metrics, checks) and the Trainer.

:class:`HorovodTrainer` is ``horovod.mxnet.DistributedTrainer``'s design (a ``gluon.Trainer``
without kvstore whose ``_allreduce_grads`` all-reduces every gradient through Horovod) with
gluonpose's convention: gradients are **summed** over ranks (``op=Sum``, as ps-lite's
``dist_sync`` does), so ``trainer.step(global_batch)`` normalises by the samples of all ranks
and one process with the same global batch computes the same update. Horovod's own trainer
averages instead (on CPU it divides the rescale factor by the size), which would make the step
size depend on how the batch is split. Several contexts in one process are summed locally
first, then once over the ranks.

Never ``gluon.Trainer(..., kvstore='horovod')``: MXNet 1.9.1 accepts the name but, with one
context per process, creates no kvstore at all and trains without any gradient sync
(:func:`gluonpose.dist.kvstore.make_trainer` refuses that spelling).

Launch with ``horovodrun --gloo -np N -H host1:k,host2:k python scripts/train_mshrnet.py
... train.kvstore=horovod`` (or ``mpirun`` with an MPI build of Horovod, or ``gluonpose-launch
--slurm --engine horovod`` inside a SLURM allocation).
"""
import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import LaunchError
from .failfast import watch_parent
from .arrays import plain_copy

__all__ = ["HorovodStore", "HorovodTrainer", "INSTALL_HINT"]

INSTALL_HINT = ("HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 "
                "HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo "
                "pip install --no-build-isolation 'gluonpose[horovod]' (or: make test, which "
                "installs it)")


def import_horovod():
    """``horovod.mxnet``, or a LaunchError naming how to install it."""
    try:
        import horovod.mxnet as hvd
    except ImportError as err:
        raise LaunchError("train.kvstore 'horovod' needs Horovod built for MXNet (%s); install "
                          "it with: %s" % (err, INSTALL_HINT))
    return hvd


def import_horovod_runner():
    """The parts of ``horovod.runner`` a launcher needs (rendezvous server, slot assignment,
    the variables horovodrun gives each rank), or a LaunchError naming how to install it."""
    try:
        from types import SimpleNamespace
        from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts
        from horovod.runner.gloo_run import create_slot_env_vars
        from horovod.runner.http.http_server import RendezvousServer
    except ImportError as err:
        raise LaunchError("launching horovod ranks needs Horovod (%s); install it with: %s"
                          % (err, INSTALL_HINT))
    return SimpleNamespace(get_host_assignments=get_host_assignments, parse_hosts=parse_hosts,
                           create_slot_env_vars=create_slot_env_vars,
                           RendezvousServer=RendezvousServer)


class HorovodStore:
    """The Horovod engine of one process (see the module notes). Build with :meth:`create`."""

    type = "horovod"

    def __init__(self, hvd):
        self._hvd = hvd
        self.rank = int(hvd.rank())
        self.num_workers = int(hvd.size())
        self.local_rank = int(hvd.local_rank())
        self._calls = 0

    @classmethod
    def create(cls):
        """``hvd.init()`` and the store. The process also dies with the one that started it,
        and so do the processes it forks later (loader workers): ``horovodrun`` killed with
        SIGKILL ends its ranks but not their children (measured here), which would live on."""
        hvd = import_horovod()
        hvd.init()
        watch_parent()
        return cls(hvd)

    def _name(self, what):
        """A name unique per call and equal on every rank (collectives are matched by name)."""
        self._calls += 1
        return "gluonpose.%s.%d" % (what, self._calls)

    def _barrier(self):
        """Every rank reaches this point (a one-element all-reduce, waited for)."""
        self._hvd.allreduce(mx.nd.zeros((1,)), average=None, name=self._name("barrier"),
                            op=self._hvd.Sum).wait_to_read()

    def allgather_f64(self, local, names):
        """(num_workers, n) float64: every rank's ``local`` values, in rank order, exact."""
        del names   # the order is the caller's (sorted names, equal on every rank)
        arr = mx.nd.array(np.asarray(local, dtype=np.float64)[None], dtype="float64")
        out = self._hvd.allgather(arr, name=self._name("allgather"))
        return out.asnumpy().astype(np.float64).reshape(self.num_workers, -1)

    def broadcast_parameters(self, params):
        """Every rank's parameters (all context copies) := rank 0's."""
        for i, p in enumerate(params):
            try:
                data = p.list_data()
            except gluon.parameter.DeferredInitializationError:
                raise RuntimeError("parameter %s is not initialised yet (deferred shape); run a "
                                   "forward pass before broadcast_parameters" % p.name)
            buf = plain_copy(data[0])
            self._hvd.broadcast_(buf, root_rank=0, name=self._name("param%d" % i))
            for arr in data:
                buf.copyto(arr)
        mx.nd.waitall()

    def broadcast_trainer_states(self, trainer):
        """Every rank's optimizer (states, update counts, learning rate) := rank 0's, as
        ``Trainer.load_states`` would set them from rank 0's saved states."""
        updater = trainer._updaters[0]
        blob = updater.get_states(dump_optimizer=True) if self.rank == 0 else None
        blob = self._hvd.broadcast_object(blob, root_rank=0, name=self._name("states"))
        if self.rank != 0:
            for up in trainer._updaters:
                up.set_states(blob)
                up.optimizer = trainer._updaters[0].optimizer
            trainer._optimizer = trainer._updaters[0].optimizer
            trainer._optimizer.param_dict = {i: p for i, p in enumerate(trainer._params)}

    def make_trainer(self, params, optimizer, optimizer_params=None):
        return HorovodTrainer(params, optimizer, optimizer_params, store=self)


class HorovodTrainer(gluon.Trainer):
    """``gluon.Trainer`` whose gradients are summed over the Horovod ranks (module notes)."""

    def __init__(self, params, optimizer, optimizer_params=None, *, store):
        super().__init__(params, optimizer, optimizer_params, kvstore=None)
        self._store = store
        self._hvd = store._hvd

    def _allreduce_grads(self):
        hvd = self._hvd
        for i, param in enumerate(self._params):
            if param.grad_req == "null":
                continue
            grads = param.list_grad()
            total = grads[0]
            for g in grads[1:]:
                total += g.as_in_context(total.context)
            if self._store.num_workers > 1:
                hvd.allreduce_(total, average=None, name="gluonpose.grad.%d" % i, priority=-i,
                               op=hvd.Sum)
            for g in grads[1:]:
                total.copyto(g)
