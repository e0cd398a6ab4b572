"""Steps shared by the case modules: bring a VSI up, make the DUT send, check it is still alive.

Each works for either DUT role where that makes sense: against a bridge DUT the tester is the
station and asks for itself; against a station DUT it needs the hook to make the DUT ask, and
then answers as the bridge. Every step that leaves state behind registers its clean-up
(``tester.cleanups``), run after the case whatever its verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from evb.conformance.model import Fail
from evb.conformance.tester import Tester, VdpIn, VsiSpec
from evb.vdp.wire import VdpMode, VdpPdu, VdpStatus, VsiTlv


def forget_on_cleanup(t: Tester, vsi: VsiSpec) -> None:
    """At the end of the case, end ``vsi`` on the DUT: a bridge DUT gets our De-Associate, a
    station DUT our unsolicited De-Associate (it drops the VSI, vdp.md §9.2)."""

    async def cleanup() -> None:
        if t.dut_role == "bridge":
            start = len(t.vdp_in)
            await t.send_ulpdu(vsi.pdu(VdpMode.DEASSOC))
            await t.until(
                lambda: any(
                    vsi.matches(x, i.manager_id) and x.status.response and x.mode == VdpMode.DEASSOC
                    for i in t.vdp_in[start:]
                    for x in i.vsis
                ),
                t.op.resp_wait_delay,
            )
        else:
            await t.deassociate(vsi)
            await t.sleep(0.01)

    t.cleanups.append(cleanup)


async def bridge_associates(t: Tester, vsi: VsiSpec | None = None, mode: VdpMode = VdpMode.ASSOC) -> VsiTlv:
    """Bridge DUT: request ``mode`` for ``vsi`` (a new one by default), expect success; the answer."""
    vsi = vsi or t.new_vsi()
    forget_on_cleanup(t, vsi)
    answer, got = await t.request(vsi, mode)
    if answer.status.code != 0:
        raise Fail(f"a valid {mode.label} was refused: status {answer.status.describe()}", got.data)
    return answer


async def station_asks(
    t: Tester, vsi: VsiSpec | None = None, action: str = "associate", mode: VdpMode = VdpMode.ASSOC
) -> tuple[VsiSpec, VdpIn]:
    """Station DUT: have the hook ``action`` a VSI; the DUT's request (not answered yet)."""
    vsi = vsi or t.new_vsi()
    task = t.act_soon(action, vsi)
    forget_on_cleanup(t, vsi)
    return vsi, await hook_then_vdp(t, task, t.about(vsi, mode), f"{mode.label} request after the hook")


async def hook_then_vdp(
    t: Tester, task: asyncio.Task[None], match: Callable[[VdpIn], bool], what: str, within: float = 5.0
) -> VdpIn:
    """The DUT's VDP that ``match``es, once the hook ``task`` made it act; the hook's own error
    (a skip, a failure) if it fails first."""

    def check() -> bool:
        return bool(t._find(match)) or (task.done() and task.exception() is not None)

    await t.until(check, within)
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return await t.expect_vdp(match, within=0.0, what=what)


async def make_dut_send(t: Tester) -> VsiSpec:
    """Make the DUT send one new ECPDU with VDP in it (its answer, or its request)."""
    if t.dut_role == "bridge":
        vsi = t.new_vsi()
        forget_on_cleanup(t, vsi)
        await t.send_ulpdu(vsi.pdu(VdpMode.ASSOC))
        return vsi
    vsi = t.new_vsi()
    task = t.act_soon("associate", vsi)
    forget_on_cleanup(t, vsi)
    await hook_then_vdp(t, task, t.about(vsi), "request after the hook")
    return vsi


def probe_pdu(t: Tester) -> tuple[VdpPdu, VsiSpec]:
    """A VDP payload the DUT's ECP must acknowledge and whose VDP effect is visible (bridge: an
    Associate it answers) or harmless (station: an unsolicited De-Associate of an unknown VSI)."""
    vsi = t.new_vsi()
    if t.dut_role == "bridge":
        forget_on_cleanup(t, vsi)
        return vsi.pdu(VdpMode.ASSOC), vsi
    return vsi.pdu(VdpMode.DEASSOC, status=VdpStatus()), vsi


async def acked(t: Tester, seq: int, *, since: int, within: float | None = None) -> tuple[float, bytes] | None:
    """The DUT's acknowledgement of ``seq`` arriving after ``acks_in[since]`` within ``within``."""
    within = within if within is not None else max(0.5, 4 * t.op.ack_timeout)
    got = await t.until(lambda: next(((tt, d) for tt, s, d in t.acks_in[since:] if s == seq), None), within)
    return got


async def still_alive(t: Tester) -> None:
    """After abuse: the DUT still acknowledges a valid ECPDU and (bridge) answers a valid request."""
    if t.dut_role == "bridge":
        await bridge_associates(t)
        return
    pdu, _ = probe_pdu(t)
    since = len(t.acks_in)
    seq = await t.send_ulpdu(pdu, reliable=False)
    if await acked(t, seq, since=since) is None:
        raise Fail("the DUT stopped acknowledging valid ECPDUs", t.last_in())
