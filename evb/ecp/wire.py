"""ECP wire format: ratified (EtherType 0x8940, clause 43) and draft 0.2 (0x88B7).

Ratified header (ecp.md §1): one 16-bit word ``version:4 | op:2 | subtype:10`` and a 16-bit
sequence number; requests carry one ULPDU, acknowledgements nothing. The subtype selects
the upper-layer protocol: 1 VDP (decoded into a ``VdpPdu``), 2 PECSP (kept as bytes).

Draft 0.2 (ecp.md §7): OUI 00-1B-3F, 802a protocol id 0, ECP subtype 0, mode (0 request,
1 acknowledgement), sequence number; draft VDP TLVs follow, then an End TLV.

As in ``evb.vdp.wire`` the decoder is a ``struct`` fast path, mirrored by construct
definitions in ``evb/ecp/schema.py`` and checked against them by property tests.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from evb._fast import fast_constructor
from evb.errors import DecodeError, EncodeError, NotEvbFrame
from evb.tlv import check_zero_padding
from evb.vdp.wire import OUI_QBG_DRAFT, VdpPdu, VdpTlv, decode_vdp_tlvs, encode_vdpdu, vdp_tlvs

PDU: Final = "ecpdu"
DRAFT_PDU: Final = "draft-ecpdu"
HEADER_LEN: Final = 4
DRAFT_HEADER_LEN: Final = 9
ECP_VERSION: Final = 1
MAX_SEQ: Final = 0xFFFF
#: lldpad refuses ULPDUs of 1494 octets or more (ecp.md §1).
MAX_ULPDU_LEN: Final = 1493


class EcpOp(enum.IntEnum):
    """ECP operation (2 bits)."""

    REQUEST = 0
    ACK = 1
    RESERVED_2 = 2
    RESERVED_3 = 3


class EcpSubtype(enum.IntEnum):
    """Upper-layer protocol identifiers (10 bits); other values decode as ``int``."""

    VDP = 1
    PECSP = 2


_OPS: Final = (EcpOp.REQUEST, EcpOp.ACK, EcpOp.RESERVED_2, EcpOp.RESERVED_3)
_SUBTYPES: Final = {s.value: s for s in EcpSubtype}


@dataclass(frozen=True, slots=True)
class Ecpdu:
    """A ratified ECPDU. ``ulpdu`` is a ``VdpPdu`` for version-1 VDP requests, else bytes."""

    op: EcpOp
    subtype: int
    seq: int
    ulpdu: VdpPdu | bytes = b""
    version: int = ECP_VERSION

    def ack(self) -> Ecpdu:
        """The acknowledgement of this request: same version and subtype, op 1, same seq."""
        return Ecpdu(EcpOp.ACK, self.subtype, self.seq, b"", self.version)

    def encode(self, *, end_tlv: bool = False) -> bytes:
        return encode_ecpdu(self, end_tlv=end_tlv)


_HEAD = struct.Struct("!HH")
_make = fast_constructor(Ecpdu)


def decode_ecpdu_prefix(
    data: bytes, start: int = 0, *, base: int = 0, strict: bool = True, decode_ulp: bool = True
) -> tuple[Ecpdu, int]:
    """Decode the ECPDU at ``data[start:]``; return it and where its content ends.

    What follows the returned offset is End/padding and is the caller's to check.
    """
    return ecp_prefix(data, start, base, strict, decode_ulp)


def ecp_prefix(data: bytes, start: int, base: int, strict: bool, decode_ulp: bool) -> tuple[Ecpdu, int]:
    """``decode_ecpdu_prefix`` with positional arguments only (the frame hot path)."""
    if len(data) - start < HEADER_LEN:
        raise DecodeError(
            f"{len(data) - start} octets, the ECP header needs 4",
            pdu=PDU,
            field="header",
            offset=base + start,
        )
    word, seq = _HEAD.unpack_from(data, start)
    version = word >> 12
    op = _OPS[(word >> 10) & 3]
    sub = word & 0x3FF
    subtype = _SUBTYPES.get(sub, sub)
    body = start + HEADER_LEN
    if op is EcpOp.ACK:
        return _make(op, subtype, seq, b"", version), body
    if op is EcpOp.REQUEST and sub == 1 and version == ECP_VERSION and decode_ulp:
        vdp, end = vdp_tlvs(data, body, len(data), base, strict)
        return _make(op, subtype, seq, vdp, version), end
    return _make(op, subtype, seq, data[body:], version), len(data)


def decode_ecpdu(data: bytes, *, strict: bool = True, decode_ulp: bool = True) -> Ecpdu:
    """Decode an ECPDU (the Ethernet payload after EtherType 0x8940)."""
    pdu, end = decode_ecpdu_prefix(data, strict=strict, decode_ulp=decode_ulp)
    check_zero_padding(data, end, pdu=PDU)
    return pdu


def encode_ecpdu(pdu: Ecpdu, *, end_tlv: bool = False) -> bytes:
    """Encode an ECPDU; ``end_tlv`` appends ``00 00`` after a VDP ULPDU."""
    if not 0 <= pdu.version <= 15:
        raise EncodeError(f"version {pdu.version} is outside 0..15", pdu=PDU, field="version")
    if not 0 <= pdu.op <= 3:
        raise EncodeError(f"op {pdu.op} is outside 0..3", pdu=PDU, field="op")
    if not 0 <= pdu.subtype <= 0x3FF:
        raise EncodeError(f"subtype {pdu.subtype} is outside 0..1023", pdu=PDU, field="subtype")
    if not 0 <= pdu.seq <= MAX_SEQ:
        raise EncodeError(f"sequence number {pdu.seq} is outside 0..65535", pdu=PDU, field="seq")
    head = _HEAD.pack((pdu.version << 12) | (pdu.op << 10) | pdu.subtype, pdu.seq)
    if isinstance(pdu.ulpdu, VdpPdu):
        return head + encode_vdpdu(pdu.ulpdu, end_tlv=end_tlv)
    return head + pdu.ulpdu


# --------------------------------------------------------------------------- draft 0.2


@dataclass(frozen=True, slots=True)
class DraftEcpdu:
    """A draft-0.2 ECPDU (recognition only). ``mode`` 0 = request, 1 = acknowledgement."""

    mode: int
    seq: int
    tlvs: tuple[VdpTlv, ...] = ()
    subtype: int = 0
    protocol_id: int = 0

    def encode(self, *, end_tlv: bool = True) -> bytes:
        return encode_draft_ecpdu(self, end_tlv=end_tlv)


_DRAFT_HEAD = struct.Struct("!3sHBBH")


def decode_draft_ecpdu_prefix(
    data: bytes, start: int = 0, *, base: int = 0, strict: bool = True
) -> tuple[DraftEcpdu, int]:
    """Decode a draft ECPDU (payload of EtherType 0x88B7) at ``data[start:]``."""
    if len(data) - start < 3 or data[start : start + 3] != OUI_QBG_DRAFT:
        raise NotEvbFrame(
            "EtherType 0x88b7 payload is not of OUI 00-1b-3f (802.1Qbg draft)",
            pdu=DRAFT_PDU,
            field="oui",
            offset=base + start,
        )
    if len(data) - start < DRAFT_HEADER_LEN:
        raise DecodeError(
            f"{len(data) - start} octets, the draft ECP header needs 9",
            pdu=DRAFT_PDU,
            field="header",
            offset=base + start,
        )
    _oui, proto, subtype, mode, seq = _DRAFT_HEAD.unpack_from(data, start)
    body = start + DRAFT_HEADER_LEN
    if mode != 0:
        return DraftEcpdu(mode, seq, (), subtype, proto), body
    vdp, end = decode_vdp_tlvs(data, body, base=base, strict=strict)
    return DraftEcpdu(mode, seq, vdp.tlvs, subtype, proto), end


def encode_draft_ecpdu(pdu: DraftEcpdu, *, end_tlv: bool = True) -> bytes:
    """Encode a draft ECPDU; requests get the End TLV lldpad sends unless told otherwise."""
    for name, value, top in (
        ("protocol_id", pdu.protocol_id, 0xFFFF),
        ("subtype", pdu.subtype, 0xFF),
        ("mode", pdu.mode, 0xFF),
        ("seq", pdu.seq, 0xFFFF),
    ):
        if not 0 <= value <= top:
            raise EncodeError(f"{value} is outside 0..{top}", pdu=DRAFT_PDU, field=name)
    head = _DRAFT_HEAD.pack(OUI_QBG_DRAFT, pdu.protocol_id, pdu.subtype, pdu.mode, pdu.seq)
    body = encode_vdpdu(VdpPdu(pdu.tlvs)) if pdu.tlvs else b""
    return head + body + (b"\0\0" if end_tlv and pdu.mode == 0 else b"")
