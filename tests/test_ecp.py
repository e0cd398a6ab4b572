"""ECP (ecp.md; lldpad-behaviour.md §4.2, §7.2): transmitter and receiver alone, then through ports.

* ``EcpTransmitter``: timing of retransmissions and abandonment (ecp.md §3.5), sequence numbers
  (§3.2), acknowledgement matching (§3.4), pacing (§4.2), reset;
* ``EcpReceiver``: lldpad's ecp22 tests 2 and 3, the restarted-peer trap of §4.3, reset;
* ports: tests 4 and 5 (bad version / subtype), acknowledgements, PECSP, malformed frames,
  link down/up (test 30), and a ``hypothesis.stateful`` model of the reliable path.
"""

from __future__ import annotations

import random
import struct
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as strat
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from evb.ecp.events import UlpduAbandoned
from evb.ecp.receive import EcpReceiver
from evb.ecp.transmit import EcpTransmitter, TxState, next_seq
from evb.ecp.wire import Ecpdu, EcpOp
from evb.errors import LocalProtocolError
from evb.ethernet import NEAREST_CUSTOMER_BRIDGE
from evb.events import FrameDropped
from evb.frame import decode_frame
from evb.lldp.events import EvbLost
from evb.lldp.negotiate import EvbConfig, Role
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.sim import Network
from evb.vdp.events import VsiAssociated
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpPdu
from tests.helpers import BRIDGE_MAC, LABMGR, STATION_MAC, U1, capture_frame
from tests.strategies import DETERMINISTIC

ETH_ECP = bytes.fromhex("8940")

# --------------------------------------------------------------------------- EcpTransmitter


def drive_until_done(tx: EcpTransmitter) -> tuple[list[tuple[float, Ecpdu]], float | None]:
    """Run the ack timer from deadline to deadline, nobody acknowledging: (sent, abandoned at)."""
    sent: list[tuple[float, Ecpdu]] = []
    while (t := tx.deadline) is not None:
        assert tx.expire(t - 1e-9) == (None, None)  # nothing happens before the deadline
        again, gone = tx.expire(t)
        if again is not None:
            sent.append((t, again))
        if gone is not None:
            return sent, t
    return sent, None


@pytest.mark.parametrize("r", range(8))
@pytest.mark.parametrize("ack_timeout", [0.25, 0.00256, 0.16384], ids=["T=0.25s", "RTE8", "RTE14"])
def test_retransmits_at_t_2t_to_rt_then_abandons_at_r_plus_1_t(r: int, ack_timeout: float) -> None:
    """ecp.md §3.5: sent at 0, T, 2T, ..., R·T with the same sequence number; abandoned at (R+1)·T."""
    tx = EcpTransmitter(subtype=1, ack_timeout=ack_timeout, max_retries=r, first_seq=7)
    first = tx.start(b"ulp", 0.0)
    assert first == Ecpdu(EcpOp.REQUEST, 1, 7, b"ulp") and first.encode() == bytes.fromhex("10010007") + b"ulp"
    retransmitted, abandoned_at = drive_until_done(tx)
    assert [t for t, _ in retransmitted] == pytest.approx([k * ack_timeout for k in range(1, r + 1)], rel=1e-12)
    assert all(pdu == first for _, pdu in retransmitted)
    assert abandoned_at == pytest.approx((r + 1) * ack_timeout, rel=1e-12)
    assert (tx.state, tx.seq, tx.deadline, tx.ulpdu) == (TxState.IDLE, 8, None, None)
    assert (tx.sent, tx.retransmissions, tx.abandoned, tx.delivered) == (r + 1, r, 1, 0)


def test_exact_times_with_a_binary_timer() -> None:
    tx = EcpTransmitter(subtype=1, ack_timeout=0.25, max_retries=3)
    tx.start(b"x", 0.0)
    retransmitted, abandoned_at = drive_until_done(tx)
    assert [t for t, _ in retransmitted] == [0.25, 0.5, 0.75] and abandoned_at == 1.0


def test_ack_delivers_and_advances_the_sequence() -> None:
    tx = EcpTransmitter(subtype=1, ack_timeout=0.00256, max_retries=3, first_seq=41)
    tx.start(b"a", 0.0)
    tx.expire(0.00256)  # one retransmission: the ack of either copy ends it
    assert tx.ack(41) == b"a"
    assert (tx.state, tx.seq, tx.deadline, tx.delivered, tx.tries) == (TxState.IDLE, 42, None, 1, 2)
    assert tx.start(b"b", 1.0).seq == 42


def test_stale_and_duplicate_acks_are_ignored() -> None:
    tx = EcpTransmitter(subtype=1, ack_timeout=0.5, max_retries=3, first_seq=10)
    assert tx.ack(10) is None  # nothing outstanding
    tx.start(b"a", 0.0)
    for stale in (9, 11, 0, 0xFFFF):
        assert tx.ack(stale) is None
    assert (tx.state, tx.seq, tx.deadline) == (TxState.WAIT_ACK, 10, 0.5)
    assert tx.ack(10) == b"a"
    assert tx.ack(10) is None  # the duplicate of an ack
    tx.start(b"b", 1.0)
    assert tx.ack(10) is None and tx.state is TxState.WAIT_ACK and tx.seq == 11
    assert tx.delivered == 1


@pytest.mark.parametrize(("seq", "after"), [(1, 2), (0x1224, 0x1225), (0xFFFE, 0xFFFF), (0xFFFF, 1)])
def test_next_seq_skips_zero(seq: int, after: int) -> None:
    assert next_seq(seq) == after


@pytest.mark.parametrize("how", ["ack", "abandon", "reset"])
def test_sequence_wraps_from_ffff_to_1(how: str) -> None:
    tx = EcpTransmitter(subtype=1, ack_timeout=0.5, max_retries=0, first_seq=0xFFFF)
    tx.start(b"a", 0.0)
    if how == "ack":
        assert tx.ack(0xFFFF) == b"a"
    elif how == "abandon":
        assert tx.expire(0.5) == (None, b"a")
    else:
        assert tx.reset() == b"a"
    assert tx.seq == 1 and tx.start(b"b", 1.0).seq == 1


@pytest.mark.parametrize("first_seq", [0, 0x10000, -1])
def test_first_seq_must_be_1_to_ffff(first_seq: int) -> None:
    with pytest.raises(LocalProtocolError):
        EcpTransmitter(subtype=1, ack_timeout=0.5, max_retries=3, first_seq=first_seq)


def test_pacing_holds_the_next_new_ecpdu() -> None:
    """min_gap counts from the previous *new* ECPDU; an early ack does not shorten it (ecp.md §4.2)."""
    tx = EcpTransmitter(subtype=1, ack_timeout=0.00256, max_retries=3, min_gap=0.003)
    assert tx.ready(0.0)
    tx.start(b"a", 0.0)
    assert not tx.ready(0.001)  # in flight
    tx.ack(1)
    assert tx.hold_until() == 0.003
    assert not tx.ready(0.001) and not tx.ready(0.0029999)
    assert tx.ready(0.003)
    tx.start(b"b", 0.003)
    tx.expire(0.00556)  # a retransmission does not move the gap
    assert tx.hold_until() == 0.006


def test_pacing_after_abandon() -> None:
    tx = EcpTransmitter(subtype=1, ack_timeout=0.001, max_retries=1, min_gap=0.01)
    tx.start(b"a", 0.0)
    drive_until_done(tx)
    assert tx.state is TxState.IDLE and not tx.ready(0.002) and tx.ready(0.01)


def test_reset_drops_what_is_in_flight_and_keeps_counting() -> None:
    tx = EcpTransmitter(subtype=1, ack_timeout=0.5, max_retries=3, first_seq=5)
    assert tx.reset() is None and tx.seq == 5  # idle: nothing to drop, nothing skipped
    tx.start(b"a", 0.0)
    assert tx.reset() == b"a"
    assert (tx.state, tx.deadline, tx.ulpdu, tx.seq) == (TxState.IDLE, None, None, 6)
    assert tx.expire(0.5) == (None, None) and tx.ack(5) is None
    assert tx.start(b"b", 1.0).seq == 6  # never the number the peer saw last (ecp.md §4.3)


# --------------------------------------------------------------------------- EcpReceiver


def request(seq: int, ulpdu: bytes | VdpPdu = b"vdp") -> Ecpdu:
    return Ecpdu(EcpOp.REQUEST, 1, seq, ulpdu)


def test_lldpad_ecp22_test_2_same_sequence_three_times_one_delivery() -> None:
    rx = EcpReceiver()
    assert [rx.receive(request(0x1224)) for _ in range(3)] == [True, False, False]
    assert (rx.received, rx.delivered, rx.duplicates) == (3, 1, 2)


def test_lldpad_ecp22_test_3_three_sequences_three_deliveries() -> None:
    rx = EcpReceiver()
    assert [rx.receive(request(s)) for s in (0x1224, 0x1225, 0x1226)] == [True, True, True]
    assert rx.delivered == 3 and rx.last_seq == 0x1226


@pytest.mark.parametrize("first", [0, 1, 0x1224, 0xFFFF])
def test_first_request_is_accepted_whatever_its_number(first: int) -> None:
    assert EcpReceiver().receive(request(first))


def test_only_the_immediately_preceding_number_is_a_duplicate() -> None:
    """No window (ecp.md §4.2): an older or a much newer number is delivered as new."""
    rx = EcpReceiver()
    assert [rx.receive(request(s)) for s in (5, 6, 5, 5, 900, 6)] == [True, True, True, False, True, True]


def test_same_number_different_content_is_a_restarted_peer() -> None:
    """ecp.md §4.3, vdp-deassoc-unknown.pcap: the restarted lldpad bridge's first ECPDU has sequence 1,
    the number the station last saw from the previous instance; lldpad's station dropped it (frame 4:
    acknowledged, never answered). We deliver it when it comes more than the repeat window after the
    last copy (a restarted peer needs longer than that); a quick repeat is a duplicate, whatever its
    content (the standard's rule)."""
    old = decode_frame(capture_frame("vdp-assoc-deassoc.pcap", 3).data).pdu  # a bridge's REQ 1 (ASSOC answer)
    new = decode_frame(capture_frame("vdp-deassoc-unknown.pcap", 3).data).pdu  # the new bridge's REQ 1
    assert isinstance(old, Ecpdu) and isinstance(new, Ecpdu) and old.seq == new.seq == 1
    rx = EcpReceiver(repeat_window=1.0)
    assert rx.receive(old, 0.0)
    assert not rx.receive(new, 0.5)  # within the window: a duplicate, although its content differs
    assert rx.receive(new, 3.0)  # lldpad: dropped as a duplicate
    assert not rx.receive(new, 3.003)  # its retransmission is a duplicate
    assert (rx.delivered, rx.duplicates, rx.restarts_seen) == (2, 2, 1)


def test_receiver_reset_forgets_the_last_number() -> None:
    rx = EcpReceiver()
    assert rx.receive(request(3))
    rx.reset()
    assert rx.last_seq is None
    assert rx.receive(request(3))  # the first after (re)start


# --------------------------------------------------------------------------- through ports


def ecp_frame(word: int, seq: int, payload: bytes = b"", src: bytes = BRIDGE_MAC) -> bytes:
    return NEAREST_CUSTOMER_BRIDGE + src + ETH_ECP + struct.pack("!HH", word, seq) + payload


#: the VDP payload (after the ECP header) of a captured bridge answer: ASSOC of U1, status 0x40
VDP_ANSWER = capture_frame("vdp-assoc-deassoc.pcap", 3).data[18:]


def negotiated_station(*, pad: bool = True) -> StationPort:
    """A station port that has the lldpad bridge's converged TLV (evb-rr-granted.pcap frame 9)."""
    port = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION), pad=pad), now=0.0)
    port.receive_frame(capture_frame("evb-rr-granted.pcap", 9).data, 0.0)
    assert port.negotiated
    port.frames_to_send()
    drain(port)
    return port


def drain(port: Port) -> list[Event]:
    events = []
    while (ev := port.next_event()) is not None:
        events.append(ev)
    return events


def acks(frames: list[bytes]) -> list[bytes]:
    """The 4 header octets of the ECP acknowledgements among ``frames``."""
    return [f[14:18] for f in frames if f[12:14] == ETH_ECP and f[14] & 0x0C == 0x04]


@pytest.mark.parametrize("pad", [True, False], ids=["padded", "lldpad-18-octets"])
@pytest.mark.parametrize("subtype", [1, 2])
@pytest.mark.parametrize("seq", [0, 1, 0x1224, 0xFFFF])
def test_every_request_gets_an_ack(pad: bool, subtype: int, seq: int) -> None:
    """ecp.md §1.2, §5: op 1, same version, subtype and sequence number, to 01-80-C2-00-00-00."""
    port = negotiated_station(pad=pad)
    payload = VDP_ANSWER if subtype == 1 else b"pecsp payload"
    port.receive_frame(ecp_frame(0x1000 | subtype, seq, payload), 1.0)
    (frame,) = port.frames_to_send()
    head = struct.pack("!HH", 0x1400 | subtype, seq)
    assert frame[:18] == NEAREST_CUSTOMER_BRIDGE + STATION_MAC + ETH_ECP + head
    assert frame[18:] == bytes(42 if pad else 0)  # lldpad sends 18 octets; we pad to 60 by default
    assert decode_frame(frame).pdu == Ecpdu(EcpOp.ACK, subtype, seq)
    assert port.counters.ecp_acks_sent == 1 and port.counters.dropped == 0


def test_lldpad_ecp22_test_2_through_a_port() -> None:
    port = negotiated_station()
    for _ in range(3):
        port.receive_frame(ecp_frame(0x1001, 0x1224, VDP_ANSWER), 1.0)
    assert acks(port.frames_to_send()) == [bytes.fromhex("14011224")] * 3
    assert (port.ecp_rx.delivered, port.ecp_rx.duplicates) == (1, 2)


def test_lldpad_ecp22_test_3_through_a_port() -> None:
    port = negotiated_station()
    for seq in (0x1224, 0x1225, 0x1226):
        port.receive_frame(ecp_frame(0x1001, seq, VDP_ANSWER), 1.0)
    assert acks(port.frames_to_send()) == [bytes.fromhex(h) for h in ("14011224", "14011225", "14011226")]
    assert port.ecp_rx.delivered == 3


@pytest.mark.parametrize(
    ("test", "word"),
    [(4, 0xF001), (5, 0x100F)],
    ids=["lldpad-ecp22-4-version-F", "lldpad-ecp22-5-subtype-00F"],
)
def test_bad_version_or_subtype_is_not_acknowledged_then_a_valid_one_is(test: int, word: int) -> None:
    port = negotiated_station()
    port.receive_frame(ecp_frame(word, 0x1224, VDP_ANSWER), 1.0)
    assert port.frames_to_send() == []
    (ev,) = drain(port)
    assert isinstance(ev, FrameDropped) and ev.pdu == "ecpdu" and ev.offset == 14
    assert port.counters.dropped == 1 and port.ecp_rx.received == 0
    port.receive_frame(ecp_frame(0x1001, 0x1224, VDP_ANSWER), 1.1)
    assert acks(port.frames_to_send()) == [bytes.fromhex("14011224")]
    assert port.ecp_rx.delivered == 1


@pytest.mark.parametrize("op", [2, 3])
def test_reserved_operations_are_dropped(op: int) -> None:
    port = negotiated_station()
    port.receive_frame(ecp_frame(0x1001 | op << 10, 7, b"\x01\x02"), 1.0)
    assert port.frames_to_send() == []
    assert [(e.pdu, e.field) for e in drain(port) if isinstance(e, FrameDropped)] == [("ecpdu", "op")]


def test_pecsp_is_acknowledged_and_discarded() -> None:
    port = negotiated_station()
    for seq in (1, 1, 2):
        port.receive_frame(ecp_frame(0x1002, seq, b"\x99" * 20), 1.0)
    assert acks(port.frames_to_send()) == [bytes.fromhex(h) for h in ("14020001", "14020001", "14020002")]
    assert port.counters.ecp_pecsp == 2 and port.counters.dropped == 0
    assert drain(port) == []  # nothing reaches VDP


def test_ecp_is_ignored_before_evb_is_negotiated() -> None:
    port = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION)), now=0.0)
    port.receive_frame(ecp_frame(0x1001, 1, VDP_ANSWER), 0.0)
    assert port.frames_to_send() == [] and port.counters.ignored == 1 and port.ecp_rx.received == 0


def test_restarted_peer_trap_through_a_port() -> None:
    """vdp-deassoc-unknown.pcap frames 3-4, with the previous bridge's REQ 1 seen before (an lldpad
    restart takes seconds: 3 s here); the same frame 0.5 s after the old one is a duplicate."""
    port = negotiated_station()
    port.receive_frame(capture_frame("vdp-assoc-deassoc.pcap", 3).data, 1.0)
    port.receive_frame(capture_frame("vdp-deassoc-unknown.pcap", 3).data, 1.5)
    port.receive_frame(capture_frame("vdp-deassoc-unknown.pcap", 3).data, 4.5)
    assert acks(port.frames_to_send()) == [bytes.fromhex("14010001")] * 3
    assert port.ecp_rx.delivered == 2  # lldpad: 1


HEADER = NEAREST_CUSTOMER_BRIDGE + BRIDGE_MAC + ETH_ECP
ASSOC_REQUEST = capture_frame("vdp-assoc-deassoc.pcap", 1).data  # station REQ 1, MGRID + ASSOC TLVs
LLDP_EVB = capture_frame("evb-rr-granted.pcap", 9).data

MALFORMED = {
    "ecp header 1 octet": HEADER + b"\x10",
    "ecp header 3 octets": HEADER + b"\x10\x01\x00",
    "ethernet header cut": HEADER[:9],
    "vdp tlv runs past the frame": ASSOC_REQUEST[:18] + bytes.fromhex("0a20") + ASSOC_REQUEST[20:],
    "vdp tlv cut short": ASSOC_REQUEST[:40],
    "garbage after vdp": HEADER + bytes.fromhex("10010009") + bytes(range(1, 40)),
    "garbage after ack": HEADER + bytes.fromhex("14010001") + b"\x01",
    "lldpdu cut": LLDP_EVB[:30],
    "lldp tlv past the frame": LLDP_EVB[:14] + bytes.fromhex("0207"),
    "evb tlv length 8": LLDP_EVB.replace(bytes.fromhex("fe090080c20d"), bytes.fromhex("fe080080c20d")),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_frames_become_frame_dropped(case: str) -> None:
    port = negotiated_station()
    port.receive_frame(MALFORMED[case], 1.0)  # never raises
    events = drain(port)
    dropped = [e for e in events if isinstance(e, FrameDropped)]
    assert len(dropped) == 1 and port.counters.dropped == 1, dropped
    assert port.counters.frames_in == 2
    # a bad EVB TLV is discarded (802.1AB), the rest of the LLDPDU is used: the peer sends no EVB TLV
    assert port.negotiated == (case != "evb tlv length 8")
    if case == "evb tlv length 8":
        assert (dropped[0].pdu, dropped[0].field) == ("lldpdu", "evb.length")
        assert EvbLost(reason="peer stopped sending the EVB TLV") in events


@pytest.mark.parametrize("case", ["vdp tlv runs past the frame", "vdp tlv cut short", "garbage after vdp"])
def test_a_request_whose_ulpdu_does_not_decode_is_still_acknowledged(case: str) -> None:
    """ECP checks only version and subtype (ecp.md §4.1, §5 item 3); the ULP drops what it cannot read,
    as lldpad does with the hand-made requests of vdp-bridge-errors-injected.pcap (ECP ACK, no answer)."""
    port = negotiated_station()
    data = MALFORMED[case]
    port.receive_frame(data, 1.0)
    assert acks(port.frames_to_send()) == [bytes([0x14, 0x01]) + data[16:18]]
    assert port.ecp_rx.delivered == 0


@settings(DETERMINISTIC, max_examples=300)
@given(
    kind=strat.sampled_from(["8940", "88cc", "88b7", "8100"]),
    head=strat.sampled_from([b"", b"\x10\x01", b"\x10\x02", b"\x14\x01", b"\xf0\x01", b"\x10\x0f"]),
    body=strat.binary(max_size=80),
)
def test_random_frames_never_raise(kind: str, head: bytes, body: bytes) -> None:
    port = negotiated_station()
    payload = head + body
    port.receive_frame(NEAREST_CUSTOMER_BRIDGE + BRIDGE_MAC + bytes.fromhex(kind) + payload, 1.0)
    port.handle_timer(1.0)
    sent = port.frames_to_send()
    for frame in sent:
        decode_frame(frame)  # what we send always decodes
    events = drain(port)
    assert port.counters.dropped == sum(isinstance(e, FrameDropped) for e in events)
    # a request of version 1, subtype 1 or 2 is acknowledged once, whatever follows its header
    if kind == "8940" and len(payload) >= 4 and payload[:2] in (b"\x10\x01", b"\x10\x02"):
        assert acks(sent) == [bytes([0x14, payload[1]]) + payload[2:4]]
    elif kind != "8100":  # (a tagged frame may hide a valid request after the tag)
        assert acks(sent) == []


# --------------------------------------------------------------------------- ECP over a link


def vsi(n: int = 1) -> Vsi:
    return Vsi(
        manager_id=LABMGR,
        type_id=5,
        type_version=4,
        vsiid=U1 if n == 1 else uuid.UUID(int=0x5A0F1C2E_0000_4D3C_8E21_0A0000000000 + n).bytes,
        filter_format=FilterFormat.MAC_VID,
        entries=(FilterEntry(vid=10, mac=bytes((2, 0, 0, 0, 1, n & 0xFF))),),
    )


@dataclass(slots=True)
class Wire:
    """A station and a bridge port over a Network, with every ECP frame seen on the link."""

    net: Network
    st: StationPort
    br: BridgePort
    ecp: list[tuple[float, str, Ecpdu]] = field(default_factory=list)
    events: list[tuple[float, str, Event]] = field(default_factory=list)
    lose_acks_from: set[str] = field(default_factory=set)

    def side(self, port: Port) -> str:
        return "st" if port is self.st else "br"

    def requests(self, side: str) -> list[int]:
        return [p.seq for _, s, p in self.ecp if s == side and p.op is EcpOp.REQUEST]

    def acked(self, side: str) -> list[int]:
        return [p.seq for _, s, p in self.ecp if s == side and p.op is EcpOp.ACK]


def wire_pair() -> Wire:
    net = Network(rng=random.Random(5))
    st = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION)), now=0.0)
    br = BridgePort(PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE)), now=0.0)
    w = Wire(net, st, br)
    link = net.connect(st, br)

    def tap(port: Port, data: bytes) -> bool:
        pdu = decode_frame(data).pdu
        if isinstance(pdu, Ecpdu):
            w.ecp.append((net.now, w.side(port), pdu))
            return not (pdu.op is EcpOp.ACK and w.side(port) in w.lose_acks_from)
        return True

    link.drop = tap
    net.on_event = lambda port, ev: w.events.append((net.now, w.side(port), ev))
    net.run_until(1.0)
    assert st.negotiated and br.negotiated
    return w


def test_lldpad_ecp22_test_30_link_down_and_up_while_ecp_runs() -> None:
    w = wire_pair()
    w.st.associate(vsi(), now=1.0)
    w.net.poke(w.st)
    w.net.run_until(2.0)
    assert (w.requests("st"), w.acked("br"), w.requests("br"), w.acked("st")) == ([1], [1], [1], [1])
    assert [s for _, s, e in w.events if isinstance(e, VsiAssociated)] == ["br", "st"]
    for port in (w.st, w.br):
        port.set_link(False, 2.0)
        w.net.poke(port)
    for port in (w.st, w.br):  # ECP restarts: the receiver forgets the last number
        assert port.ecp_rx.last_seq is None and port.ecp_tx.state is TxState.IDLE
    assert [s for _, s, e in w.events if isinstance(e, EvbLost)] == ["st", "br"]
    w.net.run_until(5.0)
    assert [t for t, _, _ in w.ecp if t >= 2.0] == []
    for port in (w.st, w.br):
        port.set_link(True, 5.0)
        w.net.poke(port)
    w.net.run_until(8.0)
    # after EVB is back the station re-sends its VSI; both sequence spaces go on counting
    assert (w.requests("st"), w.acked("br"), w.requests("br"), w.acked("st")) == ([1, 2], [1, 2], [1, 2], [1, 2])
    assert [(s, t > 5.0) for t, s, e in w.events if isinstance(e, VsiAssociated)][-2:] == [("br", True), ("st", True)]
    assert w.st.ecp_tx.retransmissions == w.br.ecp_tx.retransmissions == 0


def test_link_down_with_an_ecpdu_in_flight_drops_it_silently() -> None:
    w = wire_pair()
    w.lose_acks_from.add("br")
    w.st.associate(vsi(), now=1.0)
    w.net.poke(w.st)
    w.net.run_until(1.001)  # REQ 1 sent and received, its ack lost, ack timer (2.56 ms) not yet run out
    assert w.st.ecp_tx.state is TxState.WAIT_ACK and w.st.ecp_tx.seq == 1
    w.st.set_link(False, 1.001)
    w.net.poke(w.st)
    tx = w.st.ecp_tx
    assert tx.state is TxState.IDLE and tx.seq == 2
    assert not [e for _, _, e in w.events if isinstance(e, UlpduAbandoned)]
    w.lose_acks_from.clear()
    w.st.set_link(True, 2.0)
    w.net.poke(w.st)
    w.net.run_until(4.0)
    assert w.requests("st")[-1] == 2  # the VSI again, under a new number


# --------------------------------------------------------------------------- the reliable path


def ecp_of(data: bytes) -> Ecpdu | None:
    pdu = decode_frame(data).pdu
    return pdu if isinstance(pdu, Ecpdu) else None


class ReliablePath(RuleBasedStateMachine):
    """Station and bridge over a Network whose hook holds every ECP frame; the rules deliver, drop,
    duplicate and reorder them, let time pass, and associate VSIs.

    Property (house style §9): every ECP request (a VDP ULPDU, either direction) is delivered to the
    peer at most once, in the order sent, and once the sender has moved on it was delivered or
    reported abandoned (``UlpduAbandoned``). ECP has no receive window (ecp.md §4.2: only the
    immediately preceding number is a duplicate), so the reorderings are those ECP tolerates: copies
    of one request among themselves and acknowledgements anywhere; a request never overtakes an
    earlier request of another number (on a point-to-point link nothing does). Nor does a link keep
    a frame for long: one not delivered within ``MAX_LATENCY`` is lost (the receiver takes an
    identical copy arriving more than 2T + 1 s after the previous one for a restarted peer's new
    ULPDU, evb/ecp/receive.py).
    """

    MAX_LATENCY = 0.5

    def __init__(self) -> None:
        super().__init__()
        self.net = Network(rng=random.Random(3))
        self.st = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION)), now=0.0)
        self.br = BridgePort(PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE)), now=0.0)
        self.ports = {"st": self.st, "br": self.br}
        #: (sent at, frame, its ECPDU) sent by the side, not yet delivered
        self.held: dict[str, list[tuple[float, bytes, Ecpdu]]] = {"st": [], "br": []}
        self.sent: dict[str, list[tuple[int, bytes]]] = {"st": [], "br": []}  #: new requests, in order
        self.delivered: dict[str, list[int]] = {"st": [], "br": []}  #: the side's requests the peer took
        self.abandoned: dict[str, list[UlpduAbandoned]] = {"st": [], "br": []}
        self.dropped: list[FrameDropped] = []
        self.vsis = 0
        link = self.net.connect(self.st, self.br)
        link.drop = self._hook
        self.net.on_event = self._event
        self.net.run_until(1.0)  # LLDP passes untouched: EVB negotiates
        assert self.st.negotiated and self.br.negotiated

    def _side(self, port: Port) -> str:
        return "st" if port is self.st else "br"

    def _hook(self, port: Port, data: bytes) -> bool:
        pdu = ecp_of(data)
        if pdu is None:
            return True
        side = self._side(port)
        self.held[side].append((self.net.now, data, pdu))
        if pdu.op is EcpOp.REQUEST and (not self.sent[side] or self.sent[side][-1][1] != data):
            assert not self.sent[side] or self.sent[side][-1][0] != pdu.seq  # a new ULPDU, a new number
            self.sent[side].append((pdu.seq, data))
        return False

    def _event(self, port: Port, ev: Event) -> None:
        if isinstance(ev, UlpduAbandoned):
            self.abandoned[self._side(port)].append(ev)
        elif isinstance(ev, FrameDropped):
            self.dropped.append(ev)

    def _eligible(self, side: str) -> list[int]:
        oldest = self.net.now - self.MAX_LATENCY
        held = self.held[side] = [h for h in self.held[side] if h[0] >= oldest]
        first = next((p.seq for _, _, p in held if p.op is EcpOp.REQUEST), None)
        return [i for i, (_, _, p) in enumerate(held) if p.op is EcpOp.ACK or p.seq == first]

    def _deliver(self, side: str, frame: tuple[float, bytes, Ecpdu]) -> None:
        _, data, pdu = frame
        peer = self.ports["br" if side == "st" else "st"]
        before = peer.ecp_rx.delivered
        peer.receive_frame(data, self.net.now)
        if peer.ecp_rx.delivered > before:
            self.delivered[side].append(pdu.seq)
            assert (pdu.seq, data) in self.sent[side]  # what arrives is what was sent
        self.net.poke(peer)

    @rule(side=strat.sampled_from(["st", "br"]), pick=strat.integers(0, 63))
    def deliver(self, side: str, pick: int) -> None:
        eligible = self._eligible(side)
        if eligible:
            self._deliver(side, self.held[side].pop(eligible[pick % len(eligible)]))

    @rule(side=strat.sampled_from(["st", "br"]), pick=strat.integers(0, 63))
    def duplicate(self, side: str, pick: int) -> None:
        eligible = self._eligible(side)
        if eligible:
            self._deliver(side, self.held[side][eligible[pick % len(eligible)]])

    @rule(side=strat.sampled_from(["st", "br"]), pick=strat.integers(0, 63))
    def drop(self, side: str, pick: int) -> None:
        if self.held[side]:
            self.held[side].pop(pick % len(self.held[side]))

    @rule(dt=strat.sampled_from([0.0005, 0.00256, 0.003, 0.006, 0.011]))
    def wait(self, dt: float) -> None:
        self.net.run_until(self.net.now + dt)

    @rule()
    def jump(self) -> None:
        """To the next thing either port or the link has to do (keep-alive, LLDP, a retransmission)."""
        t = self.net.next_time()
        if t is not None:
            self.net.run_until(t)

    @rule()
    def quiet_then_keepalive(self) -> None:
        """A good link for a while: everything settles, then time runs to the keep-alives (10.49 s)."""
        self._flush()
        self.net.run_until(self.net.now + 10.5)

    @rule(n=strat.integers(1, 3))
    def associate(self, n: int) -> None:
        for _ in range(n):
            if self.vsis < 8:
                self.vsis += 1
                self.st.associate(vsi(self.vsis + 1), now=self.net.now)
        self.net.poke(self.st)

    @invariant()
    def delivered_once_in_order_or_abandoned(self) -> None:
        for side, port in self.ports.items():
            order = [seq for seq, _ in self.sent[side]]
            got = self.delivered[side]
            assert len(got) == len(set(got)), (side, got)
            assert [order.index(s) for s in got] == sorted(order.index(s) for s in got), (side, got)
            gone = {ev.seq for ev in self.abandoned[side]}
            outstanding = port.ecp_tx.seq if port.ecp_tx.state is TxState.WAIT_ACK else None
            for seq in order:
                assert seq in got or seq in gone or seq == outstanding, (side, seq)
            assert all(ev.tries == port.operating.r + 1 and ev.subtype == 1 for ev in self.abandoned[side])
        assert self.dropped == []

    def _flush(self, seconds: float = 0.1) -> None:
        """A lossless, in-order link for ``seconds``, and then until ECP is idle on both sides."""
        until = self.net.now + seconds
        for _ in range(10_000):
            moved = False
            for side in ("st", "br"):
                eligible = self._eligible(side)
                if eligible:
                    self._deliver(side, self.held[side].pop(eligible[0]))
                    moved = True
            if not moved:
                if self.net.now >= until and all(p.ecp_tx.state is TxState.IDLE for p in self.ports.values()):
                    return
                self.net.run_until(self.net.now + 0.001)
        raise AssertionError("ECP does not settle on a good link")

    def teardown(self) -> None:
        self._flush()
        self.delivered_once_in_order_or_abandoned()
        for side, port in self.ports.items():
            assert port.ecp_tx.state is TxState.IDLE, side
            gone = {ev.seq for ev in self.abandoned[side]}
            assert all(seq in self.delivered[side] or seq in gone for seq, _ in self.sent[side])


TestReliablePath = ReliablePath.TestCase
TestReliablePath.settings = settings(DETERMINISTIC, max_examples=100, stateful_step_count=50)


@pytest.mark.parametrize(
    ("tag", "taken"),
    [(b"", True), (b"\x81\x00\xe0\x00", True), (b"\x81\x00\x00\x64", False), (b"\x88\xa8\x00\x64", False)],
    ids=["untagged", "priority-tagged", "vlan-100", "s-tag-100"],
)
def test_tagged_lldp_and_ecp_belong_to_another_vlan_or_s_channel(tag: bytes, taken: bool) -> None:
    """lldp-evb-cdcp.md §1.1: the port's LLDP/ECP is untagged (a priority tag, VID 0, counts as
    untagged); a C-tag with a VID or an S-tag carries another VLAN's or S-channel's frames: ignored."""
    lldp = capture_frame("evb-rr-granted.pcap", 9).data
    port = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION)), now=0.0)
    port.receive_frame(lldp[:12] + tag + lldp[12:], 0.0)
    assert port.negotiated is taken
    port = negotiated_station()
    port.receive_frame(ecp_frame(0x1001, 9, VDP_ANSWER)[:12] + tag + ecp_frame(0x1001, 9, VDP_ANSWER)[12:], 1.0)
    assert (acks(port.frames_to_send()) == [bytes.fromhex("14010009")]) is taken
    assert port.counters.ignored == (0 if taken else 1)


def test_faults_make_a_port_misbehave_on_purpose() -> None:
    """``PortConfig.faults`` (``--fault``): only for showing that the conformance suite notices."""
    with pytest.raises(LocalProtocolError, match="unknown fault"):
        PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION), faults=frozenset({"typo"}))
    config = PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION), faults=frozenset({"no-ecp-ack"}))
    port = StationPort(config, now=0.0)
    port.receive_frame(capture_frame("evb-rr-granted.pcap", 9).data, 0.0)
    port.frames_to_send()
    port.receive_frame(ecp_frame(0x1001, 9, VDP_ANSWER), 1.0)
    assert acks(port.frames_to_send()) == [] and port.ecp_rx.received == 1
