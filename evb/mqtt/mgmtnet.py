"""A management network from network namespaces to the root namespace (where the broker runs).

    mgmt = MgmtNet("evbmgmt0", "10.77.0.1/24")      # Linux bridge, address 10.77.0.1
    addr = mgmt.add("evl12ab3401-st")                # veth; in the namespace: mgmt0 10.77.0.2/24
    broker = Broker(tmp, listen_addresses=(mgmt.address,))   # after the bridge exists
    mgmt.cut("evl12ab3401-st")                       # silent loss both ways; TCP sessions hang
    mgmt.heal("evl12ab3401-st")
    mgmt.close()                                     # removes the bridge and the veths

The root side of each veth (``BRIDGE-N``, or ``evbv<pid><n>`` where that would exceed 15
characters) is a port of the bridge; the namespace side is ``mgmt0`` (``ifname``), and ``lo``
is brought up too. Addresses are handed out in order from the bridge's subnet (a /24 holds
253 namespaces; give a shorter prefix for more). Nothing is routed: the namespaces reach the
bridge's address only, which is all a broker in the root namespace needs. Choose a subnet
of your own when other labs may run at the same time (two bridges with the same subnet in
the root namespace break each other).

``cut`` models a real break, not a refused connection: nothing is answered, no RST, no ICMP,
so established TCP connections just stop moving (retransmissions, MQTT keep-alive timeouts)
and resume after ``heal`` if neither side has given up meanwhile. Two ways:

* ``"drop"`` (default): the bridge port is set to state disabled (``bridge link set ... state
  0``): frames both ways are dropped in the bridge; both links stay up (a break somewhere
  along the path);
* ``"down"``: the root side of the veth is set down, so the namespace's ``mgmt0`` loses its
  carrier (the host's cable pulled). Linux keeps TCP connections over a link without
  carrier; they hang the same way.

Firewall drops (nftables) were not chosen: a drop in a namespace's output hook makes the
sender's own ``connect``/``send`` fail with EPERM at once, which is not what a cut looks like.

Needs root and ``ip``/``bridge`` (iproute2). Names with the owner's pid (``unique_name``)
let ``sweep_stale`` delete the bridges of test processes that died without ``close()``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import subprocess
import sys
import time
from types import TracebackType

IFNAME = "mgmt0"
_STALE_RE = re.compile(r"^evbm([0-9a-f]{6})[0-9a-f]{2}$")
_serial = 0
_veths = itertools.count(1)

#: ``python3 -c`` for ``can_connect``: exit 0 when a TCP connection opens within the timeout
_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


class MgmtError(RuntimeError):
    pass


def sh(*cmd: str, ns: str | None = None, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a command (in namespace ``ns``); MgmtError on failure when ``check``."""
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise MgmtError(f"{' '.join(full)}: exit {res.returncode}: {(res.stderr or res.stdout).strip()}")
    return res


def unique_name() -> str:
    """A bridge name unique to this process: ``evbm<pid, 6 hex><n, 2 hex>`` (12 characters)."""
    global _serial
    _serial += 1
    return f"evbm{os.getpid() & 0xFFFFFF:06x}{_serial & 0xFF:02x}"


def sweep_stale() -> list[str]:
    """Delete the ``unique_name`` bridges whose owner process is gone (their veths go with them)."""
    gone = []
    for line in sh("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        m = _STALE_RE.match(name)
        if m and not os.path.exists(f"/proc/{int(m.group(1), 16)}"):
            for port in _ports(name):
                sh("ip", "link", "del", port, check=False)
            sh("ip", "link", "del", name, check=False)
            gone.append(name)
    return gone


def _ports(bridge: str) -> list[str]:
    out = sh("ip", "-o", "link", "show", "master", bridge, check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def can_connect(ns: str | None, host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection from namespace ``ns`` (None: here) to host:port opens in time.

    (There is no ``ping`` on the test machines; this is the reachability check.)
    """
    res = sh(sys.executable, "-c", _CONNECT, host, str(port), str(timeout), ns=ns, check=False, timeout=timeout + 10)
    return res.returncode == 0


class MgmtNet:
    """A bridge ``name`` with ``address`` (CIDR) in the root namespace, and one veth per namespace.

    Namespaces get the next free host addresses of the subnet in ``add`` order.
    """

    def __init__(self, name: str = "evbmgmt0", address: str = "10.77.0.1/24", *, ifname: str = IFNAME) -> None:
        if len(name) > 12:
            raise ValueError(f"{name!r}: at most 12 characters (veths are named NAME-N)")
        self.name = name
        self.ifname = ifname
        self.interface = ipaddress.ip_interface(address)
        #: the bridge's address (the broker's, seen from the namespaces)
        self.address = str(self.interface.ip)
        self.members: dict[str, tuple[str, str]] = {}  #: ns -> (root-side veth, its address)
        self._hosts = (str(h) for h in self.interface.network.hosts() if h != self.interface.ip)
        self._n = 0
        self._up = False
        self.up()

    def up(self) -> MgmtNet:
        if self._up:
            return self
        sh("ip", "link", "add", self.name, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self._up = True
        try:
            sh("ip", "addr", "add", str(self.interface), "dev", self.name)
            sh("ip", "link", "set", self.name, "up")
        except BaseException:
            self.close()
            raise
        return self

    def add(self, ns: str) -> str:
        """Join namespace ``ns`` (existing): veth, ``mgmt0`` with the next address, up. Returns it."""
        if ns in self.members:
            return self.members[ns][1]
        self._n += 1
        root = f"{self.name}-{self._n}"
        if len(root) > 15:  # IFNAMSIZ: beyond 99 namespaces of a 12-character bridge name
            root = f"evbv{os.getpid() & 0xFFFFFF:06x}{next(_veths) & 0xFFFFF:05x}"
        addr = next(self._hosts, None)
        if addr is None:
            raise MgmtError(f"{self.name}: no address left in {self.interface.network}")
        sh("ip", "link", "add", root, "type", "veth", "peer", "name", self.ifname, "netns", ns)
        try:
            sh("ip", "link", "set", root, "master", self.name)
            sh("ip", "link", "set", root, "up")
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ip", "addr", "add", f"{addr}/{self.interface.network.prefixlen}", "dev", self.ifname, ns=ns)
            sh("ip", "link", "set", self.ifname, "up", ns=ns)
        except BaseException:
            sh("ip", "link", "del", root, check=False)
            raise
        self.members[ns] = (root, addr)
        return addr

    def veth(self, ns: str) -> str:
        """The root side of ``ns``'s veth (a port of the bridge)."""
        try:
            return self.members[ns][0]
        except KeyError:
            raise MgmtError(f"{ns}: not on {self.name}") from None

    def cut(self, ns: str, how: str = "drop") -> None:
        """Break ``ns``'s path to the bridge without telling anyone (see the module's doc)."""
        port = self.veth(ns)
        if how == "drop":
            sh("bridge", "link", "set", "dev", port, "state", "0")
        elif how == "down":
            sh("ip", "link", "set", port, "down")
        else:
            raise ValueError(f"{how!r}: 'drop' or 'down'")

    def heal(self, ns: str, timeout: float = 5.0) -> None:
        """Undo ``cut`` (either way); return once frames pass again.

        (After "down", the carrier of ``mgmt0`` comes back asynchronously, up to a second
        later: the kernel's link watch is rate limited. Frames sent before that are lost.)
        """
        port = self.veth(ns)
        sh("ip", "link", "set", port, "up")
        sh("bridge", "link", "set", "dev", port, "state", "3")
        deadline = time.monotonic() + timeout
        while True:
            fwd = "state forwarding" in sh("bridge", "link", "show", "dev", port, check=False).stdout
            if fwd and "LOWER_UP" in sh("ip", "-o", "link", "show", self.ifname, ns=ns, check=False).stdout:
                return
            if time.monotonic() > deadline:
                raise MgmtError(f"{ns}: {self.ifname} not back on {self.name} within {timeout} s")
            time.sleep(0.02)

    def remove(self, ns: str) -> None:
        """Take ``ns`` off the network (its veth is deleted)."""
        root, _ = self.members.pop(ns, (None, None))
        if root:
            sh("ip", "link", "del", root, check=False)

    def close(self) -> None:
        """Delete the veths and the bridge (namespaces are left alone)."""
        for ns in list(self.members):
            self.remove(ns)
        if self._up:
            with contextlib.suppress(MgmtError):
                sh("ip", "link", "del", self.name, check=False)
            self._up = False

    def __enter__(self) -> MgmtNet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
