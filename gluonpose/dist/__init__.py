"""Distributed training: everything that spans processes or machines.

* :mod:`.kvstore` - creating the engine named by ``train.kvstore`` (MXNet's ps-lite ``dist_*``
  kvstores, or ``horovod``) and the collective helpers the training loop uses (barrier,
  parameter broadcast, scalar all-reduce/all-gather, the Trainer);
* :mod:`.horovod` - Horovod as the second engine (imported only when asked for), :mod:`.hvdrun`
  (its ranks started by our own launcher) and :mod:`.arrays` (what a collective may be handed);
* :mod:`.failfast` - :class:`~.failfast.WorkerRun`, the context a distributed worker runs in so
  that an error ends it at once instead of hanging in a collective;
* :mod:`.worker` - ``python -m gluonpose.dist.worker SCRIPT ...``: any Python worker inside
  ``WorkerRun`` (the launchers start Python workers through it);
* :mod:`.launch` - the ps-lite launcher (local processes, ssh) and its supervisor;
* :mod:`.slurm` - SLURM allocations mapped onto ps-lite roles or horovod ranks;
* :mod:`.netns` - emulated machines (Linux network namespaces with shaped links) for tests and
  the communication benchmark.

It sits beside the training loop (layer 4): it imports only ``errors``, ``config`` and
``utils``.
"""
