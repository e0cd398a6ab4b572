"""Reloading the VSI type database: ``BridgePort.set_policy`` (``VdpBridge.set_policy``).

Our StationPort and BridgePort over ``evb.sim.Network`` (virtual clock, seeded). VSIs are
associated under policy A; policy B then forbids some of them. Exactly those get an
unsolicited De-Associate (status 0x00, as on toutKeepAlive expiry, vdp.md §10.5) and the
station ends them (``VsiDeassociated(reason="bridge")``); the others keep their keep-alives
answered. Wildcard entries get the policy's ``assign_vid`` (vdp.md §5.3; lldpad's bridge
returns VID 0, §12 row 4). Timers are the negotiated defaults (R=3, RTE=8, RWD=RKA=20):

* reinitKeepAlive = 10·2^RKA µs                         = 10.48576 s (station refresh period)
* toutKeepAlive   = 1.5·((2R+1)·10·2^RTE + 10·2^RKA) µs = 15.75552 s (bridge keep-alive timeout)
"""

from __future__ import annotations

import random
from typing import TypeVar

from evb.ecp.wire import Ecpdu, EcpOp
from evb.frame import decode_frame
from evb.lldp.negotiate import EvbConfig, Role
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.sim import Network
from evb.vdp.bridge import BridgeTimers, Decision, PolicyRequest, VdpBridge, accept_all
from evb.vdp.events import VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.station import StState, Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode, VdpPdu, VdpStatus, VsiidFormat, VsiManagerIdTlv, VsiTlv
from evb.vepa_bridge.policy import parse_policy
from tests.helpers import BRIDGE_MAC, LABMGR, STATION_MAC

E = TypeVar("E")
REINIT_KEEPALIVE = 10 * 2**20 / 1e6
TOUT_KEEPALIVE = (7 * 10 * 2**8 + 10 * 2**20) * 3 // 2 / 1e6

POLICY_A = """
[[manager]]
id = "labmgr"
[[manager.type]]
id = 5
version = 4
vlans = [10, 20, 30]
assign_vid = 10
[[manager.type]]
id = 6
version = 1
vlans = ["10-20"]
"""

#: B: VID 10 and type 6 are gone; a wildcard now gets VID 20
POLICY_B = """
[[manager]]
id = "labmgr"
[[manager.type]]
id = 5
version = 4
vlans = [20, 30]
assign_vid = 20
"""


def uuid_n(n: int) -> bytes:
    return bytes.fromhex("5a0f1c2e00004d3c8e210a00") + n.to_bytes(4, "big")


def vsi(n: int, vid: int, *, type_id: int = 5, version: int = 4, ps: bool = False, pcp: int = 0) -> Vsi:
    entry = FilterEntry(vid=vid, ps=ps, pcp=pcp, mac=bytes((2, 0, 0, 0, 1, n)))
    return Vsi(
        manager_id=LABMGR,
        type_id=type_id,
        type_version=version,
        vsiid=uuid_n(n),
        vsiid_format=VsiidFormat.UUID,
        filter_format=FilterFormat.MAC_VID,
        entries=(entry,),
    )


class Lab:
    """One StationPort and one BridgePort ("eth1", policy A), EVB negotiated."""

    def __init__(self, policy_text: str = POLICY_A) -> None:
        self.st = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION)), now=0.0)
        policy = parse_policy(policy_text).policy_for("eth1")
        self.br = BridgePort(PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE)), now=0.0, policy=policy)
        self.net = Network(rng=random.Random(7))
        self.events: list[tuple[float, str, Event]] = []
        self.net.on_event = self._on_event
        #: every VDP association TLV on the wire: (time, sender, TLV)
        self.tlvs: list[tuple[float, str, VsiTlv]] = []
        link = self.net.connect(self.st, self.br)
        link.drop = self._on_frame
        self.net.run_until(5.0, stop=lambda: self.st.negotiated and self.br.negotiated)
        assert self.st.negotiated and self.br.negotiated

    def who(self, port: Port) -> str:
        return "station" if port is self.st else "bridge"

    def _on_event(self, port: Port, event: Event) -> None:
        self.events.append((self.net.now, self.who(port), event))

    def _on_frame(self, port: Port, data: bytes) -> bool:
        pdu = decode_frame(data).pdu
        if isinstance(pdu, Ecpdu) and pdu.op is EcpOp.REQUEST and isinstance(pdu.ulpdu, VdpPdu):
            self.tlvs += [(self.net.now, self.who(port), t) for t in pdu.ulpdu.vsis]
        return True

    @property
    def now(self) -> float:
        return self.net.now

    def settle(self, v: Vsi, mode: VdpMode = VdpMode.ASSOC) -> VsiAssociated:
        """Request ``mode`` for ``v``; the station's confirmation."""
        self.st.request(v, mode, now=self.now)
        self.net.poke(self.st)
        return self.wait(VsiAssociated, v.key)

    def wait(self, kind: type[E], key: VsiKey, *, who: str = "station", limit: float = 30.0) -> E:
        """Run until ``who`` reports an event of ``kind`` about VSI ``key``; that event."""
        start = len(self.events)

        def found() -> list[E]:
            return [
                ev
                for _, w, ev in self.events[start:]
                if w == who and isinstance(ev, kind) and getattr(ev, "key", None) == key
            ]

        self.net.run_until(self.now + limit, stop=lambda: bool(found()))
        assert found(), f"nothing matched from the {who} within {limit} s"
        return found()[0]

    def reload(self, policy_text: str) -> float:
        """Give the bridge port the new policy now; events from here on are ``since_reload``."""
        t = self.now
        self.reload_mark = len(self.events)
        self.br.set_policy(parse_policy(policy_text).policy_for("eth1"), t)
        self.net.poke(self.br)
        return t

    def since_reload(self, who: str, kind: type[E], *, after: float | None = None) -> list[E]:
        """Events of ``kind`` from ``who`` since the last reload (and later than ``after``)."""
        return [
            ev
            for at, w, ev in self.events[self.reload_mark :]
            if w == who and isinstance(ev, kind) and (after is None or at > after)
        ]


def test_reload_releases_exactly_the_vsis_the_new_policy_forbids() -> None:
    lab = Lab()
    kept = {
        "vid 20": vsi(1, 20),
        "vid 30": vsi(2, 30),
        "pre-assoc vid 20": vsi(3, 20),
    }
    gone = {
        "vid 10": vsi(4, 10),  # B: VID 10 not allowed → code 5
        "type 6": vsi(5, 15, type_id=6, version=1),  # B: type unknown → code 4
        "pre-assoc type 6": vsi(6, 12, type_id=6, version=1),
        "wildcard": vsi(7, 0, ps=True, pcp=3),  # granted VID 10 under A → code 5 under B
    }
    modes = {"pre-assoc vid 20": VdpMode.PREASSOC, "pre-assoc type 6": VdpMode.PREASSOC}
    granted = {}
    for name, v in (kept | gone).items():
        granted[name] = lab.settle(v, modes.get(name, VdpMode.ASSOC)).entries
    # the wildcard entry got A's assign_vid, PS and PCP as asked
    assert granted["wildcard"] == (FilterEntry(vid=10, ps=True, pcp=3, mac=bytes((2, 0, 0, 0, 1, 7))),)
    assert all(granted[n] == v.entries for n, v in (kept | gone).items() if n != "wildcard")
    assert lab.br.vdp.vsi_count() == 7
    assert (lab.br.vdp.mode_count(VdpMode.ASSOC), lab.br.vdp.mode_count(VdpMode.PREASSOC)) == (5, 2)

    t = lab.reload(POLICY_B)

    # the bridge releases the four at once, with the new policy's code and Hard
    released = lab.since_reload("bridge", VsiDeassociated)
    assert {(ev.key, ev.reason, ev.code, ev.hard) for ev in released} == {
        (gone["vid 10"].key, "policy", 5, True),
        (gone["type 6"].key, "policy", 4, True),
        (gone["pre-assoc type 6"].key, "policy", 4, True),
        (gone["wildcard"].key, "policy", 5, True),
    }
    assert all(at == t for at, w, ev in lab.events if w == "bridge" and isinstance(ev, VsiDeassociated))
    assert lab.br.vdp.counters.policy_releases == 4
    assert set(lab.br.vdp.vsis) == {v.key for v in kept.values()}
    assert (lab.br.vdp.mode_count(VdpMode.ASSOC), lab.br.vdp.mode_count(VdpMode.PREASSOC)) == (2, 1)
    # on the wire: unsolicited De-Associates (request bit clear, status 0x00) with the granted entries
    lab.net.run_until(t + 1.0)
    unsolicited = [(at, tlv) for at, w, tlv in lab.tlvs if w == "bridge" and not tlv.status.response]
    assert sorted((tlv.vsiid, tlv.mode, tlv.status.octet, tlv.entries) for _, tlv in unsolicited) == sorted(
        (v.vsiid, VdpMode.DEASSOC, 0x00, granted[n]) for n, v in gone.items()
    )
    # packed in one ECPDU, sent as soon as ECP is free (the last association's answer may be in flight)
    assert len({at for at, _ in unsolicited}) == 1 and unsolicited[0][0] - t < 0.01
    # the station ends exactly those
    ended = lab.since_reload("station", VsiDeassociated)
    assert sorted((ev.key, ev.reason) for ev in ended) == sorted((v.key, "bridge") for v in gone.values())
    assert all(v.key not in lab.st.vdp.vsis for v in gone.values())

    # the rest live on: three toutKeepAlive periods, every station refresh answered
    lab.net.run_until(t + 3 * TOUT_KEEPALIVE)
    assert lab.since_reload("bridge", VsiDeassociated, after=t + 1.0) == []
    assert lab.since_reload("station", VsiDeassociated, after=t + 1.0) == []
    assert lab.br.vdp.counters.keepalive_timeouts == 0
    for name, v in kept.items():
        assert lab.st.vdp.vsis[v.key].state in (StState.ESTABLISHED, StState.KEEPALIVE)
        answers = [tlv for at, w, tlv in lab.tlvs if at > t and w == "bridge" and tlv.vsiid == v.vsiid]
        # a refresh every reinitKeepAlive = 10.49 s: at least 4 in 47.3 s, each answered 0x40 in its mode
        assert len(answers) >= int(3 * TOUT_KEEPALIVE / REINIT_KEEPALIVE) == 4
        assert {(tlv.mode, tlv.status.octet) for tlv in answers} == {(modes.get(name, VdpMode.ASSOC), 0x40)}
    # nothing more about the released ones: the station sent no request for them after the reload
    assert [tlv for at, w, tlv in lab.tlvs if at > t and tlv.vsiid in {v.vsiid for v in gone.values()}] == [
        tlv for _, tlv in unsolicited
    ]


def test_after_reload_a_wildcard_gets_the_new_vid_and_forbidden_requests_are_refused() -> None:
    lab = Lab()
    wild = vsi(1, 0)
    assert lab.settle(wild).entries == (FilterEntry(vid=10, mac=bytes((2, 0, 0, 0, 1, 1))),)
    lab.reload(POLICY_B)
    assert lab.wait(VsiDeassociated, wild.key).reason == "bridge"
    # asked again, the same wildcard VSI is granted B's assign_vid
    assert lab.settle(wild).entries == (FilterEntry(vid=20, mac=bytes((2, 0, 0, 0, 1, 1))),)
    # a request B forbids is refused: a new VSI, so no Keep; invalid VID, so Hard
    old = vsi(2, 10)
    lab.st.associate(old, now=lab.now)
    lab.net.poke(lab.st)
    ev = lab.wait(VsiRejected, old.key)
    assert (ev.code, ev.keep, ev.hard) == (5, False, True)
    assert old.key not in lab.st.vdp.vsis and old.key not in lab.br.vdp.vsis


POLICY_LIMITS = POLICY_A + "\n[defaults]\nmax_vsis = 10\n"


def test_reload_with_lower_limits_evicts_nothing_but_admits_no_more() -> None:
    """A lowered max_vsis or max_entries is a resource matter: established VSIs stay (the
    re-check of a held VSI is a Keep refusal at most), new ones are refused with code 2."""
    lab = Lab(POLICY_LIMITS)
    two = Vsi(
        manager_id=LABMGR,
        type_id=5,
        type_version=4,
        vsiid=uuid_n(9),
        filter_format=FilterFormat.MAC_VID,
        entries=(
            FilterEntry(vid=20, mac=bytes.fromhex("020000000109")),
            FilterEntry(vid=30, mac=bytes.fromhex("02000000010a")),
        ),
    )
    held = [vsi(1, 20), vsi(2, 20), two]
    for v in held:
        lab.settle(v)
    t = lab.reload(
        POLICY_LIMITS.replace("max_vsis = 10", "max_vsis = 1").replace(
            "assign_vid = 10", "assign_vid = 10\nmax_entries = 1"
        )
    )
    lab.net.run_until(t + 2 * TOUT_KEEPALIVE)
    assert lab.since_reload("bridge", VsiDeassociated) == [] and lab.since_reload("station", VsiDeassociated) == []
    assert [tlv for at, w, tlv in lab.tlvs if at >= t and w == "bridge" and not tlv.status.response] == []
    assert set(lab.br.vdp.vsis) == {v.key for v in held} and lab.br.vdp.counters.policy_releases == 0
    new = vsi(3, 20)
    lab.st.associate(new, now=lab.now)
    lab.net.poke(lab.st)
    ev = lab.wait(VsiRejected, new.key)
    assert (ev.code, ev.keep, ev.hard) == (2, False, False)
    bridge_side = lab.since_reload("bridge", VsiRejected)
    assert [(e.key, e.code, e.reason) for e in bridge_side] == [(new.key, 2, "port full (max_vsis = 1)")]


def test_reload_to_the_same_policy_changes_nothing() -> None:
    lab = Lab()
    vs = [vsi(1, 10), vsi(2, 0), vsi(3, 15, type_id=6, version=1)]
    for v in vs:
        lab.settle(v)
    t = lab.reload(POLICY_A)
    lab.net.run_until(t + TOUT_KEEPALIVE)
    assert [ev for _, _, ev in lab.events[lab.reload_mark :]] == []
    assert lab.since_reload("station", VsiAssociated) == []  # refreshes repeat no event
    assert set(lab.br.vdp.vsis) == {v.key for v in vs}


# ------------------------------------------------------------------------------ VdpBridge.set_policy


def test_set_policy_leaves_a_vsi_waiting_for_a_late_decision() -> None:
    """The VSI whose request waits for the old policy's late answer is not re-checked: that
    answer (``decide``) or resourceWaitDelay settles it. The new policy decides new requests."""
    seen: list[PolicyRequest] = []

    def later(request: PolicyRequest) -> Decision:
        seen.append(request)
        return Decision.pending()

    br = VdpBridge(timers=BridgeTimers(resource_wait_delay=10.0, keepalive_timeout=15.0), policy=later)
    v1, v2 = vsi(1, 10), vsi(2, 10)

    def request(v: Vsi) -> VdpPdu:
        tlv = VsiTlv(VdpMode.ASSOC, VdpStatus.request(), 5, 4, v.vsiid_format, v.vsiid, v.filter_format, v.entries)
        return VdpPdu((VsiManagerIdTlv(LABMGR), tlv))

    br.receive(request(v1), now=0.0)
    assert len(seen) == 1 and seen[0].port is br and br.vsi_count() == 1  # the bridge is the policy's port view
    refuse_all = parse_policy("").policy_for("eth1")
    br.set_policy(refuse_all, 1.0)
    assert list(br.events) == [] and br.next_pdu() is None and br.vsi_count() == 1
    assert br.decide(v1.key, Decision.accept(), now=2.0)
    assert [type(ev) for ev in br.events] == [VsiAssociated]
    br.events.clear()
    # the new policy: unknown manager (code 3, Hard) for a new request
    br.receive(request(v2), now=3.0)
    got = br.next_pdu()
    assert got is not None
    assert [(t.vsiid, t.mode, t.status.octet) for t in got[0].vsis] == [
        (v1.vsiid, VdpMode.ASSOC, 0x40),
        (v2.vsiid, VdpMode.DEASSOC, 0x53),
    ]
    # and a re-check now releases v1 (established), with the same code
    br.set_policy(refuse_all, 4.0)
    assert [(ev.key, ev.reason, ev.code, ev.hard) for ev in br.events if isinstance(ev, VsiDeassociated)] == [
        (v1.key, "policy", 3, True)
    ]
    got = br.next_pdu()
    assert got is not None and [(t.vsiid, t.mode, t.status.octet) for t in got[0].vsis] == [
        (v1.vsiid, VdpMode.DEASSOC, 0x00)
    ]
    assert br.vsis == {} and br.mode_count(VdpMode.ASSOC) == 0


def test_set_policy_asks_about_each_vsi_as_it_stands() -> None:
    """The re-check asks with the VSI's confirmed mode (as ``current`` and as the TLV's mode)
    and its granted entries, request status (no response bit)."""
    asked: list[PolicyRequest] = []
    grant = FilterEntry(vid=42, mac=bytes((2, 0, 0, 0, 1, 1)))

    def vid42(request: PolicyRequest) -> Decision:
        return Decision.accept((grant,))

    def record(request: PolicyRequest) -> Decision:
        asked.append(request)
        return accept_all(request)

    br = VdpBridge(timers=BridgeTimers(resource_wait_delay=10.0, keepalive_timeout=15.0), policy=vid42)
    v = vsi(1, 0)
    tlv = VsiTlv(VdpMode.PREASSOC_RR, VdpStatus.request(), 5, 4, v.vsiid_format, v.vsiid, v.filter_format, v.entries)
    br.receive(VdpPdu((VsiManagerIdTlv(LABMGR), tlv)), now=0.0)
    br.set_policy(record, 1.0)
    assert [(r.manager_id, r.current, r.tlv.mode, r.tlv.status, r.tlv.entries, r.port) for r in asked] == [
        (LABMGR, VdpMode.PREASSOC_RR, VdpMode.PREASSOC_RR, VdpStatus(), (grant,), br)
    ]
    assert br.policy is record
