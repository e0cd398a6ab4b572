"""Words for decoded frames: one-line summaries, JSON-ready dicts and indented trees.

Pure functions over the codec dataclasses, shared by ``evb decode`` and the ladder diagram.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from evb.ecp.wire import DraftEcpdu, Ecpdu, EcpOp
from evb.ethernet import GROUP_ADDRESSES, mac_to_str
from evb.frame import PROTOCOL_NAMES, Frame
from evb.lldp.wire import CdcpTlv, DraftEvbTlv, EvbMode, EvbTlv, Lldpdu, OrgTlv
from evb.tlv import InvalidTlv
from evb.vdp.wire import (
    CiscoL3AddressTlv,
    CiscoVmNameTlv,
    DraftVdpTlv,
    FilterEntry,
    FilterFormat,
    VdpPdu,
    VdpStatus,
    VsiManagerIdTlv,
    VsiTlv,
    format_manager_id,
    format_vsiid,
)

FILTER_FORMAT_NAMES = {
    FilterFormat.VID: "VID",
    FilterFormat.MAC_VID: "MAC/VID",
    FilterFormat.GROUP_VID: "GROUP/VID",
    FilterFormat.GROUP_MAC_VID: "GROUP/MAC/VID",
}
_MAC_FIELDS = {"dst", "src", "mac"}


def short_vsiid(tlv: VsiTlv) -> str:
    """``5a0f…0001``: first and last four hex digits of the VSIID."""
    h = tlv.vsiid.hex()
    return f"{h[:4]}…{h[-4:]}"


def entry_text(e: FilterEntry) -> str:
    parts = []
    if e.group_id is not None:
        parts.append(f"group={e.group_id}")
    if e.mac is not None:
        parts.append(mac_to_str(e.mac))
    parts.append(f"vid={e.vid}")
    if e.ps or e.pcp:
        parts.append(f"pcp={e.pcp}{'' if e.ps else '(ps=0)'}")
    return " ".join(parts)


def vsi_text(tlv: VsiTlv, *, full: bool = False) -> str:
    ident = tlv.vsiid_text if full else short_vsiid(tlv)
    fmt = FILTER_FORMAT_NAMES.get(tlv.filter_format, str(tlv.filter_format))
    entries = ", ".join(entry_text(e) for e in tlv.entries)
    vfmt = "" if tlv.vsiid_format == 5 else f" vsiid-fmt={_enum_name(tlv.vsiid_format)}"
    return (
        f"VDP {tlv.mode.label} vsi={ident}{vfmt} type={tlv.type_id}/v{tlv.type_version} "
        f"fmt={fmt} [{entries}] status={tlv.status.describe()}"
    )


def evb_text(t: EvbTlv) -> str:
    roles: dict[int, str] = {EvbMode.BRIDGE: "bridge", EvbMode.STATION: "station"}
    role = roles.get(t.mode, f"mode{t.mode}")
    br = [n for n, on in (("BGID", t.bgid), ("RRCAP", t.rrcap), ("RRCTR", t.rrctr)) if on]
    st = [n for n, on in (("SGID", t.sgid), ("RRREQ", t.rrreq)) if on] + [f"RRSTAT={t.rrstat}"]
    return (
        f"EVB {role} br={t.bridge_status:02x}[{','.join(br)}] st={t.station_status:02x}[{','.join(st)}] "
        f"R={t.r} RTE={t.rte} RWD={t.rwd}{'(rol)' if t.rol_rwd else ''} RKA={t.rka}{'(rol)' if t.rol_rka else ''}"
    )


def _tlv_texts(tlvs: tuple[Any, ...]) -> list[str]:
    out = []
    for t in tlvs:
        if isinstance(t, EvbTlv):
            out.append(evb_text(t))
        elif isinstance(t, CdcpTlv):
            chans = " ".join(f"{scid}:{svid}" for scid, svid in t.channels)
            role = "station" if t.role else "bridge"
            out.append(f"CDCP {role} scomp={int(t.scomp)} chncap={t.chncap} [{chans}]")
        elif isinstance(t, DraftEvbTlv):
            out.append(f"EVB-draft modes={t.configured_modes:02x} caps={t.configured_caps:02x} rte={t.rte}")
        elif isinstance(t, VsiManagerIdTlv):
            out.append(f"mgr={format_manager_id(t.manager_id)}")
        elif isinstance(t, VsiTlv):
            out.append(vsi_text(t))
        elif isinstance(t, CiscoVmNameTlv):
            out.append(f"cisco vm-name={t.name.decode('ascii', 'replace')!r}")
        elif isinstance(t, CiscoL3AddressTlv):
            addr = ".".join(map(str, t.address)) if t.family == 1 else t.address.hex()
            out.append(f"cisco vm-addr={addr}")
        elif isinstance(t, DraftVdpTlv):
            out.append(
                f"VDP-draft mode={t.mode} resp={t.response} mgr={t.manager_id} type={t.type_id}/v{t.type_version}"
            )
        elif isinstance(t, InvalidTlv):
            out.append(f"INVALID type={t.type} ({t.field} at {t.offset}: {t.reason})")
        elif isinstance(t, OrgTlv):
            out.append(f"org {t.oui.hex('-')}/{t.subtype}")
    return out


def summarize(frame: Frame) -> str:
    """The compact meaning of a frame, as ``evb decode`` prints it."""
    pdu = frame.pdu
    if isinstance(pdu, Lldpdu):
        agent = {
            "nearest-customer-bridge": "ncb",
            "nearest-bridge": "nb",
            "nearest-non-tpmr-bridge": "nntpmr",
        }.get(GROUP_ADDRESSES.get(frame.dst, ""), mac_to_str(frame.dst))
        parts = [f"LLDP {agent} ttl={pdu.ttl}", *_tlv_texts(pdu.tlvs)]
        return " ".join(parts)
    if isinstance(pdu, Ecpdu):
        op = {EcpOp.REQUEST: "REQ", EcpOp.ACK: "ACK"}.get(pdu.op, f"OP{int(pdu.op)}")
        head = f"ECP {op} seq={pdu.seq}"
        if pdu.version != 1:
            head += f" version={pdu.version}"
        if pdu.subtype != 1:
            head += f" subtype={_enum_name(pdu.subtype)}"
        if isinstance(pdu.ulpdu, VdpPdu):
            words = _tlv_texts(pdu.ulpdu.tlvs)
            words += [f"!{e}" for e in pdu.ulpdu.composition_errors()]
            return " ".join([head, *words])
        if pdu.ulpdu:
            return f"{head} ulpdu={len(pdu.ulpdu)} octets"
        return head
    if isinstance(pdu, DraftEcpdu):
        op = "REQ" if pdu.mode == 0 else "ACK" if pdu.mode == 1 else f"MODE{pdu.mode}"
        return " ".join([f"ECP-draft {op} seq={pdu.seq}", *_tlv_texts(pdu.tlvs)])
    raise TypeError(type(pdu))


def protocol_name(frame: Frame) -> str:
    return PROTOCOL_NAMES[frame.ethertype]


def _enum_name(v: Any) -> str:
    return v.name.lower().replace("_", "-") if isinstance(v, enum.Enum) else str(v)


def to_json(obj: Any, field: str = "") -> Any:
    """A JSON-ready view of a decoded value: dataclasses become dicts with a ``kind`` key,
    enums their lower-case names, MAC addresses ``aa:bb:..``, other bytes hex."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"kind": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = to_json(getattr(obj, f.name), f.name)
        _extras(obj, out)
        return out
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, enum.Enum):
        return _enum_name(obj)
    if isinstance(obj, int | float | str):
        return obj
    if isinstance(obj, bytes):
        return mac_to_str(obj) if field in _MAC_FIELDS and len(obj) == 6 else obj.hex()
    if isinstance(obj, tuple | list):
        return [to_json(x, field) for x in obj]
    raise TypeError(f"cannot turn {type(obj).__name__} into JSON")


def _extras(obj: Any, out: dict[str, Any]) -> None:
    """Derived values a reader wants next to the raw fields."""
    if isinstance(obj, VsiTlv):
        out["vsiid_text"] = obj.vsiid_text
    elif isinstance(obj, VsiManagerIdTlv):
        out["manager_id_text"] = format_manager_id(obj.manager_id)
    elif isinstance(obj, VdpStatus):
        out["octet"] = obj.octet
        out["text"] = obj.describe()
    elif isinstance(obj, EvbTlv):
        out["bridge_status"] = obj.bridge_status
        out["station_status"] = obj.station_status
    elif isinstance(obj, Frame):
        out["ethertype"] = obj.ethertype
    elif isinstance(obj, VdpPdu):
        out["composition_errors"] = obj.composition_errors()
    elif isinstance(obj, DraftVdpTlv):
        out["instance_id_text"] = format_vsiid(5, obj.instance_id)


def tree(obj: Any, indent: int = 2) -> list[str]:
    """An indented, field-per-line rendering of a decoded value (``evb decode -v``)."""
    lines: list[str] = []
    _tree(to_json(obj), 0, indent, lines, "")
    return lines


def _tree(value: Any, depth: int, indent: int, lines: list[str], label: str) -> None:
    pad = " " * (depth * indent)
    if isinstance(value, dict):
        kind = value.get("kind", "")
        lines.append(f"{pad}{label}{kind}" if label else f"{pad}{kind}")
        for k, v in value.items():
            if k == "kind":
                continue
            if isinstance(v, dict | list) and v:
                _tree(v, depth + 1, indent, lines, f"{k}: ")
            else:
                lines.append(f"{pad}{' ' * indent}{k}: {v if v != [] else '[]'}")
    elif isinstance(value, list):
        lines.append(f"{pad}{label}[{len(value)}]")
        for i, v in enumerate(value):
            _tree(v, depth + 1, indent, lines, f"[{i}] ")
    else:
        lines.append(f"{pad}{label}{value}")
