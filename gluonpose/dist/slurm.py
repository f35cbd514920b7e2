"""SLURM allocations mapped onto ps-lite roles or Horovod ranks (``gluonpose-launch --slurm``).

ps-lite (``--engine ps``, the default): the batch script runs one launcher per node,
``srun --ntasks-per-node=1 gluonpose-launch --slurm -- python scripts/train_mshrnet.py ...
--kvstore dist_sync``. From ``SLURM_JOB_NODELIST`` every launcher computes the same plan: the
scheduler on the first node, one server and ``--workers-per-node`` workers (default 1: one
process driving the node's GPUs with ``--gpus 0-7``) on every node, the scheduler port derived
from ``SLURM_JOB_ID`` (so two jobs sharing a node do not collide). Each launcher starts and
supervises the processes of its own node (``SLURM_NODEID``); the workers' kvstore ranks are
assigned by ps-lite (by host and port, not by ``SLURM_PROCID``), and gluonpose shards the data by
the kvstore rank. SIGTERM (SLURM's time limit or preemption, forwarded by srun) stops every
process of the node and the launcher exits 143; SLURM then ends the step on the other nodes.

Horovod (``--engine horovod``): the batch script runs the launcher once (on the first node,
without srun); it runs ``horovodrun --gloo -np N -H node1:k,node2:k,...`` over the allocation's
nodes (ssh between the nodes, as horovodrun does).

``--dry-run`` prints the plan, one line per process: role, host and its ``DMLC_*`` (or Horovod)
variables; it needs only ``SLURM_JOB_ID``, ``SLURM_JOB_NODELIST`` and ``SLURM_NNODES``, so it
runs inside ``salloc`` too.
"""
import os
import re
import socket
from dataclasses import dataclass

from ..errors import ConfigError, LaunchError
from .launch import _check_counts, _roles, dmlc_env, prepared_command, ps_role_command, role_spec

__all__ = ["expand_hostlist", "SlurmJob", "slurm_job", "job_port", "ps_plan", "horovod_command",
           "describe_plan", "PORT_BASE", "PORT_SPAN"]

#: scheduler port = PORT_BASE + SLURM_JOB_ID % PORT_SPAN (unprivileged, below Linux's default
#: ephemeral range 32768-60999 only partly: ps-lite's other nodes bind random free ports)
PORT_BASE = 20000
PORT_SPAN = 10000

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top(text):
    """Split on commas outside brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise ConfigError("hostlist %r: nested '['" % text)
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ConfigError("hostlist %r: ']' without '['" % text)
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ConfigError("hostlist %r: '[' not closed" % text)
    parts.append("".join(cur))
    return parts


def _expand_ranges(body, text):
    """``01-03,7`` -> ['01', '02', '03', '7'] (zero padding of each range's start kept)."""
    out = []
    for item in body.split(","):
        m = _RANGE.match(item.strip())
        if not m:
            raise ConfigError("hostlist %r: bad range %r in [%s]" % (text, item, body))
        lo, hi = m.group(1), m.group(2) if m.group(2) is not None else m.group(1)
        if int(hi) < int(lo):
            raise ConfigError("hostlist %r: range %r goes backwards" % (text, item))
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        out.extend(str(v).zfill(width) for v in range(int(lo), int(hi) + 1))
    return out


def _expand_item(item, text):
    """``rack[1-2]-n[01-02]`` -> rack1-n01, rack1-n02, rack2-n01, rack2-n02."""
    m = re.search(r"\[([^\]]*)\]", item)
    if not m:
        if not item or "]" in item:
            raise ConfigError("hostlist %r: empty or malformed host name %r" % (text, item))
        return [item]
    head, tail = item[:m.start()], item[m.end():]
    return [head + v + rest for v in _expand_ranges(m.group(1), text)
            for rest in _expand_item(tail, text)] if tail else \
        [head + v for v in _expand_ranges(m.group(1), text)]


def expand_hostlist(text):
    """SLURM's hostlist syntax -> host names in order: ``gpu-a[01-04,07],gpu-b2`` ->
    gpu-a01..gpu-a04, gpu-a07, gpu-b2. ConfigError naming the list when it is malformed."""
    text = (text or "").strip()
    if not text:
        raise ConfigError("empty SLURM hostlist")
    hosts = []
    for item in _split_top(text):
        item = item.strip()
        if not item:
            raise ConfigError("hostlist %r: empty item" % text)
        hosts.extend(_expand_item(item, text))
    if len(set(hosts)) != len(hosts):
        raise ConfigError("hostlist %r names a host twice" % text)
    return hosts


@dataclass(frozen=True)
class SlurmJob:
    """What the launcher needs from a SLURM allocation (``node_id``/``proc_id``/``local_id``
    are None outside an ``srun`` step, e.g. in ``salloc`` or for ``--dry-run``)."""
    job_id: int
    nodes: tuple
    node_id: int = None
    proc_id: int = None
    local_id: int = None

    @property
    def num_nodes(self):
        return len(self.nodes)


def _first(env, *names):
    for name in names:
        if env.get(name, "") != "":
            return name, env[name]
    return names[0], None


def _int(env, name, value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LaunchError("%s=%r is not an integer" % (name, value))


def slurm_job(env=None, need_step=True):
    """The allocation described by the ``SLURM_*`` variables of ``env`` (default: this process).

    ``need_step``: also require ``SLURM_PROCID``/``SLURM_LOCALID``/``SLURM_NODEID`` (a task
    started by ``srun``). LaunchError naming what is missing or inconsistent."""
    env = os.environ if env is None else env
    missing = []
    id_name, job_id = _first(env, "SLURM_JOB_ID", "SLURM_JOBID")
    list_name, nodelist = _first(env, "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    count_name, count = _first(env, "SLURM_NNODES", "SLURM_JOB_NUM_NODES")
    for name, value in ((id_name, job_id), (list_name, nodelist), (count_name, count)):
        if value is None:
            missing.append(name)
    step = {}
    for key, name in (("proc_id", "SLURM_PROCID"), ("local_id", "SLURM_LOCALID"),
                      ("node_id", "SLURM_NODEID")):
        if env.get(name, "") == "":
            if need_step:
                missing.append(name)
        else:
            step[key] = _int(env, name, env[name])
    if missing:
        raise LaunchError("--slurm: %s not set; run inside a SLURM allocation (sbatch/salloc)%s"
                          % (", ".join(missing), ", one task per node via srun" if need_step else ""))
    try:
        nodes = tuple(expand_hostlist(nodelist))
    except ConfigError as err:
        raise LaunchError("%s: %s" % (list_name, err))
    if _int(env, count_name, count) != len(nodes):
        raise LaunchError("%s=%s but %s=%r names %d node(s)" % (count_name, count, list_name,
                                                                nodelist, len(nodes)))
    if step.get("node_id") is not None and not 0 <= step["node_id"] < len(nodes):
        raise LaunchError("SLURM_NODEID=%d outside the %d nodes of %s"
                          % (step["node_id"], len(nodes), list_name))
    return SlurmJob(job_id=_int(env, id_name, job_id), nodes=nodes, **step)


def job_port(job_id):
    """The scheduler port of a job: ``PORT_BASE + job_id % PORT_SPAN``."""
    return PORT_BASE + int(job_id) % PORT_SPAN


def _address(host, resolve):
    if not resolve:
        return host
    try:
        return socket.gethostbyname(host)
    except OSError:
        raise LaunchError("cannot resolve node %r of the SLURM allocation" % host)


def ps_plan(job, command, *, workers_per_node=1, env=None, base_env=None, verbose=0,
            server_command=None, only_node=None, resolve=False, fail_fast=True):
    """The ps-lite processes of the whole job (``only_node``: those of that node index):
    scheduler on node 0, one server and ``workers_per_node`` workers per node, port from the
    job id. ``resolve``: use the nodes' IP addresses (a real run) instead of their names."""
    num_workers, num_servers = job.num_nodes * int(workers_per_node), job.num_nodes
    _check_counts(num_workers, num_servers)
    command = prepared_command(command, fail_fast)
    server_command = list(server_command or ps_role_command())
    port = job_port(job.job_id)
    addresses = [_address(h, resolve and (only_node is None or i in (0, only_node)))
                 for i, h in enumerate(job.nodes)]
    base = dict(os.environ if base_env is None else base_env)
    plan = []
    for name, role, index in _roles(num_workers, num_servers):
        node = 0 if role == "scheduler" else (index if role == "server"
                                              else index // int(workers_per_node))
        if only_node is not None and node != only_node:
            continue
        plan.append(role_spec(
            name, role, index, host=job.nodes[node], base=base, thread_env={}, env=env,
            fail_fast=fail_fast, argv=command if role == "worker" else server_command,
            dmlc=dmlc_env(role, addresses[0], port, num_workers, num_servers, addresses[node],
                          verbose)))
    return plan


def horovod_command(job, command, *, per_node=1, horovodrun="horovodrun", extra=()):
    """``horovodrun --gloo -np N -H n1:k,n2:k,... COMMAND`` over the allocation's nodes."""
    if not command:
        raise ConfigError("no worker command given (put it after '--')")
    per_node = int(per_node)
    if per_node < 1:
        raise ConfigError("--workers-per-node must be >= 1, got %d" % per_node)
    hosts = ",".join("%s:%d" % (h, per_node) for h in job.nodes)
    return ([horovodrun, "--gloo", "-np", str(per_node * job.num_nodes), "-H", hosts]
            + list(extra) + list(command))


_SHOWN = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER",
          "DMLC_NUM_WORKER", "DMLC_NODE_HOST", "PS_VERBOSE")


def describe_plan(plan):
    """One line per process: ``name role host DMLC_*=...`` (the dry run's output)."""
    width = max(len(p.name) for p in plan)
    return ["%-*s  %-9s  %-16s  %s" % (width, p.name, p.role, p.host, " ".join(
        "%s=%s" % (k, p.env[k]) for k in _SHOWN if k in p.env)) for p in plan]


def describe_horovod(job, per_node):
    """One line per Horovod rank: ``rank R  host H  HOROVOD_RANK=.. HOROVOD_LOCAL_RANK=..``."""
    lines = []
    for node, host in enumerate(job.nodes):
        for local in range(int(per_node)):
            rank = node * int(per_node) + local
            lines.append("rank%-4d  worker     %-16s  HOROVOD_RANK=%d HOROVOD_SIZE=%d "
                         "HOROVOD_LOCAL_RANK=%d HOROVOD_CROSS_RANK=%d"
                         % (rank, host, rank, job.num_nodes * int(per_node), local, node))
    return lines
