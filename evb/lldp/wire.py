"""LLDPDU codec (802.1AB) with the 802.1Qbg TLVs fully decoded (spec ``lldp-evb-cdcp.md``).

* mandatory Chassis ID, Port ID, TTL (in that order) and End of LLDPDU;
* optional basic and unknown TLVs kept as typed raw TLVs (``LldpTlv``);
* organizationally specific TLVs (type 127): the ratified EVB TLV (00-80-C2/0x0D), the CDCP
  TLV (00-80-C2/0x0E) and the draft-0.2 EVB TLV (00-1B-3F/0x00) decoded bit by bit, all
  others kept as ``OrgTlv``.

The TLV walk is an explicit loop that checks every length before it parses anything; the
TLV bodies are parsed and built with construct (``parse_at`` turns its errors into
``DecodeError``). Reserved bits are kept so that every TLV re-encodes bit for bit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from construct import Array, BitsInteger, BitStruct, Flag, Int8ub, Int16ub, Struct

from evb.errors import DecodeError, EncodeError
from evb.tlv import InvalidTlv, check_zero_padding, parse_at, tlv_header

PDU: Final = "lldpdu"
OUI_8021: Final = bytes.fromhex("0080c2")
OUI_QBG_DRAFT: Final = bytes.fromhex("001b3f")
EVB_SUBTYPE: Final = 0x0D
CDCP_SUBTYPE: Final = 0x0E
DRAFT_EVB_SUBTYPE: Final = 0x00
EVB_INFO_LEN: Final = 5
DRAFT_EVB_INFO_LEN: Final = 9


class LldpTlvType(enum.IntEnum):
    END = 0
    CHASSIS_ID = 1
    PORT_ID = 2
    TTL = 3
    PORT_DESCRIPTION = 4
    SYSTEM_NAME = 5
    SYSTEM_DESCRIPTION = 6
    SYSTEM_CAPABILITIES = 7
    MANAGEMENT_ADDRESS = 8
    ORG = 127


class ChassisIdSubtype(enum.IntEnum):
    CHASSIS_COMPONENT = 1
    INTERFACE_ALIAS = 2
    PORT_COMPONENT = 3
    MAC_ADDRESS = 4
    NETWORK_ADDRESS = 5
    INTERFACE_NAME = 6
    LOCALLY_ASSIGNED = 7


class PortIdSubtype(enum.IntEnum):
    INTERFACE_ALIAS = 1
    PORT_COMPONENT = 2
    MAC_ADDRESS = 3
    NETWORK_ADDRESS = 4
    INTERFACE_NAME = 5
    AGENT_CIRCUIT_ID = 6
    LOCALLY_ASSIGNED = 7


class EvbMode(enum.IntEnum):
    """EVB Mode field of the EVB TLV."""

    NOT_SUPPORTED = 0
    BRIDGE = 1
    STATION = 2
    RESERVED = 3


class RrStat(enum.IntEnum):
    """The station's view of reflective relay (RRSTAT, 2 bits)."""

    NOT_ENABLED = 0
    ENABLED = 1
    RESERVED = 2
    UNKNOWN = 3  #: no bridge EVB TLV received yet


class CdcpRole(enum.IntEnum):
    BRIDGE = 0
    STATION = 1


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True, slots=True)
class ChassisId:
    subtype: int
    id: bytes


@dataclass(frozen=True, slots=True)
class PortId:
    subtype: int
    id: bytes


@dataclass(frozen=True, slots=True)
class LldpTlv:
    """An optional TLV evb keeps raw (types 4-8 and reserved types 9-126)."""

    type: int
    value: bytes

    def encode(self) -> bytes:
        return tlv_header(self.type, len(self.value), pdu=PDU) + self.value


@dataclass(frozen=True, slots=True)
class OrgTlv:
    """An organizationally specific TLV of an OUI/subtype evb does not decode."""

    oui: bytes
    subtype: int
    info: bytes

    def encode(self) -> bytes:
        if len(self.oui) != 3:
            raise EncodeError("OUI must be 3 octets", pdu=PDU, field="org.oui")
        if not 0 <= self.subtype <= 255:
            raise EncodeError(f"subtype {self.subtype} is outside 0..255", pdu=PDU, field="org.subtype")
        return tlv_header(127, 4 + len(self.info), pdu=PDU) + self.oui + bytes((self.subtype,)) + self.info


@dataclass(frozen=True, slots=True, kw_only=True)
class EvbTlv:
    """The ratified EVB TLV (OUI 00-80-C2, subtype 0x0D), every bit (lldp-evb-cdcp.md §2.2)."""

    # EVB Bridge Status
    bgid: bool = False  #: bridge supports Group IDs
    rrcap: bool = False  #: bridge can do reflective relay
    rrctr: bool = False  #: bridge has turned reflective relay on
    # EVB Station Status
    sgid: bool = False  #: station supports Group IDs
    rrreq: bool = False  #: station requests reflective relay
    rrstat: int = RrStat.UNKNOWN  #: station's view of RR (``RrStat``)
    r: int = 3  #: maximum ECP retries
    rte: int = 8  #: ECP retransmission exponent
    mode: int = EvbMode.STATION  #: ``EvbMode``
    rol_rwd: bool = False  #: RWD was taken from the peer
    rwd: int = 20  #: resource-wait-delay exponent
    rol_rka: bool = False  #: RKA was taken from the peer
    rka: int = 20  #: reinit-keep-alive exponent
    bridge_reserved: int = 0  #: 5 reserved bits of the bridge status octet
    station_reserved: int = 0  #: 4 reserved bits of the station status octet
    rka_reserved: int = 0  #: 2 reserved bits of the RKA octet

    @property
    def bridge_status(self) -> int:
        return (self.bridge_reserved << 3) | (self.bgid << 2) | (self.rrcap << 1) | int(self.rrctr)

    @property
    def station_status(self) -> int:
        return (self.station_reserved << 4) | (self.sgid << 3) | (self.rrreq << 2) | self.rrstat

    @property
    def info(self) -> bytes:
        return _build(_EVB_INFO, _evb_fields(self), "evb")

    def encode(self) -> bytes:
        return tlv_header(127, 9, pdu=PDU) + OUI_8021 + bytes((EVB_SUBTYPE,)) + self.info


@dataclass(frozen=True, slots=True, kw_only=True)
class CdcpTlv:
    """The CDCP TLV (OUI 00-80-C2, subtype 0x0E; lldp-evb-cdcp.md §6)."""

    role: int  #: ``CdcpRole``: 0 bridge, 1 station
    scomp: bool = False  #: sender has an S-VLAN component
    chncap: int = 0  #: number of S-channels supported
    channels: tuple[tuple[int, int], ...] = ()  #: (SCID, SVID) pairs
    reserved1: int = 0  #: 3 reserved bits after Role
    reserved2: int = 0  #: 15 reserved bits after SComp

    def encode(self) -> bytes:
        head = _build(
            _CDCP_HEAD,
            {
                "role": self.role,
                "reserved1": self.reserved1,
                "scomp": self.scomp,
                "reserved2": self.reserved2,
                "chncap": self.chncap,
            },
            "cdcp",
        )
        pairs = b"".join(
            _build(_CDCP_PAIR, {"scid": scid, "svid": svid}, f"cdcp.channels[{i}]")
            for i, (scid, svid) in enumerate(self.channels)
        )
        body = OUI_8021 + bytes((CDCP_SUBTYPE,)) + head + pairs
        return tlv_header(127, len(body), pdu=PDU) + body


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftEvbTlv:
    """Draft-0.2 EVB TLV (OUI 00-1B-3F, subtype 0; lldp-evb-cdcp.md §5), recognition only.

    Mode octets: 0x80 standard (VEB), 0x40 reflective relay. Capability octets: 0x04 RTE,
    0x02 ECP, 0x01 VDP.
    """

    supported_modes: int
    supported_caps: int
    configured_modes: int
    configured_caps: int
    supported_vsis: int
    configured_vsis: int
    rte: int

    def encode(self) -> bytes:
        info = _build(_DRAFT_EVB, _fields(self, _DRAFT_EVB_FIELDS), "draft_evb")
        return tlv_header(127, 4 + len(info), pdu=PDU) + OUI_QBG_DRAFT + bytes((DRAFT_EVB_SUBTYPE,)) + info


OptionalTlv = LldpTlv | OrgTlv | EvbTlv | CdcpTlv | DraftEvbTlv | InvalidTlv


@dataclass(frozen=True, slots=True, kw_only=True)
class Lldpdu:
    """An LLDPDU: the three mandatory TLVs, then the optional ones in wire order."""

    chassis_id: ChassisId
    port_id: PortId
    ttl: int
    tlvs: tuple[OptionalTlv, ...] = ()

    @property
    def evb(self) -> EvbTlv | None:
        return next((t for t in self.tlvs if isinstance(t, EvbTlv)), None)

    @property
    def cdcp(self) -> CdcpTlv | None:
        return next((t for t in self.tlvs if isinstance(t, CdcpTlv)), None)

    @property
    def draft_evb(self) -> DraftEvbTlv | None:
        return next((t for t in self.tlvs if isinstance(t, DraftEvbTlv)), None)

    def encode(self) -> bytes:
        return encode_lldpdu(self)


# --------------------------------------------------------------------------- construct schemas

_EVB_INFO = BitStruct(
    "bridge_reserved" / BitsInteger(5),
    "bgid" / Flag,
    "rrcap" / Flag,
    "rrctr" / Flag,
    "station_reserved" / BitsInteger(4),
    "sgid" / Flag,
    "rrreq" / Flag,
    "rrstat" / BitsInteger(2),
    "r" / BitsInteger(3),
    "rte" / BitsInteger(5),
    "mode" / BitsInteger(2),
    "rol_rwd" / Flag,
    "rwd" / BitsInteger(5),
    "rka_reserved" / BitsInteger(2),
    "rol_rka" / Flag,
    "rka" / BitsInteger(5),
)
_EVB_FIELDS: Final = tuple(sc.name for sc in _EVB_INFO.subcon.subcons)

_CDCP_HEAD = BitStruct(
    "role" / BitsInteger(1),
    "reserved1" / BitsInteger(3),
    "scomp" / Flag,
    "reserved2" / BitsInteger(15),
    "chncap" / BitsInteger(12),
)
_CDCP_PAIR = BitStruct("scid" / BitsInteger(12), "svid" / BitsInteger(12))

_DRAFT_EVB = Struct(
    "supported_modes" / Int8ub,
    "supported_caps" / Int8ub,
    "configured_modes" / Int8ub,
    "configured_caps" / Int8ub,
    "supported_vsis" / Int16ub,
    "configured_vsis" / Int16ub,
    "rte" / Int8ub,
)
_DRAFT_EVB_FIELDS: Final = tuple(sc.name for sc in _DRAFT_EVB.subcons)

_ID_TLV = Struct("subtype" / Int8ub)


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


def _evb_fields(tlv: EvbTlv) -> dict[str, Any]:
    return _fields(tlv, _EVB_FIELDS)


def _build(schema: Any, values: dict[str, Any], field: str) -> bytes:
    """construct ``build`` with our error type (a value that does not fit its bits)."""
    for name, value in values.items():
        if isinstance(value, bool):
            continue
        if not isinstance(value, int) or value < 0:
            raise EncodeError(f"{value!r} is not a non-negative integer", pdu=PDU, field=f"{field}.{name}")
    try:
        return bytes(schema.build(values))
    except Exception as exc:  # construct raises its own error types, and ValueError
        sub = (getattr(exc, "path", None) or "").removeprefix("(building)").removeprefix(" -> ").replace(" -> ", ".")
        raise EncodeError(str(exc).splitlines()[-1], pdu=PDU, field=".".join(p for p in (field, sub) if p)) from None


# --------------------------------------------------------------------------- decoding


def _err(reason: str, field: str, offset: int) -> DecodeError:
    return DecodeError(reason, pdu=PDU, field=field, offset=offset)


def _decode_org(value: bytes, off: int) -> OptionalTlv:
    """Body of a type-127 TLV; ``off`` is the offset of the TLV header."""
    if len(value) < 4:
        raise _err(f"TLV length {len(value)} cannot hold OUI and subtype (4 octets)", "org.length", off)
    oui, sub, info = value[:3], value[3], value[4:]
    at = off + 6
    if oui == OUI_8021 and sub == EVB_SUBTYPE:
        if len(info) != EVB_INFO_LEN:
            raise _err(f"EVB TLV length is {len(value)}, must be 9", "evb.length", off)
        c = parse_at(_EVB_INFO, info, offset=at, pdu=PDU, field="evb")
        return EvbTlv(**{n: c[n] for n in _EVB_FIELDS})
    if oui == OUI_8021 and sub == CDCP_SUBTYPE:
        if len(info) < 4 or (len(info) - 4) % 3:
            raise _err(f"CDCP TLV length {len(value)} is not 8 + 3 x (number of SCID/SVID pairs)", "cdcp.length", off)
        h = parse_at(_CDCP_HEAD, info[:4], offset=at, pdu=PDU, field="cdcp")
        pairs = parse_at(
            Array((len(info) - 4) // 3, _CDCP_PAIR), info[4:], offset=at + 4, pdu=PDU, field="cdcp.channels"
        )
        return CdcpTlv(
            role=h.role,
            scomp=h.scomp,
            chncap=h.chncap,
            channels=tuple((p.scid, p.svid) for p in pairs),
            reserved1=h.reserved1,
            reserved2=h.reserved2,
        )
    if oui == OUI_QBG_DRAFT and sub == DRAFT_EVB_SUBTYPE:
        if len(info) != DRAFT_EVB_INFO_LEN:
            raise _err(f"draft EVB TLV length is {len(value)}, must be 13", "draft_evb.length", off)
        d = parse_at(_DRAFT_EVB, info, offset=at, pdu=PDU, field="draft_evb")
        return DraftEvbTlv(**{n: d[n] for n in _DRAFT_EVB_FIELDS})
    return OrgTlv(oui, sub, info)


def _decode_id(value: bytes, off: int, name: str) -> tuple[int, bytes]:
    if not 2 <= len(value) <= 256:
        raise _err(f"TLV length {len(value)} is outside 2..256 (subtype + 1..255 octets)", f"{name}.length", off)
    return parse_at(_ID_TLV, value[:1], offset=off + 2, pdu=PDU, field=name).subtype, value[1:]


def decode_lldpdu_prefix(data: bytes, start: int = 0, *, base: int = 0, strict: bool = True) -> tuple[Lldpdu, int]:
    """Decode the LLDPDU at ``data[start:]``; return it and the offset just after End.

    Raises ``DecodeError`` for anything 802.1AB §9.2.7.7 would discard the LLDPDU for: the
    first three TLVs not Chassis ID, Port ID, TTL; a mandatory TLV repeated; a TLV that runs
    past the frame; no End TLV. A bad optional TLV raises in strict mode, and is kept as an
    ``InvalidTlv`` otherwise.
    """
    off = start
    end = len(data)
    mandatory: list[bytes] = []
    tlvs: list[OptionalTlv] = []
    while True:
        at = base + off
        if off + 2 > end:
            where = "End of LLDPDU TLV missing" if off == end else "1 octet left where a TLV header must start"
            raise _err(where, "tlv.header", at)
        h = (data[off] << 8) | data[off + 1]
        t, length = h >> 9, h & 0x1FF
        if off + 2 + length > end:
            raise _err(
                f"TLV type {t} length {length} runs {off + 2 + length - end} octets past the end of the frame",
                "tlv.length",
                at,
            )
        value = data[off + 2 : off + 2 + length]
        n = len(mandatory)
        if n < 3:
            if t != n + 1:
                raise _err(
                    f"TLV {n + 1} must be {('Chassis ID', 'Port ID', 'Time To Live')[n]} (type {n + 1}), got type {t}",
                    "tlv.type",
                    at,
                )
            if t == 3 and length != 2:
                raise _err(f"TTL TLV length is {length}, must be 2", "ttl.length", at)
            if t in (1, 2):
                _decode_id(value, at, ("chassis_id", "port_id")[t - 1])
            mandatory.append(value)
        elif t == 0:
            if length != 0:
                raise _err(f"End of LLDPDU TLV length is {length}, must be 0", "end.length", at)
            off += 2
            break
        elif t in (1, 2, 3):
            raise _err(f"mandatory TLV type {t} appears again", "tlv.type", at)
        else:
            try:
                tlvs.append(_decode_org(value, at) if t == 127 else LldpTlv(t, value))
            except DecodeError as err:
                if strict:
                    raise
                tlvs.append(InvalidTlv.from_error(t, value, err))
        off += 2 + length
    cs, cid = _decode_id(mandatory[0], base + start, "chassis_id")
    ps, pid = _decode_id(mandatory[1], base + start, "port_id")
    return (
        Lldpdu(
            chassis_id=ChassisId(cs, cid),
            port_id=PortId(ps, pid),
            ttl=int.from_bytes(mandatory[2], "big"),
            tlvs=tuple(tlvs),
        ),
        off,
    )


def decode_lldpdu(data: bytes, *, strict: bool = True) -> Lldpdu:
    """Decode an LLDPDU (the Ethernet payload after EtherType 0x88CC); zero padding may follow."""
    pdu, end = decode_lldpdu_prefix(data, strict=strict)
    check_zero_padding(data, end, pdu=PDU)
    return pdu


def decode_evb_tlv(info: bytes) -> EvbTlv:
    """Decode the 5 information octets of an EVB TLV (after OUI and subtype)."""
    tlv = _decode_org(OUI_8021 + bytes((EVB_SUBTYPE,)) + info, -6)
    assert isinstance(tlv, EvbTlv)
    return tlv


# --------------------------------------------------------------------------- encoding


def _encode_id(kind: str, tlv_type: int, subtype: int, ident: bytes) -> bytes:
    if not 0 <= subtype <= 255:
        raise EncodeError(f"subtype {subtype} is outside 0..255", pdu=PDU, field=f"{kind}.subtype")
    if not 1 <= len(ident) <= 255:
        raise EncodeError(f"id must be 1..255 octets, got {len(ident)}", pdu=PDU, field=f"{kind}.id")
    return tlv_header(tlv_type, 1 + len(ident), pdu=PDU) + bytes((subtype,)) + ident


def encode_lldpdu(pdu: Lldpdu) -> bytes:
    """Encode an LLDPDU, End of LLDPDU TLV included (no padding)."""
    if not 0 <= pdu.ttl <= 0xFFFF:
        raise EncodeError(f"TTL {pdu.ttl} is outside 0..65535", pdu=PDU, field="ttl")
    for t in pdu.tlvs:
        if isinstance(t, LldpTlv) and t.type in (0, 1, 2, 3, 127):
            raise EncodeError(f"type {t.type} cannot be an optional raw TLV", pdu=PDU, field="tlvs")
    parts = [
        _encode_id("chassis_id", 1, pdu.chassis_id.subtype, pdu.chassis_id.id),
        _encode_id("port_id", 2, pdu.port_id.subtype, pdu.port_id.id),
        b"\x06\x02" + pdu.ttl.to_bytes(2, "big"),
        *(t.encode() for t in pdu.tlvs),
        b"\0\0",
    ]
    return b"".join(parts)
