"""Malformed input, one hand-made case per way of being wrong, and the exact DecodeError it raises.

Every case names the ``pdu``, ``field`` and ``offset`` (octets from the start of the buffer handed
to the decoder: the whole frame for ``decode_frame``) of the error, and a word of its reason.
Structural faults raise in strict and lenient mode alike. TLV-content faults (a TLV whose header
fits but whose body does not decode) raise in strict mode; lenient mode keeps the TLV as an
``InvalidTlv`` carrying the same field, offset and reason, and the frame still re-encodes bit for
bit. The last part is the encoder's side: values that cannot go on the wire raise ``EncodeError``.

Hex layouts follow the spec digest: ecp.md §1, vdp.md §3-§6 and §13, lldp-evb-cdcp.md §1-§6.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from evb.ecp.wire import DraftEcpdu, Ecpdu, EcpOp, decode_ecpdu, encode_ecpdu
from evb.errors import DecodeError, EncodeError, NotEvbFrame
from evb.ethernet import NEAREST_BRIDGE, NEAREST_CUSTOMER_BRIDGE, VlanTag
from evb.frame import Frame, build_frame, decode_frame, encode_frame
from evb.lldp.wire import CdcpTlv, EvbTlv, Lldpdu, decode_lldpdu
from evb.tlv import InvalidTlv
from evb.vdp.wire import (
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpOrgTlv,
    VdpPdu,
    VdpStatus,
    VsiManagerIdTlv,
    VsiTlv,
    decode_vdpdu,
    encode_vdpdu,
    encode_vsi_tlv,
)
from tests.helpers import LABMGR, STATION_MAC, U1


def h(text: str) -> bytes:
    """Hex with spaces allowed."""
    return bytes.fromhex(text)


# --------------------------------------------------------------------------- building blocks

ETH_ECP = NEAREST_CUSTOMER_BRIDGE + STATION_MAC + h("8940")
ETH_LLDP = NEAREST_CUSTOMER_BRIDGE + STATION_MAC + h("88cc")
ETH_DRAFT = NEAREST_BRIDGE + STATION_MAC + h("88b7")
ECP_REQ = h("1001 0001")  #: version 1, op 0, subtype 1 (VDP), seq 1
ECP_ACK = h("1401 0001")

MGR = h("0a10") + LABMGR  #: Manager ID TLV "labmgr", at offset 18 of an ECP frame
U1_HEX = U1.hex()
# Associate TLV of vdp.md §7.1 (U1, format 2, one entry MAC 02:00:00:00:01:01 VID 10), at offset 36.
ASSOC_BODY = h("00 000005 04 05" + U1_HEX)  #: status .. VSIID, 22 octets
ASSOC = h("0621") + ASSOC_BODY + h("02 0001 020000000101000a")
VDP_AT = 14 + 4  #: ULPDU offset in an untagged ECP frame
ASSOC_AT = VDP_AT + len(MGR)  #: 36: the association TLV after the Manager ID TLV
AFTER_ASSOC = ASSOC_AT + len(ASSOC)  #: 71


def ecp(*parts: bytes) -> bytes:
    """An untagged ECP request frame from the station carrying these ULPDU parts."""
    return ETH_ECP + ECP_REQ + b"".join(parts)


def assoc(tlv_type: int, ffmt: int, count: int, entries: bytes, *, body: bytes = ASSOC_BODY) -> bytes:
    """An association TLV with an arbitrary filter format, count and entries (length computed)."""
    value = body + bytes((ffmt,)) + count.to_bytes(2, "big") + entries
    return ((tlv_type << 9) | len(value)).to_bytes(2, "big") + value


def tlv(tlv_type: int, value: bytes) -> bytes:
    return ((tlv_type << 9) | len(value)).to_bytes(2, "big") + value


# LLDPDU of the station: Chassis ID (MAC) at 14, Port ID (MAC) at 23, TTL 120 at 32, next TLV at 36.
CHASSIS = h("0207 04") + STATION_MAC
PORT = h("0407 03") + STATION_MAC
TTL = h("0602 0078")
END = h("0000")
EVB_TLV = h("fe09 0080c2 0d 0305 68 b4 34")  #: converged station EVB TLV (lldp-evb-cdcp.md §2.5)


def lldp(*parts: bytes) -> bytes:
    return ETH_LLDP + b"".join(parts)


def lldp_with(*optional: bytes) -> bytes:
    """A valid LLDPDU with these optional TLVs after TTL, End, and padding to 60 octets."""
    frame = lldp(CHASSIS, PORT, TTL, *optional, END)
    return frame + bytes(max(0, 60 - len(frame)))


# Draft 0.2 ECP (ecp.md §7): OUI 00-1B-3F, protocol id 0, subtype 0, mode 0 (request), seq 1;
# TLVs start at 23. Draft VDP TLV (vdp.md §13): type 127, OUI, subtype 2, mode, response, manager
# id, type id (3), version, instance id (16), format, count, entries.
DRAFT_HEAD = h("001b3f 0000 00 00 0001")
DRAFT_VDP_FIXED = h("001b3f 02 02 00 01 000005 04") + U1 + h("02")  #: up to the filter format
DRAFT_AT = 14 + len(DRAFT_HEAD)  #: 23


def draft(*tlvs: bytes) -> bytes:
    return ETH_DRAFT + DRAFT_HEAD + b"".join(tlvs) + END


CISCO_VM_NAME_FIXED = h("00000c f1 05") + U1 + h("05")  #: up to the VM ID (vdp.md §6)
CISCO_L3_FIXED = h("00000c f2 05") + U1  #: up to the address family


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """One malformed input and the DecodeError it must raise."""

    id: str
    data: bytes
    pdu: str
    field: str
    offset: int
    word: str  #: a word (or a few) of the reason
    content: bool = False  #: a TLV-content fault: lenient decoding keeps an InvalidTlv
    tlv_at: int | None = None  #: where that TLV's header is (content faults)
    decoder: str = "frame"  #: frame, ecp, vdp or lldp


Decoder = Callable[..., object]
DECODERS: dict[str, Decoder] = {
    "frame": decode_frame,
    "ecp": decode_ecpdu,
    "vdp": decode_vdpdu,
    "lldp": decode_lldpdu,
}

STRUCTURAL = [
    # ---- Ethernet, runts
    Case("empty-frame", b"", "ethernet", "header", 0, "needs 14"),
    Case("runt-1-octet", b"\x01", "ethernet", "header", 0, "needs 14"),
    Case("truncated-ethernet-header", ETH_ECP[:13], "ethernet", "header", 0, "needs 14"),
    Case("truncated-vlan-tag", ETH_ECP[:12] + h("8100 00"), "ethernet", "tag", 12, "VLAN tag"),
    Case("vlan-tag-without-ethertype", ETH_ECP[:12] + h("8100 000a"), "ethernet", "tag", 12, "VLAN tag"),
    Case("truncated-inner-tag", ETH_ECP[:12] + h("88a8 0064 8100 000a"), "ethernet", "tag", 16, "VLAN tag"),
    # ---- ECP header
    Case("ecp-header-missing", ETH_ECP, "ecpdu", "header", 14, "needs 4"),
    Case("truncated-ecp-header", ETH_ECP + h("1001 00"), "ecpdu", "header", 14, "needs 4"),
    Case("truncated-ecp-header-tagged", ETH_ECP[:12] + h("8100 000a 8940 10"), "ecpdu", "header", 18, "needs 4"),
    Case("runt-ecp-ack-15-octets", ETH_ECP + h("14"), "ecpdu", "header", 14, "needs 4"),
    Case("ack-trailing-garbage", ETH_ECP + ECP_ACK + h("0000 05"), "ecpdu", "padding", 20, "non-zero"),
    Case("ack-trailing-garbage-ecpdu", ECP_ACK + h("00 05"), "ecpdu", "padding", 5, "garbage", decoder="ecp"),
    # ---- VDP TLV walk
    Case("vdp-header-cut-to-1-octet", ecp(MGR, h("06")), "vdp", "tlv.header", ASSOC_AT, "1 octet"),
    Case("vdp-header-cut-after-assoc", ecp(MGR, ASSOC, h("fe")), "vdp", "tlv.header", AFTER_ASSOC, "1 octet"),
    Case("vdp-length-past-end", ecp(MGR, ASSOC[:12]), "vdp", "tlv.length", ASSOC_AT, "past the end"),
    Case("vdp-manager-id-cut", ecp(MGR[:8]), "vdp", "tlv.length", VDP_AT, "past the end"),
    Case("vdp-garbage-after-end", ecp(MGR, ASSOC, END, h("00 07")), "ecpdu", "padding", AFTER_ASSOC + 3, "garbage"),
    Case("vdp-end-with-length", ecp(MGR, ASSOC, h("0001 00")), "ecpdu", "padding", AFTER_ASSOC + 1, "non-zero"),
    Case("vdpdu-garbage-after-end", MGR + END + h("01"), "vdp", "padding", 20, "garbage", decoder="vdp"),
    Case("vdpdu-length-past-end", MGR[:10], "vdp", "tlv.length", 0, "past the end", decoder="vdp"),
    # ---- draft ECP header
    Case("draft-ecp-header-cut", ETH_DRAFT + DRAFT_HEAD[:7], "draft-ecpdu", "header", 14, "needs 9"),
    # ---- LLDP structure (802.1AB §9.2.7.7: the whole LLDPDU is discarded)
    Case("lldp-runt-1-octet", lldp(h("02")), "lldpdu", "tlv.header", 14, "1 octet"),
    Case("lldp-missing-end", lldp(CHASSIS, PORT, TTL), "lldpdu", "tlv.header", 36, "End"),
    Case("lldp-1-octet-after-ttl", lldp(CHASSIS, PORT, TTL, h("fe")), "lldpdu", "tlv.header", 36, "1 octet"),
    Case("lldp-first-not-chassis-id", lldp(PORT, CHASSIS, TTL, END), "lldpdu", "tlv.type", 14, "Chassis ID"),
    Case("lldp-second-not-port-id", lldp(CHASSIS, TTL, PORT, END), "lldpdu", "tlv.type", 23, "Port ID"),
    Case("lldp-third-not-ttl", lldp(CHASSIS, PORT, EVB_TLV, TTL, END), "lldpdu", "tlv.type", 32, "Time To Live"),
    Case("lldp-end-before-ttl", lldp(CHASSIS, PORT, END, bytes(24)), "lldpdu", "tlv.type", 32, "Time To Live"),
    Case("lldp-ttl-length-3", lldp(CHASSIS, PORT, h("0603 000078"), END), "lldpdu", "ttl.length", 32, "must be 2"),
    Case("lldp-ttl-repeated", lldp(CHASSIS, PORT, TTL, TTL, END), "lldpdu", "tlv.type", 36, "again"),
    Case("lldp-chassis-repeated", lldp(CHASSIS, PORT, TTL, EVB_TLV, CHASSIS, END), "lldpdu", "tlv.type", 47, "again"),
    Case("lldp-chassis-id-length-1", lldp(h("0201 04"), PORT, TTL, END), "lldpdu", "chassis_id.length", 14, "2..256"),
    Case("lldp-port-id-length-1", lldp(CHASSIS, h("0401 03"), TTL, END), "lldpdu", "port_id.length", 23, "2..256"),
    Case("lldp-tlv-past-end", lldp(CHASSIS, PORT, TTL, EVB_TLV[:8]), "lldpdu", "tlv.length", 36, "past the end"),
    Case("lldp-end-length-1", lldp(CHASSIS, PORT, TTL, h("0001 00")), "lldpdu", "end.length", 36, "must be 0"),
    Case("lldp-garbage-after-end", lldp(CHASSIS, PORT, TTL, END, h("00 05")), "lldpdu", "padding", 39, "garbage"),
    Case("lldpdu-missing-end", CHASSIS + PORT + TTL, "lldpdu", "tlv.header", 22, "End", decoder="lldp"),
]

CONTENT = [
    # ---- VDP association TLVs (vdp.md §4: L = 25 + n x E)
    Case(
        "assoc-shorter-than-25",
        ecp(MGR, h("0618") + ASSOC_BODY + h("02 00")),
        "vdp",
        "assoc.length",
        ASSOC_AT,
        "shorter",
        content=True,
        tlv_at=ASSOC_AT,
    ),
    Case("deassoc-length-0", ecp(MGR, h("0800")), "vdp", "deassoc.length", ASSOC_AT, "25", content=True, tlv_at=36),
    Case(
        "filter-format-0",
        ecp(MGR, assoc(3, 0, 1, b"")),
        "vdp",
        "assoc.filter_format",
        ASSOC_AT + 2 + 22,
        "unknown filter format 0",
        content=True,
        tlv_at=ASSOC_AT,
    ),
    Case(
        "filter-format-5",
        ecp(MGR, assoc(1, 5, 1, h("020000000101000a"))),
        "vdp",
        "preassoc.filter_format",
        ASSOC_AT + 2 + 22,
        "unknown filter format 5",
        content=True,
        tlv_at=ASSOC_AT,
    ),
    Case(
        "count-too-many",  # as vdp-bridge-errors-injected.pcap frame 29: count 2, one entry, L = 33
        ecp(MGR, assoc(3, 2, 2, h("020000000101000a"))),
        "vdp",
        "assoc.filter.count",
        ASSOC_AT + 2 + 23,
        "2 entries",
        content=True,
        tlv_at=ASSOC_AT,
    ),
    Case(
        "count-too-few",
        ecp(MGR, assoc(4, 2, 1, h("020000000101000a 020000000102000b"))),
        "vdp",
        "deassoc.filter.count",
        ASSOC_AT + 2 + 23,
        "1 entries",
        content=True,
        tlv_at=ASSOC_AT,
    ),
    Case(
        "count-not-a-whole-entry",  # format 3 (6-octet entries) with 5 octets of entries
        ecp(MGR, assoc(2, 3, 1, h("000003e9 00"))),
        "vdp",
        "preassoc-rr.filter.count",
        ASSOC_AT + 2 + 23,
        "need TLV length 31",
        content=True,
        tlv_at=ASSOC_AT,
    ),
    Case(
        "count-too-many-then-valid-tlv",  # the bad TLV is not the last one; the walk goes on
        ecp(MGR, assoc(3, 1, 3, h("000a 0014")), ASSOC),
        "vdp",
        "assoc.filter.count",
        ASSOC_AT + 2 + 23,
        "3 entries",
        content=True,
        tlv_at=ASSOC_AT,
    ),
    # ---- VSI Manager ID TLV (vdp.md §3: length 16)
    Case(
        "manager-id-length-15",
        ecp(h("0a0f") + LABMGR[:15], ASSOC),
        "vdp",
        "manager_id.length",
        VDP_AT,
        "must be 16",
        content=True,
        tlv_at=VDP_AT,
    ),
    Case(
        "manager-id-length-17",
        ecp(h("0a11") + LABMGR + h("00"), ASSOC),
        "vdp",
        "manager_id.length",
        VDP_AT,
        "must be 16",
        content=True,
        tlv_at=VDP_AT,
    ),
    # ---- organizationally defined VDP TLVs (vdp.md §6)
    Case(
        "vdp-org-shorter-than-3",
        ecp(MGR, ASSOC, h("fe02 0080")),
        "vdp",
        "org.length",
        AFTER_ASSOC,
        "OUI",
        content=True,
        tlv_at=AFTER_ASSOC,
    ),
    Case(
        "cisco-vm-name-too-short",  # 37 octets: the VM ID is one octet short
        ecp(MGR, ASSOC, tlv(127, CISCO_VM_NAME_FIXED + bytes(15))),
        "vdp",
        "cisco.vm_name.length",
        AFTER_ASSOC,
        "38",
        content=True,
        tlv_at=AFTER_ASSOC,
    ),
    Case(
        "cisco-l3-address-too-short",  # 22 octets: no address family
        ecp(MGR, ASSOC, tlv(127, CISCO_L3_FIXED + h("00"))),
        "vdp",
        "cisco.l3_address.length",
        AFTER_ASSOC,
        "23",
        content=True,
        tlv_at=AFTER_ASSOC,
    ),
    Case(
        "cisco-l3-ipv4-address-3-octets",
        ecp(MGR, ASSOC, tlv(127, CISCO_L3_FIXED + h("0001 c00002"))),
        "vdp",
        "cisco.l3_address.address",
        AFTER_ASSOC + 2 + 23,
        "needs TLV length 27",
        content=True,
        tlv_at=AFTER_ASSOC,
    ),
    # ---- draft 0.2 VDP TLV in a draft ECPDU (vdp.md §13: length 30 + 8n)
    Case(
        "draft-vdp-too-short",
        draft(tlv(127, DRAFT_VDP_FIXED + h("00"))),  # 29 octets: the count is cut
        "draft-vdp",
        "length",
        DRAFT_AT,
        "shorter",
        content=True,
        tlv_at=DRAFT_AT,
    ),
    Case(
        "draft-vdp-bad-count",
        draft(tlv(127, DRAFT_VDP_FIXED + h("0002 020000000101000a"))),
        "draft-vdp",
        "count",
        DRAFT_AT + 2 + 28,
        "2 entries",
        content=True,
        tlv_at=DRAFT_AT,
    ),
    Case(
        "draft-vdp-unknown-filter-format",
        draft(tlv(127, DRAFT_VDP_FIXED[:-1] + h("07 0001 020000000101000a"))),
        "draft-vdp",
        "filter_format",
        DRAFT_AT + 2 + 27,
        "unknown filter format 7",
        content=True,
        tlv_at=DRAFT_AT,
    ),
    # ---- LLDP organizationally specific TLVs (lldp-evb-cdcp.md §2, §5, §6)
    Case("evb-length-8", lldp_with(h("fe08") + EVB_TLV[2:-1]), "lldpdu", "evb.length", 36, "must be 9", True, 36),
    Case(
        "evb-length-10", lldp_with(h("fe0a") + EVB_TLV[2:] + h("00")), "lldpdu", "evb.length", 36, "must be 9", True, 36
    ),
    Case("cdcp-length-7", lldp_with(h("fe07 0080c2 0e 800000")), "lldpdu", "cdcp.length", 36, "8 + 3", True, 36),
    Case("cdcp-length-9", lldp_with(h("fe09 0080c2 0e 80000004 00")), "lldpdu", "cdcp.length", 36, "8 + 3", True, 36),
    Case(
        "cdcp-length-12",
        lldp_with(h("fe0c 0080c2 0e 80000004 001001 00")),
        "lldpdu",
        "cdcp.length",
        36,
        "8 + 3",
        True,
        36,
    ),
    Case("lldp-org-length-3", lldp_with(h("fe03 0080c2")), "lldpdu", "org.length", 36, "OUI and subtype", True, 36),
    Case(
        "draft-evb-length-12",
        lldp_with(h("fe0c 001b3f 00 c0 07 40 07 0cdf 0000")),
        "lldpdu",
        "draft_evb.length",
        36,
        "must be 13",
        True,
        36,
    ),
    Case(
        "evb-length-8-after-valid-org",  # offset of the second org TLV
        lldp_with(h("fe06 0080c2 01 0001"), h("fe08") + EVB_TLV[2:-1]),
        "lldpdu",
        "evb.length",
        44,
        "must be 9",
        True,
        44,
    ),
]

CASES = STRUCTURAL + CONTENT


def decode(case: Case, *, strict: bool) -> object:
    return DECODERS[case.decoder](case.data, strict=strict)


def check_error(err: DecodeError, case: Case) -> None:
    assert (err.pdu, err.field, err.offset) == (case.pdu, case.field, case.offset)
    assert case.word in err.reason
    assert not isinstance(err, NotEvbFrame)
    assert str(err) == f"{case.pdu}: {case.field} at offset {case.offset}: {err.reason}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_strict_decoding_raises(case: Case) -> None:
    with pytest.raises(DecodeError) as exc_info:
        decode(case, strict=True)
    check_error(exc_info.value, case)


@pytest.mark.parametrize("case", STRUCTURAL, ids=[c.id for c in STRUCTURAL])
def test_structural_faults_raise_in_lenient_mode_too(case: Case) -> None:
    with pytest.raises(DecodeError) as exc_info:
        decode(case, strict=False)
    check_error(exc_info.value, case)


def _tlvs(decoded: object) -> tuple[object, ...]:
    """The TLV list that holds an InvalidTlv, whatever was decoded."""
    pdu = decoded.pdu if isinstance(decoded, Frame) else decoded
    match pdu:
        case Lldpdu():
            return pdu.tlvs
        case Ecpdu(ulpdu=VdpPdu() as vdp):
            return vdp.tlvs
        case DraftEcpdu():
            return pdu.tlvs
        case VdpPdu():
            return pdu.tlvs
    raise AssertionError(f"no TLV list in {pdu!r}")


@pytest.mark.parametrize("case", CONTENT, ids=[c.id for c in CONTENT])
def test_lenient_decoding_keeps_invalid_tlv(case: Case) -> None:
    with pytest.raises(DecodeError) as exc_info:
        decode(case, strict=True)
    strict_error = exc_info.value
    decoded = decode(case, strict=False)
    invalid = [t for t in _tlvs(decoded) if isinstance(t, InvalidTlv)]
    assert len(invalid) == 1
    bad = invalid[0]
    assert (bad.field, bad.offset, bad.reason) == (case.field, case.offset, strict_error.reason)
    assert case.tlv_at is not None
    raw = bad.encode()
    assert bad.type == case.data[case.tlv_at] >> 1
    assert case.data[case.tlv_at : case.tlv_at + len(raw)] == raw  # the raw TLV, header and all
    err = bad.as_error(case.pdu)
    assert (err.pdu, err.field, err.offset, err.reason) == (case.pdu, case.field, case.offset, strict_error.reason)
    assert isinstance(decoded, Frame)
    assert encode_frame(decoded) == case.data


def test_lenient_keeps_the_tlvs_around_an_invalid_one() -> None:
    case = next(c for c in CONTENT if c.id == "count-too-many-then-valid-tlv")
    vdp = decode_frame(case.data).pdu.ulpdu
    assert isinstance(vdp, VdpPdu)
    assert [type(t) for t in vdp.tlvs] == [VsiManagerIdTlv, InvalidTlv, VsiTlv]
    assert vdp.composition_errors() == []


def test_manager_id_of_wrong_length_breaks_composition() -> None:
    case = next(c for c in CONTENT if c.id == "manager-id-length-15")
    vdp = decode_frame(case.data).pdu.ulpdu
    assert isinstance(vdp, VdpPdu)
    assert vdp.manager_id is None
    assert any("Manager ID" in e for e in vdp.composition_errors())


# --------------------------------------------------------------------------- what is not an error


def test_single_zero_octet_of_padding_after_last_tlv() -> None:
    """An odd-length ULPDU padded to 60 octets ends with one zero octet: padding, not a cut header."""
    ulpdu = MGR + tlv(127, h("00000c aa") + bytes(17))  # 18 + 23 = 41 octets, frame of 59
    frame = build_frame(NEAREST_CUSTOMER_BRIDGE, STATION_MAC, decode_frame(ecp(ulpdu)).pdu)
    assert len(frame) == 60 and frame[-1] == 0
    decoded = decode_frame(frame, strict=True)
    assert decoded.pad == 1
    assert decoded.pdu.ulpdu.tlvs[1] == VdpOrgTlv(h("00000c"), h("aa") + bytes(17))
    assert encode_frame(decoded) == frame
    with pytest.raises(DecodeError) as exc_info:  # the same octet non-zero is a cut TLV header
        decode_frame(frame[:-1] + h("02"))
    assert (exc_info.value.field, exc_info.value.offset) == ("tlv.header", 59)


def test_end_tlv_and_padding_after_vdp_are_not_errors() -> None:
    data = ecp(MGR, ASSOC, END, bytes(5))
    decoded = decode_frame(data, strict=True)
    assert decoded.pad == 7
    assert encode_frame(decoded) == data


@pytest.mark.parametrize(
    ("data", "pdu", "field", "offset"),
    [
        (NEAREST_CUSTOMER_BRIDGE + STATION_MAC + h("0800") + bytes(46), "ethernet", "ethertype", 12),
        (ETH_ECP[:12] + h("8100 000a 0800") + bytes(42), "ethernet", "ethertype", 16),
        (ETH_DRAFT + h("0080c2 0000 00 00 0001") + bytes(37), "draft-ecpdu", "oui", 14),
    ],
    ids=["ipv4", "tagged-ipv4", "0x88b7-other-oui"],
)
def test_other_protocols_raise_not_evb_frame(data: bytes, pdu: str, field: str, offset: int) -> None:
    with pytest.raises(NotEvbFrame) as exc_info:
        decode_frame(data)
    assert (exc_info.value.pdu, exc_info.value.field, exc_info.value.offset) == (pdu, field, offset)


# --------------------------------------------------------------------------- encoding errors


def vsi_tlv(**changes: object) -> VsiTlv:
    """The Associate TLV of vdp.md §7.1, with changes."""
    base = VsiTlv(
        mode=VdpMode.ASSOC,
        status=VdpStatus(),
        type_id=5,
        type_version=4,
        vsiid_format=5,
        vsiid=U1,
        filter_format=FilterFormat.MAC_VID,
        entries=(FilterEntry(vid=10, mac=h("020000000101")),),
    )
    return dataclasses.replace(base, **changes)


def test_vsi_tlv_base_encodes_as_the_spec_example() -> None:
    assert encode_vsi_tlv(vsi_tlv()) == ASSOC


MAC = h("020000000101")
ENCODE_CASES: list[tuple[str, Callable[[], object], str, str]] = [
    ("vid-4096", lambda: encode_vsi_tlv(vsi_tlv(entries=(FilterEntry(vid=4096, mac=MAC),))), "vdp", "entries[0].vid"),
    (
        "second-entry-vid-4096",
        lambda: encode_vsi_tlv(vsi_tlv(entries=(FilterEntry(vid=1, mac=MAC), FilterEntry(vid=4096, mac=MAC)))),
        "vdp",
        "entries[1].vid",
    ),
    ("pcp-8", lambda: encode_vsi_tlv(vsi_tlv(entries=(FilterEntry(vid=10, pcp=8, mac=MAC),))), "vdp", "entries[0].pcp"),
    ("type-id-2**24", lambda: encode_vsi_tlv(vsi_tlv(type_id=2**24)), "vdp", "type_id"),
    ("type-version-256", lambda: encode_vsi_tlv(vsi_tlv(type_version=256)), "vdp", "type_version"),
    ("vsiid-15-octets", lambda: encode_vsi_tlv(vsi_tlv(vsiid=U1[:15])), "vdp", "vsiid"),
    ("status-code-16", lambda: encode_vsi_tlv(vsi_tlv(status=VdpStatus(code=16))), "vdp", "status.code"),
    ("mode-5", lambda: encode_vsi_tlv(vsi_tlv(mode=5)), "vdp", "mode"),
    (
        "format-2-mac-missing",
        lambda: encode_vsi_tlv(vsi_tlv(entries=(FilterEntry(vid=10),))),
        "vdp",
        "entries[0].mac",
    ),
    (
        "format-1-with-mac",
        lambda: encode_vsi_tlv(vsi_tlv(filter_format=FilterFormat.VID)),
        "vdp",
        "entries[0].mac",
    ),
    (
        "format-3-group-missing",
        lambda: encode_vsi_tlv(vsi_tlv(filter_format=FilterFormat.GROUP_VID, entries=(FilterEntry(vid=30),))),
        "vdp",
        "entries[0].group_id",
    ),
    (
        "format-4-group-2**32",
        lambda: encode_vsi_tlv(
            vsi_tlv(filter_format=FilterFormat.GROUP_MAC_VID, entries=(FilterEntry(vid=40, mac=MAC, group_id=2**32),))
        ),
        "vdp",
        "entries[0].group_id",
    ),
    (
        "format-2-61-entries",  # 25 + 61 x 8 = 513 > 511
        lambda: encode_vsi_tlv(vsi_tlv(entries=(FilterEntry(vid=10, mac=MAC),) * 61)),
        "vdp",
        "entries",
    ),
    (
        "format-1-244-entries",  # 25 + 244 x 2 = 513 > 511
        lambda: encode_vsi_tlv(vsi_tlv(filter_format=FilterFormat.VID, entries=(FilterEntry(vid=10),) * 244)),
        "vdp",
        "entries",
    ),
    ("manager-id-15-octets", lambda: VsiManagerIdTlv(LABMGR[:15]).encode(), "vdp", "manager_id"),
    ("ecp-seq-65536", lambda: encode_ecpdu(Ecpdu(EcpOp.REQUEST, 1, 65536, b"")), "ecpdu", "seq"),
    ("ecp-seq-negative", lambda: encode_ecpdu(Ecpdu(EcpOp.ACK, 1, -1)), "ecpdu", "seq"),
    ("ecp-subtype-1024", lambda: encode_ecpdu(Ecpdu(EcpOp.REQUEST, 1024, 1, b"")), "ecpdu", "subtype"),
    ("evb-rte-32", lambda: EvbTlv(rte=32).encode(), "lldpdu", "evb.rte"),
    ("evb-r-8", lambda: EvbTlv(r=8).encode(), "lldpdu", "evb.r"),
    ("evb-rka-negative", lambda: EvbTlv(rka=-1).encode(), "lldpdu", "evb.rka"),
    ("cdcp-scid-4096", lambda: CdcpTlv(role=1, channels=((4096, 0),)).encode(), "lldpdu", "cdcp.channels[0].scid"),
    ("vlan-vid-4096", lambda: VlanTag(4096).encode(), "vlan", "vid"),
    (
        "frame-with-seq-65536",
        lambda: encode_frame(Frame(NEAREST_CUSTOMER_BRIDGE, STATION_MAC, Ecpdu(EcpOp.ACK, 1, 65536))),
        "ecpdu",
        "seq",
    ),
]


@pytest.mark.parametrize(("encode", "pdu", "field"), [c[1:] for c in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES])
def test_encode_error(encode: Callable[[], object], pdu: str, field: str) -> None:
    with pytest.raises(EncodeError) as exc_info:
        encode()
    assert (exc_info.value.pdu, exc_info.value.field) == (pdu, field)


@pytest.mark.parametrize(
    ("ffmt", "entry", "count", "length"),
    [
        (FilterFormat.VID, FilterEntry(vid=10), 243, 511),
        (FilterFormat.MAC_VID, FilterEntry(vid=10, mac=MAC), 60, 505),
        (FilterFormat.GROUP_VID, FilterEntry(vid=10, group_id=1), 81, 511),
        (FilterFormat.GROUP_MAC_VID, FilterEntry(vid=10, mac=MAC, group_id=1), 40, 505),
    ],
)
def test_largest_vsi_tlv_still_encodes(ffmt: FilterFormat, entry: FilterEntry, count: int, length: int) -> None:
    """vdp.md §4.1: at most 243, 60, 81 or 40 entries fit the 9-bit length."""
    tlv_bytes = encode_vsi_tlv(vsi_tlv(filter_format=ffmt, entries=(entry,) * count))
    assert int.from_bytes(tlv_bytes[:2], "big") == (3 << 9) | length
    assert decode_vdpdu(tlv_bytes).tlvs[0].entries == (entry,) * count
    assert encode_vdpdu(decode_vdpdu(tlv_bytes)) == tlv_bytes
    with pytest.raises(EncodeError):
        encode_vsi_tlv(vsi_tlv(filter_format=ffmt, entries=(entry,) * (count + 1)))


def test_uuid_constant_is_u1() -> None:
    assert str(uuid.UUID(bytes=U1)) == "5a0f1c2e-0001-4d3c-8e21-0a0000000001"
