"""Horovod ranks started by gluonpose's own supervisor (no ``horovodrun``, no ssh).

``horovodrun --gloo`` starts remote ranks over ssh; on emulated machines (network namespaces,
:mod:`gluonpose.dist.netns`) and wherever the ranks are started by another means, gluonpose
does what horovodrun does itself: it runs Horovod's HTTP rendezvous server in the launcher
(every interface, a free port), gives each rank the variables horovodrun would export
(``HOROVOD_RANK``/``SIZE``/``LOCAL_RANK``/``CROSS_RANK``..., ``HOROVOD_GLOO_RENDEZVOUS_ADDR``
and ``_PORT``, ``HOROVOD_CONTROLLER=gloo``, ``HOROVOD_GLOO_IFACE``) and supervises the ranks
with :func:`gluonpose.dist.launch.run_plan` (a failing rank stops the job, nothing outlives
the launcher, a machine that stops answering ends the job naming it).
"""
import os

from .launch import ProcSpec, _child_env, _with_package_path, prepared_command
from .horovod import import_horovod_runner

__all__ = ["horovod_hosts_plan"]


def horovod_hosts_plan(command, hosts, *, rendezvous_addr, per_host=1, iface="eth0", env=None,
                       base_env=None, fail_fast=True):
    """``(plan, server)``: one ProcSpec per rank over ``hosts`` [(address, argv prefix)] with
    ``per_host`` ranks each, and the started rendezvous server (call ``server.stop()`` after the
    job). ``rendezvous_addr``: the launcher's address as the ranks reach it."""
    runner = import_horovod_runner()
    command = prepared_command(command, fail_fast)
    spec = ",".join("%s:%d" % (address, int(per_host)) for address, _ in hosts)
    slots = runner.get_host_assignments(runner.parse_hosts(spec), int(per_host) * len(hosts))
    server = runner.RendezvousServer(0)
    port = server.start()
    server.init(slots)
    prefixes = dict(hosts)
    base = dict(os.environ if base_env is None else base_env)
    plan = []
    for slot in slots:
        full = dict(base)
        full.update(runner.create_slot_env_vars(slot))
        full.update({"HOROVOD_GLOO_RENDEZVOUS_ADDR": str(rendezvous_addr),
                     "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port), "HOROVOD_CONTROLLER": "gloo",
                     "HOROVOD_CPU_OPERATIONS": "gloo", "HOROVOD_GLOO_IFACE": iface})
        full.setdefault("OMP_NUM_THREADS", "1")
        full.update(env or {})
        _child_env(_with_package_path(full) if fail_fast else full)
        plan.append(ProcSpec("rank%d" % slot.rank, "worker",
                             list(prefixes[slot.hostname]) + list(command), full, slot.hostname))
    return plan, server
