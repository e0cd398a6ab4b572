"""The ``struct`` fast paths agree with the construct reference definitions (evb/*/schema.py).

Decoders: for every generated valid input both give the very value that was encoded; for
mutated, random and captured inputs both give equal values or both raise a ``DecodeError``
with the same class, pdu, field, offset and reason, strict and lenient. Encoders: the same
bytes for every valid value, an ``EncodeError`` from both for every invalid one.

Deliberate differences: none. (The reference also decodes a whole draft ECPDU, which the fast
path does as ``decode_draft_ecpdu_prefix`` + ``check_zero_padding``; ``fast_decode_draft_ecpdu``
in ``tests/fuzzing.py`` is that composition.)
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evb.ecp import wire as ecp_wire
from evb.ecp.schema import (
    DRAFT_ECP_HEADER_LEN,
    ECP_HEADER_LEN,
    reference_decode_draft_ecpdu,
    reference_decode_ecpdu,
    reference_encode_draft_ecpdu,
    reference_encode_ecpdu,
)
from evb.ecp.wire import DraftEcpdu, Ecpdu, EcpOp, decode_ecpdu, encode_draft_ecpdu, encode_ecpdu
from evb.errors import EncodeError
from evb.ethernet import ETH_P_ECP, ETH_P_OUI_EXT
from evb.vdp import wire as vdp_wire
from evb.vdp.schema import (
    ASSOC_HEAD_LEN,
    DRAFT_VDP_HEAD_LEN,
    ENTRY_SIZE,
    FILTER_ENTRY,
    reference_decode_vdpdu,
    reference_encode_tlv,
    reference_encode_vdpdu,
)
from evb.vdp.wire import (
    CiscoL3AddressTlv,
    CiscoVmNameTlv,
    DraftVdpTlv,
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpOrgTlv,
    VdpPdu,
    VdpStatus,
    VdpUnknownTlv,
    VsiManagerIdTlv,
    VsiTlv,
    decode_vdpdu,
    encode_vdpdu,
)
from tests import strategies as s
from tests.conftest import capture_frames
from tests.fuzzing import cross_check, cross_check_frame, fast_decode_draft_ecpdu, mutations, outcome, pdu_layout

SEED = 0x5C4E3A


def same_decoding(fast: Any, reference: Any, data: bytes) -> Any:
    """Both decoders, strict and lenient: equal outcomes; returns the strict one."""
    for strict in (False, True):
        a = outcome(fast, data, strict=strict)
        b = outcome(reference, data, strict=strict)
        assert a == b, f"strict={strict}: fast path {a!r} != reference {b!r} for {data.hex()}"
    return a


def test_schema_sizes_match_the_fast_path_constants() -> None:
    assert ASSOC_HEAD_LEN == vdp_wire.ASSOC_FIXED_LEN == 25
    assert DRAFT_VDP_HEAD_LEN == vdp_wire.DRAFT_FIXED_LEN == 30
    assert {FilterFormat(k): v for k, v in ENTRY_SIZE.items()} == vdp_wire.ENTRY_SIZE
    assert set(FILTER_ENTRY) == {f.value for f in FilterFormat}
    assert ECP_HEADER_LEN == ecp_wire.HEADER_LEN
    assert DRAFT_ECP_HEADER_LEN == ecp_wire.DRAFT_HEADER_LEN


# --------------------------------------------------------------------------- valid inputs


@s.by_kind(s.VDP_TLV_KINDS)
@s.DETERMINISTIC
@given(data=st.data())
def test_vdp_tlv_same_bytes_and_value(strategy: Any, data: st.DataObject) -> None:
    tlv = data.draw(strategy)
    wire = tlv.encode()
    assert reference_encode_tlv(tlv) == wire
    assert same_decoding(decode_vdpdu, reference_decode_vdpdu, wire) == ("ok", VdpPdu((tlv,)))


@s.DETERMINISTIC
@given(s.vdp_pdus, st.booleans())
def test_vdpdu_same_bytes_and_value(pdu: VdpPdu, end_tlv: bool) -> None:
    wire = encode_vdpdu(pdu, end_tlv=end_tlv)
    assert reference_encode_vdpdu(pdu, end_tlv=end_tlv) == wire
    assert same_decoding(decode_vdpdu, reference_decode_vdpdu, wire) == ("ok", pdu)


@s.by_kind(s.ECPDU_KINDS)
@s.DETERMINISTIC
@given(data=st.data())
def test_ecpdu_same_bytes_and_value(strategy: Any, data: st.DataObject) -> None:
    pdu: Ecpdu = data.draw(strategy)
    for end_tlv in (False, True):
        assert reference_encode_ecpdu(pdu, end_tlv=end_tlv) == encode_ecpdu(pdu, end_tlv=end_tlv)
    assert same_decoding(decode_ecpdu, reference_decode_ecpdu, encode_ecpdu(pdu)) == ("ok", pdu)


@s.DETERMINISTIC
@given(s.draft_ecpdus, st.booleans())
def test_draft_ecpdu_same_bytes_and_value(pdu: DraftEcpdu, end_tlv: bool) -> None:
    wire = encode_draft_ecpdu(pdu, end_tlv=end_tlv)
    assert reference_encode_draft_ecpdu(pdu, end_tlv=end_tlv) == wire
    assert same_decoding(fast_decode_draft_ecpdu, reference_decode_draft_ecpdu, wire) == ("ok", pdu)


# --------------------------------------------------------------------------- mutated and random inputs


@s.DETERMINISTIC
@given(s.mutated(s.vdp_pdus.map(encode_vdpdu), lambda b: pdu_layout(b, 0)))
def test_mutated_vdpdu_same_outcome(data: bytes) -> None:
    same_decoding(decode_vdpdu, reference_decode_vdpdu, data)


@s.DETERMINISTIC
@given(s.mutated(s.ecpdus.map(encode_ecpdu), lambda b: pdu_layout(b, 4)))
def test_mutated_ecpdu_same_outcome(data: bytes) -> None:
    cross_check(ETH_P_ECP, data)


@s.DETERMINISTIC
@given(s.mutated(s.draft_ecpdus.map(encode_draft_ecpdu), lambda b: pdu_layout(b, 9)))
def test_mutated_draft_ecpdu_same_outcome(data: bytes) -> None:
    cross_check(ETH_P_OUI_EXT, data)


@s.DETERMINISTIC
@given(st.binary(max_size=100))
def test_random_vdpdu_same_outcome(data: bytes) -> None:
    same_decoding(decode_vdpdu, reference_decode_vdpdu, data)


@s.DETERMINISTIC
@given(st.sampled_from([b"", b"\x10\x01", b"\x14\x01", b"\x10\x02", b"\x20\x01", b"\x18\x01"]), st.binary(max_size=80))
def test_random_ecpdu_same_outcome(head: bytes, rest: bytes) -> None:
    cross_check(ETH_P_ECP, head + rest)


@s.DETERMINISTIC
@given(st.sampled_from([b"", b"\x00\x1b", b"\x00\x1b\x3f", b"\x00\x1b\x3f\x00\x00\x00\x00"]), st.binary(max_size=80))
def test_random_draft_ecpdu_same_outcome(head: bytes, rest: bytes) -> None:
    cross_check(ETH_P_OUI_EXT, head + rest)


def test_captured_and_mutated_ecp_frames_same_outcome() -> None:
    """Every captured ECP frame and, seeded, a slice of each mutation class of each of them."""
    frames = list(dict.fromkeys(d for _name, _number, d in capture_frames() if d[12:14] == b"\x89\x40"))
    assert len(frames) > 50
    checked = 0
    for index, frame in enumerate(frames):
        rng = random.Random(f"{SEED}:{index}")
        cases = list(mutations(frame, rng, stacked_per_frame=10))
        for _kind, case in [cases[0], *rng.sample(cases[1:], 40)]:
            cross_check_frame(case)
            checked += 1
    assert checked >= 3000


# --------------------------------------------------------------------------- invalid values

_U16 = bytes(16)
_OK_VSI = VsiTlv(
    mode=VdpMode.ASSOC,
    status=VdpStatus(),
    type_id=5,
    type_version=4,
    vsiid_format=5,
    vsiid=_U16,
    filter_format=FilterFormat.MAC_VID,
    entries=(FilterEntry(vid=10, mac=bytes(6)),),
)
_OK_DRAFT = DraftVdpTlv(
    mode=2,
    response=0,
    manager_id=1,
    type_id=5,
    type_version=4,
    instance_id=_U16,
    filter_format=FilterFormat.MAC_VID,
    entries=(FilterEntry(vid=10, mac=bytes(6)),),
)


def _vsi(**kw: Any) -> VsiTlv:
    return VsiTlv(**{**{f: getattr(_OK_VSI, f) for f in _OK_VSI.__slots__}, **kw})


def _draft(**kw: Any) -> DraftVdpTlv:
    return DraftVdpTlv(**{**{f: getattr(_OK_DRAFT, f) for f in _OK_DRAFT.__slots__}, **kw})


INVALID_TLVS = {
    "vsi-mode-0": _vsi(mode=0),
    "vsi-mode-5": _vsi(mode=5),
    "vsi-status-code-16": _vsi(status=VdpStatus(code=16)),
    "vsi-type-id-2^24": _vsi(type_id=1 << 24),
    "vsi-type-id-negative": _vsi(type_id=-1),
    "vsi-version-256": _vsi(type_version=256),
    "vsi-vsiid-format-256": _vsi(vsiid_format=256),
    "vsi-vsiid-15-octets": _vsi(vsiid=bytes(15)),
    "vsi-unknown-filter-format": _vsi(filter_format=5, entries=()),
    "vsi-vid-4096": _vsi(entries=(FilterEntry(vid=4096, mac=bytes(6)),)),
    "vsi-vid-negative": _vsi(entries=(FilterEntry(vid=-1, mac=bytes(6)),)),
    "vsi-pcp-8": _vsi(entries=(FilterEntry(vid=1, pcp=8, mac=bytes(6)),)),
    "vsi-fmt2-no-mac": _vsi(entries=(FilterEntry(vid=1),)),
    "vsi-fmt2-short-mac": _vsi(entries=(FilterEntry(vid=1, mac=bytes(5)),)),
    "vsi-fmt2-group": _vsi(entries=(FilterEntry(vid=1, mac=bytes(6), group_id=1),)),
    "vsi-fmt1-mac": _vsi(filter_format=FilterFormat.VID, entries=(FilterEntry(vid=1, mac=bytes(6)),)),
    "vsi-fmt3-no-group": _vsi(filter_format=FilterFormat.GROUP_VID, entries=(FilterEntry(vid=1),)),
    "vsi-fmt3-group-2^32": _vsi(filter_format=FilterFormat.GROUP_VID, entries=(FilterEntry(vid=1, group_id=1 << 32),)),
    "vsi-fmt1-244-entries": _vsi(filter_format=FilterFormat.VID, entries=(FilterEntry(vid=1),) * 244),
    "manager-id-15": VsiManagerIdTlv(bytes(15)),
    "manager-id-17": VsiManagerIdTlv(bytes(17)),
    "org-oui-2": VdpOrgTlv(b"ab", b""),
    "org-too-long": VdpOrgTlv(b"abc", bytes(509)),
    "cisco-vm-name-vsiid-15": CiscoVmNameTlv(1, bytes(15), 1, _U16, b""),
    "cisco-vm-name-vm-id-format-256": CiscoVmNameTlv(1, _U16, 256, _U16, b""),
    "cisco-vm-name-too-long": CiscoVmNameTlv(1, _U16, 1, _U16, bytes(474)),
    "cisco-l3-family-1-5-octets": CiscoL3AddressTlv(1, _U16, 1, bytes(5)),
    "cisco-l3-family-2-4-octets": CiscoL3AddressTlv(1, _U16, 2, bytes(4)),
    "cisco-l3-family-65536": CiscoL3AddressTlv(1, _U16, 1 << 16, b""),
    "cisco-l3-family-negative": CiscoL3AddressTlv(1, _U16, -1, b""),
    "unknown-type-128": VdpUnknownTlv(128, b""),
    "unknown-512-octets": VdpUnknownTlv(6, bytes(512)),
    "draft-mode-256": _draft(mode=256),
    "draft-type-id-2^24": _draft(type_id=1 << 24),
    "draft-instance-id-17": _draft(instance_id=bytes(17)),
    "draft-filter-format-0": _draft(filter_format=0, entries=()),
    "draft-filter-format-300": _draft(filter_format=300, entries=()),
    "draft-fmt2-no-mac": _draft(entries=(FilterEntry(vid=1),)),
    "draft-too-many-entries": _draft(entries=(FilterEntry(vid=1, mac=bytes(6)),) * 61),
}


@pytest.mark.parametrize("tlv", list(INVALID_TLVS.values()), ids=list(INVALID_TLVS))
def test_invalid_tlv_values_raise_encode_error_on_both_paths(tlv: Any) -> None:
    with pytest.raises(EncodeError):
        tlv.encode()
    with pytest.raises(EncodeError):
        reference_encode_tlv(tlv)


INVALID_ECPDUS = {
    "version-16": Ecpdu(EcpOp.ACK, 1, 1, b"", 16),
    "version-negative": Ecpdu(EcpOp.ACK, 1, 1, b"", -1),
    "op-4": Ecpdu(4, 1, 1, b""),  # type: ignore[arg-type]
    "subtype-1024": Ecpdu(EcpOp.ACK, 1024, 1),
    "seq-65536": Ecpdu(EcpOp.ACK, 1, 1 << 16),
    "seq-negative": Ecpdu(EcpOp.ACK, 1, -1),
    "bad-vdp-tlv": Ecpdu(EcpOp.REQUEST, 1, 1, VdpPdu((VsiManagerIdTlv(bytes(3)),))),
}


@pytest.mark.parametrize("pdu", list(INVALID_ECPDUS.values()), ids=list(INVALID_ECPDUS))
def test_invalid_ecpdu_values_raise_encode_error_on_both_paths(pdu: Ecpdu) -> None:
    with pytest.raises(EncodeError):
        encode_ecpdu(pdu)
    with pytest.raises(EncodeError):
        reference_encode_ecpdu(pdu)


INVALID_DRAFT_ECPDUS = {
    "mode-256": DraftEcpdu(256, 1),
    "seq-65536": DraftEcpdu(0, 1 << 16),
    "subtype-negative": DraftEcpdu(0, 1, subtype=-1),
    "protocol-id-65536": DraftEcpdu(0, 1, protocol_id=1 << 16),
    "bad-tlv": DraftEcpdu(0, 1, tlvs=(_draft(mode=-1),)),
}


@pytest.mark.parametrize("pdu", list(INVALID_DRAFT_ECPDUS.values()), ids=list(INVALID_DRAFT_ECPDUS))
def test_invalid_draft_ecpdu_values_raise_encode_error_on_both_paths(pdu: DraftEcpdu) -> None:
    with pytest.raises(EncodeError):
        encode_draft_ecpdu(pdu)
    with pytest.raises(EncodeError):
        reference_encode_draft_ecpdu(pdu)
