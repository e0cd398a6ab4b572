"""Round-trip properties of every codec: ``decode(encode(x)) == x`` and ``encode(decode(b)) == b``.

Values come from ``tests/strategies.py`` (every TLV and PDU type, one parameter each, so no
type hides behind a ``one_of``); bytes are the encodings of those values and every frame of
the reference captures. VDP has no End TLV requirement, ECP no length field, so the byte
round trip of a PDU holds up to the zero padding its decoder skipped (``Frame.pad`` keeps it).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evb.ecp.wire import (
    DRAFT_PDU,
    DraftEcpdu,
    Ecpdu,
    EcpOp,
    decode_draft_ecpdu_prefix,
    decode_ecpdu,
    encode_draft_ecpdu,
    encode_ecpdu,
)
from evb.errors import DecodeError
from evb.ethernet import ETH_P_ECP, ETH_P_LLDP, decode_ethernet_header
from evb.frame import decode_frame, encode_frame
from evb.lldp.wire import ChassisId, Lldpdu, PortId, decode_evb_tlv, decode_lldpdu, encode_lldpdu
from evb.tlv import check_zero_padding
from evb.vdp.wire import (
    VdpPdu,
    VdpStatus,
    VsiTlv,
    decode_vdpdu,
    decode_vsi_tlv,
    encode_filter_entries,
    encode_vdpdu,
)
from tests import strategies as s
from tests.conftest import capture_frames
from tests.fuzzing import has_invalid

_BASE_LLDPDU = Lldpdu(chassis_id=ChassisId(4, bytes(6)), port_id=PortId(5, b"eth0"), ttl=120)


def decode_draft_ecpdu(data: bytes, *, strict: bool = True) -> DraftEcpdu:
    pdu, end = decode_draft_ecpdu_prefix(data, strict=strict)
    check_zero_padding(data, end, pdu=DRAFT_PDU)
    return pdu


# --------------------------------------------------------------------------- VDP


@s.by_kind(s.VDP_TLV_KINDS)
@s.DETERMINISTIC
@given(data=st.data())
def test_vdp_tlv_round_trip(strategy: Any, data: st.DataObject) -> None:
    tlv = data.draw(strategy)
    wire = tlv.encode()
    assert ((wire[0] << 8) | wire[1]) & 0x1FF == len(wire) - 2
    for strict in (True, False):
        decoded = decode_vdpdu(wire, strict=strict)
        assert decoded == VdpPdu((tlv,))
        assert encode_vdpdu(decoded) == wire


@s.DETERMINISTIC
@given(s.vsi_tlvs())
def test_vsi_tlv_round_trip_alone(tlv: VsiTlv) -> None:
    wire = tlv.encode()
    assert decode_vsi_tlv(wire) == tlv
    assert len(wire) == 27 + len(tlv.entries) * s.ENTRY_SIZE[tlv.filter_format]
    body = encode_filter_entries(tlv.filter_format, tlv.entries)
    assert wire.endswith(body)
    size = s.ENTRY_SIZE[tlv.filter_format]
    for i, entry in enumerate(tlv.entries):  # the PS/PCP/VID word ends each entry
        assert body[(i + 1) * size - 2 : (i + 1) * size] == entry.qos_word.to_bytes(2, "big")


@pytest.mark.parametrize("octet", range(256))
def test_status_octet_round_trip(octet: int) -> None:
    status = VdpStatus.from_octet(octet)
    assert status.octet == octet
    assert status == VdpStatus(
        response=bool(octet & 0x40),
        s_keep=bool(octet & 0x20),
        m_hard=bool(octet & 0x10),
        code=octet & 0x0F,
        reserved=bool(octet & 0x80),
    )


@s.DETERMINISTIC
@given(s.vdp_pdus, st.booleans(), st.integers(0, 40))
def test_vdpdu_round_trip(pdu: VdpPdu, end_tlv: bool, pad: int) -> None:
    wire = encode_vdpdu(pdu, end_tlv=end_tlv)
    assert decode_vdpdu(wire) == pdu
    assert decode_vdpdu(wire + bytes(pad), strict=False) == pdu
    assert encode_vdpdu(decode_vdpdu(wire)) + (b"\0\0" if end_tlv else b"") == wire


# --------------------------------------------------------------------------- ECP


@s.by_kind(s.ECPDU_KINDS)
@s.DETERMINISTIC
@given(data=st.data())
def test_ecpdu_round_trip(strategy: Any, data: st.DataObject) -> None:
    pdu: Ecpdu = data.draw(strategy)
    wire = encode_ecpdu(pdu)
    for strict in (True, False):
        assert decode_ecpdu(wire, strict=strict) == pdu
    assert encode_ecpdu(decode_ecpdu(wire)) == wire
    if isinstance(pdu.ulpdu, VdpPdu) or pdu.op == EcpOp.ACK:  # End TLV and padding are skipped
        assert decode_ecpdu(encode_ecpdu(pdu, end_tlv=True) + bytes(10)) == pdu


@s.DETERMINISTIC
@given(s.draft_ecpdus, st.booleans())
def test_draft_ecpdu_round_trip(pdu: DraftEcpdu, end_tlv: bool) -> None:
    wire = encode_draft_ecpdu(pdu, end_tlv=end_tlv)
    for strict in (True, False):
        assert decode_draft_ecpdu(wire, strict=strict) == pdu
    again = encode_draft_ecpdu(decode_draft_ecpdu(wire), end_tlv=end_tlv)
    assert again == wire


# --------------------------------------------------------------------------- LLDP


@s.by_kind(s.LLDP_TLV_KINDS)
@s.DETERMINISTIC
@given(data=st.data())
def test_lldp_tlv_round_trip(strategy: Any, data: st.DataObject) -> None:
    tlv = data.draw(strategy)
    pdu = Lldpdu(chassis_id=_BASE_LLDPDU.chassis_id, port_id=_BASE_LLDPDU.port_id, ttl=120, tlvs=(tlv,))
    wire = encode_lldpdu(pdu)
    assert wire.endswith(tlv.encode() + b"\0\0")
    for strict in (True, False):
        assert decode_lldpdu(wire, strict=strict) == pdu
    assert encode_lldpdu(decode_lldpdu(wire)) == wire


@s.DETERMINISTIC
@given(s.evb_tlvs)
def test_evb_tlv_info_round_trip(tlv: Any) -> None:
    assert len(tlv.info) == 5
    assert decode_evb_tlv(tlv.info) == tlv


@s.DETERMINISTIC
@given(s.lldpdus, st.integers(0, 40))
def test_lldpdu_round_trip(pdu: Lldpdu, pad: int) -> None:
    wire = encode_lldpdu(pdu)
    for strict in (True, False):
        assert decode_lldpdu(wire, strict=strict) == pdu
    assert decode_lldpdu(wire + bytes(pad)) == pdu
    assert encode_lldpdu(decode_lldpdu(wire)) == wire


# --------------------------------------------------------------------------- frames


@s.DETERMINISTIC
@given(s.frames())
def test_frame_round_trip(frame: Any) -> None:
    wire = encode_frame(frame)
    for strict in (True, False):
        assert decode_frame(wire, strict=strict) == frame
    assert encode_frame(decode_frame(wire)) == wire


def _capture_ids() -> list[str]:
    return [f"{name}#{number}" for name, number, _data in capture_frames()]


@pytest.mark.parametrize("data", [d for _n, _i, d in capture_frames()], ids=_capture_ids())
def test_capture_frame_round_trip(data: bytes) -> None:
    frame = decode_frame(data)
    assert encode_frame(frame) == data
    try:
        strict = decode_frame(data, strict=True)
    except DecodeError:
        assert has_invalid(frame.pdu)  # errors file, frame 29: a count that disagrees with the length
    else:
        assert strict == frame
    # the PDU on its own: its codec round-trips the payload less the padding the frame counted
    head = decode_ethernet_header(data)
    payload = data[head.length :]
    if head.ethertype == ETH_P_ECP:
        assert encode_ecpdu(decode_ecpdu(payload, strict=False)) + bytes(frame.pad) == payload
        if not has_invalid(frame.pdu):  # an InvalidTlv's offset counts from the start of the buffer
            assert decode_ecpdu(payload, strict=False) == frame.pdu
    else:
        assert head.ethertype == ETH_P_LLDP
        assert encode_lldpdu(decode_lldpdu(payload)) + bytes(frame.pad) == payload
        assert decode_lldpdu(payload) == frame.pdu
