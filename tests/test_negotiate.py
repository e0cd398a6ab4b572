"""EVB TLV "negotiation" and EVB up/down (lldp-evb-cdcp.md §2.3-2.5, lldpad-behaviour.md §4.1, §5, §7.1).

* (a) every EVB TLV of every reference capture is what ``local_tlv`` computes from the sender's
  configuration and the last TLV it had received;
* (b) lldpad's own evb22 test vectors (lldp-evb-cdcp.md §2.5);
* (c) the evb22 catalogue rows 1-14, 20-24, 30-33 as station port ↔ bridge port runs;
* (d) operating timers in seconds, with lldpad's integer microsecond arithmetic;
* (e) ``EvbLost`` when the peer shuts down, ages out, drops the EVB TLV or the link goes down,
  and ``EvbNegotiated`` again afterwards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

import pytest

from evb.ethernet import NEAREST_CUSTOMER_BRIDGE
from evb.frame import build_frame, decode_frame
from evb.lldp.agent import LldpTimers
from evb.lldp.events import EvbLost, EvbNegotiated, NeighborAdded, NeighborAged, NeighborRemoved
from evb.lldp.negotiate import EvbConfig, Operating, Role, converged, local_tlv
from evb.lldp.wire import ChassisId, ChassisIdSubtype, EvbTlv, Lldpdu, PortId, PortIdSubtype, decode_evb_tlv
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.sim import Network
from tests.helpers import BRIDGE_MAC, STATION_MAC, capture_names, read_capture

E = TypeVar("E")
EVB_TLV_HEAD = bytes.fromhex("fe090080c20d")  #: type 127, length 9, OUI 00-80-C2, subtype 0x0D

# --------------------------------------------------------------------------- configurations


def station(
    *, rrreq: bool = True, gid: bool = False, r: int = 3, rte: int = 8, rwd: int = 20, rka: int = 20
) -> EvbConfig:
    return EvbConfig(role=Role.STATION, rrreq=rrreq, gid=gid, r=r, rte=rte, rwd=rwd, rka=rka)


def bridge(
    *, rrcap: bool = True, gid: bool = False, r: int = 3, rte: int = 8, rwd: int = 20, rka: int = 20
) -> EvbConfig:
    return EvbConfig(role=Role.BRIDGE, rrcap=rrcap, gid=gid, r=r, rte=rte, rwd=rwd, rka=rka)


def settled_pair(st: EvbConfig, br: EvbConfig) -> tuple[EvbTlv, EvbTlv]:
    """The (station, bridge) TLVs two sides end up sending: iterate ``local_tlv`` to its fixed point."""
    s: EvbTlv | None = None
    b: EvbTlv | None = None
    for _ in range(4):
        b2 = local_tlv(br, s)
        s2 = local_tlv(st, b2)
        if (s2, b2) == (s, b):
            return s2, b2
        s, b = s2, b2
    raise AssertionError("no fixed point within 3 exchanges")


# --------------------------------------------------------------------------- (a) captures


@dataclass(frozen=True, slots=True)
class Replay:
    """One capture's set-up, from tests/data/pcap/README.md."""

    station: EvbConfig
    bridge: EvbConfig
    evb_frames: int  #: EVB-carrying LLDPDUs in the file (a check that the replay checks something)
    #: captured from lldpad start-up: nobody had received anything yet, and a side only receives
    #: the peer's frames from its own first frame on (evb_rr/evb_timers: "bridge running, capture
    #: started, station started": bridge frame 1 was sent before the station lldpad existed)
    from_scratch: bool = False
    #: otherwise each side holds the peer's converged TLV when the capture starts, except that the
    #: station lldpad may be stopped (errors file: "the bridge's EVB TLV shows no station")
    station_running: bool = True


REPLAYS: dict[str, Replay] = {
    "evb-rr-granted.pcap": Replay(station(), bridge(), 11, from_scratch=True),
    "evb-timers.pcap": Replay(
        station(r=2, rte=10, rwd=18, rka=21), bridge(r=5, rte=14, rwd=22, rka=24), 11, from_scratch=True
    ),
    "vdp-assoc-3vsi.pcap": Replay(station(), bridge(), 8),
    "vdp-assoc-deassoc.pcap": Replay(station(), bridge(), 4),
    "vdp-bridge-deassoc-kato.pcap": Replay(station(), bridge(), 8),
    "vdp-bridge-errors-injected.pcap": Replay(station(), bridge(), 2, station_running=False),
    "vdp-deassoc-bridge-linger.pcap": Replay(station(rka=17), bridge(rka=17), 8),
    "vdp-deassoc-unknown.pcap": Replay(station(rka=24), bridge(rka=24), 7),
    "vdp-filter-fmt1-vid.pcap": Replay(station(), bridge(), 6),
    "vdp-filter-fmt2-multi.pcap": Replay(station(), bridge(), 4),
    "vdp-filter-fmt3-fmt4-group.pcap": Replay(station(gid=True), bridge(gid=True), 6),
    "vdp-keepalive-60s.pcap": Replay(station(), bridge(), 11),
    "vdp-preassoc-rr.pcap": Replay(station(), bridge(), 4),
    "vdp-preassoc.pcap": Replay(station(), bridge(), 6),
}


def test_every_capture_has_a_replay_set_up() -> None:
    assert sorted(REPLAYS) == capture_names()


@pytest.mark.parametrize("name", capture_names())
def test_capture_tlvs_are_local_tlv_of_last_received(name: str) -> None:
    setup = REPLAYS[name]
    config = {STATION_MAC: setup.station, BRIDGE_MAC: setup.bridge}
    peer_of = {STATION_MAC: BRIDGE_MAC, BRIDGE_MAC: STATION_MAC}
    st_final, br_final = settled_pair(setup.station, setup.bridge)
    held: dict[bytes, EvbTlv | None]  # the last TLV each side (by MAC) has received
    running: set[bytes]  # the sides whose lldpad runs, and so receives
    if setup.from_scratch:
        held, running = {STATION_MAC: None, BRIDGE_MAC: None}, set()
    elif setup.station_running:
        held, running = {STATION_MAC: br_final, BRIDGE_MAC: st_final}, {STATION_MAC, BRIDGE_MAC}
    else:
        held, running = {STATION_MAC: None, BRIDGE_MAC: None}, {BRIDGE_MAC}
    checked = 0
    for frame in read_capture(name):
        decoded = decode_frame(frame.data)
        pdu = decoded.pdu
        if not isinstance(pdu, Lldpdu) or pdu.evb is None:
            continue
        assert decoded.dst == NEAREST_CUSTOMER_BRIDGE, f"frame {frame.number}: EVB TLV on another agent"
        sender = decoded.src
        running.add(sender)
        expected = local_tlv(config[sender], held[sender])
        at = frame.data.index(EVB_TLV_HEAD)
        assert expected.encode() == frame.data[at : at + 11], f"frame {frame.number}"
        assert expected == pdu.evb, f"frame {frame.number}"
        if peer_of[sender] in running:
            held[peer_of[sender]] = pdu.evb
        checked += 1
    assert checked == setup.evb_frames
    # every file ends converged on the fixed point of both configurations (errors file: no station)
    if setup.station_running:
        assert (held[STATION_MAC], held[BRIDGE_MAC]) == (br_final, st_final)
    else:
        assert held[BRIDGE_MAC] is None


def test_capture_convergence_from_scratch_is_the_readme_table() -> None:
    """lldp-evb-cdcp.md §2.5 "Convergence from scratch" and "Different timers", octet for octet."""
    for name, infos in {
        "evb-rr-granted.pcap": ["0200685414", "0007689414", "0307687434", "030568b434", "0305687434"],
        "evb-timers.pcap": ["0200ae5618", "00074a9215", "0307ae5618", "0305aeb638", "0305ae7638"],
    }.items():
        evb = [decode_frame(read_capture(name)[n - 1].data).pdu for n in (1, 3, 5, 7, 9)]
        assert [p.evb.info.hex() for p in evb if isinstance(p, Lldpdu) and p.evb] == infos
        setup = REPLAYS[name]
        assert [t.info.hex() for t in settled_pair(setup.station, setup.bridge)] == [infos[3], infos[4]]


# --------------------------------------------------------------------------- (b) lldpad's vectors

#: lldpad as station (test/qbg22/evb22 station tests): R=3, RTE=8, RWD=8, RKA=8.
LLDPAD_STATION_VECTORS = [
    (1, station(rrreq=False, r=3, rte=8, rwd=8, rka=8), [("0000004000", "0000688808")]),
    (4, station(rrreq=True, r=3, rte=8, rwd=8, rka=8), [("0200004000", "0204688808"), ("0304000000", "0305688808")]),
    (7, station(r=3, rte=8, rwd=8, rka=8), [("00001f4000", "00047f8808")]),
    (9, station(r=3, rte=8, rwd=8, rka=8), [("000000041f", "000468883f")]),
    (11, station(r=3, rte=8, rwd=8, rka=8), [("0000005f00", "000468bf08")]),
    (13, station(r=3, rte=8, rwd=8, rka=8), [("0000e04000", "0004e88808")]),
    (22, station(gid=True, r=3, rte=8, rwd=8, rka=8), [("0600004000", "060c688808")]),
]
#: lldpad as bridge (tests 30, 31, 33): R=5, RTE=6, RWD=24, RKA=24.
LLDPAD_BRIDGE_VECTORS = [
    (30, bridge(rrcap=False, r=5, rte=6, rwd=24, rka=24), [("0001008000", "0001a65818")]),
    (31, bridge(rrcap=True, r=5, rte=6, rwd=24, rka=24), [("0001008000", "0201a65818")]),
    (33, bridge(rrcap=True, gid=True, r=5, rte=6, rwd=24, rka=24), [("000d008000", "070da65818")]),
]


@pytest.mark.parametrize(
    ("test", "config", "steps"),
    LLDPAD_STATION_VECTORS + LLDPAD_BRIDGE_VECTORS,
    ids=[f"lldpad-evb22-{v[0]}" for v in LLDPAD_STATION_VECTORS + LLDPAD_BRIDGE_VECTORS],
)
def test_lldpad_evb22_vectors(test: int, config: EvbConfig, steps: list[tuple[str, str]]) -> None:
    for received, answered in steps:
        ours = local_tlv(config, decode_evb_tlv(bytes.fromhex(received)))
        assert ours.info.hex() == answered
        assert ours.encode() == EVB_TLV_HEAD + bytes.fromhex(answered)


def test_before_anything_is_received_own_values_rol_0() -> None:
    """lldp-evb-cdcp.md §2.4: peer values count as 0; station RRSTAT 3, bridge copies nothing."""
    assert local_tlv(station(r=3, rte=8, rwd=8, rka=8), None).info.hex() == "0007688808"
    assert local_tlv(bridge(r=5, rte=6, rwd=24, rka=24), None).info.hex() == "0200a65818"
    assert local_tlv(bridge(rrcap=False, gid=True), None).info.hex() == "0400685414"


def test_peer_mode_and_received_rol_bits_are_ignored() -> None:
    """lldpad never checks the peer's EVB mode and ignores the ROL bits it receives (§2.4 notes)."""
    own = station(r=3, rte=8, rwd=8, rka=8)
    as_bridge = decode_evb_tlv(bytes.fromhex("0300684808"))
    for variant in ("0300688808", "0300680808", "0300686828", "030068c808"):
        assert local_tlv(own, decode_evb_tlv(bytes.fromhex(variant))) == local_tlv(own, as_bridge)


# --------------------------------------------------------------------------- (c) port ↔ port runs


@dataclass(slots=True)
class Pair:
    """A station port and a bridge port on one link, and everything the wire and the events showed."""

    net: Network
    st: StationPort
    br: BridgePort
    delay: float
    wire: list[tuple[float, str, Lldpdu, bool]] = field(default_factory=list)  #: LLDPDUs sent, delivered?
    events: list[tuple[float, str, Event]] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)  #: sides whose frames the link loses

    def side(self, port: Port) -> str:
        return "st" if port is self.st else "br" if port is self.br else "old"

    def port(self, side: str) -> Port:
        return self.st if side == "st" else self.br

    def connect(self) -> None:
        """Join the current st and br (again); the tap sees every frame (none is sent before step())."""
        link = self.net.connect(self.st, self.br, delay=self.delay)

        def tap(port: Port, data: bytes) -> bool:
            pdu = decode_frame(data).pdu
            side = self.side(port)
            keep = side not in self.blocked
            if isinstance(pdu, Lldpdu):
                self.wire.append((self.net.now, side, pdu, keep))
                if pdu.ttl:  # a side sends local_tlv(its configuration, the last TLV it received)
                    assert pdu.evb == local_tlv(port.config.evb, port.peer_tlv)
            return keep

        link.drop = tap

    def tlvs(self, side: str, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, EvbTlv | None]]:
        return [(t, pdu.evb) for t, s, pdu, _ in self.wire if s == side and since <= t < until]

    def delivered(self, side: str) -> list[float]:
        """When the LLDPDUs of ``side`` that the link did not lose were sent."""
        return [t for t, s, _, kept in self.wire if s == side and kept]

    def of(self, side: str, kind: type[E], since: float = 0.0) -> list[tuple[float, E]]:
        return [(t, e) for t, s, e in self.events if s == side and t >= since and isinstance(e, kind)]

    def last_negotiated(self, side: str) -> EvbNegotiated:
        return self.of(side, EvbNegotiated)[-1][1]

    def run(self, until: float) -> None:
        self.net.run_until(until)


def make_pair(st_cfg: EvbConfig, br_cfg: EvbConfig, *, lldp: LldpTimers | None = None) -> Pair:
    timers = lldp or LldpTimers()
    net = Network(rng=random.Random(7))
    pair = Pair(
        net,
        StationPort(PortConfig(mac=STATION_MAC, evb=st_cfg, lldp=timers), now=0.0),
        BridgePort(PortConfig(mac=BRIDGE_MAC, evb=br_cfg, lldp=timers), now=0.0),
        delay=0.0001,
    )
    net.on_event = lambda port, ev: pair.events.append((net.now, pair.side(port), ev))
    pair.connect()
    return pair


def settles_within(
    pair: Pair, since: float, *, final: dict[str, str], lldpdus: int = 4, seconds: float = 0.001
) -> None:
    """From ``since`` on, each side's TLV reaches its final value within ``lldpdus`` LLDPDUs and
    ``seconds`` (by default as immediate answers, before any fast or regular transmission), and
    never changes again."""
    for side, info in final.items():
        sent = [(t, tlv.info.hex() if tlv else None) for t, tlv in pair.tlvs(side, since)]
        assert sent, side
        first = next((i for i in range(len(sent)) if all(y == info for _, y in sent[i:])), None)
        assert first is not None and first < lldpdus, (side, sent)
        assert sent[first][0] - since < seconds, (side, sent)


@dataclass(frozen=True, slots=True)
class Row:
    """One evb22 row (lldpad-behaviour.md §7.1): configurations, what each side ends up sending."""

    st: EvbConfig
    br: EvbConfig
    st_info: str  #: the station's final EVB TLV, 5 information octets
    br_info: str
    rr: bool  #: reflective relay on, both sides
    group_ids: bool  #: group IDs usable, both sides
    values: tuple[int, int, int, int] = (3, 8, 8, 8)  #: operating R, RTE, RWD, RKA on both sides
    change: tuple[str, EvbConfig] | None = None  #: (side, new configuration) applied at t = 10 s


# lldpad's evb22 station tests run lldpad with R=3, RTE=8, RWD=8, RKA=8 (S); the simulated bridge's
# status octet is 0 in tests 7-14 (no RR); its timers are taken equal to the station's except the
# one the row varies ("bridge higher": 31 or R 7; "lldpad higher": 4 or R 1). In a converged pair
# both TLVs carry the maxima, so both ROL bits are 1 (lldpad's tie rule, lldp-evb-cdcp.md §2.4).
LS = {"r": 3, "rte": 8, "rwd": 8, "rka": 8}
#: lldpad as bridge (tests 30-33): R=5, RTE=6, RWD=24, RKA=24. The simulated station sends all
#: zeros, and in 30-32 station status 01 (RRSTAT 1 without RRREQ, which our station never sends):
#: here a station with all exponents 0 that does not request RR; in 33 it requests RR and sets SGID.
LB = {"r": 5, "rte": 6, "rwd": 24, "rka": 24}
ZERO = {"r": 0, "rte": 0, "rwd": 0, "rka": 0}


def S(**changes: object) -> EvbConfig:
    return station(**(LS | changes))  # type: ignore[arg-type]


def B(**changes: object) -> EvbConfig:
    return bridge(**(LS | changes))  # type: ignore[arg-type]


ROWS: dict[int, Row] = {
    1: Row(S(rrreq=False), B(rrcap=False), "000068a828", "0000686828", False, False),
    2: Row(S(rrreq=False), B(rrcap=True), "020068a828", "0200686828", False, False),
    3: Row(S(rrreq=True), B(rrcap=False), "000468a828", "0004686828", False, False),
    4: Row(S(), B(), "030568a828", "0305686828", True, False),
    5: Row(S(), B(), "000468a828", "0004686828", False, False, change=("br", B(rrcap=False))),
    6: Row(S(), B(), "020068a828", "0200686828", False, False, change=("st", S(rrreq=False))),
    7: Row(S(), B(rrcap=False, rte=31), "00047fa828", "00047f6828", False, False, values=(3, 31, 8, 8)),
    8: Row(S(), B(rrcap=False, rte=4), "000468a828", "0004686828", False, False),
    9: Row(S(), B(rrcap=False, rka=31), "000468a83f", "000468683f", False, False, values=(3, 8, 8, 31)),
    10: Row(S(), B(rrcap=False, rka=4), "000468a828", "0004686828", False, False),
    11: Row(S(), B(rrcap=False, rwd=31), "000468bf28", "0004687f28", False, False, values=(3, 8, 31, 8)),
    12: Row(S(), B(rrcap=False, rwd=4), "000468a828", "0004686828", False, False),
    13: Row(S(), B(rrcap=False, r=7), "0004e8a828", "0004e86828", False, False, values=(7, 8, 8, 8)),
    14: Row(S(), B(rrcap=False, r=1), "000468a828", "0004686828", False, False),
    20: Row(S(), B(gid=True), "070568a828", "0705686828", True, False),
    21: Row(S(gid=True), B(), "030d68a828", "030d686828", True, False),
    22: Row(S(gid=True), B(gid=True), "070d68a828", "070d686828", True, True),
    23: Row(S(gid=True), B(gid=True), "030d68a828", "030d686828", True, False, change=("br", B(gid=False))),
    24: Row(S(gid=True), B(gid=True), "070568a828", "0705686828", True, False, change=("st", S(gid=False))),
    30: Row(S(rrreq=False, **ZERO), B(rrcap=False, **LB), "0000a6b838", "0000a67838", False, False, (5, 6, 24, 24)),
    31: Row(S(rrreq=False, **ZERO), B(rrcap=True, **LB), "0200a6b838", "0200a67838", False, False, (5, 6, 24, 24)),
    32: Row(S(rrreq=False, **ZERO), B(gid=True, **LB), "0600a6b838", "0600a67838", False, False, (5, 6, 24, 24)),
    33: Row(S(gid=True, **ZERO), B(gid=True, **LB), "070da6b838", "070da67838", True, True, (5, 6, 24, 24)),
}


@pytest.mark.parametrize("number", sorted(ROWS), ids=[f"evb22-{n}" for n in sorted(ROWS)])
def test_evb22_catalogue_row(number: int) -> None:
    row = ROWS[number]
    pair = make_pair(row.st, row.br)
    if row.change is None:
        pair.run(10.0)
        since = 0.0
    else:
        pair.run(10.0)
        # before the change: the pair had converged as in the row it derives from (4 or 22)
        base = ROWS[4 if number in (5, 6) else 22]
        assert (pair.st.local_tlv.info.hex(), pair.br.local_tlv.info.hex()) == (base.st_info, base.br_info)
        side, config = row.change
        pair.port(side).configure_evb(config, now=10.0)
        pair.net.poke(pair.port(side))
        since = 10.0
    pair.run(since + 10.0)

    settles_within(pair, since, final={"st": row.st_info, "br": row.br_info})
    assert pair.st.local_tlv.info.hex() == row.st_info
    assert pair.br.local_tlv.info.hex() == row.br_info
    assert pair.st.peer_tlv == pair.br.local_tlv and pair.br.peer_tlv == pair.st.local_tlv
    assert converged(pair.st.local_tlv, pair.br.local_tlv)
    for side in ("st", "br"):
        ev = pair.last_negotiated(side)
        assert (ev.r, ev.rte, ev.rwd, ev.rka) == row.values, side
        assert (ev.rr, ev.group_ids) == (row.rr, row.group_ids), side
        # (the event is sent when the operating values change, not for later ROL-only changes)
        assert Operating.from_tlv(ev.local) == pair.port(side).operating
        assert pair.port(side).negotiated
        op = pair.port(side).operating
        assert (op.r, op.rte, op.rwd, op.rka, op.rr, op.group_ids) == (*row.values, row.rr, row.group_ids)
        # the last EvbNegotiated came with the convergence, within a millisecond of the start/change
        assert pair.of(side, EvbNegotiated)[-1][0] - since < 0.001
        assert not pair.of(side, EvbLost)
    # ECP and VDP use the operating values (lldp-evb-cdcp.md §2.4: what a side sends is what it uses)
    assert pair.st.ecp_tx.max_retries == pair.br.ecp_tx.max_retries == row.values[0]
    assert pair.st.ecp_tx.ack_timeout == pair.br.ecp_tx.ack_timeout == pair.st.operating.ack_timeout
    if row.change is not None:  # each side reports the change once more
        for side in ("st", "br"):
            assert [e.rr for _, e in pair.of(side, EvbNegotiated, since)] == [row.rr]
            assert [e.group_ids for _, e in pair.of(side, EvbNegotiated, since)] == [row.group_ids]


def test_configure_evb_refuses_the_other_role() -> None:
    from evb.errors import LocalProtocolError

    pair = make_pair(station(), bridge())
    with pytest.raises(LocalProtocolError):
        pair.st.configure_evb(bridge(), now=0.0)


def test_captured_configurations_converge_over_the_network_to_the_captured_pair() -> None:
    """Our ports, configured as the lldpad pairs of the captures, end up sending lldpad's TLVs."""
    for name in ("evb-timers.pcap", "vdp-filter-fmt3-fmt4-group.pcap", "vdp-deassoc-bridge-linger.pcap"):
        setup = REPLAYS[name]
        pair = make_pair(setup.station, setup.bridge)
        pair.run(5.0)
        last: dict[bytes, EvbTlv] = {}
        for f in read_capture(name):
            frame = decode_frame(f.data)
            if isinstance(frame.pdu, Lldpdu) and frame.pdu.evb is not None:
                last[frame.src] = frame.pdu.evb
        assert (pair.st.local_tlv, pair.br.local_tlv) == (last[STATION_MAC], last[BRIDGE_MAC]), name
        settles_within(pair, 0.0, final={"st": last[STATION_MAC].info.hex(), "br": last[BRIDGE_MAC].info.hex()})


# --------------------------------------------------------------------------- (d) operating timers
#
# lldpad's arithmetic (vdp.md §8, ecp.md §2), in integer microseconds:
#   ack_timeout         = 10·2^RTE
#   resp_wait_delay     = t + t/2 with t = (2R+1)·10·2^RTE + 10·2^RWD     (= 1.5 × t exactly: t is even)
#   keepalive_timeout   = t + t/2 with t = (2R+1)·10·2^RTE + 10·2^RKA
#   reinit_keepalive    = 10·2^RKA,  resource_wait_delay = 10·2^RWD
# then seconds = µs / 10^6. lldpad computes in a signed 32-bit int and overflows from RTE 24/25
# (vdp.md §8: keep RTE ≤ 23 toward lldpad); we compute exactly for every exponent 0..31.


def lldpad_us(r: int, rte: int, x: int) -> int:
    t = (2 * r + 1) * ((1 << rte) * 10) + (1 << x) * 10
    return t + t // 2


def test_timers_with_the_default_values() -> None:
    op = Operating(r=3, rte=8, rwd=20, rka=20, rr=True, group_ids=False)
    assert op.ack_timeout == 0.00256  # 2 560 µs
    assert op.resp_wait_delay == 15.75552  # 1.5 × (7 × 2 560 + 10 485 760) µs
    assert op.keepalive_timeout == 15.75552
    assert op.reinit_keepalive == 10.48576
    assert op.resource_wait_delay == 10.48576
    assert 4 * op.ack_timeout == pytest.approx(0.01024, abs=1e-15)  # ECP gives up after 4 tries (§5)


def test_timers_rte_14_and_rka_17() -> None:
    rte14 = Operating(r=3, rte=14, rwd=20, rka=20, rr=True, group_ids=False)
    assert rte14.ack_timeout == 0.16384
    assert rte14.resp_wait_delay == 17.44896  # 1.5 × (7 × 163 840 + 10 485 760) µs
    assert rte14.keepalive_timeout == 17.44896
    rka17 = Operating(r=3, rte=8, rwd=20, rka=17, rr=True, group_ids=False)
    assert rka17.keepalive_timeout == 1.99296  # 1.5 × (7 × 2 560 + 1 310 720) µs, linger capture
    assert rka17.reinit_keepalive == 1.31072


def test_timer_formulas_for_every_exponent() -> None:
    """Exhaustive over R 0..7 and both exponents 0..31 (8 × 32 × 32 combinations)."""
    for r in range(8):
        for rte in range(32):
            ack_us = (1 << rte) * 10
            for x in range(32):
                op = Operating(r=r, rte=rte, rwd=x, rka=x, rr=False, group_ids=False)
                us = lldpad_us(r, rte, x)
                exact = Fraction(3, 2) * ((2 * r + 1) * ack_us + (1 << x) * 10)
                assert exact == us  # integer halving loses nothing
                assert op.resp_wait_delay == op.keepalive_timeout == us / 1e6 == float(exact / 10**6)
                assert op.reinit_keepalive == op.resource_wait_delay == (1 << x) * 10 / 1e6
            assert op.ack_timeout == ack_us / 1e6


def test_operating_from_tlv_and_ports_use_it() -> None:
    """evb-timers.pcap: R 5, RTE 14, RWD 22, RKA 24 on both sides once converged."""
    setup = REPLAYS["evb-timers.pcap"]
    pair = make_pair(setup.station, setup.bridge)
    pair.run(5.0)
    for port in (pair.st, pair.br):
        assert port.operating == Operating.from_tlv(port.local_tlv)
        assert port.operating.ack_timeout == port.ecp_tx.ack_timeout == 0.16384
        assert port.ecp_tx.max_retries == 5
    assert pair.st.vdp.timers.resp_wait_delay == 65.61792  # 1.5 × (11 × 163 840 + 41 943 040) µs
    assert pair.st.vdp.timers.reinit_keepalive == 167.77216
    assert pair.br.vdp.timers.keepalive_timeout == 254.3616  # 1.5 × (11 × 163 840 + 167 772 160) µs
    assert pair.br.vdp.timers.resource_wait_delay == 41.94304


# --------------------------------------------------------------------------- (e) EvbLost

#: short LLDP timers so that ageing happens within seconds: TTL = 2 s × 2 = 4 s. (The fast
#: interval stays 1 s: faster than the 1-per-second transmit credit would starve the answers.)
QUICK = LldpTimers(tx_interval=2.0, tx_hold=2)
OTHER = {"st": "br", "br": "st"}
CONVERGED = {"st": "030568b434", "br": "0305687434"}  #: lldpad defaults, RR granted (§2.5)


def converged_pair() -> Pair:
    pair = make_pair(station(), bridge(), lldp=QUICK)
    pair.run(1.0)
    assert pair.st.negotiated and pair.br.negotiated
    assert (pair.st.local_tlv.info.hex(), pair.br.local_tlv.info.hex()) == (CONVERGED["st"], CONVERGED["br"])
    return pair


def assert_lost_at(pair: Pair, side: str, at: float, reason: str) -> None:
    assert [(t, e.reason) for t, e in pair.of(side, EvbLost) if isinstance(e, EvbLost)] == [(at, reason)]
    port = pair.port(side)
    assert not port.negotiated and port.peer_tlv is None
    # as lldpad (evb22_mibdelete) it falls back to its own values: station RRSTAT 3, bridge copies 0
    assert port.local_tlv == local_tlv(port.config.evb, None)
    assert port.ecp_tx.deadline is None and port.ecp_rx.last_seq is None


def assert_negotiated_again(pair: Pair, since: float, sides: tuple[str, ...] = ("st", "br")) -> None:
    """EvbNegotiated again after ``since`` on the ``sides`` that had lost EVB, back to the converged
    TLVs on both, nothing lost since."""
    for side in ("st", "br"):
        assert pair.port(side).negotiated, side
        assert not pair.of(side, EvbLost, since), side
        last = pair.last_negotiated(side)
        assert (last.r, last.rte, last.rwd, last.rka, last.rr, last.group_ids) == (3, 8, 20, 20, True, False)
    for side in sides:
        assert pair.of(side, EvbNegotiated, since), side
    assert (pair.st.local_tlv.info.hex(), pair.br.local_tlv.info.hex()) == (CONVERGED["st"], CONVERGED["br"])
    # a few LLDP exchanges: at most 4 LLDPDUs a side, within 3 s. Not at once here: the transmit
    # credit (one per second, txCreditMax 5) spent on the start-up burst and the fast transmissions
    # after the loss can hold an answer until the next credit.
    settles_within(pair, since, final=CONVERGED, seconds=3.0)


@pytest.mark.parametrize("leaver", ["br", "st"])
def test_peer_shutdown_then_restart(leaver: str) -> None:
    pair = converged_pair()
    stayer = OTHER[leaver]
    pair.port(leaver).shutdown(1.0)
    pair.net.poke(pair.port(leaver))
    pair.run(3.0)
    sent = [(t, pdu.ttl, pdu.tlvs) for t, s, pdu, _ in pair.wire if s == leaver and t >= 1.0]
    assert sent == [(1.0, 0, ())]  # TTL 0 once, no EVB TLV, then silence
    assert [t for t, _ in pair.of(stayer, NeighborRemoved)] == [1.0 + pair.delay]
    assert_lost_at(pair, stayer, 1.0 + pair.delay, "peer aged out or shut down")
    assert pair.tlvs(stayer, 1.0)[0][1] == local_tlv(pair.port(stayer).config.evb, None)

    # the leaver restarts: a new instance with the same configuration (and MAC)
    if leaver == "br":
        pair.br = BridgePort(pair.br.config, now=3.0)
    else:
        pair.st = StationPort(pair.st.config, now=3.0)
    pair.connect()
    pair.run(8.0)
    assert [t for t, _ in pair.of(stayer, NeighborAdded, 3.0)] == [3.0 + pair.delay]
    assert_negotiated_again(pair, 3.0)


@pytest.mark.parametrize("silent", ["br", "st"])
def test_peer_ages_out_exactly_ttl_after_its_last_lldpdu(silent: str) -> None:
    pair = converged_pair()
    watcher = OTHER[silent]
    pair.blocked.add(silent)  # from t = 1 s its frames are lost (a frozen peer)
    pair.run(9.0)
    expires = pair.delivered(silent)[-1] + pair.delay + QUICK.ttl
    assert QUICK.ttl == 4 and expires < 9.0
    assert [t for t, _ in pair.of(watcher, NeighborAged)] == [expires]
    assert_lost_at(pair, watcher, expires, "peer aged out or shut down")
    assert pair.port(silent).negotiated  # it still hears the watcher
    pair.blocked.clear()
    pair.run(14.0)
    back = min(t for t in pair.delivered(silent) if t > 9.0)
    assert [t for t, _ in pair.of(watcher, NeighborAdded, 9.0)] == [back + pair.delay]
    assert_negotiated_again(pair, 9.0, sides=(watcher,))


def test_neighbor_is_kept_until_exactly_ttl() -> None:
    pair = converged_pair()
    pair.blocked.add("br")
    expires = pair.delivered("br")[-1] + pair.delay + QUICK.ttl
    pair.run(expires - 1e-6)
    assert pair.st.negotiated and not pair.of("st", EvbLost)
    pair.run(expires)
    assert not pair.st.negotiated and pair.of("st", EvbLost)[0][0] == expires


@pytest.mark.parametrize("quitter", ["br", "st"])
def test_peer_stops_sending_the_evb_tlv(quitter: str) -> None:
    """lldpad evb22 tests 25/26 (enableTx=no): the peer's LLDPDUs go on, without the EVB TLV."""
    pair = converged_pair()
    watcher = OTHER[quitter]
    mac = pair.port(quitter).mac
    pair.blocked.add(quitter)  # its real frames are replaced by the hand-made one below
    pair.run(1.5)
    no_evb = Lldpdu(
        chassis_id=ChassisId(ChassisIdSubtype.MAC_ADDRESS, mac),
        port_id=PortId(PortIdSubtype.MAC_ADDRESS, mac),
        ttl=QUICK.ttl,
    )
    pair.port(watcher).receive_frame(build_frame(NEAREST_CUSTOMER_BRIDGE, mac, no_evb), 1.5)
    pair.net.poke(pair.port(watcher))
    assert_lost_at(pair, watcher, 1.5, "peer stopped sending the EVB TLV")
    assert pair.port(watcher).agent.neighbors  # the LLDP neighbor itself is still there
    pair.run(3.0)
    assert not pair.of(watcher, EvbNegotiated, 1.5)
    pair.blocked.clear()  # EVB TLV transmission back on
    pair.run(8.0)
    assert_negotiated_again(pair, 3.0, sides=(watcher,))


def test_link_down_on_both_ends_then_up() -> None:
    pair = converged_pair()
    for port in (pair.st, pair.br):
        port.set_link(False, 1.0)
        pair.net.poke(port)
    for side in ("st", "br"):
        assert_lost_at(pair, side, 1.0, "link down")
    pair.run(5.0)
    assert not pair.tlvs("st", 1.0) and not pair.tlvs("br", 1.0)  # nothing is sent on a down link
    for port in (pair.st, pair.br):
        port.set_link(True, 5.0)
        pair.net.poke(port)
    pair.run(10.0)
    assert_negotiated_again(pair, 5.0)


def test_link_down_on_one_end_the_other_ages_it_out() -> None:
    pair = converged_pair()
    pair.st.set_link(False, 1.0)
    pair.net.poke(pair.st)
    assert_lost_at(pair, "st", 1.0, "link down")
    pair.run(8.0)
    assert not pair.tlvs("st", 1.0)
    assert_lost_at(pair, "br", pair.delivered("st")[-1] + pair.delay + QUICK.ttl, "peer aged out or shut down")
    pair.st.set_link(True, 8.0)
    pair.net.poke(pair.st)
    pair.run(12.0)
    assert_negotiated_again(pair, 8.0)
