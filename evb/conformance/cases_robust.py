"""Robustness cases: malformed and odd frames. The DUT must survive each (``steps.still_alive``:
it still acknowledges ECP and, as a bridge, still answers a valid request) and must not react to
what it cannot read.

LLDP frames carry a *marker* EVB TLV: our usual TLV with the status bit the DUT copies flipped
(``cases_evb.marked``). A DUT that wrongly takes the frame shows the marker in its own TLV; while
we watch, our periodic LLDPDUs are held back so that nothing undoes it. ECPDUs with a valid
header but a broken VDP ULPDU must be acknowledged (ECP does not read the ULPDU, ecp.md §4.1,
§4.2) and, by a bridge, not answered. Frames are sent unpadded where padding would change their
meaning (and are longer than 60 octets where the point is that they end early); on a link that
pads short frames the exceptions are noted per case.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from evb.conformance import steps
from evb.conformance.cases_evb import (
    QUIET,
    REACT,
    copied,
    copied_name,
    current,
    describe,
    evb_since,
    evb_tlv_count,
    forgotten,
    marked,
    own_mode,
)
from evb.conformance.model import ROLES, Case, CaseFn, Fail, add
from evb.conformance.tester import MANAGER, Tester, VdpIn, VsiSpec
from evb.ecp.wire import EcpOp
from evb.ethernet import (
    ETH_P_8021AD,
    ETH_P_ECP,
    ETH_P_LLDP,
    ETH_P_OUI_EXT,
    NEAREST_BRIDGE,
    NEAREST_CUSTOMER_BRIDGE,
    VlanTag,
    encode_ethernet_header,
)
from evb.lldp.wire import OUI_QBG_DRAFT, CdcpTlv, DraftEvbTlv, EvbTlv
from evb.tlv import InvalidTlv
from evb.vdp.wire import VdpMode, VdpStatus, VsiManagerIdTlv, manager_id_from_text

SECOND_NEIGHBOUR = bytes.fromhex("02cc00000002")
GAP = 0.004  #: seconds between two new ECPDUs of ours (lldpad's 2-ms VDP buffer, ecp.md §4.2)


def both(name: str, title: str, clause: str, expect: str, *, lldpad: str = "") -> Callable[[CaseFn], CaseFn]:
    """Register a case for a station DUT and for a bridge DUT (``robust.<role>.<name>``)."""

    def register(fn: CaseFn) -> CaseFn:
        for role in ROLES:
            add(Case(f"robust.{role}.{name}", title, clause, role, fn, (), expect, lldpad))
        return fn

    return register


def garbage(n: int, seed: int, first: int | None = None) -> bytes:
    """``n`` pseudo-random octets (the same on every run); ``first`` forces the first octet."""
    data = random.Random(seed).randbytes(n)
    return data if first is None else bytes((first,)) + data[1:]


# --------------------------------------------------------------------------- LLDP building blocks


def tlv(typ: int, value: bytes, length: int | None = None) -> bytes:
    """An LLDP/VDP TLV; ``length`` overrides the length field (the value is sent as given)."""
    n = len(value) if length is None else length
    return ((typ << 9) | n).to_bytes(2, "big") + value


def chassis(mac: bytes) -> bytes:
    return tlv(1, b"\x04" + mac)


def port(mac: bytes) -> bytes:
    return tlv(2, b"\x03" + mac)


def ttl(seconds: int = 120) -> bytes:
    return tlv(3, seconds.to_bytes(2, "big"))


END = b"\x00\x00"
SYSNAME = tlv(5, b"evb-conformance-robustness")  #: a basic TLV that makes frames longer than 60 octets


def head(t: Tester, mac: bytes | None = None) -> bytes:
    """Chassis ID, Port ID, TTL: the mandatory start of an LLDPDU."""
    mac = t.mac if mac is None else mac
    return chassis(mac) + port(mac) + ttl()


def evb_raw(info: bytes, length: int | None = None) -> bytes:
    """An EVB TLV (00-80-C2/0x0D) of the given info octets; ``length`` overrides its length field."""
    value = bytes.fromhex("0080c20d") + info
    return tlv(127, value, length)


def marker(t: Tester) -> EvbTlv:
    return marked(t, t.local_evb)


def lldp_frame(
    t: Tester, body: bytes, *, dst: bytes = NEAREST_CUSTOMER_BRIDGE, tags: tuple[VlanTag, ...] = ()
) -> bytes:
    return encode_ethernet_header(dst, t.mac, ETH_P_LLDP, tags) + body


async def lldp_ignored(t: Tester, frames: list[bytes], what: str, *, pad: bool = True) -> None:
    """Send ``frames``; the DUT's EVB TLV must stay as it is (no marker taken, our TLV not
    forgotten) for ``QUIET`` seconds; then EVB converges again and the DUT is still alive."""
    base = current(t)
    t.lldp_enabled = False
    since = len(t.lldp_in)
    for frame in frames:
        (t.send_raw if pad else t.send_frame)(frame)
    await t.sleep(QUIET)
    t.lldp_enabled = True
    for _, e, data in evb_since(t, since):
        if e is None:
            raise Fail(f"after {what} the DUT stopped sending its EVB TLV", data)
        if e.mode != own_mode(t):
            raise Fail(f"after {what} the DUT advertises EVB mode {e.mode}", data)
        if copied(t, e) != copied(t, base) or (forgotten(t, e) and not forgotten(t, base)):
            raise Fail(
                f"the DUT reacted to {what}: its EVB TLV went from {describe(base)} to {describe(e)}",
                data,
            )
    await t.ensure_evb()
    await steps.still_alive(t)


async def lldp_not_adopted(t: Tester, frames: list[bytes], what: str) -> None:
    """Send ``frames``: the DUT must not take the marker they carry. Keeping its last values and
    forgetting our TLV (an LLDPDU whose EVB TLV is discarded as malformed carries no EVB TLV:
    802.1AB discards a bad TLV and processes the rest) are both accepted; then EVB converges
    again and the DUT is still alive."""
    base = current(t)
    want = copied(t, marker(t))
    t.lldp_enabled = False
    since = len(t.lldp_in)
    for frame in frames:
        t.send_raw(frame)
    await t.sleep(QUIET)
    t.lldp_enabled = True
    for _, e, data in evb_since(t, since):
        if e is None:
            raise Fail(f"after {what} the DUT stopped sending its EVB TLV", data)
        if copied(t, e) == want and copied(t, base) != want:
            raise Fail(f"the DUT took the values of {what}: its EVB TLV is now {describe(e)}", data)
    await t.ensure_evb()
    await steps.still_alive(t)


async def lldp_accepted(t: Tester, frame: bytes, what: str) -> EvbTlv:
    """Send ``frame`` (with the marker): the DUT must take the marker within ``REACT`` seconds."""
    want = copied(t, marker(t))
    t.lldp_enabled = False
    since = len(t.lldp_in)
    t.send_raw(frame)
    got = await t.until(lambda: next((e for _, e, _ in evb_since(t, since) if e and copied(t, e) == want), None), REACT)
    t.lldp_enabled = True
    if got is None:
        raise Fail(
            f"the DUT did not take the EVB TLV of {what} within {REACT:g} s (its {copied_name(t)} is not "
            f"{want:#04x}: {describe(t.peer_evb)})",
            frame,
        )
    await t.ensure_evb()
    await steps.still_alive(t)
    return got


# --------------------------------------------------------------------------- LLDP: malformed LLDPDUs


@both(
    "lldp-truncated",
    "an LLDPDU cut inside its EVB TLV (no End TLV, frame longer than 60 octets)",
    "lldp-evb-cdcp.md §1.3 (a TLV running past the frame discards the LLDPDU)",
    "the marker in the cut TLV is not taken; our TLV is not forgotten; the DUT still works",
)
async def lldp_truncated(t: Tester) -> None:
    body = head(t) + SYSNAME + marker(t).encode()[:8]
    await lldp_ignored(t, [lldp_frame(t, body)], "a truncated LLDPDU", pad=False)


@both(
    "lldp-tlv-past-end",
    "an LLDPDU whose last TLV's length runs past the frame",
    "lldp-evb-cdcp.md §1.3",
    "the whole LLDPDU is discarded: the marker EVB TLV before the bad TLV is not taken",
)
async def lldp_tlv_past_end(t: Tester) -> None:
    body = head(t) + marker(t).encode() + tlv(6, b"x" * 20, length=300)
    await lldp_ignored(t, [lldp_frame(t, body)], "an LLDPDU with a TLV past its end", pad=False)


@both(
    "lldp-no-chassis-id",
    "an LLDPDU without a Chassis ID TLV",
    "lldp-evb-cdcp.md §1.3 (the first three TLVs must be 1, 2, 3)",
    "discarded: the marker is not taken",
)
async def lldp_no_chassis_id(t: Tester) -> None:
    body = port(t.mac) + ttl() + marker(t).encode() + END
    await lldp_ignored(t, [lldp_frame(t, body)], "an LLDPDU without Chassis ID")


@both(
    "lldp-no-ttl",
    "an LLDPDU without a TTL TLV",
    "lldp-evb-cdcp.md §1.3",
    "discarded: the marker is not taken",
)
async def lldp_no_ttl(t: Tester) -> None:
    body = chassis(t.mac) + port(t.mac) + marker(t).encode() + END
    await lldp_ignored(t, [lldp_frame(t, body)], "an LLDPDU without TTL")


@both(
    "lldp-wrong-order",
    "an LLDPDU starting with Port ID, then Chassis ID",
    "lldp-evb-cdcp.md §1.3",
    "discarded: the marker is not taken",
)
async def lldp_wrong_order(t: Tester) -> None:
    body = port(t.mac) + chassis(t.mac) + ttl() + marker(t).encode() + END
    await lldp_ignored(t, [lldp_frame(t, body)], "an LLDPDU with Port ID first")


@both(
    "lldp-ttl-length-3",
    "an LLDPDU whose TTL TLV is 3 octets long",
    "lldp-evb-cdcp.md §1.3 (a TTL TLV not exactly 2 octets discards the LLDPDU)",
    "discarded: the marker is not taken",
)
async def lldp_ttl_length_3(t: Tester) -> None:
    body = chassis(t.mac) + port(t.mac) + tlv(3, b"\x00\x78\x00") + marker(t).encode() + END
    await lldp_ignored(t, [lldp_frame(t, body)], "an LLDPDU with a 3-octet TTL")


@both(
    "lldp-repeated-chassis-id",
    "an LLDPDU with a second Chassis ID TLV after the EVB TLV",
    "lldp-evb-cdcp.md §1.3 (types 1-3 must not appear again)",
    "discarded: the marker before the repeated TLV is not taken",
)
async def lldp_repeated_chassis_id(t: Tester) -> None:
    body = head(t) + marker(t).encode() + chassis(t.mac) + END
    await lldp_ignored(t, [lldp_frame(t, body)], "an LLDPDU with a repeated Chassis ID")


@both(
    "lldp-empty",
    "an LLDP frame with no LLDPDU at all (14 octets)",
    "lldp-evb-cdcp.md §1.1, §1.3",
    "ignored: the DUT keeps our TLV and still works (a padding link delivers 46 zero octets: as invalid)",
)
async def lldp_empty(t: Tester) -> None:
    await lldp_ignored(t, [lldp_frame(t, b"")], "an empty LLDP frame", pad=False)


@both(
    "lldp-garbage-1500",
    "an LLDP frame of 1,500 octets of garbage",
    "lldp-evb-cdcp.md §1.3",
    "ignored: the DUT keeps our TLV and still works",
)
async def lldp_garbage_1500(t: Tester) -> None:
    await lldp_ignored(t, [lldp_frame(t, garbage(1500, 1, first=0xFF))], "1,500 octets of LLDP garbage", pad=False)


@both(
    "evb-length-8",
    "an EVB TLV of length 8 (one info octet short)",
    "lldp-evb-cdcp.md §2.1 (length always 9), §2.4 notes; lldpad-behaviour.md §3.3",
    "the TLV's values are not taken (the DUT keeps its last values, or treats our EVB TLV as absent)",
    lldpad="lldpad does not validate the EVB TLV length: it copies `length` octets into its 9-octet copy and "
    "uses them, keeping a stale last octet (lldp-evb-cdcp.md §2.4 notes): expected to fail",
)
async def evb_length_8(t: Tester) -> None:
    body = head(t) + evb_raw(marker(t).info[:4]) + END
    await lldp_not_adopted(t, [lldp_frame(t, body)], "an EVB TLV of length 8")


@both(
    "evb-length-10",
    "an EVB TLV of length 10 (one octet too many)",
    "lldp-evb-cdcp.md §2.1 (length always 9), §2.4 notes; lldpad-behaviour.md §3.3",
    "the TLV's values are not taken (the DUT keeps its last values, or treats our EVB TLV as absent)",
    lldpad="lldpad does not validate the EVB TLV length: it copies 10 octets into a 9-octet buffer (memory "
    "corruption) and uses the values (lldp-evb-cdcp.md §2.4 notes): expected to fail",
)
async def evb_length_10(t: Tester) -> None:
    body = head(t) + evb_raw(marker(t).info + b"\x00") + END
    await lldp_not_adopted(t, [lldp_frame(t, body)], "an EVB TLV of length 10")


@both(
    "lldp-nearest-bridge",
    "an EVB TLV in an LLDPDU to the nearest bridge (01-80-C2-00-00-0E)",
    "README.md §2.1; lldpad-behaviour.md §4.1 (only the nearest-customer-bridge agent carries the TLV)",
    "ignored by EVB: the marker is not taken",
)
async def lldp_nearest_bridge(t: Tester) -> None:
    body = head(t) + marker(t).encode() + END
    await lldp_ignored(t, [lldp_frame(t, body, dst=NEAREST_BRIDGE)], "an EVB TLV to the nearest bridge")


@both(
    "lldp-vlan-tagged",
    "an LLDPDU with an EVB TLV in VLAN 100 (C-tag)",
    "lldp-evb-cdcp.md §1.1 (untagged on the physical link)",
    "ignored by the port's EVB: the marker is not taken",
)
async def lldp_vlan_tagged(t: Tester) -> None:
    """The port's LLDP is untagged; a C-tagged LLDPDU belongs to VLAN 100, not to the port.
    (A host whose NIC strips VLAN tags may hand it to a packet socket as untagged: a failure
    here on a real DUT can be the host's doing.)"""
    body = head(t) + marker(t).encode() + END
    await lldp_ignored(t, [lldp_frame(t, body, tags=(VlanTag(vid=100),))], "a C-tagged LLDPDU")


@both(
    "lldp-s-tagged",
    "an LLDPDU with an EVB TLV on S-channel SVID 100 (S-tag), which does not exist",
    "lldp-evb-cdcp.md §1.1, §6.2 (each S-channel carries its own LLDP/EVB, S-tagged)",
    "ignored by the untagged channel's EVB: the marker is not taken",
)
async def lldp_s_tagged(t: Tester) -> None:
    body = head(t) + marker(t).encode() + END
    tag = VlanTag(vid=100, tpid=ETH_P_8021AD)
    await lldp_ignored(t, [lldp_frame(t, body, tags=(tag,))], "an S-tagged LLDPDU")


# --------------------------------------------------------------------------- LLDP: odd but valid LLDPDUs


@both(
    "lldp-priority-tagged",
    "a priority-tagged LLDPDU (VLAN 0) is taken as untagged",
    "README.md §2 (priority tags are untagged frames)",
    "the marker EVB TLV is taken",
)
async def lldp_priority_tagged(t: Tester) -> None:
    body = head(t) + marker(t).encode() + END
    await lldp_accepted(t, lldp_frame(t, body, tags=(VlanTag(vid=0, pcp=7),)), "a priority-tagged LLDPDU")


@both(
    "lldp-unknown-tlv-types",
    "reserved LLDP TLV types (9, 64, 126) around the EVB TLV are skipped",
    "lldp-evb-cdcp.md §1.3 (optional TLVs)",
    "the rest of the LLDPDU is used: the marker EVB TLV is taken",
)
async def lldp_unknown_tlv_types(t: Tester) -> None:
    body = head(t) + tlv(9, b"\x01\x02") + tlv(64, b"") + marker(t).encode() + tlv(126, b"z" * 30) + END
    await lldp_accepted(t, lldp_frame(t, body), "an LLDPDU with reserved TLV types")


@both(
    "lldp-unknown-org-tlv",
    "unknown organizationally specific TLVs are skipped",
    "lldp-evb-cdcp.md §1.3 (org TLVs it does not know are skipped)",
    "the marker EVB TLV between an unknown OUI's TLV and an unknown 802.1 subtype is taken",
)
async def lldp_unknown_org_tlv(t: Tester) -> None:
    body = head(t) + tlv(127, bytes.fromhex("00112205") + b"abc") + marker(t).encode()
    body += tlv(127, bytes.fromhex("0080c27f") + b"\x00" * 6) + END
    await lldp_accepted(t, lldp_frame(t, body), "an LLDPDU with unknown org TLVs")


@both(
    "lldp-cdcp-tlv",
    "a CDCP TLV next to the EVB TLV",
    "lldp-evb-cdcp.md §1.3, §6 (lldpad skips CDCP)",
    "the marker EVB TLV is taken; CDCP (implemented or not) does not disturb EVB",
)
async def lldp_cdcp_tlv(t: Tester) -> None:
    cdcp = CdcpTlv(role=0, scomp=True, chncap=8, channels=((1, 1), (2, 0x65)))
    body = head(t) + cdcp.encode() + marker(t).encode() + END
    await lldp_accepted(t, lldp_frame(t, body), "an LLDPDU with a CDCP TLV")


@both(
    "lldp-draft-evb-tlv",
    "a draft-0.2 EVB TLV next to the ratified one",
    "README.md §3; lldp-evb-cdcp.md §5",
    "the ratified marker TLV is taken; the DUT keeps sending only the ratified TLV",
)
async def lldp_draft_evb_tlv(t: Tester) -> None:
    draft = DraftEvbTlv(
        supported_modes=0xC0,
        supported_caps=0x07,
        configured_modes=0x40,
        configured_caps=0x07,
        supported_vsis=3295,
        configured_vsis=0,
        rte=15,
    )
    since = len(t.lldp_in)
    body = head(t) + draft.encode() + marker(t).encode() + END
    await lldp_accepted(t, lldp_frame(t, body), "an LLDPDU with a draft-0.2 EVB TLV")
    for _, _, data in t.lldp_in[since:]:
        n, _, drafts = evb_tlv_count(data)
        if drafts or n != 1:
            raise Fail(f"after a draft-0.2 EVB TLV the DUT sends {n} ratified and {drafts} draft EVB TLVs", data)


@both(
    "lldp-two-evb-tlvs",
    "an LLDPDU with two EVB TLVs",
    "lldp-evb-cdcp.md §2.1 (one TLV; silent on two)",
    "the DUT takes either or neither, keeps its mode and sends exactly one EVB TLV itself; it still works",
)
async def lldp_two_evb_tlvs(t: Tester) -> None:
    """The spec is silent: any choice between the two TLVs is accepted, only the DUT's own
    LLDPDUs (one EVB TLV, own mode) and its survival are judged."""
    base = current(t)
    since = len(t.lldp_in)
    t.lldp_enabled = False
    t.send_raw(lldp_frame(t, head(t) + t.local_evb.encode() + marker(t).encode() + END))
    await t.sleep(QUIET)
    t.lldp_enabled = True
    allowed = {copied(t, base), copied(t, marker(t))}
    for _, e, data in evb_since(t, since):
        n, _, _ = evb_tlv_count(data)
        if e is None or n != 1 or e.mode != own_mode(t) or copied(t, e) not in allowed:
            raise Fail(f"after an LLDPDU with two EVB TLVs the DUT sends {n} EVB TLVs: {describe(e)}", data)
    await t.ensure_evb()
    await steps.still_alive(t)


@both(
    "lldp-second-neighbour",
    "LLDPDUs from a second neighbour (another MAC) with its own EVB TLV",
    "lldp-evb-cdcp.md §1.3, §2.3 (one peer; silent on two)",
    "the DUT keeps its mode and one sane EVB TLV; after the second neighbour leaves (TTL 0) EVB converges "
    "with us again and the DUT still works",
)
async def lldp_second_neighbour(t: Tester) -> None:
    """EVB assumes one peer per port; with two, following either is tolerated, but the DUT
    must not break: its TLV stays that of one of the two peers (or of no peer)."""
    base = current(t)
    other = marker(t)
    since = len(t.lldp_in)
    t.lldp_enabled = False
    two = encode_ethernet_header(NEAREST_CUSTOMER_BRIDGE, SECOND_NEIGHBOUR, ETH_P_LLDP)
    t.send_raw(two + head(t, SECOND_NEIGHBOUR) + other.encode() + END)
    await t.sleep(QUIET / 2)
    t.send_lldp()
    await t.sleep(QUIET / 2)
    t.send_raw(two + chassis(SECOND_NEIGHBOUR) + port(SECOND_NEIGHBOUR) + ttl(0) + END)
    await t.sleep(QUIET / 2)
    t.lldp_enabled = True
    allowed = {copied(t, base), copied(t, other)}
    for _, e, data in evb_since(t, since):
        n, _, _ = evb_tlv_count(data)
        if e is None or n != 1 or e.mode != own_mode(t):
            raise Fail(f"with two neighbours the DUT sends {n} EVB TLVs: {describe(e)}", data)
        if copied(t, e) not in allowed and not forgotten(t, e):
            raise Fail(f"with two neighbours the DUT's TLV is neither peer's: {describe(e)}", data)
    await t.ensure_evb()
    await steps.still_alive(t)


# --------------------------------------------------------------------------- ECP / VDP building blocks


def mgr(t: Tester) -> bytes:
    return VsiManagerIdTlv(manager_id_from_text(MANAGER)).encode()


def assoc(
    vsi: VsiSpec,
    *,
    mode: VdpMode = VdpMode.ASSOC,
    status: int = 0,
    vsiid_format: int | None = None,
    filter_format: int | None = None,
    count: int | None = None,
    entries: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """``vsi``'s association TLV as bytes, with fields overridden (vdp.md §4.1 offsets)."""
    body = bytearray(vsi.tlv(mode).encode()[2:])
    body[0] = status
    if vsiid_format is not None:
        body[5] = vsiid_format
    if filter_format is not None:
        body[22] = filter_format
    if count is not None:
        body[23:25] = count.to_bytes(2, "big")
    if entries is not None:
        body[25:] = entries
    return tlv(int(mode), bytes(body), length)


def answers(item: VdpIn) -> list[tuple[int, bytes]]:
    """(status octet, VSIID) of every association TLV in a VDP ULPDU, readable or not."""
    out = [(x.status.octet, x.vsiid) for x in item.vsis]
    for bad in item.pdu.tlvs:
        if isinstance(bad, InvalidTlv) and 1 <= bad.type <= 4 and len(bad.value) >= 22:
            out.append((bad.value[0], bad.value[6:22]))
    return out


def answer_window(t: Tester) -> float:
    """How long a bridge has to answer (the station's respWaitDelay), at most 3 s."""
    return min(3.0, max(0.3, t.op.resp_wait_delay))


def ack_window(t: Tester) -> float:
    return max(0.3, 6 * t.op.ack_timeout)


async def vdp_sent(t: Tester, payload: bytes, what: str, *, answer: str, vsiid: bytes | None = None) -> None:
    """Send ``payload`` as the VDP ULPDU of a valid ECPDU: it must be acknowledged; a bridge
    DUT must then not answer it (``answer="none"``: nothing at all; ``"no-success"``: no answer
    with status 0 for ``vsiid``; ``"success"``: an answer with status 0 for ``vsiid`` is
    required); then the DUT must still work."""
    await t.sleep(GAP)
    seq = t.next_seq()
    since, start, undec = len(t.acks_in), len(t.vdp_in), len(t.undecodable)
    frame = t.ecp_frame(payload, seq)
    t.send_frame(frame)
    if await steps.acked(t, seq, since=since) is None:
        raise Fail(f"ECP did not acknowledge {what} (its header is valid: ECP does not read the ULPDU)", frame)
    if t.dut_role == "bridge":
        if answer == "success":
            assert vsiid is not None
            got = await t.until(
                lambda: next(
                    (i for i in t.vdp_in[start:] if any(v == vsiid and s & 0x40 for s, v in answers(i))), None
                ),
                t.op.resp_wait_delay,
            )
            if got is None:
                raise Fail(f"no answer to the valid Associate in {what}", frame)
            codes = [s & 0x0F for s, v in answers(got) if v == vsiid and s & 0x40]
            if codes != [0]:
                raise Fail(f"the valid Associate in {what} was answered with status {codes}", got.data)
        else:
            await t.sleep(answer_window(t))
            for item in t.vdp_in[start:]:
                for s, v in answers(item):
                    if not s & 0x40:
                        continue  # a request (an unsolicited De-Associate of an old VSI), not an answer
                    if answer == "none" or (s & 0x0F == 0 and (vsiid is None or v == vsiid)):
                        raise Fail(f"the DUT answered {what} (status {s:#04x})", item.data)
            for _, data, why in t.undecodable[undec:]:
                if answer == "none" and int.from_bytes(data[12:14], "big") == ETH_P_ECP:
                    raise Fail(f"after {what} the DUT sent an ECPDU we cannot read ({why})", data)
    await t.sleep(GAP)
    await steps.still_alive(t)


async def not_acked(t: Tester, frame: bytes, what: str, *, pad: bool = False, tolerate: int | None = None) -> None:
    """Send ``frame``: no ECP acknowledgement (except of sequence ``tolerate``) may follow; then still alive."""
    await t.sleep(GAP)
    since = len(t.acks_in)
    (t.send_raw if pad else t.send_frame)(frame)
    await t.sleep(ack_window(t))
    for _, seq, data in t.acks_in[since:]:
        if seq != tolerate:
            raise Fail(f"the DUT acknowledged {what} (sequence {seq})", data)
    await t.sleep(GAP)
    await steps.still_alive(t)


# --------------------------------------------------------------------------- ECP: broken ECPDUs


@both(
    "ecp-ack-with-payload",
    "an ECP acknowledgement carrying 40 octets of garbage, for no outstanding request",
    "ecp.md §1 (acks carry nothing), §3.4",
    "ignored: not acknowledged, no reaction; still works",
)
async def ecp_ack_with_payload(t: Tester) -> None:
    await not_acked(t, t.ecp_frame(garbage(40, 2), 0x5A5A, op=EcpOp.ACK), "an ACK with a payload")


@both(
    "ecp-garbage-1500",
    "a valid ECP header followed by 1,496 octets of garbage (a 1,500-octet ECPDU)",
    "ecp.md §1 (maximum ULPDU), §4.1, §4.2; vdp.md §2",
    "acknowledged; a bridge answers nothing; still works",
)
async def ecp_garbage_1500(t: Tester) -> None:
    await vdp_sent(t, garbage(1496, 3, first=0xFF), "1,496 octets of VDP garbage", answer="none")


@both(
    "ecp-vlan-tagged",
    "an ECP request in VLAN 100 (C-tag)",
    "ecp.md §4.1 (silent on tags); README.md §2",
    "the DUT survives and still works; whether it acknowledges a C-tagged ECPDU is not judged",
)
async def ecp_vlan_tagged(t: Tester) -> None:
    """The spec is silent on tagged ECPDUs (only priority tags are defined as untagged); a
    network engineer expects VLAN-100 frames not to be the port's ECP, but a host stripping tags
    may deliver them as untagged, so only survival is judged."""
    pdu, _ = steps.probe_pdu(t)
    await t.sleep(GAP)
    t.send_frame(t.ecp_frame(pdu, t.next_seq(), tags=(VlanTag(vid=100),)))
    await t.sleep(answer_window(t))
    await steps.still_alive(t)


@both(
    "draft-ecp-garbage",
    "draft-0.2 ECP frames (EtherType 0x88B7, OUI 00-1B-3F) with garbage",
    "README.md §2.2, §3; ecp.md §7",
    "ignored by a ratified DUT: no ACK of either kind; still works",
)
async def draft_ecp_garbage(t: Tester) -> None:
    since_log, since = len(t.log), len(t.acks_in)
    payload = OUI_QBG_DRAFT + b"\x00\x00" + b"\x00\x00" + b"\x12\x34" + garbage(40, 4)
    for dst in (NEAREST_BRIDGE, NEAREST_CUSTOMER_BRIDGE):
        t.send_raw(t.raw_frame(ETH_P_OUI_EXT, payload, dst=dst))
    await t.sleep(ack_window(t))
    for seen in t.log[since_log:]:
        if seen.way == "in" and int.from_bytes(seen.data[12:14], "big") == ETH_P_OUI_EXT:
            raise Fail("the DUT answered draft-0.2 ECP", seen.data)
    if t.acks_in[since:]:
        raise Fail("the DUT sent a ratified ACK after draft-0.2 ECP frames", t.acks_in[since][2])
    await steps.still_alive(t)


@both(
    "garbage-burst",
    "a burst of 1,000 garbage frames (bad ECP, truncated LLDP, draft ECP, unknown EtherType)",
    "ecp.md §4.1; lldp-evb-cdcp.md §1.3",
    "no acknowledgement, the marker in the LLDP garbage not taken; the DUT still works afterwards",
)
async def garbage_burst(t: Tester) -> None:
    base = current(t)
    cut = lldp_frame(t, head(t) + SYSNAME + marker(t).encode()[:8])
    draft = t.raw_frame(ETH_P_OUI_EXT, OUI_QBG_DRAFT + bytes(6) + garbage(50, 5), dst=NEAREST_BRIDGE)
    other = t.raw_frame(0x88B5, garbage(100, 6))
    since_ack, since = len(t.acks_in), len(t.lldp_in)
    t.lldp_enabled = False
    for i in range(1000):
        kind = i % 5
        if kind == 0:
            t.send_frame(t.ecp_frame(garbage(30, 100 + i), 0xE000 + i, version=(0, *range(2, 16))[(i // 5) % 15]))
        elif kind == 1:
            t.send_frame(t.ecp_frame(garbage(30, 100 + i), 0xE000 + i, op=3))
        elif kind == 2:
            t.send_frame(cut)
        elif kind == 3:
            t.send_raw(draft)
        else:
            t.send_raw(other)
    await t.sleep(QUIET)
    t.lldp_enabled = True
    if t.acks_in[since_ack:]:
        raise Fail(f"the DUT acknowledged {len(t.acks_in) - since_ack} garbage ECPDUs", t.acks_in[since_ack][2])
    for _, e, data in evb_since(t, since):
        if e is None or copied(t, e) != copied(t, base):
            raise Fail(f"the DUT's EVB TLV changed during the burst: {describe(e)}", data)
    await t.ensure_evb()
    await steps.still_alive(t)


# --------------------------------------------------------------------------- VDP: broken ULPDUs in valid ECPDUs


@both(
    "vdp-truncated-tlv",
    "a VDP ULPDU ending inside an Associate TLV",
    "vdp.md §2 (a TLV past the payload drops the ECPDU), §10.1",
    "acknowledged; a bridge does not answer; still works",
)
async def vdp_truncated_tlv(t: Tester) -> None:
    vsi = t.new_vsi()
    await vdp_sent(t, mgr(t) + assoc(vsi)[:22], "a truncated Associate TLV", answer="none")


@both(
    "vdp-tlv-length-0",
    "an Associate TLV of length 0",
    "vdp.md §4.1 (L = 25 + n·E exactly), §10.1",
    "acknowledged; a bridge does not answer; still works",
)
async def vdp_tlv_length_0(t: Tester) -> None:
    await vdp_sent(t, mgr(t) + tlv(3, b""), "an Associate TLV of length 0", answer="none")


@both(
    "vdp-tlv-past-frame",
    "a valid Associate followed by a TLV whose length runs past the frame",
    "vdp.md §2 (the whole ECPDU is dropped if a TLV runs past the payload)",
    "acknowledged; a bridge answers nothing, not even the valid Associate; still works",
)
async def vdp_tlv_past_frame(t: Tester) -> None:
    """A ULPDU with a TLV running past its end is malformed as a whole (as an LLDPDU would be):
    the valid Associate before it is not to be answered."""
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    payload = mgr(t) + assoc(vsi) + tlv(3, b"\x00" * 20, length=0x1FF)
    await vdp_sent(t, payload, "a ULPDU with a TLV past its end", answer="none")


@both(
    "vdp-mgrid-short",
    "a VSI Manager ID TLV of length 4, then a valid Associate",
    "vdp.md §3 (16 octets, length 16)",
    "acknowledged; a bridge does not accept the VSI (no answer with status 0); still works",
    lldpad="lldpad does not check the Manager ID TLV's length and always reads 16 octets (vdp.md §3)",
)
async def vdp_mgrid_short(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    payload = tlv(5, vsi.manager_id[:4]) + assoc(vsi)
    await vdp_sent(t, payload, "a 4-octet Manager ID", answer="no-success", vsiid=vsi.vsiid)


@both(
    "vdp-mgrid-long",
    "a VSI Manager ID TLV of length 20, then a valid Associate",
    "vdp.md §3 (16 octets, length 16)",
    "acknowledged; a bridge does not accept the VSI (no answer with status 0); still works",
    lldpad="lldpad does not check the Manager ID TLV's length and always reads 16 octets (vdp.md §3)",
)
async def vdp_mgrid_long(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    payload = tlv(5, vsi.manager_id + b"\x00" * 4) + assoc(vsi)
    await vdp_sent(t, payload, "a 20-octet Manager ID", answer="no-success", vsiid=vsi.vsiid)


@both(
    "vdp-no-mgrid",
    "an Associate TLV without a VSI Manager ID TLV before it",
    "vdp.md §2 (Manager ID first), §10.1",
    "acknowledged; a bridge does not answer; still works",
)
async def vdp_no_mgrid(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    await vdp_sent(t, assoc(vsi), "an Associate without Manager ID", answer="none")


@both(
    "vdp-two-mgrids",
    "two VSI Manager ID TLVs, then a valid Associate",
    "vdp.md §2 (exactly one Manager ID per ECPDU; lldpad drops the ECPDU)",
    "acknowledged; a bridge does not answer; still works",
)
async def vdp_two_mgrids(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    m = VsiManagerIdTlv(vsi.manager_id).encode()
    await vdp_sent(t, m + m + assoc(vsi), "two Manager ID TLVs", answer="none")


@both(
    "vdp-unknown-tlv-types",
    "a ULPDU of a Manager ID and reserved VDP TLV types only (6, 126)",
    "vdp.md §1 (types 6-126 reserved, skipped), §2",
    "acknowledged; nothing to answer; still works",
)
async def vdp_unknown_tlv_types(t: Tester) -> None:
    payload = mgr(t) + tlv(6, b"\x01\x02\x03") + tlv(126, garbage(40, 7))
    await vdp_sent(t, payload, "reserved VDP TLV types", answer="none")


@both(
    "vdp-unknown-tlv-skipped",
    "a reserved VDP TLV type before a valid Associate is skipped",
    "vdp.md §1, §2 (types 6-127 skipped)",
    "acknowledged; a bridge answers the Associate with success",
)
async def vdp_unknown_tlv_skipped(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    payload = mgr(t) + tlv(42, b"\x00" * 7) + assoc(vsi)
    await vdp_sent(t, payload, "an Associate after a reserved TLV", answer="success", vsiid=vsi.vsiid)


@both(
    "vdp-org-tlv-skipped",
    "an unknown organizationally defined TLV after a valid Associate is skipped",
    "vdp.md §2, §6 (org TLVs ignored on receive)",
    "acknowledged; a bridge answers the Associate with success",
)
async def vdp_org_tlv_skipped(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    payload = mgr(t) + assoc(vsi) + tlv(127, bytes.fromhex("001122") + garbage(20, 8))
    await vdp_sent(t, payload, "an Associate with an unknown org TLV", answer="success", vsiid=vsi.vsiid)


def _bad_field(what: str, *, filter_format: int | None = None, vsiid_format: int | None = None) -> CaseFn:
    async def run(t: Tester) -> None:
        vsi = t.new_vsi()
        steps.forget_on_cleanup(t, vsi)
        payload = mgr(t) + assoc(vsi, filter_format=filter_format, vsiid_format=vsiid_format)
        await vdp_sent(t, payload, what, answer="no-success", vsiid=vsi.vsiid)

    return run


both(
    "vdp-filter-format-0",
    "an Associate with filter format 0",
    "vdp.md §5.1 (formats 1-4), §10.1",
    "acknowledged; a bridge does not accept it (refusal or silence); still works",
)(_bad_field("filter format 0", filter_format=0))
both(
    "vdp-filter-format-9",
    "an Associate with filter format 9",
    "vdp.md §5.1 (formats 1-4), §10.1",
    "acknowledged; a bridge does not accept it (refusal or silence); still works",
)(_bad_field("filter format 9", filter_format=9))
both(
    "vdp-vsiid-format-0",
    "an Associate with VSIID format 0",
    "vdp.md §4.4 (formats 1-5), §10.1",
    "acknowledged; a bridge does not accept it (refusal or silence); still works",
)(_bad_field("VSIID format 0", vsiid_format=0))


@both(
    "vdp-zero-entries",
    "an Associate with 0 filter entries (L = 25)",
    "vdp.md §4.1 (n ≥ 1), §10.1, §12 row 3",
    "acknowledged; a bridge does not accept it (a refusal or silence); still works",
)
async def vdp_zero_entries(t: Tester) -> None:
    """The TLV is consistent (L = 25 for n = 0) but asks for nothing: lldpad ignores it
    (vdp.md §10.1); refusing it with a status code (1, invalid format: §12 row 3) is as good.
    Only acceptance fails."""
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    payload = mgr(t) + assoc(vsi, count=0, entries=b"")
    await vdp_sent(t, payload, "an Associate of 0 entries", answer="no-success", vsiid=vsi.vsiid)


@both(
    "vdp-entry-count-mismatch",
    "an Associate announcing 2 filter entries with room for 1 (L = 33)",
    "vdp.md §4.1, §10.1 (vdp-bridge-errors-injected.pcap frames 29-30)",
    "acknowledged; a bridge does not accept it (a refusal or no answer); still works",
)
async def vdp_entry_count_mismatch(t: Tester) -> None:
    """The precise expectation (a refusal, code 1) is vdp.bridge.malformed-count's."""
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    await vdp_sent(
        t, mgr(t) + assoc(vsi, count=2), "2 entries announced, 1 present", answer="no-success", vsiid=vsi.vsiid
    )


@both(
    "vdp-response-bit",
    "an Associate with the response bit (0x40) set, for a VSI nobody asked for",
    "vdp.md §9.2, §10.1",
    "acknowledged; a bridge does not answer it, a station ignores it; still works",
)
async def vdp_response_bit(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    await vdp_sent(t, mgr(t) + assoc(vsi, status=0x40), "an unsolicited response", answer="none")


@both(
    "vdp-short-after-long",
    "a short VDP PDU without End TLV right after a long one",
    "vdp.md §2 (the ULPDU ends where the ECPDU ends; lldpad's stale VDP input buffer)",
    "only the short PDU's TLVs are read: a bridge answers its Associate once, nothing else; still works",
    lldpad="lldpad does not clear its VDP input buffer and walks it to a type-0 header (vdp.md §2): after a long "
    "ULPDU it reads the stale octets of the earlier frame behind a short one (seen: garbage VSIs, then a crash)",
)
async def vdp_short_after_long(t: Tester) -> None:
    """First a 60-entry De-Associate of a VSI nobody has (525 octets of VDP), then, 4 ms later, a
    53-octet PDU with no End TLV and no padding (the frame is longer than 60 octets). The ULPDU
    ends with the frame: a DUT that reads on into an earlier frame's octets finds garbage TLVs."""
    long_vsi = t.new_vsi(count=60)
    await t.send_ulpdu(long_vsi.pdu(VdpMode.DEASSOC, status=VdpStatus()))
    await t.sleep(t.op.resp_wait_delay if t.dut_role == "bridge" else GAP)  # a bridge answers the De-Associate
    vsi = t.new_vsi()
    start = len(t.vdp_in)
    mode = VdpMode.ASSOC if t.dut_role == "bridge" else VdpMode.DEASSOC
    if t.dut_role == "bridge":
        steps.forget_on_cleanup(t, vsi)
    await t.send_ulpdu(mgr(t) + assoc(vsi, mode=mode))  # raw bytes: no End TLV
    await t.sleep(answer_window(t))
    if t.dut_role == "bridge":
        mine = [i for i in t.vdp_in[start:] if any(x.vsiid == vsi.vsiid and x.status.response for x in i.vsis)]
        if len(mine) != 1 or any(x.status.code for x in mine[0].vsis if x.vsiid == vsi.vsiid):
            raise Fail(f"the short PDU's Associate was answered {len(mine)} times (expected once, success)")
    others = [x for i in t.vdp_in[start:] for x in i.vsis if x.vsiid not in (vsi.vsiid, long_vsi.vsiid)]
    if others:
        raise Fail(f"the DUT reacted to VSIs that were not in the PDU (stale octets?): {others[0].vsiid.hex()}")
    await steps.still_alive(t)


# frames shorter than their own header come last: lldpad reads past their end and dies (interop/README.md)


@both(
    "ecp-2-octets",
    "an ECPDU of 2 octets (header word, no sequence number)",
    "ecp.md §1, §4.1",
    "no acknowledgement (on a link that pads it reads as sequence 0: an ACK of 0 is tolerated); still works",
)
async def ecp_2_octets(t: Tester) -> None:
    await not_acked(t, t.raw_frame(ETH_P_ECP, b"\x10\x01"), "a 2-octet ECPDU", tolerate=0)


@both(
    "ecp-3-octets",
    "an ECPDU of 3 octets (half a sequence number)",
    "ecp.md §1, §4.1",
    "no acknowledgement (padded, it reads as sequence 0x7e00: an ACK of it is tolerated); still works",
)
async def ecp_3_octets(t: Tester) -> None:
    await not_acked(t, t.raw_frame(ETH_P_ECP, b"\x10\x01\x7e"), "a 3-octet ECPDU", tolerate=0x7E00)
