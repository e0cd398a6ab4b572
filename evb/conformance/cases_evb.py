"""EVB TLV cases (lldp-evb-cdcp.md §1-§3, lldpad-behaviour.md §4.1, lldpad's evb22 tests).

The tester advertises a hand-made EVB TLV (``Tester.evb_override``) and reads the DUT's next
TLV. Every stimulus changes the status octet the DUT copies from us (the bridge's octet for a
station DUT, the station's octet for a bridge DUT, §2.3), so the DUT has a changed TLV to
announce and its answer is the first TLV that carries the new copy: the other fields of that
same TLV were computed from our stimulus. A DUT may announce a change only at its next 1-s LLDP
tick (lldpad), so reactions are awaited for ``REACT`` seconds and a reaction that must not
happen is watched for ``QUIET`` seconds.

Raising a timer value is sticky (both sides advertise the maximum of their own value and the
peer's, so the DUT's raised value would come back in our negotiated TLV): such cases register a
clean-up that advertises zeros until the DUT is back at or below the values of the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from evb.conformance import steps
from evb.conformance.model import ROLES, Case, CaseFn, Fail, Skip, add
from evb.conformance.tester import Tester
from evb.ethernet import ETH_P_LLDP, NEAREST_CUSTOMER_BRIDGE, TAG_TPIDS
from evb.lldp.wire import OUI_8021, OUI_QBG_DRAFT, EvbMode, EvbTlv, RrStat
from evb.vdp.wire import FilterFormat, VdpMode

REACT = 4.0  #: seconds for the DUT to announce a changed EVB TLV (lldpad: its next 1-s tick)
QUIET = 1.6  #: seconds to watch for a change of the DUT's EVB TLV that must not happen (lldpad: ≤ 1 s)
TIMERS = ("r", "rte", "rwd", "rka")
#: highest values we advertise when raising one: R's maximum, and lldpad's overflow limits
#: (lldpad-behaviour.md §3.3: RTE ≤ 23, RWD and RKA ≤ 27)
CAPS = {"r": 7, "rte": 23, "rwd": 27, "rka": 27}
ROL = {"rwd": "rol_rwd", "rka": "rol_rka"}


def both(name: str, title: str, clause: str, expect: str, *, lldpad: str = "") -> Callable[[CaseFn], CaseFn]:
    """Register a case for a station DUT and for a bridge DUT (``evb.<role>.<name>``)."""

    def register(fn: CaseFn) -> CaseFn:
        for role in ROLES:
            add(Case(f"evb.{role}.{name}", title, clause, role, fn, (), expect, lldpad))
        return fn

    return register


def only(role: str, name: str, title: str, clause: str, expect: str, *, lldpad: str = "") -> Callable[[CaseFn], CaseFn]:
    """Register a case for one DUT role (``evb.<role>.<name>``)."""

    def register(fn: CaseFn) -> CaseFn:
        add(Case(f"evb.{role}.{name}", title, clause, role, fn, (), expect, lldpad))
        return fn

    return register


# --------------------------------------------------------------------------- helpers (also used by cases_robust)


def own_mode(t: Tester) -> int:
    """The EVB mode the DUT must advertise."""
    return EvbMode.STATION if t.dut_role == "station" else EvbMode.BRIDGE


def copied(t: Tester, tlv: EvbTlv) -> int:
    """The status octet the DUT copies from us: the bridge's (station DUT) or the station's (bridge DUT)."""
    return tlv.bridge_status if t.dut_role == "station" else tlv.station_status


def copied_name(t: Tester) -> str:
    return "EVB Bridge Status" if t.dut_role == "station" else "EVB Station Status"


def with_copied(t: Tester, tlv: EvbTlv, octet: int) -> EvbTlv:
    """``tlv`` with the octet the DUT copies set to ``octet`` (reserved bits included)."""
    if t.dut_role == "station":
        return replace(
            tlv,
            bridge_reserved=octet >> 3,
            bgid=bool(octet & 0x04),
            rrcap=bool(octet & 0x02),
            rrctr=bool(octet & 0x01),
        )
    return replace(
        tlv,
        station_reserved=octet >> 4,
        sgid=bool(octet & 0x08),
        rrreq=bool(octet & 0x04),
        rrstat=octet & 0x03,
    )


def marked(t: Tester, tlv: EvbTlv) -> EvbTlv:
    """``tlv`` with a visible change the DUT must copy: BGID (station DUT) or SGID (bridge DUT) flipped."""
    if t.dut_role == "station":
        return replace(tlv, bgid=not tlv.bgid)
    return replace(tlv, sgid=not tlv.sgid)


def current(t: Tester) -> EvbTlv:
    """The DUT's last EVB TLV; ``Fail`` if it has none."""
    if t.peer_evb is None:
        raise Fail("the DUT's last LLDPDU carries no EVB TLV", last_lldp(t))
    return t.peer_evb


def last_lldp(t: Tester) -> bytes | None:
    return t.lldp_in[-1][2] if t.lldp_in else t.last_in(ETH_P_LLDP)


def describe(tlv: EvbTlv | None) -> str:
    if tlv is None:
        return "none"
    return (
        f"{tlv.info.hex(' ')} (bridge {tlv.bridge_status:#04x}, station {tlv.station_status:#04x}, "
        f"R {tlv.r}, RTE {tlv.rte}, RWD {tlv.rwd}{'+ROL' if tlv.rol_rwd else ''}, "
        f"RKA {tlv.rka}{'+ROL' if tlv.rol_rka else ''}, mode {tlv.mode})"
    )


def forgotten(t: Tester, tlv: EvbTlv) -> bool:
    """The DUT's TLV is the one it sends with no peer TLV (§2.3, §2.4 notes): a station's RRSTAT
    is 3 and its copy of the bridge octet 0; a bridge's copy of the station octet is 0, RRCTR 0."""
    if t.dut_role == "station":
        return tlv.rrstat == RrStat.UNKNOWN and tlv.bridge_status == 0
    return tlv.station_status == 0 and not tlv.rrctr


def evb_since(t: Tester, since: int) -> list[tuple[float, EvbTlv | None, bytes]]:
    """(time, EVB TLV or None, frame) of every LLDPDU the DUT sent from ``lldp_in[since]`` on."""
    return [(tt, pdu.evb, data) for tt, pdu, data in t.lldp_in[since:]]


async def stimulate(t: Tester, tlv: EvbTlv, *, mask: int = 0xFF) -> EvbTlv:
    """Advertise ``tlv`` instead of the negotiated TLV; the DUT's first TLV computed from it.

    That TLV is recognised by the copy of our status octet (compared under ``mask``). When the
    DUT's copy already equals it there is nothing to recognise: its TLV after ``QUIET`` counts.
    """
    before = current(t)
    want = copied(t, tlv) & mask
    t.evb_override = tlv
    t.send_lldp()
    if copied(t, before) & mask == want:
        await t.sleep(QUIET)
        return current(t)

    def check() -> EvbTlv | None:
        peer = t.peer_evb
        return peer if peer is not None and copied(t, peer) & mask == want else None

    got = await t.until(check, REACT)
    if got is None:
        raise Fail(
            f"the DUT did not take our EVB TLV within {REACT:g} s: its {copied_name(t)} is not our "
            f"{copied(t, tlv):#04x} (we sent {describe(tlv)}; it sends {describe(t.peer_evb)})",
            last_lldp(t),
        )
    return got


def check_mode(t: Tester, tlv: EvbTlv) -> None:
    if tlv.mode != own_mode(t):
        raise Fail(f"EVB mode {tlv.mode}, a {t.dut_role} advertises {own_mode(t)}: {describe(tlv)}", last_lldp(t))


def check_own_octet(t: Tester, base: EvbTlv, got: EvbTlv) -> None:
    """The DUT's own status bits do not follow the peer (a station's SGID/RRREQ, a bridge's BGID/RRCAP)."""
    if t.dut_role == "station":
        same = (got.sgid, got.rrreq) == (base.sgid, base.rrreq)
        what = "SGID/RRREQ"
    else:
        same = (got.bgid, got.rrcap) == (base.bgid, base.rrcap)
        what = "BGID/RRCAP"
    if not same:
        raise Fail(
            f"the DUT's own {what} changed with the peer's TLV: {describe(base)} → {describe(got)}", last_lldp(t)
        )


def check_values(t: Tester, got: EvbTlv, want: dict[str, int], what: str) -> None:
    bad = {f: getattr(got, f) for f, v in want.items() if getattr(got, f) != v}
    if bad:
        wanted = ", ".join(f"{f.upper()} {want[f]}" for f in bad)
        raise Fail(f"{what}: expected {wanted}; the DUT sends {describe(got)}", last_lldp(t))


def check_own_rol(t: Tester, got: EvbTlv, fields: tuple[str, ...], what: str) -> None:
    """RWD/RKA that are the DUT's own values carry ROL 0 (a value of 0 may be a tie: either)."""
    for f in fields:
        if f in ROL and getattr(got, f) > 0 and getattr(got, ROL[f]):
            raise Fail(
                f"{what}: ROL({f.upper()}) is 1 although the peer's value is lower: {describe(got)}", last_lldp(t)
            )


def unstick_on_cleanup(t: Tester, base: EvbTlv) -> None:
    """After the case, bring the DUT's timer values back to ``base``'s or below (advertise zeros)."""

    async def cleanup() -> None:
        peer = t.peer_evb
        if peer is None or all(getattr(peer, f) <= getattr(base, f) for f in TIMERS):
            return
        low = replace(t.evb_override or t.local_evb, r=0, rte=0, rwd=0, rka=0)
        if copied(t, low) == copied(t, peer):
            low = marked(t, low)
        t.evb_override = low
        t.send_lldp()
        got = await t.until(
            lambda: t.peer_evb is not None and all(getattr(t.peer_evb, f) <= getattr(base, f) for f in TIMERS),
            REACT,
        )
        if not got:
            raise Fail(f"the DUT kept raised timer values after we advertised zeros: {describe(t.peer_evb)}")

    t.cleanups.append(cleanup)


def lldp_tlvs(data: bytes) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """(destination, [(type, length, value)]) of an LLDP frame, walked by hand (tags skipped;
    the walk stops at End or at a TLV that runs past the frame)."""
    off = 12
    while len(data) >= off + 2 and int.from_bytes(data[off : off + 2], "big") in TAG_TPIDS:
        off += 4
    off += 2
    out = []
    while off + 2 <= len(data):
        h = int.from_bytes(data[off : off + 2], "big")
        typ, length = h >> 9, h & 0x1FF
        if typ == 0 or off + 2 + length > len(data):
            break
        out.append((typ, length, data[off + 2 : off + 2 + length]))
        off += 2 + length
    return data[0:6], out


def evb_tlv_count(data: bytes) -> tuple[int, list[int], int]:
    """(ratified EVB TLVs, their lengths, draft EVB TLVs) in an LLDP frame."""
    _, tlvs = lldp_tlvs(data)
    lengths = [n for typ, n, v in tlvs if typ == 127 and v[:3] == OUI_8021 and v[3:4] == b"\x0d"]
    drafts = sum(1 for typ, _, v in tlvs if typ == 127 and v[:3] == OUI_QBG_DRAFT and v[3:4] == b"\x00")
    return len(lengths), lengths, drafts


def dut_lldp_frames(t: Tester, since: int = 0) -> list[bytes]:
    """Every LLDP frame from the DUT in the log (any destination, tagged or not), from ``log[since]`` on."""
    out = []
    for seen in t.log[since:]:
        if seen.way != "in":
            continue
        off = 12
        while len(seen.data) >= off + 2 and int.from_bytes(seen.data[off : off + 2], "big") in TAG_TPIDS:
            off += 4
        if len(seen.data) >= off + 2 and int.from_bytes(seen.data[off : off + 2], "big") == ETH_P_LLDP:
            out.append(seen.data)
    return out


# --------------------------------------------------------------------------- both roles


@both(
    "tlv-format",
    "the DUT's LLDPDUs carry exactly one ratified EVB TLV, to the nearest customer bridge",
    "lldp-evb-cdcp.md §1.1, §1.3, §2.1-§2.3; README.md §3",
    "to 01-80-C2-00-00-00, untagged, one EVB TLV (00-80-C2/0x0D) of length 9 with its own mode, reserved "
    "bits 0, RRSTAT ≠ 2, no draft-0.2 EVB TLV; no EVB TLV to any other group address",
)
async def tlv_format(t: Tester) -> None:
    frames = dut_lldp_frames(t)
    if not frames:
        raise Fail("no LLDPDU from the DUT")
    for data in frames:
        dst, _ = lldp_tlvs(data)
        n, lengths, drafts = evb_tlv_count(data)
        if dst != NEAREST_CUSTOMER_BRIDGE:
            if n:
                raise Fail(f"an EVB TLV in an LLDPDU to {dst.hex(':')} (only the nearest customer bridge)", data)
            continue
        if int.from_bytes(data[12:14], "big") in TAG_TPIDS:
            raise Fail("a VLAN-tagged LLDPDU on the physical link", data)
        if drafts:
            raise Fail("a draft-0.2 EVB TLV next to the ratified one", data)
        if n == 0:
            continue  # a shutdown LLDPDU, or EVB transmission off: the next checks need a TLV
        if n != 1 or lengths != [9]:
            raise Fail(f"{n} EVB TLVs of length {lengths} (exactly one, of length 9)", data)
    tlv = current(t)
    check_mode(t, tlv)
    problems = []
    if tlv.rka_reserved:
        problems.append(f"RKA octet reserved bits {tlv.rka_reserved:#x}")
    if t.dut_role == "station":
        if tlv.station_reserved:
            problems.append(f"station status reserved bits {tlv.station_reserved:#x}")
        if tlv.rrstat == RrStat.RESERVED:
            problems.append("RRSTAT 2 (reserved)")
    elif tlv.bridge_reserved:
        problems.append(f"bridge status reserved bits {tlv.bridge_reserved:#x}")
    if problems:
        raise Fail("EVB TLV: " + ", ".join(problems) + f": {describe(tlv)}", last_lldp(t))


def _timer_case(field: str, higher: bool) -> CaseFn:
    async def run(t: Tester) -> None:
        base = current(t)
        normal = t.local_evb
        if higher:
            value = getattr(base, field) + 1
            if value > CAPS[field]:
                raise Skip(f"the session's {field.upper()} is {getattr(base, field)}, we do not advertise more")
            unstick_on_cleanup(t, base)
        else:
            value = 0
        got = await stimulate(t, marked(t, replace(normal, **{field: value})))
        check_mode(t, got)
        others = {f: getattr(base, f) for f in TIMERS if f != field}
        check_values(t, got, others, f"the other values stay at the session's ({field.upper()} changed only)")
        mine = getattr(got, field)
        if higher:
            check_values(t, got, {field: value}, f"the peer's higher {field.upper()} {value} is adopted")
            if field in ROL and not getattr(got, ROL[field]):
                raise Fail(
                    f"ROL({field.upper()}) is 0 for the value taken from the peer: {describe(got)}", last_lldp(t)
                )
            return
        if mine > getattr(base, field):
            raise Fail(f"{field.upper()} rose to {mine} when the peer advertised 0: {describe(got)}", last_lldp(t))
        check_own_rol(t, got, (field,), f"own {field.upper()} kept")
        if field in ROL and not getattr(base, ROL[field]) and mine != getattr(base, field):
            raise Fail(
                f"{field.upper()} was the DUT's own {getattr(base, field)} (ROL 0), now {mine}: {describe(got)}",
                last_lldp(t),
            )

    return run


for _f, _tests in (("r", (13, 14)), ("rte", (7, 8)), ("rwd", (11, 12)), ("rka", (9, 10))):
    _rol = " and sets ROL" if _f in ROL else ""
    both(
        f"{_f}-higher",
        f"the peer's higher {_f.upper()} is adopted",
        f"lldp-evb-cdcp.md §2.4, §2.5 (lldpad evb22 test {_tests[0]})",
        f"{_f.upper()} = the peer's value (one above the session's){_rol}; the other values unchanged",
    )(_timer_case(_f, True))
    both(
        f"{_f}-lower",
        f"with the peer's {_f.upper()} at 0 the DUT keeps its own",
        f"lldp-evb-cdcp.md §2.4 (lldpad evb22 test {_tests[1]})",
        f"{_f.upper()} = the DUT's own value (≤ the session's" + (", ROL 0)" if _f in ROL else ")"),
    )(_timer_case(_f, False))


@both(
    "timers-mixed",
    "R and RWD taken from the peer, RTE and RKA kept, in one TLV",
    "lldp-evb-cdcp.md §2.4, §2.5 (evb-timers.pcap)",
    "R and RWD = the peer's (ROL(RWD) 1), RTE and RKA = the DUT's own (ROL(RKA) 0)",
)
async def timers_mixed(t: Tester) -> None:
    base = current(t)
    r, rwd = base.r + 1, base.rwd + 1
    if r > CAPS["r"] or rwd > CAPS["rwd"]:
        raise Skip(f"the session's R {base.r} / RWD {base.rwd} are at the highest values we advertise")
    unstick_on_cleanup(t, base)
    got = await stimulate(t, marked(t, replace(t.local_evb, r=r, rte=0, rwd=rwd, rka=0)))
    check_mode(t, got)
    check_values(t, got, {"r": r, "rwd": rwd}, "the peer's higher R and RWD are adopted")
    if not got.rol_rwd:
        raise Fail(f"ROL(RWD) is 0 for the value taken from the peer: {describe(got)}", last_lldp(t))
    if got.rte > base.rte or got.rka > base.rka:
        raise Fail(f"RTE/RKA rose when the peer advertised 0: {describe(got)}", last_lldp(t))
    check_own_rol(t, got, ("rka",), "own RKA kept")


@both(
    "ttl0-forgets",
    "an LLDPDU with TTL 0 makes the DUT forget our EVB TLV",
    "lldp-evb-cdcp.md §1.3, §2.4 notes; lldpad-behaviour.md §4.1",
    "station: RRSTAT 3 and bridge octet 0; bridge: station octet 0 and RRCTR 0; own values (ROL 0); "
    "then EVB converges again and ECP still works",
)
async def ttl0_forgets(t: Tester) -> None:
    base = current(t)
    t.lldp_enabled = False
    since = len(t.lldp_in)
    t.send_lldp(ttl=0, evb=False)
    if forgotten(t, base):
        await t.sleep(QUIET)
        got: EvbTlv | None = current(t)
    else:
        got = await t.until(lambda: next((e for _, e, _ in evb_since(t, since) if e and forgotten(t, e)), None), REACT)
    if got is None or not forgotten(t, got):
        raise Fail(
            f"{REACT:g} s after our TTL-0 LLDPDU the DUT still uses our TLV: {describe(t.peer_evb)}", last_lldp(t)
        )
    check_mode(t, got)
    for f in TIMERS:
        if getattr(got, f) > getattr(base, f):
            raise Fail(f"{f.upper()} rose after the peer left: {describe(got)}", last_lldp(t))
    check_own_rol(t, got, ("rwd", "rka"), "own values after the peer left")
    t.lldp_enabled = True
    await t.ensure_evb()
    await steps.still_alive(t)


@both(
    "ttl-expiry",
    "our EVB TLV ages out TTL seconds after our last LLDPDU",
    "lldp-evb-cdcp.md §1.3, §2.4 notes (ageing); lldpad-behaviour.md §4.1",
    "the DUT forgets our TLV (as after TTL 0) between TTL − 1 s and TTL + 4 s after an LLDPDU of TTL 3",
)
async def ttl_expiry(t: Tester) -> None:
    ttl = 3
    base = current(t)
    if forgotten(t, base):
        raise Skip(f"the DUT's converged TLV looks like its TLV without a peer: {describe(base)}")
    t.lldp_enabled = False
    since = len(t.lldp_in)
    t.send_lldp(ttl=ttl)
    sent = t.now()
    got = await t.until(
        lambda: next(((tt, e) for tt, e, _ in evb_since(t, since) if e and forgotten(t, e)), None), ttl + REACT
    )
    if got is None:
        raise Fail(f"{ttl + REACT:g} s after our last LLDPDU (TTL {ttl}) the DUT still uses our TLV", last_lldp(t))
    if got[0] - sent < ttl - 1.1:
        raise Fail(f"our TLV was forgotten {got[0] - sent:.2f} s after an LLDPDU of TTL {ttl}", last_lldp(t))
    t.lldp_enabled = True
    await t.ensure_evb()


@both(
    "no-evb-tlv",
    "an LLDPDU without the EVB TLV does not disturb the DUT",
    "lldp-evb-cdcp.md §1.3, §2.3 (silent on a missing TLV)",
    "the DUT keeps its own mode and either keeps our last TLV or forgets it (as after TTL 0); "
    "EVB converges again when the TLV comes back",
)
async def no_evb_tlv(t: Tester) -> None:
    """802.1AB replaces the remote MIB with each LLDPDU, so a neighbour that stops sending the
    EVB TLV no longer advertises EVB: forgetting it is right; keeping the last values (as some
    implementations do, the TLV being handled per TLV) is tolerated. Anything else fails."""
    base = current(t)
    t.lldp_enabled = False
    since = len(t.lldp_in)
    t.send_lldp(evb=False)
    await t.sleep(QUIET)
    for _, e, data in evb_since(t, since):
        if e is None:
            raise Fail("the DUT stopped sending its EVB TLV", data)
        check_mode(t, e)
        kept = copied(t, e) == copied(t, base) and all(getattr(e, f) == getattr(base, f) for f in TIMERS)
        if not kept and not forgotten(t, e):
            raise Fail(f"neither our last TLV kept nor forgotten: {describe(base)} → {describe(e)}", data)
    t.lldp_enabled = True
    await t.ensure_evb()


def _wrong_mode(mode: int | None) -> CaseFn:
    """A peer TLV of EVB mode ``mode`` (None: the DUT's own mode) with our usual values and the marker.

    The spec only says that lldpad does not check the peer's mode (§2.4 notes) and recommends
    starting ECP/VDP on a TLV of the complementary mode (§3). A network engineer expects the
    DUT never to take its role from the peer and to keep advertising: that is judged. Using the
    odd TLV (lldpad) or ignoring it are both accepted, and EVB must converge again afterwards."""

    async def run(t: Tester) -> None:
        base = current(t)
        unstick_on_cleanup(t, base)
        peer_mode = own_mode(t) if mode is None else mode
        since = len(t.lldp_in)
        t.evb_override = replace(marked(t, t.local_evb), mode=peer_mode)
        t.send_lldp()
        await t.sleep(QUIET)
        for _, e, data in evb_since(t, since):
            if e is None:
                raise Fail(f"the DUT stopped sending its EVB TLV after a peer TLV of mode {peer_mode}", data)
            if e.mode != own_mode(t):
                raise Fail(f"the DUT changed its EVB mode to {e.mode} after a peer TLV of mode {peer_mode}", data)
        await t.ensure_evb()

    return run


both(
    "peer-mode-same",
    "a peer advertising the DUT's own EVB mode (two stations, two bridges)",
    "lldp-evb-cdcp.md §2.3, §2.4 notes, §3",
    "the DUT keeps its own mode and keeps sending its TLV; whether it uses the peer's TLV is not judged; "
    "EVB converges again with a proper peer",
    lldpad="lldpad never checks the peer's mode and negotiates with it (lldpad-behaviour.md §4.1)",
)(_wrong_mode(None))
both(
    "peer-mode-0",
    "a peer advertising EVB mode 0 (EVB not supported)",
    "lldp-evb-cdcp.md §2.2 (octet 9), §2.4 notes, §3",
    "the DUT keeps its own mode and keeps sending its TLV; whether it uses the peer's TLV is not judged; "
    "EVB converges again with a proper peer",
    lldpad="lldpad never checks the peer's mode and negotiates with it (lldpad-behaviour.md §4.1)",
)(_wrong_mode(EvbMode.NOT_SUPPORTED))


async def status_step(t: Tester, base: EvbTlv, normal: EvbTlv, octet: int, *, mask: int = 0xFF) -> EvbTlv:
    """Advertise ``normal`` with the copied octet ``octet``; check the DUT's answer: the copy,
    reflective relay (a station's RRSTAT follows RRCTR; a bridge's RRCTR = RRREQ AND its RRCAP),
    its own status bits, mode and timer values unchanged."""
    got = await stimulate(t, with_copied(t, normal, octet), mask=mask)
    check_mode(t, got)
    check_own_octet(t, base, got)
    check_values(t, got, {f: getattr(base, f) for f in TIMERS}, "timer values unchanged by a status change")
    copy = copied(t, got)
    if copy & mask != octet & mask or copy & ~mask & 0xFF not in (0, octet & ~mask & 0xFF):
        raise Fail(f"{copied_name(t)} copied as {copy:#04x}, we sent {octet:#04x}: {describe(got)}", last_lldp(t))
    if t.dut_role == "station":
        want = RrStat.ENABLED if octet & 0x01 else RrStat.NOT_ENABLED
        if got.rrstat != want:
            raise Fail(
                f"RRSTAT {got.rrstat} after a bridge status {octet:#04x} (RRCTR {octet & 1}): expected {int(want)}",
                last_lldp(t),
            )
    else:
        want_ctr = bool(octet & 0x04) and base.rrcap
        if got.rrctr != want_ctr:
            raise Fail(
                f"RRCTR {int(got.rrctr)} after a station status {octet:#04x} (RRREQ {(octet >> 2) & 1}) with "
                f"RRCAP {int(base.rrcap)}: expected {int(want_ctr)}",
                last_lldp(t),
            )
    return got


def _status_sequence(octets: tuple[int, ...]) -> CaseFn:
    async def run(t: Tester) -> None:
        base, normal = current(t), t.local_evb
        for octet in octets:
            await status_step(t, base, normal, octet)

    return run


@both(
    "reserved-bits",
    "reserved bits in the peer's TLV are ignored",
    "lldp-evb-cdcp.md §2.2 (reserved: transmit 0, ignore on receive)",
    "RR follows the defined bits only; the copy's reserved bits are 0 or ours; the DUT's own reserved "
    "bits and timer values unchanged",
)
async def reserved_bits(t: Tester) -> None:
    base = current(t)
    normal = replace(t.local_evb, rka_reserved=3)
    if t.dut_role == "station":
        seq, mask = (0xF8 | 0x02, 0xF8 | 0x03), 0x07
    else:
        seq, mask = (0xF0 | 0x07, 0xF0 | 0x01), 0x0F
    for octet in seq:
        got = await status_step(t, base, normal, octet, mask=mask)
        own_reserved = got.station_reserved if t.dut_role == "station" else got.bridge_reserved
        if got.rka_reserved or own_reserved:
            raise Fail(f"the DUT sends reserved bits (after ours were set): {describe(got)}", last_lldp(t))


# --------------------------------------------------------------------------- station DUT (tester = bridge)

only(
    "station",
    "rr-granted",
    "reflective relay granted: RRSTAT follows the bridge's RRCTR",
    "lldp-evb-cdcp.md §2.2-§2.4, §2.5 (lldpad evb22 test 4)",
    "bridge status 0x02 → RRSTAT 0; 0x03 → RRSTAT 1; the octet copied, SGID/RRREQ and values unchanged",
)(_status_sequence((0x02, 0x03)))
only(
    "station",
    "rr-not-offered",
    "a bridge TLV without RR: RRSTAT 0, not 3",
    "lldp-evb-cdcp.md §2.4 (lldpad evb22 tests 1, 3)",
    "bridge status 0x00 → RRSTAT 0 (a bridge TLV was received) and the copy 0x00",
)(_status_sequence((0x00,)))
only(
    "station",
    "rr-withdrawn",
    "the bridge withdraws reflective relay",
    "lldp-evb-cdcp.md §2.4 (lldpad evb22 test 5)",
    "bridge status 0x03 → RRSTAT 1; then 0x00 → RRSTAT 0",
)(_status_sequence((0x03, 0x00)))
only(
    "station",
    "rr-ctr-only",
    "RRCTR without RRCAP: RRSTAT follows RRCTR alone",
    "lldp-evb-cdcp.md §2.4 (RRSTAT rule)",
    "bridge status 0x01 → RRSTAT 1, the copy 0x01",
)(_status_sequence((0x02, 0x01)))
only(
    "station",
    "bridge-status-copied",
    "the station copies the bridge's status octet",
    "lldp-evb-cdcp.md §2.3, §2.5",
    "bridge status 0x00, 0x04, 0x06, 0x07, 0x05 each copied exactly, RRSTAT following RRCTR",
)(_status_sequence((0x00, 0x04, 0x06, 0x07, 0x05)))
only(
    "station",
    "bgid",
    "the bridge turns group-ID support on and off",
    "lldp-evb-cdcp.md §2.2, §2.4 (lldpad evb22 tests 20, 22, 23)",
    "bridge status 0x07 copied (BGID 1), then 0x03 copied (BGID 0); the station's SGID unchanged",
)(_status_sequence((0x07, 0x03)))


# --------------------------------------------------------------------------- bridge DUT (tester = station)

only(
    "bridge",
    "rr-requested",
    "the station requests reflective relay: RRCTR = RRREQ AND RRCAP",
    "lldp-evb-cdcp.md §2.4, §2.5 (evb-rr-granted.pcap; lldpad evb22 tests 4, 31, 33)",
    "station status 0x03 → RRCTR 0; 0x07 and 0x05 → RRCTR = the bridge's RRCAP; each octet copied",
)(_status_sequence((0x03, 0x07, 0x05)))
only(
    "bridge",
    "rr-not-requested",
    "no RR request: RRCTR 0",
    "lldp-evb-cdcp.md §2.4 (lldpad evb22 tests 2, 30, 31)",
    "station status 0x00 → RRCTR 0, RRCAP unchanged, the copy 0x00",
)(_status_sequence((0x00,)))
only(
    "bridge",
    "rr-request-withdrawn",
    "the station stops requesting reflective relay",
    "lldp-evb-cdcp.md §2.4 (lldpad evb22 test 6)",
    "station status 0x05 → RRCTR = RRCAP; then 0x01 → RRCTR 0",
)(_status_sequence((0x05, 0x01)))
only(
    "bridge",
    "station-status-copied",
    "the bridge copies the station's status octet",
    "lldp-evb-cdcp.md §2.3, §2.5",
    "station status 0x00, 0x07, 0x05, 0x0d, 0x0c each copied exactly, RRCTR = RRREQ AND RRCAP",
)(_status_sequence((0x00, 0x07, 0x05, 0x0D, 0x0C)))
only(
    "bridge",
    "sgid",
    "the station turns group-ID support on and off",
    "lldp-evb-cdcp.md §2.2, §2.4 (lldpad evb22 tests 21, 24, 33)",
    "station status 0x0d copied (SGID 1), then 0x05 copied (SGID 0); the bridge's BGID unchanged",
)(_status_sequence((0x0D, 0x05)))


@only(
    "bridge",
    "gid-needs-sgid",
    "group IDs (filter format 3) are usable only while the station advertises SGID",
    "lldp-evb-cdcp.md §2.4 (Group IDs usable = BGID AND SGID); vdp.md §5.1, §10.1",
    "with SGID 0 a format-3 Associate is refused (any non-zero status); with SGID 1 one is accepted",
)
async def gid_needs_sgid(t: Tester) -> None:
    """Needs a DUT advertising BGID (skipped otherwise)."""
    base, normal = current(t), t.local_evb
    if not base.bgid:
        raise Skip("the DUT does not advertise BGID: group IDs are never usable")
    await status_step(t, base, normal, copied(t, normal) & ~0x08)
    vsi = t.new_vsi(fmt=FilterFormat.GROUP_VID)
    steps.forget_on_cleanup(t, vsi)
    answer, got = await t.request(vsi, VdpMode.ASSOC)
    if answer.status.code == 0:
        raise Fail("a format-3 Associate was accepted although the station advertises SGID 0", got.data)
    await status_step(t, base, normal, copied(t, normal) | 0x08)
    vsi = t.new_vsi(fmt=FilterFormat.GROUP_VID)
    steps.forget_on_cleanup(t, vsi)
    answer, got = await t.request(vsi, VdpMode.ASSOC)
    if answer.status.code != 0:
        raise Fail(f"a format-3 Associate with BGID and SGID set was refused: {answer.status.describe()}", got.data)
