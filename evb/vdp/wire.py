"""VDP wire format (802.1Qbg-2012 clause 41; spec ``vdp.md`` §1-§6, §13).

A VDP ULPDU (the payload of an ECP request with subtype 1) is a list of TLVs with the LLDP
header (7-bit type, 9-bit length): one VSI Manager ID TLV (type 5) first, then association
TLVs (types 1-4: pre-associate, pre-associate with resource reservation, associate,
de-associate), then optional organizationally defined TLVs (type 127). A header with type 0
(End, or the ``00 00`` of padding) ends the list; everything after it must be zero.

Decoding is a hand-written ``struct`` fast path: ``bench/decode.py`` needs it to keep up
with tshark. ``evb/vdp/schema.py`` holds the same layouts as construct definitions; the
property tests in ``tests/test_schema.py`` check that both decode (and encode) every
generated and every fuzzed input the same way.

Strict and lenient decoding: structural faults (a TLV header cut short, a length that runs
past the PDU, garbage after End) always raise ``DecodeError``. A TLV whose header is sound
but whose content is not (a filter count that disagrees with the length, an unknown filter
format, a Manager ID of the wrong length) raises in strict mode and becomes an
``InvalidTlv`` in lenient mode, the way lldpad skips one bad TLV and processes the rest.
Composition rules (Manager ID first, one per PDU) are protocol semantics, checked by
``VdpPdu.composition_errors()``, not by the decoder: such PDUs still decode.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass
from typing import Final

from evb._fast import fast_constructor
from evb.errors import DecodeError, EncodeError
from evb.tlv import InvalidTlv, check_zero_padding, tlv_header

PDU: Final = "vdp"

OUI_CISCO: Final = bytes.fromhex("00000c")
OUI_QBG_DRAFT: Final = bytes.fromhex("001b3f")
CISCO_VM_NAME: Final = 0xF1
CISCO_L3_ADDRESS: Final = 0xF2
DRAFT_VDP_SUBTYPE: Final = 0x02

ASSOC_FIXED_LEN: Final = 25  #: status .. filter count; L = 25 + n * entry size
MANAGER_ID_LEN: Final = 16
VSIID_LEN: Final = 16


class VdpTlvType(enum.IntEnum):
    """VDP TLV types (vdp.md §1)."""

    END = 0
    PREASSOC = 1
    PREASSOC_RR = 2
    ASSOC = 3
    DEASSOC = 4
    MANAGER_ID = 5
    ORG = 127


class VdpMode(enum.IntEnum):
    """The request an association TLV carries: its TLV type (there is no separate mode field)."""

    PREASSOC = 1  #: Pre-Associate
    PREASSOC_RR = 2  #: Pre-Associate with Resource Reservation
    ASSOC = 3  #: Associate
    DEASSOC = 4  #: De-Associate

    @property
    def label(self) -> str:
        return _MODE_LABELS[self]


_MODE_LABELS = {
    VdpMode.PREASSOC: "PREASSOC",
    VdpMode.PREASSOC_RR: "PREASSOC-RR",
    VdpMode.ASSOC: "ASSOC",
    VdpMode.DEASSOC: "DEASSOC",
}


class VsiidFormat(enum.IntEnum):
    """VSIID format codes (vdp.md §4.4). Other codes decode as plain ``int``."""

    IPV4 = 1
    IPV6 = 2
    MAC = 3
    LOCAL = 4
    UUID = 5


class FilterFormat(enum.IntEnum):
    """Filter information formats (vdp.md §5.1)."""

    VID = 1
    MAC_VID = 2
    GROUP_VID = 3
    GROUP_MAC_VID = 4

    @property
    def entry_size(self) -> int:
        return ENTRY_SIZE[self]

    @property
    def has_mac(self) -> bool:
        return self in (FilterFormat.MAC_VID, FilterFormat.GROUP_MAC_VID)

    @property
    def has_group(self) -> bool:
        return self in (FilterFormat.GROUP_VID, FilterFormat.GROUP_MAC_VID)


ENTRY_SIZE: Final = {
    FilterFormat.VID: 2,
    FilterFormat.MAC_VID: 8,
    FilterFormat.GROUP_VID: 6,
    FilterFormat.GROUP_MAC_VID: 12,
}


class VdpStatusCode(enum.IntEnum):
    """Status/error codes in the low nibble of a response (vdp.md §4.3); 6-15 are reserved."""

    SUCCESS = 0
    INVALID_FORMAT = 1
    INSUFFICIENT_RESOURCES = 2
    UNABLE_TO_CONTACT_VSI_MANAGER = 3
    OTHER_FAILURE = 4
    INVALID_VID_GROUP_MAC = 5

    @property
    def meaning(self) -> str:
        return _CODE_MEANINGS[self]


_CODE_MEANINGS = {
    VdpStatusCode.SUCCESS: "success",
    VdpStatusCode.INVALID_FORMAT: "invalid format",
    VdpStatusCode.INSUFFICIENT_RESOURCES: "insufficient resources",
    VdpStatusCode.UNABLE_TO_CONTACT_VSI_MANAGER: "unable to contact VSI manager",
    VdpStatusCode.OTHER_FAILURE: "other failure",
    VdpStatusCode.INVALID_VID_GROUP_MAC: "invalid VID, GroupID or MAC address",
}


def status_meaning(code: int) -> str:
    """Words for a status code, reserved ones included."""
    return _CODE_MEANINGS[VdpStatusCode(code)] if 0 <= code <= 5 else f"reserved code {code}"


# --------------------------------------------------------------------------- status octet


@dataclass(frozen=True, slots=True)
class VdpStatus:
    """The mode/status octet of an association TLV (vdp.md §4.2).

    Bits 0x20 and 0x10 mean S and M (migration hints) in a request, Keep and Hard in a
    response; they are stored once, under both names (``s_keep``, ``m_hard``).
    """

    response: bool = False  #: 0x40: this TLV answers a request
    s_keep: bool = False  #: 0x20: S-bit (request) / Keep (response)
    m_hard: bool = False  #: 0x10: M-bit (request) / Hard error (response)
    code: int = 0  #: 0x0F: status code (response); reserved, 0, in a request
    reserved: bool = False  #: 0x80: reserved, transmitted 0

    @property
    def octet(self) -> int:
        if not 0 <= self.code <= 15:
            raise EncodeError(f"status code {self.code} is outside 0..15", pdu=PDU, field="status.code")
        return (
            (0x80 if self.reserved else 0)
            | (0x40 if self.response else 0)
            | (0x20 if self.s_keep else 0)
            | (0x10 if self.m_hard else 0)
            | self.code
        )

    @classmethod
    def from_octet(cls, octet: int) -> VdpStatus:
        return _STATUS_TABLE[octet]

    @classmethod
    def request(cls, hints: str = "none") -> VdpStatus:
        """A request status with migration hints ``none``, ``to`` (M-bit) or ``from`` (S-bit)."""
        if hints not in ("none", "to", "from"):
            raise EncodeError(f"hints must be none, to or from, not {hints!r}", pdu=PDU, field="status")
        return cls(s_keep=hints == "from", m_hard=hints == "to")

    @classmethod
    def reply(cls, code: int = 0, *, keep: bool = False, hard: bool = False) -> VdpStatus:
        return cls(response=True, s_keep=keep, m_hard=hard, code=code)

    @property
    def keep(self) -> bool:
        return self.response and self.s_keep

    @property
    def hard(self) -> bool:
        return self.response and self.m_hard

    @property
    def hints(self) -> str:
        """Migration hints of a request: ``none``, ``to``, ``from`` or ``to+from``."""
        if self.m_hard and self.s_keep:
            return "to+from"
        return "to" if self.m_hard else "from" if self.s_keep else "none"

    def describe(self) -> str:
        """Compact words: ``req``, ``req hints=to``, ``ok``, ``err=2 keep`` ..."""
        if not self.response:
            text = "req" if self.hints == "none" else f"req hints={self.hints}"
            return text + (f" reason={self.code}" if self.code else "")
        text = "ok" if self.code == 0 else f"err={self.code}({status_meaning(self.code)})"
        if self.s_keep:
            text += " keep"
        if self.m_hard:
            text += " hard"
        return text


_STATUS_TABLE: Final = tuple(
    VdpStatus(bool(o & 0x40), bool(o & 0x20), bool(o & 0x10), o & 0x0F, bool(o & 0x80)) for o in range(256)
)


# --------------------------------------------------------------------------- filter info


@dataclass(frozen=True, slots=True)
class FilterEntry:
    """One filter-information entry: (GroupID, MAC, PS/PCP/VID); which parts exist depends
    on the filter format (vdp.md §5). VID 0 is the wildcard ("bridge, choose")."""

    vid: int
    pcp: int = 0
    ps: bool = False  #: PCP significant
    mac: bytes | None = None
    group_id: int | None = None

    @property
    def qos_word(self) -> int:
        """The 16-bit PS/PCP/VID word as on the wire."""
        return (0x8000 if self.ps else 0) | (self.pcp << 12) | self.vid


# --------------------------------------------------------------------------- TLVs


@dataclass(frozen=True, slots=True)
class VsiManagerIdTlv:
    """VSI Manager ID TLV (type 5): 16 opaque octets (vdp.md §3)."""

    manager_id: bytes

    @classmethod
    def from_text(cls, text: str) -> VsiManagerIdTlv:
        """``labmgr`` → ASCII, zero-filled (as vdptool's ``mgrid2=``); a UUID → its 16 octets."""
        return cls(manager_id_from_text(text))

    def encode(self) -> bytes:
        if len(self.manager_id) != MANAGER_ID_LEN:
            raise EncodeError(f"Manager ID must be 16 octets, got {len(self.manager_id)}", pdu=PDU, field="manager_id")
        return b"\x0a\x10" + self.manager_id


@dataclass(frozen=True, slots=True)
class VsiTlv:
    """An association TLV (types 1-4, vdp.md §4): one VSI's request or response."""

    mode: VdpMode
    status: VdpStatus
    type_id: int  #: VSI Type ID, 24 bits
    type_version: int  #: VSI Type Version, 8 bits
    vsiid_format: int  #: a ``VsiidFormat`` (other codes stay ``int``)
    vsiid: bytes  #: 16 octets
    filter_format: FilterFormat
    entries: tuple[FilterEntry, ...]

    def encode(self) -> bytes:
        return encode_vsi_tlv(self)

    @property
    def vsiid_text(self) -> str:
        return format_vsiid(self.vsiid_format, self.vsiid)


@dataclass(frozen=True, slots=True)
class VdpOrgTlv:
    """Organizationally defined TLV (type 127) of an OUI/subtype evb does not decode."""

    oui: bytes
    data: bytes

    def encode(self) -> bytes:
        if len(self.oui) != 3:
            raise EncodeError("OUI must be 3 octets", pdu=PDU, field="org.oui")
        return tlv_header(127, 3 + len(self.data), pdu=PDU) + self.oui + self.data


@dataclass(frozen=True, slots=True)
class CiscoVmNameTlv:
    """Cisco VM-name TLV (OUI 00-00-0C, subtype 0xF1, vdp.md §6)."""

    vsiid_format: int
    vsiid: bytes
    vm_id_format: int
    vm_id: bytes
    name: bytes

    def encode(self) -> bytes:
        _check_len(self.vsiid, 16, "cisco.vsiid")
        _check_len(self.vm_id, 16, "cisco.vm_id")
        _check_byte(self.vsiid_format, "cisco.vsiid_format")
        _check_byte(self.vm_id_format, "cisco.vm_id_format")
        body = (
            OUI_CISCO
            + bytes((CISCO_VM_NAME, self.vsiid_format))
            + self.vsiid
            + bytes((self.vm_id_format,))
            + self.vm_id
            + self.name
        )
        return tlv_header(127, len(body), pdu=PDU) + body


@dataclass(frozen=True, slots=True)
class CiscoL3AddressTlv:
    """Cisco VM L3-address TLV (OUI 00-00-0C, subtype 0xF2): family 1 IPv4, 2 IPv6."""

    vsiid_format: int
    vsiid: bytes
    family: int
    address: bytes

    def encode(self) -> bytes:
        _check_len(self.vsiid, 16, "cisco.vsiid")
        _check_byte(self.vsiid_format, "cisco.vsiid_format")
        if not 0 <= self.family <= 0xFFFF:
            raise EncodeError(f"address family {self.family} is outside 0..65535", pdu=PDU, field="cisco.family")
        want = _FAMILY_LEN.get(self.family)
        if want is not None:
            _check_len(self.address, want, "cisco.address")
        body = (
            OUI_CISCO
            + bytes((CISCO_L3_ADDRESS, self.vsiid_format))
            + self.vsiid
            + self.family.to_bytes(2, "big")
            + self.address
        )
        return tlv_header(127, len(body), pdu=PDU) + body


_FAMILY_LEN: Final = {1: 4, 2: 16}


@dataclass(frozen=True, slots=True)
class VdpUnknownTlv:
    """A TLV of a reserved type (6..126), kept as it came (lldpad skips them)."""

    type: int
    value: bytes

    def encode(self) -> bytes:
        return tlv_header(self.type, len(self.value), pdu=PDU) + self.value


@dataclass(frozen=True, slots=True)
class DraftVdpTlv:
    """Draft-0.2 VDP TLV (type 127, OUI 00-1B-3F, subtype 2; vdp.md §13), recognition only.

    ``mode`` is 0 Pre-Assoc, 1 Pre-Assoc-RR, 2 Assoc, 3 De-Assoc (the draft numbering).
    """

    mode: int
    response: int
    manager_id: int
    type_id: int
    type_version: int
    instance_id: bytes
    filter_format: FilterFormat
    entries: tuple[FilterEntry, ...]

    def encode(self) -> bytes:
        return encode_draft_vdp_tlv(self)


VdpTlv = (
    VsiManagerIdTlv | VsiTlv | VdpOrgTlv | CiscoVmNameTlv | CiscoL3AddressTlv | DraftVdpTlv | VdpUnknownTlv | InvalidTlv
)


@dataclass(frozen=True, slots=True)
class VdpPdu:
    """A VDP ULPDU: its TLVs in wire order (End and padding are not TLVs here)."""

    tlvs: tuple[VdpTlv, ...]

    @property
    def manager_id(self) -> bytes | None:
        """The Manager ID of the PDU, if its first TLV is a Manager ID TLV."""
        first = self.tlvs[0] if self.tlvs else None
        return first.manager_id if isinstance(first, VsiManagerIdTlv) else None

    @property
    def vsis(self) -> tuple[VsiTlv, ...]:
        return tuple(t for t in self.tlvs if isinstance(t, VsiTlv))

    @property
    def invalid(self) -> tuple[InvalidTlv, ...]:
        return tuple(t for t in self.tlvs if isinstance(t, InvalidTlv))

    def composition_errors(self) -> list[str]:
        """Clause 41 composition rules this PDU breaks (lldpad drops such PDUs whole)."""
        errors = []
        if not self.tlvs or not isinstance(self.tlvs[0], VsiManagerIdTlv):
            errors.append("first TLV is not a VSI Manager ID TLV")
        if sum(isinstance(t, VsiManagerIdTlv) for t in self.tlvs) > 1:
            errors.append("more than one VSI Manager ID TLV")
        if not any(isinstance(t, VsiTlv) or (isinstance(t, InvalidTlv) and 1 <= t.type <= 4) for t in self.tlvs):
            errors.append("no association TLV")
        return errors

    def encode(self, *, end_tlv: bool = False) -> bytes:
        return encode_vdpdu(self, end_tlv=end_tlv)


# --------------------------------------------------------------------------- text helpers


def format_vsiid(fmt: int, vsiid: bytes) -> str:
    """A VSIID in the notation of its format (UUID, IPv4, IPv6, MAC) or hex."""
    try:
        if fmt == VsiidFormat.UUID:
            return str(uuid.UUID(bytes=vsiid))
        if fmt == VsiidFormat.IPV4 and vsiid[:10] == bytes(10):
            return ".".join(str(b) for b in vsiid[12:16])
        if fmt == VsiidFormat.IPV6:
            import ipaddress

            return str(ipaddress.IPv6Address(vsiid))
        if fmt == VsiidFormat.MAC and vsiid[:10] == bytes(10):
            return vsiid[10:16].hex(":")
    except ValueError:
        pass
    return vsiid.hex()


def format_manager_id(mgr: bytes) -> str:
    """``labmgr`` for an ASCII, zero-filled ID; otherwise the hex octets."""
    text = mgr.rstrip(b"\0")
    if text and all(0x21 <= b < 0x7F for b in text):
        return text.decode("ascii")
    return mgr.hex()


def manager_id_from_text(text: str) -> bytes:
    """ASCII name (≤ 16 characters, zero-filled), a UUID, or 32 hex digits."""
    digits = text.replace("-", "")
    if len(digits) == 32:
        try:
            return bytes.fromhex(digits)
        except ValueError:
            pass
    raw = text.encode("ascii", "strict")
    if not 1 <= len(raw) <= MANAGER_ID_LEN:
        raise EncodeError(f"Manager ID text {text!r} must be 1..16 ASCII characters", pdu=PDU, field="manager_id")
    return raw.ljust(MANAGER_ID_LEN, b"\0")


def _check_len(value: bytes, n: int, field: str) -> None:
    if len(value) != n:
        raise EncodeError(f"must be {n} octets, got {len(value)}", pdu=PDU, field=field)


def _check_byte(value: int, field: str) -> None:
    if not 0 <= value <= 255:
        raise EncodeError(f"{value} is outside 0..255", pdu=PDU, field=field)


# --------------------------------------------------------------------------- decoding

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_ASSOC_HEAD = struct.Struct("!IBB16sBH").unpack_from  # status+type id, version, vsiid fmt, vsiid, ffmt, n
_MODES: Final = (None, VdpMode.PREASSOC, VdpMode.PREASSOC_RR, VdpMode.ASSOC, VdpMode.DEASSOC)
_VSIID_FORMATS: Final = {f.value: f for f in VsiidFormat}
_FILTER_FORMATS: Final = {f.value: f for f in FilterFormat}
_SIZES: Final = (0, 2, 8, 6, 12)  #: entry size by filter format code (int-indexed: enum hashing is slow)
_FILTER_FORMAT_BY_CODE: Final = (None, *FilterFormat)
_NAMES: Final = {1: "preassoc", 2: "preassoc-rr", 3: "assoc", 4: "deassoc"}


_make_entry = fast_constructor(FilterEntry)
_make_vsi = fast_constructor(VsiTlv)
_make_pdu = fast_constructor(VdpPdu)
_make_manager = fast_constructor(VsiManagerIdTlv)


def _entries(ffmt: int, data: bytes, p: int, n: int) -> tuple[FilterEntry, ...]:
    """Decode ``n`` entries of format ``ffmt`` at ``p`` (the TLV length is already checked)."""
    out = []
    mk = _make_entry
    if ffmt == 2:
        for q in range(p, p + 8 * n, 8):
            w = (data[q + 6] << 8) | data[q + 7]
            out.append(mk(w & 0xFFF, (w >> 12) & 7, w >= 0x8000, data[q : q + 6], None))
    elif ffmt == 1:
        for q in range(p, p + 2 * n, 2):
            w = (data[q] << 8) | data[q + 1]
            out.append(mk(w & 0xFFF, (w >> 12) & 7, w >= 0x8000, None, None))
    elif ffmt == 3:
        for q in range(p, p + 6 * n, 6):
            w = (data[q + 4] << 8) | data[q + 5]
            out.append(mk(w & 0xFFF, (w >> 12) & 7, w >= 0x8000, None, _U32(data, q)[0]))
    else:
        for q in range(p, p + 12 * n, 12):
            w = (data[q + 10] << 8) | data[q + 11]
            out.append(mk(w & 0xFFF, (w >> 12) & 7, w >= 0x8000, data[q + 4 : q + 10], _U32(data, q)[0]))
    return tuple(out)


def salvage_vsi_tlv(tlv_type: int, value: bytes) -> VsiTlv | None:
    """What can be read of a malformed association TLV (type 1-4) whose 25-octet head is intact
    and whose filter format is known: identity, filter format, and the entries that fit whole
    (the count and the length disagree, or trailing octets). None when not even that is there.
    A bridge uses it to refuse such a request with "invalid format" instead of leaving the
    station to wait (vdp.md §4.3 code 1)."""
    if not 1 <= tlv_type <= 4 or len(value) < ASSOC_FIXED_LEN:
        return None
    word, version, vfmt, vsiid, ffmt_code, n = _ASSOC_HEAD(value, 0)
    if not 1 <= ffmt_code <= 4:
        return None
    fit = min(n, (len(value) - ASSOC_FIXED_LEN) // _SIZES[ffmt_code])
    return _make_vsi(
        _MODES[tlv_type],
        _STATUS_TABLE[word >> 24],
        word & 0xFFFFFF,
        version,
        _VSIID_FORMATS.get(vfmt, vfmt),
        vsiid,
        _FILTER_FORMAT_BY_CODE[ffmt_code],
        _entries(ffmt_code, value, ASSOC_FIXED_LEN, fit),
    )


def _decode_vsi(t: int, data: bytes, s: int, e: int, base: int) -> VsiTlv:
    """Association TLV body ``data[s:e]``; ``base + s - 2`` is where its header sits."""
    length = e - s
    if length < ASSOC_FIXED_LEN:
        raise DecodeError(
            f"TLV length {length} is shorter than the 25 octets before the filter entries",
            pdu=PDU,
            field=f"{_NAMES[t]}.length",
            offset=base + s - 2,
        )
    word, version, vfmt, vsiid, ffmt_code, n = _ASSOC_HEAD(data, s)
    if not 1 <= ffmt_code <= 4:
        raise DecodeError(
            f"unknown filter format {ffmt_code} (known: 1 VID, 2 MAC/VID, 3 GroupID/VID, 4 GroupID/MAC/VID)",
            pdu=PDU,
            field=f"{_NAMES[t]}.filter_format",
            offset=base + s + 22,
        )
    size = _SIZES[ffmt_code]
    if length != ASSOC_FIXED_LEN + n * size:
        have = (length - ASSOC_FIXED_LEN) / size
        raise DecodeError(
            f"{n} entries of format {ffmt_code} need TLV length {ASSOC_FIXED_LEN + n * size}, "
            f"the TLV has length {length} (room for {have:g} entries)",
            pdu=PDU,
            field=f"{_NAMES[t]}.filter.count",
            offset=base + s + 23,
        )
    return _make_vsi(
        _MODES[t],
        _STATUS_TABLE[word >> 24],
        word & 0xFFFFFF,
        version,
        _VSIID_FORMATS.get(vfmt, vfmt),
        vsiid,
        _FILTER_FORMAT_BY_CODE[ffmt_code],
        _entries(ffmt_code, data, s + ASSOC_FIXED_LEN, n),
    )


def _decode_org(data: bytes, s: int, e: int, base: int) -> VdpTlv:
    length = e - s
    if length < 3:
        raise DecodeError(
            f"TLV length {length} cannot hold the 3-octet OUI",
            pdu=PDU,
            field="org.length",
            offset=base + s - 2,
        )
    oui = data[s : s + 3]
    if oui == OUI_CISCO and length >= 4:
        sub = data[s + 3]
        if sub == CISCO_VM_NAME:
            if length < 38:
                raise DecodeError(
                    f"Cisco VM-name TLV length {length} is shorter than 38",
                    pdu=PDU,
                    field="cisco.vm_name.length",
                    offset=base + s - 2,
                )
            return CiscoVmNameTlv(
                data[s + 4], data[s + 5 : s + 21], data[s + 21], data[s + 22 : s + 38], data[s + 38 : e]
            )
        if sub == CISCO_L3_ADDRESS:
            if length < 23:
                raise DecodeError(
                    f"Cisco L3-address TLV length {length} is shorter than 23",
                    pdu=PDU,
                    field="cisco.l3_address.length",
                    offset=base + s - 2,
                )
            family = _U16(data, s + 21)[0]
            want = _FAMILY_LEN.get(family)
            if want is not None and length != 23 + want:
                raise DecodeError(
                    f"address family {family} needs TLV length {23 + want}, the TLV has {length}",
                    pdu=PDU,
                    field="cisco.l3_address.address",
                    offset=base + s + 23,
                )
            return CiscoL3AddressTlv(data[s + 4], data[s + 5 : s + 21], family, data[s + 23 : e])
    if oui == OUI_QBG_DRAFT and length >= 4 and data[s + 3] == DRAFT_VDP_SUBTYPE:
        return decode_draft_vdp_tlv(data, s, e, base)
    return VdpOrgTlv(oui, data[s + 3 : e])


def _decode_manager(data: bytes, s: int, e: int, base: int) -> VsiManagerIdTlv:
    if e - s != MANAGER_ID_LEN:
        raise DecodeError(
            f"Manager ID TLV length is {e - s}, must be 16",
            pdu=PDU,
            field="manager_id.length",
            offset=base + s - 2,
        )
    return _make_manager(data[s:e])


def decode_vdp_tlvs(
    data: bytes, start: int = 0, end: int | None = None, *, base: int = 0, strict: bool = True
) -> tuple[VdpPdu, int]:
    """Decode TLVs from ``data[start:end]`` up to End (a type-0 header) or the end.

    Returns the PDU and the offset where the TLVs end (where End or padding begins).
    Offsets in errors are ``base`` + the offset in ``data``.
    """
    return vdp_tlvs(data, start, len(data) if end is None else end, base, strict)


def vdp_tlvs(data: bytes, start: int, end: int, base: int, strict: bool) -> tuple[VdpPdu, int]:
    """``decode_vdp_tlvs`` with positional arguments only (the ECP hot path calls this)."""
    tlvs: list[VdpTlv] = []
    off = start
    while off < end:
        if off + 2 > end:
            if data[off] == 0:  # one zero octet of padding after the last TLV (odd-length PDU padded to 60)
                break
            raise DecodeError(
                "1 octet left where a 2-octet TLV header must start",
                pdu=PDU,
                field="tlv.header",
                offset=base + off,
            )
        h = (data[off] << 8) | data[off + 1]
        t = h >> 9
        if t == 0:
            break
        s = off + 2
        e = s + (h & 0x1FF)
        if e > end:
            raise DecodeError(
                f"TLV type {t} length {h & 0x1FF} runs {e - end} octets past the end of the PDU",
                pdu=PDU,
                field="tlv.length",
                offset=base + off,
            )
        try:
            if 1 <= t <= 4:
                tlv: VdpTlv = _decode_vsi(t, data, s, e, base)
            elif t == 5:
                tlv = _decode_manager(data, s, e, base)
            elif t == 127:
                tlv = _decode_org(data, s, e, base)
            else:
                tlv = VdpUnknownTlv(t, data[s:e])
        except DecodeError as err:
            if strict:
                raise
            tlv = InvalidTlv.from_error(t, data[s:e], err)
        tlvs.append(tlv)
        off = e
    return _make_pdu(tuple(tlvs)), off


def decode_vdpdu(data: bytes, *, strict: bool = True, base: int = 0) -> VdpPdu:
    """Decode a whole VDP ULPDU; End and zero padding after the TLVs are allowed."""
    pdu, end = decode_vdp_tlvs(data, base=base, strict=strict)
    check_zero_padding(data, end, pdu=PDU, base=base)
    return pdu


def decode_vsi_tlv(data: bytes) -> VsiTlv:
    """Decode exactly one association TLV (header included), strictly."""
    pdu = decode_vdpdu(data)
    if len(pdu.tlvs) != 1 or not isinstance(pdu.tlvs[0], VsiTlv):
        raise DecodeError("not exactly one association TLV", pdu=PDU, field="tlv", offset=0)
    return pdu.tlvs[0]


# --------------------------------------------------------------------------- encoding

_ASSOC_PACK = struct.Struct("!HIBB16sBH").pack
_W = struct.Struct("!H").pack
_GW = struct.Struct("!IH").pack
_GMW = struct.Struct("!I6sH").pack
_MW = struct.Struct("!6sH").pack


def _entry_word(e: FilterEntry, i: int) -> int:
    if not 0 <= e.vid <= 0xFFF:
        raise EncodeError(f"VID {e.vid} is outside 0..4095", pdu=PDU, field=f"entries[{i}].vid")
    if not 0 <= e.pcp <= 7:
        raise EncodeError(f"PCP {e.pcp} is outside 0..7", pdu=PDU, field=f"entries[{i}].pcp")
    return (0x8000 if e.ps else 0) | (e.pcp << 12) | e.vid


def encode_filter_entries(ffmt: int, entries: tuple[FilterEntry, ...]) -> bytes:
    """Entries of one format, without the format code and count."""
    if not 1 <= ffmt <= 4:
        return _checked_entries(ffmt, entries)
    out = []
    for e in entries:
        vid, pcp, mac, group = e.vid, e.pcp, e.mac, e.group_id
        if not (0 <= vid <= 0xFFF and 0 <= pcp <= 7):
            return _checked_entries(ffmt, entries)  # raises the precise error
        word = (0x8000 if e.ps else 0) | (pcp << 12) | vid
        if ffmt == 2 and group is None and mac is not None and len(mac) == 6:
            out.append(_MW(mac, word))
        elif ffmt == 1 and group is None and mac is None:
            out.append(_W(word))
        elif ffmt == 3 and mac is None and group is not None and 0 <= group <= 0xFFFFFFFF:
            out.append(_GW(group, word))
        elif ffmt == 4 and mac is not None and len(mac) == 6 and group is not None and 0 <= group <= 0xFFFFFFFF:
            out.append(_GMW(group, mac, word))
        else:
            return _checked_entries(ffmt, entries)
    return b"".join(out)


def _checked_entries(ffmt: int, entries: tuple[FilterEntry, ...]) -> bytes:
    """The slow path of ``encode_filter_entries``: finds the first bad value and says which."""
    fmt = _FILTER_FORMATS.get(ffmt)
    if fmt is None:
        raise EncodeError(f"unknown filter format {ffmt}", pdu=PDU, field="filter_format")
    for i, e in enumerate(entries):
        _entry_word(e, i)
        if fmt.has_mac and (e.mac is None or len(e.mac) != 6):
            raise EncodeError(f"format {ffmt} needs a 6-octet MAC", pdu=PDU, field=f"entries[{i}].mac")
        if not fmt.has_mac and e.mac is not None:
            raise EncodeError(f"format {ffmt} has no MAC", pdu=PDU, field=f"entries[{i}].mac")
        if fmt.has_group and (e.group_id is None or not 0 <= e.group_id <= 0xFFFFFFFF):
            raise EncodeError(f"format {ffmt} needs a 32-bit GroupID", pdu=PDU, field=f"entries[{i}].group_id")
        if not fmt.has_group and e.group_id is not None:
            raise EncodeError(f"format {ffmt} has no GroupID", pdu=PDU, field=f"entries[{i}].group_id")
    raise EncodeError("entries do not match the filter format", pdu=PDU, field="entries")  # pragma: no cover


def encode_vsi_tlv(tlv: VsiTlv) -> bytes:
    """Encode an association TLV."""
    mode, type_id, version, vfmt, vsiid = tlv.mode, tlv.type_id, tlv.type_version, tlv.vsiid_format, tlv.vsiid
    if not (1 <= mode <= 4 and 0 <= type_id <= 0xFFFFFF and 0 <= version <= 255 and 0 <= vfmt <= 255):
        if mode not in (1, 2, 3, 4):
            raise EncodeError(f"mode {mode} is not 1..4", pdu=PDU, field="mode")
        if not 0 <= type_id <= 0xFFFFFF:
            raise EncodeError(f"VSI Type ID {type_id} is outside 0..2^24-1", pdu=PDU, field="type_id")
        _check_byte(version, "type_version")
        _check_byte(vfmt, "vsiid_format")
    if len(vsiid) != VSIID_LEN:
        _check_len(vsiid, VSIID_LEN, "vsiid")
    entries = tlv.entries
    body = encode_filter_entries(tlv.filter_format, entries)
    length = ASSOC_FIXED_LEN + len(body)
    if length > 511:
        raise EncodeError(
            f"{len(entries)} entries make the TLV {length} octets long, more than 511",
            pdu=PDU,
            field="entries",
        )
    return (
        _ASSOC_PACK(
            (mode << 9) | length,
            (tlv.status.octet << 24) | type_id,
            version,
            vfmt,
            vsiid,
            tlv.filter_format,
            len(entries),
        )
        + body
    )


def encode_vdpdu(pdu: VdpPdu, *, end_tlv: bool = False) -> bytes:
    """Encode the TLVs of a VDP ULPDU; ``end_tlv`` appends ``00 00`` (see vdp.md §2)."""
    data = b"".join([t.encode() for t in pdu.tlvs])
    return data + b"\0\0" if end_tlv else data


# --------------------------------------------------------------------------- draft 0.2

DRAFT_FIXED_LEN: Final = 30  #: OUI .. entry count; TLV length = 30 + n * entry size
_DRAFT_HEAD = struct.Struct("!BBBI16sBH").unpack_from  # mode, response, mgr, type id+ver, iid, fmt, n


def decode_draft_vdp_tlv(data: bytes, s: int, e: int, base: int) -> DraftVdpTlv:
    """Body ``data[s:e]`` of a draft-0.2 VDP TLV (type 127, OUI 00-1B-3F, subtype 2)."""
    length = e - s
    if length < DRAFT_FIXED_LEN:
        raise DecodeError(
            f"draft VDP TLV length {length} is shorter than the 30 octets before the entries",
            pdu="draft-vdp",
            field="length",
            offset=base + s - 2,
        )
    mode, response, mgr, word, iid, ffmt_code, n = _DRAFT_HEAD(data, s + 4)
    ffmt = _FILTER_FORMATS.get(ffmt_code)
    if ffmt is None:
        raise DecodeError(
            f"unknown filter format {ffmt_code}", pdu="draft-vdp", field="filter_format", offset=base + s + 27
        )
    if length != DRAFT_FIXED_LEN + n * ENTRY_SIZE[ffmt]:
        raise DecodeError(
            f"{n} entries of format {ffmt_code} need TLV length {DRAFT_FIXED_LEN + n * ENTRY_SIZE[ffmt]}, "
            f"the TLV has length {length}",
            pdu="draft-vdp",
            field="count",
            offset=base + s + 28,
        )
    return DraftVdpTlv(
        mode, response, mgr, word >> 8, word & 0xFF, iid, ffmt, _entries(ffmt, data, s + DRAFT_FIXED_LEN, n)
    )


def encode_draft_vdp_tlv(tlv: DraftVdpTlv) -> bytes:
    for name in ("mode", "response", "manager_id", "type_version"):
        _check_byte(getattr(tlv, name), name)
    if not 0 <= tlv.type_id <= 0xFFFFFF:
        raise EncodeError(f"VSI Type ID {tlv.type_id} is outside 0..2^24-1", pdu="draft-vdp", field="type_id")
    _check_len(tlv.instance_id, 16, "instance_id")
    entries = encode_filter_entries(tlv.filter_format, tlv.entries)  # refuses unknown formats first
    if DRAFT_FIXED_LEN + len(entries) > 511:
        raise EncodeError(f"{len(tlv.entries)} entries do not fit a TLV", pdu="draft-vdp", field="entries")
    body = (
        OUI_QBG_DRAFT
        + bytes((DRAFT_VDP_SUBTYPE, tlv.mode, tlv.response, tlv.manager_id))
        + tlv.type_id.to_bytes(3, "big")
        + bytes((tlv.type_version,))
        + tlv.instance_id
        + bytes((tlv.filter_format,))
        + len(tlv.entries).to_bytes(2, "big")
        + entries
    )
    return tlv_header(127, len(body), pdu="draft-vdp") + body
