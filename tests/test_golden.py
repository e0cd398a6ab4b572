"""Golden tests: every frame of every reference capture decodes to what the README says.

The captures (``tests/data/pcap/``, see ``PROVENANCE.md``) are two lldpad 1.1 instances, a station
and a bridge, talking over a veth pair. ``tests/data/pcap/README.md`` describes every frame and the
spec digest (``shared/spec/*.md``) gives worked examples taken from them. ``SCRIPTS`` below restates
those descriptions as data, one expected value per frame number; ``test_frame`` checks each frame
against it field by field (Ethernet addresses, LLDP mandatory TLVs, the EVB TLV bit by bit, the ECP
header, every VDP TLV and filter entry), in lenient and strict mode, and checks that the frame
re-encodes bit for bit. Timing facts visible in the pcap timestamps (keep-alive period, bridge
keep-alive timeout, ECP retransmission interval, lldpad's 2-ms VDP delay) are checked at the end.

Where the README and the bytes disagree, the bytes win and a comment says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest

from evb.ecp.wire import Ecpdu, EcpOp, EcpSubtype, decode_ecpdu
from evb.errors import DecodeError
from evb.ethernet import NEAREST_BRIDGE, NEAREST_CUSTOMER_BRIDGE
from evb.frame import Frame, build_frame, decode_frame, encode_frame
from evb.lldp.wire import ChassisId, ChassisIdSubtype, EvbMode, EvbTlv, Lldpdu, PortId, PortIdSubtype
from evb.tlv import InvalidTlv
from evb.vdp.wire import (
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpPdu,
    VsiidFormat,
    VsiManagerIdTlv,
    VsiTlv,
    format_manager_id,
)
from tests.helpers import (
    BRIDGE_MAC,
    LABMGR,
    PCAP_DIR,
    STATION_MAC,
    U1,
    U2,
    U3,
    CapturedFrame,
    capture_frame,
    capture_names,
    read_capture,
)

ST, BR = "station", "bridge"
SENDER_MAC = {ST: STATION_MAC, BR: BRIDGE_MAC}

# Offsets inside a captured VDP request frame (no VLAN tag): Ethernet header 14, ECP header 4,
# Manager ID TLV 2 + 16; the association TLV header follows, its status octet right after.
ECP_AT = 14
VDP_AT = ECP_AT + 4
ASSOC_AT = VDP_AT + 18
STATUS_AT = ASSOC_AT + 2
COUNT_AT = ASSOC_AT + 2 + 23  #: the 2-octet number of entries (vdp.md §4.1, offset 25 of the TLV)


# --------------------------------------------------------------------------- expected values


@dataclass(frozen=True)
class Evb:
    """LLDPDU of the nearest-customer-bridge agent (dst 01:80:c2:00:00:00), carrying this EVB TLV."""

    by: str
    tlv: EvbTlv
    info: str | None = None  #: the 5 information octets, where the spec prints them (lldp-evb-cdcp.md §2.5)


@dataclass(frozen=True)
class Nb:
    """LLDPDU of the nearest-bridge agent (dst 01:80:c2:00:00:0e): mandatory TLVs only, no EVB TLV."""

    by: str


@dataclass(frozen=True)
class Vsi:
    """An association TLV as the README describes it (type id 5 and version 4 in every file)."""

    mode: VdpMode
    status: int  #: the status octet
    vsiid: str  #: UUID text for format 5, 32 hex digits otherwise
    filter_format: FilterFormat
    entries: tuple[FilterEntry, ...]
    vsiid_format: int = VsiidFormat.UUID
    type_id: int = 5
    type_version: int = 4


@dataclass(frozen=True)
class BadTlv:
    """A TLV lenient decoding must keep as ``InvalidTlv`` (strict decoding raises)."""

    type: int
    field: str
    offset: int
    value: bytes


@dataclass(frozen=True)
class Req:
    """ECP request (op 0, subtype 1 VDP, version 1) carrying these VDP TLVs, in order."""

    by: str
    seq: int
    tlvs: tuple[Vsi | BadTlv | bytes, ...]  #: ``bytes`` = a Manager ID TLV with these 16 octets


@dataclass(frozen=True)
class Ack:
    """ECP acknowledgement (op 1, subtype 1, version 1), an 18-octet frame."""

    by: str
    seq: int


Expected = Evb | Nb | Req | Ack


def evb(
    bridge: int,
    station: int,
    *,
    r: int,
    rte: int,
    mode: EvbMode,
    rwd: tuple[int, int],
    rka: tuple[int, int],
) -> EvbTlv:
    """An EVB TLV in the README's notation: the two status octets in hex, then R, RTE, mode,
    (ROL, RWD) and (ROL, RKA). Status bits per lldp-evb-cdcp.md §2: bridge BGID 0x04, RRCAP 0x02,
    RRCTR 0x01; station SGID 0x08, RRREQ 0x04, RRSTAT 0x03. Reserved bits are zero in every file."""
    assert bridge < 0x08 and station < 0x10, "reserved bits"
    return EvbTlv(
        bgid=bool(bridge & 0x04),
        rrcap=bool(bridge & 0x02),
        rrctr=bool(bridge & 0x01),
        sgid=bool(station & 0x08),
        rrreq=bool(station & 0x04),
        rrstat=station & 0x03,
        r=r,
        rte=rte,
        mode=mode,
        rol_rwd=bool(rwd[0]),
        rwd=rwd[1],
        rol_rka=bool(rka[0]),
        rka=rka[1],
    )


BRIDGE, STATION = EvbMode.BRIDGE, EvbMode.STATION


def converged(rka: int = 20, *, group_ids: bool = False) -> tuple[Evb, Evb]:
    """The converged EVB(br)/EVB(st) pair with default R=3, RTE=8, RWD=20 (ROL 1 on RWD and RKA).

    With ``evbgpid=yes`` on both sides the status octets are 07/0d instead of 03/05.
    """
    b, s = (0x07, 0x0D) if group_ids else (0x03, 0x05)
    info = {(20, False): ("03 05 68 74 34", "03 05 68 b4 34"), (20, True): ("07 0d 68 74 34", "07 0d 68 b4 34")}
    info_br, info_st = info.get((rka, group_ids), (None, None))
    return (
        Evb(BR, evb(b, s, r=3, rte=8, mode=BRIDGE, rwd=(1, 20), rka=(1, rka)), info_br),
        Evb(ST, evb(b, s, r=3, rte=8, mode=STATION, rwd=(1, 20), rka=(1, rka)), info_st),
    )


EVB_BR, EVB_ST = converged()  # vdp-assoc-deassoc.pcap frames 5 and 7 (lldp-evb-cdcp.md §2.5)
NB_BR, NB_ST = Nb(BR), Nb(ST)


def entry(vid: int, mac: str | None = None, group: int | None = None) -> FilterEntry:
    """A filter entry; PS and PCP are 0 in every file."""
    return FilterEntry(
        vid=vid, pcp=0, ps=False, mac=None if mac is None else bytes.fromhex(mac.replace(":", "")), group_id=group
    )


def fmt1(*vids: int) -> tuple[FilterFormat, tuple[FilterEntry, ...]]:
    return FilterFormat.VID, tuple(entry(v) for v in vids)


def fmt2(*pairs: tuple[str, int]) -> tuple[FilterFormat, tuple[FilterEntry, ...]]:
    return FilterFormat.MAC_VID, tuple(entry(v, mac=m) for m, v in pairs)


def fmt3(*pairs: tuple[int, int]) -> tuple[FilterFormat, tuple[FilterEntry, ...]]:
    return FilterFormat.GROUP_VID, tuple(entry(v, group=g) for g, v in pairs)


def fmt4(*triples: tuple[int, str, int]) -> tuple[FilterFormat, tuple[FilterEntry, ...]]:
    return FilterFormat.GROUP_MAC_VID, tuple(entry(v, mac=m, group=g) for g, m, v in triples)


def vsi(
    mode: VdpMode,
    vsiid: bytes | str,
    filt: tuple[FilterFormat, tuple[FilterEntry, ...]],
    *,
    status: int = 0x00,
    vsiid_format: int = VsiidFormat.UUID,
) -> Vsi:
    text = str(uuid.UUID(bytes=vsiid)) if isinstance(vsiid, bytes) else vsiid
    return Vsi(mode, status, text, filt[0], filt[1], vsiid_format)


ASSOC, DEASSOC = VdpMode.ASSOC, VdpMode.DEASSOC
PREASSOC, PREASSOC_RR = VdpMode.PREASSOC, VdpMode.PREASSOC_RR

F_U1 = fmt2(("02:00:00:00:01:01", 10))  #: filter=10-02:00:00:00:01:01, the filter of most files


class Exchange(tuple[Expected, ...]):
    """The 4 frames of a completed VDP exchange (captures README, "Every completed VDP exchange")."""

    __slots__ = ()


def exchange(seq: int, request: Vsi, *, status: int = 0x40, bridge_seq: int | None = None) -> Exchange:
    """Station ECP REQ (status 0x00) -> bridge ECP ACK (same seq) -> bridge ECP REQ in its own
    sequence space with the same TLV echoed, status ``status`` -> station ECP ACK."""
    assert request.status == 0x00
    rseq = seq if bridge_seq is None else bridge_seq
    response = dataclasses.replace(request, status=status)
    return Exchange((Req(ST, seq, (LABMGR, request)), Ack(BR, seq), Req(BR, rseq, (LABMGR, response)), Ack(ST, rseq)))


EXCHANGES: dict[str, list[int]] = {}  #: file -> first frame numbers of its ``exchange()`` blocks


def script(name: str, *blocks: tuple[int, Sequence[Expected]]) -> dict[int, Expected]:
    """Frame number -> expected value; each block gives the number of its first frame (checked)."""
    table: dict[int, Expected] = {}
    for first, rows in blocks:
        if first != len(table) + 1:
            raise ValueError(f"{name}: block at frame {first} does not follow frame {len(table)}")
        if isinstance(rows, Exchange):
            EXCHANGES.setdefault(name, []).append(first)
        table.update((first + i, row) for i, row in enumerate(rows))
    return table


# --------------------------------------------------------------------------- per-file scripts

RR_GRANTED = script(
    "evb-rr-granted.pcap",
    # README: bridge-status / station-status / R / RTE / mode / ROL,RWD / ROL,RKA; info octets
    # as in lldp-evb-cdcp.md §2.5 "Convergence from scratch".
    (1, [Evb(BR, evb(0x02, 0x00, r=3, rte=8, mode=BRIDGE, rwd=(0, 20), rka=(0, 20)), "02 00 68 54 14"), NB_BR]),
    (3, [Evb(ST, evb(0x00, 0x07, r=3, rte=8, mode=STATION, rwd=(0, 20), rka=(0, 20)), "00 07 68 94 14"), NB_ST]),
    (5, [Evb(BR, evb(0x03, 0x07, r=3, rte=8, mode=BRIDGE, rwd=(1, 20), rka=(1, 20)), "03 07 68 74 34"), NB_BR]),
    (7, [Evb(ST, evb(0x03, 0x05, r=3, rte=8, mode=STATION, rwd=(1, 20), rka=(1, 20)), "03 05 68 b4 34"), NB_ST]),
    (9, [Evb(BR, evb(0x03, 0x05, r=3, rte=8, mode=BRIDGE, rwd=(1, 20), rka=(1, 20)), "03 05 68 74 34")]),
    # 10-17: the converged pair each second, plus the station's LLDP-nb
    (10, [EVB_ST, NB_ST, EVB_BR, EVB_ST, NB_ST, EVB_BR, EVB_ST, EVB_BR]),
)

TIMERS_BR = evb(0x03, 0x05, r=5, rte=14, mode=BRIDGE, rwd=(1, 22), rka=(1, 24))
TIMERS_ST = evb(0x03, 0x05, r=5, rte=14, mode=STATION, rwd=(1, 22), rka=(1, 24))
TIMERS = script(
    "evb-timers.pcap",
    # bridge R 5, RTE 14, RWD 22, RKA 24; station R 2, RTE 10, RWD 18, RKA 21 (lldp-evb-cdcp.md §2.5)
    (1, [Evb(BR, evb(0x02, 0x00, r=5, rte=14, mode=BRIDGE, rwd=(0, 22), rka=(0, 24)), "02 00 ae 56 18"), NB_BR]),
    (3, [Evb(ST, evb(0x00, 0x07, r=2, rte=10, mode=STATION, rwd=(0, 18), rka=(0, 21)), "00 07 4a 92 15"), NB_ST]),
    (5, [Evb(BR, evb(0x03, 0x07, r=5, rte=14, mode=BRIDGE, rwd=(0, 22), rka=(0, 24)), "03 07 ae 56 18"), NB_BR]),
    (7, [Evb(ST, TIMERS_ST, "03 05 ae b6 38"), NB_ST]),
    (9, [Evb(BR, TIMERS_BR, "03 05 ae 76 38")]),
    (10, [Evb(ST, TIMERS_ST), NB_ST, Evb(BR, TIMERS_BR), Evb(ST, TIMERS_ST), NB_ST, Evb(BR, TIMERS_BR)]),
    (16, [Evb(ST, TIMERS_ST), Evb(BR, TIMERS_BR)]),
)

ASSOC_DEASSOC = script(
    "vdp-assoc-deassoc.pcap",
    (1, exchange(1, vsi(ASSOC, U1, F_U1))),
    (5, [EVB_BR, NB_BR, EVB_ST, NB_ST]),
    (9, exchange(2, vsi(DEASSOC, U1, F_U1))),
    # The README says "13-16 EVB/LLDP-nb", but the file ends at frame 15 (the bytes win).
    (13, [EVB_BR, NB_BR, EVB_ST]),
)

PREASSOC_FILE = script(
    "vdp-preassoc.pcap",
    (1, exchange(1, vsi(PREASSOC, U1, F_U1))),
    (5, [EVB_ST, NB_ST, EVB_BR]),
    (8, exchange(2, vsi(ASSOC, U1, F_U1))),
    (12, [EVB_ST, NB_ST, EVB_BR]),
    (15, exchange(3, vsi(DEASSOC, U1, F_U1))),
    (19, [EVB_ST, EVB_BR]),
)

PREASSOC_RR_FILE = script(
    "vdp-preassoc-rr.pcap",
    (1, exchange(1, vsi(PREASSOC_RR, U1, F_U1))),
    (5, [EVB_ST, NB_ST, EVB_BR]),
    (8, exchange(2, vsi(DEASSOC, U1, F_U1))),
    (12, [EVB_ST, NB_ST, EVB_BR]),
)

F_U2 = fmt2(("02:00:00:00:01:02", 10))
F_U3 = fmt2(("02:00:00:00:01:03", 10))
ASSOC_3VSI = script(
    "vdp-assoc-3vsi.pcap",
    (1, exchange(1, vsi(ASSOC, U1, F_U1))),
    (5, exchange(2, vsi(ASSOC, U2, F_U2))),
    (9, exchange(3, vsi(ASSOC, U3, F_U3))),
    (13, [EVB_ST, NB_ST, EVB_BR, EVB_ST, NB_ST, EVB_BR]),
    (19, exchange(4, vsi(DEASSOC, U1, F_U1))),
    (23, exchange(5, vsi(DEASSOC, U2, F_U2))),
    (27, exchange(6, vsi(DEASSOC, U3, F_U3))),
    (31, [EVB_ST, EVB_BR, EVB_ST, EVB_BR]),
)

FMT1 = script(
    "vdp-filter-fmt1-vid.pcap",
    # VID 0 (wildcard) comes back unchanged in the response (frame 3): lldpad's release build.
    (1, exchange(1, vsi(ASSOC, U1, fmt1(0)))),
    (5, [EVB_ST, NB_ST, EVB_BR]),
    (8, exchange(2, vsi(ASSOC, U2, fmt1(100)))),
    (12, [EVB_ST, NB_ST, EVB_BR]),
    (15, exchange(3, vsi(DEASSOC, U1, fmt1(0)))),
    (19, exchange(4, vsi(DEASSOC, U2, fmt1(100)))),
    (23, [EVB_ST, EVB_BR]),
)

F_MULTI = fmt2(("02:00:00:00:01:01", 10), ("02:00:00:00:01:02", 20), ("02:00:00:00:01:03", 0))
FMT2 = script(
    "vdp-filter-fmt2-multi.pcap",
    (1, exchange(1, vsi(ASSOC, U1, F_MULTI))),
    (5, [EVB_BR, NB_BR, EVB_ST, NB_ST]),
    (9, exchange(2, vsi(DEASSOC, U1, F_MULTI))),
    (13, [EVB_BR, NB_BR, EVB_ST]),
)

GEVB_BR, GEVB_ST = converged(group_ids=True)  # BGID+RRCAP+RRCTR 0x07, SGID+RRREQ+RRSTAT=1 0x0d
F_GROUP = fmt3((1001, 30), (1002, 31))
F_GROUP_MAC = fmt4((2001, "02:00:00:00:01:02", 40))
FMT34 = script(
    "vdp-filter-fmt3-fmt4-group.pcap",
    (1, exchange(1, vsi(ASSOC, U1, F_GROUP))),
    (5, [GEVB_BR, NB_BR, GEVB_ST, NB_ST]),
    (9, exchange(2, vsi(ASSOC, U2, F_GROUP_MAC))),
    (13, [GEVB_BR, NB_BR, GEVB_ST]),
    (16, exchange(3, vsi(DEASSOC, U1, F_GROUP))),
    (20, exchange(4, vsi(DEASSOC, U2, F_GROUP_MAC))),
    (24, [GEVB_BR, GEVB_ST]),
)

KA_REQ = vsi(ASSOC, U1, F_U1)
KEEPALIVE = script(
    "vdp-keepalive-60s.pcap",
    # 2: the same REQ 1 retransmitted (late ECP ack); 3, 4: one bridge ACK per copy; one response.
    (1, [Req(ST, 1, (LABMGR, KA_REQ)), Req(ST, 1, (LABMGR, KA_REQ)), Ack(BR, 1), Ack(BR, 1)]),
    (5, [Req(BR, 1, (LABMGR, dataclasses.replace(KA_REQ, status=0x40))), Ack(ST, 1)]),
    (7, [EVB_ST, NB_ST, EVB_BR, EVB_ST, NB_ST, EVB_BR, EVB_ST, EVB_BR, EVB_ST, EVB_BR, EVB_ST]),
    (18, exchange(2, KA_REQ)),  # keep-alives: full ASSOC requests, identical to frame 1 but the seq
    (22, exchange(3, KA_REQ)),
    (26, [NB_BR]),
    (27, exchange(4, KA_REQ)),
    (31, [NB_ST, EVB_BR, EVB_ST]),
    (34, exchange(5, KA_REQ)),
    (38, exchange(6, KA_REQ)),
    (42, [NB_BR, NB_ST]),
    (44, exchange(7, vsi(DEASSOC, U1, F_U1))),
)

EVB24_BR, EVB24_ST = converged(rka=24)
DEASSOC_UNKNOWN = script(
    "vdp-deassoc-unknown.pcap",
    # station seq 2 (continues), bridge seq 1 (restarted bridge); plain ACK 0x40 for the unknown VSI
    (1, exchange(2, vsi(DEASSOC, U1, F_U1), bridge_seq=1)),
    (5, [EVB24_ST, NB_ST, EVB24_BR, NB_BR, EVB24_ST, NB_ST, EVB24_BR, EVB24_ST, EVB24_BR, EVB24_ST]),
)

UNSOLICITED = Req(BR, 2, (LABMGR, vsi(DEASSOC, U1, F_U1)))  # status 0x00: no ACK bit
KATO = script(
    "vdp-bridge-deassoc-kato.pcap",
    (1, exchange(1, vsi(ASSOC, U1, F_U1))),
    (5, [EVB_ST, NB_ST, EVB_BR, EVB_BR, EVB_BR, EVB_BR]),  # the station is frozen after frame 6
    (11, [UNSOLICITED, UNSOLICITED, UNSOLICITED, UNSOLICITED]),  # 1 + R = 4 transmissions, nobody acks
    (15, [EVB_ST, NB_ST, Ack(ST, 2), Req(ST, 2, (LABMGR, vsi(ASSOC, U1, F_U1))), Ack(ST, 2), Ack(ST, 2), Ack(ST, 2)]),
    (22, [Ack(BR, 2), Req(BR, 3, (LABMGR, vsi(ASSOC, U1, F_U1, status=0x40))), Ack(ST, 3)]),
    (25, [EVB_ST, EVB_ST, NB_BR]),
)

EVB17_BR, EVB17_ST = converged(rka=17)
LINGER = script(
    "vdp-deassoc-bridge-linger.pcap",
    (1, exchange(1, vsi(ASSOC, U1, F_U1))),
    (5, [EVB17_BR, NB_BR, EVB17_ST, NB_ST, EVB17_BR]),
    (10, exchange(2, vsi(ASSOC, U1, F_U1))),  # keep-alive
    (14, [EVB17_ST, EVB17_BR]),
    (16, exchange(3, vsi(DEASSOC, U1, F_U1))),
    (20, [EVB17_ST, EVB17_BR, EVB17_ST]),
    (23, [Req(BR, 4, (LABMGR, vsi(DEASSOC, U1, F_U1))), Ack(ST, 4)]),  # unsolicited DEASSOC, status 0x00
)


E003 = "5a0f1c2e00014d3c8e210a000000e003"  #: VSIID of frames 10-13, sent with the undefined VSIID format 6


def _errors_vsiid(last: int) -> str:
    return f"5a0f1c2e-0001-4d3c-8e21-0a000000{last:04x}"


# Frame 29: VSI TLV of length 33 whose count says 2 format-2 entries but which carries one.
BAD_COUNT_BODY = bytes.fromhex("00 000005 04 05" + uuid.UUID(_errors_vsiid(0xE008)).hex + "02 0002 020000000101000a")
BAD_COUNT = BadTlv(type=3, field="assoc.filter.count", offset=COUNT_AT, value=BAD_COUNT_BODY)
# The bridge's EVB TLV once the station lldpad is stopped: no station any more (RRCTR 0, station
# status 0), own values with ROL 0: 02 00 68 54 14 (lldp-evb-cdcp.md §2.4).
EVB_BR_ALONE = Evb(BR, evb(0x02, 0x00, r=3, rte=8, mode=BRIDGE, rwd=(0, 20), rka=(0, 20)), "02 00 68 54 14")
ERRORS = script(
    "vdp-bridge-errors-injected.pcap",
    # station (injector) seqs 1000-1009, bridge seqs from 1
    (1, exchange(1000, vsi(ASSOC, U1, F_U1), bridge_seq=1)),
    (5, [EVB_BR_ALONE]),
    (6, exchange(1001, vsi(ASSOC, "00000000-0000-0000-8000-00000000e001", F_U1), bridge_seq=2, status=0x42)),
    (10, exchange(1002, vsi(ASSOC, E003, F_U1, vsiid_format=6), bridge_seq=3, status=0x42)),
    (14, exchange(1003, vsi(ASSOC, _errors_vsiid(0xE004), fmt1(0, 5)), bridge_seq=4, status=0x42)),
    (18, exchange(1004, vsi(ASSOC, _errors_vsiid(0xE005), fmt3((1001, 30))), bridge_seq=5, status=0x42)),
    (22, [Req(ST, 1005, (LABMGR, vsi(ASSOC, U1, fmt2(("02:00:00:00:01:01", 11))))), Ack(BR, 1005)]),  # no VDP answer
    (24, [EVB_BR_ALONE]),
    (25, exchange(1006, vsi(DEASSOC, _errors_vsiid(0xE007), F_U1), bridge_seq=6)),
    (29, [Req(ST, 1007, (LABMGR, BAD_COUNT)), Ack(BR, 1007)]),
    (31, [Req(ST, 1008, (vsi(ASSOC, _errors_vsiid(0xE009), F_U1),)), Ack(BR, 1008)]),  # no Manager ID TLV
    (33, [Req(ST, 1009, (LABMGR, vsi(ASSOC, _errors_vsiid(0xE00A), F_U1, status=0x40))), Ack(BR, 1009)]),
)

SCRIPTS: dict[str, dict[int, Expected]] = {
    "evb-rr-granted.pcap": RR_GRANTED,
    "evb-timers.pcap": TIMERS,
    "vdp-assoc-deassoc.pcap": ASSOC_DEASSOC,
    "vdp-preassoc.pcap": PREASSOC_FILE,
    "vdp-preassoc-rr.pcap": PREASSOC_RR_FILE,
    "vdp-assoc-3vsi.pcap": ASSOC_3VSI,
    "vdp-filter-fmt1-vid.pcap": FMT1,
    "vdp-filter-fmt2-multi.pcap": FMT2,
    "vdp-filter-fmt3-fmt4-group.pcap": FMT34,
    "vdp-keepalive-60s.pcap": KEEPALIVE,
    "vdp-deassoc-unknown.pcap": DEASSOC_UNKNOWN,
    "vdp-bridge-deassoc-kato.pcap": KATO,
    "vdp-deassoc-bridge-linger.pcap": LINGER,
    "vdp-bridge-errors-injected.pcap": ERRORS,
}

FRAME_CASES = [(name, n) for name, table in SCRIPTS.items() for n in table]


# --------------------------------------------------------------------------- the captures themselves


def test_every_capture_has_a_script() -> None:
    assert capture_names() == sorted(SCRIPTS)
    assert (PCAP_DIR / "README.md").is_file()


def test_captures_match_provenance_digests() -> None:
    text = (PCAP_DIR / "PROVENANCE.md").read_text()
    digests = dict(re.findall(r"^\| `([\w.-]+\.pcap)` \|.*\| `([0-9a-f]{64})` \|$", text, re.MULTILINE))
    assert sorted(digests) == capture_names()
    for name, digest in digests.items():
        assert hashlib.sha256((PCAP_DIR / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_frame_count(name: str) -> None:
    assert len(read_capture(name)) == len(SCRIPTS[name])


# --------------------------------------------------------------------------- frame by frame


@pytest.mark.parametrize(
    ("name", "number"), FRAME_CASES, ids=[f"{n.removesuffix('.pcap')}#{i}" for n, i in FRAME_CASES]
)
def test_frame(name: str, number: int) -> None:
    expected = SCRIPTS[name][number]
    data = capture_frame(name, number).data
    frame = decode_frame(data)  # lenient, the default of agents and capture tools
    assert frame.src == SENDER_MAC[expected.by]
    assert frame.tags == ()
    match expected:
        case Evb() | Nb():
            check_lldp(frame, data, expected)
        case Ack():
            check_ack(frame, data, expected)
        case Req():
            check_request(frame, data, expected)
        case _:
            pytest.fail(f"unknown expectation {expected!r}")
    assert encode_frame(frame) == data
    if not has_bad_tlv(expected):
        assert decode_frame(data, strict=True) == frame


def has_bad_tlv(expected: Expected) -> bool:
    return isinstance(expected, Req) and any(isinstance(t, BadTlv) for t in expected.tlvs)


def check_lldp(frame: Frame, data: bytes, expected: Evb | Nb) -> None:
    pdu = frame.pdu
    assert isinstance(pdu, Lldpdu)
    mac = SENDER_MAC[expected.by]
    assert pdu.chassis_id == ChassisId(ChassisIdSubtype.MAC_ADDRESS, mac)
    assert pdu.port_id == PortId(PortIdSubtype.MAC_ADDRESS, mac)
    assert pdu.ttl == 120
    if isinstance(expected, Evb):
        assert frame.dst == NEAREST_CUSTOMER_BRIDGE
        assert pdu.tlvs == (expected.tlv,)
        assert pdu.evb == expected.tlv
        if expected.info is not None:
            assert pdu.evb.info == bytes.fromhex(expected.info)
    else:
        assert frame.dst == NEAREST_BRIDGE
        assert pdu.tlvs == ()
        assert pdu.evb is None
    # lldpad pads LLDP frames to the 60-octet minimum, as build_frame does by default
    assert len(data) == 60
    assert build_frame(frame.dst, frame.src, pdu) == data


def check_ack(frame: Frame, data: bytes, expected: Ack) -> None:
    pdu = frame.pdu
    assert isinstance(pdu, Ecpdu)
    assert frame.dst == NEAREST_CUSTOMER_BRIDGE
    assert (pdu.version, pdu.op, pdu.subtype, pdu.seq) == (1, EcpOp.ACK, EcpSubtype.VDP, expected.seq)
    assert pdu.op is EcpOp.ACK and pdu.subtype is EcpSubtype.VDP
    assert pdu.ulpdu == b""
    assert len(data) == 18 and frame.pad == 0  # lldpad's acks are not padded on veth
    assert build_frame(frame.dst, frame.src, pdu, pad_to=0) == data
    assert pdu == Ecpdu(EcpOp.REQUEST, EcpSubtype.VDP, expected.seq).ack()


def check_request(frame: Frame, data: bytes, expected: Req) -> None:
    pdu = frame.pdu
    assert isinstance(pdu, Ecpdu)
    assert frame.dst == NEAREST_CUSTOMER_BRIDGE
    assert (pdu.version, pdu.op, pdu.subtype, pdu.seq) == (1, EcpOp.REQUEST, EcpSubtype.VDP, expected.seq)
    assert pdu.op is EcpOp.REQUEST and pdu.subtype is EcpSubtype.VDP
    # no End TLV and no padding: every request is longer than 60 octets, except the injected
    # 53-octet frame (errors file, frame 31), which ecp-inject.py did not pad
    assert frame.pad == 0
    assert build_frame(frame.dst, frame.src, pdu, pad_to=0) == data
    vdp = pdu.ulpdu
    assert isinstance(vdp, VdpPdu)
    assert len(vdp.tlvs) == len(expected.tlvs)
    for actual, want in zip(vdp.tlvs, expected.tlvs, strict=True):
        match want:
            case bytes():
                assert isinstance(actual, VsiManagerIdTlv)
                assert actual.manager_id == want
                assert format_manager_id(actual.manager_id) == "labmgr"
            case Vsi():
                check_vsi(actual, want)
            case BadTlv():
                assert isinstance(actual, InvalidTlv)
                assert (actual.type, actual.field, actual.offset, actual.value) == (
                    want.type,
                    want.field,
                    want.offset,
                    want.value,
                )
    if isinstance(expected.tlvs[0], bytes):
        assert vdp.manager_id == LABMGR
        assert vdp.composition_errors() == []
        if isinstance(expected.tlvs[1], Vsi):
            assert data[STATUS_AT] == expected.tlvs[1].status


def check_vsi(actual: object, want: Vsi) -> None:
    assert isinstance(actual, VsiTlv)
    assert actual.mode is want.mode
    assert actual.status.octet == want.status
    st = actual.status
    assert (st.reserved, st.response, st.s_keep, st.m_hard, st.code) == (
        False,
        bool(want.status & 0x40),
        False,  # no hints, no Keep bit anywhere in the captures
        False,  # no hints, no Hard bit
        want.status & 0x0F,
    )
    assert (actual.type_id, actual.type_version) == (want.type_id, want.type_version)
    assert actual.vsiid_format == want.vsiid_format
    if want.vsiid_format == VsiidFormat.UUID:
        assert actual.vsiid_format is VsiidFormat.UUID
        assert actual.vsiid == uuid.UUID(want.vsiid).bytes
        assert actual.vsiid_text == want.vsiid
    else:
        assert actual.vsiid == bytes.fromhex(want.vsiid)
    assert actual.filter_format is want.filter_format
    assert actual.entries == want.entries


def decoded_evb(name: str, number: int) -> EvbTlv:
    pdu = decode_frame(capture_frame(name, number).data).pdu
    assert isinstance(pdu, Lldpdu) and pdu.evb is not None
    return pdu.evb


@pytest.mark.parametrize("name", ["evb-rr-granted.pcap", "evb-timers.pcap"])
def test_converged_bridge_tlv_is_the_station_tlv_but_the_mode(name: str) -> None:
    """README: frame 9 (bridge) is identical to frame 7 (station) except the mode: converged."""
    station, bridge = decoded_evb(name, 7), decoded_evb(name, 9)
    assert (station.mode, bridge.mode) == (EvbMode.STATION, EvbMode.BRIDGE)
    assert dataclasses.replace(bridge, mode=EvbMode.STATION) == station
    # operating values: the maximum of both sides' own values (frames 1 and 3, ROL 0)
    own_br, own_st = decoded_evb(name, 1), decoded_evb(name, 3)
    for field in ("r", "rte", "rwd", "rka"):
        assert getattr(station, field) == max(getattr(own_br, field), getattr(own_st, field))


# --------------------------------------------------------------------------- special frames


ERRORS_FILE = "vdp-bridge-errors-injected.pcap"


def test_errors_frame_29_count_disagrees_with_length() -> None:
    """Count 2, one entry (L = 33): lenient keeps an InvalidTlv, strict raises, same field/offset."""
    data = capture_frame(ERRORS_FILE, 29).data
    assert data[ASSOC_AT : ASSOC_AT + 2] == bytes.fromhex("0621")  # type 3, length 33 = 25 + 1 x 8
    assert data[COUNT_AT : COUNT_AT + 2] == b"\x00\x02"
    vdp = decode_frame(data).pdu.ulpdu
    assert isinstance(vdp, VdpPdu)
    bad = vdp.tlvs[1]
    assert isinstance(bad, InvalidTlv)
    assert (bad.type, bad.field, bad.offset) == (VdpMode.ASSOC, "assoc.filter.count", COUNT_AT)
    assert "2 entries" in bad.reason
    assert vdp.invalid == (bad,)
    assert vdp.vsis == ()
    assert vdp.composition_errors() == []  # an invalid association TLV still counts as one
    with pytest.raises(DecodeError) as exc_info:
        decode_frame(data, strict=True)
    err = exc_info.value
    assert (err.pdu, err.field, err.offset) == ("vdp", "assoc.filter.count", COUNT_AT)
    assert err.reason == bad.reason
    # offsets are relative to the buffer handed to the decoder
    with pytest.raises(DecodeError) as exc_info:
        decode_ecpdu(data[ECP_AT:], strict=True)
    assert (exc_info.value.field, exc_info.value.offset) == ("assoc.filter.count", COUNT_AT - ECP_AT)


def test_errors_frame_31_no_manager_id_decodes_but_breaks_composition() -> None:
    data = capture_frame(ERRORS_FILE, 31).data
    assert len(data) == 53
    for strict in (False, True):
        vdp = decode_frame(data, strict=strict).pdu.ulpdu
        assert isinstance(vdp, VdpPdu)
        assert [type(t) for t in vdp.tlvs] == [VsiTlv]
        assert vdp.manager_id is None
        errors = vdp.composition_errors()
        assert len(errors) == 1
        assert "Manager ID" in errors[0]


@pytest.mark.parametrize("number", [10, 12])
def test_errors_frames_10_12_vsiid_format_6_is_a_plain_int(number: int) -> None:
    vsi_tlv = decode_frame(capture_frame(ERRORS_FILE, number).data, strict=True).pdu.ulpdu.vsis[0]
    assert type(vsi_tlv.vsiid_format) is int
    assert vsi_tlv.vsiid_format == 6
    assert vsi_tlv.vsiid_text == E003  # no UUID notation for format 6


def test_errors_frame_6_uuid_with_zero_first_half() -> None:
    # lldpad's UUID check only tests the first 8 octets for zero: refused with 0x42 (frame 8)
    vsi_tlv = decode_frame(capture_frame(ERRORS_FILE, 8).data).pdu.ulpdu.vsis[0]
    assert vsi_tlv.vsiid[:8] == bytes(8) and vsi_tlv.vsiid[8:] != bytes(8)
    assert vsi_tlv.status.response and vsi_tlv.status.code == 2


# --------------------------------------------------------------------------- exchanges and timing


def t(name: str, number: int) -> int:
    """Timestamp of a frame, microseconds since the file's first frame."""
    return capture_frame(name, number).usec


def ms(usec: int) -> float:
    return usec / 1000


def payload(frame: CapturedFrame) -> bytes:
    return frame.data[VDP_AT:]


@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_exchanges_response_echoes_request_after_2ms(name: str) -> None:
    """The bridge answers ~2.1 ms after the request (lldpad delays VDP by 2 ms), after its ECP ACK,
    with the request's ULPDU in which only the status octet differs (vdp.md §7.2)."""
    for first in EXCHANGES[name]:
        request, ack, response, _ = (capture_frame(name, first + i) for i in range(4))
        assert request.usec < ack.usec < response.usec
        assert 2000 <= response.usec - request.usec < 4000, (first, response.usec - request.usec)
        want = payload(request)[: STATUS_AT - VDP_AT] + bytes([response.data[STATUS_AT]])
        assert payload(response) == want + payload(request)[STATUS_AT - VDP_AT + 1 :]
        assert request.data[STATUS_AT] == 0x00 and response.data[STATUS_AT] & 0x40


KEEPALIVE_FILE = "vdp-keepalive-60s.pcap"
KEEPALIVE_REQUESTS = {18: 10.50, 22: 20.99, 27: 31.48, 34: 41.97, 38: 52.46}  # frame -> README time (s)
RKA_20_USEC = 10 * 2**20  #: reinitKeepAlive with RKA 20: 10 us x 2^20 = 10.49 s


def test_keepalive_refresh_every_10_49_s() -> None:
    first = capture_frame(KEEPALIVE_FILE, 1)
    previous = capture_frame(KEEPALIVE_FILE, 5)  # the bridge's response to the original request
    for number, readme_time in KEEPALIVE_REQUESTS.items():
        request = capture_frame(KEEPALIVE_FILE, number)
        assert round(request.seconds, 2) == readme_time
        # reinitKeepAlive starts when the previous answer has been processed
        assert RKA_20_USEC <= request.usec - previous.usec < RKA_20_USEC + 10_000
        # a keep-alive is the original request again, only the ECP sequence number differs
        assert request.data[:16] == first.data[:16] and payload(request) == payload(first)
        assert request.data[16:18] != first.data[16:18]
        previous = capture_frame(KEEPALIVE_FILE, number + 2)
    starts = [t(KEEPALIVE_FILE, n) for n in KEEPALIVE_REQUESTS]
    assert all(abs(b - a - RKA_20_USEC) < 10_000 for a, b in itertools.pairwise(starts))  # ~10.49 s apart


def test_keepalive_frame_2_is_an_ecp_retransmission() -> None:
    one, two = capture_frame(KEEPALIVE_FILE, 1), capture_frame(KEEPALIVE_FILE, 2)
    assert two.data == one.data  # same sequence number, same ULPDU
    # sent when the station's ack timer (RTE 8: 10 us x 2^8 = 2.56 ms) expired; README: 2.65 ms
    assert 10 * 2**8 <= two.usec - one.usec < 3000
    assert round(ms(two.usec - one.usec), 2) == 2.65


KATO_FILE = "vdp-bridge-deassoc-kato.pcap"


def tout_keepalive_usec(r: int, rte: int, rka: int) -> int:
    """The bridge's keep-alive timeout, lldpad's arithmetic (vdp.md §8)."""
    t_usec = (2 * r + 1) * 10 * 2**rte + 10 * 2**rka
    return t_usec + t_usec // 2


def test_bridge_keepalive_timeout_deassociates_after_15_76_s() -> None:
    assert tout_keepalive_usec(3, 8, 20) == 15_755_520
    unsolicited = capture_frame(KATO_FILE, 11)
    assert round(unsolicited.seconds, 2) == 15.76
    last_answer = t(KATO_FILE, 3)
    assert 15_755_520 <= unsolicited.usec - last_answer < 15_755_520 + 2000


def test_bridge_retransmits_unacked_deassoc_r_times() -> None:
    frames = [capture_frame(KATO_FILE, n) for n in (11, 12, 13, 14)]  # 1 + R (R = 3) transmissions
    assert all(f.data == frames[0].data for f in frames)
    gaps = [b.usec - a.usec for a, b in itertools.pairwise(frames)]
    assert all(10 * 2**8 <= gap < 3000 for gap in gaps), gaps  # RTE 8 ack timer: about 2.6 ms
    # the next ECP frame is the station's, after SIGCONT at about 26.05 s
    assert round(capture_frame(KATO_FILE, 15).seconds, 2) == 26.05
    assert all(round(capture_frame(KATO_FILE, n).seconds, 2) == 26.05 for n in range(15, 25))


LINGER_FILE = "vdp-deassoc-bridge-linger.pcap"


def test_linger_bridge_deassociates_1_99_s_after_answering_deassoc() -> None:
    timeout = tout_keepalive_usec(3, 8, 17)
    assert timeout == 1_992_960
    assert timeout <= t(LINGER_FILE, 23) - t(LINGER_FILE, 18) < timeout + 2000
    assert round(capture_frame(LINGER_FILE, 23).seconds, 2) == 4.53
    # RKA 17: the station refreshes 10 us x 2^17 = 1.31 s after the first answer
    assert 10 * 2**17 <= t(LINGER_FILE, 10) - t(LINGER_FILE, 3) < 10 * 2**17 + 10_000


def test_three_vsis_requests_about_25_ms_apart() -> None:
    name = "vdp-assoc-3vsi.pcap"
    for group in ((1, 5, 9), (19, 23, 27)):
        times = [t(name, n) for n in group]
        assert all(20_000 <= b - a < 40_000 for a, b in itertools.pairwise(times)), times


def test_injected_requests_200_ms_apart() -> None:
    requests = [n for n, e in ERRORS.items() if isinstance(e, Req) and e.by == ST]
    assert [ERRORS[n].seq for n in requests] == list(range(1000, 1010))
    times = [t(ERRORS_FILE, n) for n in requests]
    assert all(200_000 <= b - a < 205_000 for a, b in itertools.pairwise(times)), times


@pytest.mark.parametrize("name", ["evb-rr-granted.pcap", "evb-timers.pcap"])
def test_evb_fast_transmit_once_a_second(name: str) -> None:
    for by in (ST, BR):
        times = [t(name, n) for n, e in SCRIPTS[name].items() if isinstance(e, Evb) and e.by == by]
        assert len(times) >= 5
        assert all(abs(b - a - 1_000_000) < 20_000 for a, b in itertools.pairwise(times)), times


def _sequence(frames: Iterable[tuple[int, Expected]], by: str) -> list[int]:
    return [e.seq for _, e in frames if isinstance(e, Req) and e.by == by]


@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_station_and_bridge_sequence_spaces(name: str) -> None:
    """Each side numbers its requests 1, 2, 3 ... from start-up (captures README; ecp.md §3.2);
    retransmissions repeat the number. Exceptions: the README's noted ones."""
    for by in (ST, BR):
        seqs = sorted(set(_sequence(SCRIPTS[name].items(), by)))
        first = {(ERRORS_FILE, ST): 1000, ("vdp-deassoc-unknown.pcap", ST): 2}.get((name, by), 1)
        assert seqs == list(range(first, first + len(seqs)))
