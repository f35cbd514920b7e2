#!/usr/bin/env python
"""Launch a distributed (ps-lite KVStore) MXNet job: scheduler, servers and workers
(``gluonpose-launch`` = ``python scripts/launch_dist.py``).

Example (2 workers + 1 server on this machine over loopback)::

    python scripts/launch_dist.py -n 2 -s 1 --launcher local -- \\
        python train.py --kvstore dist_sync ...

With ``-H hostfile`` (one ``host`` or ``host:ssh_port`` per line) servers and workers are
started round-robin on the hosts via ssh, in the same working directory. If any process fails
all are stopped and the exit status is non-zero, with a line naming the process, its role and
host and its last output line (e.g. the worker's error). Killing the launcher (even with
SIGKILL, or SIGHUP from a closed terminal) ends the whole job. See gluonpose/dist/launch.py.

Inside a SLURM allocation, ``--slurm`` takes nodes, job id and this task's node from the
``SLURM_*`` variables (see gluonpose/dist/slurm.py)::

    srun --ntasks-per-node=1 gluonpose-launch --slurm -- python scripts/train_mshrnet.py \
        --config C --gpus 0-7 --kvstore dist_sync
    gluonpose-launch --slurm --engine horovod -- python scripts/train_mshrnet.py \
        --config C --gpus 0-7 --kvstore horovod
    gluonpose-launch --slurm --dry-run -- python ...      # print the plan, start nothing
"""
import argparse
import shlex
import sys

from gluonpose.dist.launch import (build_local_plan, build_ssh_plan, parse_env_items, parse_hostfile,
                                     run_plan)
from gluonpose.errors import ConfigError, UserError
from gluonpose.utils.cli import report_user_error


def _build_parser():
    ap = argparse.ArgumentParser(
        prog="launch_dist.py",
        usage="%(prog)s -n WORKERS [-s SERVERS] [-H HOSTFILE] [options] -- COMMAND ...",
        description="Start a ps-lite job (scheduler, servers, workers) for MXNet's dist kvstores.")
    ap.add_argument("-n", "--num-workers", type=int, default=None,
                    help="workers (required unless --slurm)")
    ap.add_argument("-s", "--num-servers", type=int, default=None,
                    help="default: as many as workers")
    ap.add_argument("-H", "--hostfile", default=None,
                    help="one host or host:ssh_port per line, '#' comments (ssh launcher)")
    ap.add_argument("--launcher", choices=("local", "ssh", "netns"), default=None,
                    help="default: ssh with a hostfile, else local; netns: --machines emulated "
                         "machines (network namespaces on this host, root)")
    ap.add_argument("--port", type=int, default=None, help="scheduler port (default: a free one)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra environment variable for every process (repeatable)")
    ap.add_argument("--log-dir", default=None, help="write <name>.log files instead of "
                    "prefixed output on stdout")
    ap.add_argument("--timeout", type=float, default=None, help="stop everything after T s")
    ap.add_argument("--grace", type=float, default=30.0, help="seconds servers may take to "
                    "exit once all workers finished")
    ap.add_argument("--scheduler-host", default=None, help="(ssh) address the hosts reach "
                    "this machine at")
    ap.add_argument("--server-command", default=None, help="command for scheduler/servers "
                    "(default: this python -c 'import mxnet')")
    ap.add_argument("--cwd", default=None, help="(ssh) remote working directory (default: "
                    "the current one)")
    ap.add_argument("--verbose", type=int, default=0, help="PS_VERBOSE level (0, 1, 2)")
    ap.add_argument("--no-fail-fast", action="store_true",
                    help="start Python worker commands as given (default: through "
                         "gluonpose.dist.worker, so a failing worker ends at once)")
    ap.add_argument("--unreachable-timeout", type=float, default=20.0,
                    help="(ssh, netns, slurm) stop the job, naming the machine, when one stops "
                         "answering TCP probes for this long (0: never; ps-lite and Gloo would "
                         "wait forever on a cut link)")
    emu = ap.add_argument_group("emulated machines (--launcher netns)")
    emu.add_argument("--machines", type=int, default=2, help="number of emulated machines")
    emu.add_argument("--rate-mbit", type=float, default=None,
                     help="cap each machine's outgoing link (tc tbf)")
    emu.add_argument("--loss-pct", type=float, default=None,
                     help="drop this share of the packets arriving at each machine (nftables)")
    slurm = ap.add_argument_group("SLURM (inside sbatch/salloc)")
    slurm.add_argument("--slurm", action="store_true",
                       help="take the nodes from SLURM_JOB_NODELIST: scheduler on the first node, "
                            "one server and --workers-per-node workers per node (ps); run one "
                            "launcher per node with srun --ntasks-per-node=1")
    ap.add_argument("--engine", choices=("ps", "horovod"), default="ps",
                    help="(slurm, netns) ps: ps-lite roles (--kvstore dist_sync); horovod: "
                         "Horovod ranks with Gloo (--kvstore horovod; under SLURM horovodrun over "
                         "the nodes, run once without srun)")
    ap.add_argument("--workers-per-node", type=int, default=1,
                    help="(slurm, netns) worker processes per node/machine (default 1: one "
                         "process drives the node's GPUs, --gpus 0-7)")
    slurm.add_argument("--dry-run", action="store_true",
                       help="print one line per process (role, host, DMLC_* variables) and exit")
    return ap


def _slurm(args, command, env):
    """Plan (and run) a job over the SLURM allocation; returns the exit status."""
    from gluonpose.dist.slurm import (describe_horovod, describe_plan, horovod_command, ps_plan,
                                      slurm_job)
    from gluonpose.dist.launch import ProcSpec, worker_command
    import os
    job = slurm_job(need_step=not args.dry_run and args.engine == "ps")
    if args.engine == "horovod":
        argv = horovod_command(job, worker_command(command) if not args.no_fail_fast else command,
                               per_node=args.workers_per_node)
        if args.dry_run:
            print("horovodrun: " + " ".join(shlex.quote(a) for a in argv))
            print("\n".join(describe_horovod(job, args.workers_per_node)))
            return 0
        full = dict(os.environ, **env)
        plan = [ProcSpec("horovodrun", "launcher", argv, full, job.nodes[0])]
        return run_plan(plan, timeout=args.timeout, log_dir=args.log_dir, grace=args.grace)
    common = dict(workers_per_node=args.workers_per_node, env=env, verbose=args.verbose,
                  server_command=args.server_argv, fail_fast=not args.no_fail_fast)
    if args.dry_run:
        print("\n".join(describe_plan(ps_plan(job, command, **common))))
        return 0
    plan = ps_plan(job, command, only_node=job.node_id, resolve=True, **common)
    watch = None
    if args.unreachable_timeout > 0 and job.num_nodes > 1:
        from gluonpose.dist.launch import HostWatch
        watch = HostWatch(job.nodes, timeout=args.unreachable_timeout)
    sys.stdout.write("[launch] SLURM job %d node %d of %d (%s): %s\n" % (
        job.job_id, job.node_id, job.num_nodes, job.nodes[job.node_id],
        ", ".join(p.name for p in plan)))
    sys.stdout.flush()
    return run_plan(plan, timeout=args.timeout, log_dir=args.log_dir, grace=args.grace,
                    watch=watch)


def _netns(args, command, env):
    """A job on ``--machines`` emulated machines; returns the exit status."""
    from gluonpose.dist.launch import HostWatch, build_hosts_plan
    from gluonpose.dist.netns import EmulatedMachines
    with EmulatedMachines(args.machines, rate_mbit=args.rate_mbit,
                          loss_pct=args.loss_pct) as machines:
        hosts = [(a, machines.exec_prefix(i)) for i, a in enumerate(machines.addresses)]
        sys.stdout.write("[launch] %d emulated machines %s (rate %s, loss %s)\n" % (
            machines.count, ", ".join(machines.addresses),
            "%g Mbit/s" % args.rate_mbit if args.rate_mbit else "unshaped",
            "%g %%" % args.loss_pct if args.loss_pct else "none"))
        sys.stdout.flush()
        server = None
        if args.engine == "horovod":
            from gluonpose.dist.hvdrun import horovod_hosts_plan
            plan, server = horovod_hosts_plan(command, hosts, rendezvous_addr=machines.gateway,
                                              per_host=args.workers_per_node, env=env,
                                              fail_fast=not args.no_fail_fast)
        else:
            workers = args.num_workers or machines.count * args.workers_per_node
            plan = build_hosts_plan(command, hosts, workers, args.num_servers or machines.count,
                                    port=args.port, env=env, server_command=args.server_argv,
                                    verbose=args.verbose, fail_fast=not args.no_fail_fast)
        watch = (HostWatch(machines.addresses, timeout=args.unreachable_timeout)
                 if args.unreachable_timeout > 0 else None)
        try:
            return run_plan(plan, timeout=args.timeout, log_dir=args.log_dir, grace=args.grace,
                            watch=watch)
        finally:
            if server is not None:
                server.stop()


def main(argv=None):
    """CLI entry: ``launch_dist.py [options] -- command ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        _build_parser().parse_known_args(argv)   # handles --help and option errors first
        _build_parser().error("put the worker command after '--'")
    split = argv.index("--")
    args = _build_parser().parse_args(argv[:split])
    command = argv[split + 1:]
    args.server_argv = shlex.split(args.server_command) if args.server_command else None
    if not command:
        _build_parser().error("empty worker command after '--'")
    try:
        env = parse_env_items(args.env)
        if args.slurm:
            return _slurm(args, command, env)
        if args.dry_run:
            raise ConfigError("--dry-run prints a SLURM plan: use it with --slurm")
        if args.launcher == "netns":
            return _netns(args, command, env)
        if args.num_workers is None:
            raise ConfigError("-n/--num-workers is required (or --slurm, --launcher netns)")
        num_servers = args.num_servers or args.num_workers
        launcher = args.launcher or ("ssh" if args.hostfile else "local")
        common = dict(port=args.port, env=env, server_command=args.server_argv,
                      verbose=args.verbose, fail_fast=not args.no_fail_fast)
        notes = []
        if launcher == "local":
            plan = build_local_plan(command, args.num_workers, num_servers, notes=notes,
                                    **common)
        else:
            if not args.hostfile:
                raise ConfigError("the ssh launcher needs -H/--hostfile")
            hosts = parse_hostfile(args.hostfile)
            plan = build_ssh_plan(command, hosts, args.num_workers,
                                  num_servers, scheduler_host=args.scheduler_host,
                                  cwd=args.cwd, **common)
    except UserError as err:
        return report_user_error(err)
    for note in notes:
        sys.stdout.write("[launch] %s\n" % note)
    sys.stdout.flush()
    watch = None
    if launcher == "ssh" and args.unreachable_timeout > 0:
        from gluonpose.dist.launch import HostWatch
        watch = HostWatch([(h, p or 22) for h, p in hosts], timeout=args.unreachable_timeout)
    return run_plan(plan, timeout=args.timeout, log_dir=args.log_dir, grace=args.grace,
                    watch=watch)


if __name__ == "__main__":
    sys.exit(main())
