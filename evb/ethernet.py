"""Ethernet framing helpers: the 802.1Qbg group addresses, EtherTypes, 802.1Q/802.1ad tags.

Frames are ``bytes`` without FCS (as AF_PACKET and pcap files give them). Padding to the
60-octet minimum is allowed on receive but not required; on transmit it is optional.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from evb.errors import DecodeError, EncodeError

#: Nearest Customer Bridge: the ratified EVB TLV, ECP and VDP (spec README §2.1).
NEAREST_CUSTOMER_BRIDGE = bytes.fromhex("0180c2000000")
#: Nearest non-TPMR Bridge: CDCP.
NEAREST_NON_TPMR_BRIDGE = bytes.fromhex("0180c2000003")
#: Nearest Bridge: ordinary LLDP, and draft-0.2 ECP.
NEAREST_BRIDGE = bytes.fromhex("0180c200000e")
GROUP_ADDRESSES = {
    NEAREST_CUSTOMER_BRIDGE: "nearest-customer-bridge",
    NEAREST_NON_TPMR_BRIDGE: "nearest-non-tpmr-bridge",
    NEAREST_BRIDGE: "nearest-bridge",
}

ETH_P_LLDP = 0x88CC
ETH_P_ECP = 0x8940  #: ratified ECP (802.1Qbg-2012 clause 43)
ETH_P_OUI_EXT = 0x88B7  #: 802a OUI-extended EtherType: draft-0.2 ECP (OUI 00-1B-3F)
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
TAG_TPIDS = (ETH_P_8021Q, ETH_P_8021AD)

HEADER_LEN = 14
MIN_FRAME_LEN = 60  #: 64-octet minimum less the 4-octet FCS

_HEAD = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")


def mac_to_str(mac: bytes) -> str:
    """``b'\\x02\\x00...'`` → ``'02:00:00:00:0a:01'``."""
    return mac.hex(":")


def parse_mac(text: str) -> bytes:
    """Parse ``02:00:00:00:0a:01``, ``02-00-00-00-0a-01`` or ``0200.0000.0a01``."""
    digits = text.replace(":", "").replace("-", "").replace(".", "")
    try:
        mac = bytes.fromhex(digits)
    except ValueError:
        raise EncodeError(f"{text!r} is not a MAC address", pdu="ethernet", field="mac") from None
    if len(mac) != 6:
        raise EncodeError(f"{text!r} is not a MAC address (6 octets)", pdu="ethernet", field="mac")
    return mac


@dataclass(frozen=True, slots=True)
class VlanTag:
    """One 802.1Q (C-tag, TPID 0x8100) or 802.1ad (S-tag, TPID 0x88A8) tag."""

    vid: int
    pcp: int = 0
    dei: bool = False
    tpid: int = ETH_P_8021Q

    def encode(self) -> bytes:
        if self.tpid not in TAG_TPIDS:
            raise EncodeError(f"TPID 0x{self.tpid:04x} is not 0x8100 or 0x88a8", pdu="vlan", field="tpid")
        if not 0 <= self.vid <= 0xFFF:
            raise EncodeError(f"VID {self.vid} is outside 0..4095", pdu="vlan", field="vid")
        if not 0 <= self.pcp <= 7:
            raise EncodeError(f"PCP {self.pcp} is outside 0..7", pdu="vlan", field="pcp")
        return _TAG.pack(self.tpid, (self.pcp << 13) | (int(self.dei) << 12) | self.vid)


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """Destination, source, tags and the EtherType that follows them."""

    dst: bytes
    src: bytes
    ethertype: int
    tags: tuple[VlanTag, ...] = ()

    @property
    def length(self) -> int:
        return HEADER_LEN + 4 * len(self.tags)


def decode_ethernet_header(data: bytes) -> EthernetHeader:
    """Decode the MAC header and any number of 802.1Q/802.1ad tags."""
    if len(data) < HEADER_LEN:
        raise DecodeError(
            f"frame has {len(data)} octets, an Ethernet header needs 14",
            pdu="ethernet",
            field="header",
            offset=0,
        )
    dst, src, ethertype = _HEAD.unpack_from(data)
    if ethertype not in TAG_TPIDS:
        return EthernetHeader(dst, src, ethertype)
    tags: list[VlanTag] = []
    off = 12
    while ethertype in TAG_TPIDS:
        if len(data) < off + 6:
            raise DecodeError(
                f"frame has {len(data)} octets, the VLAN tag at {off} needs {off + 6}",
                pdu="ethernet",
                field="tag",
                offset=off,
            )
        tci, ethertype = _TAG.unpack_from(data, off + 2)
        tpid = (data[off] << 8) | data[off + 1]
        tags.append(VlanTag(tci & 0xFFF, tci >> 13, bool(tci & 0x1000), tpid))
        off += 4
    return EthernetHeader(dst, src, ethertype, tuple(tags))


def encode_ethernet_header(dst: bytes, src: bytes, ethertype: int, tags: tuple[VlanTag, ...] = ()) -> bytes:
    """Build a MAC header (with tags, outermost first)."""
    for name, mac in (("dst", dst), ("src", src)):
        if len(mac) != 6:
            raise EncodeError(f"MAC address must be 6 octets, got {len(mac)}", pdu="ethernet", field=name)
    if not 0 <= ethertype <= 0xFFFF:
        raise EncodeError(f"EtherType {ethertype} is outside 0..0xffff", pdu="ethernet", field="ethertype")
    if not tags:
        return _HEAD.pack(dst, src, ethertype)
    return dst + src + b"".join(t.encode() for t in tags) + ethertype.to_bytes(2, "big")
