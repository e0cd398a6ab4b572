"""Each VDP machine alone against scripted frames from the reference captures.

The captures (``tests/data/pcap/``, README there) are an lldpad station talking to an lldpad
bridge. Here one side is replaced by ours:

* **our BridgePort** is fed the lldpad station's frames (and the hand-made requests of
  ``vdp-bridge-errors-injected.pcap``), after the station's EVB LLDPDU so that EVB is
  negotiated; a scripted station acknowledges its ECPDUs at once. Its acknowledgements and
  answers are compared with the lldpad bridge's: byte for byte where we behave the same, and
  each documented difference asserted explicitly.
* **our StationPort** is given the same commands the lldpad station got (read back from its
  requests in the capture) and fed the lldpad bridge's frames; its requests, keep-alives and
  acknowledgements are compared with the lldpad station's, and its events checked.

Both ports are configured as lldpad sends (``PortConfig(end_tlv=False, pad=False)``: no End TLV
after the VDP payload, acknowledgements not padded, ecp.md §1); with our defaults the frames
differ only by those trailing zero octets (checked once below). Capture time t is fed at
``OFFSET + t`` (the EVB LLDPDU goes first, at 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from evb.ecp.wire import Ecpdu, EcpOp
from evb.ethernet import NEAREST_CUSTOMER_BRIDGE
from evb.events import FrameDropped
from evb.frame import Frame, build_frame, decode_frame
from evb.lldp.events import EvbNegotiated
from evb.lldp.negotiate import EvbConfig, Role
from evb.lldp.wire import EvbMode, Lldpdu
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.vdp.events import VdpViolation, VsiAssociated, VsiDeassociated, VsiRejected
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, VdpMode, VdpPdu, VdpStatus, VsiTlv
from tests.helpers import BRIDGE_MAC, LABMGR, STATION_MAC, U1, CapturedFrame, read_capture

OFFSET = 1.0
#: toutKeepAlive with R=3, RTE=8, RKA=20: 1.5·(7·10·2^8 + 10·2^20) µs (vdp.md §8)
TOUT_KEEPALIVE = (7 * 10 * 2**8 + 10 * 2**20) * 3 // 2 / 1e6
#: the same with RKA = 17 (vdp-deassoc-bridge-linger.pcap)
TOUT_KEEPALIVE_17 = (7 * 10 * 2**8 + 10 * 2**17) * 3 // 2 / 1e6
REINIT_KEEPALIVE = 10 * 2**20 / 1e6


# ---------------------------------------------------------------------------------------------- captures


def frames(name: str) -> tuple[CapturedFrame, ...]:
    return read_capture(name)


def decoded(f: CapturedFrame) -> Frame:
    return decode_frame(f.data)


def src(f: CapturedFrame) -> bytes:
    return f.data[6:12]


def ecp(f: CapturedFrame | bytes) -> Ecpdu | None:
    pdu = decode_frame(f if isinstance(f, bytes) else f.data).pdu
    return pdu if isinstance(pdu, Ecpdu) else None


def is_request(f: CapturedFrame | bytes) -> bool:
    e = ecp(f)
    return e is not None and e.op is EcpOp.REQUEST


def is_ack(f: CapturedFrame | bytes) -> bool:
    e = ecp(f)
    return e is not None and e.op is EcpOp.ACK


def evb_frame(name: str, mode: EvbMode) -> CapturedFrame:
    """The first nearest-customer-bridge LLDPDU of ``name`` carrying an EVB TLV of ``mode``."""
    for f in frames(name):
        pdu = decoded(f).pdu
        if isinstance(pdu, Lldpdu) and pdu.evb is not None and pdu.evb.mode == mode:
            return f
    raise AssertionError(f"{name}: no EVB TLV of mode {mode}")


def ulpdu(data: bytes) -> bytes:
    """The octets after the ECP header, trailing zeros (End TLV, padding) removed."""
    return data[18:].rstrip(b"\0")


def vsi_of(tlv: VsiTlv, manager: bytes = LABMGR) -> Vsi:
    return Vsi(
        manager_id=manager,
        type_id=tlv.type_id,
        type_version=tlv.type_version,
        vsiid=tlv.vsiid,
        vsiid_format=tlv.vsiid_format,
        filter_format=tlv.filter_format,
        entries=tlv.entries,
    )


def tlv_of(f: CapturedFrame | bytes) -> VsiTlv:
    e = ecp(f)
    assert e is not None and isinstance(e.ulpdu, VdpPdu)
    [tlv] = e.ulpdu.vsis
    return tlv


# ---------------------------------------------------------------------------------------------- driver


@dataclass
class Driver:
    """Runs one port against scripted input on a virtual clock: timers in between, every frame it
    sends recorded; with ``auto_ack`` the scripted peer acknowledges its ECP requests at once."""

    port: Port
    peer_mac: bytes
    auto_ack: bool = False
    now: float = 0.0
    out: list[tuple[float, bytes]] = field(default_factory=list)
    events: list[tuple[float, Event]] = field(default_factory=list)

    def advance(self, t: float) -> None:
        for _ in range(100_000):
            d = self.port.next_deadline()
            if d is None or d > t:
                break
            self.now = max(self.now, d)
            self.port.handle_timer(self.now)
            self._collect()
        else:  # pragma: no cover
            raise AssertionError("the port's deadline does not move")
        self.now = max(self.now, t)

    def feed(self, data: bytes, t: float) -> None:
        self.advance(t)
        self.port.receive_frame(data, self.now)
        self._collect()

    def do(self, t: float, command: Callable[[float], None]) -> None:
        self.advance(t)
        command(self.now)
        self._collect()

    def until_request(self, limit: float) -> float:
        """Run the timers until the port starts a new ECP request; its time."""
        seen = len(self.ecp_requests())
        while len(self.ecp_requests()) == seen:
            d = self.port.next_deadline()
            assert d is not None and d <= limit, "no request"
            self.advance(d)
        return self.ecp_requests()[-1][0]

    def _collect(self) -> None:
        while True:
            sent = self.port.frames_to_send()
            for data in sent:
                self.out.append((self.now, data))
            while (ev := self.port.next_event()) is not None:
                self.events.append((self.now, ev))
            acks = [
                build_frame(NEAREST_CUSTOMER_BRIDGE, self.peer_mac, e.ack())
                for data in sent
                if (e := ecp(data)) is not None and e.op is EcpOp.REQUEST
            ]
            if not (self.auto_ack and acks):
                return
            for a in acks:
                self.port.receive_frame(a, self.now)

    # views -------------------------------------------------------------------

    def ecp_out(self) -> list[tuple[float, bytes]]:
        return [(t, d) for t, d in self.out if ecp(d) is not None]

    def ecp_requests(self) -> list[tuple[float, bytes]]:
        return [(t, d) for t, d in self.out if is_request(d)]

    def ecp_acks(self) -> list[tuple[float, bytes]]:
        return [(t, d) for t, d in self.out if is_ack(d)]

    def of(self, kind: type) -> list[Any]:
        return [ev for _, ev in self.events if isinstance(ev, kind)]


def lldpad_like(evb: EvbConfig, mac: bytes, **more: Any) -> PortConfig:
    return PortConfig(mac=mac, evb=evb, end_tlv=False, pad=False, **more)


# ============================================================================================== bridge


def our_bridge(name: str, *, station_evb_from: str | None = None, **evb: Any) -> Driver:
    """Our BridgePort, negotiated with the lldpad station's EVB TLV of ``name`` (or of another file)."""
    br = BridgePort(lldpad_like(EvbConfig(role=Role.BRIDGE, **evb), BRIDGE_MAC), now=0.0)
    drv = Driver(br, STATION_MAC, auto_ack=True)
    drv.feed(evb_frame(station_evb_from or name, EvbMode.STATION).data, 0.0)
    assert br.negotiated and drv.of(EvbNegotiated)
    return drv


def feed_station_requests(drv: Driver, name: str, *, numbers: list[int] | None = None) -> None:
    """Feed the station's ECP requests of ``name`` (retransmissions included) at their times."""
    for f in frames(name):
        if src(f) == STATION_MAC and is_request(f) and (numbers is None or f.number in numbers):
            drv.feed(f.data, OFFSET + f.seconds)


def lldpad_bridge(name: str) -> tuple[list[CapturedFrame], list[CapturedFrame]]:
    """The lldpad bridge's ECP acknowledgements and ECP requests (its answers) in ``name``."""
    ecps = [f for f in frames(name) if src(f) == BRIDGE_MAC and ecp(f) is not None]
    return [f for f in ecps if is_ack(f)], [f for f in ecps if is_request(f)]


#: captures in which our bridge answers exactly as lldpad's: file, EVB settings of our bridge
SAME_AS_LLDPAD_BRIDGE = [
    ("vdp-assoc-deassoc.pcap", {}),
    ("vdp-preassoc.pcap", {}),
    ("vdp-preassoc-rr.pcap", {}),
    ("vdp-assoc-3vsi.pcap", {}),
    ("vdp-filter-fmt1-vid.pcap", {}),
    ("vdp-filter-fmt2-multi.pcap", {}),
    ("vdp-filter-fmt3-fmt4-group.pcap", {"gid": True}),
    ("vdp-keepalive-60s.pcap", {}),
    ("vdp-deassoc-unknown.pcap", {"rka": 24}),
]


@pytest.mark.parametrize(("name", "evb"), SAME_AS_LLDPAD_BRIDGE, ids=[n for n, _ in SAME_AS_LLDPAD_BRIDGE])
def test_bridge_answers_as_lldpad(name: str, evb: dict[str, Any]) -> None:
    """Success echoes (0x40, same TLV type, the filter as asked: VID 0 stays 0 with accept_all),
    keep-alive refreshes, De-Associates (also of a VSI the bridge does not know): every ECP
    acknowledgement and every answer byte-identical to the lldpad bridge's, sequence numbers
    included. One difference in timing: we answer on arrival, lldpad 2 ms later (vdp.md §7.2)."""
    drv = our_bridge(name, **evb)
    feed_station_requests(drv, name)
    drv.advance(OFFSET + frames(name)[-1].seconds + 1.0)
    acks, answers = lldpad_bridge(name)
    assert [d for _, d in drv.ecp_acks()] == [f.data for f in acks]
    assert [d for _, d in drv.ecp_requests()] == [f.data for f in answers]
    # every answer leaves when its request arrives; lldpad's ≥ 2 ms later
    requests = [f for f in frames(name) if src(f) == STATION_MAC and is_request(f)]
    firsts = [f for i, f in enumerate(requests) if i == 0 or ecp(f).seq != ecp(requests[i - 1]).seq]  # type: ignore[union-attr]
    assert [t for t, _ in drv.ecp_requests()] == [OFFSET + f.seconds for f in firsts]
    assert all(a.usec - r.usec >= 2000 for r, a in zip(firsts, answers, strict=True))
    assert drv.of(VsiRejected) == drv.of(VdpViolation) == drv.of(FrameDropped) == []
    assert drv.port.vdp.vsis == {}  # every file ends with its VSIs de-associated
    assert drv.port.vdp.counters.keepalive_timeouts == 0


def test_bridge_events_for_assoc_deassoc() -> None:
    """vdp-assoc-deassoc.pcap: the bridge reports the association and its release."""
    drv = our_bridge("vdp-assoc-deassoc.pcap")
    feed_station_requests(drv, "vdp-assoc-deassoc.pcap")
    key = (LABMGR, 5, U1)
    entries = (FilterEntry(vid=10, mac=bytes.fromhex("020000000101")),)
    assert [(t - OFFSET, ev) for t, ev in drv.events if isinstance(ev, VsiAssociated | VsiDeassociated)] == [
        (0.0, VsiAssociated(key=key, mode=VdpMode.ASSOC, type_id=5, type_version=4, entries=entries)),
        (pytest.approx(1.046118, abs=1e-9), VsiDeassociated(key=key, reason="deassociated")),
    ]


def test_bridge_with_our_defaults_adds_end_tlv_and_padding() -> None:
    """With the default PortConfig our answers are lldpad's plus an End TLV (00 00, vdp.md §2), and
    our acknowledgements are padded to 60 octets (lldpad's are 18)."""
    br = BridgePort(PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE)), now=0.0)
    drv = Driver(br, STATION_MAC, auto_ack=True)
    name = "vdp-assoc-deassoc.pcap"
    drv.feed(evb_frame(name, EvbMode.STATION).data, 0.0)
    feed_station_requests(drv, name)
    acks, answers = lldpad_bridge(name)
    assert [d for _, d in drv.ecp_requests()] == [f.data + b"\0\0" for f in answers]
    assert [d for _, d in drv.ecp_acks()] == [f.data + bytes(60 - 18) for f in acks]


def test_bridge_keepalive_refreshes_are_not_new_associations() -> None:
    """vdp-keepalive-60s.pcap: five keep-alives, each a refresh (no policy decision, no event); the
    retransmitted first request (frame 2) is acknowledged twice and handled once."""
    name = "vdp-keepalive-60s.pcap"
    drv = our_bridge(name)
    feed_station_requests(drv, name, numbers=[1, 2, 18, 22, 27, 34, 38])
    c = drv.port.vdp.counters
    assert (c.requests, c.admitted, c.refreshes) == (6, 1, 5)
    assert drv.port.ecp_rx.duplicates == 1 and len(drv.ecp_acks()) == 7
    assert len(drv.of(VsiAssociated)) == 1


def test_bridge_releases_on_deassociate_instead_of_lingering() -> None:
    """vdp-deassoc-bridge-linger.pcap (RKA = 17): the De-Associate (frame 16) is answered exactly as
    lldpad does (frame 18), but we release the VSI at once, so the unsolicited De-Associate lldpad
    sends toutKeepAlive = 1.5·(7·10·2^8 + 10·2^17) µs = 1.99296 s later (frame 23) never comes."""
    name = "vdp-deassoc-bridge-linger.pcap"
    drv = our_bridge(name, rka=17)
    feed_station_requests(drv, name)
    drv.advance(OFFSET + 10.0)
    acks, answers = lldpad_bridge(name)
    assert [f.number for f in answers] == [3, 12, 18, 23]
    assert [d for _, d in drv.ecp_requests()] == [f.data for f in answers[:3]]
    assert [d for _, d in drv.ecp_acks()] == [f.data for f in acks]
    assert answers[3].usec - answers[2].usec == pytest.approx(TOUT_KEEPALIVE_17 * 1e6, abs=1000)
    t_de = OFFSET + frames(name)[15].seconds
    assert [(t, ev) for t, ev in drv.events if isinstance(ev, VsiDeassociated)] == [
        (t_de, VsiDeassociated(key=(LABMGR, 5, U1), reason="deassociated"))
    ]
    assert drv.port.vdp.vsis == {} and drv.port.vdp.counters.keepalive_timeouts == 0


def test_bridge_keepalive_timeout_as_lldpad_then_resends() -> None:
    """vdp-bridge-deassoc-kato.pcap: the station falls silent after the association. Our bridge sends
    the same unsolicited De-Associate (status 0x00) as lldpad (frame 11), exactly toutKeepAlive after
    its answer, and retransmits it 3 times 2.56 ms apart like lldpad (frames 12-14). Then we differ:
    lldpad gives up; our bridge queues the undelivered answer again, up to 3 more times (bridge.py,
    README "ECP gives up"), each time under a new sequence number. The overdue keep-alive of the
    thawed station (frame 18) then creates the VSI anew, answered as lldpad does (frame 23)."""
    name = "vdp-bridge-deassoc-kato.pcap"
    drv = our_bridge(name)
    feed_station_requests(drv, name, numbers=[1])
    drv.auto_ack = False  # the station is frozen (SIGSTOP)
    drv.advance(OFFSET + 26.0)
    acks, answers = lldpad_bridge(name)
    assert [f.number for f in answers] == [3, 11, 12, 13, 14, 23]
    assert [d for _, d in drv.ecp_acks()] == [acks[0].data]  # frame 2
    reqs = drv.ecp_requests()
    assert reqs[0][1] == answers[0].data
    t_answer = reqs[0][0]
    assert reqs[1][0] == t_answer + TOUT_KEEPALIVE
    assert [d for _, d in reqs[1:5]] == [f.data for f in answers[1:5]]
    assert [round((t - reqs[1][0]) * 1e6) for t, _ in reqs[1:5]] == [0, 2560, 5120, 7680]
    # lldpad: 15.755970 s between its answer and frame 11 (toutKeepAlive plus its own latency)
    assert answers[1].usec - answers[0].usec == pytest.approx(TOUT_KEEPALIVE * 1e6, abs=1000)
    resent = reqs[5:]
    assert len(resent) == 3 * 4
    assert [ecp(d).seq for _, d in resent] == [s for s in range(3, 6) for _ in range(4)]  # type: ignore[union-attr]
    assert {ulpdu(d) for _, d in resent} == {ulpdu(answers[1].data)}
    assert drv.port.vdp.counters.resent_after_abandon == 3
    assert drv.of(VsiDeassociated) == [VsiDeassociated(key=(LABMGR, 5, U1), reason="keepalive-timeout")]
    # the thawed station's keep-alive: a new VSI for us, answered 0x40 as lldpad (frame 23)
    drv.auto_ack = True
    feed_station_requests(drv, name, numbers=[18])
    last_t, last = drv.ecp_requests()[-1]
    assert last_t == OFFSET + frames(name)[17].seconds
    assert ulpdu(last) == ulpdu(answers[5].data) and tlv_of(last).status == VdpStatus.reply()
    assert len(drv.of(VsiAssociated)) == 2


# ---------------------------------------------------------------------------------------------- errors file

ERRORS = "vdp-bridge-errors-injected.pcap"


def _errors_run() -> tuple[Driver, dict[int, list[bytes]]]:
    """Our bridge fed every injected request of the errors file; our answers by request frame number.
    The file holds no station EVB TLV (the station lldpad was stopped), so it comes from
    vdp-assoc-deassoc.pcap (same station)."""
    drv = our_bridge(ERRORS, station_evb_from="vdp-assoc-deassoc.pcap")
    answers: dict[int, list[bytes]] = {}
    for f in frames(ERRORS):
        if src(f) == STATION_MAC and is_request(f):
            before = len(drv.ecp_requests())
            drv.feed(f.data, OFFSET + f.seconds)
            answers[f.number] = [d for _, d in drv.ecp_requests()[before:]]
    return drv, answers


def test_bridge_errors_file_acknowledgements() -> None:
    """Every injected ECPDU is acknowledged exactly as lldpad did, whatever its content."""
    drv, _ = _errors_run()
    acks, _ = lldpad_bridge(ERRORS)
    assert [d for _, d in drv.ecp_acks()] == [f.data for f in acks]
    assert len(acks) == 10


def test_bridge_errors_file_same_answers() -> None:
    """Where we behave as lldpad: the valid Associate (frame 1 → frame 3, byte-identical) and the
    De-Associate of a never-associated VSI (frame 25 → 0x40, same ULPDU as frame 27; the sequence
    number differs by one because we also answered frame 22, below)."""
    drv, ours = _errors_run()
    f = {x.number: x for x in frames(ERRORS)}
    assert ours[1] == [f[3].data]
    [de] = ours[25]
    assert ulpdu(de) == ulpdu(f[27].data) and tlv_of(de).status.octet == 0x40
    assert (ecp(de).seq, ecp(f[27].data).seq) == (7, 6)  # type: ignore[union-attr]
    assert (LABMGR, 5, tlv_of(f[25]).vsiid) not in drv.port.vdp.vsis


@pytest.mark.parametrize(
    ("request_no", "answer_no", "ours", "why"),
    [
        (6, 8, 0x40, "UUID whose first 8 octets are zero: valid (lldpad checks only 8 octets for zero)"),
        (10, 12, 0x41, "undefined VSIID format 6: code 1, invalid format"),
        (14, 16, 0x40, "format 1 with VID 0 among two entries: valid (lldpad's single-wildcard rule)"),
        (18, 20, 0x41, "format 3 without negotiated group IDs: code 1, invalid format"),
    ],
)
def test_bridge_errors_file_documented_differences(request_no: int, answer_no: int, ours: int, why: str) -> None:
    """lldpad answers every request that fails its checks with 0x42 (code 2); we answer requests that
    fail ours (validate.py, the standard's rules) with code 1 or 5, and accept what only lldpad
    refuses. Apart from the status octet our answer is lldpad's (same TLV type, same content)."""
    _, answers = _errors_run()
    f = {x.number: x for x in frames(ERRORS)}
    [answer] = answers[request_no]
    lldpad = tlv_of(f[answer_no])
    assert lldpad.status.octet == 0x42
    assert tlv_of(answer).status.octet == ours, why
    assert tlv_of(answer) == _with(lldpad, VdpStatus.from_octet(ours))
    assert tlv_of(answer) == _with(tlv_of(f[request_no]), VdpStatus.from_octet(ours))


def _with(tlv: VsiTlv, status: VdpStatus) -> VsiTlv:
    return VsiTlv(
        tlv.mode, status, tlv.type_id, tlv.type_version, tlv.vsiid_format, tlv.vsiid, tlv.filter_format, tlv.entries
    )


def test_bridge_code_5_for_a_bad_mac() -> None:
    """Code 5 (invalid VID, GroupID or MAC): frame 1's request with a multicast MAC (lldpad would
    answer 0x42 here too, vdp.md §5.5)."""
    drv = our_bridge(ERRORS, station_evb_from="vdp-assoc-deassoc.pcap")
    f1 = frames(ERRORS)[0]
    data = bytearray(f1.data)
    entry_mac = len(data) - 8  # the one MAC/VID entry is the last 8 octets
    assert data[entry_mac : entry_mac + 6] == bytes.fromhex("020000000101")
    data[entry_mac] = 0x03
    drv.feed(bytes(data), OFFSET)
    [(_, answer)] = drv.ecp_requests()
    assert tlv_of(answer).status.octet == 0x45 and tlv_of(answer).mode is VdpMode.ASSOC
    [rej] = drv.of(VsiRejected)
    assert rej.code == 5 and "MAC" in rej.reason


def test_bridge_errors_file_filter_change_is_admitted() -> None:
    """Frame 22, an Associate of U1 (held since frame 1) with a different filter (VID 11): lldpad
    ignores it (no answer, and never times the VSI out, vdp.md §10.4); our bridge treats it as a new
    request, its policy accepts it, and the VSI now has VID 11."""
    drv, answers = _errors_run()
    [answer] = answers[22]
    assert tlv_of(answer) == _with(tlv_of(frames(ERRORS)[21]), VdpStatus.reply())
    assert drv.port.vdp.vsis[(LABMGR, 5, U1)].answer.entries[0].vid == 11  # type: ignore[union-attr]
    assert [ev.entries[0].vid for ev in drv.of(VsiAssociated) if ev.key[2] == U1] == [10, 11]
    _, lldpad_answers = lldpad_bridge(ERRORS)
    assert not any(23 <= f.number <= 24 for f in lldpad_answers)


def test_bridge_errors_file_no_answer() -> None:
    """Frames 31 (no Manager ID TLV first) and 33 (the response bit set in a request):
    acknowledged, never answered, as lldpad; frame 29 (TLV length does not fit its entry count)
    is refused with code 1, "invalid format" (lldpad: no answer; its identity is readable, so the
    station need not wait respWaitDelay). Each is reported."""
    drv, answers = _errors_run()
    assert answers[31] == answers[33] == []
    [refusal] = answers[29]
    pdu = decode_frame(refusal).pdu
    assert isinstance(pdu, Ecpdu) and isinstance(pdu.ulpdu, VdpPdu)
    [tlv] = pdu.ulpdu.vsis
    assert tlv.mode is VdpMode.ASSOC and tlv.status.octet == 0x41 and len(tlv.entries) == 1
    [dropped] = drv.of(FrameDropped)
    assert dropped.pdu == "vdp" and "entries" in dropped.reason
    reasons = [v.reason for v in drv.of(VdpViolation)]
    assert len(reasons) == 2 and "refused, code 1" in reasons[0] and "Manager ID" in reasons[1]
    c = drv.port.vdp.counters
    assert c.invalid == 3  # frame 29's TLV, frames 10 and 18 (invalid requests)
    assert c.ignored == 1  # frame 33
    # what was admitted: U1 (frames 1, 22), frame 6's and frame 14's VSIs
    assert sorted(k[2][-2:].hex() for k in drv.port.vdp.vsis) == ["0001", "e001", "e004"]


# ============================================================================================== station


def our_station(name: str, **evb: Any) -> Driver:
    """Our StationPort, negotiated with the lldpad bridge's EVB TLV of ``name``."""
    st = StationPort(lldpad_like(EvbConfig(role=Role.STATION, **evb), STATION_MAC), now=0.0)
    drv = Driver(st, BRIDGE_MAC)
    drv.feed(evb_frame(name, EvbMode.BRIDGE).data, 0.0)
    assert st.negotiated
    return drv


def replay_station(drv: Driver, name: str, *, last: int | None = None) -> list[str]:
    """Give our station the lldpad station's commands and feed it the lldpad bridge's ECP frames.

    Each new request of the lldpad station (not a retransmission) is either a command (the first
    request of a VSI, a mode change, a De-Associate), given to our station at the same capture
    time, or a keep-alive (the VSI's last request again), which our station must send by itself;
    the bridge frames that follow are then fed at the same delay after *our* keep-alive. Returns
    what each request was."""
    st = drv.port
    assert isinstance(st, StationPort)
    kinds: list[str] = []
    last_req: dict[bytes, VsiTlv] = {}
    prev_seq: int | None = None
    shift = 0.0
    for f in frames(name):
        if last is not None and f.number > last:
            break
        e = ecp(f)
        if e is None:
            continue
        if src(f) == BRIDGE_MAC:
            drv.feed(f.data, OFFSET + f.seconds + shift)
            continue
        if e.op is not EcpOp.REQUEST or e.seq == prev_seq:
            continue  # the lldpad station's acknowledgements and retransmissions: ours are outputs
        prev_seq = e.seq
        tlv = tlv_of(f)
        if last_req.get(tlv.vsiid) == tlv:
            t = drv.until_request(OFFSET + f.seconds + 1.0)
            shift = t - (OFFSET + f.seconds)
            kinds.append("keep-alive")
        else:
            shift = 0.0
            v = vsi_of(tlv, e.ulpdu.manager_id)  # type: ignore[union-attr, arg-type]
            if tlv.mode is VdpMode.DEASSOC:
                drv.do(OFFSET + f.seconds, lambda now, v=v: st.deassociate(v, now=now))
            else:
                mode, hints = tlv.mode, tlv.status.hints
                drv.do(OFFSET + f.seconds, lambda now, v=v, m=mode, h=hints: st.request(v, m, now=now, hints=h))
            kinds.append(tlv.mode.label)
        last_req[tlv.vsiid] = tlv
    return kinds


def lldpad_station(name: str, *, last: int | None = None) -> list[CapturedFrame]:
    return [
        f for f in frames(name) if src(f) == STATION_MAC and ecp(f) is not None and (last is None or f.number <= last)
    ]


SAME_AS_LLDPAD_STATION = [
    ("vdp-assoc-deassoc.pcap", {}, ["ASSOC", "DEASSOC"]),
    ("vdp-preassoc.pcap", {}, ["PREASSOC", "ASSOC", "DEASSOC"]),
    ("vdp-preassoc-rr.pcap", {}, ["PREASSOC-RR", "DEASSOC"]),
    ("vdp-assoc-3vsi.pcap", {}, ["ASSOC"] * 3 + ["DEASSOC"] * 3),
    ("vdp-filter-fmt1-vid.pcap", {}, ["ASSOC", "ASSOC", "DEASSOC", "DEASSOC"]),
    ("vdp-filter-fmt2-multi.pcap", {}, ["ASSOC", "DEASSOC"]),
    ("vdp-filter-fmt3-fmt4-group.pcap", {"gid": True}, ["ASSOC", "ASSOC", "DEASSOC", "DEASSOC"]),
    ("vdp-keepalive-60s.pcap", {}, ["ASSOC"] + ["keep-alive"] * 5 + ["DEASSOC"]),
    ("vdp-deassoc-bridge-linger.pcap", {"rka": 17}, ["ASSOC", "keep-alive", "DEASSOC"]),
]


@pytest.mark.parametrize(
    ("name", "evb", "kinds"), SAME_AS_LLDPAD_STATION, ids=[n for n, _, _ in SAME_AS_LLDPAD_STATION]
)
def test_station_as_lldpad(name: str, evb: dict[str, Any], kinds: list[str]) -> None:
    """Given the same commands and the lldpad bridge's answers, our station sends what the lldpad
    station sent, byte for byte: requests (hints none: status 0x00), the ECP retransmission of
    vdp-keepalive-60s.pcap frame 2 (2.56 ms after frame 1, the bridge's acknowledgement being late),
    keep-alives (same TLV, next sequence number), De-Associates, and every ECP acknowledgement,
    including that of lldpad's lingering unsolicited De-Associate (linger frame 24), which it then
    ignores. Each command is confirmed by one event; keep-alives and the stray De-Associate are not."""
    drv = our_station(name, **evb)
    assert replay_station(drv, name) == kinds
    drv.advance(OFFSET + frames(name)[-1].seconds + 0.1)
    assert [d for _, d in drv.ecp_out()] == [f.data for f in lldpad_station(name)]
    commands = [k for k in kinds if k != "keep-alive"]
    assert len(drv.of(VsiAssociated)) == commands.count("ASSOC") + commands.count("PREASSOC") + commands.count(
        "PREASSOC-RR"
    )
    assert [ev.reason for ev in drv.of(VsiDeassociated)] == ["deassociated"] * commands.count("DEASSOC")
    assert drv.of(VsiRejected) == drv.of(VdpViolation) == drv.of(FrameDropped) == []
    assert drv.port.vdp.vsis == {}
    assert drv.port.vdp.counters.unknown_answers == (1 if "linger" in name else 0)


def test_station_keepalive_timing_against_lldpad() -> None:
    """vdp-keepalive-60s.pcap: our keep-alives go out exactly reinitKeepAlive = 10·2^20 µs after the
    answer arrived; lldpad's come more than 2 ms later than that (it processes the answer 2 ms after
    delivery, vdp.md §8)."""
    name = "vdp-keepalive-60s.pcap"
    drv = our_station(name)
    replay_station(drv, name)
    # requests: ASSOC, its ECP retransmission, 5 keep-alives, DEASSOC (ours and lldpad's)
    ours = [t for t, _ in drv.ecp_requests()]
    lldpad = [f.seconds for f in lldpad_station(name) if is_request(f)]
    assert len(ours) == len(lldpad) == 8
    # answers: when the station acknowledged each (= received it); lldpad's station ACK times
    ours_in = [t for t, _ in drv.ecp_acks()]
    lldpad_in = [f.seconds for f in lldpad_station(name) if is_ack(f)]
    for k in range(5):
        assert ours[2 + k] == ours_in[k] + REINIT_KEEPALIVE
        assert lldpad[2 + k] - lldpad_in[k] > REINIT_KEEPALIVE + 0.002


def _answer_arrivals(drv: Driver) -> list[float]:
    """When our station acknowledged (= received) each VDP answer: its ACKs of bridge requests."""
    return [t for t, d in drv.ecp_acks()]


def test_station_fmt1_wildcard_left_as_zero() -> None:
    """vdp-filter-fmt1-vid.pcap: lldpad's bridge returns VID 0 unchanged; our station reports VID 0
    and de-associates with it (frame 15)."""
    name = "vdp-filter-fmt1-vid.pcap"
    drv = our_station(name)
    replay_station(drv, name)
    first = drv.of(VsiAssociated)[0]
    assert first.entries == (FilterEntry(vid=0),) and first.key == (LABMGR, 5, U1)


def test_station_defaults_add_end_tlv_and_padding() -> None:
    """With the default PortConfig our requests are lldpad's plus an End TLV, our ACKs padded to 60."""
    name = "vdp-assoc-deassoc.pcap"
    st = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION)), now=0.0)
    drv = Driver(st, BRIDGE_MAC)
    drv.feed(evb_frame(name, EvbMode.BRIDGE).data, 0.0)
    replay_station(drv, name)
    expect = [f.data + b"\0\0" if is_request(f) else f.data + bytes(42) for f in lldpad_station(name)]
    assert [d for _, d in drv.ecp_out()] == expect


def test_station_unsolicited_deassociate_from_lldpad_bridge() -> None:
    """vdp-bridge-deassoc-kato.pcap: after the association (frames 1-4) the lldpad bridge sends an
    unsolicited De-Associate (frame 11, status 0x00) and retransmits it 3 times (12-14). Our station
    (not frozen like lldpad's, so its keep-alive at 10.49 s goes unanswered meanwhile) acknowledges
    all four copies with the lldpad station's acknowledgement (frames 17, 19-21), ends the VSI once
    (reason "bridge"), sends no VDP answer and starts nothing new afterwards."""
    name = "vdp-bridge-deassoc-kato.pcap"
    drv = our_station(name)
    replay_station(drv, name, last=4)
    f = {x.number: x for x in frames(name)}
    assert [d for _, d in drv.ecp_out()] == [f[1].data, f[4].data]
    t11 = OFFSET + f[11].seconds
    for n in (11, 12, 13, 14):
        drv.feed(f[n].data, OFFSET + f[n].seconds)
    drv.advance(OFFSET + 40.0)
    assert drv.of(VsiDeassociated) == [VsiDeassociated(key=(LABMGR, 5, U1), reason="bridge")]
    assert [t for t, ev in drv.events if isinstance(ev, VsiDeassociated)] == [t11]
    acks = [d for t, d in drv.ecp_acks() if t >= t11]
    assert acks == [f[17].data, f[19].data, f[20].data, f[21].data]
    assert drv.port.ecp_rx.duplicates == 3 and drv.port.vdp.vsis == {}
    # before frame 11: keep-alives of U1 (unanswered: the capture has no answer for them) only
    reqs = drv.ecp_requests()
    keepalives = [(t, d) for t, d in reqs[1:] if t < t11]
    assert keepalives and {ulpdu(d) for _, d in keepalives} == {ulpdu(f[18].data)}
    assert keepalives[0][0] == _answer_arrivals(drv)[0] + REINIT_KEEPALIVE
    new_after = [ecp(d).seq for t, d in reqs if t > t11]  # type: ignore[union-attr]
    assert set(new_after) <= {ecp(keepalives[-1][1]).seq}  # type: ignore[union-attr]  # only retransmissions


def test_station_deassociate_answered_by_a_restarted_lldpad_bridge() -> None:
    """vdp-deassoc-unknown.pcap: the station associated U1 (answered by the first lldpad bridge:
    vdp-assoc-deassoc.pcap frames 2-3, its sequence 1), the bridge restarted, then the station
    de-associates. Our De-Associate is lldpad's (frame 1, sequence 2); the restarted bridge answers
    under sequence 1 again (frame 3). lldpad's station drops that answer as an ECP duplicate; ours
    delivers it, a request with the last number but different content being a restarted peer's
    (ecp/receive.py), and the VSI ends normally."""
    name = "vdp-deassoc-unknown.pcap"
    restart = 5.0  # the second capture starts after lldpad's restart (seconds): past the repeat window
    drv = our_station(name, rka=24)
    first = {x.number: x for x in frames("vdp-assoc-deassoc.pcap")}
    f = {x.number: x for x in frames(name)}
    v = vsi_of(tlv_of(first[1]))
    drv.do(0.5, lambda now: drv.port.associate(v, now=now))  # type: ignore[attr-defined]
    drv.feed(first[2].data, 0.5001)
    drv.feed(first[3].data, 0.503)
    assert len(drv.of(VsiAssociated)) == 1
    drv.do(restart + f[1].seconds, lambda now: drv.port.deassociate(v, now=now))  # type: ignore[attr-defined]
    for n in (2, 3):
        drv.feed(f[n].data, restart + f[n].seconds)
    out = [d for t, d in drv.ecp_out() if t >= restart]
    assert out == [f[1].data, f[4].data]
    assert drv.of(VsiDeassociated) == [VsiDeassociated(key=v.key, reason="deassociated")]
    assert drv.port.ecp_rx.restarts_seen == 1 and drv.port.ecp_rx.duplicates == 0


@pytest.mark.parametrize(("request_no", "answer_no"), [(6, 8), (14, 16)])
def test_station_error_answer_from_lldpad_bridge(request_no: int, answer_no: int) -> None:
    """vdp-bridge-errors-injected.pcap: requests our station also sends (a UUID with 8 leading zero
    octets; format 1 with VID 0 among two entries) are byte-identical to the hand-made ones (with the
    same first ECP sequence number); lldpad's 0x42 answer ends the VSI: VsiRejected code 2."""
    drv_first_seq = ecp(frames(ERRORS)[request_no - 1]).seq  # type: ignore[union-attr]
    st = StationPort(lldpad_like(EvbConfig(role=Role.STATION), STATION_MAC, first_seq=drv_first_seq), now=0.0)
    drv = Driver(st, BRIDGE_MAC)
    drv.feed(evb_frame(ERRORS, EvbMode.BRIDGE).data, 0.0)
    f = {x.number: x for x in frames(ERRORS)}
    v = vsi_of(tlv_of(f[request_no]))
    drv.do(OFFSET, lambda now: st.associate(v, now=now))
    for n in (request_no + 1, answer_no):
        drv.feed(f[n].data, OFFSET + (f[n].usec - f[request_no].usec) / 1e6)
    assert [d for _, d in drv.ecp_out()] == [f[request_no].data, f[answer_no + 1].data]
    assert drv.of(VsiRejected) == [VsiRejected(key=v.key, mode=VdpMode.ASSOC, code=2, keep=False, hard=False)]
    assert st.vdp.vsis == {}


@pytest.mark.parametrize("request_no", [10, 18])
def test_station_refuses_locally_what_lldpad_station_refuses(request_no: int) -> None:
    """The hand-made requests of frames 10 (VSIID format 6) and 18 (format 3 without group IDs) are
    refused by our station before anything is sent, as by lldpad's (README, errors file)."""
    from evb.errors import LocalProtocolError

    drv = our_station(ERRORS)
    v = vsi_of(tlv_of(frames(ERRORS)[request_no - 1]))
    with pytest.raises(LocalProtocolError):
        drv.do(OFFSET, lambda now: drv.port.associate(v, now=now))  # type: ignore[attr-defined]
    drv.advance(OFFSET + 1)
    assert drv.ecp_out() == []


def test_station_ignores_what_a_station_must_ignore() -> None:
    """Frames no bridge should send, fed to our station: a request TLV other than De-Associate (a
    violation) and an answer for an unknown VSI (counted). Both are ECP-acknowledged."""
    name = "vdp-assoc-deassoc.pcap"
    drv = our_station(name)
    f = {x.number: x for x in frames(name)}
    # the station's own Associate request, as if the bridge sent it
    fake = bytearray(f[1].data)
    fake[6:12] = BRIDGE_MAC
    drv.feed(bytes(fake), OFFSET)
    # an answer for U1, which our station does not hold; both frames carry sequence 1, so it comes
    # after the receiver's repeat window (a quick repeat of the last number is an ECP duplicate)
    drv.feed(f[3].data, OFFSET + 2.0)
    assert len(drv.ecp_acks()) == 2
    [violation] = drv.of(VdpViolation)
    assert "request" in violation.reason
    assert drv.port.vdp.counters.unknown_answers == 1 and drv.of(VsiAssociated) == []


def test_accept_all_assigning_gives_wildcard_entries_a_vid() -> None:
    """vdp.md §5.3: the bridge supplies a VID for VID 0 (``[vdp] wildcard_vid``); others as asked."""
    import dataclasses

    from evb.vdp.bridge import PolicyRequest, Verdict, accept_all_assigning
    from evb.vdp.wire import FilterFormat

    entries = (FilterEntry(vid=0, mac=b"\x02" * 6, pcp=3, ps=True), FilterEntry(vid=20, mac=b"\x04" * 6))
    tlv = VsiTlv(VdpMode.ASSOC, VdpStatus.request(), 1, 1, 5, bytes(range(16)), FilterFormat.MAC_VID, entries)
    decision = accept_all_assigning(100)(PolicyRequest(manager_id=LABMGR, tlv=tlv, current=None))
    assert decision.verdict is Verdict.ACCEPT
    assert decision.entries == (FilterEntry(vid=100, mac=b"\x02" * 6, pcp=3, ps=True), entries[1])
    plain = dataclasses.replace(tlv, entries=entries[1:])
    assert accept_all_assigning(100)(PolicyRequest(manager_id=LABMGR, tlv=plain, current=None)).entries is None
