"""Regressions found with the live lldpad lab (``tests/integration``), pinned on the virtual clock.

* A restarted lldpad station repeats, as its first ECPDU (sequence 1), the very request it sent
  last before the restart (ecp.md §4.3): same number, same content. Our receiver took it for a
  retransmission and the bridge never answered. A retransmission follows the previous copy
  within an ack timeout; an identical copy more than ``repeat_window`` later is delivered.
* ``vsi.bulk`` gave the port one command at a time, so the first VSI left alone in its own
  ECPDU and only the others were packed. ``StationPort.request_many`` queues them all first.
"""

from __future__ import annotations

import random
import uuid

import pytest

from evb.ecp.receive import EcpReceiver
from evb.ecp.wire import Ecpdu, EcpOp
from evb.errors import LocalProtocolError
from evb.ethernet import NEAREST_CUSTOMER_BRIDGE
from evb.frame import build_frame, decode_frame
from evb.lldp.negotiate import EvbConfig, Role
from evb.port import BridgePort, Port, PortConfig, StationPort
from evb.sim import Network
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode, VdpPdu, VdpStatus, VsiidFormat, VsiManagerIdTlv, VsiTlv
from tests.helpers import BRIDGE_MAC, LABMGR, STATION_MAC, U1


def request(seq: int, ulpdu: bytes = b"vdp") -> Ecpdu:
    return Ecpdu(EcpOp.REQUEST, 1, seq, ulpdu)


# --------------------------------------------------------------------------- EcpReceiver


def test_identical_copy_after_the_window_is_a_restarted_peers_request() -> None:
    rx = EcpReceiver(repeat_window=1.0)
    assert rx.receive(request(1), 10.0)
    assert not rx.receive(request(1), 10.01)  # a retransmission, one ack timeout later
    assert rx.receive(request(1), 13.0)  # 2.99 s after the last copy: the restarted peer's first request
    assert not rx.receive(request(1), 13.01)  # ... and its retransmission
    assert (rx.delivered, rx.duplicates, rx.restarts_seen) == (2, 2, 1)


def test_window_runs_from_the_previous_copy() -> None:
    """R retransmissions one ack timeout apart stay duplicates however long the series."""
    rx = EcpReceiver(repeat_window=1.0)
    assert [rx.receive(request(7), t) for t in (0.0, 0.9, 1.8, 2.7)] == [True, False, False, False]


def test_without_time_or_window_lldpads_rule_holds() -> None:
    assert [EcpReceiver().receive(request(1), t) for t in (0.0,)] == [True]
    rx = EcpReceiver()  # no window: any identical copy is a duplicate
    assert [rx.receive(request(1), t) for t in (0.0, 100.0)] == [True, False]
    rx = EcpReceiver(repeat_window=1.0)  # no time given: the same
    assert [rx.receive(request(1)), rx.receive(request(1))] == [True, False]


# --------------------------------------------------------------------------- ports


def negotiated(seed: int = 1) -> tuple[Network, StationPort, BridgePort, list[tuple[Port, bytes]]]:
    """Our station and bridge on a lossless link, EVB negotiated; the list collects sent frames."""
    net = Network(rng=random.Random(seed))
    st = StationPort(PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION)), now=0.0)
    br = BridgePort(PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE)), now=0.0)
    link = net.connect(st, br)
    sent: list[tuple[Port, bytes]] = []

    def keep(port: Port, data: bytes) -> bool:
        sent.append((port, data))
        return True

    link.drop = keep
    net.run_until(60.0, stop=lambda: st.negotiated and br.negotiated)
    assert st.negotiated and br.negotiated
    return net, st, br, sent


def assoc_frame(seq: int) -> bytes:
    tlv = VsiTlv(
        mode=VdpMode.ASSOC,
        status=VdpStatus(),
        type_id=5,
        type_version=4,
        vsiid_format=VsiidFormat.UUID,
        vsiid=U1,
        filter_format=FilterFormat.MAC_VID,
        entries=(FilterEntry(vid=10, mac=bytes.fromhex("020000000101")),),
    )
    pdu = Ecpdu(EcpOp.REQUEST, 1, seq, VdpPdu((VsiManagerIdTlv(LABMGR), tlv)))
    return build_frame(NEAREST_CUSTOMER_BRIDGE, STATION_MAC, pdu, end_tlv=True)


def ecp_out(port: Port) -> list[Ecpdu]:
    out = []
    for data in port.frames_to_send():
        pdu = decode_frame(data).pdu
        if isinstance(pdu, Ecpdu):
            out.append(pdu)
    return out


def test_bridge_answers_a_restarted_station_repeating_its_last_request() -> None:
    """The lab's case: lldpad station sends Associate as ECP sequence 1, is killed, restarts and
    sends the same Associate as sequence 1 again, seconds later."""
    net, _st, br, _ = negotiated()
    # repeat window: 2 × ack timeout + 1 s = 2 × 10 µs × 2^8 + 1 s (R 3, RTE 8)
    assert br.ecp_rx.repeat_window == pytest.approx(2 * 0.00256 + 1.0)
    t = net.now + 1.0
    br.receive_frame(assoc_frame(1), t)
    ack, answer = ecp_out(br)  # acknowledgement, then the VDP answer
    assert (ack.op, answer.op) == (EcpOp.ACK, EcpOp.REQUEST)
    br.receive_frame(build_frame(NEAREST_CUSTOMER_BRIDGE, STATION_MAC, answer.ack()), t + 0.0001)
    br.receive_frame(assoc_frame(1), t + 0.00256)  # a retransmission: acknowledged only
    assert [p.op for p in ecp_out(br)] == [EcpOp.ACK]
    br.receive_frame(assoc_frame(1), t + 4.0)  # the restarted station
    answers = [p for p in ecp_out(br) if p.op is EcpOp.REQUEST]
    assert len(answers) == 1 and isinstance(answers[0].ulpdu, VdpPdu)
    assert answers[0].ulpdu.vsis[0].status.octet == 0x40


def vsi(i: int) -> Vsi:
    return Vsi(
        manager_id=LABMGR,
        type_id=5,
        type_version=4,
        vsiid=uuid.UUID(int=(0x5A0F << 112) | i).bytes,
        vsiid_format=VsiidFormat.UUID,
        filter_format=FilterFormat.MAC_VID,
        entries=(FilterEntry(vid=100 + i, mac=bytes((2, 0, 0, 0, 0, i))),),
    )


def station_requests(sent: list[tuple[Port, bytes]], st: StationPort) -> list[Ecpdu]:
    out = []
    for port, data in sent:
        pdu = decode_frame(data).pdu
        if port is st and isinstance(pdu, Ecpdu) and pdu.op is EcpOp.REQUEST:
            out.append(pdu)
    return out


def test_request_many_sends_one_ecpdu_for_40_vsis() -> None:
    """40 format-2 Associates: 18 + 40 × 35 = 1418 octets of VDP TLVs, one ECPDU (≤ 1493)."""
    net, st, _br, sent = negotiated()
    now = net.now
    outcomes = st.request_many([(vsi(i), VdpMode.ASSOC, "none", False) for i in range(1, 41)], now=now)
    assert outcomes == [None] * 40
    net.poke(st)
    net.run_until(now + 5.0, stop=lambda: all(r.confirmed for r in st.vdp.vsis.values()))
    (pdu,) = station_requests(sent, st)
    assert isinstance(pdu.ulpdu, VdpPdu) and len(pdu.ulpdu.vsis) == 40
    assert all(r.confirmed is VdpMode.ASSOC for r in st.vdp.vsis.values()) and len(st.vdp.vsis) == 40


def test_request_one_by_one_sends_the_first_vsi_alone() -> None:
    """Why ``request_many`` exists: the first ``request`` finds ECP idle and leaves at once."""
    net, st, _br, sent = negotiated()
    now = net.now
    for i in range(1, 11):
        st.request(vsi(i), VdpMode.ASSOC, now=now)
    net.poke(st)
    net.run_until(now + 5.0, stop=lambda: all(r.confirmed for r in st.vdp.vsis.values()))
    assert [len(p.ulpdu.vsis) for p in station_requests(sent, st) if isinstance(p.ulpdu, VdpPdu)] == [1, 9]


def test_request_many_reports_refusals_one_by_one() -> None:
    net, st, _br, sent = negotiated()
    batch = [(vsi(1), VdpMode.ASSOC, "none", False), (vsi(2), VdpMode.DEASSOC, "none", False)]
    batch.append((vsi(3), VdpMode.PREASSOC, "none", False))
    outcomes = st.request_many(batch, now=net.now)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], LocalProtocolError)  # De-Assoc of an unknown VSI
    net.poke(st)
    net.run_until(net.now + 5.0, stop=lambda: all(r.confirmed for r in st.vdp.vsis.values()))
    (pdu,) = station_requests(sent, st)
    assert isinstance(pdu.ulpdu, VdpPdu) and [t.mode for t in pdu.ulpdu.vsis] == [VdpMode.ASSOC, VdpMode.PREASSOC]
