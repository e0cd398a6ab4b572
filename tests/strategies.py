"""Hypothesis strategies for every wire dataclass of evb (house style §9).

Every strategy draws values the encoders accept and the decoders give back unchanged, so
``decode(encode(x)) == x`` holds for all of them. Where the wire is ambiguous the strategy
stays on the decodable side, and says so: an ``VdpOrgTlv`` never has the OUI/subtype of a
TLV evb decodes (Cisco 0xF1/0xF2, draft VDP), an ``OrgTlv`` never the EVB/CDCP/draft-EVB
ones; an ``Ecpdu`` carries a ``VdpPdu`` exactly when it is a version-1 VDP request; a
``Frame`` whose ECPDU keeps raw ULPDU bytes has no padding (the bytes would absorb it).

``DETERMINISTIC`` is the settings every property test of the default run uses: derandomized,
no example database, no deadline (CI machines are noisy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from evb.ecp.wire import DraftEcpdu, Ecpdu, EcpOp, EcpSubtype
from evb.ethernet import ETH_P_8021AD, ETH_P_8021Q, VlanTag
from evb.frame import Frame
from evb.lldp.wire import (
    CDCP_SUBTYPE,
    DRAFT_EVB_SUBTYPE,
    EVB_SUBTYPE,
    OUI_8021,
    CdcpTlv,
    ChassisId,
    DraftEvbTlv,
    EvbTlv,
    Lldpdu,
    LldpTlv,
    OrgTlv,
    PortId,
)
from evb.vdp.wire import (
    CISCO_L3_ADDRESS,
    CISCO_VM_NAME,
    DRAFT_VDP_SUBTYPE,
    OUI_CISCO,
    OUI_QBG_DRAFT,
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
from tests.fuzzing import Layout, set_count, set_tlv_length, set_tlv_type

DETERMINISTIC = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MAX_TLV_LENGTH = 511


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


def octets(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


u8 = uint(8)
u16 = uint(16)
macs = octets(6)
ouis = octets(3)

# --------------------------------------------------------------------------- VDP

ENTRY_SIZE = {FilterFormat.VID: 2, FilterFormat.MAC_VID: 8, FilterFormat.GROUP_VID: 6, FilterFormat.GROUP_MAC_VID: 12}


def filter_entries(fmt: FilterFormat) -> st.SearchStrategy[FilterEntry]:
    """One entry of filter format ``fmt``: a MAC and a GroupID exactly where the format has them."""
    return st.builds(
        FilterEntry,
        vid=uint(12),
        pcp=uint(3),
        ps=st.booleans(),
        mac=macs if fmt.has_mac else st.none(),
        group_id=uint(32) if fmt.has_group else st.none(),
    )


def entry_lists(fmt: FilterFormat, fixed: int) -> st.SearchStrategy[tuple[FilterEntry, ...]]:
    """0..several entries, and now and then as many as fit a TLV of ``fixed`` + n x E <= 511 octets."""
    limit = (MAX_TLV_LENGTH - fixed) // ENTRY_SIZE[fmt]
    entry = filter_entries(fmt)
    small = st.lists(entry, max_size=6)
    full = st.lists(entry, min_size=limit - 1, max_size=limit)
    return st.integers(0, 9).flatmap(lambda k: full if k == 0 else small).map(tuple)  # 1 in 10 near full


statuses = st.builds(
    VdpStatus,
    response=st.booleans(),
    s_keep=st.booleans(),
    m_hard=st.booleans(),
    code=uint(4),
    reserved=st.booleans(),
)

#: Known VSIID formats as enum members, plus every other code (0, 6..255) as a plain int.
vsiid_formats = st.one_of(st.sampled_from(VsiidFormat), u8)


@st.composite
def vsi_tlvs(draw: st.DrawFn, fmt: FilterFormat | None = None) -> VsiTlv:
    """Association TLVs: every mode, any status octet, every VSIID format, formats 1-4."""
    ffmt = draw(st.sampled_from(FilterFormat)) if fmt is None else fmt
    return VsiTlv(
        mode=draw(st.sampled_from(VdpMode)),
        status=draw(statuses),
        type_id=draw(uint(24)),
        type_version=draw(u8),
        vsiid_format=draw(vsiid_formats),
        vsiid=draw(octets(16)),
        filter_format=ffmt,
        entries=draw(entry_lists(ffmt, 25)),
    )


manager_id_tlvs = st.builds(VsiManagerIdTlv, octets(16))


def _decodes_as_org(tlv: VdpOrgTlv) -> bool:
    sub = tlv.data[:1]
    if tlv.oui == OUI_CISCO:
        return sub not in (bytes((CISCO_VM_NAME,)), bytes((CISCO_L3_ADDRESS,)))
    if tlv.oui == OUI_QBG_DRAFT:
        return sub != bytes((DRAFT_VDP_SUBTYPE,))
    return True


#: Generic organizational TLVs; the Cisco and draft OUIs appear, but not with a decoded subtype.
vdp_org_tlvs = st.builds(
    VdpOrgTlv,
    oui=st.one_of(ouis, st.sampled_from([OUI_CISCO, OUI_QBG_DRAFT])),
    data=st.binary(max_size=MAX_TLV_LENGTH - 3),
).filter(_decodes_as_org)

cisco_vm_name_tlvs = st.builds(
    CiscoVmNameTlv,
    vsiid_format=u8,
    vsiid=octets(16),
    vm_id_format=u8,
    vm_id=octets(16),
    name=st.binary(max_size=MAX_TLV_LENGTH - 38),
)


@st.composite
def cisco_l3_address_tlvs(draw: st.DrawFn) -> CiscoL3AddressTlv:
    """Family 1 (4 octets), 2 (16 octets) or any other family with any address length."""
    family = draw(st.one_of(st.sampled_from([1, 2]), u16))
    size = {1: st.just(4), 2: st.just(16)}.get(family, st.integers(0, MAX_TLV_LENGTH - 23))
    return CiscoL3AddressTlv(
        vsiid_format=draw(u8), vsiid=draw(octets(16)), family=family, address=draw(octets(draw(size)))
    )


vdp_unknown_tlvs = st.builds(VdpUnknownTlv, type=st.integers(6, 126), value=st.binary(max_size=MAX_TLV_LENGTH))


@st.composite
def draft_vdp_tlvs(draw: st.DrawFn) -> DraftVdpTlv:
    ffmt = draw(st.sampled_from(FilterFormat))
    return DraftVdpTlv(
        mode=draw(u8),
        response=draw(u8),
        manager_id=draw(u8),
        type_id=draw(uint(24)),
        type_version=draw(u8),
        instance_id=draw(octets(16)),
        filter_format=ffmt,
        entries=draw(entry_lists(ffmt, 30)),
    )


#: Every kind of VDP TLV (InvalidTlv excluded: only a lenient decoder makes one).
vdp_tlvs: st.SearchStrategy[VdpTlv] = st.one_of(
    vsi_tlvs(),
    manager_id_tlvs,
    vdp_org_tlvs,
    cisco_vm_name_tlvs,
    cisco_l3_address_tlvs(),
    vdp_unknown_tlvs,
    draft_vdp_tlvs(),
)

#: VDP ULPDUs: well composed (Manager ID first, association TLVs, org TLVs) or any TLV list.
vdp_pdus = st.one_of(
    st.builds(
        lambda mgr, vsis, orgs: VdpPdu((mgr, *vsis, *orgs)),
        manager_id_tlvs,
        st.lists(vsi_tlvs(), min_size=1, max_size=3),
        st.lists(st.one_of(vdp_org_tlvs, cisco_vm_name_tlvs, cisco_l3_address_tlvs()), max_size=2),
    ),
    st.lists(vdp_tlvs, max_size=4).map(lambda tlvs: VdpPdu(tuple(tlvs))),
)

# --------------------------------------------------------------------------- ECP

seqs = u16
subtypes = uint(10).map(lambda s: EcpSubtype(s) if s in (1, 2) else s)
raw_ulpdus = st.binary(max_size=200)

vdp_requests = st.builds(Ecpdu, op=st.just(EcpOp.REQUEST), subtype=st.just(EcpSubtype.VDP), seq=seqs, ulpdu=vdp_pdus)
acks = st.builds(Ecpdu, op=st.just(EcpOp.ACK), subtype=subtypes, seq=seqs, ulpdu=st.just(b""), version=uint(4))
pecsp_requests = st.builds(
    Ecpdu, op=st.just(EcpOp.REQUEST), subtype=st.just(EcpSubtype.PECSP), seq=seqs, ulpdu=raw_ulpdus
)
other_subtype_requests = st.builds(
    Ecpdu, op=st.just(EcpOp.REQUEST), subtype=subtypes.filter(lambda s: s != 1), seq=seqs, ulpdu=raw_ulpdus
)
reserved_op_pdus = st.builds(
    Ecpdu,
    op=st.sampled_from([EcpOp.RESERVED_2, EcpOp.RESERVED_3]),
    subtype=subtypes,
    seq=seqs,
    ulpdu=raw_ulpdus,
    version=uint(4),
)
other_version_requests = st.builds(
    Ecpdu,
    op=st.just(EcpOp.REQUEST),
    subtype=subtypes,
    seq=seqs,
    ulpdu=raw_ulpdus,
    version=uint(4).filter(lambda v: v != 1),
)
ecpdus = st.one_of(vdp_requests, acks, pecsp_requests, other_subtype_requests, reserved_op_pdus, other_version_requests)

draft_ecpdus = st.one_of(
    st.builds(
        DraftEcpdu,
        mode=st.just(0),
        seq=seqs,
        tlvs=st.lists(st.one_of(draft_vdp_tlvs(), vdp_tlvs), max_size=3).map(tuple),
        subtype=u8,
        protocol_id=u16,
    ),
    st.builds(DraftEcpdu, mode=st.integers(1, 255), seq=seqs, tlvs=st.just(()), subtype=u8, protocol_id=u16),
)

# --------------------------------------------------------------------------- LLDP

evb_tlvs = st.builds(
    EvbTlv,
    bgid=st.booleans(),
    rrcap=st.booleans(),
    rrctr=st.booleans(),
    sgid=st.booleans(),
    rrreq=st.booleans(),
    rrstat=uint(2),
    r=uint(3),
    rte=uint(5),
    mode=uint(2),
    rol_rwd=st.booleans(),
    rwd=uint(5),
    rol_rka=st.booleans(),
    rka=uint(5),
    bridge_reserved=uint(5),
    station_reserved=uint(4),
    rka_reserved=uint(2),
)

cdcp_tlvs = st.builds(
    CdcpTlv,
    role=uint(1),
    scomp=st.booleans(),
    chncap=uint(12),
    channels=st.integers(0, 9)
    .flatmap(
        lambda k: (
            st.lists(st.tuples(uint(12), uint(12)), min_size=167, max_size=167)  # (511 - 8) // 3, full
            if k == 0
            else st.lists(st.tuples(uint(12), uint(12)), max_size=8)
        )
    )
    .map(tuple),
    reserved1=uint(3),
    reserved2=uint(15),
)

draft_evb_tlvs = st.builds(
    DraftEvbTlv,
    supported_modes=u8,
    supported_caps=u8,
    configured_modes=u8,
    configured_caps=u8,
    supported_vsis=u16,
    configured_vsis=u16,
    rte=u8,
)

lldp_tlvs = st.builds(LldpTlv, type=st.integers(4, 126), value=st.binary(max_size=MAX_TLV_LENGTH))

_DECODED_ORG = {(OUI_8021, EVB_SUBTYPE), (OUI_8021, CDCP_SUBTYPE), (OUI_QBG_DRAFT, DRAFT_EVB_SUBTYPE)}
#: Org TLVs evb keeps raw (never the OUI/subtype of the EVB, CDCP or draft EVB TLV).
org_tlvs = st.builds(
    OrgTlv,
    oui=st.one_of(ouis, st.sampled_from([OUI_8021, OUI_QBG_DRAFT])),
    subtype=u8,
    info=st.binary(max_size=MAX_TLV_LENGTH - 4),
).filter(lambda t: (t.oui, t.subtype) not in _DECODED_ORG)

optional_lldp_tlvs = st.one_of(lldp_tlvs, org_tlvs, evb_tlvs, cdcp_tlvs, draft_evb_tlvs)

ids = st.binary(min_size=1, max_size=255)
lldpdus = st.builds(
    Lldpdu,
    chassis_id=st.builds(ChassisId, u8, ids),
    port_id=st.builds(PortId, u8, ids),
    ttl=u16,
    tlvs=st.lists(optional_lldp_tlvs, max_size=5).map(tuple),
)

# --------------------------------------------------------------------------- frames

vlan_tags = st.builds(
    VlanTag, vid=uint(12), pcp=uint(3), dei=st.booleans(), tpid=st.sampled_from([ETH_P_8021Q, ETH_P_8021AD])
)


def _pads(pdu: Lldpdu | Ecpdu | DraftEcpdu) -> st.SearchStrategy[int]:
    if isinstance(pdu, Ecpdu) and isinstance(pdu.ulpdu, bytes) and pdu.op != EcpOp.ACK:
        return st.just(0)  # raw ULPDU bytes run to the end of the frame: padding would join them
    return st.one_of(st.just(0), st.integers(1, 60))


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    """Frames of every PDU kind, with 0-2 VLAN tags and zero padding where it is decodable."""
    pdu = draw(st.one_of(lldpdus, ecpdus, draft_ecpdus))
    return Frame(
        dst=draw(macs),
        src=draw(macs),
        pdu=pdu,
        tags=tuple(draw(st.lists(vlan_tags, max_size=2))),
        pad=draw(_pads(pdu)),
    )


# --------------------------------------------------------------------------- by kind

#: One strategy per TLV or PDU kind, for tests parametrized so that no kind hides in a one_of.
VDP_TLV_KINDS = {
    "vsi-fmt1": vsi_tlvs(FilterFormat.VID),
    "vsi-fmt2": vsi_tlvs(FilterFormat.MAC_VID),
    "vsi-fmt3": vsi_tlvs(FilterFormat.GROUP_VID),
    "vsi-fmt4": vsi_tlvs(FilterFormat.GROUP_MAC_VID),
    "manager-id": manager_id_tlvs,
    "org": vdp_org_tlvs,
    "cisco-vm-name": cisco_vm_name_tlvs,
    "cisco-l3-address": cisco_l3_address_tlvs(),
    "unknown": vdp_unknown_tlvs,
    "draft-vdp": draft_vdp_tlvs(),
}
ECPDU_KINDS = {
    "vdp-request": vdp_requests,
    "ack": acks,
    "pecsp": pecsp_requests,
    "other-subtype": other_subtype_requests,
    "reserved-op": reserved_op_pdus,
    "other-version": other_version_requests,
}
LLDP_TLV_KINDS = {
    "raw": lldp_tlvs,
    "org": org_tlvs,
    "evb": evb_tlvs,
    "cdcp": cdcp_tlvs,
    "draft-evb": draft_evb_tlvs,
}


def by_kind(kinds: dict[str, st.SearchStrategy[Any]]) -> pytest.MarkDecorator:
    """``pytest.mark.parametrize("strategy", ...)`` over a kind table, ids = kind names."""
    return pytest.mark.parametrize("strategy", list(kinds.values()), ids=list(kinds))


# --------------------------------------------------------------------------- mutations

MUTATIONS = ("flip", "set", "truncate", "extend", "insert", "delete", "length", "count", "type")


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes], layout: Callable[[bytes], Layout]) -> bytes:
    """``base`` bytes with 1-4 mutations, some aimed at the TLV headers and counts ``layout`` finds.

    Built from hypothesis choices (not a ``Random``), so failures shrink to a minimal mutation.
    """
    data = draw(base)
    where = layout(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(MUTATIONS))
        if not data or kind == "extend":
            data += draw(st.one_of(st.binary(min_size=1, max_size=12), st.integers(1, 12).map(bytes)))
            continue
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data = data[:i] + bytes((data[i] ^ (1 << draw(st.integers(0, 7))),)) + data[i + 1 :]
        elif kind == "set":
            data = data[:i] + bytes((draw(u8),)) + data[i + 1 :]
        elif kind == "truncate":
            data = data[:i]
        elif kind == "insert":
            data = data[:i] + draw(st.binary(min_size=1, max_size=6)) + data[i:]
        elif kind == "delete":
            data = data[:i] + data[i + draw(st.integers(1, 6)) :]
        else:
            spots = [o for o in (where.counts if kind == "count" else where.tlv_headers) if o + 2 <= len(data)]
            if not spots:
                continue
            off = draw(st.sampled_from(spots))
            if kind == "length":
                data = set_tlv_length(data, off, draw(st.integers(0, 511)))
            elif kind == "type":
                data = set_tlv_type(data, off, draw(st.integers(0, 127)))
            else:
                data = set_count(data, off, draw(st.one_of(st.integers(0, 4), u16)))
    return data
