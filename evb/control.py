"""The control API's vocabulary: VSI descriptions as JSON, requests, errors (pure, no I/O).

Wire format on the unix socket: one JSON object per line. Request
``{"id": 7, "cmd": "vsi.request", "args": {...}}``; answer ``{"id": 7, "ok": true, "result": ...}``
or ``{"id": 7, "ok": false, "error": {"code": "E_...", "message": "..."}}``.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from evb.errors import EvbError
from evb.ethernet import mac_to_str
from evb.vdp.station import Vsi
from evb.vdp.wire import (
    FilterEntry,
    FilterFormat,
    VdpMode,
    VsiidFormat,
    format_manager_id,
    format_vsiid,
    manager_id_from_text,
)


class ErrorCode(enum.Enum):
    BAD_REQUEST = "E_BAD_REQUEST"  #: not JSON, unknown command, missing or bad argument
    NOT_ALLOWED = "E_NOT_ALLOWED"  #: the request is illegal now (mode table, filter change)
    NOT_FOUND = "E_NOT_FOUND"  #: no such VSI
    REJECTED = "E_REJECTED"  #: the bridge refused the request (status code in data)
    TIMEOUT = "E_TIMEOUT"  #: no answer in time
    INTERNAL = "E_INTERNAL"


class ControlError(EvbError):
    def __init__(self, code: ErrorCode, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.data:
            out["data"] = self.data
        return out


MODES = {
    "preassoc": VdpMode.PREASSOC,
    "preassoc-rr": VdpMode.PREASSOC_RR,
    "assoc": VdpMode.ASSOC,
    "deassoc": VdpMode.DEASSOC,
}
MODE_NAMES = {v: k for k, v in MODES.items()}
FORMATS = {
    "ipv4": VsiidFormat.IPV4,
    "ipv6": VsiidFormat.IPV6,
    "mac": VsiidFormat.MAC,
    "local": VsiidFormat.LOCAL,
    "uuid": VsiidFormat.UUID,
}
FORMAT_NAMES = {v: k for k, v in FORMATS.items()}


def _bad(message: str) -> ControlError:
    return ControlError(ErrorCode.BAD_REQUEST, message)


def parse_vsiid(text: str, fmt: VsiidFormat) -> bytes:
    """A VSIID in its format's notation: UUID, a.b.c.d, IPv6, MAC, or 32 hex digits (local)."""
    import ipaddress

    try:
        if fmt is VsiidFormat.UUID:
            return uuid.UUID(text).bytes
        if fmt is VsiidFormat.IPV4:
            return bytes(10) + b"\xff\xff" + ipaddress.IPv4Address(text).packed
        if fmt is VsiidFormat.IPV6:
            return ipaddress.IPv6Address(text).packed
        if fmt is VsiidFormat.MAC:
            mac = bytes.fromhex(text.replace(":", "").replace("-", ""))
            if len(mac) != 6:
                raise ValueError("6 octets")
            return bytes(10) + mac
        raw = bytes.fromhex(text.replace("-", "").replace(":", ""))
        if len(raw) > 16:
            raise ValueError("at most 16 octets")
        return raw.ljust(16, b"\0")
    except ValueError as exc:
        raise _bad(f"--uuid {text!r} is not a VSIID of format {FORMAT_NAMES[fmt]} ({exc})") from None


def parse_filter(text: str) -> tuple[FilterFormat, FilterEntry]:
    """vdptool's notation: ``VID`` (1), ``VID-MAC`` (2), ``VID--GROUP`` (3), ``VID-MAC-GROUP`` (4).

    VID is a 16-bit number whose top nibble is PS + PCP (``0xd00d`` = PS 1, PCP 5, VID 13);
    decimal or 0x-hex. MAC with colons.
    """
    parts = text.split("-")
    if len(parts) > 3 or not parts[0]:
        raise _bad(f"--filter {text!r}: expected VID, VID-MAC, VID--GROUP or VID-MAC-GROUP")
    try:
        word = int(parts[0], 0)
    except ValueError:
        raise _bad(f"--filter {text!r}: VID {parts[0]!r} is not a number") from None
    if not 0 <= word <= 0xFFFF:
        raise _bad(f"--filter {text!r}: VID word {word} is outside 0..65535")
    vid, pcp, ps = word & 0xFFF, (word >> 12) & 7, bool(word & 0x8000)
    mac = None
    group = None
    if len(parts) >= 2 and parts[1]:
        try:
            mac = bytes.fromhex(parts[1].replace(":", ""))
        except ValueError:
            mac = b""
        if len(mac) != 6 or ":" not in parts[1]:
            raise _bad(f"--filter {text!r}: {parts[1]!r} is not a MAC address aa:bb:cc:dd:ee:ff")
    if len(parts) == 3:
        try:
            group = int(parts[2], 0)
        except ValueError:
            raise _bad(f"--filter {text!r}: group {parts[2]!r} is not a number") from None
        if not 1 <= group <= 0xFFFFFFFF:
            raise _bad(f"--filter {text!r}: group {group} is outside 1..2^32-1")
    if len(parts) == 2 and not parts[1]:
        raise _bad(f"--filter {text!r}: empty MAC")
    fmt = {(False, False): FilterFormat.VID, (True, False): FilterFormat.MAC_VID}.get(
        (mac is not None, group is not None)
    )
    if fmt is None:
        fmt = FilterFormat.GROUP_MAC_VID if mac is not None else FilterFormat.GROUP_VID
    return fmt, FilterEntry(vid=vid, pcp=pcp, ps=ps, mac=mac, group_id=group)


def vsi_from_args(args: dict[str, Any]) -> Vsi:
    """A ``Vsi`` from the JSON arguments of a request (the CLI's options)."""
    try:
        fmt = FORMATS[args.get("format", "uuid")]
    except KeyError:
        raise _bad(f"format must be one of {', '.join(FORMATS)}") from None
    for key in ("uuid", "type_id", "type_version", "manager_id", "filters"):
        if key not in args:
            raise _bad(f"missing argument {key!r}")
    type_id, version = args["type_id"], args["type_version"]
    if not isinstance(type_id, int) or isinstance(type_id, bool) or not 0 <= type_id <= 0xFFFFFF:
        raise _bad(f"type id {type_id!r} is outside 0..16777215")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= 255:
        raise _bad(f"type version {version!r} is outside 0..255")
    try:
        mgr = manager_id_from_text(str(args["manager_id"]))
    except (EvbError, UnicodeError) as exc:
        raise _bad(f"manager id: {exc}") from None
    raw = args["filters"]  # a bare string would be taken one character a filter: "10" -> VIDs 1 and 0
    if not isinstance(raw, list) or not all(isinstance(f, str | int) and not isinstance(f, bool) for f in raw):
        raise _bad("filters must be a list of strings")
    filters = [parse_filter(str(f)) for f in raw]
    if not filters:
        raise _bad("at least one --filter is needed")
    formats = {f for f, _ in filters}
    if len(formats) != 1:
        raise _bad("all filters of a VSI must have the same form (VID, VID-MAC, VID--GROUP or VID-MAC-GROUP)")
    return Vsi(
        manager_id=mgr,
        type_id=type_id,
        type_version=version,
        vsiid=parse_vsiid(str(args["uuid"]), fmt),
        vsiid_format=fmt,
        filter_format=formats.pop(),
        entries=tuple(e for _, e in filters),
    )


def entry_json(e: FilterEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"vid": e.vid, "pcp": e.pcp, "ps": e.ps}
    if e.mac is not None:
        out["mac"] = mac_to_str(e.mac)
    if e.group_id is not None:
        out["group"] = e.group_id
    return out


def filter_text(e: FilterEntry) -> str:
    word = e.vid | (e.pcp << 12) | (0x8000 if e.ps else 0)
    text = str(word) if word == e.vid else hex(word)
    if e.mac is not None:
        text += "-" + mac_to_str(e.mac)
    if e.group_id is not None:
        text += ("-" if e.mac is not None else "--") + str(e.group_id)
    return text


def vsi_json(vsi: Vsi) -> dict[str, Any]:
    return {
        "manager_id": format_manager_id(vsi.manager_id),
        "type_id": vsi.type_id,
        "type_version": vsi.type_version,
        "format": FORMAT_NAMES.get(VsiidFormat(vsi.vsiid_format), str(vsi.vsiid_format)),
        "uuid": format_vsiid(vsi.vsiid_format, vsi.vsiid),
        "filters": [filter_text(e) for e in vsi.entries],
    }


def key_text(key: tuple[bytes, int, bytes]) -> str:
    return f"{format_manager_id(key[0])}/{format_vsiid(key[1], key[2])}"
