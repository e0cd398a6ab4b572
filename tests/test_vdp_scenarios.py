"""VDP scenarios: our StationPort against our BridgePort over ``evb.sim.Network``.

Every row of lldpad's vdp22 test catalogue (lldpad-behaviour.md §7.3) that applies to the
ratified protocol between two of our ports, plus the engine's own rules (timers, packing,
pacing, limits, duplicates, link and peer loss). Each test runs on the virtual clock of
``evb.sim`` (seeded, no sleeping); what a test varies is a constructor parameter (policy,
``PortConfig``, ``EvbConfig``) or the ``Link.drop`` hook.

Timer formulas (vdp.md §8, lldpad's integer microseconds; defaults R=3, RTE=8, RWD=RKA=20):

* reinitKeepAlive   = 10·2^RKA µs                               = 10 485 760 µs
* respWaitDelay     = 1.5·((2R+1)·10·2^RTE + 10·2^RWD) µs       = 15 755 520 µs
* resourceWaitDelay = 10·2^RWD µs                               = 10 485 760 µs
* toutKeepAlive     = 1.5·((2R+1)·10·2^RTE + 10·2^RKA) µs       = 15 755 520 µs

Where lldpad and we differ, the README's "what evb does" table and the module docstrings of
``evb/vdp/station.py`` and ``evb/vdp/bridge.py`` say which we follow; tests that meet such a
difference say so.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from evb.ecp.wire import Ecpdu, EcpOp
from evb.errors import LocalProtocolError
from evb.ethernet import NEAREST_CUSTOMER_BRIDGE
from evb.frame import Frame, build_frame, decode_frame
from evb.lldp.events import EvbLost, EvbNegotiated
from evb.lldp.negotiate import EvbConfig, Role
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.sim import Network
from evb.vdp.bridge import Decision, Policy, PolicyRequest, accept_all
from evb.vdp.events import VdpViolation, VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.station import StState, Vsi
from evb.vdp.wire import (
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpPdu,
    VdpStatus,
    VsiidFormat,
    VsiManagerIdTlv,
    VsiTlv,
)
from tests.helpers import BRIDGE_MAC, LABMGR, STATION_MAC, U1, U2, U3

# ---------------------------------------------------------------------------------------------- timers


def sec(us: int) -> float:
    """Microseconds to seconds, as the engine converts its integer timers."""
    return us / 1e6


#: the default timers (R=3, RTE=8, RWD=20, RKA=20), lldpad's integer formulas, in µs
REINIT_KEEPALIVE_US = 10 * 2**20
RESP_WAIT_US = (7 * 10 * 2**8 + 10 * 2**20) * 3 // 2
RESOURCE_WAIT_US = 10 * 2**20
TOUT_KEEPALIVE_US = (7 * 10 * 2**8 + 10 * 2**20) * 3 // 2


def test_default_timer_values() -> None:
    """The four VDP timers of the negotiated defaults (lldpad-behaviour.md §5)."""
    lab = Lab()
    for port in (lab.st, lab.br):
        o = port.operating
        assert (o.r, o.rte, o.rwd, o.rka) == (3, 8, 20, 20)
        assert o.reinit_keepalive == sec(REINIT_KEEPALIVE_US) == 10.48576
        assert o.resp_wait_delay == sec(RESP_WAIT_US) == 15.75552
        assert o.resource_wait_delay == sec(RESOURCE_WAIT_US) == 10.48576
        assert o.keepalive_timeout == sec(TOUT_KEEPALIVE_US) == 15.75552


# ---------------------------------------------------------------------------------------------- VSIs


def mac(n: int) -> bytes:
    return bytes((2, 0, 0, 0, 1, n))


def vsi(
    vsiid: bytes = U1,
    *,
    fmt: FilterFormat = FilterFormat.MAC_VID,
    entries: tuple[FilterEntry, ...] | None = None,
    manager: bytes = LABMGR,
    type_id: int = 5,
    version: int = 4,
) -> Vsi:
    """A VSI as in the captures: Manager ID "labmgr", type 5 version 4, UUID, one MAC/VID entry."""
    if entries is None:
        entries = (FilterEntry(vid=10, mac=mac(vsiid[-1])),)
    return Vsi(
        manager_id=manager,
        type_id=type_id,
        type_version=version,
        vsiid=vsiid,
        vsiid_format=VsiidFormat.UUID,
        filter_format=fmt,
        entries=entries,
    )


def uuid_n(n: int) -> bytes:
    return bytes.fromhex("5a0f1c2e00004d3c8e210a00") + n.to_bytes(4, "big")


# ---------------------------------------------------------------------------------------------- lab


@dataclass(frozen=True, slots=True)
class Tx:
    """A frame a port put on the link (lost or not)."""

    t: float
    who: str  #: "station", "bridge" or "old bridge" (a bridge replaced by ``restart_bridge``)
    data: bytes
    frame: Frame
    lost: bool

    @property
    def ecp(self) -> Ecpdu | None:
        pdu = self.frame.pdu
        return pdu if isinstance(pdu, Ecpdu) else None

    @property
    def is_request(self) -> bool:
        return self.ecp is not None and self.ecp.op is EcpOp.REQUEST

    @property
    def vdp(self) -> VdpPdu:
        assert self.ecp is not None and isinstance(self.ecp.ulpdu, VdpPdu)
        return self.ecp.ulpdu

    @property
    def tlvs(self) -> tuple[VsiTlv, ...]:
        return self.vdp.vsis

    @property
    def ulpdu_len(self) -> int:
        """Octets after the Ethernet and ECP headers (End TLV included) of a frame too long to be padded."""
        assert len(self.data) > 60
        return len(self.data) - 14 - 4


@dataclass
class Lab:
    """One StationPort and one BridgePort on a link of ``delay`` seconds, EVB negotiated."""

    policy: Policy = accept_all
    st_evb: dict[str, Any] = field(default_factory=dict)
    br_evb: dict[str, Any] = field(default_factory=dict)
    st_port: dict[str, Any] = field(default_factory=dict)
    br_port: dict[str, Any] = field(default_factory=dict)
    seed: int = 1
    #: ``drop(tx) -> True`` loses the frame (set it any time; ``Link.drop`` calls it)
    drop: Callable[[Tx], bool] | None = None

    def __post_init__(self) -> None:
        self.st = StationPort(self.station_config(), now=0.0)
        self.br = BridgePort(self.bridge_config(), now=0.0, policy=self.policy)
        self.old: list[BridgePort] = []
        self.net = Network(rng=random.Random(self.seed))
        self.events: list[tuple[float, str, Event]] = []
        self.wire: list[Tx] = []
        self.net.on_event = self._on_event
        self.link = self.net.connect(self.st, self.br)
        self.link.drop = self._on_frame
        self.net.run_until(5.0, stop=lambda: self.st.negotiated and self.br.negotiated)
        assert self.st.negotiated and self.br.negotiated
        self.t_negotiated = self.net.now

    def station_config(self) -> PortConfig:
        return PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION, **self.st_evb), **self.st_port)

    def bridge_config(self) -> PortConfig:
        return PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE, **self.br_evb), **self.br_port)

    # --------------------------------------------------------------------------- plumbing

    def who(self, port: Port) -> str:
        return "station" if port is self.st else "bridge" if port is self.br else "old bridge"

    def _on_event(self, port: Port, event: Event) -> None:
        self.events.append((self.net.now, self.who(port), event))

    def _on_frame(self, port: Port, data: bytes) -> bool:
        tx = Tx(self.net.now, self.who(port), data, decode_frame(data), False)
        lost = self.drop is not None and self.drop(tx)
        self.wire.append(Tx(tx.t, tx.who, data, tx.frame, lost) if lost else tx)
        return not lost

    @property
    def now(self) -> float:
        return self.net.now

    # --------------------------------------------------------------------------- commands

    def request(self, v: Vsi, mode: VdpMode, *, hints: str = "none") -> None:
        self.st.request(v, mode, now=self.now, hints=hints)
        self.net.poke(self.st)

    def associate(self, v: Vsi, *, hints: str = "none") -> None:
        self.request(v, VdpMode.ASSOC, hints=hints)

    def deassociate(self, v: Vsi) -> None:
        self.st.deassociate(v, now=self.now)
        self.net.poke(self.st)

    def decide(self, key: VsiKey, decision: Decision) -> bool:
        done = self.br.decide(key, decision, now=self.now)
        self.net.poke(self.br)
        return done

    def run_for(self, seconds: float) -> None:
        self.net.run_until(self.now + seconds)

    def wait_for(self, kind: type, who: str = "station", *, limit: float = 60.0, **fields: Any) -> tuple[float, Any]:
        """Run until an event of ``kind`` (with these field values) from ``who``; its time and the event."""
        start = len(self.events)

        def match(item: tuple[float, str, Event]) -> bool:
            _, w, ev = item
            return w == who and isinstance(ev, kind) and all(getattr(ev, k) == v for k, v in fields.items())

        self.net.run_until(self.now + limit, stop=lambda: any(match(e) for e in self.events[start:]))
        found = [e for e in self.events[start:] if match(e)]
        assert found, f"no {kind.__name__} {fields} from the {who} within {limit} s"
        return found[0][0], found[0][2]

    def settle(self, v: Vsi, mode: VdpMode = VdpMode.ASSOC, *, hints: str = "none") -> float:
        """Issue ``mode`` for ``v`` and run until the station confirms it; the time of confirmation."""
        self.request(v, mode, hints=hints)
        t, _ = self.wait_for(VsiAssociated, key=v.key, mode=mode)
        return t

    def restart_bridge(self) -> None:
        """The bridge's agent restarts (as in vdp-deassoc-unknown.pcap): a new BridgePort with the same
        configuration on the same link forgets every VSI; the old one goes silent. The station sees
        only a changed EVB TLV (no TTL 0, no ageing), so it keeps its VSIs."""
        old = self.br
        self.old.append(old)
        self.br = BridgePort(self.bridge_config(), now=self.now, policy=self.policy)
        old.set_link(False, self.now)
        self.net.poke(old)
        self.link = self.net.connect(self.st, self.br)
        self.link.drop = self._on_frame
        self.net.run_until(self.now + 5.0, stop=lambda: self.br.negotiated)
        assert self.br.negotiated and self.st.negotiated

    # --------------------------------------------------------------------------- views

    def vdp_tx(self, who: str, *, since: float = 0.0, lost: bool | None = None) -> list[Tx]:
        """ECP requests carrying VDP sent by ``who`` (retransmissions included)."""
        return [
            tx
            for tx in self.wire
            if tx.who == who and tx.t >= since and tx.is_request and (lost is None or tx.lost is lost)
        ]

    def vdp_new(self, who: str, *, since: float = 0.0) -> list[Tx]:
        """As ``vdp_tx`` without ECP retransmissions (the first copy of each sequence number in a row)."""
        out: list[Tx] = []
        for tx in self.vdp_tx(who, since=since):
            if out and out[-1].ecp.seq == tx.ecp.seq and out[-1].data == tx.data:  # type: ignore[union-attr]
                continue
            out.append(tx)
        return out

    def of(self, kind: type, who: str = "station", *, since: float = 0.0) -> list[Any]:
        return [ev for t, w, ev in self.events if w == who and isinstance(ev, kind) and t >= since]

    def arrival(self, tx: Tx) -> float:
        """When ``tx`` reaches the other port (the link has no jitter in these tests)."""
        return tx.t + self.link.delay


def modes(txs: list[Tx]) -> list[tuple[int, int]]:
    """(TLV type, status octet) of every association TLV, in order."""
    return [(t.mode.value, t.status.octet) for tx in txs for t in tx.tlvs]


def vdp_events(lab: Lab) -> list[tuple[float, str, Event]]:
    return [e for e in lab.events if isinstance(e[2], VsiAssociated | VsiDeassociated | VsiRejected | VdpViolation)]


def station_keys(lab: Lab) -> set[VsiKey]:
    return set(lab.st.vdp.vsis)


def confirmed(lab: Lab, v: Vsi) -> VdpMode | None:
    return lab.st.vdp.vsis[v.key].confirmed


def bridge_mode(lab: Lab, v: Vsi) -> VdpMode | None:
    rec = lab.br.vdp.vsis.get(v.key)
    return None if rec is None else rec.mode


# ---------------------------------------------------------------------------------------------- policies


def rejecting(code: int, *, keep: bool = False, hard: bool = False) -> Policy:
    def policy(request: PolicyRequest) -> Decision:
        return Decision.reject(code, keep=keep, hard=hard)

    return policy


class FirstThen:
    """A policy that gives ``first`` to its first request and ``then`` to every later one."""

    def __init__(self, first: Decision, then: Decision) -> None:
        self.first, self.then = first, then
        self.calls: list[PolicyRequest] = []

    def __call__(self, request: PolicyRequest) -> Decision:
        self.calls.append(request)
        return self.first if len(self.calls) == 1 else self.then


def granting(choose: Callable[[int, FilterEntry], FilterEntry]) -> Policy:
    """Accept, granting ``choose(index, entry)`` for every entry (VID/PCP replacement)."""

    def policy(request: PolicyRequest) -> Decision:
        return Decision.accept(tuple(choose(i, e) for i, e in enumerate(request.tlv.entries)))

    return policy


def pending(request: PolicyRequest) -> Decision:
    return Decision.pending()


# ============================================================================================== 103-107


@pytest.mark.parametrize(
    ("row", "mode"),
    [(103, VdpMode.ASSOC), (105, VdpMode.PREASSOC), (107, VdpMode.PREASSOC_RR)],
)
def test_request_then_deassociate(row: int, mode: VdpMode) -> None:
    """103 associate / 105 pre-associate / 107 pre-associate-RR, then de-associate: the request is
    echoed with status 0x40 in the same TLV type; both sides report it; De-Associate ends it on both."""
    lab = Lab()
    v = vsi()
    t0 = lab.now
    lab.settle(v, mode)
    assert confirmed(lab, v) is mode and bridge_mode(lab, v) is mode
    [br_ev] = lab.of(VsiAssociated, "bridge")
    [st_ev] = lab.of(VsiAssociated, "station")
    expect = VsiAssociated(key=v.key, mode=mode, type_id=5, type_version=4, entries=v.entries)
    assert br_ev == st_ev == expect

    lab.deassociate(v)
    lab.wait_for(VsiDeassociated, key=v.key, reason="deassociated")
    assert lab.of(VsiDeassociated, "bridge") == [VsiDeassociated(key=v.key, reason="deassociated")]
    assert station_keys(lab) == set() and lab.br.vdp.vsis == {}

    st, br = lab.vdp_new("station", since=t0), lab.vdp_new("bridge", since=t0)
    assert modes(st) == [(mode.value, 0x00), (4, 0x00)]
    assert modes(br) == [(mode.value, 0x40), (4, 0x40)]
    # the answer is the request with the status octet changed, nothing else
    for req, ans in zip(st, br, strict=True):
        assert req.vdp.tlvs[0] == ans.vdp.tlvs[0] == VsiManagerIdTlv(LABMGR)
        assert ans.tlvs[0] == VsiTlv(**{**_fields(req.tlvs[0]), "status": VdpStatus.reply()})
    assert lab.of(VsiRejected) == lab.of(VdpViolation) == []


def _fields(tlv: VsiTlv) -> dict[str, Any]:
    return {name: getattr(tlv, name) for name in VsiTlv.__slots__}


@pytest.mark.parametrize(("row", "mode"), [(104, VdpMode.ASSOC), (106, VdpMode.PREASSOC)])
def test_two_vsis(row: int, mode: VdpMode) -> None:
    """104 two associates / 106 two pre-associates, then both de-associated."""
    lab = Lab()
    a, b = vsi(U1), vsi(U2)
    lab.request(a, mode)
    lab.request(b, mode)
    lab.wait_for(VsiAssociated, key=b.key)
    assert [ev.key for ev in lab.of(VsiAssociated)] == [a.key, b.key]
    assert {k: r.mode for k, r in lab.br.vdp.vsis.items()} == {a.key: mode, b.key: mode}
    lab.deassociate(a)
    lab.deassociate(b)
    lab.wait_for(VsiDeassociated, key=b.key)
    assert [(ev.key, ev.reason) for ev in lab.of(VsiDeassociated)] == [(a.key, "deassociated"), (b.key, "deassociated")]
    assert station_keys(lab) == set() and lab.br.vdp.vsis == {}
    assert len(lab.of(VsiDeassociated, "bridge")) == 2


# ============================================================================================== 108-114


def test_108_associate_then_preassociate_is_refused_locally() -> None:
    """108: Assoc → Pre-Assoc (or Pre-Assoc-RR) is refused before anything is sent (vdp.md §11)."""
    lab = Lab()
    v = vsi()
    lab.settle(v)
    sent = len(lab.vdp_tx("station"))
    for mode in (VdpMode.PREASSOC, VdpMode.PREASSOC_RR):
        with pytest.raises(LocalProtocolError, match="not allowed"):
            lab.request(v, mode)
    lab.run_for(1.0)
    assert len(lab.vdp_tx("station")) == sent
    assert confirmed(lab, v) is VdpMode.ASSOC and bridge_mode(lab, v) is VdpMode.ASSOC


def test_preassoc_rr_then_preassoc_is_allowed() -> None:
    """The standard's table allows Pre-Assoc-RR → Pre-Assoc; lldpad refuses it ("numerically not
    lower", vdp.md §11). We follow the standard (README, station mode table)."""
    lab = Lab()
    v = vsi()
    lab.settle(v, VdpMode.PREASSOC_RR)
    lab.settle(v, VdpMode.PREASSOC)
    assert confirmed(lab, v) is VdpMode.PREASSOC and bridge_mode(lab, v) is VdpMode.PREASSOC


@pytest.mark.parametrize(
    ("row", "sequence"),
    [
        (110, [VdpMode.PREASSOC, VdpMode.PREASSOC_RR, VdpMode.ASSOC]),
        (111, [VdpMode.PREASSOC, VdpMode.PREASSOC]),
        (112, [VdpMode.PREASSOC_RR, VdpMode.PREASSOC_RR]),
        (113, [VdpMode.ASSOC, VdpMode.ASSOC]),
    ],
)
def test_mode_sequences(row: int, sequence: list[VdpMode]) -> None:
    """110-113: mode sequences, then de-associate. Every command is sent and answered in its own TLV
    type; the station confirms every command; the bridge reports a VSI only when its mode changes
    (a repeated mode is a refresh there, vdp.md §10.3 ALIVE)."""
    lab = Lab()
    v = vsi()
    t0 = lab.now
    for mode in sequence:
        lab.settle(v, mode)
        assert confirmed(lab, v) is mode and bridge_mode(lab, v) is mode
    lab.deassociate(v)
    lab.wait_for(VsiDeassociated, key=v.key, reason="deassociated")

    assert [ev.mode for ev in lab.of(VsiAssociated)] == sequence
    changes = [m for i, m in enumerate(sequence) if i == 0 or m is not sequence[i - 1]]
    assert [ev.mode for ev in lab.of(VsiAssociated, "bridge")] == changes
    assert lab.br.vdp.counters.refreshes == len(sequence) - len(changes)
    types = [m.value for m in sequence] + [4]
    assert modes(lab.vdp_new("station", since=t0)) == [(t, 0x00) for t in types]
    assert modes(lab.vdp_new("bridge", since=t0)) == [(t, 0x40) for t in types]
    assert lab.br.vdp.vsis == {}


def test_114_deassociate_unknown_vsi_is_refused_locally() -> None:
    """114: De-Associate of a VSI the station does not hold: LocalProtocolError, nothing sent."""
    lab = Lab()
    with pytest.raises(LocalProtocolError, match="unknown VSI"):
        lab.deassociate(vsi())
    lab.run_for(1.0)
    assert lab.vdp_tx("station") == [] and vdp_events(lab) == []


# ============================================================================================== errors


@pytest.mark.parametrize(
    ("row", "mode", "code", "hard", "status"),
    [
        (115, VdpMode.ASSOC, 2, False, 0x42),
        (118, VdpMode.PREASSOC, 4, False, 0x44),
        (122, VdpMode.PREASSOC, 2, True, 0x52),
    ],
)
def test_error_answer(row: int, mode: VdpMode, code: int, hard: bool, status: int) -> None:
    """115 associate / 118 pre-associate: error answer; 122: hard error. A refusal without Keep is a
    De-Associate TLV carrying 0x40 + code (+ 0x10 Hard) (vdp.md §7.3); the station ends the VSI
    without sending a De-Associate and the bridge keeps nothing."""
    lab = Lab(policy=rejecting(code, hard=hard))
    v = vsi()
    t0 = lab.now
    lab.request(v, mode)
    _, ev = lab.wait_for(VsiRejected)
    assert ev == VsiRejected(key=v.key, mode=mode, code=code, keep=False, hard=hard)
    assert lab.of(VsiRejected, "bridge") == [VsiRejected(key=v.key, mode=mode, code=code, keep=False, hard=hard)]
    lab.run_for(sec(TOUT_KEEPALIVE_US) + 1)
    assert modes(lab.vdp_new("station", since=t0)) == [(mode.value, 0x00)]
    [answer] = lab.vdp_new("bridge", since=t0)
    assert modes([answer]) == [(4, status)]
    assert answer.tlvs[0].entries == v.entries and answer.tlvs[0].vsiid == v.vsiid
    assert station_keys(lab) == set() and lab.br.vdp.vsis == {}
    assert lab.of(VsiAssociated) == lab.of(VsiAssociated, "bridge") == []


def test_keep_error_on_a_mode_change_leaves_the_vsi_as_it_was() -> None:
    """Keep error (status 0x60 + code, same TLV type) on Pre-Assoc → Assoc: both sides stay
    pre-associated, and the next keep-alive refreshes the Pre-Associate (vdp.md §9.3)."""
    policy = FirstThen(Decision.accept(), Decision.reject(3, keep=True))
    lab = Lab(policy=policy)
    v = vsi()
    lab.settle(v, VdpMode.PREASSOC)
    t1 = lab.now
    lab.associate(v)
    t_rej, ev = lab.wait_for(VsiRejected)
    assert ev == VsiRejected(key=v.key, mode=VdpMode.ASSOC, code=3, keep=True, hard=False)
    [answer] = lab.vdp_new("bridge", since=t1)
    assert modes([answer]) == [(VdpMode.ASSOC.value, 0x63)]
    assert confirmed(lab, v) is VdpMode.PREASSOC and bridge_mode(lab, v) is VdpMode.PREASSOC
    assert lab.st.vdp.vsis[v.key].state is StState.ESTABLISHED
    # the next keep-alive (reinitKeepAlive after the keep error) is the Pre-Associate again
    lab.run_for(sec(REINIT_KEEPALIVE_US) + 0.01)
    [ka] = lab.vdp_new("station", since=t_rej)
    assert ka.t == t_rej + sec(REINIT_KEEPALIVE_US)
    assert modes([ka]) == [(VdpMode.PREASSOC.value, 0x00)]
    assert lab.br.vdp.counters.refreshes == 1 and len(policy.calls) == 2


# ============================================================================================== 116 119 121


@pytest.mark.parametrize(
    ("row", "mode", "decision", "status"),
    [
        (116, VdpMode.PREASSOC, Decision.reject(2), 0x42),
        (119, VdpMode.PREASSOC_RR, Decision.reject(4, hard=True), 0x54),
    ],
)
def test_error_in_first_keepalive(row: int, mode: VdpMode, decision: Decision, status: int) -> None:
    """116 pre-associate / 119 pre-associate-RR: error answer to the first keep-alive.

    Our bridge answers a refresh from its stored answer without asking the policy (the
    standard's PROCESS_KEEPALIVE, bridge.py docstring; lldpad's bridge re-runs its policy on
    every keep-alive instead). So a keep-alive meets a policy decision only at a bridge that
    has forgotten the VSI: here the bridge's agent restarts between the answer and the first
    keep-alive (as in vdp-deassoc-unknown.pcap), and its policy, which accepted the first
    request, refuses the next one. The station ends the VSI without a De-Associate."""
    policy = FirstThen(Decision.accept(), decision)
    lab = Lab(policy=policy)
    v = vsi()
    lab.request(v, mode)
    t_ans, _ = lab.wait_for(VsiAssociated, mode=mode)
    lab.run_for(1.0)
    lab.restart_bridge()
    t_end, ev = lab.wait_for(VsiDeassociated, key=v.key)
    assert ev == VsiDeassociated(key=v.key, reason="rejected", code=decision.code, hard=decision.hard)
    assert t_end == lab.arrival(lab.vdp_new("bridge", since=t_ans)[0])
    [ka] = lab.vdp_new("station", since=t_ans)
    assert ka.t == t_ans + sec(REINIT_KEEPALIVE_US)  # the first keep-alive, on time
    assert modes([ka]) == [(mode.value, 0x00)]
    assert modes(lab.vdp_new("bridge", since=t_ans)) == [(4, status)]
    assert [c.current for c in policy.calls] == [None, None]  # the restarted bridge saw a new VSI
    lab.run_for(sec(RESP_WAIT_US))
    assert lab.vdp_new("station", since=t_ans) == [ka] and station_keys(lab) == set()
    assert lab.br.vdp.vsis == {}


def test_121_keep_error_in_first_keepalive_makes_the_station_deassociate() -> None:
    """121: associate, Keep error (code 3, status 0x63) in the answer to the first keep-alive: lldpad's
    station then de-associates the VSI (vdp.md §9.3 TXMIT_KAWAIT_2), and so does ours. The keep-alive
    meets the policy at a restarted bridge (see test_error_in_first_keepalive)."""
    policy = FirstThen(Decision.accept(), Decision.reject(3, keep=True))
    lab = Lab(policy=policy)
    v = vsi()
    t_ans = lab.settle(v, hints="to")
    lab.run_for(1.0)
    lab.restart_bridge()
    t_end, _ = lab.wait_for(VsiDeassociated, key=v.key)
    assert t_end == lab.arrival(lab.vdp_new("bridge")[-1])
    # events.py lists a reason "keep-error" for this case; the station reports it as a Keep rejection
    # followed by an ordinary de-association instead
    after = [
        e for t, w, e in lab.events if w == "station" and t > t_ans + 2 and isinstance(e, VsiRejected | VsiDeassociated)
    ]
    assert after == [
        VsiRejected(key=v.key, mode=VdpMode.ASSOC, code=3, keep=True, hard=False),
        VsiDeassociated(key=v.key, reason="deassociated"),
    ]
    st = lab.vdp_new("station", since=t_ans)
    assert st[0].t == t_ans + sec(REINIT_KEEPALIVE_US)
    # keep-alive, then the station's De-Associate (its hints, 0x10, kept); the restarted bridge answers
    # the keep-alive with the Keep error and the De-Associate of a VSI it does not hold with 0x40
    assert modes(st) == [(3, 0x10), (4, 0x10)]
    assert modes(lab.vdp_new("bridge", since=t_ans)) == [(3, 0x63), (4, 0x40)]
    assert station_keys(lab) == set() and lab.br.vdp.vsis == {}


# ============================================================================================== 117 120 124


def drop_station_requests(tx: Tx) -> bool:
    """Lose every ECP request of the station (keep-alives never arrive); its ACKs still do."""
    return tx.who == "station" and tx.is_request


@pytest.mark.parametrize(("row", "mode"), [(117, VdpMode.ASSOC), (120, VdpMode.PREASSOC)])
def test_unsolicited_deassociate_from_the_bridge(row: int, mode: VdpMode) -> None:
    """117 associate / 120 pre-associate, then an unsolicited De-Associate from the bridge: here its
    keep-alive timeout, the station's keep-alives being lost. The De-Associate has status 0x00 (no
    response bit) and the granted filter; the station ECP-acknowledges it, ends the VSI (reason
    "bridge") and sends no VDP answer."""
    lab = Lab()
    v = vsi()
    lab.settle(v, mode)
    t1 = lab.now
    lab.drop = drop_station_requests
    t_end, ev = lab.wait_for(VsiDeassociated, key=v.key)
    assert ev == VsiDeassociated(key=v.key, reason="bridge")
    [unsolicited] = lab.vdp_new("bridge", since=t1)
    assert modes([unsolicited]) == [(4, 0x00)]
    assert unsolicited.tlvs[0].entries == v.entries and unsolicited.tlvs[0].type_id == 5
    assert t_end == lab.arrival(unsolicited)
    acks = [tx for tx in lab.wire if tx.who == "station" and tx.t == t_end and tx.ecp and tx.ecp.op is EcpOp.ACK]
    assert [a.ecp.seq for a in acks] == [unsolicited.ecp.seq]  # type: ignore[union-attr]
    assert not acks[0].lost
    # the keep-alives the station sent in between were all lost; none was an answer
    kas = lab.vdp_tx("station", since=t1)
    assert kas and all(tx.lost and modes([tx]) == [(mode.value, 0)] for tx in kas)
    lab.run_for(sec(RESP_WAIT_US))
    assert station_keys(lab) == set() and lab.br.vdp.vsis == {}
    assert len(lab.vdp_new("bridge", since=t1)) == 1


def test_124_bridge_keepalive_timeout_at_exactly_tout_keepalive() -> None:
    """124: the bridge de-associates a VSI exactly toutKeepAlive = 1.5·((2R+1)·10·2^RTE + 10·2^RKA) µs
    (15 755 520 µs with the defaults, vdp-bridge-deassoc-kato.pcap frame 11) after its last answer.
    The first keep-alive is answered (restarting the timer), the later ones are lost."""
    lab = Lab()
    v = vsi()
    t_first = lab.settle(v)
    lab.drop = lambda tx: drop_station_requests(tx) and tx.t > t_first + sec(REINIT_KEEPALIVE_US) + 1
    t_end, _ = lab.wait_for(VsiDeassociated, "bridge", key=v.key, limit=60)
    answers = lab.vdp_new("bridge")
    assert modes(answers) == [(3, 0x40), (3, 0x40), (4, 0x00)]
    last_answer = answers[1]
    assert t_end == last_answer.t + sec(TOUT_KEEPALIVE_US)
    assert answers[2].t == t_end
    assert lab.of(VsiDeassociated, "bridge") == [VsiDeassociated(key=v.key, reason="keepalive-timeout")]
    assert lab.br.vdp.counters.keepalive_timeouts == 1


@pytest.mark.parametrize(("rte", "rka", "r"), [(8, 12, 3), (10, 14, 1), (4, 9, 7)])
def test_keepalive_timeout_formula(rte: int, rka: int, r: int) -> None:
    """toutKeepAlive with other exponents: t = (2R+1)·10·2^RTE + 10·2^RKA µs; t += t // 2."""
    evb = {"r": r, "rte": rte, "rka": rka}
    lab = Lab(st_evb=evb, br_evb=evb)
    v = vsi()
    lab.settle(v)
    lab.drop = drop_station_requests
    t_end, _ = lab.wait_for(VsiDeassociated, "bridge", key=v.key)
    t = (2 * r + 1) * 10 * 2**rte + 10 * 2**rka
    [answer] = lab.vdp_new("bridge")[:1]
    assert t_end == answer.t + sec(t + t // 2)


# ============================================================================================== 123


def test_123_resource_wait_timeout() -> None:
    """123: the policy never decides; exactly resourceWaitDelay = 10·2^RWD µs after the request
    arrived the bridge refuses it with code 3 ("unable to contact VSI manager") in a De-Associate
    TLV, status 0x43 (lldpad sends 0x00 there, vdp.md §10.3; we send the standard's code)."""
    lab = Lab(policy=pending)
    v = vsi()
    lab.associate(v)
    _, ev = lab.wait_for(VsiRejected)
    assert ev == VsiRejected(key=v.key, mode=VdpMode.ASSOC, code=3, keep=False, hard=False)
    [req] = lab.vdp_new("station")
    [answer] = lab.vdp_new("bridge")
    assert answer.t == lab.arrival(req) + sec(RESOURCE_WAIT_US)
    assert modes([answer]) == [(4, 0x43)]
    assert lab.of(VsiRejected, "bridge") == [VsiRejected(key=v.key, mode=VdpMode.ASSOC, code=3, keep=False, hard=False)]
    assert lab.br.vdp.vsis == {} and station_keys(lab) == set()
    assert not lab.decide(v.key, Decision.accept())  # too late: nothing waits for it


@pytest.mark.parametrize("rwd", [10, 16, 22])
def test_resource_wait_delay_formula(rwd: int) -> None:
    """resourceWaitDelay = 10·2^RWD µs, for other RWD values."""
    lab = Lab(policy=pending, st_evb={"rwd": rwd}, br_evb={"rwd": rwd})
    lab.associate(vsi())
    lab.wait_for(VsiRejected, limit=100)
    [req] = lab.vdp_new("station")
    [answer] = lab.vdp_new("bridge")
    assert answer.t == lab.arrival(req) + sec(10 * 2**rwd)


def test_pending_decision_delivered_later() -> None:
    """Decision.pending, then decide(): the answer goes out when the decision arrives; a repeated
    request meanwhile is ignored (busy, vdp.md §10.4)."""
    lab = Lab(policy=pending)
    v = vsi()
    lab.associate(v)
    lab.run_for(2.0)
    assert lab.vdp_new("bridge") == [] and lab.br.vdp.mode_counts() == {"pending": 1}
    inject(lab, _request_tlv(v))  # the same request again while the policy thinks: busy
    lab.run_for(0.01)
    assert lab.vdp_new("bridge") == [] and lab.br.vdp.counters.ignored == 1
    assert lab.decide(v.key, Decision.accept())
    t_dec = lab.now
    _, ev = lab.wait_for(VsiAssociated)
    assert (ev.key, ev.mode) == (v.key, VdpMode.ASSOC)
    [answer] = lab.vdp_new("bridge")
    assert answer.t == t_dec and modes([answer]) == [(3, 0x40)]
    assert not lab.decide(v.key, Decision.accept())


def test_pending_on_an_established_vsi_times_out_with_keep() -> None:
    """A mode change left pending past resourceWaitDelay: the VSI was established, so the bridge
    keeps it as it was (Keep error, code 3, 0x63) and the station stays pre-associated."""
    policy = FirstThen(Decision.accept(), Decision.pending())
    lab = Lab(policy=policy)
    v = vsi()
    lab.settle(v, VdpMode.PREASSOC)
    t1 = lab.now
    lab.associate(v)
    _, ev = lab.wait_for(VsiRejected)
    assert ev == VsiRejected(key=v.key, mode=VdpMode.ASSOC, code=3, keep=True, hard=False)
    [req] = lab.vdp_new("station", since=t1)
    [answer] = lab.vdp_new("bridge", since=t1)
    assert answer.t == lab.arrival(req) + sec(RESOURCE_WAIT_US)
    assert modes([answer]) == [(3, 0x63)]
    assert confirmed(lab, v) is VdpMode.PREASSOC and bridge_mode(lab, v) is VdpMode.PREASSOC


# ============================================================================================== keep-alive


def test_keepalive_every_reinit_keepalive_after_the_answer() -> None:
    """The station refreshes exactly reinitKeepAlive = 10·2^RKA µs after it processed the last answer
    (vdp.md §8; lldpad processes 2 ms after delivery, we at once). Each keep-alive is the original
    request again (new ECP sequence number), answered 0x40; neither side reports it again."""
    lab = Lab()
    v = vsi()
    t0 = lab.now
    lab.settle(v)
    lab.run_for(3 * sec(REINIT_KEEPALIVE_US) + 1)
    st, br = lab.vdp_new("station", since=t0), lab.vdp_new("bridge", since=t0)
    assert len(st) == len(br) == 4
    for k in (1, 2, 3):
        assert st[k].t == lab.arrival(br[k - 1]) + sec(REINIT_KEEPALIVE_US)
        assert st[k].vdp == st[0].vdp and st[k].ecp.seq == st[0].ecp.seq + k  # type: ignore[union-attr]
        assert br[k].vdp == br[0].vdp
    assert len(lab.of(VsiAssociated)) == len(lab.of(VsiAssociated, "bridge")) == 1
    assert lab.st.vdp.counters.keepalives_sent == 3 and lab.br.vdp.counters.refreshes == 3


@pytest.mark.parametrize("rka", [10, 14, 17])
def test_keepalive_formula(rka: int) -> None:
    """reinitKeepAlive = 10·2^RKA µs for other RKA values (RKA = 17: 1.31 s, vdp-deassoc-bridge-linger)."""
    lab = Lab(st_evb={"rka": rka}, br_evb={"rka": rka})
    lab.settle(vsi())
    lab.run_for(sec(10 * 2**rka) + 0.01)
    st, br = lab.vdp_new("station"), lab.vdp_new("bridge")
    assert st[1].t == lab.arrival(br[0]) + sec(10 * 2**rka)


@pytest.mark.parametrize(("coalesce", "pdus"), [(0.05, 1), (0.0, 2)])
def test_keepalives_due_together_are_coalesced(coalesce: float, pdus: int) -> None:
    """Keep-alives due within ``keepalive_coalesce`` of one due now go out with it in one ECPDU."""
    lab = Lab(st_port={"keepalive_coalesce": coalesce})
    a, b = vsi(U1), vsi(U2)
    ta = lab.settle(a)
    lab.run_for(0.02)
    lab.settle(b)
    t1 = lab.now
    lab.run_for(sec(REINIT_KEEPALIVE_US) + 0.1)
    kas = lab.vdp_new("station", since=t1)
    assert len(kas) == pdus
    assert kas[0].t == ta + sec(REINIT_KEEPALIVE_US)
    assert sorted(t.vsiid for tx in kas for t in tx.tlvs) == [U1, U2]


# ============================================================================================== respWaitDelay


def test_resp_wait_delay_when_the_bridge_never_answers() -> None:
    """The bridge acknowledges the ECPDU but its VDP answer never arrives: the station ends the VSI
    (reason "timeout", nothing sent) exactly respWaitDelay = 1.5·((2R+1)·10·2^RTE + 10·2^RWD) µs after
    it sent the request."""
    lab = Lab(drop=lambda tx: tx.who == "bridge" and tx.is_request)
    v = vsi()
    lab.associate(v)
    t_end, ev = lab.wait_for(VsiDeassociated)
    assert ev == VsiDeassociated(key=v.key, reason="timeout")
    [req] = lab.vdp_new("station")
    assert t_end == req.t + sec(RESP_WAIT_US)
    assert station_keys(lab) == set()
    assert lab.vdp_new("station") == [req]  # no De-Associate after a timeout (vdp.md §9.3 note)


def test_resp_wait_delay_keeps_running_while_ecp_retries() -> None:
    """No ECP acknowledgement at all: ECP gives up after 1 + R tries, VDP queues the request again,
    and respWaitDelay keeps running from the first transmission (station.py docstring) so the VSI
    still ends on time instead of being retried for ever."""
    lab = Lab(drop=drop_station_requests)
    v = vsi()
    t0 = lab.now
    lab.associate(v)
    t_end, ev = lab.wait_for(VsiDeassociated, limit=30)
    assert ev == VsiDeassociated(key=v.key, reason="timeout")
    assert t_end == t0 + sec(RESP_WAIT_US)
    assert lab.st.vdp.counters.resent_after_abandon == 3  # RESEND_LIMIT: a silent peer is not flooded
    lab.run_for(1.0)
    assert not lab.vdp_tx("station", since=t_end + 0.02)  # nothing more once it ended


@pytest.mark.parametrize(("r", "rte", "rwd"), [(0, 6, 12), (2, 10, 14), (7, 5, 9)])
def test_resp_wait_delay_formula(r: int, rte: int, rwd: int) -> None:
    """respWaitDelay: t = (2R+1)·10·2^RTE + 10·2^RWD µs; t += t // 2 (lldpad's integers)."""
    evb = {"r": r, "rte": rte, "rwd": rwd}
    lab = Lab(st_evb=evb, br_evb=evb, drop=lambda tx: tx.who == "bridge" and tx.is_request)
    lab.associate(vsi())
    t_end, _ = lab.wait_for(VsiDeassociated)
    t = (2 * r + 1) * 10 * 2**rte + 10 * 2**rwd
    assert t_end == lab.vdp_new("station")[0].t + sec(t + t // 2)


# ============================================================================================== 200 201 22x


def test_200_sixteen_octet_manager_id() -> None:
    """200: a Manager ID using all 16 octets (netlink format 2, e.g. a UUID) is carried unchanged."""
    mgr = bytes.fromhex("8f3e5c1a7b2d4e6f9a0b1c2d3e4f5a6b")
    lab = Lab()
    v = vsi(manager=mgr)
    lab.settle(v)
    lab.deassociate(v)
    lab.wait_for(VsiDeassociated)
    for tx in lab.vdp_new("station") + lab.vdp_new("bridge"):
        assert tx.vdp.tlvs[0] == VsiManagerIdTlv(mgr)
        assert tx.data[18:36] == b"\x0a\x10" + mgr
    assert v.key[0] == mgr


def group_vsi(vsiid: bytes, *entries: FilterEntry) -> Vsi:
    fmt = FilterFormat.GROUP_MAC_VID if entries[0].mac is not None else FilterFormat.GROUP_VID
    return vsi(vsiid, fmt=fmt, entries=entries)


def test_201_group_ids_off() -> None:
    """201: without negotiated group IDs (BGID and SGID) formats 2 works and formats 3/4 are refused
    locally; a format-3 request from elsewhere gets code 1 from our bridge (lldpad: 0x42)."""
    lab = Lab()
    assert not lab.st.operating.group_ids and not lab.br.operating.group_ids
    v = vsi()
    lab.settle(v)
    lab.deassociate(v)
    lab.wait_for(VsiDeassociated)
    for g in (
        group_vsi(U2, FilterEntry(vid=30, group_id=1001)),
        group_vsi(U3, FilterEntry(vid=40, mac=mac(2), group_id=2001)),
    ):
        with pytest.raises(LocalProtocolError, match="group IDs"):
            lab.associate(g)
    # a hand-made format-3 request reaches our bridge anyway
    g = group_vsi(U2, FilterEntry(vid=30, group_id=1001))
    inject(lab, VsiTlv(VdpMode.ASSOC, VdpStatus(), 5, 4, VsiidFormat.UUID, U2, g.filter_format, g.entries))
    lab.run_for(0.01)
    answer = lab.vdp_new("bridge")[-1]
    assert modes([answer]) == [(3, 0x41)] and answer.tlvs[0].vsiid == U2
    assert g.key not in lab.br.vdp.vsis


def inject(lab: Lab, *tlvs: VsiTlv, manager: bytes = LABMGR, seq: int = 0x4000) -> bytes:
    """A hand-made ECPDU from the station's MAC straight into the bridge port."""
    pdu = Ecpdu(EcpOp.REQUEST, 1, seq, VdpPdu((VsiManagerIdTlv(manager), *tlvs)))
    data = build_frame(NEAREST_CUSTOMER_BRIDGE, STATION_MAC, pdu)
    lab.br.receive_frame(data, lab.now)
    lab.net.poke(lab.br)
    return data


GROUP_CASES = {
    # row: (entries, what the bridge grants for entry i)
    220: ((FilterEntry(vid=40, mac=mac(2), group_id=2001),), None),
    221: ((FilterEntry(vid=0, mac=mac(2), group_id=2001),), "vid-from-group"),
    222: (tuple(FilterEntry(vid=40 + i, mac=mac(10 + i), group_id=3000 + i) for i in range(4)), None),
    223: (tuple(FilterEntry(vid=0, mac=mac(10 + i), group_id=300 + i) for i in range(4)), "vid-from-group"),
    224: ((FilterEntry(vid=40, mac=mac(2), group_id=2001),), "qos"),
    225: (
        tuple(FilterEntry(vid=0 if i % 2 else 50 + i, mac=mac(10 + i), group_id=400 + i) for i in range(4)),
        "vid-and-qos",
    ),
}


def _group_grant(kind: str | None) -> Policy:
    def choose(i: int, e: FilterEntry) -> FilterEntry:
        vid, pcp, ps = e.vid, e.pcp, e.ps
        if kind in ("vid-from-group", "vid-and-qos") and vid == 0:
            vid = e.group_id  # type: ignore[assignment]  # lldpad's debug type 207/208: VID := Group ID
        if kind in ("qos", "vid-and-qos"):
            pcp, ps = (i + 3) % 8, True
        return FilterEntry(vid=vid, pcp=pcp, ps=ps, mac=e.mac, group_id=e.group_id)

    return accept_all if kind is None else granting(choose)


@pytest.mark.parametrize("row", sorted(GROUP_CASES))
def test_group_ids(row: int) -> None:
    """220-225: group IDs negotiated (BGID and SGID): format 4 with one or several entries, VID-0
    replacement (VID := Group ID, as lldpad's debug type 207), PCP/QoS replacement and both. The
    station reports the granted entries and de-associates with them."""
    entries, kind = GROUP_CASES[row]
    gid = {"gid": True}
    lab = Lab(policy=_group_grant(kind), st_evb=gid, br_evb=gid)
    assert lab.st.operating.group_ids and lab.br.operating.group_ids
    v = group_vsi(U2, *entries)
    lab.settle(v)
    granted = _group_grant(kind)(PolicyRequest(manager_id=LABMGR, tlv=_request_tlv(v), current=None)).entries
    granted = granted if granted is not None else entries
    [ev] = lab.of(VsiAssociated)
    assert ev.entries == granted and lab.of(VsiAssociated, "bridge")[0].entries == granted
    assert (kind is None) == (granted == entries)
    for sent, got in zip(entries, granted, strict=True):
        assert (got.mac, got.group_id) == (sent.mac, sent.group_id)
        assert got.vid == (sent.group_id if sent.vid == 0 and kind and "vid" in kind else sent.vid)
        assert got.ps is bool(kind and "qos" in kind)
    lab.deassociate(v)
    lab.wait_for(VsiDeassociated)
    req, de = lab.vdp_new("station")
    assert req.tlvs[0].entries == entries and req.tlvs[0].filter_format is FilterFormat.GROUP_MAC_VID
    assert de.tlvs[0].entries == granted
    assert lab.br.vdp.vsis == {}


def _request_tlv(v: Vsi) -> VsiTlv:
    return VsiTlv(
        VdpMode.ASSOC, VdpStatus(), v.type_id, v.type_version, v.vsiid_format, v.vsiid, v.filter_format, v.entries
    )


def test_group_format_3_two_entries() -> None:
    """Format 3 (GroupID/VID) with two entries, as vdp-filter-fmt3-fmt4-group.pcap frame 1."""
    gid = {"gid": True}
    lab = Lab(st_evb=gid, br_evb=gid)
    v = group_vsi(U1, FilterEntry(vid=30, group_id=1001), FilterEntry(vid=31, group_id=1002))
    lab.settle(v)
    [req] = lab.vdp_new("station")
    assert req.tlvs[0].encode()[:2] == b"\x06\x25"  # type 3, L = 25 + 2·6 = 37


# ============================================================================================== 202-213


def fmt1(*words: tuple[int, int, bool]) -> tuple[FilterEntry, ...]:
    return tuple(FilterEntry(vid=v, pcp=p, ps=s) for v, p, s in words)


def test_202_203_vid0_replacement_format1() -> None:
    """202/203: format 1, VID 0 (wildcard); the bridge assigns VID 100. The station reports VID 100
    and its De-Associate carries VID 100. lldpad refuses locally a De-Associate command that still
    names VID 0 (202) and accepts the assigned VID (203); ours accepts both forms and sends the
    assigned values either way; any other filter is refused locally."""
    policy = granting(lambda i, e: FilterEntry(vid=100) if e.vid == 0 else e)
    for row, deassoc_with in ((202, fmt1((0, 0, False))), (203, fmt1((100, 0, False)))):
        lab = Lab(policy=policy)
        v = vsi(fmt=FilterFormat.VID, entries=fmt1((0, 0, False)))
        lab.settle(v)
        [ev] = lab.of(VsiAssociated)
        assert ev.entries == fmt1((100, 0, False)), row
        with pytest.raises(LocalProtocolError, match="filter differs"):
            lab.deassociate(vsi(fmt=FilterFormat.VID, entries=fmt1((77, 0, False))))
        lab.deassociate(vsi(fmt=FilterFormat.VID, entries=deassoc_with))
        lab.wait_for(VsiDeassociated, reason="deassociated")
        req, de = lab.vdp_new("station")
        assert req.tlvs[0].entries == fmt1((0, 0, False))
        assert de.tlvs[0].entries == fmt1((100, 0, False)), row
        assert de.tlvs[0].encode()[-2:] == b"\x00\x64"
        assert lab.br.vdp.vsis == {}


def test_204_205_qos_replacement_format1() -> None:
    """204/205: format 1, VID 10 without PS; the bridge grants PS 1, PCP 5 (word 0xd00a). The station
    reports it and de-associates with it."""
    lab = Lab(policy=granting(lambda i, e: FilterEntry(vid=e.vid, pcp=5, ps=True)))
    v = vsi(fmt=FilterFormat.VID, entries=fmt1((10, 0, False)))
    lab.settle(v)
    [ev] = lab.of(VsiAssociated)
    assert ev.entries == fmt1((10, 5, True)) and ev.entries[0].qos_word == 0xD00A
    with pytest.raises(LocalProtocolError):
        lab.deassociate(vsi(fmt=FilterFormat.VID, entries=fmt1((10, 3, True))))
    lab.deassociate(v)
    lab.wait_for(VsiDeassociated, reason="deassociated")
    _, de = lab.vdp_new("station")
    assert de.tlvs[0].encode()[-2:] == b"\xd0\x0a"


def test_206_qos_replacement_fails_wrong_index() -> None:
    """206: the policy cannot place its QoS (lldpad: entry index beyond the entries → De-Associate
    TLV with code 5, lldpad-behaviour.md §6): refused with code 5 (0x45). And a policy that returns
    a different number of entries is not obeyed: the request's entries are granted (bridge.py)."""
    lab = Lab(policy=rejecting(5))
    v = vsi(fmt=FilterFormat.VID, entries=fmt1((10, 0, False), (20, 0, False)))
    lab.associate(v)
    _, ev = lab.wait_for(VsiRejected)
    assert ev.code == 5 and modes(lab.vdp_new("bridge")) == [(4, 0x45)]

    def too_many(request: PolicyRequest) -> Decision:
        return Decision.accept((*request.tlv.entries, FilterEntry(vid=99)))

    lab = Lab(policy=too_many)
    lab.settle(v)
    assert lab.of(VsiAssociated)[0].entries == v.entries


@pytest.mark.parametrize(
    ("row", "sent", "returned"),
    [
        (207, fmt1((10, 5, True)), fmt1((10, 3, True))),  # unexpected QoS returned
        (209, fmt1((10, 5, True)), fmt1((10, 0, False))),  # requested QoS not confirmed
        (209, fmt1((10, 0, False)), fmt1((11, 0, False))),  # a non-wildcard VID changed
    ],
)
def test_unexpected_filter_in_the_answer(
    row: int, sent: tuple[FilterEntry, ...], returned: tuple[FilterEntry, ...]
) -> None:
    """207/209: the answer changes what the station fixed (PCP with PS set, or a non-zero VID): the
    filter check fails (vdp.md §9.2 step 4), the station ends the VSI (reason "filter-mismatch")
    without sending anything; the bridge keeps its VSI until toutKeepAlive and then de-associates it,
    which the station acknowledges and ignores."""
    lab = Lab(policy=lambda request: Decision.accept(returned))
    v = vsi(fmt=FilterFormat.VID, entries=sent)
    lab.associate(v)
    t_end, ev = lab.wait_for(VsiDeassociated)
    assert ev == VsiDeassociated(key=v.key, reason="filter-mismatch")
    [answer] = lab.vdp_new("bridge")
    assert t_end == lab.arrival(answer) and answer.tlvs[0].entries == returned
    assert lab.of(VsiAssociated) == [] and v.key in lab.br.vdp.vsis
    t_br, _ = lab.wait_for(VsiDeassociated, "bridge", reason="keepalive-timeout")
    assert t_br == answer.t + sec(TOUT_KEEPALIVE_US)
    lab.run_for(0.01)
    assert len(lab.vdp_new("station")) == 1
    assert lab.st.vdp.counters.unknown_answers == 1


def test_208_vlan_and_qos_requested_by_the_caller() -> None:
    """208: format 1 entries with PS/PCP set by the caller are confirmed unchanged."""
    lab = Lab()
    entries = fmt1((10, 5, True), (20, 0, False), (30, 7, True))
    v = vsi(fmt=FilterFormat.VID, entries=entries)
    lab.settle(v)
    assert lab.of(VsiAssociated)[0].entries == entries
    [req] = lab.vdp_new("station")
    assert req.tlvs[0].encode()[-6:] == bytes.fromhex("d00a0014f01e")


def test_210_format1_several_vids_with_one_wildcard() -> None:
    """210: format 1, several VIDs one of which is 0. lldpad refuses it (station locally, bridge
    0x42, vdp-bridge-errors-injected.pcap frames 14-16); that rule is lldpad's, not the standard's
    (validate.py follows the standard), so our station sends it and our bridge may assign the VID."""
    lab = Lab(policy=granting(lambda i, e: FilterEntry(vid=300) if e.vid == 0 else e))
    v = vsi(fmt=FilterFormat.VID, entries=fmt1((0, 0, False), (5, 0, False)))
    lab.settle(v)
    assert lab.of(VsiAssociated)[0].entries == fmt1((300, 0, False), (5, 0, False))


def test_211_qos_changed_for_entry_4() -> None:
    """211: several VIDs (format 1); the bridge changes the QoS of entry 4 only."""
    entries = fmt1(*((100 + i, 0, False) for i in range(6)))
    lab = Lab(policy=granting(lambda i, e: FilterEntry(vid=e.vid, pcp=6, ps=True) if i == 3 else e))
    v = vsi(fmt=FilterFormat.VID, entries=entries)
    lab.settle(v)
    got = lab.of(VsiAssociated)[0].entries
    assert got[:3] == entries[:3] and got[4:] == entries[4:]
    assert got[3] == FilterEntry(vid=103, pcp=6, ps=True)
    lab.deassociate(v)
    lab.wait_for(VsiDeassociated)
    assert lab.vdp_new("station")[-1].tlvs[0].entries == got


@pytest.mark.parametrize("row", [212, 213])
def test_212_213_format2_all_vid0_replaced(row: int) -> None:
    """212/213: several MAC/VID entries, all VID 0, each replaced by the bridge; the De-Associate
    (given with the original filter in 212, with the granted one in 213) carries the granted VIDs."""
    entries = tuple(FilterEntry(vid=0, mac=mac(1 + i)) for i in range(3))
    lab = Lab(policy=granting(lambda i, e: FilterEntry(vid=200 + i, mac=e.mac)))
    v = vsi(entries=entries)
    lab.settle(v)
    granted = tuple(FilterEntry(vid=200 + i, mac=mac(1 + i)) for i in range(3))
    assert lab.of(VsiAssociated)[0].entries == granted
    lab.deassociate(v if row == 212 else vsi(entries=granted))
    lab.wait_for(VsiDeassociated, reason="deassociated")
    assert lab.vdp_new("station")[-1].tlvs[0].entries == granted
    assert lab.vdp_new("bridge")[-1].tlvs[0].entries == granted
    assert lab.br.vdp.vsis == {}


# ============================================================================================== 240 241


@pytest.mark.parametrize(("row", "hints", "status"), [(240, "to", 0x10), (241, "from", 0x20)])
def test_migration_hints(row: int, hints: str, status: int) -> None:
    """240/241: hints=to → 0x10 (M-bit), hints=from → 0x20 (S-bit) on every request of the VSI: the
    first, the keep-alives, a later mode change (whose own hints are ignored, as lldpad) and the
    De-Associate. Answers never carry them (0x40 only: there the bits mean Keep and Hard)."""
    lab = Lab()
    v = vsi()
    lab.settle(v, VdpMode.PREASSOC, hints=hints)
    lab.run_for(sec(REINIT_KEEPALIVE_US) + 0.1)
    lab.settle(v, VdpMode.ASSOC, hints="from" if hints == "to" else "to")
    lab.deassociate(v)
    lab.wait_for(VsiDeassociated)
    st, br = lab.vdp_new("station"), lab.vdp_new("bridge")
    assert modes(st) == [(1, status), (1, status), (3, status), (4, status)]
    assert modes(br) == [(1, 0x40), (1, 0x40), (3, 0x40), (4, 0x40)]
    for tx in st:
        assert tx.tlvs[0].status.hints == hints
        assert tx.data[18 + 18 + 2] == status  # the octet on the wire, after the Manager ID TLV


# ============================================================================================== packing


def associate_all(lab: Lab, vs: list[Vsi]) -> None:
    """Associate ``vs`` at one instant. A command pulls at once what ECP can send: the first VSI
    leaves alone, the others accumulate while it is in flight and are packed after it."""
    for v in vs:
        lab.st.associate(v, now=lab.now)
    lab.net.poke(lab.st)


def test_packing_one_manager_fills_the_ulpdu() -> None:
    """Many VSIs of one manager: one Manager ID TLV first, then as many association TLVs as fit in
    1493 octets: 42 one-entry MAC/VID TLVs of 35 octets (18 + 42·35 + End 2 = 1490; 43 would need
    1525). The bridge packs its answers the same way."""
    lab = Lab()
    vs = [vsi(uuid_n(i), entries=(FilterEntry(vid=2 + i, mac=mac(i)),)) for i in range(100)]
    associate_all(lab, vs)
    lab.wait_for(VsiAssociated, key=vs[-1].key)
    st, br = lab.vdp_new("station"), lab.vdp_new("bridge")
    assert [len(tx.tlvs) for tx in st] == [1, 42, 42, 15]
    assert [len(tx.tlvs) for tx in br] == [1, 42, 42, 15]
    for tx in st + br:
        assert tx.vdp.tlvs[0] == VsiManagerIdTlv(LABMGR)
        assert sum(isinstance(t, VsiManagerIdTlv) for t in tx.vdp.tlvs) == 1
        assert tx.ulpdu_len <= 1493
    assert st[1].ulpdu_len == br[1].ulpdu_len == 18 + 42 * 35 + 2
    assert [t.vsiid for tx in st for t in tx.tlvs] == [v.vsiid for v in vs]
    assert [t.vsiid for tx in br for t in tx.tlvs] == [v.vsiid for v in vs]
    assert len(lab.of(VsiAssociated)) == len(lab.of(VsiAssociated, "bridge")) == 100


def test_packing_counts_the_end_tlv() -> None:
    """The End TLV we append (PortConfig.end_tlv) is part of the ULPDU that lldpad limits to 1493
    octets (ecp.md §1): 48 one-entry format-1 VSIs (29 octets each) and one with 28 entries (83)
    are 18 + 1475 = 1493 octets of TLVs, so with the End TLV the last VSI waits for the next ECPDU;
    without it all 49 fit exactly."""
    for end_tlv in (True, False):
        lab = Lab(st_port={"end_tlv": end_tlv}, br_port={"end_tlv": end_tlv})
        vs = [vsi(uuid_n(i), fmt=FilterFormat.VID, entries=fmt1((2 + i, 0, False))) for i in range(48)]
        vs.append(vsi(uuid_n(99), fmt=FilterFormat.VID, entries=fmt1(*((200 + i, 0, False) for i in range(28)))))
        associate_all(lab, [vsi(uuid_n(1000)), *vs])
        lab.wait_for(VsiAssociated, key=vs[-1].key)
        st, br = lab.vdp_new("station"), lab.vdp_new("bridge")
        assert [len(tx.tlvs) for tx in st] == ([1, 48, 1] if end_tlv else [1, 49]), end_tlv
        assert [len(tx.tlvs) for tx in br] == ([1, 48, 1] if end_tlv else [1, 49]), end_tlv
        assert all(tx.ulpdu_len <= 1493 for tx in st + br), end_tlv
        assert st[1].ulpdu_len == br[1].ulpdu_len == (18 + 48 * 29 + 2 if end_tlv else 1493)


@pytest.mark.parametrize("max_per_pdu", [1, 5])
def test_packing_respects_max_per_pdu(max_per_pdu: int) -> None:
    """PortConfig.max_per_pdu caps the association TLVs per ECPDU (1 = lldpad's own behaviour)."""
    cfg = {"max_per_pdu": max_per_pdu}
    lab = Lab(st_port=cfg, br_port=cfg)
    vs = [vsi(uuid_n(i)) for i in range(12)]
    associate_all(lab, vs)
    lab.wait_for(VsiAssociated, key=vs[-1].key)
    expect = [1, *[max_per_pdu] * (11 // max_per_pdu), *([11 % max_per_pdu] if 11 % max_per_pdu else [])]
    assert [len(tx.tlvs) for tx in lab.vdp_new("station")] == expect
    assert [len(tx.tlvs) for tx in lab.vdp_new("bridge")] == expect


def test_packing_separates_managers() -> None:
    """VSIs of different managers go into separate ECPDUs, each with its own Manager ID TLV, taking
    turns (round robin)."""
    mgr_b = b"othermgr".ljust(16, b"\0")
    lab = Lab()
    vs = [vsi(uuid_n(i), manager=mgr_b if i % 2 else LABMGR) for i in range(7)]
    associate_all(lab, vs)
    lab.run_for(0.1)
    st = lab.vdp_new("station")
    assert [(tx.vdp.manager_id, len(tx.tlvs)) for tx in st] == [(LABMGR, 1), (mgr_b, 3), (LABMGR, 3)]
    for tx in st + lab.vdp_new("bridge"):
        assert sum(isinstance(t, VsiManagerIdTlv) for t in tx.vdp.tlvs) == 1
        assert all((tx.vdp.manager_id, 5, t.vsiid) in lab.st.vdp.vsis for t in tx.tlvs)
    assert len(lab.of(VsiAssociated)) == 7


# ============================================================================================== pacing


@pytest.mark.parametrize("min_gap", [0.003, 0.010])
def test_pacing_between_new_ecpdus(min_gap: float) -> None:
    """A port starts a new ECPDU at least ``min_gap`` (default 3 ms, ecp.md §4.2: lldpad's 2-ms
    VDP buffer) after the previous one, although the acknowledgement came after 0.2 ms."""
    cfg = {} if min_gap == 0.003 else {"min_gap": min_gap}
    lab = Lab(st_port=cfg, br_port=cfg)
    assert lab.st.config.min_gap == min_gap
    managers = [bytes((0x41 + i,)) * 16 for i in range(3)]
    for m in managers:
        lab.st.associate(vsi(manager=m), now=lab.now)
    lab.net.poke(lab.st)
    lab.run_for(0.1)
    st, br = lab.vdp_new("station"), lab.vdp_new("bridge")
    assert len(st) == len(br) == 3
    assert [b.t - a.t for a, b in itertools.pairwise(st)] == pytest.approx([min_gap, min_gap], abs=1e-12)
    assert all(b.t - a.t >= min_gap - 1e-12 for a, b in itertools.pairwise(br))


# ============================================================================================== limits


def test_per_port_vsi_limit_on_the_bridge() -> None:
    """PortConfig.max_vsis: a VSI beyond the limit is refused with code 2 (insufficient resources)
    in a De-Associate TLV (0x42); once one is released the next is admitted."""
    lab = Lab(br_port={"max_vsis": 2})
    a, b, c = vsi(U1), vsi(U2), vsi(U3)
    lab.settle(a)
    lab.settle(b)
    lab.associate(c)
    _, ev = lab.wait_for(VsiRejected)
    assert ev == VsiRejected(key=c.key, mode=VdpMode.ASSOC, code=2, keep=False, hard=False)
    assert modes(lab.vdp_new("bridge")[-1:]) == [(4, 0x42)]
    assert lab.of(VsiRejected, "bridge")[0].reason == "port VSI limit"
    assert set(lab.br.vdp.vsis) == {a.key, b.key}
    lab.deassociate(a)
    lab.wait_for(VsiDeassociated)
    lab.settle(c)
    assert set(lab.br.vdp.vsis) == {b.key, c.key}


# ============================================================================================== duplicates


def test_duplicate_ecpdu_is_acknowledged_and_handled_once() -> None:
    """A copy of the station's ECPDU (same sequence number, same content) is acknowledged again but
    its VDP content is handled once (ecp.md §4)."""
    lab = Lab()
    v = vsi()
    lab.settle(v)
    [req] = lab.vdp_new("station")
    acks_before = lab.br.counters.ecp_acks_sent
    lab.br.receive_frame(req.data, lab.now)
    lab.net.poke(lab.br)
    lab.run_for(0.01)
    assert lab.br.counters.ecp_acks_sent == acks_before + 1
    assert lab.br.ecp_rx.duplicates == 1 and lab.br.vdp.counters.requests == 1
    assert len(lab.vdp_new("bridge")) == 1


def test_repeated_request_in_a_new_ecpdu_is_a_refresh() -> None:
    """The same request again with a new sequence number is a refresh: the stored answer again, no
    policy call, no new event."""
    policy = FirstThen(Decision.accept(), Decision.reject(4))
    lab = Lab(policy=policy)
    v = vsi()
    lab.settle(v)
    [req] = lab.vdp_new("station")
    inject(lab, req.tlvs[0])
    lab.run_for(0.01)
    first, again = lab.vdp_new("bridge")
    assert again.vdp == first.vdp
    assert len(policy.calls) == 1 and lab.br.vdp.counters.refreshes == 1
    assert len(lab.of(VsiAssociated, "bridge")) == 1


def test_out_of_order_requests_on_the_bridge() -> None:
    """Requests handled in arrival order whatever their sequence numbers: an older Pre-Associate
    arriving after the Associate moves the VSI back to Pre-Associate (the bridge accepts any
    request type in any state, vdp.md §11); a De-Associate arriving before its Associate is
    answered 0x40 and creates nothing, the Associate then creates the VSI."""
    lab = Lab()
    key = (LABMGR, VsiidFormat.UUID, U2)
    v = vsi(U2)
    tlv = _request_tlv(v)
    inject(lab, tlv, seq=0x5002)
    inject(lab, VsiTlv(**{**_fields(tlv), "mode": VdpMode.PREASSOC}), seq=0x5001)
    lab.run_for(0.02)
    assert lab.br.vdp.vsis[key].mode is VdpMode.PREASSOC
    assert [ev.mode for ev in lab.of(VsiAssociated, "bridge")] == [VdpMode.ASSOC, VdpMode.PREASSOC]

    w = vsi(U3)
    wt = _request_tlv(w)
    inject(lab, VsiTlv(**{**_fields(wt), "mode": VdpMode.DEASSOC}), seq=0x5011)
    assert w.key not in lab.br.vdp.vsis
    inject(lab, wt, seq=0x5010)
    lab.run_for(0.02)
    assert lab.br.vdp.vsis[w.key].mode is VdpMode.ASSOC
    answers = [t for tx in lab.vdp_new("bridge") for t in tx.tlvs if t.vsiid == U3]
    assert [(t.mode, t.status.octet) for t in answers] == [(VdpMode.DEASSOC, 0x40), (VdpMode.ASSOC, 0x40)]
    # the answers reach our station, which holds neither VSI: counted, ignored
    assert lab.st.vdp.counters.unknown_answers == 4 and station_keys(lab) == set()


# ============================================================================================== release


def test_bridge_releases_on_station_deassociate_without_lingering() -> None:
    """A station De-Associate releases the VSI on the bridge at once; unlike lldpad
    (vdp-deassoc-bridge-linger.pcap) no unsolicited De-Associate follows toutKeepAlive later."""
    lab = Lab()
    v = vsi()
    lab.settle(v)
    lab.deassociate(v)
    t_de, _ = lab.wait_for(VsiDeassociated, "bridge")
    assert lab.br.vdp.vsis == {}
    lab.run_for(2 * sec(TOUT_KEEPALIVE_US))
    assert lab.vdp_new("bridge", since=t_de + 0.001) == []
    assert lab.br.vdp.counters.keepalive_timeouts == 0
    assert lab.br.next_deadline() == lab.br.agent.next_deadline()  # no VDP timer left


# ============================================================================================== link and peer


def test_link_down_up() -> None:
    """Link down: both sides lose EVB; the bridge releases its VSIs, the station suspends them (and
    what is asked meanwhile) and sends nothing; once EVB is back it sends every VSI's current request
    again (packed), and a De-Associate given while down."""
    lab = Lab()
    a, b, c, d = vsi(U1), vsi(U2), vsi(U3), vsi(uuid_n(4))
    lab.settle(a)
    lab.settle(b, VdpMode.PREASSOC)
    lab.settle(d)
    t_down = lab.now
    for port in (lab.st, lab.br):
        port.set_link(False, t_down)
        lab.net.poke(port)
    assert lab.of(EvbLost, "station", since=t_down) and lab.of(EvbLost, "bridge", since=t_down)
    assert lab.br.vdp.vsis == {}
    assert {ev.key: ev.reason for ev in lab.of(VsiDeassociated, "bridge")} == {
        a.key: "peer-lost",
        b.key: "peer-lost",
        d.key: "peer-lost",
    }
    assert {r.state for r in lab.st.vdp.vsis.values()} == {StState.SUSPENDED}
    lab.associate(c)
    lab.deassociate(d)
    lab.run_for(30.0)  # longer than respWaitDelay and toutKeepAlive: nothing times out, nothing is sent
    assert lab.vdp_tx("station", since=t_down) == [] and lab.vdp_tx("bridge", since=t_down) == []
    assert lab.of(VsiDeassociated, "station", since=t_down) == []
    t_up = lab.now
    for port in (lab.st, lab.br):
        port.set_link(True, t_up)
        lab.net.poke(port)
    lab.wait_for(VsiDeassociated, key=d.key, reason="deassociated")
    lab.run_for(0.1)
    sent = lab.vdp_new("station", since=t_up)
    assert sorted((t.vsiid, t.mode) for tx in sent for t in tx.tlvs) == sorted(
        [(U1, VdpMode.ASSOC), (U2, VdpMode.PREASSOC), (U3, VdpMode.ASSOC), (d.vsiid, VdpMode.DEASSOC)]
    )
    assert {k: r.mode for k, r in lab.br.vdp.vsis.items()} == {
        a.key: VdpMode.ASSOC,
        b.key: VdpMode.PREASSOC,
        c.key: VdpMode.ASSOC,
    }
    assert {k: (r.state, r.confirmed) for k, r in lab.st.vdp.vsis.items()} == {
        a.key: (StState.ESTABLISHED, VdpMode.ASSOC),
        b.key: (StState.ESTABLISHED, VdpMode.PREASSOC),
        c.key: (StState.ESTABLISHED, VdpMode.ASSOC),
    }
    assert lab.of(EvbNegotiated, "station", since=t_up)


def test_station_leaves_bridge_releases() -> None:
    """The station shuts down (LLDP TTL 0): the bridge loses EVB and releases every VSI at once."""
    lab = Lab()
    a, b = vsi(U1), vsi(U2)
    lab.settle(a)
    lab.settle(b)
    t = lab.now
    lab.st.shutdown(t)
    lab.net.poke(lab.st)
    lab.run_for(0.01)
    assert lab.of(EvbLost, "bridge", since=t) and not lab.br.negotiated
    assert lab.br.vdp.vsis == {}
    assert sorted(ev.key for ev in lab.of(VsiDeassociated, "bridge")) == sorted([a.key, b.key])
    assert {ev.reason for ev in lab.of(VsiDeassociated, "bridge")} == {"peer-lost"}


def test_bridge_leaves_station_suspends() -> None:
    """The bridge shuts down (LLDP TTL 0): the station loses EVB, suspends its VSIs and sends nothing
    (no keep-alive, no timeout) while the bridge is away."""
    lab = Lab()
    v = vsi()
    lab.settle(v)
    t = lab.now
    lab.br.shutdown(t)
    lab.net.poke(lab.br)
    lab.run_for(60.0)
    assert lab.of(EvbLost, "station", since=t) and not lab.st.negotiated
    assert lab.st.vdp.vsis[v.key].state is StState.SUSPENDED
    assert lab.vdp_tx("station", since=t) == [] and lab.of(VsiDeassociated) == []


def test_peer_ages_out_and_comes_back() -> None:
    """Every frame lost both ways for longer than the LLDP TTL (120 s; RKA = 24 so that no VDP timer
    runs out first): both neighbors age out; the bridge releases, the station suspends. When frames
    flow again EVB is renegotiated and the station re-sends the VSI's request."""
    evb = {"rka": 24}
    lab = Lab(st_evb=evb, br_evb=evb)
    v = vsi()
    lab.settle(v)
    t_cut = lab.now
    lab.drop = lambda tx: True
    lab.wait_for(EvbLost, "station", limit=200)
    lab.run_for(1.0)
    assert lab.of(EvbLost, "bridge", since=t_cut)
    assert lab.st.vdp.vsis[v.key].state is StState.SUSPENDED and lab.br.vdp.vsis == {}
    assert lab.of(VsiDeassociated, "bridge") == [VsiDeassociated(key=v.key, reason="peer-lost")]
    t_heal = lab.now
    lab.drop = None
    ignored = lab.br.counters.ignored
    t_again, _ = lab.wait_for(VsiAssociated, "bridge", limit=60)
    lab.wait_for(VsiAssociated, key=v.key)
    [resent] = lab.vdp_new("station", since=t_heal)
    # The station starts VDP as soon as the bridge's TLV arrives, in the same instant as its own
    # LLDPDU but ahead of it: the bridge, not yet negotiated, ignores that first copy (ECP runs only
    # while EVB is negotiated) and answers the ECP retransmission one ack timeout (2.56 ms) later.
    copies = [tx for tx in lab.vdp_tx("station", since=t_heal) if tx.ecp.seq == resent.ecp.seq]  # type: ignore[union-attr]
    assert [round((tx.t - resent.t) * 1e6) for tx in copies] == [0, 2560]
    assert t_again == lab.arrival(copies[1]) and lab.br.counters.ignored == ignored + 1
    assert modes([resent]) == [(3, 0x00)]
    assert lab.st.vdp.vsis[v.key].state is StState.ESTABLISHED
