"""``evb lab demo``: a VEPA lab in network namespaces, built, checked and torn down in about a minute.

Topology (namespaces ``PREFIX-br``, ``-h1``, ``-h2``, ``-vm1`` .. ``-vm5``)::

    vm1, vm2, vm5 (macvlan VEPA on h1 "uplink") -- h1 "uplink" ==veth== "b1" \\
                                                                     evbbr0 + nft: ``evb bridge run --dataplane kernel``
    vm3, vm4      (macvlan VEPA on h2 "uplink") -- h2 "uplink" ==veth== "b2" /

``evb station run`` on each hypervisor's uplink associates vm1..vm4 through VDP (one VSI each:
filter format 2, its MAC on VID 1, the kernel data plane's default VID, so its untagged frames
pass); vm5 is never associated. The VMs have static neighbour entries (no ARP) and IPv6 off, so
the only frames are the demo's UDP datagrams. A macvlan in VEPA mode sends everything up, so
vm1 -> vm2 comes back only through the bridge's hairpin (reflective relay).

Checks (counters from ``evb bridge status`` under ``dataplane``): same-host traffic reflected;
cross-host forwarded; a spoofed source MAC and the unassociated vm5 dropped with nothing
arriving; after ``evb vsi deassoc`` of vm2 its traffic dropped. Everything is removed at the end,
also on Ctrl-C or failure, unless ``--keep``.

With ``--mqtt`` the lab also runs a mosquitto broker in the root namespace, reachable from the
bridge and hypervisor namespaces over a management network (a Linux bridge with 10.79.x.1 and
a veth into each); the agents run with ``--mqtt`` (hosts ``h1``/``h2``, bridge ``br``), and the
demo drives the VSIs only through ``evb ctl`` (``assoc``/``deassoc`` over the broker), and
checks that the retained states (``evb ctl watch --once``) read associated.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from evb.control_client import ConnectError, call
from evb.mqtt.broker import Broker
from evb.mqtt.mgmtnet import MgmtNet

T = TypeVar("T")
PORT = 4789 + 1000  #: the demo's UDP port
COUNT = 20  #: datagrams per check
BRIDGE, TABLE = "evbdemo0", "evbdemo"
MANAGER, TYPE_ID, TYPE_VERSION = "demo", 1, 1
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class Vm:
    name: str
    host: int  #: 1 or 2
    mac: str
    ip: str
    uuid: str
    associate: bool = True


VMS = (
    Vm("vm1", 1, "02:00:00:de:00:01", "10.77.0.1", "de000000-0000-4000-8000-000000000001"),
    Vm("vm2", 1, "02:00:00:de:00:02", "10.77.0.2", "de000000-0000-4000-8000-000000000002"),
    Vm("vm3", 2, "02:00:00:de:00:03", "10.77.0.3", "de000000-0000-4000-8000-000000000003"),
    Vm("vm4", 2, "02:00:00:de:00:04", "10.77.0.4", "de000000-0000-4000-8000-000000000004"),
    Vm("vm5", 1, "02:00:00:de:00:05", "10.77.0.5", "de000000-0000-4000-8000-000000000005", associate=False),
)
SPOOF_MAC = "02:00:00:de:66:66"
#: ``--mqtt``: the VSI type database the demo puts on the broker for the bridge (``--policy mqtt://``)
VTDB_POLICY = f"""\
[[manager]]
id = "{MANAGER}"

[[manager.type]]
id = {TYPE_ID}
version = {TYPE_VERSION}
vlans = [1]
macs = ["02:00:00:de:*"]
"""


class DemoError(RuntimeError):
    """The lab could not be built or an agent failed."""


def _run(cmd: list[str], *, ns: str | None = None, check: bool = True, stdin: str | None = None) -> str:
    full = ["ip", "netns", "exec", ns, *cmd] if ns else cmd
    res = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    if check and res.returncode != 0:
        raise DemoError(f"{' '.join(full)}: exit {res.returncode}: {(res.stderr or res.stdout).strip()}")
    return res.stdout


def _wait(what: str, fn: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T:
    end = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > end:
            raise DemoError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """This thread in namespace ``ns`` for the block (sockets made there stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        yield
    finally:
        _libc.setns(own, CLONE_NEWNET)
        os.close(own)
        os.close(target)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, payload: bytes) -> bytes:
    """An untagged Ethernet/IPv4/UDP frame (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", PORT, PORT, 8 + len(payload), 0) + payload
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0x4000,
        64,
        17,
        0,
        socket.inet_aton(src_ip),
        socket.inet_aton(dst_ip),
    )
    hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
    mac = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    return mac + b"\x08\x00" + hdr + udp


@dataclass
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class Lab:
    prefix: str
    workdir: Path
    namespaces: list[str] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    socks: dict[str, socket.socket] = field(default_factory=dict)  #: UDP socket per VM
    received_store: dict[str, list[bytes]] = field(default_factory=dict)  #: datagrams read so far, per VM
    timings: dict[str, float] = field(default_factory=dict)
    mqtt: bool = False  #: agents take commands from a broker; VSIs are driven with ``evb ctl``
    broker: Broker | None = None
    mgmt: MgmtNet | None = None

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @property
    def br_socket(self) -> str:
        return str(self.workdir / "bridge.sock")

    def st_socket(self, host: int) -> str:
        return str(self.workdir / f"station{host}.sock")

    # ------------------------------------------------------------------ build

    def _add_ns(self, name: str) -> str:
        ns = self.ns(name)
        _run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        _run(["ip", "link", "set", "lo", "up"], ns=ns)
        _run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"], ns=ns)
        return ns

    def build(self) -> None:
        br = self._add_ns("br")
        for host in (1, 2):
            hv = self._add_ns(f"h{host}")
            _run(["ip", "link", "add", "uplink", "netns", hv, "type", "veth", "peer", "name", f"b{host}", "netns", br])
            _run(["ip", "link", "set", "uplink", "up"], ns=hv)
        for vm in VMS:
            vns = self._add_ns(vm.name)
            hv = self.ns(f"h{vm.host}")
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    "link",
                    "uplink",
                    "name",
                    vm.name,
                    "address",
                    vm.mac,
                    "type",
                    "macvlan",
                    "mode",
                    "vepa",
                ],
                ns=hv,
            )
            _run(["ip", "link", "set", vm.name, "netns", vns], ns=hv)
            _run(["ip", "link", "set", vm.name, "name", "eth0"], ns=vns)
            _run(["ip", "addr", "add", f"{vm.ip}/24", "dev", "eth0"], ns=vns)
            _run(["ip", "link", "set", "eth0", "up"], ns=vns)
            for other in VMS:
                if other is not vm:
                    _run(
                        ["ip", "neigh", "replace", other.ip, "lladdr", other.mac, "dev", "eth0", "nud", "permanent"],
                        ns=vns,
                    )
            with in_netns(vns):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("", PORT))  # not vm.ip: the learning broadcasts too
            sock.setblocking(False)
            self.socks[vm.name] = sock
        if self.mqtt:
            self.mgmt = MgmtNet(f"{self.prefix}m", f"10.79.{os.getpid() % 200}.1/24")
            for name in ("br", "h1", "h2"):
                self.mgmt.add(self.ns(name))
            self.broker = Broker(self.workdir, listen_addresses=(self.mgmt.address,)).start()

    def agent_mqtt(self, name_option: str, name: str) -> list[str]:
        """The ``--mqtt`` options of an agent in a lab namespace (none without ``--mqtt``)."""
        if self.broker is None or self.mgmt is None:
            return []
        return ["--mqtt", self.broker.url_for(host=self.mgmt.address), name_option, name]

    def ctl(self, *args: str, json_out: bool = True) -> Any:
        """``evb ctl ARGS --broker URL --json`` (the CLI, as a user would type it): its JSON
        (its text without ``json_out``)."""
        assert self.broker is not None
        cmd = [sys.executable, "-m", "evb.cli", "ctl", *args, "--broker", self.broker.url]
        cmd += ["--json"] if json_out else []
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if res.returncode not in (0, 1) or not res.stdout.strip():
            raise DemoError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
        return json.loads(res.stdout) if json_out else res.stdout

    def put_vtdb(self) -> None:
        """``evb ctl vtdb put`` of the demo's VSI type database (``--mqtt``: the bridge follows it)."""
        policy = self.workdir / "vtdb.toml"
        policy.write_text(VTDB_POLICY)
        self.ctl("vtdb", "put", "--replace", str(policy), json_out=False)

    def spawn(self, name: str, ns: str, cmd: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (the child keeps it)
        with log:
            self.procs[name] = subprocess.Popen(
                ["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _answering(self, name: str, path: str) -> bool:
        proc = self.procs[name]
        if proc.poll() is not None:
            tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise DemoError(f"{name} exited with {proc.returncode}:\n{tail}")
        try:
            call(path, "status", timeout=2)
        except (ConnectError, OSError):
            return False
        return True

    def _vtdb_loaded(self) -> bool:
        vtdb = call(self.br_socket, "status", timeout=10).get("mqtt", {}).get("vtdb", {})
        return bool(vtdb.get("loaded")) and vtdb.get("entries", 0) > 0

    def start_agents(self, capture: bool) -> None:
        py = [sys.executable, "-m", "evb.cli"]
        cmd = [*py, "bridge", "run", "--socket", self.br_socket, "--port", "b1", "--port", "b2"]
        cmd += ["--dataplane", "kernel", "--bridge-name", BRIDGE, "--nft-table", TABLE, "--log-level", "info"]
        mqtt = self.agent_mqtt("--mqtt-name", "br")
        if mqtt:  # the bridge follows the VSI type database the demo put on the broker
            self.put_vtdb()
            cmd += [*mqtt, "--policy", mqtt[1]]
        self.spawn("bridge", self.ns("br"), cmd)
        _wait("the bridge's control socket", lambda: self._answering("bridge", self.br_socket), 20)
        if mqtt:
            _wait("the bridge's VSI type database from the broker", self._vtdb_loaded, 20, 0.1)
        if capture:
            pcap = self.workdir / "station1.pcap"
            tcmd = ["tshark", "-q", "-i", "uplink", "-f", "ether proto 0x8940", "-F", "pcap", "-w", str(pcap)]
            self.spawn("tshark", self.ns("h1"), tcmd)
            _wait("tshark capturing", lambda: b"Capturing on" in (self.workdir / "tshark.log").read_bytes(), 15)
        for host in (1, 2):
            state = str(self.workdir / f"station{host}.state.json")
            cmd = [*py, "station", "run", "--iface", "uplink", "--socket", self.st_socket(host), "--state", state]
            cmd += self.agent_mqtt("--mqtt-host", f"h{host}")
            self.spawn(f"station{host}", self.ns(f"h{host}"), [*cmd, "--log-level", "info"])
        for host in (1, 2):
            _wait(f"station{host}'s socket", lambda h=host: self._answering(f"station{h}", self.st_socket(h)), 20)  # type: ignore[misc]

        def hairpins() -> bool:
            ports = self.dataplane()["ports"]
            return all(ports[p]["hairpin"] for p in ("b1", "b2"))

        _wait("EVB with reflective relay on both bridge ports", hairpins, 30, 0.1)

    def vsi(self, vm: Vm, mode: str) -> dict[str, Any]:
        """``evb vsi MODE`` for the VM (the CLI, as a user would type it); with ``--mqtt``,
        ``evb ctl MODE`` through the broker."""
        vsi_opts = ["--uuid", vm.uuid, "--type-id", str(TYPE_ID), "--type-version", str(TYPE_VERSION)]
        vsi_opts += ["--manager-id", MANAGER, "--filter", f"1-{vm.mac}"]
        if self.mqtt:
            doc = self.ctl(mode, "--host", f"h{vm.host}", "--iface", "uplink", *vsi_opts)
            if not doc.get("ok", True):
                raise DemoError(f"evb ctl {mode} {vm.name}: {doc.get('error')}")
            answer: dict[str, Any] = doc.get("result", doc)
            return answer
        cmd = [sys.executable, "-m", "evb.cli", "vsi", mode, "--socket", self.st_socket(vm.host), "--uuid", vm.uuid]
        cmd += ["--type-id", str(TYPE_ID), "--type-version", str(TYPE_VERSION), "--manager-id", MANAGER]
        cmd += ["--filter", f"1-{vm.mac}", "--wait", "--json"]
        doc = json.loads(_run(cmd))  # {"ok": ..., "result": {"vsi": ..., "mode": ...}}
        result: dict[str, Any] = doc.get("result", doc)
        return result

    def dataplane(self) -> dict[str, Any]:
        result: dict[str, Any] = call(self.br_socket, "status", timeout=10)["dataplane"]
        return result

    def counters(self) -> dict[str, dict[str, int]]:
        return {p: dict(v["counters"]) for p, v in self.dataplane()["ports"].items()}

    # ------------------------------------------------------------------ traffic

    def send(self, src: Vm, dst: Vm, tag: bytes, n: int = COUNT) -> None:
        for i in range(n):
            self.socks[src.name].sendto(tag + b"%d" % i, (dst.ip, PORT))

    def send_raw(self, src: Vm, frames: list[bytes]) -> None:
        with in_netns(self.ns(src.name)):
            raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        with raw:
            raw.bind(("eth0", 0))
            for f in frames:
                raw.send(f)

    def received(self, vm: Vm, tag: bytes) -> int:
        got = self.received_store.setdefault(vm.name, [])
        while True:
            try:
                data = self.socks[vm.name].recv(2048)
            except BlockingIOError:
                break
            got.append(data)
        return sum(1 for d in got if d.startswith(tag))

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        self._close_agents()
        if self.mgmt is not None:
            self.mgmt.close()
            self.mgmt = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def _close_agents(self) -> None:
        for sock in self.socks.values():
            sock.close()
        for name in ("station1", "station2", "tshark", "bridge"):  # stations first: they leave with TTL 0
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for ns in reversed(self.namespaces):
            _run(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()


def _delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]], port: str, what: str) -> int:
    return after[port][what] - before[port][what]


def run_checks(lab: Lab) -> list[Check]:
    vm1, vm2, vm3, vm4, vm5 = VMS
    checks: list[Check] = []
    # learning: every associated VM sends once to the subnet's broadcast, so that the bridge knows where it is
    for vm in VMS[:4]:
        lab.socks[vm.name].setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        lab.socks[vm.name].sendto(b"learn", ("10.77.0.255", PORT))
    _wait("the learning broadcasts", lambda: all(lab.received(vm, b"learn") >= 3 for vm in VMS[:4]), 5)

    def unicast(name: str, src: Vm, dst: Vm, port: str, counter: str, others: tuple[str, ...]) -> Check:
        tag = f"{name}:".encode()
        before = lab.counters()
        lab.send(src, dst, tag)
        try:
            _wait(f"{COUNT} datagrams at {dst.name}", lambda: lab.received(dst, tag) >= COUNT, 5)
            _wait(f"{counter} +{COUNT}", lambda: _delta(lab.counters(), before, port, counter) >= COUNT, 5)
        except DemoError:
            pass
        after = lab.counters()
        got = lab.received(dst, tag)
        d = {c: _delta(after, before, port, c) for c in (counter, *others)}
        passed = got == COUNT and d[counter] == COUNT and all(d[o] == 0 for o in others)
        text = ", ".join(f"{k} +{v}" for k, v in d.items())
        return Check(name, passed, f"{got}/{COUNT} datagrams {src.name} -> {dst.name}; {port}: {text}")

    checks.append(unicast("same host via hairpin", vm1, vm2, "b1", "reflected", ("forwarded", "dropped")))
    checks.append(unicast("other host reachable", vm1, vm3, "b1", "forwarded", ("reflected", "dropped")))
    checks.append(unicast("other host, back", vm4, vm2, "b2", "forwarded", ("reflected", "dropped")))

    def blocked(name: str, what: str, send: Callable[[bytes], None], dst: Vm, port: str) -> Check:
        tag = f"{name}:".encode()
        before = lab.counters()
        send(tag)
        with contextlib.suppress(DemoError):
            _wait(f"dropped +{COUNT}", lambda: _delta(lab.counters(), before, port, "dropped") >= COUNT, 5)
        time.sleep(0.2)  # anything that did get through would be here by now
        after = lab.counters()
        got = lab.received(dst, tag)
        d = {c: _delta(after, before, port, c) for c in ("dropped", "forwarded", "reflected")}
        passed = got == 0 and d["dropped"] == COUNT and d["forwarded"] == d["reflected"] == 0
        text = ", ".join(f"{k} +{v}" for k, v in d.items())
        return Check(name, passed, f"{what}: {got}/{COUNT} arrived at {dst.name}; {port}: {text}")

    def spoof(tag: bytes) -> None:
        frames = [udp_frame(SPOOF_MAC, vm3.mac, vm2.ip, vm3.ip, tag + b"%d" % i) for i in range(COUNT)]
        lab.send_raw(vm2, frames)

    checks.append(blocked("spoofed source MAC dropped", f"vm2 as {SPOOF_MAC}", spoof, vm3, "b1"))
    checks.append(blocked("unassociated VM dropped", "vm5 (no VSI)", lambda tag: lab.send(vm5, vm1, tag), vm1, "b1"))
    started = time.monotonic()
    res = lab.vsi(vm2, "deassoc")
    lab.timings["deassoc_s"] = round(time.monotonic() - started, 3)
    _wait(  # its untagged admission entry ("b1" . MAC) is gone
        "vm2's entry removed",
        lambda: vm2.mac not in _run(["nft", "list", "set", "bridge", TABLE, "untagged"], ns=lab.ns("br")),
        5,
    )
    chk = blocked(
        "deassociated VM stops",
        f"vm2 after deassoc (answer {res.get('mode')})",
        lambda t: lab.send(vm2, vm3, t),
        vm3,
        "b1",
    )
    checks.append(chk)
    return checks


def mqtt_check(lab: Lab) -> Check:
    """The stations' retained VSI states, read back from the broker, say "associated"."""
    want = {vm.uuid for vm in VMS if vm.associate}

    def states() -> dict[str, str]:
        rows = lab.ctl("watch", "--once", "--wait", "1.0")
        rows = rows.get("vsis", rows) if isinstance(rows, dict) else rows
        return {str(r.get("uuid") or r.get("vsi", {}).get("uuid")): str(r.get("state")) for r in rows}

    got: dict[str, str] = {}

    def all_associated() -> bool | None:
        got.clear()
        got.update(states())
        return True if all(got.get(u) == "assoc" for u in want) else None

    with contextlib.suppress(DemoError):
        _wait("the retained VSI states", all_associated, 10, 0.5)
    n = sum(1 for u in want if got.get(u) == "assoc")
    return Check(
        "retained MQTT state", n == len(want), f"{n}/{len(want)} VSIs read 'assoc' on the broker (evb ctl watch --once)"
    )


def ladder(lab: Lab) -> str | None:
    """The text ladder of station 1's VDP exchanges (tshark capture on its uplink), None without tshark."""
    proc = lab.procs.get("tshark")
    if proc is None:
        return None
    time.sleep(0.3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    pcap = lab.workdir / "station1.pcap"
    res = subprocess.run(
        [sys.executable, "-m", "evb.cli", "decode", "--ladder", "--no-lldp", str(pcap)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return res.stdout if res.stdout else res.stderr


def _prefix() -> str:
    existing = set(_run(["ip", "netns", "list"]).split())
    for n in range(256):
        p = f"evd{os.getpid() & 0xFFFF:04x}{n:02x}"
        if not any(e.startswith(p + "-") for e in existing):
            return p
    raise DemoError("no free namespace prefix")


def demo(*, keep: bool = False, capture: bool = True, mqtt: bool = False) -> tuple[dict[str, Any], Lab | None]:
    t0 = time.monotonic()
    lab = Lab(_prefix(), Path(tempfile.mkdtemp(prefix="evb-lab-demo-")), mqtt=mqtt)
    result: dict[str, Any] = {"prefix": lab.prefix, "workdir": str(lab.workdir), "timings": lab.timings}
    try:
        lab.build()
        if lab.broker is not None:
            result["mqtt"] = {"broker": lab.broker.url, "driven_by": "evb ctl", "policy": "evb ctl vtdb put"}
        lab.timings["build_s"] = round(time.monotonic() - t0, 3)
        t = time.monotonic()
        lab.start_agents(capture and shutil.which("tshark") is not None)
        lab.timings["evb_s"] = round(time.monotonic() - t, 3)
        t = time.monotonic()
        assoc = {vm.name: lab.vsi(vm, "assoc").get("mode") for vm in VMS if vm.associate}
        lab.timings["assoc_s"] = round(time.monotonic() - t, 3)
        result["associated"] = assoc
        t = time.monotonic()
        checks = [mqtt_check(lab)] if mqtt else []
        checks += run_checks(lab)
        lab.timings["checks_s"] = round(time.monotonic() - t, 3)
        result["checks"] = [c.as_dict() for c in checks]
        result["dataplane"] = lab.dataplane()
        result["ladder"] = ladder(lab)
    except DemoError as exc:
        lab.close()
        raise DemoError(f"{exc} (agents' logs kept in {lab.workdir})") from None
    except BaseException:  # Ctrl-C, SIGTERM, a bug: nothing stays behind
        lab.close()
        shutil.rmtree(lab.workdir, ignore_errors=True)
        raise
    if keep:
        return result, lab
    t = time.monotonic()
    lab.close()
    if all(c["passed"] for c in result["checks"]):
        shutil.rmtree(lab.workdir, ignore_errors=True)  # a failed check keeps the logs (result["workdir"])
    lab.timings["teardown_s"] = round(time.monotonic() - t, 3)
    lab.timings["total_s"] = round(time.monotonic() - t0, 3)
    return result, None


def report_text(result: dict[str, Any]) -> str:
    lines = ["evb lab demo: checks", ""]
    width = max(len(c["name"]) for c in result["checks"])
    lines.append(f"  {'check':<{width}}  passed  detail")
    for c in result["checks"]:
        lines.append(f"  {c['name']:<{width}}  {'yes' if c['passed'] else 'NO':<6}  {c['detail']}")
    lines.append("")
    if result.get("mqtt"):
        lines.append(
            f"VSIs driven with `evb ctl` over MQTT (broker {result['mqtt']['broker']}); the bridge's "
            "VSI type database put there with `evb ctl vtdb put`"
        )
    lines.append("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in result["timings"].items()))
    if result.get("ladder"):
        lines += ["", "VDP exchanges of station 1 (capture on h1's uplink):", result["ladder"].rstrip()]
    return "\n".join(lines)


def keep_text(lab: Lab) -> str:
    ns = lab.namespaces
    ctl = []
    if lab.broker is not None:
        b = f"--broker {lab.broker.url}"
        vm = VMS[4]
        ctl = [
            f"drive it over MQTT (broker {lab.broker.url}, log {lab.broker.log_file}):",
            f"  evb ctl watch {b}",
            f"  evb ctl assoc {b} --host h{vm.host} --iface uplink --uuid {vm.uuid} --type-id {TYPE_ID} "
            f"--type-version {TYPE_VERSION} --manager-id {MANAGER} --filter 1-{vm.mac}",
            f"  evb ctl vtdb list {b}",
            f"  evb ctl vtdb put {b} --manager {MANAGER} --type-id {TYPE_ID} --version {TYPE_VERSION} "
            f"""--json '{{"vlans": [1], "macs": ["{VMS[0].mac}"]}}'   # the bridge releases all VMs but vm1""",
        ]
    return "\n".join(
        [
            "",
            f"the lab is up (files in {lab.workdir}); namespaces: {' '.join(ns)}",
            f"  ip netns exec {lab.ns('br')} evb bridge status --socket {lab.br_socket}",
            f"  ip netns exec {lab.ns('h1')} evb status --socket {lab.st_socket(1)}",
            f"  ip netns exec {lab.ns('vm1')} ip addr show eth0",
            f"  ip netns exec {lab.ns('br')} nft list table bridge {TABLE}",
            *ctl,
            "tear down (the agents first, then the namespaces):",
            "  kill " + " ".join(str(p.pid) for p in lab.procs.values() if p.poll() is None),
            "  " + "; ".join(f"ip netns del {n}" for n in ns),
            *(
                [f"  ip link del {lab.mgmt.name}; kill {lab.broker.proc.pid}"]
                if lab.mgmt and lab.broker and lab.broker.proc
                else []
            ),
        ]
    )


def cmd_lab_demo(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("evb lab demo: needs root (network namespaces, bridge, nftables)", file=sys.stderr)
        return 2
    tools = ("ip", "bridge", "nft", *(("mosquitto",) if args.mqtt else ()))
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        print(f"evb lab demo: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    old = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM tears down like Ctrl-C
    try:
        result, lab = demo(keep=args.keep, capture=not args.no_capture, mqtt=args.mqtt)
    except DemoError as exc:
        print(f"evb lab demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old)
    ok = all(c["passed"] for c in result["checks"])
    if args.json:
        print(json.dumps(result | {"passed": ok}))
    else:
        print(report_text(result))
    if lab is not None:
        print(keep_text(lab), file=sys.stderr if args.json else sys.stdout)
    return 0 if ok else 1


def add_parser(sub: Any) -> None:
    lab = sub.add_parser("lab", help="network-namespace labs (root)")
    labs = lab.add_subparsers(dest="lab_cmd", metavar="COMMAND")
    p = labs.add_parser(
        "demo",
        help="build a VEPA lab (bridge, 2 hypervisors, 5 VMs), check forwarding/filtering, tear it down",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--keep", action="store_true", help="leave the lab up (prints how to explore and tear down)")
    p.add_argument("--no-capture", action="store_true", help="no tshark capture / ladder")
    p.add_argument(
        "--mqtt",
        action="store_true",
        help="also run a mosquitto broker; the agents take commands from it and the demo drives the VSIs "
        "with `evb ctl` (needs mosquitto)",
    )
    p.set_defaults(func=cmd_lab_demo)
