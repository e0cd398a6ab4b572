"""evb/control.py: the control API's vocabulary (pure, no I/O).

``parse_filter`` takes vdptool's ``filter=`` notation (lldpad-behaviour.md §2.3): ``VID`` (format 1),
``VID-MAC`` (2), ``VID--GROUP`` (3), ``VID-MAC-GROUP`` (4); the VID number's top nibble is PS + PCP
(vdp.md §5.2: PS 0x8000, PCP 0x7000, VID 0x0FFF; ``0xd00d`` = PS 1, PCP 5, VID 13); GROUP ≥ 1.
``parse_vsiid`` lays VSIIDs out as vdp.md §4.4 says (IPv4 as IPv4-mapped IPv6, MAC after 10 zero
octets). ``vsi_json``/``filter_text`` print what ``vsi_from_args``/``parse_filter`` read back.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evb.control import (
    ControlError,
    ErrorCode,
    entry_json,
    filter_text,
    key_text,
    parse_filter,
    parse_vsiid,
    vsi_from_args,
    vsi_json,
)
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VsiidFormat
from tests.helpers import LABMGR, U1
from tests.strategies import DETERMINISTIC

MAC1 = bytes.fromhex("020000000101")

# --------------------------------------------------------------------------- parse_filter


@pytest.mark.parametrize(
    ("text", "fmt", "entry"),
    [
        ("10", FilterFormat.VID, FilterEntry(vid=10)),
        ("0", FilterFormat.VID, FilterEntry(vid=0)),  # wildcard: the bridge chooses (vdp.md §5.3)
        ("4095", FilterFormat.VID, FilterEntry(vid=4095)),
        ("0xa", FilterFormat.VID, FilterEntry(vid=10)),
        # the top nibble 0xd = 1101: PS 1, PCP 5 (vdp.md §5.2)
        ("0xd00d", FilterFormat.VID, FilterEntry(vid=13, pcp=5, ps=True)),
        ("53261", FilterFormat.VID, FilterEntry(vid=13, pcp=5, ps=True)),  # 0xd00d in decimal
        ("0x500d", FilterFormat.VID, FilterEntry(vid=13, pcp=5, ps=False)),
        ("0x8000", FilterFormat.VID, FilterEntry(vid=0, pcp=0, ps=True)),
        ("0xffff", FilterFormat.VID, FilterEntry(vid=4095, pcp=7, ps=True)),
        ("10-02:00:00:00:01:01", FilterFormat.MAC_VID, FilterEntry(vid=10, mac=MAC1)),
        ("0xd00d-02:00:00:00:01:01", FilterFormat.MAC_VID, FilterEntry(vid=13, pcp=5, ps=True, mac=MAC1)),
        ("10--200", FilterFormat.GROUP_VID, FilterEntry(vid=10, group_id=200)),
        ("0--0x10", FilterFormat.GROUP_VID, FilterEntry(vid=0, group_id=16)),
        (
            "2-52:00:00:11:22:33-200",
            FilterFormat.GROUP_MAC_VID,
            FilterEntry(vid=2, mac=bytes.fromhex("520000112233"), group_id=200),
        ),
        (
            "0xd00d-02:00:00:00:01:01-4294967295",
            FilterFormat.GROUP_MAC_VID,
            FilterEntry(vid=13, pcp=5, ps=True, mac=MAC1, group_id=0xFFFFFFFF),
        ),
    ],
)
def test_parse_filter(text: str, fmt: FilterFormat, entry: FilterEntry) -> None:
    assert parse_filter(text) == (fmt, entry)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected VID, VID-MAC, VID--GROUP or VID-MAC-GROUP"),
        ("-5", "expected VID, VID-MAC, VID--GROUP or VID-MAC-GROUP"),
        ("1-02:00:00:00:01:01-2-3", "expected VID, VID-MAC, VID--GROUP or VID-MAC-GROUP"),
        ("ten", "VID 'ten' is not a number"),
        ("65536", "VID word 65536 is outside 0..65535"),
        ("0x10000", "VID word 65536 is outside 0..65535"),
        ("10-", "empty MAC"),
        ("10-zz", "'zz' is not a MAC address aa:bb:cc:dd:ee:ff"),
        ("10-020000000101", "'020000000101' is not a MAC address aa:bb:cc:dd:ee:ff"),  # vdptool: colons
        ("10-02:00:00:00:01", "'02:00:00:00:01' is not a MAC address aa:bb:cc:dd:ee:ff"),
        ("10-02:00:00:00:01:01:01", "'02:00:00:00:01:01:01' is not a MAC address aa:bb:cc:dd:ee:ff"),
        ("10--0", "group 0 is outside 1..2^32-1"),  # vdptool: GROUP >= 1
        ("10--4294967296", "group 4294967296 is outside 1..2^32-1"),
        ("10--", "group '' is not a number"),
        ("10--g", "group 'g' is not a number"),
        ("10-02:00:00:00:01:01-", "group '' is not a number"),
    ],
)
def test_parse_filter_errors(text: str, message: str) -> None:
    with pytest.raises(ControlError) as info:
        parse_filter(text)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert info.value.message == f"--filter {text!r}: {message}"


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        (FilterEntry(vid=10), "10"),  # no PS/PCP: plain decimal, as an operator writes it
        (FilterEntry(vid=13, pcp=5, ps=True), "0xd00d"),
        (FilterEntry(vid=13, pcp=5), "0x500d"),
        (FilterEntry(vid=0, ps=True), "0x8000"),
        (FilterEntry(vid=10, mac=MAC1), "10-02:00:00:00:01:01"),
        (FilterEntry(vid=10, group_id=200), "10--200"),
        (FilterEntry(vid=13, pcp=5, ps=True, mac=MAC1, group_id=7), "0xd00d-02:00:00:00:01:01-7"),
    ],
)
def test_filter_text(entry: FilterEntry, text: str) -> None:
    assert filter_text(entry) == text


def entries(fmt: FilterFormat) -> st.SearchStrategy[FilterEntry]:
    return st.builds(
        FilterEntry,
        vid=st.integers(0, 4095),
        pcp=st.integers(0, 7),
        ps=st.booleans(),
        mac=st.binary(min_size=6, max_size=6) if fmt.has_mac else st.none(),
        group_id=st.integers(1, 0xFFFFFFFF) if fmt.has_group else st.none(),
    )


@DETERMINISTIC
@given(st.sampled_from(FilterFormat).flatmap(lambda f: st.tuples(st.just(f), entries(f))))
def test_filter_text_round_trip(case: tuple[FilterFormat, FilterEntry]) -> None:
    fmt, entry = case
    assert parse_filter(filter_text(entry)) == (fmt, entry)


def test_entry_json() -> None:
    assert entry_json(FilterEntry(vid=10)) == {"vid": 10, "pcp": 0, "ps": False}
    assert entry_json(FilterEntry(vid=13, pcp=5, ps=True, mac=MAC1, group_id=7)) == {
        "vid": 13,
        "pcp": 5,
        "ps": True,
        "mac": "02:00:00:00:01:01",
        "group": 7,
    }


# --------------------------------------------------------------------------- parse_vsiid


@pytest.mark.parametrize(
    ("fmt", "text", "octets"),
    [
        (VsiidFormat.UUID, "5a0f1c2e-0001-4d3c-8e21-0a0000000001", U1),
        (VsiidFormat.UUID, "5A0F1C2E00014D3C8E210A0000000001", U1),
        # vdp.md §4.4 example: IPv4 VSIID for 192.0.2.7 is 00x10 ff ff c0 00 02 07
        (VsiidFormat.IPV4, "192.0.2.7", bytes(10) + bytes.fromhex("ffffc0000207")),
        (VsiidFormat.IPV6, "2001:db8::1", bytes.fromhex("20010db8000000000000000000000001")),
        # vdp.md §4.4 example: MAC VSIID 00x10 52 54 00 8e aa 11
        (VsiidFormat.MAC, "52:54:00:8e:aa:11", bytes(10) + bytes.fromhex("5254008eaa11")),
        (VsiidFormat.MAC, "52-54-00-8e-aa-11", bytes(10) + bytes.fromhex("5254008eaa11")),
        (VsiidFormat.MAC, "5254008eaa11", bytes(10) + bytes.fromhex("5254008eaa11")),
        # local: hex, short strings left-aligned and zero-filled (as vdptool's uuid=1122)
        (VsiidFormat.LOCAL, "1122", bytes.fromhex("1122") + bytes(14)),
        (VsiidFormat.LOCAL, "00112233-4455-6677-8899-aabbccddeeff", bytes.fromhex("00112233445566778899aabbccddeeff")),
    ],
)
def test_parse_vsiid(fmt: VsiidFormat, text: str, octets: bytes) -> None:
    assert parse_vsiid(text, fmt) == octets
    assert len(octets) == 16


@pytest.mark.parametrize(
    ("fmt", "text", "name"),
    [
        (VsiidFormat.UUID, "not-a-uuid", "uuid"),
        (VsiidFormat.UUID, "5a0f1c2e-0001-4d3c-8e21-0a00000000", "uuid"),
        (VsiidFormat.IPV4, "192.0.2.300", "ipv4"),
        (VsiidFormat.IPV4, "2001:db8::1", "ipv4"),
        (VsiidFormat.IPV6, "192.0.2.7", "ipv6"),
        (VsiidFormat.MAC, "52:54:00:8e:aa", "mac"),
        (VsiidFormat.MAC, "52:54:00:8e:aa:zz", "mac"),
        (VsiidFormat.LOCAL, "00" * 17, "local"),
        (VsiidFormat.LOCAL, "xyz", "local"),
    ],
)
def test_parse_vsiid_errors(fmt: VsiidFormat, text: str, name: str) -> None:
    with pytest.raises(ControlError) as info:
        parse_vsiid(text, fmt)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert info.value.message.startswith(f"--uuid {text!r} is not a VSIID of format {name} (")


# --------------------------------------------------------------------------- vsi_from_args

ARGS: dict[str, Any] = {
    "uuid": "5a0f1c2e-0001-4d3c-8e21-0a0000000001",
    "type_id": 5,
    "type_version": 4,
    "manager_id": "labmgr",
    "filters": ["10-02:00:00:00:01:01"],
}
VSI = Vsi(
    manager_id=LABMGR,
    type_id=5,
    type_version=4,
    vsiid=U1,
    vsiid_format=VsiidFormat.UUID,
    filter_format=FilterFormat.MAC_VID,
    entries=(FilterEntry(vid=10, mac=MAC1),),
)


def test_vsi_from_args_the_lab_vsi() -> None:
    # the vdptool command of lldpad-behaviour.md §2.3 (capture vdp-assoc-deassoc.pcap frame 1)
    assert vsi_from_args(ARGS) == VSI
    assert vsi_from_args(ARGS | {"format": "uuid"}) == VSI


def test_vsi_from_args_takes_a_bare_vid_number() -> None:
    # vsis.toml may say filters = [10]: a VID-only filter (format 1)
    assert vsi_from_args(ARGS | {"filters": [10, "0xd00d"]}).entries == (
        FilterEntry(vid=10),
        FilterEntry(vid=13, pcp=5, ps=True),
    )


def test_vsi_from_args_other_formats() -> None:
    vsi = vsi_from_args(
        ARGS | {"format": "mac", "uuid": "52:54:00:8e:aa:11", "filters": ["0--200", "0xd00d--201"], "type_id": 0xFFFFFF}
    )
    assert vsi.vsiid_format == VsiidFormat.MAC
    assert vsi.vsiid == bytes(10) + bytes.fromhex("5254008eaa11")
    assert vsi.filter_format is FilterFormat.GROUP_VID
    assert vsi.entries == (FilterEntry(vid=0, group_id=200), FilterEntry(vid=13, pcp=5, ps=True, group_id=201))
    assert vsi.type_id == 0xFFFFFF
    mgr = "5a0f1c2e-0009-4d3c-8e21-0a0000000009"  # a UUID manager ID
    assert vsi_from_args(ARGS | {"manager_id": mgr}).manager_id == uuid.UUID(mgr).bytes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "eui64"}, "format must be one of ipv4, ipv6, mac, local, uuid"),
        ({"uuid": None}, "missing argument 'uuid'"),
        ({"type_id": None}, "missing argument 'type_id'"),
        ({"type_version": None}, "missing argument 'type_version'"),
        ({"manager_id": None}, "missing argument 'manager_id'"),
        ({"filters": None}, "missing argument 'filters'"),
        ({"type_id": -1}, "type id -1 is outside 0..16777215"),
        ({"type_id": 0x1000000}, "type id 16777216 is outside 0..16777215"),
        ({"type_id": "5"}, "type id '5' is outside 0..16777215"),
        ({"type_id": True}, "type id True is outside 0..16777215"),  # JSON true is not a number
        ({"type_version": 256}, "type version 256 is outside 0..255"),
        ({"type_version": 4.0}, "type version 4.0 is outside 0..255"),
        ({"type_version": False}, "type version False is outside 0..255"),
        ({"filters": []}, "at least one --filter is needed"),
        # a bare string must not be read one character a filter ("10" -> VIDs 1 and 0)
        ({"filters": "10"}, "filters must be a list of strings"),
        ({"filters": 10}, "filters must be a list of strings"),
        ({"filters": [None]}, "filters must be a list of strings"),
        ({"filters": [True]}, "filters must be a list of strings"),
        ({"filters": ["10", "10-02:00:00:00:01:01"]}, "all filters of a VSI must have the same form"),
        ({"filters": ["10-"]}, "--filter '10-': empty MAC"),
        ({"uuid": "nope"}, "--uuid 'nope' is not a VSIID of format uuid"),
        ({"format": "ipv4"}, "is not a VSIID of format ipv4"),
    ],
)
def test_vsi_from_args_errors(change: dict[str, Any], message: str) -> None:
    args = {k: v for k, v in (ARGS | change).items() if v is not None}
    with pytest.raises(ControlError) as info:
        vsi_from_args(args)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert message in info.value.message


@pytest.mark.parametrize("mgr", ["x" * 17, "é", ""])
def test_vsi_from_args_bad_manager_id(mgr: str) -> None:
    with pytest.raises(ControlError) as info:
        vsi_from_args(ARGS | {"manager_id": mgr})
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert info.value.message.startswith("manager id: ")


def test_control_error_to_json() -> None:
    assert ControlError(ErrorCode.NOT_FOUND, "no such VSI").to_json() == {
        "code": "E_NOT_FOUND",
        "message": "no such VSI",
    }
    assert ControlError(ErrorCode.REJECTED, "refused", {"status": 2}).to_json() == {
        "code": "E_REJECTED",
        "message": "refused",
        "data": {"status": 2},
    }


# --------------------------------------------------------------------------- vsi_json round trip


def test_vsi_json_of_the_lab_vsi() -> None:
    assert vsi_json(VSI) == {
        "manager_id": "labmgr",
        "type_id": 5,
        "type_version": 4,
        "format": "uuid",
        "uuid": "5a0f1c2e-0001-4d3c-8e21-0a0000000001",
        "filters": ["10-02:00:00:00:01:01"],
    }
    assert key_text(VSI.key) == "labmgr/5a0f1c2e-0001-4d3c-8e21-0a0000000001"


VSIIDS: dict[str, st.SearchStrategy[bytes]] = {
    "uuid": st.binary(min_size=16, max_size=16),
    "ipv4": st.binary(min_size=4, max_size=4).map(lambda a: bytes(10) + b"\xff\xff" + a),
    "ipv6": st.binary(min_size=16, max_size=16),
    "mac": st.binary(min_size=6, max_size=6).map(lambda m: bytes(10) + m),
    "local": st.binary(min_size=16, max_size=16),
}
MANAGER_IDS = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16).map(
        lambda t: t.encode().ljust(16, b"\0")
    ),
    st.binary(min_size=16, max_size=16),
)


@st.composite
def vsis(draw: st.DrawFn) -> tuple[str, Vsi]:
    name = draw(st.sampled_from(sorted(VSIIDS)))
    fmt = draw(st.sampled_from(FilterFormat))
    return name, Vsi(
        manager_id=draw(MANAGER_IDS),
        type_id=draw(st.integers(0, 0xFFFFFF)),
        type_version=draw(st.integers(0, 255)),
        vsiid=draw(VSIIDS[name]),
        vsiid_format=VsiidFormat[name.upper()],
        filter_format=fmt,
        entries=tuple(draw(st.lists(entries(fmt), min_size=1, max_size=4))),
    )


@DETERMINISTIC
@given(vsis())
def test_vsi_json_round_trip(case: tuple[str, Vsi]) -> None:
    name, vsi = case
    doc = vsi_json(vsi)
    assert doc["format"] == name
    assert vsi_from_args(doc) == vsi
