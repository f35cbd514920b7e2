"""Launch a ps-lite (MXNet KVStore) job: 1 scheduler, S servers, W workers.

Replaces ``mxnet/tools/launch.py`` (its dmlc_tracker uses ``Thread.isAlive``, gone in Python
3.9+). Each process gets the ``DMLC_*`` variables ps-lite reads: ``DMLC_ROLE``,
``DMLC_PS_ROOT_URI``/``DMLC_PS_ROOT_PORT`` (the scheduler's address), ``DMLC_NUM_SERVER``,
``DMLC_NUM_WORKER``, ``DMLC_NODE_HOST`` (the address a node binds/advertises) and optionally
``PS_VERBOSE``. Servers and the scheduler run ``python -c "import mxnet"`` (importing mxnet
with a non-worker ``DMLC_ROLE`` runs that role and exits). Workers and servers also get
``GLUONPOSE_LAUNCH_INDEX`` (their index in launch order; the kvstore rank that ps-lite assigns
may differ).

Supervision: every process runs in its own process group. If any process exits non-zero (or
the optional timeout passes, or SIGINT/SIGTERM/SIGHUP arrives) all process groups get SIGTERM,
then SIGKILL after a few seconds, and :func:`run_plan` returns non-zero; a failure is reported
as ``<name> (<role> on <host>) failed with exit code N: <its last output line>`` (for a Python
worker the exception line of its traceback, or the ``error: ...`` line of a script). Python
worker commands are started through ``python -m gluonpose.dist.worker`` (:func:`worker_command`),
so a failing worker exits at once instead of hanging in ps-lite's shutdown, whatever it is
written with (``fail_fast=False`` starts them as given). After all workers exit 0 the servers/scheduler get ``grace``
seconds to finish on their own.

The job never outlives the launcher: on Linux every child gets ``PR_SET_PDEATHSIG`` = SIGKILL
(it is killed when the launcher dies, even by SIGKILL), the default scheduler/server command
and gluonpose workers (``GLUONPOSE_LAUNCHED=1``) also run a thread that exits when their parent
is gone, and forked grandchildren of gluonpose workers get the death signal too. With the ssh
launcher the local ssh clients die with the launcher; ssh runs with ``-tt`` so the remote
command has a terminal and is hung up (SIGHUP) when its connection drops, and the remote
watcher thread ends it once its sshd parent is gone. Children get ``PYTHONUNBUFFERED=1`` (unless
set) so that their output arrives in order and at once.
"""
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from ..errors import ConfigError, MissingFileError

__all__ = ["ProcSpec", "parse_hostfile", "parse_env_items", "find_free_port", "dmlc_env",
           "ssh_argv", "local_thread_env", "build_local_plan", "build_ssh_plan", "run_plan",
           "ps_role_command", "worker_command", "build_hosts_plan", "HostWatch",
           "prepared_command", "role_spec",
           "set_parent_death_signal", "parent_death_signal_available"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Scheduler/server program: a daemon thread SIGKILLs the process once its parent is gone (the
#: main thread blocks inside ``import mxnet``, which runs the ps-lite role with the GIL released).
_PS_ROLE_CODE = (
    "import os, signal, threading, time\n"
    "def _watch(parent=os.getppid()):\n"
    "    while os.getppid() == parent:\n"
    "        time.sleep(0.25)\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
    "threading.Thread(target=_watch, daemon=True).start()\n"
    "import mxnet\n")

_PRCTL = []


def _prctl():
    """libc's prctl, looked up once in the launcher (not in a freshly forked child)."""
    if not _PRCTL:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                fn = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                fn = None
        _PRCTL.append(fn)
    return _PRCTL[0]


def set_parent_death_signal(sig=signal.SIGKILL):
    """Linux: have the kernel send ``sig`` to this process when its parent (thread) dies.
    Returns False where that is not available."""
    fn = _prctl()
    return bool(fn is not None and fn(1, int(sig), 0, 0, 0) == 0)   # PR_SET_PDEATHSIG = 1


def parent_death_signal_available():
    """True on Linux with a usable prctl (resolves it now, so forked children need no lookup)."""
    return _prctl() is not None


def ps_role_command(python=None):
    """argv of a scheduler/server: ``python -c <parent watcher> + import mxnet``."""
    return [python or sys.executable, "-c", _PS_ROLE_CODE]


_PYTHON_NAME = re.compile(r"^python[0-9.]*$")
_VALUE_OPTIONS = ("-W", "-X", "-Q")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_command(command):
    """``command`` run inside :class:`~gluonpose.dist.failfast.WorkerRun`: a Python command
    (``python[X.Y] [options] SCRIPT|-m MOD|-c CODE ...``) becomes ``python [options] -m
    gluonpose.dist.worker SCRIPT|-m MOD|-c CODE ...``; anything else is returned unchanged."""
    command = list(command)
    if not command or not _PYTHON_NAME.match(os.path.basename(command[0])):
        return command
    i = 1
    while i < len(command) and command[i].startswith("-") and command[i] not in ("-m", "-c", "-"):
        i += 2 if command[i] in _VALUE_OPTIONS else 1
    if i >= len(command) or command[i] == "-":
        return command
    if command[i:i + 2] == ["-m", "gluonpose.dist.worker"]:
        return command
    return command[:i] + ["-m", "gluonpose.dist.worker"] + command[i:]


def _with_package_path(env):
    """``env`` whose PYTHONPATH starts with this checkout (so ``-m gluonpose.dist.worker``
    imports even where gluonpose is not installed)."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _PACKAGE_ROOT not in paths:
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT] + paths)
    return env


def _child_env(env):
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["GLUONPOSE_LAUNCHED"] = "1"
    return env


@dataclass(frozen=True)
class ProcSpec:
    """One process to start: ``name`` like 'scheduler'/'server0'/'worker1', full argv and env."""
    name: str
    role: str
    argv: list
    env: dict = field(repr=False)
    host: str = "127.0.0.1"


def parse_hostfile(path):
    """Hosts of a hostfile: one ``host`` or ``host:ssh_port`` per line; ``#`` starts a comment.

    Returns a list of ``(host, port)`` with ``port`` an int or None. Raises ValueError naming the
    file and line for a bad port, and when the file lists no host.
    """
    if not os.path.isfile(path):
        raise MissingFileError("hostfile not found: %s" % path)
    hosts = []
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            host, sep, port = line.partition(":")
            if (sep and not port.isdigit()) or not host or len(line.split()) != 1:
                raise ConfigError("%s:%d: expected 'host' or 'host:port', got %r"
                                  % (path, lineno, raw.rstrip("\n")))
            hosts.append((host, int(port) if sep else None))
    if not hosts:
        raise ConfigError("hostfile %s lists no host" % path)
    return hosts


def parse_env_items(items):
    """``['K=V', ...]`` -> dict; ValueError on an item without '=' or with a bad name."""
    env = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise ConfigError("--env expects NAME=VALUE, got %r" % item)
        env[name] = value
    return env


def find_free_port(host="127.0.0.1"):
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def dmlc_env(role, root_uri, root_port, num_workers, num_servers, node_host, verbose=0):
    """The ps-lite variables for one process of ``role`` ('scheduler', 'server', 'worker')."""
    if role not in ("scheduler", "server", "worker"):
        raise ValueError("unknown ps-lite role %r" % role)
    env = {"DMLC_ROLE": role, "DMLC_PS_ROOT_URI": str(root_uri),
           "DMLC_PS_ROOT_PORT": str(int(root_port)), "DMLC_NUM_WORKER": str(int(num_workers)),
           "DMLC_NUM_SERVER": str(int(num_servers)), "DMLC_NODE_HOST": str(node_host)}
    if verbose:
        env["PS_VERBOSE"] = str(int(verbose))
    return env


def _check_counts(num_workers, num_servers):
    if num_workers < 1 or num_servers < 1:
        raise ConfigError("need at least 1 worker and 1 server, got %d and %d"
                          % (num_workers, num_servers))


def _roles(num_workers, num_servers):
    """[(name, role, index)] in start order: scheduler, servers, workers."""
    return ([("scheduler", "scheduler", 0)] + [("server%d" % i, "server", i)
                                               for i in range(num_servers)]
            + [("worker%d" % i, "worker", i) for i in range(num_workers)])


def local_thread_env(num_workers, base_env, extra_env=None, cores=None):
    """Thread variables for the processes of a job on this host: unless the user chose threads
    (``OMP_NUM_THREADS``/MXNet thread variables in the environment or ``--env``), every worker
    gets ``max(1, cores // workers)`` OpenMP threads (marked as chosen, so a worker with several
    CPU contexts divides them further) and the scheduler/servers 1. Returns
    ``(worker_env, server_env, note)``; empty dicts when the user chose."""
    from ..utils.threads import AUTO_MARK, available_cores, threads_for, user_thread_settings
    merged = dict(base_env)
    merged.update(extra_env or {})
    user = user_thread_settings(merged)
    if user:
        return {}, {}, "threads: %s set by the user" % ", ".join(
            "%s=%s" % (n, merged[n]) for n in user)
    cores = available_cores() if cores is None else int(cores)
    per = threads_for(cores, num_workers)
    note = ("threads: %d cores / %d worker(s) on this host -> OMP_NUM_THREADS=%d per worker, 1 "
            "per server (set OMP_NUM_THREADS to choose yourself)" % (cores, num_workers, per))
    return ({"OMP_NUM_THREADS": str(per), AUTO_MARK: str(per)},
            {"OMP_NUM_THREADS": "1", AUTO_MARK: "1"}, note)


def prepared_command(command, fail_fast):
    """The worker command to start: checked, and with ``fail_fast`` run through
    :func:`worker_command`."""
    if not command:
        raise ConfigError("no worker command given (put it after '--')")
    return worker_command(command) if fail_fast else list(command)


def role_spec(name, role, index, *, argv, host, base, thread_env, dmlc, env, fail_fast):
    """The ProcSpec of one ps-lite process: ``base`` environment, then its thread variables, its
    ``DMLC_*`` variables ``dmlc``, its launch index (servers, workers) and the user's ``env``."""
    full = dict(base)
    full.update(thread_env)
    full.update(dmlc)
    if role != "scheduler":
        full["GLUONPOSE_LAUNCH_INDEX"] = str(index)
    full.update(env or {})
    _child_env(_with_package_path(full) if fail_fast else full)
    return ProcSpec(name, role, list(argv), full, host)


def build_local_plan(command, num_workers, num_servers, port=None, env=None,
                     server_command=None, verbose=0, base_env=None, notes=None, fail_fast=True):
    """All processes on this machine over 127.0.0.1; ``port`` picked free when None. Thread
    variables as :func:`local_thread_env` chooses them (its note appended to ``notes``).
    ``fail_fast``: Python worker commands run through :func:`worker_command`."""
    return build_hosts_plan(command, [("127.0.0.1", [])], num_workers, num_servers, port=port,
                            env=env, server_command=server_command, verbose=verbose,
                            base_env=base_env, notes=notes, fail_fast=fail_fast)


def build_hosts_plan(command, hosts, num_workers, num_servers, *, port=None, env=None,
                     server_command=None, verbose=0, base_env=None, fail_fast=True, cores=None,
                     notes=None):
    """Processes on one or several machines reached through an argv prefix: ``hosts`` is a list
    of ``(address, prefix)`` (``[]`` for this machine; ``ip netns exec NS ...`` for an emulated
    machine, :class:`gluonpose.dist.netns.EmulatedMachines`). Scheduler on the first machine,
    servers and workers round-robin; every process binds and advertises its machine's address.
    Threads as :func:`local_thread_env` chooses them for all the job's workers (``cores``
    default: this host's, which every emulated machine shares; its note appended to ``notes``)."""
    _check_counts(num_workers, num_servers)
    command = prepared_command(command, fail_fast)
    if not hosts:
        raise ConfigError("no machine to run on")
    port = port or find_free_port()
    server_command = list(server_command or ps_role_command())
    root = hosts[0][0]
    base = dict(os.environ if base_env is None else base_env)
    worker_threads, server_threads, note = local_thread_env(num_workers, base, env, cores)
    if notes is not None:
        notes.append(note)
    plan = []
    for name, role, index in _roles(num_workers, num_servers):
        address, prefix = hosts[0 if role == "scheduler" else index % len(hosts)]
        plan.append(role_spec(
            name, role, index, host=address, base=base, env=env, fail_fast=fail_fast,
            argv=list(prefix) + (command if role == "worker" else server_command),
            thread_env=worker_threads if role == "worker" else server_threads,
            dmlc=dmlc_env(role, root, port, num_workers, num_servers, address, verbose)))
    return plan


class HostWatch:
    """Probes the machines of a job and reports one that stopped answering.

    Every ``interval`` s a daemon thread opens a TCP connection to each host (``port``: a
    closed port answers with a reset, an ssh port accepts: both count as reachable; a timeout or
    "no route" does not). A host that does not answer the first probe (e.g. a firewall that
    drops probes silently) is not watched. :meth:`unreachable` returns ``(host, seconds)`` once a
    watched host has not answered for ``timeout`` s. Used by :func:`run_plan` so that a cut link,
    on which ps-lite and Gloo would wait forever, ends the job naming the host.
    """

    def __init__(self, hosts, timeout=20.0, interval=2.0, port=9, probe_s=1.0):
        """``hosts``: names/addresses, or ``(host, port)`` pairs probed on their own port."""
        self.ports = {}
        for item in hosts:
            host, hport = item if isinstance(item, tuple) else (item, None)
            self.ports[host] = hport or port
        self.hosts = sorted(self.ports)
        self.timeout, self.interval, self.port, self.probe_s = timeout, interval, port, probe_s
        self.watched = [h for h in self.hosts if self.answers(h)]
        self.silent_since = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="gluonpose-hostwatch", daemon=True)
        self._thread.start()

    def answers(self, host):
        try:
            with socket.create_connection((host, self.ports.get(host, self.port)),
                                          timeout=self.probe_s):
                return True
        except ConnectionRefusedError:
            return True
        except OSError:
            return False

    def _loop(self):
        while not self._stop.wait(self.interval):
            for host in self.watched:
                ok = self.answers(host)
                with self._lock:
                    if ok:
                        self.silent_since.pop(host, None)
                    else:
                        self.silent_since.setdefault(host, time.monotonic() - self.probe_s)

    def unreachable(self, now=None):
        now = time.monotonic() if now is None else now
        with self._lock:
            for host, since in sorted(self.silent_since.items()):
                if now - since >= self.timeout:
                    return host, now - since
        return None

    def stop(self):
        self._stop.set()


def ssh_argv(host, ssh_port, remote_env, cwd, command):
    """argv running ``command`` on ``host`` via ssh in ``cwd`` with ``remote_env`` exported.

    The last element is the remote shell line ``cd CWD && export K=V ... && exec COMMAND``
    (every word shell-quoted); ``-tt`` gives the remote command a terminal so it is hung up
    when the launcher kills the local ssh client."""
    exports = " ".join("%s=%s" % (k, shlex.quote(str(v))) for k, v in sorted(remote_env.items()))
    remote = "cd %s && %sexec %s" % (shlex.quote(cwd), ("export %s && " % exports) if exports
                                     else "", " ".join(shlex.quote(c) for c in command))
    argv = ["ssh", "-tt", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes"]
    if ssh_port:
        argv += ["-p", str(int(ssh_port))]
    return argv + [host, remote]


def _outbound_ip(target):
    """This machine's address as seen on the route to ``target`` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((target, 9))
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def build_ssh_plan(command, hosts, num_workers, num_servers, port=None, env=None,
                   server_command=None, verbose=0, scheduler_host=None, cwd=None,
                   ssh_port=None, base_env=None, fail_fast=True):
    """Scheduler here; servers and workers round-robin over ``hosts`` [(host, port|None)], each
    started by ssh in the same working directory ``cwd`` with its env exported.
    ``fail_fast``: Python worker commands run through :func:`worker_command` (gluonpose must
    be importable on the hosts, e.g. installed or a shared checkout)."""
    _check_counts(num_workers, num_servers)
    if not command:
        raise ConfigError("no worker command given (put it after '--')")
    if fail_fast:
        command = worker_command(command)
    if not hosts:
        raise ConfigError("the ssh launcher needs at least one host")
    scheduler_host = scheduler_host or _outbound_ip(hosts[0][0])
    port = port or find_free_port("0.0.0.0")
    cwd = cwd or os.getcwd()
    server_command = list(server_command or ps_role_command())
    local_env = dict(os.environ if base_env is None else base_env)
    counters = {"server": 0, "worker": 0}
    plan = []
    for name, role, index in _roles(num_workers, num_servers):
        if role == "scheduler":
            full = dict(local_env)
            full.update(dmlc_env(role, scheduler_host, port, num_workers, num_servers,
                                 scheduler_host, verbose))
            full.update(env or {})
            _child_env(full)
            plan.append(ProcSpec(name, role, list(server_command), full, scheduler_host))
            continue
        host, hport = hosts[counters[role] % len(hosts)]
        counters[role] += 1
        remote_env = dmlc_env(role, scheduler_host, port, num_workers, num_servers, host, verbose)
        remote_env["GLUONPOSE_LAUNCH_INDEX"] = str(index)
        remote_env.update(env or {})
        _child_env(remote_env)
        argv = ssh_argv(host, hport or ssh_port, remote_env, cwd,
                        command if role == "worker" else server_command)
        plan.append(ProcSpec(name, role, argv, dict(local_env), host))
    return plan


class _Terminated(Exception):
    """Raised by the SIGTERM/SIGHUP handler installed by :func:`run_plan`."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _visible(line):
    """The text a terminal shows for one output line (after the last CR, e.g. of a progress
    bar), stripped; bytes in, str out."""
    return line.rstrip(b"\r\n").split(b"\r")[-1].decode("utf-8", "replace").strip()


def _pump(stream, prefix, out, lock, last):
    """Copy lines of a child's pipe to ``out`` (a binary stream), each prefixed (CR dropped:
    ssh -tt output ends lines with CRLF); keep the last non-empty line in ``last[0]``."""
    for line in iter(stream.readline, b""):
        text = _visible(line)
        if text:
            last[0] = text
        with lock:
            out.write(prefix + line.rstrip(b"\r\n") + b"\n")
            out.flush()
    stream.close()


def _last_line_of_file(path, size=8192):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            lines = [_visible(line) for line in f.read().splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def _child_setup(launcher_pid):
    """preexec_fn: die with the launcher (Linux), and at once if it is already gone."""
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != launcher_pid:
        os._exit(1)


def _describe_exit(rc):
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = "signal %d" % -rc
        return "was killed by %s" % name
    return "failed with exit code %d" % rc


def _signal_groups(procs, sig):
    for proc in procs:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _stop_all(procs, wait_s=3.0):
    """SIGTERM every process group, SIGKILL what is still alive after ``wait_s`` seconds."""
    _signal_groups(procs, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    _signal_groups(procs, signal.SIGKILL)
    for p in procs:
        p.wait()


def _exit_code(rc):
    return 128 - rc if rc < 0 else rc


class _Supervisor:
    """The processes of a plan, started and watched (see :func:`run_plan`)."""

    def __init__(self, plan, log_dir, out, grace, timeout):
        self.plan, self.log_dir, self.out, self.grace = plan, log_dir, out, grace
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.lock = threading.Lock()
        self.procs, self.pumps, self.files, self.lasts = [], [], [], []
        self.workers_done_at = None
        self.watch = None

    def say(self, msg):
        with self.lock:
            self.out.write(b"[launch] " + msg.encode() + b"\n")
            self.out.flush()

    def start(self, launcher_pid):
        """Start every process; returns 127 when one cannot be started (the others stopped)."""
        for spec in self.plan:
            if self.log_dir:
                sink = open(os.path.join(self.log_dir, spec.name + ".log"), "wb")
                self.files.append(sink)
            else:
                sink = subprocess.PIPE
            try:
                proc = subprocess.Popen(spec.argv, env=spec.env, stdout=sink,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True,
                                        preexec_fn=lambda: _child_setup(launcher_pid))
            except OSError as err:
                self.say("cannot start %s (%s): %s" % (spec.name, spec.argv[0], err))
                self.stop_all()
                return 127
            self.procs.append(proc)
            last = [""]
            self.lasts.append(last)
            pump = None
            if not self.log_dir:
                pump = threading.Thread(target=_pump, daemon=True,
                                        args=(proc.stdout, ("[%s] " % spec.name).encode(), self.out,
                                              self.lock, last))
                pump.start()
            self.pumps.append(pump)
        return None

    def failed(self):
        """The exit status of the first failed process (its last line reported), or None."""
        for proc, spec, pump, last in zip(self.procs, self.plan, self.pumps, self.lasts):
            rc = proc.poll()
            if rc is not None and rc != 0:
                if pump is not None:
                    pump.join(timeout=1.0)   # its last lines may still be in the pipe
                    line = last[0]
                else:
                    line = _last_line_of_file(os.path.join(self.log_dir, spec.name + ".log"))
                self.say("%s (%s on %s) %s%s" % (spec.name, spec.role, spec.host, _describe_exit(rc),
                                                 ": %s" % line if line else " (no output)"))
                self.say("stopping all processes")
                self.stop_all()
                return _exit_code(rc)
        return None

    def finished(self, now):
        """0 once the workers exited 0 and the rest ended (or ``grace`` passed), 124 after the
        timeout, else None."""
        workers = [p for p, s in zip(self.procs, self.plan) if s.role == "worker"]
        if self.workers_done_at is None and all(p.poll() == 0 for p in workers):
            self.workers_done_at = now
        if self.workers_done_at is not None:
            if all(p.poll() is not None for p in self.procs):
                return 0
            if now - self.workers_done_at > self.grace:
                self.say("workers finished; servers/scheduler still alive after %.0f s: "
                         "stopping them" % self.grace)
                self.stop_all()
                return 0
        if self.deadline is not None and now > self.deadline:
            self.say("timeout after %.1f s; stopping all processes" % self.timeout)
            self.stop_all()
            return 124
        return self.lost_host()

    def lost_host(self):
        """UNREACHABLE_EXIT (after naming the host and its processes) once the host watch
        reports a machine that stopped answering, else None."""
        lost = self.watch.unreachable() if self.watch is not None else None
        if lost is None:
            return None
        host, seconds = lost
        names = [s.name for s in self.plan if s.host == host]
        self.say("host %s (%s) unreachable: no answer for %.0f s; stopping all processes"
                 % (host, ", ".join(names) or "no process", seconds))
        self.stop_all()
        return UNREACHABLE_EXIT

    def stop_all(self):
        _stop_all(self.procs)

    def stop_workers_first(self, wait_s):
        """SIGTERM the workers' main processes (not their loader processes: a step in flight may
        still need them) and wait up to ``wait_s`` s for them to exit."""
        workers = [p for p, s in zip(self.procs, self.plan) if s.role == "worker"]
        for proc in workers:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(p.poll() is None for p in workers):
            time.sleep(0.05)

    def close(self):
        for t in self.pumps:
            if t is not None:
                t.join(timeout=2.0)
        for f in self.files:
            f.close()


#: exit status of a job stopped because a machine stopped answering (sysexits' EX_UNAVAILABLE)
UNREACHABLE_EXIT = 69


def run_plan(plan, timeout=None, log_dir=None, grace=30.0, out=None, poll_s=0.05, watch=None,
             term_grace=60.0):
    """Start every ProcSpec, supervise them, return the job's exit status.

    0 when all workers exit 0 (and no server/scheduler fails within ``grace`` seconds after);
    else the first failing process's code (128+signal for a signal), 124 on ``timeout``,
    130/143/129 on SIGINT/SIGTERM/SIGHUP, :data:`UNREACHABLE_EXIT` when ``watch`` (a
    :class:`HostWatch` over the plan's hosts) reports a machine that stopped answering. Output goes to ``<log_dir>/<name>.log`` or, without
    ``log_dir``, to ``out`` (binary; default stdout) with each line prefixed ``[name] ``.
    On SIGTERM the workers get it first and up to ``term_grace`` seconds to exit (the training
    saves a mid-epoch checkpoint), while servers and scheduler still run; then everything stops.
    """
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
    old_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def _on_term(signum, frame):
            raise _Terminated(signum)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old_handlers[sig] = signal.signal(sig, _on_term)
    _prctl()   # resolve before forking
    job = _Supervisor(plan, log_dir, out or sys.stdout.buffer, grace, timeout)
    job.watch = watch
    try:
        code = job.start(os.getpid())
        while code is None:
            code = job.failed()
            if code is None:
                code = job.finished(time.monotonic())
            if code is None:
                time.sleep(poll_s)
        return code
    except KeyboardInterrupt:
        job.say("interrupted; stopping all processes")
        job.stop_all()
        return 130
    except _Terminated as term:
        if term.signum == signal.SIGTERM:   # SLURM's time limit / preemption: workers save first
            job.say("terminated; passing SIGTERM to the workers (they save a mid-epoch checkpoint "
                    "and exit), then stopping all processes")
            job.stop_workers_first(term_grace)
        else:
            job.say("hung up; stopping all processes")
        job.stop_all()
        return 128 + term.signum
    except BaseException:
        job.stop_all()
        raise
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if watch is not None:
            watch.stop()
        job.close()

