"""The ``emulated`` data plane (evb/vepa_bridge/emulated.py) live: a Python VEPA bridge over AF_PACKET rings.

The topology, the raw-socket "VMs" and the sentinel technique are those of
``test_dataplane_kernel.py`` (imported from there; only helpers, so its tests are not collected
twice): three network namespaces, our station agent on each station's uplink, and
``evb bridge run --dataplane emulated`` on both ports of the bridge namespace. There is no Linux
bridge and no nft table here: the forwarder reads the port interfaces b1/b2 with PACKET_MMAP
rings and writes the admitted frames back out, so everything is checked through what arrives
at the stations and the backend's own counters (control API ``status`` / ``vsi.show``, and the
``evb bridge status`` / ``evb vsi show`` texts).

"Nothing arrived" is decided without sleeping, as in the kernel module: a legitimate sentinel
is sent after the frames that must not arrive, on the same path (one port's ring, read in
order); once it is in, anything relayed before it would be too. Where no frame can pass (a port
without EVB), the port's ``dropped`` counter reaching the number sent says the same: every
frame read is counted exactly once, dropped or relayed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from evb.control import ControlError
from evb.control_client import ConnectError
from interop.lab import Agent, list_namespaces, run, wait_for
from tests.integration.test_dataplane_kernel import (
    A1,
    A2,
    A3,
    B1,
    B2,
    BR_MAC,
    SPOOF,
    VSIS_1,
    VSIS_2,
    Tap,
    Topo,
    associate_all,
    in_netns,
    learn,
    marker,
    running_topology,
)
from tests.integration.test_dataplane_kernel import BridgeAgent as KernelBridgeAgent

SKIP = "needs root" if os.geteuid() != 0 else ("missing: ip" if shutil.which("ip") is None else None)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

BCAST = "ff:ff:ff:ff:ff:ff"
TRAFFIC = ("forwarded", "reflected", "dropped")  #: the port counters our test frames move (not ``control``)
UUID_A, UUID_A3 = VSIS_1[0][0], VSIS_1[1][0]  #: A1+A2 on VID 1; A3 on VID 20 (station 1)
UUID_B1, UUID_B2 = VSIS_2[0][0], VSIS_2[1][0]
ELEMENTS = 5  #: the (MAC, VID) entries of VSIS_1 + VSIS_2
Topology = tuple[Topo, "BridgeAgent", list[Agent]]


class BridgeAgent(KernelBridgeAgent):
    """``evb bridge run`` on both ports with the emulated data plane (no bridge, no nft table)."""

    def command_line(self) -> list[str]:
        cmd = [sys.executable, "-m", "evb.cli", "bridge", "run", "--config", str(self.config), "--socket", self.socket]
        cmd += ["--port", "b1", "--port", "b2", "--dataplane", "emulated"]
        return [*cmd, "--log-format", "json", "--log-level", self.log_level]

    def vsi_counters(self, uuid: str) -> dict[str, int]:
        rows = self.call("vsi.show", {"uuid": uuid})
        assert len(rows) == 1, rows
        result: dict[str, int] = rows[0]["counters"]
        return result


class Sniffer:
    """Every frame coming in on one interface, whatever its EtherType: ``(src, dst)``."""

    def __init__(self, ns: str, ifname: str) -> None:
        with in_netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind((ifname, 0x0003))
        self.sock.setblocking(False)
        self.got: list[tuple[str, str]] = []

    def poll(self) -> list[tuple[str, str]]:
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except BlockingIOError:
                return self.got
            if addr[2] != socket.PACKET_OUTGOING and len(data) >= 14:
                self.got.append((data[6:12].hex(":"), data[0:6].hex(":")))

    def link_local(self) -> list[tuple[str, str]]:
        return [(s, d) for s, d in self.poll() if d.startswith("01:80:c2:00:00:0")]

    def close(self) -> None:
        self.sock.close()


def _prefixes() -> tuple[str, str]:
    """Names of ``interop.lab``'s pattern (``evl<pid><n>``, so ``sweep_stale`` removes a killed
    run's), with ``n`` in e0..ef: the kernel module takes f0..ff, ``Lab`` counts up from 01."""
    existing = set(list_namespaces())
    free = [
        p
        for n in range(0xE0, 0xF0)
        if (p := f"evl{os.getpid() & 0xFFFFFF:06x}{n:02x}") + "-st" not in existing and p + "-br" not in existing
    ]
    return free[0], free[1]


def ports_up(br: BridgeAgent, *, b1: bool = True, b2: bool = True) -> bool:
    ports = br.dataplane()["ports"]
    return all(ports[p]["evb"] is want and ports[p]["hairpin"] is want for p, want in (("b1", b1), ("b2", b2)))


def wait_dataplane(br: BridgeAgent, vsis: int, elements: int) -> dict[str, Any]:
    """Wait until the data plane holds ``vsis`` VSIs with ``elements`` admitted entries; its status."""
    got: list[dict[str, Any]] = []

    def reached() -> bool:
        got.append(br.dataplane())
        return (got[-1]["vsis"], got[-1]["elements"]) == (vsis, elements)

    wait_for(f"{vsis} VSIs, {elements} elements in the data plane", reached, timeout=15)
    return got[-1]


def evb_lost(agent: Agent) -> bool:
    return not agent.status()["evb"]["negotiated"]


def traffic(br: BridgeAgent, port: str) -> dict[str, int]:
    c = br.counters(port)
    return {k: c[k] for k in TRAFFIC}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def wait_dropped(br: BridgeAgent, port: str, before: dict[str, int], n: int) -> None:
    wait_for(f"{n} frames dropped on {port}", lambda: br.counters(port)["dropped"] - before["dropped"] >= n, timeout=10)


def learn_rr_off(tap1: Tap, tap2: Tap) -> None:
    """``learn`` for a station 1 without reflective relay: its frames reach station 2 only."""
    m = marker()
    for src, vid in ((A1, None), (A2, None), (A3, 20)):
        tap1.send(src, "02:00:00:00:ee:ee", m, vid=vid)
    for src, vid in ((B1, None), (B2, 20)):
        tap2.send(src, "02:00:00:00:ee:ee", m, vid=vid)
    wait_for("the learning frames", lambda: len(tap1.payloads(m)) == 2 and len(tap2.payloads(m)) == 5, timeout=5)


def cli(t: Topo, *args: str) -> str:
    return run([sys.executable, "-m", "evb.cli", *args], ns=t.br_ns).stdout


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with running_topology(Path(tmp_path_factory.mktemp("edp")), _prefixes(), BridgeAgent) as running:
        br = running[1]
        assert isinstance(br, BridgeAgent)
        wait_for("EVB and hairpin on both bridge ports", lambda: ports_up(br), timeout=15)
        yield running  # type: ignore[misc]


@pytest.fixture
def taps(topo: Topology) -> Iterator[tuple[Tap, Tap]]:
    t = topo[0]
    tap1, tap2 = Tap(t.st_ns(0), "s1"), Tap(t.st_ns(1), "s2")
    try:
        yield tap1, tap2
    finally:
        tap1.close()
        tap2.close()


def test_associate_forwards_tagged_and_reflects_with_counters(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    t, br, stations = topo
    tap1, tap2 = taps
    for st, vsis in ((stations[0], VSIS_1), (stations[1], VSIS_2)):
        for uuid, filters in vsis:
            with contextlib.suppress(ControlError):  # those still associated from earlier tests
                st.request("deassoc", uuid=uuid, filters=filters)
    dp = wait_dataplane(br, 0, 0)
    assert (dp["kind"], dp["default_vid"]) == ("emulated", 1)
    assert "bridge" not in dp and "table" not in dp
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    assert ports_up(br)

    learnt = br.dataplane()["learnt"]
    learn(tap1, tap2)
    assert br.dataplane()["learnt"] - learnt == 5  # A1, A2 and B1 on VID 1, A3 and B2 on VID 20
    before1, before2 = traffic(br, "b1"), traffic(br, "b2")
    vsi_before = {u: br.vsi_counters(u) for u in (UUID_A, UUID_A3, UUID_B1, UUID_B2)}
    m = marker()
    tap1.send(A1, B1, m)  # untagged A1 -> B1: forwarded b1 -> b2
    tap1.send(A3, B2, m, vid=20)  # tagged A3 -> B2 on VID 20: the tag written back on b2
    wait_for("A1 and A3 frames at station 2", lambda: len(tap2.payloads(m)) >= 2, timeout=5)
    assert tap2.payloads(m) == [(A1, B1, None), (A3, B2, 20)]
    # A2 -> A1, both behind station 1: VEPA sends it up, the bridge reflects it back out b1 (A1 learnt there)
    tap1.send(A2, A1, m)
    wait_for("A2 -> A1 reflected", lambda: (A2, A1, None) in tap1.payloads(m), timeout=5)
    assert tap1.payloads(m) == [(A2, A1, None)]
    assert delta(traffic(br, "b1"), before1) == {"forwarded": 2, "reflected": 1, "dropped": 0}
    assert traffic(br, "b2") == before2  # nothing came in from station 2
    assert tap2.payloads(m) == [(A1, B1, None), (A3, B2, 20)]  # the reflected frame did not go to b2

    vsi_after = {u: br.vsi_counters(u) for u in vsi_before}
    assert delta(vsi_after[UUID_A], vsi_before[UUID_A]) == {"forwarded": 1, "reflected": 1, "dropped": 0}
    assert delta(vsi_after[UUID_A3], vsi_before[UUID_A3]) == {"forwarded": 1, "reflected": 0, "dropped": 0}
    assert vsi_after[UUID_B1] == vsi_before[UUID_B1] and vsi_after[UUID_B2] == vsi_before[UUID_B2]
    # status {"vsis": true}: the same counters on every VSI's row
    rows = {r["vsi"].split("/")[-1]: r for r in br.call("status", {"vsis": True})["vsis"]}
    assert sorted(rows) == sorted([UUID_A, UUID_A3, UUID_B1, UUID_B2])
    assert {u: r["counters"] for u, r in rows.items()} == vsi_after
    assert rows[UUID_A]["port"] == "b1" and rows[UUID_B1]["port"] == "b2"

    after1 = traffic(br, "b1")
    text = cli(t, "bridge", "status", "--socket", br.socket)
    assert "data plane: emulated (AF_PACKET rings), 4 VSIs, default VID 1" in text, text
    # the per-port table: PORT HAIRPIN FORWARDED REFLECTED DROPPED CONTROL
    assert re.search(r"^PORT +HAIRPIN +FORWARDED +REFLECTED +DROPPED +CONTROL *$", text, re.M), text
    row = rf"^b1 +on +{after1['forwarded']} +{after1['reflected']} +{after1['dropped']} +\d+ *$"
    assert re.search(row, text, re.M), text
    assert re.search(r"^b2 +on +\d+ +\d+ +\d+ +\d+ *$", text, re.M), text
    # the per-VSI table: PORT VSI FORWARDED REFLECTED DROPPED
    for uuid, port in ((UUID_A, "b1"), (UUID_A3, "b1"), (UUID_B1, "b2"), (UUID_B2, "b2")):
        c = vsi_after[uuid]
        vsi_row = rf"^{port} +labmgr/{uuid} +{c['forwarded']} +{c['reflected']} +{c['dropped']} *$"
        assert re.search(vsi_row, text, re.M), text
    c = vsi_after[UUID_A]
    shown = cli(t, "vsi", "show", UUID_A, "--socket", br.socket)
    expected = rf"^ *counters: forwarded {c['forwarded']}, reflected {c['reflected']}, dropped 0$"
    assert re.search(expected, shown, re.M), shown


def test_spoofed_and_unassociated_frames_dropped_and_counted(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    _t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    learn(tap1, tap2)  # B1 is known on b2: the sentinel is forwarded, not flooded
    learnt = br.dataplane()["learnt"]
    before = traffic(br, "b1")
    vsi_before = br.vsi_counters(UUID_A)
    bad = marker()
    for _ in range(1000):
        tap1.send(SPOOF, B1, bad)  # a source MAC no VSI has
        tap1.send(A1, B1, bad, vid=30)  # an associated MAC on a VID it was not associated on
    good = marker()
    tap1.send(A1, B1, good)  # the sentinel, on the same path after them
    wait_for("the sentinel", lambda: tap2.payloads(good), timeout=10)
    wait_dropped(br, "b1", before, 2000)
    assert tap2.payloads(bad) == []
    assert tap1.payloads(bad) == []
    assert delta(traffic(br, "b1"), before) == {"forwarded": 1, "reflected": 0, "dropped": 2000}
    # the drops are the port's; the VSI of A1 only counts its one good frame
    assert delta(br.vsi_counters(UUID_A), vsi_before) == {"forwarded": 1, "reflected": 0, "dropped": 0}
    dp = br.dataplane()
    assert dp["ring_drops"] == 0
    assert dp["learnt"] == learnt  # dropped frames teach the bridge nothing (SPOOF stays unknown)


def test_link_local_frames_not_relayed_but_heard_by_the_agent(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    port_sniffer = Sniffer(t.br_ns, "b1")  # everything link-local that reaches b1 (and so the forwarder's ring)
    far_sniffer = Sniffer(t.st_ns(1), "s2")  # what station 2 gets
    try:
        before = br.counters("b1")
        port_before = br.call("status")["ports"][0]
        m = marker()
        for last in range(16):  # 01:80:c2:00:00:00 .. 0f (nearest customer bridge ... LLDP), from A1
            tap1.send(A1, f"01:80:c2:00:00:{last:02x}", m)
        good = marker()
        tap1.send(A1, BCAST, good)  # sentinel: a broadcast from A1 is flooded to b2 (and reflected)
        wait_for("the sentinel", lambda: tap2.payloads(good) and tap1.payloads(good), timeout=5)
        assert tap2.payloads(m) == [] and tap1.payloads(m) == []
        # the agents' own control plane still works through the ports: one VDP request and its answer
        # (ECP to 01:80:c2:00:00:00) go through the bridge agent, not through the forwarder
        uuid, filters = VSIS_1[0]
        assert stations[0].request("assoc", uuid=uuid, filters=filters)["mode"] == "assoc"
        after = br.counters("b1")
        seen = port_sniffer.link_local()
        ours = [f for f in seen if f[0] == A1]
        assert len(ours) == 16  # all of them reached the port
        # every link-local frame the ring read is counted ``control``: ours, and the station's LLDP/ECP
        assert 16 < after["control"] - before["control"] <= len(seen)
        assert {k: after[k] - before[k] for k in TRAFFIC} == {"forwarded": 1, "reflected": 1, "dropped": 0}
        port_after = br.call("status")["ports"][0]
        assert port_after["ifname"] == "b1" and port_after["evb"]["negotiated"]
        assert port_after["frames"]["frames_in"] > port_before["frames"]["frames_in"]
        assert port_after["vdp"]["requests"] + port_after["vdp"]["refreshes"] > (
            port_before["vdp"]["requests"] + port_before["vdp"]["refreshes"]
        )
        # and nothing link-local from station 1's side reached station 2: only bridge port b2's own frames
        assert [f for f in far_sniffer.link_local() if f[0] != BR_MAC[1]] == []
    finally:
        port_sniffer.close()
        far_sniffer.close()


def test_vid_only_vsi_admits_any_mac_on_its_vlan(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    """Format 1 (VID, no MAC): the VSI is the VLAN, any source MAC tagged with it passes; the
    VSI on the default VID also admits untagged frames from any MAC."""
    _t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    uuid = "22222222-0000-0000-0000-0000000000f1"
    assert stations[1].request("assoc", uuid=uuid, filters=["30", "1"])["mode"] == "assoc"
    wait_dataplane(br, 5, ELEMENTS + 2)
    try:
        before = traffic(br, "b2")
        vsi_before = br.vsi_counters(uuid)
        m, bad = marker(), marker()
        tap2.send("02:00:00:00:77:01", BCAST, m, vid=30)  # any MAC on VID 30
        tap2.send("02:00:00:00:77:02", BCAST, m)  # any MAC untagged (default VID 1)
        tap2.send("02:00:00:00:77:03", BCAST, bad, vid=31)  # VID 31: nobody's
        tap2.send(B1, BCAST, bad, vid=20)  # B1 is associated on VID 1 only
        tap2.send(B2, BCAST, m, vid=20)  # the sentinel
        wait_for("3 frames at station 1", lambda: len(tap1.payloads(m)) >= 3, timeout=5)
        assert tap1.payloads(m) == [
            ("02:00:00:00:77:01", BCAST, 30),
            ("02:00:00:00:77:02", BCAST, None),
            (B2, BCAST, 20),
        ]
        assert tap1.payloads(bad) == [] and tap2.payloads(bad) == []
        # each broadcast leaves by b1 (forwarded) and back out b2 (reflected: RR is on)
        assert delta(traffic(br, "b2"), before) == {"forwarded": 3, "reflected": 3, "dropped": 2}
        assert delta(br.vsi_counters(uuid), vsi_before) == {"forwarded": 2, "reflected": 2, "dropped": 0}
    finally:
        assert stations[1].request("deassoc", uuid=uuid, filters=["30", "1"])["mode"] == "deassoc"
    wait_dataplane(br, 4, ELEMENTS)


def test_preassociated_vsi_dropped_and_counted_until_associated(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    _t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    a4 = "02:00:00:00:01:04"
    uuid, filters = "11111111-0000-0000-0000-0000000000a4", ["1-" + a4]
    assert stations[0].request("preassoc", uuid=uuid, filters=filters)["mode"] == "preassoc"
    wait_dataplane(br, 5, ELEMENTS)  # held, not admitted
    try:
        assert br.vsi_counters(uuid) == {"forwarded": 0, "reflected": 0, "dropped": 0}
        before = traffic(br, "b1")
        bad, good = marker(), marker()
        for _ in range(10):
            tap1.send(a4, BCAST, bad)
        tap1.send(A1, BCAST, good)  # the sentinel
        wait_for("the sentinel", lambda: tap2.payloads(good), timeout=5)
        assert tap2.payloads(bad) == [] and tap1.payloads(bad) == []
        wait_dropped(br, "b1", before, 10)
        assert delta(traffic(br, "b1"), before) == {"forwarded": 1, "reflected": 1, "dropped": 10}
        assert br.vsi_counters(uuid) == {"forwarded": 0, "reflected": 0, "dropped": 10}
        shown = cli(topo[0], "vsi", "show", uuid, "--socket", br.socket)
        assert re.search(r"^ *counters: forwarded 0, reflected 0, dropped 10$", shown, re.M), shown

        assert stations[0].request("assoc", uuid=uuid, filters=filters)["mode"] == "assoc"
        wait_dataplane(br, 5, ELEMENTS + 1)
        m = marker()
        tap1.send(a4, BCAST, m)
        wait_for("A4's frame at station 2", lambda: tap2.payloads(m), timeout=5)
        assert tap2.payloads(m) == [(a4, BCAST, None)]
        # the counters stay with the VSI from pre-associate to associate
        assert br.vsi_counters(uuid) == {"forwarded": 1, "reflected": 1, "dropped": 10}
    finally:
        assert stations[0].request("deassoc", uuid=uuid, filters=filters)["mode"] == "deassoc"
    wait_dataplane(br, 4, ELEMENTS)


def test_deassociate_removes_exactly_that_vsi(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    _t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    learn(tap1, tap2)
    learnt = br.dataplane()["learnt"]
    uuid, filters = VSIS_1[0]
    assert stations[0].request("deassoc", uuid=uuid, filters=filters)["mode"] == "deassoc"
    try:
        dp = wait_dataplane(br, 3, ELEMENTS - 2)
        assert dp["learnt"] == learnt - 2  # A1 and A2 forgotten with their VSI
        with pytest.raises(ControlError):
            br.vsi_counters(uuid)
        before = traffic(br, "b1")
        bad, good = marker(), marker()
        for _ in range(5):
            tap1.send(A1, B1, bad)
            tap1.send(A2, BCAST, bad)
        tap1.send(A3, B2, good, vid=20)  # the sentinel: A3's VSI is still there
        wait_for("the sentinel", lambda: tap2.payloads(good), timeout=5)
        assert tap2.payloads(good) == [(A3, B2, 20)]
        assert tap2.payloads(bad) == [] and tap1.payloads(bad) == []
        assert delta(traffic(br, "b1"), before) == {"forwarded": 1, "reflected": 0, "dropped": 10}
        m = marker()
        tap2.send(B1, BCAST, m)  # station 2's VSIs are untouched
        wait_for("B1's broadcast at station 1", lambda: tap1.payloads(m), timeout=5)
    finally:
        assert stations[0].request("assoc", uuid=uuid, filters=filters)["mode"] == "assoc"
    wait_dataplane(br, 4, ELEMENTS)
    m = marker()
    tap1.send(A1, BCAST, m)
    wait_for("A1's broadcast at station 2 again", lambda: tap2.payloads(m), timeout=5)


def test_station_loss_removes_its_vsis_and_hairpin(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    _t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    stations[1].stop()  # SIGTERM: LLDP TTL 0, the bridge loses EVB on b2
    try:
        wait_for("EVB and hairpin off on b2", lambda: ports_up(br, b1=True, b2=False), timeout=15)
        dp = wait_dataplane(br, 2, 3)  # station 1's two VSIs (A1+A2, A3) are all that is left
        assert {r["port"] for r in br.call("vsi.list")} == {"b1"}
        with pytest.raises(ControlError):
            br.vsi_counters(UUID_B1)
        assert dp["ports"]["b1"]["hairpin"] is True
        # nothing from station 2 passes now, not even from its MACs: each frame read is dropped
        before1, before2 = traffic(br, "b1"), traffic(br, "b2")
        bad = marker()
        for _ in range(5):
            tap2.send(B1, BCAST, bad)
            tap2.send(B2, A1, bad, vid=20)
        wait_dropped(br, "b2", before2, 10)
        assert delta(traffic(br, "b2"), before2) == {"forwarded": 0, "reflected": 0, "dropped": 10}
        assert tap1.payloads(bad) == [] and tap2.payloads(bad) == []
        assert traffic(br, "b1") == before1
    finally:
        stations[1].start()
    stations[1].wait_evb()
    wait_for("EVB and hairpin back on b2", lambda: ports_up(br), timeout=15)
    wait_dataplane(br, 4, ELEMENTS)  # the station re-requests the VSIs of its state file by itself
    m = marker()
    tap2.send(B1, BCAST, m)
    wait_for("B1's broadcast at station 1 again", lambda: tap1.payloads(m), timeout=5)


def test_no_reflection_without_reflective_relay(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    """Station 1 comes back without asking for reflective relay: EVB is up on b1 but hairpin is
    off, so nothing leaves by the port it came in (not even a flood); station 2 is unaffected."""
    _t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    st = stations[0]
    st.stop()
    st.evb = {"rrreq": False}
    try:
        st.start()
        st.wait_evb()
        wait_for(
            "b1 up without hairpin",
            lambda: (p := br.dataplane()["ports"]["b1"])["evb"] is True and p["hairpin"] is False,
            timeout=15,
        )
        wait_dataplane(br, 4, ELEMENTS)  # re-requested from station 1's state file
        learn_rr_off(tap1, tap2)
        before1 = traffic(br, "b1")
        bad, good = marker(), marker()
        tap1.send(A2, A1, bad)  # A1 is learnt on b1: it would have to go back out b1
        tap1.send(A1, BCAST, good)  # the sentinel: flooded to b2 only
        wait_for("the sentinel", lambda: tap2.payloads(good), timeout=5)
        # every frame of one batch is counted before any is sent: had A2 -> A1 or the broadcast
        # been sent back out b1, ``reflected`` would say so by now
        assert delta(traffic(br, "b1"), before1) == {"forwarded": 1, "reflected": 0, "dropped": 0}
        assert tap1.payloads(bad) == [] and tap1.payloads(good) == [] and tap2.payloads(bad) == []
        # station 2 still has reflective relay: its broadcast comes back to it
        m = marker()
        tap2.send(B1, BCAST, m)
        wait_for("B1's broadcast at both stations", lambda: tap1.payloads(m) and tap2.payloads(m), timeout=5)
    finally:
        st.stop()
        st.evb = {}
        st.start()
    st.wait_evb()
    wait_for("EVB and hairpin on both bridge ports", lambda: ports_up(br), timeout=15)
    wait_dataplane(br, 4, ELEMENTS)


def test_bridge_restart_starts_empty_until_stations_reassociate(topo: Topology, taps: tuple[Tap, Tap]) -> None:
    _t, br, stations = topo
    tap1, tap2 = taps
    associate_all(stations)
    wait_dataplane(br, 4, ELEMENTS)
    assert br.stop() == 0  # SIGTERM: LLDP TTL 0 on both ports; nothing of the data plane outlives it
    with pytest.raises((ConnectError, OSError)):
        br.call("status", timeout=1)
    for st in stations:  # their VSIs are suspended, to be asked for again when EVB is back
        wait_for(f"{st.name} without EVB", partial(evb_lost, st), timeout=15)
    # Frozen, the stations cannot negotiate EVB or re-associate yet: what the new bridge holds
    # before then is what it brought along, which must be nothing.
    for st in stations:
        st.send_signal(signal.SIGSTOP)
    try:
        br.start()
        dp = br.dataplane()
        assert (dp["vsis"], dp["elements"], dp["learnt"]) == (0, 0, 0)
        assert all(p["counters"] == dict.fromkeys(p["counters"], 0) for p in dp["ports"].values())
        assert br.call("vsi.list") == []
        before = traffic(br, "b1")
        bad = marker()
        for _ in range(5):
            tap1.send(A1, B1, bad)
        wait_dropped(br, "b1", before, 5)
        assert tap2.payloads(bad) == [] and tap1.payloads(bad) == []
    finally:
        for st in stations:
            st.send_signal(signal.SIGCONT)
    for st in stations:
        st.wait_evb()
    wait_for("EVB and hairpin on both bridge ports", lambda: ports_up(br), timeout=15)
    wait_dataplane(br, 4, ELEMENTS)  # re-requested by the stations themselves: no request from here
    assert sorted(r["vsi"].split("/")[-1] for r in br.call("vsi.list")) == sorted([UUID_A, UUID_A3, UUID_B1, UUID_B2])
    m = marker()
    tap1.send(A1, BCAST, m)
    tap2.send(B2, BCAST, m, vid=20)
    wait_for("the broadcasts across", lambda: tap2.payloads(m) and len(tap1.payloads(m)) >= 2, timeout=5)
    assert (A1, BCAST, None) in tap2.payloads(m)
    assert (B2, BCAST, 20) in tap1.payloads(m)
