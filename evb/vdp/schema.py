"""VDP wire format as construct definitions: the declarative spec and the fast path's cross-check.

``evb.vdp.wire`` decodes VDP with hand-written ``struct`` code because it must be fast. This
module states the same layouts (802.1Qbg-2012 clause 41; spec ``vdp.md`` §1-§6, §13) once
more, declaratively, with construct 2.10, and is used for two things:

* **the spec**: each schema below reads like the octet map of ``vdp.md`` it mirrors (the TLV
  header, the Manager ID TLV, the association TLV with its status octet and its filter
  entries of formats 1-4, the Cisco 0xF1/0xF2 TLVs, any organizational TLV, the draft-0.2
  VDP TLV);
* **the cross-check**: ``reference_decode_vdpdu`` and ``reference_encode_vdpdu`` produce and
  consume the very dataclasses of ``evb.vdp.wire`` but go through construct.
  ``tests/test_schema.py`` asserts that the fast path and this reference agree on every
  generated, captured and mutated input: the same value, or the same ``DecodeError``
  (pdu, field, offset, reason), and the same encoded bytes.

Nothing on a hot path uses this module: construct interprets its schemas and is two orders
of magnitude slower than ``struct``. Parsing follows house style §3: an explicit TLV loop
checks every length before anything is parsed, ``parse_at`` turns construct's errors into
``DecodeError``, no schema is ``.compile()``d and no ``GreedyRange`` walks TLVs. Semantic
checks (a filter count that disagrees with the TLV length) are made in Python between a
header parse and the full parse, with the fast path's fields, offsets and words.
"""

from __future__ import annotations

from typing import Any, Final

from construct import (
    Array,
    BitsInteger,
    BitStruct,
    Bytes,
    Const,
    Error,
    Flag,
    GreedyBytes,
    Int8ub,
    Int16ub,
    Int24ub,
    Int32ub,
    Rebuild,
    Struct,
    Switch,
    len_,
    this,
)

from evb.errors import DecodeError, EncodeError
from evb.tlv import TLV, InvalidTlv, check_zero_padding, parse_at
from evb.vdp.wire import (
    CISCO_L3_ADDRESS,
    CISCO_VM_NAME,
    DRAFT_VDP_SUBTYPE,
    OUI_CISCO,
    OUI_QBG_DRAFT,
    PDU,
    CiscoL3AddressTlv,
    CiscoVmNameTlv,
    DraftVdpTlv,
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpOrgTlv,
    VdpPdu,
    VdpStatus,
    VdpTlv,
    VdpUnknownTlv,
    VsiidFormat,
    VsiManagerIdTlv,
    VsiTlv,
)

DRAFT_PDU: Final = "draft-vdp"

# --------------------------------------------------------------------------- schemas

#: The LLDP TLV header (802.1AB §8.4, vdp.md §1): 7-bit type, 9-bit length of the value.
#: ``evb.tlv.TLV`` is the whole TLV (header + value, length rebuilt from the value).
TLV_HEADER = BitStruct("type" / BitsInteger(7), "length" / BitsInteger(9))

#: The mode/status octet of an association TLV (vdp.md §4.2), most significant bit first.
STATUS = BitStruct(
    "reserved" / Flag,  # 0x80, transmitted 0
    "response" / Flag,  # 0x40
    "s_keep" / Flag,  # 0x20: S-bit in a request, Keep in a response
    "m_hard" / Flag,  # 0x10: M-bit in a request, Hard in a response
    "code" / BitsInteger(4),  # 0x0F: status code of a response
)

#: The 16-bit PS/PCP/VID word ending every filter entry (vdp.md §5.2).
QOS_WORD = BitStruct("ps" / Flag, "pcp" / BitsInteger(3), "vid" / BitsInteger(12))

#: Filter information entries by filter format code (vdp.md §5.1).
FILTER_ENTRY: Final = {
    FilterFormat.VID.value: Struct("qos" / QOS_WORD),
    FilterFormat.MAC_VID.value: Struct("mac" / Bytes(6), "qos" / QOS_WORD),
    FilterFormat.GROUP_VID.value: Struct("group_id" / Int32ub, "qos" / QOS_WORD),
    FilterFormat.GROUP_MAC_VID.value: Struct("group_id" / Int32ub, "mac" / Bytes(6), "qos" / QOS_WORD),
}

#: Fields of the association TLV value before the entry count (vdp.md §4.1).
_ASSOC_LEAD = (
    "status" / STATUS,
    "type_id" / Int24ub,
    "type_version" / Int8ub,
    "vsiid_format" / Int8ub,
    "vsiid" / Bytes(16),
    "filter_format" / Int8ub,
)
#: The 25 octets of an association TLV value that come before the filter entries.
ASSOC_HEAD = Struct(*_ASSOC_LEAD, "count" / Int16ub)
#: Association TLV value (types 1-4): fixed part, 2-octet entry count, entries of one format.
ASSOC_VALUE = Struct(
    *_ASSOC_LEAD,
    "count" / Rebuild(Int16ub, len_(this.entries)),
    "entries" / Array(this.count, Switch(this.filter_format, FILTER_ENTRY, default=Error)),
)

#: VSI Manager ID TLV value (type 5, vdp.md §3).
MANAGER_ID_VALUE = Struct("manager_id" / Bytes(16))

#: Any organizationally defined TLV value (type 127): OUI, then the OUI's own octets.
ORG_VALUE = Struct("oui" / Bytes(3), "data" / GreedyBytes)

#: Cisco VM-name TLV value (OUI 00-00-0C, subtype 0xF1, vdp.md §6).
CISCO_VM_NAME_VALUE = Struct(
    "oui" / Const(OUI_CISCO),
    "subtype" / Const(CISCO_VM_NAME, Int8ub),
    "vsiid_format" / Int8ub,
    "vsiid" / Bytes(16),
    "vm_id_format" / Int8ub,
    "vm_id" / Bytes(16),
    "name" / GreedyBytes,
)

#: Cisco VM L3-address TLV value (OUI 00-00-0C, subtype 0xF2): family 1 IPv4, 2 IPv6.
CISCO_L3_ADDRESS_VALUE = Struct(
    "oui" / Const(OUI_CISCO),
    "subtype" / Const(CISCO_L3_ADDRESS, Int8ub),
    "vsiid_format" / Int8ub,
    "vsiid" / Bytes(16),
    "family" / Int16ub,
    "address" / GreedyBytes,
)
#: Address length by Cisco address family; other families carry any number of octets.
CISCO_FAMILY_LEN: Final = {1: 4, 2: 16}

_DRAFT_LEAD = (
    "oui" / Const(OUI_QBG_DRAFT),
    "subtype" / Const(DRAFT_VDP_SUBTYPE, Int8ub),
    "mode" / Int8ub,  # 0 Pre-Assoc, 1 Pre-Assoc-RR, 2 Assoc, 3 De-Assoc
    "response" / Int8ub,
    "manager_id" / Int8ub,
    "type_id" / Int24ub,
    "type_version" / Int8ub,
    "instance_id" / Bytes(16),
    "filter_format" / Int8ub,
)
#: The 30 octets of a draft-0.2 VDP TLV value before its entries.
DRAFT_VDP_HEAD = Struct(*_DRAFT_LEAD, "count" / Int16ub)
#: Draft-0.2 VDP TLV value (type 127, OUI 00-1B-3F, subtype 2; vdp.md §13).
DRAFT_VDP_VALUE = Struct(
    *_DRAFT_LEAD,
    "count" / Rebuild(Int16ub, len_(this.entries)),
    "entries" / Array(this.count, Switch(this.filter_format, FILTER_ENTRY, default=Error)),
)


def _offset_of(schema: Any, name: str) -> int:
    """Octet offset of field ``name`` in a fixed-size Struct (sum of the sizes before it)."""
    total = 0
    for sc in schema.subcons:
        if sc.name == name:
            return total
        total += int(sc.sizeof())
    raise KeyError(name)


ASSOC_HEAD_LEN: Final = int(ASSOC_HEAD.sizeof())  #: 25
DRAFT_VDP_HEAD_LEN: Final = int(DRAFT_VDP_HEAD.sizeof())  #: 30
ENTRY_SIZE: Final = {code: int(sc.sizeof()) for code, sc in FILTER_ENTRY.items()}
#: Which optional FilterEntry fields each format carries, read off the entry schemas.
ENTRY_FIELDS: Final = {code: frozenset(s.name for s in sc.subcons) - {"qos"} for code, sc in FILTER_ENTRY.items()}
_CISCO_VM_NAME_MIN: Final = _offset_of(CISCO_VM_NAME_VALUE, "name")  #: 38
_CISCO_L3_MIN: Final = _offset_of(CISCO_L3_ADDRESS_VALUE, "address")  #: 23

_NAMES: Final = {1: "preassoc", 2: "preassoc-rr", 3: "assoc", 4: "deassoc"}
_VSIID_FORMATS: Final = {f.value: f for f in VsiidFormat}

# --------------------------------------------------------------------------- decoding


def _status(c: Any) -> VdpStatus:
    return VdpStatus(
        response=bool(c.response),
        s_keep=bool(c.s_keep),
        m_hard=bool(c.m_hard),
        code=int(c.code),
        reserved=bool(c.reserved),
    )


def _entries(items: Any) -> tuple[FilterEntry, ...]:
    out = []
    for c in items:
        mac = c.get("mac")
        group_id = c.get("group_id")
        out.append(
            FilterEntry(
                vid=int(c.qos.vid),
                pcp=int(c.qos.pcp),
                ps=bool(c.qos.ps),
                mac=None if mac is None else bytes(mac),
                group_id=None if group_id is None else int(group_id),
            )
        )
    return tuple(out)


def _decode_assoc(t: int, value: bytes, at: int) -> VsiTlv:
    """Association TLV; ``at`` is the offset of its value (the header is at ``at - 2``)."""
    name = _NAMES[t]
    length = len(value)
    if length < ASSOC_HEAD_LEN:
        raise DecodeError(
            f"TLV length {length} is shorter than the 25 octets before the filter entries",
            pdu=PDU,
            field=f"{name}.length",
            offset=at - 2,
        )
    head = parse_at(ASSOC_HEAD, value[:ASSOC_HEAD_LEN], offset=at, pdu=PDU, field=name)
    ffmt = int(head.filter_format)
    if ffmt not in FILTER_ENTRY:
        raise DecodeError(
            f"unknown filter format {ffmt} (known: 1 VID, 2 MAC/VID, 3 GroupID/VID, 4 GroupID/MAC/VID)",
            pdu=PDU,
            field=f"{name}.filter_format",
            offset=at + _offset_of(ASSOC_HEAD, "filter_format"),
        )
    n, size = int(head.count), ENTRY_SIZE[ffmt]
    if length != ASSOC_HEAD_LEN + n * size:
        have = (length - ASSOC_HEAD_LEN) / size
        raise DecodeError(
            f"{n} entries of format {ffmt} need TLV length {ASSOC_HEAD_LEN + n * size}, "
            f"the TLV has length {length} (room for {have:g} entries)",
            pdu=PDU,
            field=f"{name}.filter.count",
            offset=at + _offset_of(ASSOC_HEAD, "count"),
        )
    c = parse_at(ASSOC_VALUE, value, offset=at, pdu=PDU, field=name)
    vfmt = int(c.vsiid_format)
    return VsiTlv(
        mode=VdpMode(t),
        status=_status(c.status),
        type_id=int(c.type_id),
        type_version=int(c.type_version),
        vsiid_format=_VSIID_FORMATS.get(vfmt, vfmt),
        vsiid=bytes(c.vsiid),
        filter_format=FilterFormat(ffmt),
        entries=_entries(c.entries),
    )


def _decode_manager(value: bytes, at: int) -> VsiManagerIdTlv:
    size = int(MANAGER_ID_VALUE.sizeof())
    if len(value) != size:
        raise DecodeError(
            f"Manager ID TLV length is {len(value)}, must be 16",
            pdu=PDU,
            field="manager_id.length",
            offset=at - 2,
        )
    c = parse_at(MANAGER_ID_VALUE, value, offset=at, pdu=PDU, field="manager_id")
    return VsiManagerIdTlv(manager_id=bytes(c.manager_id))


def _decode_cisco_vm_name(value: bytes, at: int) -> CiscoVmNameTlv:
    if len(value) < _CISCO_VM_NAME_MIN:
        raise DecodeError(
            f"Cisco VM-name TLV length {len(value)} is shorter than 38",
            pdu=PDU,
            field="cisco.vm_name.length",
            offset=at - 2,
        )
    c = parse_at(CISCO_VM_NAME_VALUE, value, offset=at, pdu=PDU, field="cisco.vm_name")
    return CiscoVmNameTlv(
        vsiid_format=int(c.vsiid_format),
        vsiid=bytes(c.vsiid),
        vm_id_format=int(c.vm_id_format),
        vm_id=bytes(c.vm_id),
        name=bytes(c.name),
    )


def _decode_cisco_l3(value: bytes, at: int) -> CiscoL3AddressTlv:
    length = len(value)
    if length < _CISCO_L3_MIN:
        raise DecodeError(
            f"Cisco L3-address TLV length {length} is shorter than 23",
            pdu=PDU,
            field="cisco.l3_address.length",
            offset=at - 2,
        )
    c = parse_at(CISCO_L3_ADDRESS_VALUE, value, offset=at, pdu=PDU, field="cisco.l3_address")
    family = int(c.family)
    want = CISCO_FAMILY_LEN.get(family)
    if want is not None and len(c.address) != want:
        raise DecodeError(
            f"address family {family} needs TLV length {_CISCO_L3_MIN + want}, the TLV has {length}",
            pdu=PDU,
            field="cisco.l3_address.address",
            offset=at + _CISCO_L3_MIN,
        )
    return CiscoL3AddressTlv(
        vsiid_format=int(c.vsiid_format), vsiid=bytes(c.vsiid), family=family, address=bytes(c.address)
    )


def _decode_draft_vdp(value: bytes, at: int) -> DraftVdpTlv:
    length = len(value)
    if length < DRAFT_VDP_HEAD_LEN:
        raise DecodeError(
            f"draft VDP TLV length {length} is shorter than the 30 octets before the entries",
            pdu=DRAFT_PDU,
            field="length",
            offset=at - 2,
        )
    head = parse_at(DRAFT_VDP_HEAD, value[:DRAFT_VDP_HEAD_LEN], offset=at, pdu=DRAFT_PDU, field="draft_vdp")
    ffmt = int(head.filter_format)
    if ffmt not in FILTER_ENTRY:
        raise DecodeError(
            f"unknown filter format {ffmt}",
            pdu=DRAFT_PDU,
            field="filter_format",
            offset=at + _offset_of(DRAFT_VDP_HEAD, "filter_format"),
        )
    n, size = int(head.count), ENTRY_SIZE[ffmt]
    if length != DRAFT_VDP_HEAD_LEN + n * size:
        raise DecodeError(
            f"{n} entries of format {ffmt} need TLV length {DRAFT_VDP_HEAD_LEN + n * size}, "
            f"the TLV has length {length}",
            pdu=DRAFT_PDU,
            field="count",
            offset=at + _offset_of(DRAFT_VDP_HEAD, "count"),
        )
    c = parse_at(DRAFT_VDP_VALUE, value, offset=at, pdu=DRAFT_PDU, field="draft_vdp")
    return DraftVdpTlv(
        mode=int(c.mode),
        response=int(c.response),
        manager_id=int(c.manager_id),
        type_id=int(c.type_id),
        type_version=int(c.type_version),
        instance_id=bytes(c.instance_id),
        filter_format=FilterFormat(ffmt),
        entries=_entries(c.entries),
    )


def _decode_org(value: bytes, at: int) -> VdpTlv:
    if len(value) < _offset_of(ORG_VALUE, "data"):
        raise DecodeError(
            f"TLV length {len(value)} cannot hold the 3-octet OUI",
            pdu=PDU,
            field="org.length",
            offset=at - 2,
        )
    c = parse_at(ORG_VALUE, value, offset=at, pdu=PDU, field="org")
    oui, data = bytes(c.oui), bytes(c.data)
    subtype = data[0] if data else None
    if oui == OUI_CISCO and subtype == CISCO_VM_NAME:
        return _decode_cisco_vm_name(value, at)
    if oui == OUI_CISCO and subtype == CISCO_L3_ADDRESS:
        return _decode_cisco_l3(value, at)
    if oui == OUI_QBG_DRAFT and subtype == DRAFT_VDP_SUBTYPE:
        return _decode_draft_vdp(value, at)
    return VdpOrgTlv(oui=oui, data=data)


def _decode_value(t: int, value: bytes, at: int) -> VdpTlv:
    if 1 <= t <= 4:
        return _decode_assoc(t, value, at)
    if t == 5:
        return _decode_manager(value, at)
    if t == 127:
        return _decode_org(value, at)
    return VdpUnknownTlv(type=t, value=value)


def reference_decode_vdp_tlvs(data: bytes, start: int, end: int, *, strict: bool = True) -> tuple[VdpPdu, int]:
    """TLVs of ``data[start:end]`` up to a type-0 header; the PDU and where the TLVs end.

    The reference twin of ``evb.vdp.wire.decode_vdp_tlvs`` (offsets are those in ``data``).
    """
    tlvs: list[VdpTlv] = []
    off = start
    while off < end:
        if off + 2 > end:
            if data[off] == 0:  # one zero octet of padding (an odd-length PDU padded to 60)
                break
            raise DecodeError(
                "1 octet left where a 2-octet TLV header must start", pdu=PDU, field="tlv.header", offset=off
            )
        head = parse_at(TLV_HEADER, data[off : off + 2], offset=off, pdu=PDU, field="tlv.header")
        t, length = int(head.type), int(head.length)
        if t == 0:  # End, or the 00 00 of padding: the caller checks that only zeros follow
            break
        if off + 2 + length > end:
            raise DecodeError(
                f"TLV type {t} length {length} runs {off + 2 + length - end} octets past the end of the PDU",
                pdu=PDU,
                field="tlv.length",
                offset=off,
            )
        tlv = parse_at(TLV, data[off : off + 2 + length], offset=off, pdu=PDU, field="tlv")
        value = bytes(tlv.value)
        try:
            item = _decode_value(t, value, off + 2)
        except DecodeError as err:
            if strict:
                raise
            item = InvalidTlv.from_error(t, value, err)
        tlvs.append(item)
        off += 2 + length
    return VdpPdu(tlvs=tuple(tlvs)), off


def reference_decode_vdpdu(data: bytes, *, strict: bool = True) -> VdpPdu:
    """Reference twin of ``evb.vdp.wire.decode_vdpdu``: TLVs, then End and zero padding only."""
    pdu, end = reference_decode_vdp_tlvs(data, 0, len(data), strict=strict)
    check_zero_padding(data, end, pdu=PDU)
    return pdu


# --------------------------------------------------------------------------- encoding


def build(schema: Any, value: Any, *, pdu: str, field: str) -> bytes:
    """construct ``build`` with our error type (a value that does not fit its field)."""
    try:
        return bytes(schema.build(value))
    except Exception as exc:  # construct's own errors, and TypeError/KeyError on a wrong shape
        raise EncodeError(str(exc).splitlines()[-1], pdu=pdu, field=field) from None


def _tlv(tlv_type: int, value: bytes, field: str) -> bytes:
    return build(TLV, {"head": {"type": tlv_type}, "value": value}, pdu=PDU, field=field)


def _entry_values(ffmt: int, entries: tuple[FilterEntry, ...], pdu: str) -> list[dict[str, Any]]:
    if ffmt not in FILTER_ENTRY:
        raise EncodeError(f"unknown filter format {ffmt}", pdu=pdu, field="filter_format")
    out = []
    for i, e in enumerate(entries):
        # construct ignores keys a schema does not have: refuse a MAC or GroupID the format lacks
        present = {n for n in ("mac", "group_id") if getattr(e, n) is not None}
        if present != ENTRY_FIELDS[ffmt]:
            raise EncodeError(
                f"format {ffmt} entries carry {sorted(ENTRY_FIELDS[ffmt])}, entry has {sorted(present)}",
                pdu=pdu,
                field=f"entries[{i}]",
            )
        out.append({"qos": {"ps": e.ps, "pcp": e.pcp, "vid": e.vid}, "mac": e.mac, "group_id": e.group_id})
    return out


def _status_value(s: VdpStatus) -> dict[str, Any]:
    return {"reserved": s.reserved, "response": s.response, "s_keep": s.s_keep, "m_hard": s.m_hard, "code": s.code}


def _encode_assoc(tlv: VsiTlv) -> bytes:
    if tlv.mode not in _NAMES:
        raise EncodeError(f"mode {tlv.mode} is not 1..4", pdu=PDU, field="mode")
    value = {
        "status": _status_value(tlv.status),
        "type_id": tlv.type_id,
        "type_version": tlv.type_version,
        "vsiid_format": tlv.vsiid_format,
        "vsiid": tlv.vsiid,
        "filter_format": int(tlv.filter_format),
        "entries": _entry_values(int(tlv.filter_format), tlv.entries, PDU),
    }
    return _tlv(int(tlv.mode), build(ASSOC_VALUE, value, pdu=PDU, field=_NAMES[tlv.mode]), _NAMES[tlv.mode])


def _encode_draft_vdp(tlv: DraftVdpTlv) -> bytes:
    value = {
        "mode": tlv.mode,
        "response": tlv.response,
        "manager_id": tlv.manager_id,
        "type_id": tlv.type_id,
        "type_version": tlv.type_version,
        "instance_id": tlv.instance_id,
        "filter_format": int(tlv.filter_format),
        "entries": _entry_values(int(tlv.filter_format), tlv.entries, DRAFT_PDU),
    }
    body = build(DRAFT_VDP_VALUE, value, pdu=DRAFT_PDU, field="draft_vdp")
    return build(TLV, {"head": {"type": 127}, "value": body}, pdu=DRAFT_PDU, field="draft_vdp")


def reference_encode_tlv(tlv: VdpTlv) -> bytes:
    """One VDP TLV, header included, built through the schemas above."""
    if isinstance(tlv, VsiTlv):
        return _encode_assoc(tlv)
    if isinstance(tlv, VsiManagerIdTlv):
        return _tlv(
            5, build(MANAGER_ID_VALUE, {"manager_id": tlv.manager_id}, pdu=PDU, field="manager_id"), "manager_id"
        )
    if isinstance(tlv, VdpOrgTlv):
        return _tlv(127, build(ORG_VALUE, {"oui": tlv.oui, "data": tlv.data}, pdu=PDU, field="org"), "org")
    if isinstance(tlv, CiscoVmNameTlv):
        value = {
            "vsiid_format": tlv.vsiid_format,
            "vsiid": tlv.vsiid,
            "vm_id_format": tlv.vm_id_format,
            "vm_id": tlv.vm_id,
            "name": tlv.name,
        }
        return _tlv(127, build(CISCO_VM_NAME_VALUE, value, pdu=PDU, field="cisco.vm_name"), "cisco.vm_name")
    if isinstance(tlv, CiscoL3AddressTlv):
        want = CISCO_FAMILY_LEN.get(tlv.family)
        if want is not None and len(tlv.address) != want:
            raise EncodeError(f"must be {want} octets, got {len(tlv.address)}", pdu=PDU, field="cisco.address")
        value = {"vsiid_format": tlv.vsiid_format, "vsiid": tlv.vsiid, "family": tlv.family, "address": tlv.address}
        return _tlv(127, build(CISCO_L3_ADDRESS_VALUE, value, pdu=PDU, field="cisco.l3_address"), "cisco.l3_address")
    if isinstance(tlv, DraftVdpTlv):
        return _encode_draft_vdp(tlv)
    if isinstance(tlv, VdpUnknownTlv | InvalidTlv):
        return _tlv(tlv.type, tlv.value, "tlv")
    raise EncodeError(f"{type(tlv).__name__} is not a VDP TLV", pdu=PDU, field="tlvs")


def reference_encode_vdpdu(pdu: VdpPdu, *, end_tlv: bool = False) -> bytes:
    """Reference twin of ``evb.vdp.wire.encode_vdpdu``; ``end_tlv`` appends ``00 00``."""
    data = b"".join(reference_encode_tlv(t) for t in pdu.tlvs)
    return data + build(TLV_HEADER, {"type": 0, "length": 0}, pdu=PDU, field="end") if end_tlv else data
