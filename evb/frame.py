"""Whole Ethernet frames carrying LLDP (0x88CC), ECP (0x8940) or draft ECP (0x88B7).

``decode_frame(bytes) -> Frame`` and ``encode_frame(Frame) -> bytes`` are exact inverses for
every frame that decodes: the zero octets after the PDU (End TLVs of VDP, Ethernet padding)
are counted in ``Frame.pad`` and written back by the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from evb._fast import fast_constructor
from evb.ecp.wire import (
    DraftEcpdu,
    Ecpdu,
    decode_draft_ecpdu_prefix,
    decode_ecpdu_prefix,
    ecp_prefix,
    encode_ecpdu,
)
from evb.errors import DecodeError, EncodeError, NotEvbFrame
from evb.ethernet import (
    ETH_P_ECP,
    ETH_P_LLDP,
    ETH_P_OUI_EXT,
    MIN_FRAME_LEN,
    TAG_TPIDS,
    VlanTag,
    decode_ethernet_header,
    encode_ethernet_header,
)
from evb.lldp.wire import Lldpdu, decode_lldpdu_prefix, encode_lldpdu
from evb.tlv import check_zero_padding

Pdu = Lldpdu | Ecpdu | DraftEcpdu

ETHERTYPES: Final = {Lldpdu: ETH_P_LLDP, Ecpdu: ETH_P_ECP, DraftEcpdu: ETH_P_OUI_EXT}
PROTOCOL_NAMES: Final = {ETH_P_LLDP: "LLDP", ETH_P_ECP: "ECP", ETH_P_OUI_EXT: "ECP-draft"}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``pad`` counts the zero octets after the PDU."""

    dst: bytes
    src: bytes
    pdu: Pdu
    tags: tuple[VlanTag, ...] = ()
    pad: int = 0

    @property
    def ethertype(self) -> int:
        return ETHERTYPES[type(self.pdu)]


_make = fast_constructor(Frame)


def decode_frame(data: bytes, *, strict: bool = False) -> Frame:
    """Decode one frame (no FCS).

    Raises ``NotEvbFrame`` (a ``DecodeError``) for frames of other protocols and
    ``DecodeError`` for malformed ones. ``strict=False`` (the default here: this is what
    agents and the capture tools use) keeps TLVs with bad content as ``InvalidTlv``.
    """
    n = len(data)
    if n >= 14 and data[12] == 0x89 and data[13] == 0x40:  # the hot path: untagged ECP
        ecp, end = ecp_prefix(data, 14, 0, strict, True)
        if end < n and data.count(0, end) != n - end:
            check_zero_padding(data, end, pdu="ecpdu")
        return _make(data[0:6], data[6:12], ecp, (), n - end)
    head = decode_ethernet_header(data)
    off = head.length
    pdu: Pdu
    if head.ethertype == ETH_P_ECP:
        pdu, end = decode_ecpdu_prefix(data, off, strict=strict)
        pad_pdu = "ecpdu"
    elif head.ethertype == ETH_P_LLDP:
        pdu, end = decode_lldpdu_prefix(data, off, strict=strict)
        pad_pdu = "lldpdu"
    elif head.ethertype == ETH_P_OUI_EXT:
        pdu, end = decode_draft_ecpdu_prefix(data, off, strict=strict)
        pad_pdu = "draft-ecpdu"
    else:
        raise NotEvbFrame(
            f"EtherType 0x{head.ethertype:04x} is not LLDP, ECP or draft ECP",
            pdu="ethernet",
            field="ethertype",
            offset=off - 2,
        )
    check_zero_padding(data, end, pdu=pad_pdu)
    return Frame(head.dst, head.src, pdu, head.tags, n - end)


def encode_pdu(pdu: Pdu) -> bytes:
    if isinstance(pdu, Ecpdu):
        return encode_ecpdu(pdu)
    if isinstance(pdu, Lldpdu):
        return encode_lldpdu(pdu)
    if isinstance(pdu, DraftEcpdu):
        return pdu.encode(end_tlv=False)
    raise EncodeError(f"{type(pdu).__name__} is not an LLDPDU or ECPDU", pdu="frame", field="pdu")


def encode_frame(frame: Frame) -> bytes:
    """Exact inverse of ``decode_frame``."""
    if frame.pad < 0:
        raise EncodeError("pad must not be negative", pdu="frame", field="pad")
    head = encode_ethernet_header(frame.dst, frame.src, frame.ethertype, frame.tags)
    return head + encode_pdu(frame.pdu) + bytes(frame.pad)


def build_frame(
    dst: bytes,
    src: bytes,
    pdu: Pdu,
    *,
    tags: tuple[VlanTag, ...] = (),
    end_tlv: bool = False,
    pad_to: int = MIN_FRAME_LEN,
) -> bytes:
    """Frame a PDU for sending: optional End TLV after a VDP ULPDU, zero padding to ``pad_to``.

    ``pad_to=0`` sends short frames unpadded (as lldpad does with ECP acknowledgements).
    """
    body = encode_pdu(pdu)
    if end_tlv and isinstance(pdu, Ecpdu | DraftEcpdu):
        body += b"\0\0"
    head = encode_ethernet_header(dst, src, ETHERTYPES[type(pdu)], tags)
    frame = head + body
    return frame + bytes(max(0, pad_to - len(frame)))


def frame_kind(data: bytes) -> int | None:
    """The EtherType after any tags, or None for a runt; cheap pre-filter for captures."""
    off = 12
    while len(data) >= off + 2:
        et = (data[off] << 8) | data[off + 1]
        if et not in TAG_TPIDS:
            return et
        off += 4
    return None


__all__ = [
    "DecodeError",
    "Frame",
    "NotEvbFrame",
    "Pdu",
    "build_frame",
    "decode_frame",
    "encode_frame",
    "encode_pdu",
    "frame_kind",
]
