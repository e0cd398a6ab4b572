"""VDP cases for a station DUT (vdp.md §2-§5, §8, §9, §11): the tester plays the bridge.

The DUT sends VDP requests only when told to, so nearly every case needs the hook
(``associate``, ``preassociate``, ``preassociate-rr``, ``deassociate``): the hook makes the DUT
send, the tester answers as a bridge would and then watches what the DUT does with the answer
(keep-alives, giving up, De-Associates). Without a hook the cases are skipped.

Conventions of this module:

* the DUT's VDP is matched by VSIID (not by the whole key), from a start index in
  ``tester.vdp_in``, so that a request of another VSI, or one carried in the same ECPDU as
  another VSI's TLV, never confuses two cases; identity faults (wrong Manager ID, type, ...)
  are then reported as such instead of as "no request";
* times are checked with ``tester.bounds`` around the operating timers: keep-alives are due
  reinitKeepAlive after our answer (vdp.md §8: the timer starts when the answer has been
  processed), and "the VSI has ended" means no VDP about it for a whole keep-alive period after
  the event that ended it;
* a VSI that ends by a timeout or an error is dropped without a De-Associate (vdp.md §9.3
  notes), so "ended" checks accept no VDP at all about the VSI, De-Associates included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from evb.conformance.model import CaseFn, Fail, Skip, case
from evb.conformance.steps import acked, forget_on_cleanup
from evb.conformance.tester import Tester, VdpIn, VsiSpec
from evb.ethernet import ETH_P_ECP
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode, VdpPdu, VdpStatus, VsiManagerIdTlv, VsiTlv

MODES = {
    "associate": VdpMode.ASSOC,
    "preassociate": VdpMode.PREASSOC,
    "preassociate-rr": VdpMode.PREASSOC_RR,
    "deassociate": VdpMode.DEASSOC,
}
WORDS = {
    "associate": "Associate",
    "preassociate": "Pre-Associate",
    "preassociate-rr": "Pre-Associate-RR",
    "deassociate": "De-Associate",
}
HOOK_WITHIN = 5.0  #: how long a hook may take before the DUT's request must be on the wire
Match = Callable[[VdpIn], bool]


#: cases that give the DUT a second command for a VSI it already has, besides those that need two
#: actions: their keep-alives are slowed first (see ``station``)
SECOND_COMMAND = {"answer.keep-error-reassoc", "answer.error-then-retry"}
SLOW_RKA = 17  #: 1.31 s: longer than a hook takes (vdptool, or `evb vsi` in a namespace) on a busy host


def station(
    name: str, title: str, clause: str, expect: str, *, needs: tuple[str, ...] = ("associate",), lldpad: str = ""
) -> Callable[[CaseFn], CaseFn]:
    """Register a case ``vdp.station.<name>`` for a station DUT.

    A case that gives the DUT a second command for an existing VSI runs with keep-alives slowed
    to RKA ``SLOW_RKA`` (``Tester.raise_timers``): a hook takes a few hundred milliseconds, and a
    keep-alive left unanswered meanwhile would end the VSI (or make the DUT "busy") before the
    command arrives, on a real link though not in the simulator."""
    register = case(f"vdp.station.{name}", title, clause, "station", needs=needs, expect=expect, lldpad=lldpad)
    if len(needs) < 2 and name not in SECOND_COMMAND:
        return register

    def slowed(fn: CaseFn) -> CaseFn:
        async def run(t: Tester) -> None:
            await t.raise_timers(rka=max(SLOW_RKA, t.op.rka))
            await fn(t)

        run.__name__ = fn.__name__
        register(run)
        return fn

    return slowed


# --------------------------------------------------------------------------- matching the DUT's VDP


def _same_vsi(x: VsiTlv, vsi: VsiSpec) -> bool:
    """Loose identity (VSIID and its format): enough to find the VSI's TLV, identity checked later."""
    return x.vsiid == vsi.vsiid and x.vsiid_format == vsi.vsiid_format


def mentions(vsi: VsiSpec, start: int) -> Match:
    """Any VDP TLV about ``vsi`` (request or response) from index ``start`` on."""
    return lambda i: i.index >= start and any(_same_vsi(x, vsi) for x in i.vsis)


def request_of(vsi: VsiSpec, start: int, mode: VdpMode | None = None) -> Match:
    """A request TLV (response bit clear) about ``vsi`` (of ``mode``, if given) from ``start`` on."""
    return lambda i: (
        i.index >= start
        and any(_same_vsi(x, vsi) and not x.status.response and (mode is None or x.mode == mode) for x in i.vsis)
    )


def find(t: Tester, match: Match) -> VdpIn | None:
    return next((i for i in t.vdp_in if match(i)), None)


async def wait(t: Tester, match: Match, *, within: float, what: str) -> VdpIn:
    """The first VDP PDU that ``match``es within ``within`` seconds; ``Fail`` if none."""
    got = await t.until(lambda: find(t, match), max(0.0, within))
    if got is None:
        raise Fail(f"no {what} from the DUT within {max(0.0, within):.3f} s", t.last_in(ETH_P_ECP))
    return got


async def silent(t: Tester, match: Match, *, within: float, what: str) -> None:
    """``Fail`` if a VDP PDU that ``match``es arrives within ``within`` seconds."""
    began = t.now()
    got = await t.until(lambda: find(t, match), max(0.0, within))
    if got is not None:
        raise Fail(f"{what} ({got.t - began:.3f} s into a {within:.3f} s window)", got.data)


def tlv(item: VdpIn, vsi: VsiSpec) -> VsiTlv:
    """``vsi``'s TLV in ``item`` (a request, when there are several)."""
    found = [x for x in item.vsis if _same_vsi(x, vsi)]
    if not found:
        raise Fail("the VDP PDU does not carry the VSI", item.data)
    return next((x for x in found if not x.status.response), found[0])


def _entries_text(entries: tuple[FilterEntry, ...]) -> str:
    parts = []
    for e in entries:
        text = f"vid {e.vid}" + (f" pcp {e.pcp}" if e.pcp or e.ps else "") + (" ps" if e.ps else "")
        if e.mac is not None:
            text = e.mac.hex(":") + " " + text
        if e.group_id is not None:
            text = f"group {e.group_id} " + text
        parts.append(text)
    return "[" + ", ".join(parts) + "]"


def check(item: VdpIn, vsi: VsiSpec, want: VsiTlv, what: str) -> VsiTlv:
    """``vsi``'s TLV in ``item`` must equal ``want`` field by field (and carry the VSI's Manager ID)."""
    got = tlv(item, vsi)
    diffs = []
    if item.manager_id != vsi.manager_id:
        diffs.append(f"Manager ID {item.manager_id!r}, expected {vsi.manager_id!r}")
    if got.mode != want.mode:
        diffs.append(f"TLV type {int(got.mode)} ({got.mode.label}), expected {int(want.mode)} ({want.mode.label})")
    if got.status.octet != want.status.octet:
        diffs.append(f"status 0x{got.status.octet:02x} ({got.status.describe()}), expected 0x{want.status.octet:02x}")
    for name in ("type_id", "type_version", "vsiid_format", "vsiid", "filter_format"):
        a, b = getattr(got, name), getattr(want, name)
        if a != b:
            diffs.append(f"{name} {a!r}, expected {b!r}")
    if got.entries != want.entries:
        diffs.append(f"filter {_entries_text(got.entries)}, expected {_entries_text(want.entries)}")
    if diffs:
        raise Fail(f"{what}: " + "; ".join(diffs), item.data)
    return got


# --------------------------------------------------------------------------- driving the DUT


async def ask(
    t: Tester, vsi: VsiSpec, action: str = "associate", *, cleanup: bool = True, within: float = HOOK_WITHIN
) -> VdpIn:
    """Have the hook ``action`` ``vsi``; the DUT's request of that type (not answered yet).

    Requests of the VSI of another type that come meanwhile (a keep-alive that left before the
    command took effect) are answered with success, as a bridge would: a station that waits
    for that answer may refuse or hold the command ("busy", lldpad-behaviour.md §2.5).
    ``cleanup``: end the VSI on the DUT after the case (an unsolicited De-Associate); give it
    for a VSI's first command only."""
    mode = MODES[action]
    start = len(t.vdp_in)
    task = t.act_soon(action, vsi)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no asyncio warning
    if cleanup:
        forget_on_cleanup(t, vsi)
    match = request_of(vsi, start, mode)
    answered: set[int] = set()

    def stray() -> VdpIn | None:
        return next(
            (i for i in t.vdp_in[start:] if i.index not in answered and request_of(vsi, start)(i) and not match(i)),
            None,
        )

    def ready() -> bool:
        return find(t, match) is not None or (task.done() and task.exception() is not None) or stray() is not None

    deadline = t.now() + within
    while await t.until(ready, max(0.0, deadline - t.now())) and find(t, match) is None:
        other = stray()
        if other is None:
            break
        answered.add(other.index)
        await t.reply(other, vsi)  # the keep-alive that crossed the command
    got = find(t, match)
    if got is None and task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    if got is None:
        other = find(t, request_of(vsi, start))
        if other is not None:
            x = tlv(other, vsi)
            raise Fail(f"asked to {action}, the DUT sent TLV type {int(x.mode)} ({x.mode.label}) instead", other.data)
        raise Fail(f"no {mode.label} request within {within:g} s of the hook's {action}", t.last_in(ETH_P_ECP))
    return got


async def _ask_existing(t: Tester, vsi: VsiSpec, action: str) -> VdpIn:
    """``ask`` for a VSI the DUT already has, where the transition is allowed (vdp.md §11): the
    DUT refusing the command (the hook fails) is a failure of the DUT, not of the suite."""
    try:
        return await ask(t, vsi, action, cleanup=False)
    except (Fail, Skip):
        raise
    except Exception as exc:
        raise Fail(f"the DUT refused to {action} the VSI: {exc}", t.last_in(ETH_P_ECP)) from None


async def attempt(t: Tester, action: str, vsi: VsiSpec) -> bool:
    """Ask the hook to ``action`` ``vsi``; False if the DUT refused the command (the hook failed)."""
    try:
        await t.act(action, vsi)
    except Skip:
        raise
    except Exception:  # a refusal surfaces as the hook's error (vdptool "invalid parameters", ...)
        return False
    return True


def settle(t: Tester) -> float:
    """A short pause after an answer before the next hook command (lldpad processes an answer
    2 ms after ECP delivered it and refuses commands for a VSI it still calls busy)."""
    return min(0.05, t.op.reinit_keepalive / 10)


def prompt(t: Tester) -> float:
    """How long the DUT may take for something it must do at once (a few ECP round trips)."""
    return 1.0 + 10 * t.op.ack_timeout


async def answer(t: Tester, req: VdpIn, vsi: VsiSpec, **kw: Any) -> float:
    """``tester.reply(req, vsi, **kw)`` (acknowledged); the time we sent it (keep-alive timers
    count from it)."""
    await t.pace()
    sent = t.now()
    await t.reply(req, vsi, **kw)
    return sent


async def associated(t: Tester, vsi: VsiSpec | None = None, action: str = "associate") -> tuple[VsiSpec, VdpIn, float]:
    """The hook ``action``s a (new) VSI, we answer success: (vsi, its request, when we answered)."""
    vsi = vsi or t.new_vsi()
    req = await ask(t, vsi, action)
    check(req, vsi, vsi.tlv(MODES[action]), f"the {MODES[action].label} request")
    return vsi, req, await answer(t, req, vsi)


async def keepalive(t: Tester, vsi: VsiSpec, want: VsiTlv, ref: float, start: int, what: str = "keep-alive") -> VdpIn:
    """The DUT's next request about ``vsi`` (from index ``start``): due reinitKeepAlive after
    ``ref`` (our last answer), equal to ``want``."""
    rka = t.op.reinit_keepalive
    lo, hi = t.bounds(rka)
    got = await wait(
        t,
        request_of(vsi, start),
        within=ref + hi - t.now(),
        what=f"{what} of the VSI (due {rka:.3f} s after our answer)",
    )
    dt = got.t - ref
    if dt < lo:
        raise Fail(
            f"{what} {dt:.3f} s after our answer, reinitKeepAlive is {rka:.3f} s (earliest {lo:.3f} s)", got.data
        )
    check(got, vsi, want, what)
    return got


async def ended(t: Tester, vsi: VsiSpec, start: int, ref: float, why: str) -> None:
    """No VDP about ``vsi`` (no keep-alive, no De-Associate, no new request) from index
    ``start`` until a whole keep-alive period after ``ref``."""
    _, hi = t.bounds(t.op.reinit_keepalive)
    await silent(t, mentions(vsi, start), within=ref + hi - t.now(), what=f"the DUT still sent VDP for a VSI {why}")


async def deassociated_by_hook(t: Tester, vsi: VsiSpec, want: VsiTlv) -> VdpIn:
    """The hook de-associates ``vsi``: the DUT's De-Associate must be ``want`` as a De-Associate."""
    d = await ask(t, vsi, "deassociate", cleanup=False)
    check(d, vsi, replace(want, mode=VdpMode.DEASSOC), "the De-Associate request")
    return d


async def finish_deassoc(t: Tester, vsi: VsiSpec, want: VsiTlv) -> None:
    """De-associate through the hook, answer success, then the VSI must stay silent."""
    d = await deassociated_by_hook(t, vsi, want)
    ref = await answer(t, d, vsi)
    await ended(t, vsi, d.index + 1, ref, "de-associated through the hook")


# --------------------------------------------------------------------------- the request


@station(
    "request.format",
    "an Associate request: Manager ID TLV first, then the Associate TLV as asked",
    "vdp.md §2, §3, §4.1, §4.2, §7.1 (lldpad vdp22 test 103)",
    "one Manager ID TLV first; Associate TLV (type 3), status 0x00, type/version/VSIID/filter as asked",
)
async def request_format(t: Tester) -> None:
    """Composition (one Manager ID TLV, first; no invalid TLV) and every field of the TLV."""
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    problems = req.pdu.composition_errors()
    if req.pdu.invalid:
        problems.append(f"{len(req.pdu.invalid)} malformed TLV(s): {req.pdu.invalid[0]}")
    if problems:
        raise Fail("the request's VDP PDU: " + "; ".join(problems), req.data)
    check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")  # status 0x00: no response/reserved bit


def _hints_case(hints: str, octet: int, test: int) -> None:
    @station(
        f"request.hints-{hints}",
        f"hints={hints}: status 0x{octet:02x} in the request, its keep-alives and its De-Associate",
        f"vdp.md §4.2, §9.1 (lldpad vdp22 test {test})",
        f"status 0x{octet:02x} in the Associate, the keep-alive and the De-Associate",
        needs=("associate", "deassociate"),
    )
    async def run(t: Tester) -> None:
        vsi = t.new_vsi(hints=hints)
        req = await ask(t, vsi)
        x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
        if x.status.octet != octet:
            raise Fail(f"hints={hints}: status 0x{x.status.octet:02x}, expected 0x{octet:02x}", req.data)
        ref = await answer(t, req, vsi)
        ka = await keepalive(t, vsi, x, ref, req.index + 1)
        await answer(t, ka, vsi)
        await t.sleep(settle(t))
        await finish_deassoc(t, vsi, x)


_hints_case("to", 0x10, 240)
_hints_case("from", 0x20, 241)


def _preassoc_case(action: str, test: int) -> None:
    mode = MODES[action]

    @station(
        f"request.{action}",
        f"a {WORDS[action]} request, its keep-alives of the same type, and its De-Associate",
        f"vdp.md §1, §4.1, §9.1, §9.3 (lldpad vdp22 test {test})",
        f"TLV type {int(mode)} as asked; keep-alives of type {int(mode)}; De-Associate (type 4) as asked",
        needs=(action, "deassociate"),
    )
    async def run(t: Tester) -> None:
        vsi, req, ref = await associated(t, action=action)
        want = tlv(req, vsi)
        ka = await keepalive(t, vsi, want, ref, req.index + 1)
        await answer(t, ka, vsi)
        await t.sleep(settle(t))
        await finish_deassoc(t, vsi, want)


_preassoc_case("preassociate", 105)
_preassoc_case("preassociate-rr", 107)


def _format_case(name: str, title: str, clause: str, make: Callable[[Tester], VsiSpec], group: bool = False) -> None:
    @station(
        f"request.{name}",
        title,
        clause,
        "the request's filter format and entries (in order) as asked; keep-alive identical",
    )
    async def run(t: Tester) -> None:
        if group and not t.op.group_ids:
            raise Skip("group IDs are not in use on this link (BGID and SGID not both set)")
        vsi, req, ref = await associated(t, make(t))
        await keepalive(t, vsi, tlv(req, vsi), ref, req.index + 1)


def _multi(t: Tester) -> VsiSpec:
    base = t.new_vsi(count=3)
    return replace(base, entries=tuple(replace(e, vid=10 * (k + 1)) for k, e in enumerate(base.entries)))


_format_case(
    "format-vid",
    "filter format 1 (VID only)",
    "vdp.md §5.1, §5.6 (lldpad vdp22 test 208)",
    lambda t: t.new_vsi(fmt=FilterFormat.VID),
)
_format_case(
    "format-multi",
    "filter format 2 with three entries (VIDs 10, 20, 30), order kept",
    "vdp.md §5.1, §5.6, §9.2 (lldpad vdp22 test 211)",
    _multi,
)
_format_case(
    "format-group-vid",
    "filter format 3 (GroupID/VID)",
    "vdp.md §5.1, §5.6",
    lambda t: t.new_vsi(fmt=FilterFormat.GROUP_VID),
    group=True,
)
_format_case(
    "format-group-mac-vid",
    "filter format 4 (GroupID/MAC/VID)",
    "vdp.md §5.1, §5.6 (lldpad vdp22 test 220)",
    lambda t: t.new_vsi(fmt=FilterFormat.GROUP_MAC_VID),
    group=True,
)


@station(
    "request.no-answer",
    "an unanswered Associate is not repeated; after respWaitDelay the DUT has given up",
    "vdp.md §8, §9.3 (PROCWAIT: respWaitDelay expired → END)",
    "no VDP for the VSI during respWaitDelay; an answer after it is ignored (no keep-alives)",
)
async def request_no_answer(t: Tester) -> None:
    """The VSI ends silently (no De-Associate, vdp.md §9.3 notes); a late answer finds no VSI
    (§9.2 step 1), so the DUT must not start keep-alives for it."""
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    _, hi = t.bounds(t.op.resp_wait_delay)
    await silent(
        t,
        mentions(vsi, req.index + 1),
        within=req.t + hi - t.now(),
        what="the DUT repeated its request before respWaitDelay had expired",
    )
    ref = await answer(t, req, vsi)  # late: the DUT has given up by now
    await ended(t, vsi, req.index + 1, ref, "it gave up on (an answer after respWaitDelay must be ignored)")


@station(
    "answer.in-window",
    "an answer late in respWaitDelay is accepted; keep-alives count from the answer",
    "vdp.md §8 (reinitKeepAlive starts when the answer has been processed), §9.3",
    "keep-alive reinitKeepAlive after our answer (not after the request)",
)
async def answer_in_window(t: Tester) -> None:
    """We answer at 90 % of respWaitDelay's lower bound: the DUT must still be waiting, and its
    first keep-alive is due reinitKeepAlive after the answer."""
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    lo, _ = t.bounds(t.op.resp_wait_delay)
    await silent(
        t,
        mentions(vsi, req.index + 1),
        within=req.t + 0.9 * lo - t.now(),
        what="the DUT sent VDP for the VSI while waiting for our answer",
    )
    ref = await answer(t, req, vsi)
    await keepalive(t, vsi, x, ref, req.index + 1)


@station(
    "answer.ecp-ack",
    "the DUT acknowledges the ECPDU carrying our answer",
    "ecp.md §4.2, §5.3; vdp.md §9.2",
    "an ECP ACK with our sequence number, and the answer takes effect (keep-alive)",
)
async def answer_ecp_ack(t: Tester) -> None:
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    since = len(t.acks_in)
    ref = t.now()
    seq = await t.send_ulpdu(t.answer_pdu(req, vsi), reliable=False)
    if await acked(t, seq, since=since) is None:
        raise Fail(f"our answer (ECP sequence {seq}) was not acknowledged", t.last_in(ETH_P_ECP))
    await keepalive(t, vsi, x, ref, req.index + 1)


# --------------------------------------------------------------------------- errors in the answer


def _error_case(
    name: str,
    title: str,
    clause: str,
    expect: str,
    action: str,
    *,
    code: int,
    keep: bool = False,
    hard: bool = False,
    deassoc_tlv: bool = False,
    lldpad: str = "",
) -> None:
    @station(name, title, clause, expect, needs=(action,), lldpad=lldpad)
    async def run(t: Tester) -> None:
        vsi = t.new_vsi()
        req = await ask(t, vsi, action)
        check(req, vsi, vsi.tlv(MODES[action]), f"the {MODES[action].label} request")
        mode = VdpMode.DEASSOC if deassoc_tlv else None
        ref = await answer(t, req, vsi, code=code, keep=keep, hard=hard, mode=mode)
        await ended(t, vsi, req.index + 1, ref, "whose request was refused")


_error_case(
    "answer.error",
    "an Associate answered with an error (code 2, no Keep) ends the VSI",
    "vdp.md §4.2, §4.3, §9.3 (lldpad vdp22 test 115)",
    "no keep-alive and no other VDP for the VSI",
    "associate",
    code=2,
)
_error_case(
    "answer.refused-deassoc",
    "an Associate refused with a De-Associate TLV (status 0x42) ends the VSI",
    "vdp.md §7.3, §9.3",
    "no keep-alive and no other VDP for the VSI",
    "associate",
    code=2,
    deassoc_tlv=True,
)
_error_case(
    "answer.preassoc-error",
    "a Pre-Associate answered with an error (code 4) ends the VSI",
    "vdp.md §4.3, §9.3 (lldpad vdp22 test 118)",
    "no keep-alive and no other VDP for the VSI",
    "preassociate",
    code=4,
)
_error_case(
    "answer.hard-error",
    "a Pre-Associate refused with a hard error (De-Associate TLV, status 0x52) ends the VSI",
    "vdp.md §4.2, §7.3, §9.3 (lldpad vdp22 test 122)",
    "no keep-alive and no other VDP for the VSI",
    "preassociate",
    code=2,
    hard=True,
    deassoc_tlv=True,
)
_error_case(
    "answer.keep-error-new",
    "a Keep error answering the first Pre-Associate of a VSI ends it (nothing to keep)",
    "vdp.md §4.2 (Keep: the previous state stays), §9.3 (Keep error, type not Associate → END)",
    "no keep-alive and no other VDP for the VSI",
    "preassociate",
    code=3,
    keep=True,
)


@station(
    "answer.keep-error-reassoc",
    "a Keep error answering a repeated Associate leaves the VSI associated",
    "vdp.md §4.2, §9.3 (Keep, type Associate → ASSOC_COMPL), §12 #1 (lldpad vdp22 test 113)",
    "no De-Associate; Associate keep-alives go on",
)
async def answer_keep_error_reassoc(t: Tester) -> None:
    """Associated, then associated again (an allowed transition, vdp.md §11); the second answer is
    a Keep error (0x63): the earlier association stays. The next keep-alive must come within one
    reinitKeepAlive of the Keep answer (timed from the Keep answer or from the first answer).
    A keep-alive and a repeated Associate are the same frame, so the keep-alives are first slowed
    (RKA ≥ 17: 1.3 s) to leave the hook time to make the DUT send its command between two of them."""
    vsi, req, _ = await associated(t)
    x = tlv(req, vsi)
    await t.sleep(settle(t))
    again = await _ask_existing(t, vsi, "associate")
    check(again, vsi, x, "the repeated Associate")
    keep_at = await answer(t, again, vsi, code=3, keep=True)
    _, hi = t.bounds(t.op.reinit_keepalive)
    ka = await wait(
        t,
        request_of(vsi, again.index + 1),
        within=keep_at + hi - t.now(),
        what="keep-alive of the VSI after the Keep error",
    )
    check(ka, vsi, x, "the keep-alive after a Keep error")


@station(
    "answer.error-then-retry",
    "after an error ended the VSI, a new Associate of it is sent and can succeed",
    "vdp.md §9.1 (END: VSI deleted), §9.3, §11 (new VSI: Associate allowed)",
    "a new Associate request after the refusal; keep-alives after its success",
)
async def answer_error_then_retry(t: Tester) -> None:
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    await answer(t, req, vsi, code=2)
    await t.sleep(settle(t))
    again = await _ask_existing(t, vsi, "associate")
    check(again, vsi, x, "the second Associate")
    ref = await answer(t, again, vsi)
    await keepalive(t, vsi, x, ref, again.index + 1)


# --------------------------------------------------------------------------- filter in the answer


@station(
    "answer.vid-assigned",
    "a VID assigned for a wildcard (VID 0) is adopted, in keep-alives and the De-Associate",
    "vdp.md §5.3, §9.2 step 4 (lldpad vdp22 tests 202/203, 212/213)",
    "keep-alive and De-Associate carry the VID the bridge returned (123)",
    needs=("associate", "deassociate"),
)
async def answer_vid_assigned(t: Tester) -> None:
    """The hook's De-Associate is given the assigned VID (lldpad refuses one still carrying VID 0,
    vdp.md §5.3)."""
    vsi = t.new_vsi(vid=0)
    req = await ask(t, vsi)
    x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    assigned = tuple(replace(e, vid=123) for e in x.entries)
    ref = await answer(t, req, vsi, entries=assigned)
    now = replace(x, entries=assigned)
    ka = await keepalive(t, vsi, now, ref, req.index + 1, "keep-alive after the VID assignment")
    await answer(t, ka, vsi)
    await t.sleep(settle(t))
    await finish_deassoc(t, replace(vsi, entries=assigned), now)


@station(
    "answer.pcp-assigned",
    "a priority (PS 1, PCP 5) returned for an entry sent without PS is adopted",
    "vdp.md §5.2, §5.3, §9.2 step 4 (lldpad vdp22 tests 204/205)",
    "keep-alives carry PS 1, PCP 5, VID 10",
)
async def answer_pcp_assigned(t: Tester) -> None:
    vsi = t.new_vsi()
    req = await ask(t, vsi, cleanup=False)
    x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    assigned = tuple(replace(e, ps=True, pcp=5) for e in x.entries)

    async def cleanup() -> None:
        await t.deassociate(vsi, entries=assigned)

    t.cleanups.append(cleanup)
    ref = await answer(t, req, vsi, entries=assigned)
    await keepalive(t, vsi, replace(x, entries=assigned), ref, req.index + 1, "keep-alive after the PCP assignment")


def _bad_filter_case(
    name: str,
    title: str,
    clause: str,
    make: Callable[[Tester], VsiSpec],
    change: Callable[[VsiTlv], tuple[FilterEntry, ...]],
) -> None:
    @station(f"answer.{name}", title, clause, "treated as a failure: no keep-alive and no other VDP for the VSI")
    async def run(t: Tester) -> None:
        """A filter check failure ends the VSI like an error (vdp.md §9.3 PROCWAIT_2)."""
        vsi = make(t)
        req = await ask(t, vsi)
        x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
        ref = await answer(t, req, vsi, entries=change(x))
        await ended(t, vsi, req.index + 1, ref, "whose answer did not match its filter")


def _with_ps(t: Tester) -> VsiSpec:
    base = t.new_vsi()
    return replace(base, entries=tuple(replace(e, ps=True, pcp=3) for e in base.entries))


def _other_mac(x: VsiTlv) -> tuple[FilterEntry, ...]:
    return tuple(replace(e, mac=bytes([0x02, 0xEE]) + (e.mac or bytes(6))[2:]) for e in x.entries)


def _one_more(x: VsiTlv) -> tuple[FilterEntry, ...]:
    e = x.entries[-1]
    return (*x.entries, replace(e, mac=bytes([0x02, 0xEF]) + (e.mac or bytes(6))[2:]))


_bad_filter_case(
    "vid-changed",
    "an answer changing a non-zero VID (10 → 20) is a failure",
    "vdp.md §5.3, §9.2 step 4 (lldpad vdp22 test 209)",
    lambda t: t.new_vsi(),
    lambda x: tuple(replace(e, vid=20) for e in x.entries),
)
_bad_filter_case(
    "ps-word-changed",
    "an answer changing the PCP of an entry sent with PS set is a failure",
    "vdp.md §5.3, §9.2 step 4 (whole word equal if the station set PS; lldpad vdp22 test 207)",
    _with_ps,
    lambda x: tuple(replace(e, pcp=5) for e in x.entries),
)
_bad_filter_case(
    "other-mac",
    "an answer with another MAC address in the filter is a failure",
    "vdp.md §9.2 step 4",
    lambda t: t.new_vsi(),
    _other_mac,
)
_bad_filter_case(
    "other-count",
    "an answer with more filter entries than the request is a failure",
    "vdp.md §9.2 step 4 (same number of entries)",
    lambda t: t.new_vsi(),
    _one_more,
)


# --------------------------------------------------------------------------- answers to ignore


async def _ignored_then_normal(t: Tester, junk: Callable[[VdpIn, VsiSpec], VdpPdu | bytes], why: str) -> None:
    """The DUT asks; we send ``junk`` at once, which it must ignore (no VDP about the VSI), and
    the proper answer late in respWaitDelay (90 % of its lower bound), which completes the request
    normally. A DUT that took the junk as success would send its keep-alive reinitKeepAlive after
    the junk, i.e. too early for the proper answer (or even before it); one that took it as a
    failure has ended the VSI and sends no keep-alive at all."""
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    await t.send_ulpdu(junk(req, vsi))
    lo, _ = t.bounds(t.op.resp_wait_delay)
    await silent(
        t, mentions(vsi, req.index + 1), within=req.t + 0.9 * lo - t.now(), what=f"VDP for the VSI after {why}"
    )
    ref = await answer(t, req, vsi)
    await keepalive(t, vsi, x, ref, req.index + 1, f"keep-alive (after {why} and the proper answer)")


@station(
    "answer.unknown-vsi",
    "an answer for a VSI the DUT does not know is ignored",
    "vdp.md §9.2 step 1",
    "no VDP about the unknown VSI; the pending request completes normally",
)
async def answer_unknown_vsi(t: Tester) -> None:
    stranger = t.new_vsi()
    start = len(t.vdp_in)

    def junk(req: VdpIn, vsi: VsiSpec) -> VdpPdu:
        return stranger.pdu(VdpMode.ASSOC, status=VdpStatus.reply(0))

    await _ignored_then_normal(t, junk, "an answer for an unknown VSI")
    await silent(t, mentions(stranger, start), within=0.0, what="the DUT sent VDP about a VSI it never had")


@station(
    "answer.request-bit-clear",
    "an Associate TLV with the response bit clear is not taken as the answer",
    "vdp.md §4.2, §9.2 (only responses and De-Associates with 0x40 clear are considered)",
    "ignored; the pending request completes with the proper answer",
)
async def answer_request_bit_clear(t: Tester) -> None:
    def echo(req: VdpIn, vsi: VsiSpec) -> VdpPdu:
        return VdpPdu((VsiManagerIdTlv(vsi.manager_id), tlv(req, vsi)))

    await _ignored_then_normal(t, echo, "our echo of its request")


def _wrong_count(t: Tester, req: VdpIn, vsi: VsiSpec) -> bytes:
    pdu = t.answer_pdu(req, vsi)
    mgr, x = pdu.tlvs
    raw = x.encode()
    n = len(tlv(req, vsi).entries) + 1
    return mgr.encode() + raw[:25] + n.to_bytes(2, "big") + raw[27:]  # count ≠ (L - 25) / E


def _extra_octets(t: Tester, req: VdpIn, vsi: VsiSpec) -> bytes:
    pdu = t.answer_pdu(req, vsi)
    mgr, x = pdu.tlvs
    raw = x.encode()
    header = int.from_bytes(raw[:2], "big") + 2  # length L + 2, two octets appended
    return mgr.encode() + header.to_bytes(2, "big") + raw[2:] + b"\xaa\xaa"


@station(
    "answer.bad-count",
    "an answer whose entry count disagrees with its TLV length is ignored",
    "vdp.md §4.1, §9.2 (length must be exactly 25 + n·E), §10.1",
    "ignored; the pending request completes with the proper answer",
)
async def answer_bad_count(t: Tester) -> None:
    await _ignored_then_normal(t, lambda req, vsi: _wrong_count(t, req, vsi), "an answer announcing one entry too many")


@station(
    "answer.bad-length",
    "an answer whose TLV is two octets longer than its entries is ignored",
    "vdp.md §4.1, §9.2 (length must be exactly 25 + n·E)",
    "ignored; the pending request completes with the proper answer",
)
async def answer_bad_length(t: Tester) -> None:
    await _ignored_then_normal(t, lambda req, vsi: _extra_octets(t, req, vsi), "an answer with a TLV length 2 too long")


@station(
    "answer.no-manager-id",
    "an answer without the Manager ID TLV is ignored",
    "vdp.md §2 (Manager ID TLV first; lldpad drops the ECPDU otherwise)",
    "ignored; the pending request completes with the proper answer",
)
async def answer_no_manager_id(t: Tester) -> None:
    def bare(req: VdpIn, vsi: VsiSpec) -> bytes:
        return t.answer_pdu(req, vsi).vsis[0].encode()

    await _ignored_then_normal(t, bare, "an answer without Manager ID")


# --------------------------------------------------------------------------- ECP sequence numbers of our answers


@station(
    "answer.seq-restart",
    "our ECP restarts its sequence numbers: the answer with the new first number is taken",
    "ecp.md §4.2, §4.3 (only the last delivered number is a duplicate)",
    "the answer is delivered (keep-alive follows)",
)
async def answer_seq_restart(t: Tester) -> None:
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    x = check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    t._tx_seq = 0 if t._tx_seq != 1 else 0x1000  # next number 1 (0x1001 if 1 was the last one)
    ref = await answer(t, req, vsi)
    await keepalive(t, vsi, x, ref, req.index + 1, "keep-alive after an answer with a restarted sequence number")


@station(
    "answer.seq-repeated",
    "an answer reusing the last delivered ECP sequence number is acknowledged but not delivered",
    "ecp.md §4.2, §4.3 (duplicate = the last delivered number; the ULPDU is discarded)",
    "an ACK; the answer has no effect: the DUT gives up (no keep-alive)",
)
async def answer_seq_repeated(t: Tester) -> None:
    """A probe (an unsolicited De-Associate of an unknown VSI, which the DUT ignores) sets the
    DUT's last delivered number; the answer then reuses it."""
    vsi = t.new_vsi()
    req = await ask(t, vsi)
    check(req, vsi, vsi.tlv(VdpMode.ASSOC), "the Associate request")
    probe = t.new_vsi()
    seq = await t.send_ulpdu(probe.pdu(VdpMode.DEASSOC, status=VdpStatus()))
    await t.sleep(0.01)
    since = len(t.acks_in)
    await t.send_paced(t.ecp_frame(t.answer_pdu(req, vsi), seq))
    if await acked(t, seq, since=since) is None:
        raise Fail(f"the repeated sequence number {seq} was not acknowledged", t.last_in(ETH_P_ECP))
    _, rwd_hi = t.bounds(t.op.resp_wait_delay)
    _, rka_hi = t.bounds(t.op.reinit_keepalive)
    await silent(
        t,
        mentions(vsi, req.index + 1),
        within=req.t + rwd_hi + rka_hi - t.now(),
        what="the DUT acted on an answer carried by a duplicate ECP sequence number",
    )
    if find(t, mentions(probe, 0)):
        raise Fail("the DUT sent VDP about a VSI it never had", t.last_in(ETH_P_ECP))


# --------------------------------------------------------------------------- keep-alives


@station(
    "keepalive.period",
    "after success the DUT refreshes the VSI every reinitKeepAlive with an identical request",
    "vdp.md §8, §9.1 TXMIT_KA (lldpad-behaviour.md §4.3)",
    "a keep-alive reinitKeepAlive after our answer, equal to the request (type, hints, identity, filter)",
)
async def keepalive_period(t: Tester) -> None:
    vsi, req, ref = await associated(t)
    await keepalive(t, vsi, tlv(req, vsi), ref, req.index + 1)


@station(
    "keepalive.continue",
    "answered keep-alives go on, each reinitKeepAlive after the previous answer",
    "vdp.md §8, §9.3 (TXMIT_KAWAIT_2 → WAIT_SYSCMD)",
    "three keep-alives in a row, each on time and identical to the request",
)
async def keepalive_continue(t: Tester) -> None:
    vsi, req, ref = await associated(t)
    x = tlv(req, vsi)
    last = req
    for n in range(1, 4):
        last = await keepalive(t, vsi, x, ref, last.index + 1, f"keep-alive {n}")
        ref = await answer(t, last, vsi)


@station(
    "keepalive.no-answer",
    "an unanswered keep-alive: the DUT gives up after respWaitDelay",
    "vdp.md §8, §9.3 (TXMIT_KAWAIT: respWaitDelay expired → END), §9.3 notes",
    "no VDP for the VSI after the unanswered keep-alive (no repeat, no De-Associate); a late answer is ignored",
)
async def keepalive_no_answer(t: Tester) -> None:
    vsi, req, ref = await associated(t)
    ka = await keepalive(t, vsi, tlv(req, vsi), ref, req.index + 1)
    _, hi = t.bounds(t.op.resp_wait_delay)
    await silent(
        t,
        mentions(vsi, ka.index + 1),
        within=ka.t + hi - t.now(),
        what="the DUT sent VDP for the VSI while waiting for the keep-alive's answer",
    )
    late = await answer(t, ka, vsi)
    await ended(t, vsi, ka.index + 1, late, "it gave up on (an answer after respWaitDelay must be ignored)")


def _ka_error_case(action: str, test: int | None) -> None:
    lldpad_test = f" (lldpad vdp22 test {test})" if test else ""

    @station(
        f"keepalive.error-{action}",
        f"an error (code 4, no Keep) answering a keep-alive of a VSI after {WORDS[action]} ends it",
        f"vdp.md §9.3 (TXMIT_KAWAIT_2: error without Keep → END){lldpad_test}",
        "no further keep-alive and no De-Associate",
        needs=(action,),
    )
    async def run(t: Tester) -> None:
        vsi, req, ref = await associated(t, action=action)
        ka = await keepalive(t, vsi, tlv(req, vsi), ref, req.index + 1)
        err = await answer(t, ka, vsi, code=4)
        await ended(t, vsi, ka.index + 1, err, "whose keep-alive was refused")


_ka_error_case("preassociate", 116)
_ka_error_case("preassociate-rr", 119)
_ka_error_case("associate", None)


@station(
    "keepalive.keep-error",
    "a Keep error answering a keep-alive of an associated VSI makes the DUT de-associate it",
    "vdp.md §9.3 (TXMIT_KAWAIT_2: Keep, type Associate → TXMIT_DEASSOC) (lldpad vdp22 test 121)",
    "a De-Associate with the VSI's identity, filter and hints at once; then nothing",
)
async def keepalive_keep_error(t: Tester) -> None:
    vsi, req, ref = await associated(t)
    x = tlv(req, vsi)
    ka = await keepalive(t, vsi, x, ref, req.index + 1)
    await answer(t, ka, vsi, code=3, keep=True)
    d = await wait(
        t,
        request_of(vsi, ka.index + 1),
        within=prompt(t),
        what="De-Associate after a Keep error on the keep-alive",
    )
    check(d, vsi, replace(x, mode=VdpMode.DEASSOC), "the De-Associate after a Keep error")
    done = await answer(t, d, vsi)
    await ended(t, vsi, d.index + 1, done, "it de-associated")


# --------------------------------------------------------------------------- unsolicited De-Associates


def _unsolicited_case(action: str, test: int) -> None:
    @station(
        f"unsolicited.{action}",
        f"an unsolicited De-Associate (status 0x00) drops a VSI after {WORDS[action]}",
        f"vdp.md §9.2 step 3, §9.3, §10.5 (lldpad vdp22 test {test})",
        "our De-Associate is acknowledged; no VDP answer and no keep-alive for the VSI",
        needs=(action,),
    )
    async def run(t: Tester) -> None:
        vsi, _, _ = await associated(t, action=action)
        await t.sleep(settle(t))
        start = len(t.vdp_in)
        await t.pace()
        sent = t.now()
        await t.deassociate(vsi)  # reliable: Fail unless the DUT acknowledges it
        await ended(t, vsi, start, sent, "the bridge de-associated")


_unsolicited_case("associate", 117)
_unsolicited_case("preassociate", 120)


@station(
    "unsolicited.unknown-vsi",
    "an unsolicited De-Associate of an unknown VSI changes nothing",
    "vdp.md §9.2 step 1",
    "no VDP about the unknown VSI; the associated VSI's keep-alive comes on time",
)
async def unsolicited_unknown(t: Tester) -> None:
    vsi, req, ref = await associated(t)
    stranger = t.new_vsi()
    start = len(t.vdp_in)
    await t.sleep(settle(t))
    await t.deassociate(stranger)
    await keepalive(t, vsi, tlv(req, vsi), ref, req.index + 1)
    await silent(t, mentions(stranger, start), within=0.0, what="the DUT sent VDP about a VSI it never had")


# --------------------------------------------------------------------------- De-Associate through the hook


@station(
    "deassoc.format",
    "a De-Associate through the hook carries the VSI as associated",
    "vdp.md §4.1, §9.1 TXMIT_DEASSOC, §9.3 (lldpad vdp22 test 103)",
    "De-Associate TLV (type 4), status 0x00, identity and filter of the VSI; no keep-alive after our answer",
    needs=("associate", "deassociate"),
)
async def deassoc_format(t: Tester) -> None:
    vsi, req, _ = await associated(t)
    await t.sleep(settle(t))
    await finish_deassoc(t, vsi, tlv(req, vsi))


@station(
    "deassoc.no-answer",
    "an unanswered De-Associate is not repeated by VDP and the VSI is not refreshed",
    "vdp.md §9.3 (DEAWAIT: respWaitDelay expired → END)",
    "no De-Associate again within respWaitDelay, no other request of the VSI for respWaitDelay plus a "
    "keep-alive period",
    needs=("associate", "deassociate"),
)
async def deassoc_no_answer(t: Tester) -> None:
    """VDP itself does not repeat the De-Associate (the VSI ends when respWaitDelay expires) and
    sends no keep-alive for it. A management layer may issue the command anew once the VSI has
    ended (evb's station agent re-sends an unanswered De-Associate after a back-off of ≥ 1 s, so
    that a bridge that was frozen still hears it); a De-Associate after respWaitDelay is
    therefore not judged."""
    vsi, req, _ = await associated(t)
    await t.sleep(settle(t))
    d = await deassociated_by_hook(t, vsi, tlv(req, vsi))
    rwd_lo, rwd_hi = t.bounds(t.op.resp_wait_delay)
    _, rka_hi = t.bounds(t.op.reinit_keepalive)
    await silent(
        t,
        request_of(vsi, d.index + 1, VdpMode.DEASSOC),
        within=d.t + rwd_lo - t.now(),
        what="the DUT repeated its unanswered De-Associate before respWaitDelay",
    )
    await silent(
        t,
        lambda i: request_of(vsi, d.index + 1)(i) and not request_of(vsi, d.index + 1, VdpMode.DEASSOC)(i),
        within=d.t + rwd_hi + rka_hi - t.now(),
        what="the DUT sent a request other than De-Associate for the VSI after its unanswered De-Associate",
    )


@station(
    "deassoc.unknown",
    "a De-Associate command for a VSI the DUT never had sends nothing",
    "vdp.md §11 (De-Assoc with no current mode: error) (lldpad vdp22 tests 114, 305)",
    "the command is refused (hook error) or at least no De-Associate goes out",
    needs=("deassociate",),
)
async def deassoc_unknown(t: Tester) -> None:
    vsi = t.new_vsi()
    start = len(t.vdp_in)
    await attempt(t, "deassociate", vsi)
    await silent(t, mentions(vsi, start), within=prompt(t), what="the DUT sent VDP for a VSI it never had")


# --------------------------------------------------------------------------- mode transitions


def _chain_case(name: str, actions: tuple[str, ...], title: str, clause: str, lldpad: str = "") -> None:
    @station(
        f"mode.{name}",
        title,
        clause,
        "each request of the type asked, all answered; keep-alives of the last type; De-Associate",
        needs=(*dict.fromkeys(actions), "deassociate"),
        lldpad=lldpad,
    )
    async def run(t: Tester) -> None:
        vsi = t.new_vsi()
        ref = 0.0
        req: VdpIn | None = None
        for k, action in enumerate(actions):
            if k:
                await t.sleep(settle(t))
            req = await _ask_existing(t, vsi, action) if k else await ask(t, vsi, action)
            check(req, vsi, vsi.tlv(MODES[action]), f"request {k + 1} ({action})")
            ref = await answer(t, req, vsi)
        assert req is not None
        x = tlv(req, vsi)
        ka = await keepalive(t, vsi, x, ref, req.index + 1, f"keep-alive after {' → '.join(actions)}")
        await answer(t, ka, vsi)
        await t.sleep(settle(t))
        await finish_deassoc(t, vsi, x)


_chain_case(
    "preassoc-rr-assoc",
    ("preassociate", "preassociate-rr", "associate"),
    "Pre-Associate → Pre-Associate-RR → Associate → De-Associate",
    "vdp.md §9.3, §11 (lldpad vdp22 test 110)",
)
_chain_case(
    "preassoc-twice",
    ("preassociate", "preassociate"),
    "Pre-Associate twice, then De-Associate",
    "vdp.md §9.3, §11 (lldpad vdp22 test 111)",
)
_chain_case(
    "preassoc-rr-twice",
    ("preassociate-rr", "preassociate-rr"),
    "Pre-Associate-RR twice, then De-Associate",
    "vdp.md §9.3, §11 (lldpad vdp22 test 112)",
)
_chain_case(
    "assoc-twice",
    ("associate", "associate"),
    "Associate twice, then De-Associate",
    "vdp.md §9.3, §11 (lldpad vdp22 test 113)",
)
_chain_case(
    "preassoc-assoc",
    ("preassociate", "associate"),
    "Pre-Associate → Associate → De-Associate",
    "vdp.md §9.3, §11 (Pre-Assoc → Assoc allowed)",
)
_chain_case(
    "preassoc-rr-to-preassoc",
    ("preassociate-rr", "preassociate"),
    "Pre-Associate-RR → Pre-Associate (allowed by the transition table)",
    "vdp.md §11 (table: Pre-Assoc after Pre-Assoc-RR allowed)",
    lldpad="lldpad lets the mode only go up (vdp.md §11, cf. test 108): it refuses this command, so the case fails",
)


@station(
    "mode.assoc-to-preassoc",
    "a Pre-Associate command for an associated VSI is refused",
    "vdp.md §11 (Assoc → Pre-Assoc: error) (lldpad vdp22 test 108)",
    "the command is refused or sends nothing; the VSI stays associated (Associate keep-alives)",
    needs=("associate", "preassociate"),
)
async def mode_assoc_to_preassoc(t: Tester) -> None:
    vsi, req, ref = await associated(t)
    x = tlv(req, vsi)
    await t.sleep(settle(t))
    start = len(t.vdp_in)
    await attempt(t, "preassociate", vsi)
    await silent(
        t,
        request_of(vsi, start, VdpMode.PREASSOC),
        within=prompt(t),
        what="the DUT sent a Pre-Associate for an associated VSI",
    )
    await keepalive(t, vsi, x, ref, req.index + 1, "Associate keep-alive after the refused command")


# --------------------------------------------------------------------------- several VSIs, EVB loss


@station(
    "two-vsis",
    "two VSIs are refreshed independently; de-associating one leaves the other",
    "vdp.md §9 (one state machine per VSI) (lldpad vdp22 test 104)",
    "keep-alives for both; after A's De-Associate only B's keep-alives",
    needs=("associate", "deassociate"),
)
async def two_vsis(t: Tester) -> None:
    a, req_a, ref_a = await associated(t)
    b, req_b, ref_b = await associated(t)
    xa, xb = tlv(req_a, a), tlv(req_b, b)
    ka_a = await keepalive(t, a, xa, ref_a, req_a.index + 1, "keep-alive of the first VSI")
    await answer(t, ka_a, a)
    await t.sleep(0.01)  # two answers in a row: more than lldpad's 2-ms VDP buffer apart (ecp.md §4.2)
    ka_b = await keepalive(t, b, xb, ref_b, req_b.index + 1, "keep-alive of the second VSI")
    ref_b = await answer(t, ka_b, b)
    await t.sleep(settle(t))
    d = await deassociated_by_hook(t, a, xa)
    done = await answer(t, d, a)
    ka_b = await keepalive(t, b, xb, ref_b, ka_b.index + 1, "keep-alive of the second VSI after the first left")
    await answer(t, ka_b, b)
    await ended(t, a, d.index + 1, done, "de-associated through the hook")


@station(
    "evb.loss-and-return",
    "the association survives a loss of the bridge's EVB TLV (TTL 0) and its return",
    "lldp-evb-cdcp.md §2.4 (TTL 0: ECP/VDP not stopped), vdp.md §9.3 (link back → request re-sent)",
    "after EVB returns, an Associate for the VSI within reinitKeepAlive, then keep-alives go on",
)
async def evb_loss_and_return(t: Tester) -> None:
    """We send an LLDPDU with TTL 0 and stay silent for 1.2 reinitKeepAlive, answering any VDP
    of the VSI meanwhile (lldpad's bridge keeps VDP running, lldp-evb-cdcp.md §2.4), then
    re-announce EVB. The spec leaves open whether a station pauses VDP while the bridge's EVB
    TLV is gone; a network engineer expects the VSI to be associated once EVB is back without
    a new command: either the keep-alives never stopped, or the DUT re-sends its request (as
    lldpad does when the link comes back). So: the first request of the VSI after EVB is back
    must come within one reinitKeepAlive (upper bound), be the Associate as first sent, and
    the next keep-alive must follow it on time."""
    vsi, req, _ = await associated(t)
    x = tlv(req, vsi)
    answered: dict[int, float] = {}  #: index of a request of the VSI → when we answered it

    async def serve(start: int) -> None:
        while True:
            got = await t.until(functools.partial(find, t, request_of(vsi, start)), 3600.0)
            if got is None:
                continue
            start = got.index + 1
            sent = t.now()
            try:
                answered[got.index] = await answer(
                    t, got, vsi, mode=VdpMode.DEASSOC if tlv(got, vsi).mode == VdpMode.DEASSOC else None
                )
            except Fail:  # not acknowledged: a DUT may stop ECP while the bridge's EVB TLV is gone
                answered[got.index] = sent

    server = asyncio.ensure_future(serve(req.index + 1))
    try:
        t.lldp_enabled = False
        t.send_lldp(ttl=0)
        await t.sleep(1.2 * t.op.reinit_keepalive)
        back_from = len(t.vdp_in)
        back = t.now()
        await t.ensure_evb()
        _, hi = t.bounds(t.op.reinit_keepalive)
        got = await wait(
            t,
            request_of(vsi, back_from),
            within=back + hi - t.now(),
            what="request of the VSI after EVB came back",
        )
        check(got, vsi, x, "the first request after EVB came back")
        await t.until(lambda: got.index in answered, prompt(t))
        ref = answered.get(got.index, got.t)
        nxt = await wait(
            t,
            request_of(vsi, got.index + 1),
            within=ref + hi - t.now(),
            what="keep-alive after the first request that followed EVB's return",
        )
        check(nxt, vsi, x, "the keep-alive after EVB came back")
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
        t.lldp_enabled = True
