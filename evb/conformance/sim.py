"""Run the suite against ``evb``'s own sans-IO station or bridge port on a virtual clock.

``evb conformance run --sim station|bridge`` and the unit tests use it: the DUT is a
``StationPort``/``BridgePort`` (the same machines ``evb station run``/``evb bridge run`` drive),
joined to the tester by ``links.SimDut``; the hook performs the actions directly on the port.
Faults (``--sim-fault``) mutate the DUT so that the suite can show it catches them (self-test).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from evb.conformance import vclock
from evb.conformance.hooks import HookUnsupported
from evb.conformance.links import SimDut
from evb.conformance.model import Case
from evb.conformance.runner import Progress, Report, run_cases
from evb.conformance.tester import Tester, TesterConfig
from evb.lldp.negotiate import EvbConfig, Role
from evb.port import BridgePort, Port, PortConfig, StationPort
from evb.vdp.bridge import accept_all_assigning
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode, manager_id_from_text

DUT_MAC = bytes.fromhex("02dd00000001")
TESTER_MAC = bytes.fromhex("02cc00000001")
MODES = {
    "associate": VdpMode.ASSOC,
    "preassociate": VdpMode.PREASSOC,
    "preassociate-rr": VdpMode.PREASSOC_RR,
    "deassociate": VdpMode.DEASSOC,
}
WILDCARD_VID = 100  #: our bridge DUT's [vdp] wildcard_vid (interop/conformance.py uses the same)
FAULTS = ("none", "no-keepalive", "wrong-status", "no-ecp-ack", "no-evb-copy")


def parse_filter(text: str, fmt: int) -> FilterEntry:
    """vdptool's ``VID[-MAC[-GROUP]]`` (``VID--GROUP`` for format 3); VID holds PS/PCP in its top nibble."""
    parts = text.split("-")
    word = int(parts[0], 0)
    mac = bytes.fromhex(parts[1].replace(":", "")) if len(parts) > 1 and parts[1] else None
    group = int(parts[2], 0) if len(parts) > 2 else None
    return FilterEntry(vid=word & 0xFFF, pcp=(word >> 12) & 7, ps=bool(word & 0x8000), mac=mac, group_id=group)


def vsi_from_params(params: dict[str, Any]) -> tuple[Vsi, str]:
    v = params["vsi"]
    mgr = bytes.fromhex(v["manager_hex"]) if "manager_hex" in v else manager_id_from_text(v["manager"])
    fmt = FilterFormat(v["filter_format"])
    entries = tuple(parse_filter(f, fmt) for f in v["filters"])
    vsi = Vsi(
        manager_id=mgr,
        type_id=v["type_id"],
        type_version=v["type_version"],
        vsiid=uuid.UUID(v["uuid"]).bytes,
        filter_format=fmt,
        entries=entries,
    )
    return vsi, v.get("hints", "none")


class SimHook:
    """Performs hook actions on a simulated station DUT."""

    def __init__(self, dut: SimDut) -> None:
        self.dut = dut

    async def __call__(self, action: str, params: dict[str, Any]) -> None:
        port = self.dut.port
        if not isinstance(port, StationPort) or action not in MODES:
            raise HookUnsupported(f"the simulated {type(port).__name__} cannot {action}")
        vsi, hints = vsi_from_params(params)
        mode = MODES[action]
        self.dut.command(lambda now: port.request(vsi, mode, now=now, hints=hints))


def make_port(role: str, *, now: float, fault: str = "none", evb: dict[str, Any] | None = None) -> Port:
    """Our own port as a DUT (small timers: R 3, RTE 8, RWD 12, RKA 12 unless ``evb`` says)."""
    values: dict[str, Any] = {"r": 3, "rte": 8, "rwd": 12, "rka": 12, "gid": True} | (evb or {})
    r = Role.STATION if role == "station" else Role.BRIDGE
    config = PortConfig(mac=DUT_MAC, evb=EvbConfig(role=r, **values), first_seq=1, faults=frozenset({fault}) - {"none"})
    if r is Role.STATION:
        return StationPort(config, now=now)
    # as `evb bridge run` without a policy file, with [vdp] wildcard_vid = 100
    return BridgePort(config, now=now, policy=accept_all_assigning(WILDCARD_VID))


async def run_simulated(
    role: str,
    cases: list[Case],
    *,
    fault: str = "none",
    config: TesterConfig | None = None,
    progress: Progress | None = None,
    setup: Callable[[SimDut], None] | None = None,
) -> tuple[Report, Tester]:
    import asyncio

    loop = asyncio.get_running_loop()
    dut = SimDut(make_port(role, now=loop.time(), fault=fault))
    if setup:
        setup(dut)
    hook = SimHook(dut) if role == "station" else None
    tester = Tester(dut, dut_role=role, mac=TESTER_MAC, hook=hook, config=config or TesterConfig())
    report = Report(dut_role=role, target=f"simulated evb {role}" + ("" if fault == "none" else f", fault {fault}"))
    await run_cases(tester, cases, report=report, progress=progress)
    return report, tester


def run_simulated_sync(role: str, cases: list[Case], **kw: Any) -> tuple[Report, Tester]:
    """``run_simulated`` on a virtual clock (returns in a fraction of a second)."""
    return vclock.run(run_simulated(role, cases, **kw))
