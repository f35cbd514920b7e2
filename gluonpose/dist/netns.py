"""Emulated machines on one Linux host: one network namespace per machine, shaped links.

Each machine is a namespace ``gp<tag>-<i>`` whose ``eth0`` is one end of a veth pair; the other
end is a port of the bridge ``gpb<tag>`` in the host's namespace (address ``.254`` of the
cluster's /24, which the machines reach the launcher at). Machine ``i`` has address ``.(i+1)``.
Root is needed (``ip netns``, ``tc``, ``nft``).

Links (:meth:`EmulatedMachines.shape`): **rate** with ``tc`` (a token bucket on each machine's
egress), **loss** with an nftables rule on each machine's ingress (``numgen random``: a real
packet drop on arrival, which TCP repairs by retransmission). **Delay cannot be emulated on
this project's machines**: their kernel has no ``sch_netem`` (``tc qdisc add ... netem`` answers
"Specified qdisc kind is unknown"), and ``tc``'s drop actions are missing too, hence nftables for
loss. :meth:`cut` takes a machine's link down (``ip link set ... down`` on the bridge side) and
:meth:`restore` brings it back.

The launchers run roles inside the machines with ``ip netns exec NAME ...``
(:func:`gluonpose.dist.launch.build_hosts_plan`, ``gluonpose-launch --launcher netns``).
Only the cluster's own addresses are used; :meth:`remove` (also on ``with`` exit and at
interpreter exit) deletes every namespace, veth and the bridge it created.
"""
import atexit
import ipaddress
import os
import shutil
import subprocess
import uuid

from ..errors import LaunchError

__all__ = ["EmulatedMachines", "netns_available"]

_TOOLS = ("ip", "tc", "nft", "unshare", "hostname")


def netns_available():
    """None when namespaces can be made here (root, ``ip``/``tc``/``nft`` found), else why not."""
    if os.geteuid() != 0:
        return "emulated machines need root (ip netns)"
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        return ("%s not found (apt-get install iproute2 nftables)" % ", ".join(missing))
    return None


def _run(argv, check=True):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise LaunchError("emulated machines: `%s` failed: %s"
                          % (" ".join(argv), (res.stderr or res.stdout).strip()))
    return res


class EmulatedMachines:
    """``count`` machines on a private /24 (see the module notes). Use as a context manager."""

    def __init__(self, count, *, rate_mbit=None, loss_pct=None, tag=None, subnet=None):
        if not 1 <= int(count) <= 200:
            raise LaunchError("emulated machines: count must be 1..200, got %r" % (count,))
        self.count = int(count)
        self.tag = tag or uuid.uuid4().hex[:5]
        if subnet is None:
            seed = int(self.tag, 16) if all(c in "0123456789abcdef" for c in self.tag) else 0
            subnet = "10.%d.%d.0/24" % (200 + seed % 50, seed // 50 % 250)
        self.subnet = ipaddress.ip_network(subnet)
        hosts = list(self.subnet.hosts())
        self.addresses = [str(hosts[i]) for i in range(self.count)]
        self.gateway = str(hosts[253])
        self.namespaces = ["gp%s-%d" % (self.tag, i) for i in range(self.count)]
        self.bridge = "gpb%s" % self.tag
        self._veths = ["gpv%s%d" % (self.tag, i) for i in range(self.count)]
        self._initial = dict(rate_mbit=rate_mbit, loss_pct=loss_pct)
        self._made = False

    def __enter__(self):
        self.create()
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    def create(self):
        """Make the bridge, namespaces and links (everything made is removed on failure)."""
        why = netns_available()
        if why:
            raise LaunchError(why)
        self._made = True
        atexit.register(self.remove)
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", "%s/%d" % (self.gateway, self.subnet.prefixlen),
                  "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for i in range(self.count):
                self._add_machine(i)
            if any(v is not None for v in self._initial.values()):
                self.shape(**self._initial)
        except BaseException:
            self.remove()
            raise

    def _add_machine(self, i):
        ns, veth = self.namespaces[i], self._veths[i]
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        _run(["ip", "-n", ns, "addr", "add", "%s/%d" % (self.addresses[i], self.subnet.prefixlen),
              "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "route", "add", "default", "via", self.gateway])

    def remove(self):
        """Delete what :meth:`create` made (idempotent; errors ignored: a part may be gone)."""
        if not self._made:
            return
        self._made = False
        for ns in self.namespaces:
            _run(["ip", "netns", "del", ns], check=False)
        for veth in self._veths:
            _run(["ip", "link", "del", veth], check=False)
        _run(["ip", "link", "del", self.bridge], check=False)

    def exec_prefix(self, i):
        """argv prefix running a command inside machine ``i``: its network namespace, and its own
        host name (a UTS namespace named by its address), as on a separate machine; Gloo finds
        the address it advertises from the host name."""
        return ["ip", "netns", "exec", self.namespaces[i], "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.addresses[i]]

    def shape(self, *, rate_mbit=None, loss_pct=None, machines=None):
        """Shape every machine's link (or those of ``machines``): ``rate_mbit`` caps what leaves
        a machine (tc tbf), ``loss_pct`` drops that share of the packets arriving at it
        (nftables). None leaves that property unshaped (an earlier setting is removed)."""
        for i in (range(self.count) if machines is None else machines):
            ns = self.namespaces[i]
            _run(["tc", "-n", ns, "qdisc", "del", "dev", "eth0", "root"], check=False)
            if rate_mbit is not None:
                burst = max(32 * 1024, int(rate_mbit * 1e6 / 8 / 250))   # ~4 ms of traffic
                _run(["tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate",
                      "%dmbit" % int(rate_mbit), "burst", str(burst), "latency", "50ms"])
            _run(["ip", "netns", "exec", ns, "nft", "flush", "ruleset"], check=False)
            if loss_pct:
                self._add_loss(ns, float(loss_pct))

    @staticmethod
    def _add_loss(ns, loss_pct):
        if not 0 < loss_pct < 100:
            raise LaunchError("emulated machines: loss must be in (0, 100) %%, got %g" % loss_pct)
        per_10k = int(round(loss_pct * 100))
        nft = ["ip", "netns", "exec", ns, "nft"]
        _run(nft + ["add", "table", "netdev", "gploss"])
        _run(nft + ["add", "chain", "netdev", "gploss", "in",
                    "{ type filter hook ingress device eth0 priority 0; }"])
        _run(nft + ["add", "rule", "netdev", "gploss", "in", "numgen", "random", "mod", "10000",
                    "<", str(per_10k), "drop"])

    def cut(self, i):
        """Take machine ``i``'s link down (its processes keep running, unreachable)."""
        _run(["ip", "link", "set", self._veths[i], "down"])

    def restore(self, i):
        _run(["ip", "link", "set", self._veths[i], "up"])
