"""The ``kernel`` data plane (evb/vepa_bridge/kernel.py) live: Linux bridge + nftables, two stations.

Topology (three network namespaces, names of ``interop.lab``'s pattern so a killed run's are swept):

    station 1 (P-st)  uplink s1 ==veth== b1 \\
                                              evbbr bridge (P-br): ``evb bridge run --dataplane kernel``
    station 2 (Q-st)  uplink s2 ==veth== b2 /

Each station namespace runs our station agent on its uplink; the "VMs" behind it are raw
AF_PACKET senders with chosen source MACs and VLAN tags (no macvlan needed: what the bridge
sees is the same). The test process opens its sockets inside the namespaces (``setns`` on its
own thread, then back) and counts frames itself: there is no ping here. "Nothing arrived" is
decided without sleeping: a legitimate sentinel frame is sent after the frames that must not
arrive, on the same path; once the sentinel is in, anything forwarded before it would be too.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import re
import shutil
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evb.control import ControlError
from evb.control_client import ConnectError
from evb.vepa_bridge.kernel import decode_raw
from interop.lab import Agent, Process, Side, list_namespaces, run, toml_text, wait_for

_MISSING = [tool for tool in ("ip", "bridge", "nft") if shutil.which(tool) is None]
SKIP = "needs root" if os.geteuid() != 0 else (f"missing: {', '.join(_MISSING)}" if _MISSING else None)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

ETHERTYPE = 0x88B5  #: IEEE 802 local experimental EtherType 1: the test frames
BRIDGE = "evbkbr0"
TABLE = "evbk"
ST_MAC = ("02:00:00:00:0a:01", "02:00:00:00:0a:02")
BR_MAC = ("02:00:00:00:0b:01", "02:00:00:00:0b:02")
# the VMs: station 1 has A1, A2 (untagged = default VID 1) and A3 on VID 20; station 2 has B1 (VID 1), B2 (VID 20)
A1, A2, A3 = "02:00:00:00:01:01", "02:00:00:00:01:02", "02:00:00:00:01:03"
B1, B2 = "02:00:00:00:02:01", "02:00:00:00:02:02"
SPOOF = "02:00:00:00:66:66"
VSIS_1 = [
    ("11111111-0000-0000-0000-000000000001", ["1-" + A1, "1-" + A2]),
    ("11111111-0000-0000-0000-000000000002", ["20-" + A3]),
]
VSIS_2 = [("22222222-0000-0000-0000-000000000001", ["1-" + B1]), ("22222222-0000-0000-0000-000000000002", ["20-" + B2])]
SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10
_AUX = struct.Struct("=IIIHHHH")
_libc = ctypes.CDLL(None, use_errno=True)
_seq = itertools.count(1)


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the block with this thread in network namespace ``ns`` (sockets made there stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        yield
    finally:
        _libc.setns(own, 0x40000000)
        os.close(own)
        os.close(target)


class Tap:
    """An AF_PACKET socket on one interface that sends test frames and collects the incoming ones."""

    def __init__(self, ns: str, ifname: str) -> None:
        with in_netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind((ifname, 0x0003))
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.setblocking(False)
        self.got: list[tuple[str, str, int | None, bytes]] = []  #: (src, dst, vid or None, payload)

    def send(self, src: str, dst: str, payload: bytes, vid: int | None = None, ethertype: int = ETHERTYPE) -> None:
        tag = struct.pack("!HH", 0x8100, vid) if vid is not None else b""
        frame = mac_bytes(dst) + mac_bytes(src) + tag + struct.pack("!H", ethertype) + payload
        self.sock.send(frame.ljust(60, b"\0"))

    def poll(self) -> list[tuple[str, str, int | None, bytes]]:
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(2048, socket.CMSG_SPACE(_AUX.size))
            except BlockingIOError:
                return self.got
            if addr[2] == socket.PACKET_OUTGOING or len(data) < 14:
                continue
            vid = None
            for level, kind, blob in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, *_rest, tci, _tpid = _AUX.unpack_from(blob)
                    if status & TP_STATUS_VLAN_VALID:
                        vid = tci & 0xFFF
            if struct.unpack_from("!H", data, 12)[0] != ETHERTYPE:
                continue
            self.got.append((data[6:12].hex(":"), data[0:6].hex(":"), vid, data[14:]))

    def payloads(self, marker: bytes) -> list[tuple[str, str, int | None]]:
        return [(s, d, v) for s, d, v, p in self.poll() if p.startswith(marker)]

    def close(self) -> None:
        self.sock.close()


def marker() -> bytes:
    return f"evbk{os.getpid()}-{next(_seq)}:".encode()


@dataclass
class Topo:
    """Three namespaces and the agents in them; the ``lab`` that ``interop.lab.Agent`` expects."""

    workdir: Path
    prefix1: str
    prefix2: str
    namespaces: list[str] = field(default_factory=list)
    procs: list[Process] = field(default_factory=list)

    @property
    def br_ns(self) -> str:
        return f"{self.prefix1}-br"

    def st_ns(self, i: int) -> str:
        return f"{(self.prefix1, self.prefix2)[i]}-st"

    def spawn(self, name: str, cmd: list[str], *, ns: str, log: Path) -> Process:
        proc = Process(name, ["ip", "netns", "exec", ns, *cmd], log)
        self.procs.append(proc)
        return proc

    def up(self) -> None:
        for ns in (self.br_ns, self.st_ns(0), self.st_ns(1)):
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
        for i in range(2):
            peer = ["peer", "name", f"b{i + 1}", "netns", self.br_ns, "address", BR_MAC[i]]
            run(["ip", "link", "add", f"s{i + 1}", "netns", self.st_ns(i), "address", ST_MAC[i], "type", "veth", *peer])
            for ns, ifname in ((self.st_ns(i), f"s{i + 1}"), (self.br_ns, f"b{i + 1}")):
                run(["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"], ns=ns, check=False)
                run(["ip", "-n", ns, "link", "set", ifname, "up"])

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop(timeout=5)
        for ns in self.namespaces:
            run(["ip", "netns", "del", ns], check=False)


class BridgeAgent(Agent):
    """``evb bridge run`` on both ports with the kernel data plane."""

    def _write_config(self) -> None:
        self.config.write_text(toml_text({"bridge": {"ports": ["b1", "b2"]}}))

    def command_line(self) -> list[str]:
        cmd = [sys.executable, "-m", "evb.cli", "bridge", "run", "--config", str(self.config), "--socket", self.socket]
        cmd += ["--port", "b1", "--port", "b2", "--dataplane", "kernel", "--bridge-name", BRIDGE, "--nft-table", TABLE]
        return [*cmd, "--log-format", "json", "--log-level", self.log_level]

    def dataplane(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status")["dataplane"]
        return result

    def counters(self, port: str) -> dict[str, int]:
        result: dict[str, int] = self.dataplane()["ports"][port]["counters"]
        return result


def _prefixes() -> tuple[str, str]:
    existing = set(list_namespaces())
    free = [
        p
        for n in range(0xF0, 0x100)
        if (p := f"evl{os.getpid() & 0xFFFFFF:06x}{n:02x}") + "-st" not in existing and p + "-br" not in existing
    ]
    return free[0], free[1]


def set_elements(ns: str) -> dict[str, set[str]]:
    """The nft sets' elements as ``ifname/mac/vid`` texts per set (each key leads with the port:
    ``b1/02:..:01/10``; ``untagged_vids`` holds ports only); empty dict: no table."""
    out: dict[str, set[str]] = {}
    res = run(["nft", "-j", "list", "table", "bridge", TABLE], ns=ns, check=False)
    if res.returncode != 0:
        return out
    for item in json.loads(res.stdout)["nftables"]:
        s = item.get("set") or item.get("map")  # allowed is a verdict map: [element, verdict] pairs
        if s:
            name = s["name"]
            elems = [e[0] if isinstance(e, list) else e for e in s.get("elem", [])]
            vals = [e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e for e in elems]
            texts = out.setdefault(name, set())
            for v in vals:
                port, *rest = v["concat"] if isinstance(v, dict) else [v]
                parts = [str(port)]
                for r in rest:
                    if name.removeprefix("held_") in ("allowed", "vids"):  # raw: MAC . TPID . VID, TPID . VID
                        parts.append(decode_raw(hex(int(r, 16) if isinstance(r, str) else r)))
                    else:
                        parts.append(str(r))
                texts.add("/".join(parts))
    return out


def hairpin(ns: str, port: str) -> bool:
    links = json.loads(run(["bridge", "-j", "-d", "link", "show", "dev", port], ns=ns).stdout)
    return bool(links and links[0].get("hairpin"))


def exists(ns: str, what: str) -> bool:
    if what == "table":
        return run(["nft", "list", "table", "bridge", TABLE], ns=ns, check=False).returncode == 0
    return run(["ip", "link", "show", "dev", BRIDGE], ns=ns, check=False).returncode == 0


EXPECTED = {
    "allowed": {f"b1/{A1}/1", f"b1/{A2}/1", f"b1/{A3}/20", f"b2/{B1}/1", f"b2/{B2}/20"},
    "untagged": {f"b1/{A1}", f"b1/{A2}", f"b2/{B1}"},
    "vids": set(),
    "untagged_vids": set(),
} | {f"held_{name}": set() for name in ("allowed", "untagged", "vids", "untagged_vids")}


@contextlib.contextmanager
def running_topology(
    workdir: Path, prefixes: tuple[str, str], bridge_cls: type[BridgeAgent]
) -> Iterator[tuple[Topo, BridgeAgent, list[Agent]]]:
    """The three namespaces up, ``bridge_cls`` on b1/b2, our station agent on s1 and s2, EVB up."""
    t = Topo(workdir, *prefixes)
    try:
        t.up()
        br = bridge_cls(t, Side("bridge", t.br_ns, "b1", BR_MAC[0]), {}, {}, name="bridge")  # type: ignore[arg-type]
        br.start()
        stations = []
        for i in range(2):
            side = Side("station", t.st_ns(i), f"s{i + 1}", ST_MAC[i])
            st = Agent(t, side, {}, {}, name=f"station{i + 1}")  # type: ignore[arg-type]
            st.start()
            stations.append(st)
        for st in stations:
            st.wait_evb()
        yield t, br, stations
    finally:
        t.close()


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Topo, BridgeAgent, list[Agent]]]:
    with running_topology(Path(tmp_path_factory.mktemp("kdp")), _prefixes(), BridgeAgent) as running:
        yield running


def associate_all(stations: list[Agent]) -> None:
    for st, vsis in zip(stations, (VSIS_1, VSIS_2), strict=True):
        for uuid, filters in vsis:
            res = st.request("assoc", uuid=uuid, filters=filters)
            assert res["mode"] == "assoc", res


def wait_elements(ns: str, expected: dict[str, set[str]]) -> None:
    wait_for(f"nft sets == {expected}", lambda: set_elements(ns) == expected, timeout=15)


def learn(tap1: Tap, tap2: Tap) -> None:
    """Every VM sends one frame to an unknown address, so that the bridge learns where it is.

    Unknown unicast is flooded, and with reflective relay (hairpin) back out the ingress port
    too: that is what a VEPA's adjacent bridge does, and is counted as ``reflected``.
    """
    m = marker()
    for src, vid in ((A1, None), (A2, None), (A3, 20)):
        tap1.send(src, "02:00:00:00:ee:ee", m, vid=vid)
    for src, vid in ((B1, None), (B2, 20)):
        tap2.send(src, "02:00:00:00:ee:ee", m, vid=vid)
    wait_for("the learning frames", lambda: len(tap1.payloads(m)) == 5 and len(tap2.payloads(m)) == 5, timeout=5)


def test_associate_programs_sets_and_forwarding(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    t, br, stations = topo
    wait_for("hairpin on both ports", lambda: hairpin(t.br_ns, "b1") and hairpin(t.br_ns, "b2"), timeout=15)
    assert set_elements(t.br_ns) == {k: set() for k in EXPECTED}
    associate_all(stations)
    wait_elements(t.br_ns, EXPECTED)

    tap1, tap2 = Tap(t.st_ns(0), "s1"), Tap(t.st_ns(1), "s2")
    try:
        learn(tap1, tap2)
        before1, before2 = br.counters("b1"), br.counters("b2")
        m = marker()
        tap1.send(A1, B1, m)  # untagged A1 -> B1: forwarded b1 -> b2
        tap1.send(A3, B2, m, vid=20)  # tagged A3 -> B2 on VID 20
        wait_for("A1 and A3 frames at station 2", lambda: len(tap2.payloads(m)) >= 2, timeout=5)
        assert tap2.payloads(m) == [(A1, B1, None), (A3, B2, 20)]
        # A2 -> A1, both behind station 1: VEPA sends it up, the bridge hairpins it back (A1 learned on b1)
        tap1.send(A2, A1, m)
        wait_for("A2 -> A1 reflected", lambda: (A2, A1, None) in tap1.payloads(m), timeout=5)
        assert tap1.payloads(m) == [(A2, A1, None)]
        after1, after2 = br.counters("b1"), br.counters("b2")
        assert after1["forwarded"] - before1["forwarded"] == 2
        assert after1["reflected"] - before1["reflected"] == 1
        assert after2 == before2  # nothing came in from station 2
        assert after1["dropped"] == before1["dropped"]
        assert tap2.payloads(m) == [(A1, B1, None), (A3, B2, 20)]  # the reflected frame did not go to b2
        text = run([sys.executable, "-m", "evb.cli", "bridge", "status", "--socket", br.socket], ns=t.br_ns).stdout
        row = re.compile(rf"^b1 +on +{after1['forwarded']} +{after1['reflected']} +{after1['dropped']} ", re.M)
        assert row.search(text), text  # the per-port table: PORT HAIRPIN FORWARDED REFLECTED DROPPED CONTROL
        # per VSI, the kernel counts the frames it let through (forwarded and reflected together)
        vsi_a = "11111111-0000-0000-0000-000000000001"
        assert re.search(rf"^b1 +labmgr/{vsi_a} +[1-9]", text, re.M), text
    finally:
        tap1.close()
        tap2.close()


def test_spoofed_frames_dropped_and_counted(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    t, br, stations = topo
    associate_all(stations)
    wait_elements(t.br_ns, EXPECTED)
    tap1, tap2 = Tap(t.st_ns(0), "s1"), Tap(t.st_ns(1), "s2")
    try:
        tap2.send(B1, A1, b"learn")
        before = br.counters("b1")
        bad = marker()
        for i in range(1000):  # unassociated MAC; an associated MAC on the wrong VID; a VID-20 MAC untagged
            if i % 3 == 0:
                tap1.send(SPOOF, B1, bad)
            elif i % 3 == 1:
                tap1.send(A1, B1, bad, vid=20)
            else:
                tap1.send(A3, B1, bad)
        good = marker()
        tap1.send(A1, B1, good)  # the sentinel, on the same path after them
        wait_for("the sentinel", lambda: tap2.payloads(good), timeout=5)
        assert tap2.payloads(bad) == []
        assert [p for p in tap1.payloads(bad)] == []
        after = br.counters("b1")
        assert after["dropped"] - before["dropped"] == 1000
        assert after["forwarded"] - before["forwarded"] == 1
        # B1 (associated on b2) claimed on b1: dropped before the bridge learns, so B1 stays on b2
        for _ in range(5):
            tap1.send(B1, A2, bad)
        wait_for("5 more dropped", lambda: br.counters("b1")["dropped"] - after["dropped"] == 5, timeout=5)
        fdb = json.loads(run(["bridge", "-j", "fdb", "show", "br", BRIDGE], ns=t.br_ns).stdout)
        assert {e["ifname"] for e in fdb if e["mac"] == B1 and "vlan" not in e} == {"b2"}
        prio = marker()  # priority 5 on VID 20: the TCI's priority bits are no part of the admission key
        tap1.send(A3, B2, prio, vid=(5 << 13) | 20)
        wait_for("the priority-tagged frame", lambda: tap2.payloads(prio), timeout=5)
        assert tap2.payloads(prio) == [(A3, B2, 20)]
    finally:
        tap1.close()
        tap2.close()


def test_link_local_frames_not_relayed_but_seen_on_the_port(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    t, br, stations = topo
    associate_all(stations)
    wait_elements(t.br_ns, EXPECTED)
    tap1, tap2 = Tap(t.st_ns(0), "s1"), Tap(t.st_ns(1), "s2")
    port_tap = Tap(t.br_ns, "b1")  # what the control plane's AF_PACKET socket on b1 sees
    try:
        before = br.counters("b1")
        m = marker()
        for last in range(16):  # 01:80:c2:00:00:00 .. 0f, from an associated source
            tap1.send(A1, f"01:80:c2:00:00:{last:02x}", m)
        good = marker()
        tap1.send(A1, "ff:ff:ff:ff:ff:ff", good)  # sentinel: a broadcast is flooded to b2
        wait_for("the sentinel", lambda: tap2.payloads(good), timeout=5)
        wait_for("16 link-local frames on b1", lambda: len(port_tap.payloads(m)) == 16, timeout=5)
        assert tap2.payloads(m) == []
        after = br.counters("b1")
        # The bridge keeps all 16 to itself: 01..0f are passed up by its rx handler, 00 (which it would flood,
        # STP off) by the multicast entry that only the bridge joined; chain "local" counts what passes up.
        assert after["control"] - before["control"] >= 1
        assert after["dropped"] == before["dropped"]
        # and the agents' own LLDP/ECP keep working through the enslaved port: EVB is still up
        assert br.call("status")["ports"][0]["evb"]["negotiated"]
    finally:
        for tap in (tap1, tap2, port_tap):
            tap.close()


def test_vid_only_vsi_admits_any_mac_on_its_vlan(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    """Format 1 (VID, no MAC): the VSI is the VLAN, any source MAC tagged with it passes; the
    VSI on the default VID also admits untagged frames from any MAC."""
    t, br, stations = topo
    associate_all(stations)
    uuid = "22222222-0000-0000-0000-0000000000f1"
    assert stations[1].request("assoc", uuid=uuid, filters=["30", "1"])["mode"] == "assoc"
    wait_elements(t.br_ns, EXPECTED | {"vids": {"b2/30", "b2/1"}, "untagged_vids": {"b2"}})
    tap1, tap2 = Tap(t.st_ns(0), "s1"), Tap(t.st_ns(1), "s2")
    try:
        before = br.counters("b2")
        m, bad = marker(), marker()
        tap2.send("02:00:00:00:77:01", "ff:ff:ff:ff:ff:ff", m, vid=30)  # any MAC on VID 30
        tap2.send("02:00:00:00:77:02", "ff:ff:ff:ff:ff:ff", m)  # any MAC untagged (default VID 1)
        tap2.send("02:00:00:00:77:03", "ff:ff:ff:ff:ff:ff", bad, vid=31)  # VID 31: nobody's
        tap2.send(B1, "ff:ff:ff:ff:ff:ff", bad, vid=20)  # B1 is associated on VID 1 only
        tap2.send(B2, "ff:ff:ff:ff:ff:ff", m, vid=20)  # the sentinel
        wait_for("3 frames at station 1", lambda: len(tap1.payloads(m)) >= 3, timeout=5)
        assert tap1.payloads(m) == [
            ("02:00:00:00:77:01", "ff:ff:ff:ff:ff:ff", 30),
            ("02:00:00:00:77:02", "ff:ff:ff:ff:ff:ff", None),
            (B2, "ff:ff:ff:ff:ff:ff", 20),
        ]
        assert tap1.payloads(bad) == []
        assert br.counters("b2")["dropped"] - before["dropped"] == 2  # VID 31, and B1 on VID 20
    finally:
        tap1.close()
        tap2.close()
    assert stations[1].request("deassoc", uuid=uuid, filters=["30", "1"])["mode"] == "deassoc"
    wait_elements(t.br_ns, EXPECTED)


def test_deassociate_removes_exactly_its_entries(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    t, _br, stations = topo
    associate_all(stations)
    wait_elements(t.br_ns, EXPECTED)
    uuid, filters = VSIS_1[0]
    assert stations[0].request("deassoc", uuid=uuid, filters=filters)["mode"] == "deassoc"
    left = {k: set(v) for k, v in EXPECTED.items()}
    left["allowed"] -= {f"b1/{A1}/1", f"b1/{A2}/1"}
    left["untagged"] -= {f"b1/{A1}", f"b1/{A2}"}
    wait_elements(t.br_ns, left)
    for st, vsis in ((stations[0], VSIS_1[1:]), (stations[1], VSIS_2)):
        for uuid, filters in vsis:
            assert st.request("deassoc", uuid=uuid, filters=filters)["mode"] == "deassoc"
    wait_elements(t.br_ns, {k: set() for k in EXPECTED})


def test_station_loss_removes_its_entries_and_hairpin(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    t, _br, stations = topo
    associate_all(stations)
    wait_elements(t.br_ns, EXPECTED)
    stations[1].stop()  # SIGTERM: LLDP TTL 0, the bridge loses EVB on b2
    left = EXPECTED | {"allowed": {f"b1/{A1}/1", f"b1/{A2}/1", f"b1/{A3}/20"}, "untagged": {f"b1/{A1}", f"b1/{A2}"}}
    wait_elements(t.br_ns, left)
    wait_for("hairpin off on b2", lambda: not hairpin(t.br_ns, "b2"), timeout=10)
    assert hairpin(t.br_ns, "b1")
    stations[1].start()
    stations[1].wait_evb()
    wait_for("hairpin back on b2", lambda: hairpin(t.br_ns, "b2"), timeout=10)


def test_thousand_vsis_programmed_and_released(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    """1,000 VSIs in one bulk request: the set holds exactly their 1,000 entries, then none."""
    t, br, stations = topo
    for st, vsis in ((stations[0], VSIS_1), (stations[1], VSIS_2)):
        for uuid, filters in vsis:
            with contextlib.suppress(ControlError):  # those still associated from earlier tests
                st.request("deassoc", uuid=uuid, filters=filters)
    wait_elements(t.br_ns, {k: set() for k in EXPECTED})
    macs = [f"02:00:00:01:{i >> 8:02x}:{i & 0xFF:02x}" for i in range(1000)]
    items = [
        {"uuid": f"33333333-0000-0000-0000-{i:012x}", "filters": [f"100-{mac}"], "manager_id": "labmgr"}
        | {"type_id": 5, "type_version": 4}
        for i, mac in enumerate(macs)
    ]
    started = time.monotonic()
    res = stations[0].call("vsi.bulk", {"mode": "assoc", "vsis": items, "wait": True}, timeout=120)
    assert (res["ok"], res["failed"]) == (1000, 0), res
    wait_elements(t.br_ns, {k: set() for k in EXPECTED} | {"allowed": {f"b1/{m}/100" for m in macs}})
    print(f"1000 VSIs associated and programmed in {time.monotonic() - started:.2f} s")
    assert br.dataplane()["vsis"] == 1000
    started = time.monotonic()
    res = stations[0].call("vsi.bulk", {"mode": "deassoc", "vsis": items, "wait": True}, timeout=120)
    assert (res["ok"], res["failed"]) == (1000, 0), res
    wait_elements(t.br_ns, {k: set() for k in EXPECTED})
    print(f"1000 VSIs de-associated and removed in {time.monotonic() - started:.2f} s")
    assert br.dataplane()["vsis"] == 0


def test_crashed_bridge_cleaned_up_on_start_and_on_exit(topo: tuple[Topo, BridgeAgent, list[Agent]]) -> None:
    t, br, stations = topo
    associate_all(stations)
    wait_elements(t.br_ns, EXPECTED)
    for st in stations:
        st.kill()  # no station will re-associate after the bridge restarts
    br.kill()  # a crash: the table and the bridge stay behind
    assert exists(t.br_ns, "table") and exists(t.br_ns, "bridge")
    assert set_elements(t.br_ns) == EXPECTED
    br.start()
    assert set_elements(t.br_ns) == {k: set() for k in EXPECTED}  # a fresh table, the stale entries gone
    masters = json.loads(run(["ip", "-j", "link", "show", "master", BRIDGE], ns=t.br_ns).stdout)
    assert sorted(link["ifname"] for link in masters) == ["b1", "b2"]
    assert br.stop() == 0
    assert not exists(t.br_ns, "table") and not exists(t.br_ns, "bridge")
    with pytest.raises((ConnectError, OSError)):
        br.call("status", timeout=1)


class LeanBridgeAgent(BridgeAgent):
    """The kernel data plane without forward counters (``--no-forward-counters``)."""

    def command_line(self) -> list[str]:
        return [*super().command_line(), "--no-forward-counters"]


def test_without_forward_counters_ports_count_passed(tmp_path: Path) -> None:
    with running_topology(tmp_path, _prefixes(), LeanBridgeAgent) as (t, br, stations):
        assert br.dataplane()["forward_counters"] is False
        associate_all(stations)
        wait_elements(t.br_ns, EXPECTED)
        tap1, tap2 = Tap(t.st_ns(0), "s1"), Tap(t.st_ns(1), "s2")
        try:
            learn(tap1, tap2)
            before = br.counters("b1")
            m = marker()
            tap1.send(A1, B1, m)  # forwarded
            tap1.send(A2, A1, m)  # reflected
            for _ in range(5):
                tap1.send(SPOOF, B1, m)  # dropped
            wait_for("A2 -> A1 reflected", lambda: (A2, A1, None) in tap1.payloads(m), timeout=5)
            wait_for("A1 -> B1 forwarded", lambda: (A1, B1, None) in tap2.payloads(m), timeout=5)
            after = br.counters("b1")
            assert after["forwarded"] is None and after["reflected"] is None
            assert after["passed"] - before["passed"] == 2 and after["dropped"] - before["dropped"] == 5
            table = run(["nft", "list", "table", "bridge", TABLE], ns=t.br_ns).stdout
            assert "hook forward" not in table and "forwarded" not in table
            text = run([sys.executable, "-m", "evb.cli", "bridge", "status", "--socket", br.socket], ns=t.br_ns).stdout
            assert re.search(r"^PORT +HAIRPIN +PASSED +DROPPED +CONTROL", text, re.M), text
            assert re.search(rf"^b1 +on +{after['passed']} +{after['dropped']} ", text, re.M), text
        finally:
            tap1.close()
            tap2.close()
