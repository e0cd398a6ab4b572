"""VDP cases for a bridge DUT (vdp.md): the tester is the station and sends the requests itself.

What a bridge must answer and how (type, status, identity and filter echoed, Manager ID TLV
first), the mode transitions a station may ask for (vdp.md §11, lldpad vdp22 tests 103-114),
the keep-alive timer (§8, §10.5), which VSIIDs and filters it accepts or refuses (§4.4, §5),
which malformed requests it ignores (§4.1, §10.1) and which TLVs it skips (§2, §6). No hook is
needed. Refusals are judged by "any non-zero code" except in the ``code-*`` cases, which ask
for the precise code of vdp.md §4.3.

Where the digest describes only lldpad and the standard is silent, each case's docstring says
what we decided a network engineer would expect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from evb.conformance import steps
from evb.conformance.model import Fail, Skip, case
from evb.conformance.tester import Tester, VdpIn, VsiSpec, ecp_request_body
from evb.ethernet import ETH_P_ECP
from evb.vdp.wire import (
    CiscoL3AddressTlv,
    CiscoVmNameTlv,
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpOrgTlv,
    VdpPdu,
    VdpStatus,
    VdpUnknownTlv,
    VsiidFormat,
    VsiManagerIdTlv,
    VsiTlv,
)

ROLE = "bridge"
ASSOC, PREASSOC, PREASSOC_RR, DEASSOC = VdpMode.ASSOC, VdpMode.PREASSOC, VdpMode.PREASSOC_RR, VdpMode.DEASSOC

# lldpad's known deviations (vdp.md §12, lldpad-behaviour.md §4.4)
LLDPAD_CODE_2 = "lldpad answers every invalid request with code 2 (status 0x42), vdp.md §5.5, §12 #3: expected to fail"
LLDPAD_LINGER = (
    "lldpad keeps the VSI after a station De-Associate and sends an unsolicited De-Associate at "
    "toutKeepAlive (vdp.md §10.4, §12 #12; vdp-deassoc-bridge-linger.pcap): expected to fail"
)
LLDPAD_FILTER_CHANGE = (
    "lldpad ignores a request whose filter differs from the stored VSI's (no answer; vdp.md §10.4, §12 #10): "
    "expected to fail"
)


# --------------------------------------------------------------------------- helpers


def mac_text(mac: bytes | None) -> str:
    return mac.hex(":") if mac is not None else "-"


def entry_text(e: FilterEntry) -> str:
    parts = []
    if e.group_id is not None:
        parts.append(f"group {e.group_id}")
    if e.mac is not None:
        parts.append(mac_text(e.mac))
    parts.append(f"word {e.qos_word:#06x}")
    return "/".join(parts)


def with_vsiid(vsi: VsiSpec, fmt: int, vsiid: bytes) -> VsiSpec:
    return dataclasses.replace(vsi, vsiid_format=fmt, vsiid=vsiid)


def with_entries(vsi: VsiSpec, *entries: FilterEntry) -> VsiSpec:
    return dataclasses.replace(vsi, entries=tuple(entries))


def serial(vsi: VsiSpec) -> bytes:
    """Two octets unique to ``vsi`` within the run (the tail of the tester's UUID)."""
    return vsi.vsiid[-2:]


def own_mac(vsi: VsiSpec) -> bytes:
    """A unicast, locally administered MAC unique to ``vsi``."""
    return bytes([0x02, 0xCF, 0xEE, 0x00]) + serial(vsi)


def carries(item: VdpIn, vsi: VsiSpec) -> list[VsiTlv]:
    """The association TLVs of ``item`` with ``vsi``'s VSIID (whatever the other fields say)."""
    return [x for x in item.vsis if x.vsiid == vsi.vsiid]


def answer_match(vsi: VsiSpec, start: int) -> Callable[[VdpIn], bool]:
    """A DUT PDU from ``vdp_in[start]`` on with a response TLV for ``vsi``'s VSIID."""
    return lambda i: i.index >= start and any(x.status.response for x in carries(i, vsi))


def unsolicited_match(vsi: VsiSpec, start: int) -> Callable[[VdpIn], bool]:
    """A DUT PDU from ``vdp_in[start]`` on with a De-Associate request (0x40 clear) for ``vsi``."""
    return lambda i: i.index >= start and any(x.mode == DEASSOC and not x.status.response for x in carries(i, vsi))


def any_match(vsi: VsiSpec, start: int) -> Callable[[VdpIn], bool]:
    return lambda i: i.index >= start and bool(carries(i, vsi))


def the_answer(item: VdpIn, vsi: VsiSpec) -> VsiTlv:
    for x in carries(item, vsi):
        if x.status.response:
            return x
    raise Fail("the VDP PDU carries no answer for the VSI", item.data)


async def ask(
    t: Tester, vsi: VsiSpec, mode: VdpMode, *, pdu: VdpPdu | bytes | None = None, within: float | None = None
) -> tuple[VsiTlv, VdpIn]:
    """Send ``vsi`` in ``mode`` (or ``pdu``) and return the bridge's answer: the first response TLV
    carrying the VSIID (identity and filter are checked by the caller, so that a mangled echo
    is reported as such and not as a missing answer)."""
    start = len(t.vdp_in)
    await t.send_ulpdu(pdu if pdu is not None else vsi.pdu(mode))
    within = t.op.resp_wait_delay if within is None else within
    got = await t.expect_vdp(answer_match(vsi, start), within=within, what=f"answer to the {mode.label} request")
    return the_answer(got, vsi), got


def pdu_problems(item: VdpIn, vsi: VsiSpec) -> list[str]:
    """vdp.md §2: one Manager ID TLV, first, carrying the requester's Manager ID."""
    out = []
    tlvs = item.pdu.tlvs
    if not tlvs or not isinstance(tlvs[0], VsiManagerIdTlv):
        out.append("the first TLV is not a VSI Manager ID TLV")
    elif tlvs[0].manager_id != vsi.manager_id:
        out.append(f"Manager ID {tlvs[0].manager_id.hex()} instead of {vsi.manager_id.hex()}")
    n = sum(isinstance(x, VsiManagerIdTlv) for x in tlvs)
    if n > 1:
        out.append(f"{n} Manager ID TLVs")
    return out


def identity_problems(tlv: VsiTlv, vsi: VsiSpec) -> list[str]:
    """vdp.md §4.5: Type ID, version, VSIID format and VSIID, filter format echoed."""
    out = []
    if tlv.type_id != vsi.type_id:
        out.append(f"Type ID {tlv.type_id} instead of {vsi.type_id}")
    if tlv.type_version != vsi.type_version:
        out.append(f"Type Version {tlv.type_version} instead of {vsi.type_version}")
    if tlv.vsiid_format != vsi.vsiid_format:
        out.append(f"VSIID format {tlv.vsiid_format} instead of {vsi.vsiid_format}")
    if tlv.filter_format != vsi.filter_format:
        out.append(f"filter format {int(tlv.filter_format)} instead of {int(vsi.filter_format)}")
    return out


def filter_problems(got: tuple[FilterEntry, ...], sent: tuple[FilterEntry, ...]) -> list[str]:
    """vdp.md §5.3: same number of entries in the same order, same MAC and GroupID; a non-zero
    VID comes back unchanged (the bridge may choose one for VID 0); with PS set the whole
    PS/PCP/VID word comes back unchanged (without PS the bridge may change the PCP)."""
    if len(got) != len(sent):
        return [f"{len(got)} filter entries instead of {len(sent)}"]
    out = []
    for i, (g, s) in enumerate(zip(got, sent, strict=True)):
        if g.mac != s.mac or g.group_id != s.group_id:
            out.append(f"entry {i}: {entry_text(g)} instead of {entry_text(s)}")
        elif s.vid != 0 and g.vid != s.vid:
            out.append(f"entry {i}: VID {g.vid} instead of {s.vid}")
        elif s.ps and g.qos_word != s.qos_word:
            out.append(f"entry {i}: PS/PCP/VID word {g.qos_word:#06x} instead of {s.qos_word:#06x} (PS was set)")
    return out


def success_problems(tlv: VsiTlv, item: VdpIn, vsi: VsiSpec, mode: VdpMode) -> list[str]:
    """A successful answer: same TLV type, status exactly 0x40, PDU composition, echo."""
    out = []
    if tlv.mode != mode:
        out.append(f"answered with a {tlv.mode.label} TLV, not {mode.label}")
    if tlv.status.octet != 0x40:
        out.append(f"status {tlv.status.octet:#04x} ({tlv.status.describe()}), expected 0x40")
    return out + pdu_problems(item, vsi) + identity_problems(tlv, vsi) + filter_problems(tlv.entries, vsi.entries)


async def accepted(
    t: Tester,
    vsi: VsiSpec,
    mode: VdpMode = ASSOC,
    *,
    pdu: VdpPdu | bytes | None = None,
    cleanup: bool = True,
    what: str = "",
) -> tuple[VsiTlv, VdpIn]:
    """Request ``mode`` for ``vsi``; the answer must be a success echoing the request."""
    if cleanup and mode != DEASSOC:
        steps.forget_on_cleanup(t, vsi)
    tlv, item = await ask(t, vsi, mode, pdu=pdu)
    label = what or f"a valid {mode.label}"
    if tlv.status.code != 0:
        raise Fail(f"{label} was refused: status {tlv.status.octet:#04x} ({tlv.status.describe()})", item.data)
    problems = success_problems(tlv, item, vsi, mode)
    if problems:
        raise Fail(f"answer to {label}: " + "; ".join(problems), item.data)
    return tlv, item


async def refused(
    t: Tester,
    vsi: VsiSpec,
    mode: VdpMode = ASSOC,
    *,
    what: str,
    code: int | None = None,
    pdu: VdpPdu | bytes | None = None,
) -> tuple[VsiTlv, VdpIn]:
    """Request ``mode`` for ``vsi``; the answer must refuse it (non-zero code, or ``code``), in a
    TLV of the requested type or a De-Associate (vdp.md §1, §7.3), Manager ID TLV first."""
    tlv, item = await ask(t, vsi, mode, pdu=pdu)
    if tlv.status.code == 0:
        steps.forget_on_cleanup(t, vsi)
        raise Fail(f"{what} was accepted (status {tlv.status.octet:#04x})", item.data)
    problems = pdu_problems(item, vsi)
    if tlv.mode not in (mode, DEASSOC):
        problems.append(f"refused with a {tlv.mode.label} TLV (expected {mode.label} or DEASSOC)")
    if code is not None and tlv.status.code != code:
        problems.append(f"refused with code {tlv.status.code} ({tlv.status.describe()}), expected code {code}")
    if problems:
        raise Fail(f"refusal of {what}: " + "; ".join(problems), item.data)
    return tlv, item


def dut_frames_with(t: Tester, since: int, needle: bytes) -> list[bytes]:
    """ECP requests from the DUT (log index ``since`` on) whose octets contain ``needle``, even
    if they did not decode (a malformed echo must count as an answer too)."""
    out = []
    for seen in t.log[since:]:
        body = ecp_request_body(seen.data) if seen.way == "in" else None
        if body is not None and needle in body[4:]:
            out.append(seen.data)
    return out


async def ignored(t: Tester, pdu: VdpPdu | bytes, vsi: VsiSpec, what: str, *, forget: VsiSpec | None = None) -> None:
    """Send ``pdu`` (acknowledged by ECP); the bridge must not answer ``vsi`` within respWaitDelay,
    and must still answer a valid request afterwards. ``forget`` (default ``vsi``) is
    de-associated at the end, in case the DUT took the request after all."""
    steps.forget_on_cleanup(t, forget or vsi)
    since = len(t.log)
    await t.send_ulpdu(pdu)
    await t.sleep(t.op.resp_wait_delay)
    answers = dut_frames_with(t, since, vsi.vsiid)
    if answers:
        raise Fail(f"{what} was answered (it must be ignored)", answers[0])
    await steps.still_alive(t)


async def times_out(t: Tester, vsi: VsiSpec, since: float, start: int, what: str) -> VdpIn:
    """The bridge's unsolicited De-Associate of ``vsi`` toutKeepAlive after ``since`` (the time
    of its last answer): vdp.md §8, §10.5. Checks time, status 0x00 and the stored VSI."""
    lo, hi = t.bounds(t.op.keepalive_timeout)
    got = await t.expect_vdp(
        unsolicited_match(vsi, start),
        within=max(0.0, since + hi - t.now()),
        what=f"unsolicited De-Associate {what} (toutKeepAlive {t.op.keepalive_timeout:.3f} s)",
    )
    dt = got.t - since
    if dt < lo:
        raise Fail(
            f"unsolicited De-Associate {dt:.3f} s after the last answer, toutKeepAlive is "
            f"{t.op.keepalive_timeout:.3f} s (earliest accepted {lo:.3f} s)",
            got.data,
        )
    tlv = next(x for x in carries(got, vsi) if x.mode == DEASSOC and not x.status.response)
    problems = pdu_problems(got, vsi) + identity_problems(tlv, vsi)
    if tlv.status.octet != 0x00:
        problems.append(f"status {tlv.status.octet:#04x}, expected 0x00")
    if tlv.entries != vsi.entries:
        problems.append(
            "filter " + ", ".join(map(entry_text, tlv.entries)) + " is not the stored one "
            "(" + ", ".join(map(entry_text, vsi.entries)) + ")"
        )
    if problems:
        raise Fail("unsolicited De-Associate: " + "; ".join(problems), got.data)
    return got


async def quiet(t: Tester, vsi: VsiSpec, start: int, within: float, what: str) -> None:
    """No VDP at all about ``vsi`` from the DUT for ``within`` seconds."""
    await t.no_vdp(any_match(vsi, start), within=within, what=what)


def need_group_ids(t: Tester) -> None:
    if not t.op.group_ids:
        raise Skip("group IDs are not in use (BGID and SGID are not both set): filter formats 3 and 4 are unusable")


# --------------------------------------------------------------------------- answers


@case(
    "vdp.bridge.assoc",
    "an Associate is answered: same TLV type, status 0x40, identity and filter echoed",
    "vdp.md §2, §4.1, §4.2, §7.2, §10.2 (lldpad vdp22 test 103)",
    ROLE,
    expect="an Associate TLV with status 0x40, Manager ID TLV first, every field of the request echoed",
)
async def assoc(t: Tester) -> None:
    await accepted(t, t.new_vsi(), ASSOC)


@case(
    "vdp.bridge.preassoc",
    "a Pre-Associate is answered with a Pre-Associate TLV, status 0x40",
    "vdp.md §1, §7.3, §10.2 (lldpad vdp22 test 105)",
    ROLE,
    expect="a Pre-Associate TLV with status 0x40 echoing the request",
)
async def preassoc(t: Tester) -> None:
    await accepted(t, t.new_vsi(), PREASSOC)


@case(
    "vdp.bridge.preassoc-rr",
    "a Pre-Associate with Resource Reservation is answered in kind, status 0x40",
    "vdp.md §1, §7.3, §10.2 (lldpad vdp22 test 107)",
    ROLE,
    expect="a Pre-Associate-RR TLV with status 0x40 echoing the request",
)
async def preassoc_rr(t: Tester) -> None:
    await accepted(t, t.new_vsi(), PREASSOC_RR)


@case(
    "vdp.bridge.deassoc",
    "a De-Associate of an associated VSI is answered with a De-Associate TLV, status 0x40",
    "vdp.md §7.2, §10.3 (lldpad vdp22 test 103)",
    ROLE,
    expect="Associate answered 0x40, then De-Associate answered 0x40 echoing the VSI",
)
async def deassoc(t: Tester) -> None:
    vsi = t.new_vsi()
    await accepted(t, vsi, ASSOC)
    await accepted(t, vsi, DEASSOC)


@case(
    "vdp.bridge.deassoc-unknown",
    "a De-Associate of a VSI the bridge does not know is answered",
    "vdp.md §7.3, §10.1 (vdp-deassoc-unknown.pcap; lldpad vdp22 test 114)",
    ROLE,
    expect="a De-Associate TLV with status 0x40 echoing the request",
)
async def deassoc_unknown(t: Tester) -> None:
    """De-associating what is not associated leaves the wanted state (not associated): success."""
    await accepted(t, t.new_vsi(), DEASSOC)


@case(
    "vdp.bridge.answer-time",
    "the bridge answers within resourceWaitDelay",
    "vdp.md §8 (resourceWaitDelay: the bridge's maximum time to decide), §10.2",
    ROLE,
    expect="the answer arrives within resourceWaitDelay (with the suite's tolerance) of the request",
)
async def answer_time(t: Tester) -> None:
    vsi = t.new_vsi()
    steps.forget_on_cleanup(t, vsi)
    sent = t.now()
    _, item = await ask(t, vsi, ASSOC)
    _, hi = t.bounds(t.op.resource_wait_delay)
    if item.t - sent > hi:
        raise Fail(
            f"answered after {item.t - sent:.3f} s, resourceWaitDelay is {t.op.resource_wait_delay:.3f} s", item.data
        )


@case(
    "vdp.bridge.two-vsis",
    "two VSIs associated and de-associated one after the other",
    "vdp.md §10 (one state machine per VSI; lldpad vdp22 test 104)",
    ROLE,
    expect="each Associate and each De-Associate answered 0x40 for its own VSI",
)
async def two_vsis(t: Tester) -> None:
    a, b = t.new_vsi(), t.new_vsi()
    await accepted(t, a, ASSOC)
    await accepted(t, b, ASSOC)
    await accepted(t, a, DEASSOC)
    await accepted(t, b, DEASSOC)


@case(
    "vdp.bridge.two-preassoc",
    "two VSIs pre-associated and de-associated",
    "vdp.md §10 (lldpad vdp22 test 106)",
    ROLE,
    expect="each Pre-Associate and each De-Associate answered 0x40 for its own VSI",
)
async def two_preassoc(t: Tester) -> None:
    a, b = t.new_vsi(), t.new_vsi()
    await accepted(t, a, PREASSOC)
    await accepted(t, b, PREASSOC)
    await accepted(t, a, DEASSOC)
    await accepted(t, b, DEASSOC)


# --------------------------------------------------------------------------- mode transitions


def sequence_case(name: str, title: str, test: str, modes: tuple[VdpMode, ...]) -> None:
    labels = " → ".join(m.label for m in modes)

    @case(
        f"vdp.bridge.{name}",
        title,
        f"vdp.md §10.3, §11 ({test})",
        ROLE,
        expect=f"{labels}: every request answered 0x40 in its own TLV type",
    )
    async def run(t: Tester) -> None:
        vsi = t.new_vsi()
        for m in modes:
            await accepted(t, vsi, m, what=f"the {m.label} in {labels}")


sequence_case(
    "preassoc-rr-assoc-deassoc",
    "Pre-Associate, Pre-Associate-RR, Associate, De-Associate of one VSI",
    "lldpad vdp22 test 110",
    (PREASSOC, PREASSOC_RR, ASSOC, DEASSOC),
)
sequence_case(
    "preassoc-twice",
    "Pre-Associate twice, then De-Associate",
    "lldpad vdp22 test 111",
    (PREASSOC, PREASSOC, DEASSOC),
)
sequence_case(
    "preassoc-rr-twice",
    "Pre-Associate-RR twice, then De-Associate",
    "lldpad vdp22 test 112",
    (PREASSOC_RR, PREASSOC_RR, DEASSOC),
)
sequence_case(
    "assoc-twice",
    "Associate twice, then De-Associate",
    "lldpad vdp22 test 113",
    (ASSOC, ASSOC, DEASSOC),
)
sequence_case(
    "preassoc-rr-to-preassoc",
    "Pre-Associate-RR, then back to Pre-Associate (allowed by §11's table), then De-Associate",
    "§11 table: Pre-Assoc after Pre-Assoc-RR allowed; the bridge accepts any request type in any state",
    (PREASSOC_RR, PREASSOC, DEASSOC),
)
sequence_case(
    "deassoc-then-reassoc",
    "Associate, De-Associate, Associate the same VSI again",
    "a released VSI can be associated anew",
    (ASSOC, DEASSOC, ASSOC),
)


@case(
    "vdp.bridge.assoc-to-preassoc",
    "an associated VSI asks for Pre-Associate",
    "vdp.md §11 (the table calls it an error for the station; the bridge accepts any request type in any "
    "state; lldpad vdp22 test 108)",
    ROLE,
    expect="the Pre-Associate is answered: either accepted (Pre-Associate TLV, 0x40) or refused (non-zero code)",
)
async def assoc_to_preassoc(t: Tester) -> None:
    """§11 marks Assoc → Pre-Assoc an error, but that is the station's own rule (lldpad's station
    refuses it locally); a bridge may accept it (lldpad does) or refuse it. What it must not do
    is stay silent, which would make the station wait out respWaitDelay."""
    vsi = t.new_vsi()
    await accepted(t, vsi, ASSOC)
    tlv, item = await ask(t, vsi, PREASSOC)
    if tlv.status.code == 0:
        problems = success_problems(tlv, item, vsi, PREASSOC)
        if problems:
            raise Fail("accepted Pre-Associate after Associate: " + "; ".join(problems), item.data)
    elif tlv.mode not in (PREASSOC, DEASSOC):
        raise Fail(f"refusal in a {tlv.mode.label} TLV", item.data)


# --------------------------------------------------------------------------- keep-alive


@case(
    "vdp.bridge.keepalive-refresh",
    "refreshing the Associate every toutKeepAlive/2 keeps the VSI",
    "vdp.md §8 (toutKeepAlive restarted by every answer), §10.3 (WAITCMD → ALIVE)",
    ROLE,
    expect="every refresh answered 0x40 for 2.5 × toutKeepAlive, and no unsolicited De-Associate",
)
async def keepalive_refresh(t: Tester) -> None:
    vsi = t.new_vsi()
    start = len(t.vdp_in)
    await accepted(t, vsi, ASSOC)
    tout = t.op.keepalive_timeout
    for k in range(5):
        await t.sleep(tout / 2)
        match = unsolicited_match(vsi, start)
        got = next((i for i in t.vdp_in[start:] if match(i)), None)
        if got is not None:
            raise Fail(f"unsolicited De-Associate although the VSI was refreshed every {tout / 2:.3f} s", got.data)
        await accepted(t, vsi, ASSOC, cleanup=False, what=f"refresh {k + 1}")


@case(
    "vdp.bridge.keepalive-timeout",
    "an associated VSI that is not refreshed is de-associated at toutKeepAlive",
    "vdp.md §7.3, §8, §10.5 (vdp-bridge-deassoc-kato.pcap; lldpad vdp22 test 124)",
    ROLE,
    expect="a De-Associate TLV with status 0x00 carrying the stored VSI, toutKeepAlive after the answer",
)
async def keepalive_timeout(t: Tester) -> None:
    vsi = t.new_vsi()
    start = len(t.vdp_in)
    _, item = await accepted(t, vsi, ASSOC)
    await times_out(t, vsi, item.t, start, "after the Associate")


@case(
    "vdp.bridge.keepalive-timeout-preassoc",
    "a pre-associated VSI that is not refreshed is de-associated at toutKeepAlive",
    "vdp.md §8, §10.3 (WAITCMD after SEND for any request type), §10.5",
    ROLE,
    expect="a De-Associate TLV with status 0x00 carrying the stored VSI, toutKeepAlive after the answer",
)
async def keepalive_timeout_preassoc(t: Tester) -> None:
    vsi = t.new_vsi()
    start = len(t.vdp_in)
    _, item = await accepted(t, vsi, PREASSOC)
    await times_out(t, vsi, item.t, start, "after the Pre-Associate")


@case(
    "vdp.bridge.keepalive-timeout-restarts",
    "a refresh restarts toutKeepAlive",
    "vdp.md §8 (toutKeepAlive is restarted every time the bridge has answered a request)",
    ROLE,
    expect="refresh at 0.6 × toutKeepAlive; the De-Associate comes toutKeepAlive after the refresh's answer",
)
async def keepalive_timeout_restarts(t: Tester) -> None:
    vsi = t.new_vsi()
    start = len(t.vdp_in)
    await accepted(t, vsi, ASSOC)
    await t.sleep(0.6 * t.op.keepalive_timeout)
    _, item = await accepted(t, vsi, ASSOC, cleanup=False, what="the refresh")
    await times_out(t, vsi, item.t, start, "after the refresh")


@case(
    "vdp.bridge.deassoc-releases",
    "after a De-Associate the VSI is gone: no unsolicited De-Associate later",
    "vdp.md §10.3 (PROCESS → DEASSOC → END), §12 #12",
    ROLE,
    expect="after the De-Associate's answer, no VDP about the VSI for toutKeepAlive (+ tolerance)",
    lldpad=LLDPAD_LINGER,
)
async def deassoc_releases(t: Tester) -> None:
    vsi = t.new_vsi()
    await accepted(t, vsi, ASSOC)
    await accepted(t, vsi, DEASSOC)
    start = len(t.vdp_in)
    _, hi = t.bounds(t.op.keepalive_timeout)
    await quiet(t, vsi, start, hi, "VDP about the de-associated VSI (it was kept)")


@case(
    "vdp.bridge.refused-leaves-no-state",
    "a refused request creates no VSI: nothing about it later",
    "vdp.md §10.1 (invalid requests do not create state)",
    ROLE,
    expect="VID 4095 refused; then no VDP about the VSI for toutKeepAlive (+ tolerance)",
)
async def refused_leaves_no_state(t: Tester) -> None:
    vsi = t.new_vsi(vid=4095)
    await refused(t, vsi, ASSOC, what="an Associate with VID 4095")
    start = len(t.vdp_in)
    _, hi = t.bounds(t.op.keepalive_timeout)
    await quiet(t, vsi, start, hi, "VDP about the refused VSI")


# --------------------------------------------------------------------------- VSIID formats


def ipv4_vsiid(vsi: VsiSpec, first: int = 0xFF, second: int = 0xFF, addr: bytes | None = None) -> bytes:
    return bytes(10) + bytes([first, second]) + (addr if addr is not None else b"\x0a\x63" + serial(vsi))


def vsiid_ok(name: str, title: str, clause: str, make: Callable[[VsiSpec], VsiSpec], *, lldpad: str = "") -> None:
    @case(
        f"vdp.bridge.{name}",
        title,
        clause,
        ROLE,
        expect="accepted: Associate answered 0x40, VSIID format and VSIID echoed",
        lldpad=lldpad,
    )
    async def run(t: Tester) -> None:
        await accepted(t, make(t.new_vsi()), ASSOC, what=f"an Associate ({name})")


def vsiid_bad(name: str, title: str, clause: str, make: Callable[[VsiSpec], VsiSpec], *, lldpad: str = "") -> None:
    @case(
        f"vdp.bridge.{name}",
        title,
        clause,
        ROLE,
        expect="refused: an answer with a non-zero status code",
        lldpad=lldpad,
    )
    async def run(t: Tester) -> None:
        await refused(t, make(t.new_vsi()), ASSOC, what=title)


vsiid_ok(
    "vsiid-ipv4",
    "an IPv4 VSIID (10.99.x.y, IPv4-mapped) is accepted",
    "vdp.md §4.4 (format 1)",
    lambda v: with_vsiid(v, VsiidFormat.IPV4, ipv4_vsiid(v)),
)
vsiid_ok(
    "vsiid-ipv6",
    "an IPv6 VSIID (2001:db8::…) is accepted",
    "vdp.md §4.4 (format 2)",
    lambda v: with_vsiid(v, VsiidFormat.IPV6, bytes.fromhex("20010db8") + bytes(10) + serial(v)),
)
vsiid_ok(
    "vsiid-mac",
    "a MAC VSIID (a unicast MAC) is accepted",
    "vdp.md §4.4 (format 3)",
    lambda v: with_vsiid(v, VsiidFormat.MAC, bytes(10) + own_mac(v)),
)
vsiid_ok(
    "vsiid-local",
    "a locally defined VSIID is accepted",
    "vdp.md §4.4 (format 4: anything)",
    lambda v: with_vsiid(v, VsiidFormat.LOCAL, b"evb-conf-local" + serial(v)),
)
vsiid_ok(
    "vsiid-uuid-half-zero",
    "a UUID whose first 8 octets are zero (the rest not) is accepted",
    "vdp.md §4.4 (format 5: only the all-zero UUID is invalid), §12 #6",
    lambda v: with_vsiid(v, VsiidFormat.UUID, bytes(8) + bytes.fromhex("8000c0f0c0f0") + serial(v)),
    lldpad="lldpad checks only the first 8 octets of a UUID and refuses this valid one with 0x42 "
    "(vdp.md §4.4, vdp-bridge-errors-injected.pcap frames 6-8): expected to fail",
)
vsiid_bad(
    "vsiid-uuid-zero",
    "an all-zero UUID VSIID is refused",
    "vdp.md §4.4 (format 5), §10.1",
    lambda v: with_vsiid(v, VsiidFormat.UUID, bytes(16)),
)
vsiid_bad(
    "vsiid-ipv4-zero",
    "the IPv4 VSIID 0.0.0.0 is refused",
    "vdp.md §4.4 (format 1: address ≠ 0), §10.1",
    lambda v: with_vsiid(v, VsiidFormat.IPV4, ipv4_vsiid(v, addr=bytes(4))),
)
vsiid_bad(
    "vsiid-ipv4-not-mapped",
    "an IPv4 VSIID whose octets 10-11 are ff 00 (not IPv4-mapped) is refused",
    "vdp.md §4.4 (format 1 is 10 × 00, ff ff, address)",
    lambda v: with_vsiid(v, VsiidFormat.IPV4, ipv4_vsiid(v, 0xFF, 0x00)),
    lldpad="lldpad requires only one of octets 10 and 11 to be ff (vdp.md §4.4) and accepts it: expected to fail",
)
vsiid_bad(
    "vsiid-ipv6-zero",
    "the IPv6 VSIID :: (all zero) is refused",
    "vdp.md §4.4 (format 2: not all zero), §10.1",
    lambda v: with_vsiid(v, VsiidFormat.IPV6, bytes(16)),
)
vsiid_bad(
    "vsiid-mac-zero",
    "the MAC VSIID 00:00:00:00:00:00 is refused",
    "vdp.md §4.4 (format 3), §10.1",
    lambda v: with_vsiid(v, VsiidFormat.MAC, bytes(16)),
)
vsiid_bad(
    "vsiid-mac-broadcast",
    "the MAC VSIID ff:ff:ff:ff:ff:ff is refused",
    "vdp.md §4.4 (format 3), §10.1",
    lambda v: with_vsiid(v, VsiidFormat.MAC, bytes(10) + b"\xff" * 6),
)
vsiid_bad(
    "vsiid-mac-multicast",
    "the multicast MAC VSIID 01:00:5e:00:00:01 is refused",
    "vdp.md §4.4 (format 3), §10.1",
    lambda v: with_vsiid(v, VsiidFormat.MAC, bytes(10) + bytes.fromhex("01005e000001")),
)
vsiid_bad(
    "vsiid-mac-group",
    "the group MAC VSIID 01:80:c2:00:00:0e is refused",
    "vdp.md §4.4 (format 3: a VSI's MAC is an individual address; decided, see the docstring)",
    lambda v: with_vsiid(v, VsiidFormat.MAC, bytes(10) + bytes.fromhex("0180c200000e")),
    lldpad="lldpad refuses only broadcast, 01-00-5e-… and 33-33-… and accepts other group addresses "
    "(vdp.md §4.4): expected to fail",
)
vsiid_bad(
    "vsiid-unknown-format",
    "a VSIID of the reserved format 6 is refused",
    "vdp.md §4.4 (formats 1-5), §10.1 (unknown VSIID format)",
    lambda v: dataclasses.replace(v, vsiid_format=6),
)


# --------------------------------------------------------------------------- filter formats and values


@case(
    "vdp.bridge.filter-fmt1",
    "filter format 1 (VID) with two entries, one with PS/PCP",
    "vdp.md §5.1, §5.2, §5.6 (constructed example: PS 1, PCP 5, VID 10 and VID 20)",
    ROLE,
    expect="accepted, both entries echoed in order, the PS entry's word unchanged",
)
async def filter_fmt1(t: Tester) -> None:
    v = t.new_vsi(fmt=FilterFormat.VID)
    n = int.from_bytes(serial(v), "big") % 1000
    vsi = with_entries(v, FilterEntry(vid=100 + n, pcp=5, ps=True), FilterEntry(vid=1100 + n))
    await accepted(t, vsi, ASSOC)


@case(
    "vdp.bridge.filter-fmt2-multi",
    "filter format 2 (MAC/VID) with three entries",
    "vdp.md §5.1, §5.6 (vdp-filter-fmt2-multi.pcap)",
    ROLE,
    expect="accepted, the three entries echoed in order",
)
async def filter_fmt2_multi(t: Tester) -> None:
    v = t.new_vsi(count=3)
    vsi = with_entries(v, *(dataclasses.replace(e, vid=10 * (k + 1)) for k, e in enumerate(v.entries)))
    await accepted(t, vsi, ASSOC)


@case(
    "vdp.bridge.filter-fmt3",
    "filter format 3 (GroupID/VID) with two entries",
    "vdp.md §5.1, §5.6 (vdp-filter-fmt3-fmt4-group.pcap; lldpad vdp22 tests 220-222)",
    ROLE,
    expect="with group IDs negotiated: accepted, both entries echoed (skipped without BGID)",
)
async def filter_fmt3(t: Tester) -> None:
    need_group_ids(t)
    await accepted(t, t.new_vsi(fmt=FilterFormat.GROUP_VID, count=2), ASSOC)


@case(
    "vdp.bridge.filter-fmt4",
    "filter format 4 (GroupID/MAC/VID)",
    "vdp.md §5.1, §5.6 (vdp-filter-fmt3-fmt4-group.pcap; lldpad vdp22 test 220)",
    ROLE,
    expect="with group IDs negotiated: accepted, the entry echoed (skipped without BGID)",
)
async def filter_fmt4(t: Tester) -> None:
    need_group_ids(t)
    await accepted(t, t.new_vsi(fmt=FilterFormat.GROUP_MAC_VID), ASSOC)


@case(
    "vdp.bridge.filter-fmt4-no-sgid",
    "filter format 4 is refused while group IDs are not negotiated",
    "vdp.md §5.1 (formats 3/4 need BGID and SGID), §10.1; lldp-evb-cdcp.md §2.4 (lldpad vdp22 test 201)",
    ROLE,
    expect="with our SGID 0 (copied by the DUT), or a DUT without BGID, a format-4 Associate is refused",
)
async def filter_fmt4_no_sgid(t: Tester) -> None:
    if t.op.group_ids:
        t.evb_override = dataclasses.replace(t.local_evb, sgid=False)

        async def restore() -> None:
            await t.ensure_evb()

        t.cleanups.append(restore)
        t.send_lldp()
        ok = await t.until(
            lambda: t.peer_evb is not None and not t.peer_evb.station_status & 0x08, t.config.evb_timeout
        )
        if not ok:
            raise Fail("the DUT did not copy our SGID 0 into its EVB TLV", t.last_in())
    await refused(t, t.new_vsi(fmt=FilterFormat.GROUP_MAC_VID), ASSOC, what="a format-4 Associate without SGID")


@case(
    "vdp.bridge.filter-group-zero",
    "a GroupID of 0 is refused",
    "vdp.md §5.5 (GroupID non-zero), §10.1",
    ROLE,
    expect="with group IDs negotiated: a format-3 entry with GroupID 0 refused (skipped without BGID)",
)
async def filter_group_zero(t: Tester) -> None:
    need_group_ids(t)
    vsi = with_entries(t.new_vsi(fmt=FilterFormat.GROUP_VID), FilterEntry(vid=10, group_id=0))
    await refused(t, vsi, ASSOC, what="a filter entry with GroupID 0")


@case(
    "vdp.bridge.vid-1",
    "VID 1 is a valid VID",
    "vdp.md §5.2, §5.5 (VID 1 rejected is lldpad-specific), §12 #5",
    ROLE,
    expect="accepted, VID 1 echoed",
    lldpad="lldpad rejects VID 1 with 0x42 (vdp.md §5.5, §12 #5): expected to fail",
)
async def vid_1(t: Tester) -> None:
    await accepted(t, t.new_vsi(vid=1), ASSOC, what="an Associate with VID 1")


@case(
    "vdp.bridge.vid-4094",
    "VID 4094, the highest valid VID, is accepted",
    "vdp.md §5.2, §5.5",
    ROLE,
    expect="accepted, VID 4094 echoed",
)
async def vid_4094(t: Tester) -> None:
    await accepted(t, t.new_vsi(vid=4094), ASSOC, what="an Associate with VID 4094")


@case(
    "vdp.bridge.vid-4095",
    "VID 4095 (reserved) is refused",
    "vdp.md §5.5, §10.1",
    ROLE,
    expect="refused: an answer with a non-zero status code",
)
async def vid_4095(t: Tester) -> None:
    await refused(t, t.new_vsi(vid=4095), ASSOC, what="an Associate with VID 4095")


@case(
    "vdp.bridge.vid-0-wildcard",
    "a wildcard VID 0 is answered with a VID chosen by the bridge, or refused",
    "vdp.md §5.3, §12 #4 (the bridge supplies the VID)",
    ROLE,
    expect="either accepted with a VID in 1..4094 (MAC unchanged) or refused; not accepted with VID 0",
    lldpad="lldpad's bridge returns VID 0 unchanged (vdp-filter-fmt1-vid.pcap, vdp.md §5.3, §12 #4): expected to fail",
)
async def vid_0_wildcard(t: Tester) -> None:
    """VID 0 asks the bridge to choose the VLAN (§5.3). We decided: a bridge that accepts must
    return a usable VID (1..4094) in the answer, since the station then uses the returned
    values; returning 0 leaves the VSI without a VLAN. A bridge with no VLAN to offer may
    refuse (any non-zero code): the standard does not oblige it to accept."""
    vsi = t.new_vsi(vid=0)
    tlv, item = await ask(t, vsi, ASSOC)
    if tlv.status.code != 0:
        return
    steps.forget_on_cleanup(t, with_entries(vsi, *tlv.entries))  # §5.3: de-associate with the returned values
    problems = success_problems(tlv, item, vsi, ASSOC)
    vids = [e.vid for e in tlv.entries]
    if len(tlv.entries) == len(vsi.entries) and not all(1 <= v <= 4094 for v in vids):
        problems.append(f"accepted with VID {vids[0] if len(vids) == 1 else vids}: the bridge did not choose a VID")
    if problems:
        raise Fail("answer to a wildcard-VID Associate: " + "; ".join(problems), item.data)


@case(
    "vdp.bridge.filter-ps-pcp",
    "a filter entry with PS set keeps its whole PS/PCP/VID word",
    "vdp.md §5.2, §5.3 (with PS set the whole word must come back unchanged)",
    ROLE,
    expect="accepted, the word 0xd00a (PS 1, PCP 5, VID 10) echoed unchanged",
)
async def filter_ps_pcp(t: Tester) -> None:
    v = t.new_vsi()
    vsi = with_entries(v, FilterEntry(vid=10, pcp=5, ps=True, mac=v.entries[0].mac))
    await accepted(t, vsi, ASSOC, what="an Associate with PS/PCP")


def filter_mac_bad(name: str, title: str, mac: str, *, lldpad: str = "", clause: str = "") -> None:
    @case(
        f"vdp.bridge.{name}",
        title,
        clause or "vdp.md §5.5 (MAC), §10.1",
        ROLE,
        expect="refused: an answer with a non-zero status code",
        lldpad=lldpad,
    )
    async def run(t: Tester) -> None:
        vsi = with_entries(t.new_vsi(), FilterEntry(vid=10, mac=bytes.fromhex(mac)))
        await refused(t, vsi, ASSOC, what=title)


filter_mac_bad("filter-mac-zero", "a filter MAC 00:00:00:00:00:00 is refused", "000000000000")
filter_mac_bad("filter-mac-broadcast", "a filter MAC ff:ff:ff:ff:ff:ff is refused", "ffffffffffff")
filter_mac_bad("filter-mac-multicast", "a multicast filter MAC 01:00:5e:00:00:01 is refused", "01005e000001")
filter_mac_bad(
    "filter-mac-group",
    "a group filter MAC 03:00:00:00:00:01 is refused",
    "030000000001",
    clause="vdp.md §5.5 (a VSI's MAC is an individual address; decided: every group address is refused)",
    lldpad="lldpad refuses only broadcast, 01-00-5e-… and 33-33-… and accepts other group addresses "
    "(vdp.md §5.5): expected to fail",
)


@case(
    "vdp.bridge.filter-duplicate",
    "a filter with the same entry twice is refused",
    "vdp.md §5.5 (duplicate MAC rejected; decided for the bridge, see the docstring)",
    ROLE,
    expect="refused: an answer with a non-zero status code",
    lldpad="lldpad checks duplicates only in its client parser (vdp.md §5.5), its bridge probably accepts them: "
    "expected to fail",
)
async def filter_duplicate(t: Tester) -> None:
    """The digest lists duplicate MACs as invalid only for lldpad's station parser. We decided
    that a bridge should refuse a filter listing the very same (MAC, VID) twice: the request is
    inconsistent and installing it twice would be a resource leak."""
    v = t.new_vsi()
    await refused(t, with_entries(v, v.entries[0], v.entries[0]), ASSOC, what="a filter with a duplicate entry")


@case(
    "vdp.bridge.filter-max-entries",
    "a TLV with 60 format-2 entries (the most that fit, L = 505) is answered",
    "vdp.md §4.1 (maximum L 511: at most 60 format-2 entries)",
    ROLE,
    expect="answered: accepted with the 60 entries echoed in order, or refused (resources)",
)
async def filter_max_entries(t: Tester) -> None:
    """A bridge may not have room for 60 MACs (a refusal passes), but it must parse the largest
    TLV and answer it."""
    vsi = t.new_vsi(count=60)
    steps.forget_on_cleanup(t, vsi)
    tlv, item = await ask(t, vsi, ASSOC)
    if tlv.status.code == 0:
        problems = success_problems(tlv, item, vsi, ASSOC)
        if problems:
            raise Fail("answer to a 60-entry Associate: " + "; ".join(problems), item.data)


@case(
    "vdp.bridge.filter-differs",
    "an Associate whose filter differs from the stored VSI's is answered",
    "vdp.md §10.3 (WAITCMD_2 → PROCESS), §10.4, §12 #10",
    ROLE,
    expect="answered: accepted with the new filter echoed, or refused (non-zero code)",
    lldpad=LLDPAD_FILTER_CHANGE,
)
async def filter_differs(t: Tester) -> None:
    """The standard does not forbid a station to change a VSI's filter; the bridge may accept the
    new filter or refuse it, but it must answer (a silent bridge leaves the station waiting
    out respWaitDelay)."""
    vsi = t.new_vsi()
    await accepted(t, vsi, ASSOC)
    changed = with_entries(vsi, dataclasses.replace(vsi.entries[0], vid=vsi.entries[0].vid + 10))
    steps.forget_on_cleanup(t, changed)
    tlv, item = await ask(t, changed, ASSOC)
    if tlv.status.code == 0:
        problems = success_problems(tlv, item, changed, ASSOC)
        if problems:
            raise Fail("accepted the changed filter: " + "; ".join(problems), item.data)


# --------------------------------------------------------------------------- precise codes


@case(
    "vdp.bridge.code-invalid-format",
    "an unknown VSIID format is refused with code 1 (invalid format)",
    "vdp.md §4.3, §4.4, §12 #3",
    ROLE,
    expect="refused with status code 1",
    lldpad=LLDPAD_CODE_2,
)
async def code_invalid_format(t: Tester) -> None:
    vsi = dataclasses.replace(t.new_vsi(), vsiid_format=0)
    await refused(t, vsi, ASSOC, what="a VSIID of format 0", code=1)


@case(
    "vdp.bridge.code-invalid-vid",
    "VID 4095 is refused with code 5 (invalid VID, GroupID or MAC)",
    "vdp.md §4.3, §5.5, §12 #3",
    ROLE,
    expect="refused with status code 5",
    lldpad=LLDPAD_CODE_2,
)
async def code_invalid_vid(t: Tester) -> None:
    await refused(t, t.new_vsi(vid=4095), ASSOC, what="an Associate with VID 4095", code=5)


@case(
    "vdp.bridge.code-invalid-mac",
    "a multicast filter MAC is refused with code 5 (invalid VID, GroupID or MAC)",
    "vdp.md §4.3, §5.5, §12 #3",
    ROLE,
    expect="refused with status code 5",
    lldpad=LLDPAD_CODE_2,
)
async def code_invalid_mac(t: Tester) -> None:
    vsi = with_entries(t.new_vsi(), FilterEntry(vid=10, mac=bytes.fromhex("01005e0000fe")))
    await refused(t, vsi, ASSOC, what="a multicast filter MAC", code=5)


# --------------------------------------------------------------------------- malformed requests


def tlv_bytes(vsi: VsiSpec, mode: VdpMode = ASSOC, *, count: int | None = None, extra: bytes = b"") -> bytes:
    """``vsi``'s association TLV with the entry count set to ``count`` and ``extra`` octets
    appended inside the TLV (the length field grown to cover them)."""
    raw = bytearray(vsi.tlv(mode).encode() + extra)
    if count is not None:
        raw[25:27] = count.to_bytes(2, "big")
    raw[0:2] = ((int(mode) << 9) | (len(raw) - 2)).to_bytes(2, "big")
    return bytes(raw)


def manager_bytes(vsi: VsiSpec) -> bytes:
    return VsiManagerIdTlv(vsi.manager_id).encode()


async def refused_malformed(t: Tester, payload: bytes, vsi: VsiSpec, what: str) -> None:
    """``payload`` carries a malformed request of ``vsi`` whose identity is still readable (the
    25-octet head is intact): the bridge refuses it ("invalid format", any code ≠ 0 passes) so
    that the station does not wait respWaitDelay in vain, and still works afterwards."""
    steps.forget_on_cleanup(t, vsi)
    since, start = len(t.log), len(t.vdp_in)
    await t.send_ulpdu(payload)
    got = await t.maybe_vdp(answer_match(vsi, start), within=t.op.resp_wait_delay)
    if got is None:
        raw = dut_frames_with(t, since, vsi.vsiid)
        if raw:
            raise Fail(f"{what} was answered with a frame that does not decode", raw[0])
        raise Fail(f"{what} was not answered: the station is left to wait respWaitDelay (refuse it, code 1)")
    status = the_answer(got, vsi).status
    if status.code == 0:
        raise Fail(f"{what} was accepted (status {status.octet:#04x})", got.data)
    await steps.still_alive(t)


@case(
    "vdp.bridge.malformed-count",
    "an association TLV whose count (2) disagrees with its length (one entry) is refused",
    "vdp.md §4.1 (L = 25 + n·E), §4.3 (code 1: invalid format), §10.1 (vdp-bridge-errors-injected.pcap frames 29-30)",
    ROLE,
    expect="an answer with a non-zero code (1: invalid format) within respWaitDelay; a valid request afterwards is "
    "accepted",
    lldpad="lldpad does not answer a TLV whose length is not 25 + n·E (vdp.md §10.1): expected to fail",
)
async def malformed_count(t: Tester) -> None:
    """The identity (manager, type, VSIID) is readable, so the bridge can say "invalid format"
    instead of leaving the station to time out (decision: silence fails here; it is accepted by
    robust.bridge.vdp-entry-count-mismatch, which only judges that nothing is accepted)."""
    vsi = t.new_vsi()
    await refused_malformed(t, manager_bytes(vsi) + tlv_bytes(vsi, count=2), vsi, "a TLV with a wrong entry count")


@case(
    "vdp.bridge.malformed-trailing-octet",
    "an association TLV one octet longer than 25 + n·E is refused",
    "vdp.md §4.1 (L must be exactly 25 + n·E), §4.3 (code 1), §10.1",
    ROLE,
    expect="an answer with a non-zero code (1: invalid format) within respWaitDelay; a valid request afterwards is "
    "accepted",
    lldpad="lldpad does not answer a TLV whose length is not 25 + n·E (vdp.md §10.1): expected to fail",
)
async def malformed_trailing_octet(t: Tester) -> None:
    vsi = t.new_vsi()
    await refused_malformed(t, manager_bytes(vsi) + tlv_bytes(vsi, extra=b"\x00"), vsi, "a TLV with a trailing octet")


@case(
    "vdp.bridge.malformed-no-entries",
    "an association TLV with no filter entries (n = 0) is not accepted",
    "vdp.md §4.1 (n ≥ 1), §10.1",
    ROLE,
    expect="no answer, or a refusal (code ≠ 0), within respWaitDelay; a valid request afterwards is accepted",
)
async def malformed_no_entries(t: Tester) -> None:
    """n = 0 is outside the TLV's definition (n ≥ 1, §4.1), but unlike a TLV of the wrong length it
    decodes cleanly. lldpad drops it silently (§10.1); refusing it ("invalid format") tells the
    station at once instead of letting it wait respWaitDelay, so both pass (the same rule as
    robust.*.vdp-zero-entries: undecodable → no answer; decodable but invalid → refusal or no
    answer). Accepting a VSI with no filter fails."""
    v = t.new_vsi()
    vsi = with_entries(v)
    steps.forget_on_cleanup(t, v)
    start = len(t.vdp_in)
    await t.send_ulpdu(vsi.pdu(ASSOC))
    got = await t.maybe_vdp(answer_match(vsi, start), within=t.op.resp_wait_delay)
    if got is not None and the_answer(got, vsi).status.code == 0:
        raise Fail("a TLV with no filter entries was accepted", got.data)
    await steps.still_alive(t)


@case(
    "vdp.bridge.malformed-no-manager-id",
    "an ECPDU whose first TLV is not a VSI Manager ID TLV is ignored",
    "vdp.md §2 (exactly one Manager ID TLV, first), §10.1 (vdp-bridge-errors-injected.pcap frames 31-32)",
    ROLE,
    expect="no answer within respWaitDelay; a valid request afterwards is accepted",
)
async def malformed_no_manager_id(t: Tester) -> None:
    vsi = t.new_vsi()
    await ignored(t, VdpPdu((vsi.tlv(ASSOC),)), vsi, "an Associate without a Manager ID TLV")


@case(
    "vdp.bridge.malformed-two-manager-ids",
    "an ECPDU with a second Manager ID TLV is ignored",
    "vdp.md §2 (exactly one Manager ID TLV per ECPDU; lldpad drops the ECPDU)",
    ROLE,
    expect="no answer for the VSI after the second Manager ID TLV; a valid request afterwards is accepted",
)
async def malformed_two_manager_ids(t: Tester) -> None:
    vsi = t.new_vsi()
    mgr = VsiManagerIdTlv(vsi.manager_id)
    await ignored(t, VdpPdu((mgr, mgr, vsi.tlv(ASSOC))), vsi, "an ECPDU with two Manager ID TLVs")


@case(
    "vdp.bridge.malformed-response-bit",
    "a request with the response bit (0x40) set is not answered",
    "vdp.md §4.2, §10 (only TLVs with the request bit clear are considered in bridge role), §10.1 "
    "(vdp-bridge-errors-injected.pcap frames 33-34)",
    ROLE,
    expect="no answer within respWaitDelay; a valid request afterwards is accepted",
)
async def malformed_response_bit(t: Tester) -> None:
    vsi = t.new_vsi()
    await ignored(t, vsi.pdu(ASSOC, status=VdpStatus.reply(0)), vsi, "an Associate with status 0x40")


# --------------------------------------------------------------------------- status octet


@case(
    "vdp.bridge.hints-to",
    "the M-bit (hints=to) of a request is not echoed as Hard",
    "vdp.md §4.2 (the bridge builds the response status afresh; lldpad vdp22 test 240)",
    ROLE,
    expect="Associate and De-Associate with status 0x10 answered with status exactly 0x40",
)
async def hints_to(t: Tester) -> None:
    vsi = t.new_vsi(hints="to")
    await accepted(t, vsi, ASSOC, what="an Associate with the M-bit")
    await accepted(t, vsi, DEASSOC, what="a De-Associate with the M-bit")


@case(
    "vdp.bridge.hints-from",
    "the S-bit (hints=from) of a request is not echoed as Keep",
    "vdp.md §4.2 (the bridge builds the response status afresh; lldpad vdp22 test 241)",
    ROLE,
    expect="Associate and De-Associate with status 0x20 answered with status exactly 0x40",
)
async def hints_from(t: Tester) -> None:
    vsi = t.new_vsi(hints="from")
    await accepted(t, vsi, ASSOC, what="an Associate with the S-bit")
    await accepted(t, vsi, DEASSOC, what="a De-Associate with the S-bit")


@case(
    "vdp.bridge.status-reserved-bits",
    "reserved status bits in a request (0x80 and the reason nibble 0x0f) are ignored",
    "vdp.md §4.2 (reserved, 0; decided: ignored on receipt, see the docstring)",
    ROLE,
    expect="an Associate with status 0x8f answered 0x40 like a plain one",
)
async def status_reserved_bits(t: Tester) -> None:
    """The digest says only that these bits are reserved and sent as 0. We follow the usual IEEE
    802.1 rule, reserved bits are ignored on receipt: the request is an ordinary Associate."""
    vsi = t.new_vsi()
    pdu = vsi.pdu(ASSOC, status=VdpStatus(reserved=True, code=0x0F))
    await accepted(t, vsi, ASSOC, pdu=pdu, what="an Associate with status 0x8f")


# --------------------------------------------------------------------------- TLVs around the association TLV


@case(
    "vdp.bridge.org-tlv-cisco",
    "Cisco VM-name and L3-address TLVs after the Associate TLV are skipped",
    "vdp.md §2 (organizational TLVs may follow), §6",
    ROLE,
    expect="the VSI is answered 0x40 as if the organizational TLVs were absent",
)
async def org_tlv_cisco(t: Tester) -> None:
    vsi = t.new_vsi()
    vm_id = bytes.fromhex("00112233445566778899aabbccddeeff")
    extra = (
        CiscoVmNameTlv(vsi.vsiid_format, vsi.vsiid, 5, vm_id, b"vm1"),
        CiscoL3AddressTlv(vsi.vsiid_format, vsi.vsiid, 1, bytes([192, 0, 2, 10])),
    )
    pdu = VdpPdu((VsiManagerIdTlv(vsi.manager_id), vsi.tlv(ASSOC), *extra))
    await accepted(t, vsi, ASSOC, pdu=pdu, what="an Associate followed by Cisco TLVs")


@case(
    "vdp.bridge.org-tlv-unknown",
    "an organizational TLV of an unknown OUI after the Associate TLV is skipped",
    "vdp.md §2, §6",
    ROLE,
    expect="the VSI is answered 0x40",
)
async def org_tlv_unknown(t: Tester) -> None:
    vsi = t.new_vsi()
    pdu = VdpPdu((VsiManagerIdTlv(vsi.manager_id), vsi.tlv(ASSOC), VdpOrgTlv(b"\xac\xde\x48", b"\x07evb-conf")))
    await accepted(t, vsi, ASSOC, pdu=pdu, what="an Associate followed by an unknown organizational TLV")


@case(
    "vdp.bridge.reserved-tlv-types",
    "TLVs of reserved types (6 and 100) after the Associate TLV are skipped",
    "vdp.md §1 (types 6-126 reserved, skipped), §2",
    ROLE,
    expect="the VSI is answered 0x40",
)
async def reserved_tlv_types(t: Tester) -> None:
    vsi = t.new_vsi()
    extra = (VdpUnknownTlv(6, b"\x01\x02\x03"), VdpUnknownTlv(100, bytes(8)))
    pdu = VdpPdu((VsiManagerIdTlv(vsi.manager_id), vsi.tlv(ASSOC), *extra))
    await accepted(t, vsi, ASSOC, pdu=pdu, what="an Associate followed by reserved TLV types")


@case(
    "vdp.bridge.end-tlv",
    "an End TLV and zero padding after the Associate TLV",
    "vdp.md §1 (type 0 ends the list), §2 (an End TLV is harmless)",
    ROLE,
    expect="the VSI is answered 0x40",
)
async def end_tlv(t: Tester) -> None:
    vsi = t.new_vsi()
    raw = vsi.pdu(ASSOC).encode(end_tlv=True) + bytes(30)
    await accepted(t, vsi, ASSOC, pdu=raw, what="an Associate followed by End and padding")


@case(
    "vdp.bridge.packed-vsis",
    "three Associate TLVs in one ECPDU are all answered",
    "vdp.md §2 (one or more association TLVs after the Manager ID TLV; lldpad-behaviour.md §4.4)",
    ROLE,
    expect="each of the three VSIs answered 0x40 with its own echo (in one or several ECPDUs)",
)
async def packed_vsis(t: Tester) -> None:
    vsis = [t.new_vsi() for _ in range(3)]
    await packed(t, vsis, set())


@case(
    "vdp.bridge.packed-mixed",
    "a valid, an invalid and a valid Associate in one ECPDU are each judged on their own",
    "vdp.md §2 (each association TLV processed in order), §10.1",
    ROLE,
    expect="the two valid VSIs answered 0x40, the one with VID 4095 refused",
)
async def packed_mixed(t: Tester) -> None:
    vsis = [t.new_vsi(), t.new_vsi(vid=4095), t.new_vsi()]
    await packed(t, vsis, {1})


async def packed(t: Tester, vsis: list[VsiSpec], bad: set[int]) -> None:
    for v in vsis:
        steps.forget_on_cleanup(t, v)
    start = len(t.vdp_in)
    pdu = VdpPdu((VsiManagerIdTlv(vsis[0].manager_id), *(v.tlv(ASSOC) for v in vsis)))
    await t.send_ulpdu(pdu)

    def found(v: VsiSpec) -> VdpIn | None:
        return next((i for i in t.vdp_in[start:] if any(x.status.response for x in carries(i, v))), None)

    await t.until(lambda: all(found(v) for v in vsis), t.op.resp_wait_delay)
    for k, v in enumerate(vsis):
        item = found(v)
        if item is None:
            raise Fail(f"VSI {k + 1} of {len(vsis)} in the ECPDU was not answered", t.last_in(ETH_P_ECP))
        tlv = the_answer(item, v)
        if k in bad:
            if tlv.status.code == 0:
                raise Fail(f"VSI {k + 1} (VID 4095) was accepted", item.data)
            continue
        if tlv.status.code != 0:
            raise Fail(f"VSI {k + 1} was refused: {tlv.status.describe()}", item.data)
        problems = success_problems(tlv, item, v, ASSOC)
        if problems:
            raise Fail(f"answer to VSI {k + 1}: " + "; ".join(problems), item.data)


@case(
    "vdp.bridge.requests-1ms-apart",
    "two requests in ECPDUs 1 ms apart are both answered, once each",
    "ecp.md §4.2 (every new ECPDU delivered), vdp.md §12 #11",
    ROLE,
    expect="both ECPDUs acknowledged; each VSI answered exactly once with 0x40",
    lldpad="lldpad keeps one VDP buffer per port for 2 ms: the first request is lost and the second answered "
    "twice (ecp.md §4.2, vdp.md §12 #11): expected to fail",
)
async def requests_1ms_apart(t: Tester) -> None:
    vsis = [t.new_vsi(), t.new_vsi()]
    for v in vsis:
        steps.forget_on_cleanup(t, v)
    await t.pace()
    start, since = len(t.vdp_in), len(t.acks_in)
    seqs = []
    for k, v in enumerate(vsis):
        if k:
            await t.sleep(0.001)
        seq = t.next_seq()
        seqs.append(seq)
        t.send_frame(t.ecp_frame(v.pdu(ASSOC), seq))
    acked = await t.until(lambda: {s for _, s, _ in t.acks_in[since:]} >= set(seqs), max(0.5, 4 * t.op.ack_timeout))
    if not acked:
        raise Fail(f"sequences {seqs} not both acknowledged", t.last_in(ETH_P_ECP))

    def answers(v: VsiSpec) -> list[VdpIn]:
        return [i for i in t.vdp_in[start:] if any(x.status.response for x in carries(i, v))]

    await t.until(lambda: all(answers(v) for v in vsis), t.op.resp_wait_delay)
    await t.sleep(min(t.op.resp_wait_delay, 1.0))  # a second answer to the same VSI, if any
    for k, v in enumerate(vsis):
        got = answers(v)
        if not got:
            raise Fail(f"the {('first', 'second')[k]} request (1 ms apart) was never answered", t.last_in(ETH_P_ECP))
        if len(got) > 1:
            raise Fail(f"the {('first', 'second')[k]} request was answered {len(got)} times", got[1].data)
        problems = success_problems(the_answer(got[0], v), got[0], v, ASSOC)
        if problems:
            raise Fail(f"answer to the {('first', 'second')[k]} request: " + "; ".join(problems), got[0].data)


# --------------------------------------------------------------------------- identity fields


@case(
    "vdp.bridge.max-type-id",
    "the largest Type ID (2^24 - 1) and Type Version (255) are echoed",
    "vdp.md §4.1 (3-octet Type ID, 1-octet version), §4.5",
    ROLE,
    expect="answered (accepted, or refused if the type is unknown to the VSI manager) with Type ID 0xffffff "
    "and version 255 echoed",
)
async def max_type_id(t: Tester) -> None:
    """A bridge whose VSI manager does not know the type may refuse it (codes 3/4); either way
    the answer must carry the identity unchanged, or the station cannot match it."""
    vsi = t.new_vsi(type_id=0xFFFFFF, type_version=255)
    steps.forget_on_cleanup(t, vsi)
    tlv, item = await ask(t, vsi, ASSOC)
    problems = pdu_problems(item, vsi) + identity_problems(tlv, vsi)
    if tlv.status.code == 0:
        problems = success_problems(tlv, item, vsi, ASSOC)
    if problems:
        raise Fail("answer to type 0xffffff version 255: " + "; ".join(problems), item.data)


@case(
    "vdp.bridge.manager-id-binary",
    "a binary 16-octet Manager ID is echoed whole",
    "vdp.md §3 (16 opaque octets; lldpad vdp22 test 200)",
    ROLE,
    expect="answered (accepted, or refused by the bridge's manager policy) with the same 16-octet Manager ID",
)
async def manager_id_binary(t: Tester) -> None:
    """The DUT's policy may refuse a manager it is not configured for; the answer must still
    carry the Manager ID octet for octet."""
    v = t.new_vsi()
    vsi = dataclasses.replace(v, manager_id=bytes.fromhex("fe01c0f08000") + bytes(8) + serial(v))
    steps.forget_on_cleanup(t, vsi)
    tlv, item = await ask(t, vsi, ASSOC)
    problems = pdu_problems(item, vsi) + identity_problems(tlv, vsi)
    if tlv.status.code == 0:
        problems = success_problems(tlv, item, vsi, ASSOC)
    if problems:
        raise Fail("answer to a binary Manager ID: " + "; ".join(problems), item.data)
