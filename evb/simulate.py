"""``evb simulate``: our station ↔ our bridge over in-memory links on a virtual clock.

For capacity planning and for testing scale. The run: build ``ports`` station/bridge pairs,
let EVB converge, issue an Associate for every VSI (spread over the ports) at once, run until
every VSI is associated or has failed, then hold for ``duration`` virtual seconds counting
de-associates nobody asked for (spurious: keep-alive timeouts, errors).

The simulation itself is pure (``evb.sim``); this module only adds the wall clock and memory
readings, and the command line.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import textwrap
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from evb.lldp.negotiate import EvbConfig, Operating, Role, local_tlv
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.sim import Network
from evb.vdp.events import VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VsiidFormat

MANAGER = b"simmgr".ljust(16, b"\0")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimParams:
    vsis: int = 1000
    ports: int = 1
    loss: float = 0.0
    delay: float = 0.0001
    jitter: float = 0.0
    r: int = 3
    rte: int = 8
    rwd: int = 20
    rka: int = 20
    duration: float = 0.0
    seed: int = 1
    min_gap: float = 0.0
    max_per_pdu: int = 0


@dataclass(slots=True, kw_only=True)
class SimResult:
    vsis: int
    ports: int
    associated: int
    failed: int
    virtual_seconds_to_negotiate: float
    virtual_seconds_to_associate: float | None
    virtual_seconds_total: float
    spurious_deassociates: int
    retransmissions: int
    station_to_bridge_frames: int
    station_to_bridge_bytes: int
    bridge_to_station_frames: int
    bridge_to_station_bytes: int
    frames_lost: int
    keepalives_sent: int
    bridge_vsis_at_end: int
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    bytes_per_vsi_per_side: float = 0.0


def _vsi(i: int) -> Vsi:
    return Vsi(
        manager_id=MANAGER,
        type_id=1 + i % 8,
        type_version=1,
        vsiid=uuid.UUID(int=(0x5A0F << 112) | (i + 1)).bytes,
        vsiid_format=VsiidFormat.UUID,
        filter_format=FilterFormat.MAC_VID,
        entries=(
            FilterEntry(
                vid=2 + i % 4000, mac=bytes((0x52, 0, (i >> 24) & 0xFF, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))
            ),
        ),
    )


def _index(key: VsiKey) -> int:
    """The ``i`` of ``_vsi(i)`` from the VSI's key (its VSIID holds ``i + 1``)."""
    return int.from_bytes(key[2][2:], "big") - 1


_WAITING, _ASSOCIATED, _FAILED, _SPURIOUS = range(4)


def current_rss() -> int:
    """Resident set size in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


def run(params: SimParams, *, progress: Any = None) -> SimResult:
    """Run one simulation; ``progress(done, total)`` is called now and then."""
    wall0 = time.perf_counter()
    rng = random.Random(params.seed)
    net = Network(rng=rng)

    def evb(role: Role) -> EvbConfig:
        return EvbConfig(role=role, r=params.r, rte=params.rte, rwd=params.rwd, rka=params.rka)

    pairs: list[tuple[StationPort, BridgePort]] = []
    for p in range(params.ports):
        common = {"min_gap": params.min_gap, "max_per_pdu": params.max_per_pdu}
        st = StationPort(
            PortConfig(
                mac=bytes((2, 0, 0, 0xA, p >> 8, p & 0xFF)),
                evb=evb(Role.STATION),
                first_seq=rng.randrange(1, 0x10000),
                **common,  # type: ignore[arg-type]
            ),
            now=0.0,
        )
        br = BridgePort(
            PortConfig(
                mac=bytes((2, 0, 0, 0xB, p >> 8, p & 0xFF)),
                evb=evb(Role.BRIDGE),
                first_seq=rng.randrange(1, 0x10000),
                **common,  # type: ignore[arg-type]
            ),
            now=0.0,
        )
        pairs.append((st, br))
    stations = {id(st) for st, _ in pairs}
    tally = {"assoc": 0, "failed": 0, "spurious": 0}
    # each VSI's fate, counted once: a VSI de-associated after its association (by either side,
    # in any phase: this run never de-associates) is spurious; one that ends before it is failed
    outcome = bytearray(params.vsis)
    last_assoc = [0.0]

    def on_event(port: Port, ev: Event) -> None:
        if not isinstance(ev, VsiAssociated | VsiRejected | VsiDeassociated):
            return
        i = _index(ev.key)
        state = outcome[i]
        is_station = id(port) in stations
        if isinstance(ev, VsiAssociated):
            if is_station and state == _WAITING:
                outcome[i] = _ASSOCIATED
                tally["assoc"] += 1
                last_assoc[0] = net.now
        elif state == _ASSOCIATED:
            if isinstance(ev, VsiDeassociated):
                outcome[i] = _SPURIOUS
                tally["spurious"] += 1
        elif state == _WAITING and is_station:
            outcome[i] = _FAILED
            tally["failed"] += 1

    net.on_event = on_event
    for st, br in pairs:
        net.connect(st, br, delay=params.delay, jitter=params.jitter, loss=params.loss)
    net.run_until(600.0, stop=lambda: all(st.negotiated and br.negotiated for st, br in pairs))
    t_neg = net.now
    gc.collect()
    rss0 = current_rss()
    t0 = net.now
    last_assoc[0] = t0  # no VSIs: 0 s to associate them all
    for i in range(params.vsis):
        st = pairs[i % params.ports][0]
        st.associate(_vsi(i), now=t0)
    for st, _ in pairs:
        net.poke(st)
    o = Operating.from_tlv(local_tlv(evb(Role.STATION), None))
    give_up = t0 + 4 * o.resp_wait_delay + 1.0
    total = params.vsis
    step = max(1, total // 100)
    next_report = [step]

    def settled() -> bool:
        done = tally["assoc"] + tally["failed"]
        if progress is not None and (done >= next_report[0] or done >= total):
            progress(done, total)
            next_report[0] = done + step
        return done >= total

    net.run_until(give_up, stop=settled)
    t_assoc = last_assoc[0] - t0 if tally["assoc"] == total else None
    gc.collect()
    rss1 = current_rss()
    if params.duration > 0:
        hold0 = net.now
        end = hold0 + params.duration
        chunk = max(1.0, params.duration / 100)
        t = hold0
        while t < end:
            t = min(end, t + chunk)
            net.run_until(t)
            if progress is not None:
                progress(int(total * (t - hold0) / params.duration), total, phase="hold")
    gc.collect()
    rss2 = current_rss()
    links = net.links
    result = SimResult(
        vsis=params.vsis,
        ports=params.ports,
        associated=tally["assoc"],
        failed=params.vsis - tally["assoc"],
        virtual_seconds_to_negotiate=round(t_neg, 6),
        virtual_seconds_to_associate=None if t_assoc is None else round(t_assoc, 6),
        virtual_seconds_total=round(net.now, 6),
        spurious_deassociates=tally["spurious"],
        retransmissions=sum(st.ecp_tx.retransmissions + br.ecp_tx.retransmissions for st, br in pairs),
        station_to_bridge_frames=sum(lk.a_to_b.frames for lk in links),
        station_to_bridge_bytes=sum(lk.a_to_b.bytes for lk in links),
        bridge_to_station_frames=sum(lk.b_to_a.frames for lk in links),
        bridge_to_station_bytes=sum(lk.b_to_a.bytes for lk in links),
        frames_lost=sum(lk.a_to_b.lost + lk.b_to_a.lost for lk in links),
        keepalives_sent=sum(st.vdp.counters.keepalives_sent for st, _ in pairs),
        bridge_vsis_at_end=sum(len(br.vdp.vsis) for _, br in pairs),
    )
    result.wall_seconds = round(time.perf_counter() - wall0, 3)
    result.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if params.vsis and rss0:
        result.bytes_per_vsi_per_side = round(max(0, max(rss1, rss2) - rss0) / (2 * params.vsis), 1)
    return result


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run our station against our bridge in memory, on a virtual clock",
        description=textwrap.dedent(
            """\
            Run station <-> bridge pairs of evb's own protocol machines over in-memory links on
            a virtual clock: EVB converges, every VSI is associated at once (spread over the
            ports), then the VSIs are held for --duration virtual seconds with keep-alives.
            Prints the virtual time to associate all VSIs, frames and bytes each way,
            retransmissions, VSIs associated/failed, de-associates nobody asked for during the
            hold, and the wall time and memory the run took.

            The agents' default pacing (3 ms between new ECPDUs, safe toward lldpad's single
            VDP receive buffer) is not needed between two evb machines: --min-gap-ms defaults
            to 0 here."""
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              evb simulate --vsis 5000
              evb simulate --vsis 100000 --ports 16 --duration 600 --json
              evb simulate --vsis 1000 --loss 0.3 --seed 7

            exit status: 0 every VSI associated and no spurious de-associate; 1 otherwise;
            2 bad usage."""
        ),
    )
    p.add_argument("--vsis", type=int, default=1000, help="number of VSIs (default 1000)")
    p.add_argument("--ports", type=int, default=1, help="station/bridge port pairs (default 1)")
    p.add_argument("--loss", type=float, default=0.0, help="frame loss probability each way, 0 <= p < 1 (default 0)")
    p.add_argument("--delay-ms", type=float, default=0.1, help="one-way link delay in ms (default 0.1)")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="extra random delay in ms, reorders frames (default 0)")
    p.add_argument("--rte", type=int, default=8, help="ECP retransmission exponent (default 8: 2.56 ms)")
    p.add_argument("--rwd", type=int, default=20, help="resource-wait-delay exponent (default 20)")
    p.add_argument("--rka", type=int, default=20, help="keep-alive exponent (default 20: 10.49 s)")
    p.add_argument("--retries", type=int, default=3, help="ECP retries R (default 3)")
    p.add_argument("--duration", type=float, default=0.0, help="virtual seconds to hold the VSIs (default 0)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--min-gap-ms", type=float, default=0.0, help="pacing between new ECPDUs in ms (default 0)")
    p.add_argument("--max-per-pdu", type=int, default=0, help="VSI TLVs per ECPDU, 0 = as many as fit (default)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    problems = []
    if args.vsis < 0 or args.ports < 1:
        problems.append("--vsis must be ≥ 0 and --ports ≥ 1")
    if not 0.0 <= args.loss < 1.0:
        problems.append("--loss must be in [0, 1)")
    if not 0 <= args.retries <= 7:
        problems.append("--retries must be 0..7")
    for name in ("rte", "rwd", "rka"):
        if not 0 <= getattr(args, name) <= 31:
            problems.append(f"--{name} must be 0..31")
    if args.delay_ms < 0 or args.jitter_ms < 0 or args.duration < 0 or args.min_gap_ms < 0:
        problems.append("times must not be negative")
    if problems:
        for text in problems:
            print(f"evb simulate: {text}", file=sys.stderr)
        return 2
    params = SimParams(
        vsis=args.vsis,
        ports=args.ports,
        loss=args.loss,
        delay=args.delay_ms / 1000,
        jitter=args.jitter_ms / 1000,
        r=args.retries,
        rte=args.rte,
        rwd=args.rwd,
        rka=args.rka,
        duration=args.duration,
        seed=args.seed,
        min_gap=args.min_gap_ms / 1000,
        max_per_pdu=args.max_per_pdu,
    )
    from evb.progress import Progress

    bars: dict[str, Progress] = {}

    def progress(done: int, total: int, phase: str = "associating") -> None:
        bar = bars.get(phase)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[phase] = Progress(phase, total=max(1, total))
        bar.update(done)

    result = run(params, progress=progress)
    for bar in bars.values():
        bar.close()
    ok = result.associated == result.vsis and result.spurious_deassociates == 0
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        _print(result, params)
    return 0 if ok else 1


def _print(r: SimResult, p: SimParams) -> None:
    assoc = "-" if r.virtual_seconds_to_associate is None else f"{r.virtual_seconds_to_associate:.6f} s"
    rows = [
        ("VSIs / ports", f"{r.vsis} / {r.ports}"),
        ("loss each way / delay", f"{p.loss:.0%} / {p.delay * 1000:g} ms"),
        ("EVB converged at (virtual)", f"{r.virtual_seconds_to_negotiate:.6f} s"),
        ("time to associate all (virtual)", assoc),
        ("associated / failed", f"{r.associated} / {r.failed}"),
        ("hold (virtual)", f"{p.duration:g} s, {r.keepalives_sent} keep-alives"),
        ("spurious de-associates", str(r.spurious_deassociates)),
        ("station -> bridge", f"{r.station_to_bridge_frames} frames, {r.station_to_bridge_bytes} bytes"),
        ("bridge -> station", f"{r.bridge_to_station_frames} frames, {r.bridge_to_station_bytes} bytes"),
        ("frames lost / ECP retransmissions", f"{r.frames_lost} / {r.retransmissions}"),
        ("wall time", f"{r.wall_seconds:.2f} s"),
        ("peak RSS", f"{r.peak_rss_mb:.1f} MB"),
        ("memory per VSI per side", f"{r.bytes_per_vsi_per_side:.0f} bytes"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
