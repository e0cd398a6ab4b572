"""ECP wire format as construct definitions: the declarative spec and the fast path's cross-check.

``evb.ecp.wire`` decodes ECPDUs with ``struct``; this module states the same headers once
more with construct 2.10 (802.1Qbg-2012 clause 43, spec ``ecp.md`` §1 and §7):

* **the spec**: the ratified header (one 16-bit word, version 4 bits, operation 2 bits,
  subtype 10 bits, then the 16-bit sequence number) and the draft-0.2 header (OUI 00-1B-3F,
  802a protocol id, subtype, mode, sequence number);
* **the cross-check**: ``reference_decode_ecpdu`` / ``reference_encode_ecpdu`` (and the
  draft twins) produce and consume the very dataclasses of ``evb.ecp.wire``, the VDP ULPDU
  going through ``evb.vdp.schema``. ``tests/test_schema.py`` asserts that both paths agree:
  the same value or the same ``DecodeError``, and the same bytes.

Slow by design and never on a hot path. As in ``evb.vdp.schema``: lengths are checked before
each parse, ``parse_at`` translates construct's errors, nothing is ``.compile()``d.
"""

from __future__ import annotations

from typing import Final

from construct import BitsInteger, BitStruct, Const, Int8ub, Int16ub, Struct

from evb.ecp.wire import (
    DRAFT_PDU,
    ECP_VERSION,
    PDU,
    DraftEcpdu,
    Ecpdu,
    EcpOp,
    EcpSubtype,
)
from evb.errors import DecodeError, EncodeError, NotEvbFrame
from evb.tlv import check_zero_padding, parse_at
from evb.vdp.schema import build, reference_decode_vdp_tlvs, reference_encode_vdpdu
from evb.vdp.wire import OUI_QBG_DRAFT, VdpPdu

#: Ratified ECPDU header (ecp.md §1.1): ``version:4 | op:2 | subtype:10``, then the sequence number.
ECP_HEADER = BitStruct(
    "version" / BitsInteger(4),
    "op" / BitsInteger(2),  # 0 request, 1 acknowledgement, 2 and 3 reserved
    "subtype" / BitsInteger(10),  # 1 VDP, 2 PECSP
    "seq" / BitsInteger(16),
)

#: Draft-0.2 ECPDU header (ecp.md §7), the payload of EtherType 0x88B7.
DRAFT_ECP_HEADER = Struct(
    "oui" / Const(OUI_QBG_DRAFT),
    "protocol_id" / Int16ub,  # 802a protocol id, 0
    "subtype" / Int8ub,  # ECP subtype, 0
    "mode" / Int8ub,  # 0 request, 1 acknowledgement
    "seq" / Int16ub,
)

ECP_HEADER_LEN: Final = int(ECP_HEADER.sizeof())  #: 4
DRAFT_ECP_HEADER_LEN: Final = int(DRAFT_ECP_HEADER.sizeof())  #: 9
_SUBTYPES: Final = {s.value: s for s in EcpSubtype}


def reference_decode_ecpdu(data: bytes, *, strict: bool = True) -> Ecpdu:
    """Reference twin of ``evb.ecp.wire.decode_ecpdu`` (the payload after EtherType 0x8940).

    A version-1 VDP request carries a decoded ``VdpPdu``; an acknowledgement carries nothing
    (only zero padding may follow its header); everything else keeps its ULPDU as bytes.
    """
    if len(data) < ECP_HEADER_LEN:
        raise DecodeError(f"{len(data)} octets, the ECP header needs 4", pdu=PDU, field="header", offset=0)
    h = parse_at(ECP_HEADER, data[:ECP_HEADER_LEN], offset=0, pdu=PDU, field="header")
    version, op, sub, seq = int(h.version), EcpOp(h.op), int(h.subtype), int(h.seq)
    subtype = _SUBTYPES.get(sub, sub)
    ulpdu: VdpPdu | bytes
    if op is EcpOp.ACK:
        ulpdu, end = b"", ECP_HEADER_LEN
    elif op is EcpOp.REQUEST and sub == EcpSubtype.VDP and version == ECP_VERSION:
        ulpdu, end = reference_decode_vdp_tlvs(data, ECP_HEADER_LEN, len(data), strict=strict)
    else:
        ulpdu, end = data[ECP_HEADER_LEN:], len(data)
    check_zero_padding(data, end, pdu=PDU)
    return Ecpdu(op=op, subtype=subtype, seq=seq, ulpdu=ulpdu, version=version)


def reference_encode_ecpdu(pdu: Ecpdu, *, end_tlv: bool = False) -> bytes:
    """Reference twin of ``evb.ecp.wire.encode_ecpdu``."""
    head = build(
        ECP_HEADER,
        {"version": pdu.version, "op": int(pdu.op), "subtype": pdu.subtype, "seq": pdu.seq},
        pdu=PDU,
        field="header",
    )
    if isinstance(pdu.ulpdu, VdpPdu):
        return head + reference_encode_vdpdu(pdu.ulpdu, end_tlv=end_tlv)
    if not isinstance(pdu.ulpdu, bytes):
        raise EncodeError(f"{type(pdu.ulpdu).__name__} is not a VdpPdu or bytes", pdu=PDU, field="ulpdu")
    return head + pdu.ulpdu


def reference_decode_draft_ecpdu(data: bytes, *, strict: bool = True) -> DraftEcpdu:
    """A whole draft-0.2 ECPDU (``evb.ecp.wire.decode_draft_ecpdu_prefix`` + zero padding)."""
    if data[:3] != OUI_QBG_DRAFT:
        raise NotEvbFrame(
            "EtherType 0x88b7 payload is not of OUI 00-1b-3f (802.1Qbg draft)", pdu=DRAFT_PDU, field="oui", offset=0
        )
    if len(data) < DRAFT_ECP_HEADER_LEN:
        raise DecodeError(f"{len(data)} octets, the draft ECP header needs 9", pdu=DRAFT_PDU, field="header", offset=0)
    h = parse_at(DRAFT_ECP_HEADER, data[:DRAFT_ECP_HEADER_LEN], offset=0, pdu=DRAFT_PDU, field="header")
    mode = int(h.mode)
    tlvs, end = VdpPdu(()), DRAFT_ECP_HEADER_LEN
    if mode == 0:  # requests carry draft VDP TLVs; an acknowledgement's body is zeroed
        tlvs, end = reference_decode_vdp_tlvs(data, DRAFT_ECP_HEADER_LEN, len(data), strict=strict)
    check_zero_padding(data, end, pdu=DRAFT_PDU)
    return DraftEcpdu(mode=mode, seq=int(h.seq), tlvs=tlvs.tlvs, subtype=int(h.subtype), protocol_id=int(h.protocol_id))


def reference_encode_draft_ecpdu(pdu: DraftEcpdu, *, end_tlv: bool = True) -> bytes:
    """Reference twin of ``evb.ecp.wire.encode_draft_ecpdu`` (End TLV after a request's TLVs)."""
    head = build(
        DRAFT_ECP_HEADER,
        {"protocol_id": pdu.protocol_id, "subtype": pdu.subtype, "mode": pdu.mode, "seq": pdu.seq},
        pdu=DRAFT_PDU,
        field="header",
    )
    body = reference_encode_vdpdu(VdpPdu(pdu.tlvs)) if pdu.tlvs else b""
    return head + body + (b"\0\0" if end_tlv and pdu.mode == 0 else b"")
