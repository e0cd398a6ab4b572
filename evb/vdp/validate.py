"""Validity checks of VSI identities and filter information (vdp.md §4.4, §5.5).

Used by the station before it sends a request and by the bridge when a request would create
a VSI. Each check returns the VDP status code a bridge answers with (``None`` = valid) and a
reason. We follow the standard rather than lldpad's quirks: VID 1 is valid (lldpad refuses
it), a UUID is all-zero only if all 16 octets are, and the codes are the precise ones
(1 invalid format, 5 invalid VID/GroupID/MAC; lldpad answers 2 to everything).
"""

from __future__ import annotations

from evb.vdp.wire import FilterEntry, FilterFormat, VdpStatusCode, VsiidFormat

Problem = tuple[VdpStatusCode, str]


def check_vsiid(fmt: int, vsiid: bytes) -> Problem | None:
    if len(vsiid) != 16:
        return VdpStatusCode.INVALID_FORMAT, f"VSIID must be 16 octets, not {len(vsiid)}"
    if fmt == VsiidFormat.UUID or fmt == VsiidFormat.IPV6:
        if vsiid == bytes(16):
            return VdpStatusCode.INVALID_FORMAT, "VSIID is all zero"
        return None
    if fmt == VsiidFormat.IPV4:
        if vsiid[:10] != bytes(10) or vsiid[10:12] != b"\xff\xff" or vsiid[12:] == bytes(4):
            return VdpStatusCode.INVALID_FORMAT, "IPv4 VSIID must be ::ffff:a.b.c.d with a non-zero address"
        return None
    if fmt == VsiidFormat.MAC:
        mac = vsiid[10:]
        if vsiid[:10] != bytes(10) or _bad_mac(mac):
            return VdpStatusCode.INVALID_FORMAT, "MAC VSIID must be 10 zero octets and a unicast, non-zero MAC"
        return None
    if fmt == VsiidFormat.LOCAL:
        return None
    return VdpStatusCode.INVALID_FORMAT, f"unknown VSIID format {fmt}"


def _bad_mac(mac: bytes) -> bool:
    return mac == bytes(6) or bool(mac[0] & 0x01)


def check_filter(fmt: int, entries: tuple[FilterEntry, ...], *, group_ids: bool) -> Problem | None:
    """Entries of one filter format; ``group_ids``: BGID and SGID were both negotiated."""
    if fmt not in (1, 2, 3, 4):
        return VdpStatusCode.INVALID_FORMAT, f"unknown filter format {fmt}"
    f = FilterFormat(fmt)
    if not entries:
        return VdpStatusCode.INVALID_FORMAT, "no filter entries"
    if f.has_group and not group_ids:
        return VdpStatusCode.INVALID_FORMAT, f"filter format {fmt} needs group IDs, not negotiated (BGID and SGID)"
    if 25 + len(entries) * f.entry_size > 511:
        return VdpStatusCode.INVALID_FORMAT, f"{len(entries)} entries do not fit one TLV"
    macs = set()
    for i, e in enumerate(entries):
        if not 0 <= e.vid <= 4094:
            return VdpStatusCode.INVALID_VID_GROUP_MAC, f"entry {i}: VID {e.vid} is not 0 (wildcard) or 1..4094"
        if not 0 <= e.pcp <= 7:
            return VdpStatusCode.INVALID_VID_GROUP_MAC, f"entry {i}: PCP {e.pcp} is outside 0..7"
        if f.has_mac:
            if e.mac is None or len(e.mac) != 6 or _bad_mac(e.mac):
                return VdpStatusCode.INVALID_VID_GROUP_MAC, f"entry {i}: MAC must be unicast and non-zero"
            if (e.mac, e.vid, e.group_id) in macs:
                return VdpStatusCode.INVALID_VID_GROUP_MAC, f"entry {i}: duplicate entry"
            macs.add((e.mac, e.vid, e.group_id))
        elif e.mac is not None:
            return VdpStatusCode.INVALID_FORMAT, f"entry {i}: format {fmt} carries no MAC"
        if f.has_group:
            if e.group_id is None or not 1 <= e.group_id <= 0xFFFFFFFF:
                return VdpStatusCode.INVALID_VID_GROUP_MAC, f"entry {i}: GroupID must be 1..2^32-1"
        elif e.group_id is not None:
            return VdpStatusCode.INVALID_FORMAT, f"entry {i}: format {fmt} carries no GroupID"
    return None


def filter_answer_ok(sent: tuple[FilterEntry, ...], got: tuple[FilterEntry, ...]) -> bool:
    """A response's filter matches the request (vdp.md §9.2 step 4): same count, same MACs and
    GroupIDs in the same order, same VID unless the station sent 0 (wildcard), the whole
    PS/PCP/VID word unchanged where the station set PS."""
    if len(sent) != len(got):
        return False
    for s, g in zip(sent, got, strict=True):
        if s.mac != g.mac or s.group_id != g.group_id:
            return False
        if s.vid and s.vid != g.vid:
            return False
        if s.ps and s.vid and (s.ps, s.pcp) != (g.ps, g.pcp):
            return False
    return True
