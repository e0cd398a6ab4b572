"""Scale, loss and the in-memory network (``evb.sim``): our station against our bridge.

Everything runs on the network's virtual clock with a seeded ``random.Random``: no test reads a
wall clock or sleeps, and every number asserted here is reproducible. Timer values used below
(vdp.md §8, ``Operating``), with R = 3 and RTE = 8:

* ECP ack timeout = 10 µs × 2^RTE = 2.56 ms; a ULPDU is abandoned after 1 + R = 4 sends;
* reinitKeepAlive = 10 µs × 2^RKA (RKA = 14: 163.84 ms);
* toutKeepAlive = 1.5 × ((2R + 1) × 10 × 2^RTE + 10 × 2^RKA) µs (RKA = 14: 272.64 ms).

The agents' 3 ms pacing (``min_gap``, a guard for lldpad's single VDP receive buffer) is not
needed between two evb machines and is 0 here, as in ``evb simulate``.
"""

from __future__ import annotations

import collections
import enum
import gc
import itertools
import math
import random
import sys
import tracemalloc
import types
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import pytest

from evb.events import FrameDropped
from evb.lldp.negotiate import EvbConfig, Operating, Role, local_tlv
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.sim import Link, LinkStats, Network
from evb.simulate import SimParams, run
from evb.vdp.bridge import BrState
from evb.vdp.events import VdpViolation, VsiAssociated, VsiDeassociated, VsiKey, VsiRejected
from evb.vdp.station import StState, Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode, VsiidFormat
from tests.helpers import BRIDGE_MAC, STATION_MAC

MANAGER = b"scalemgr".ljust(16, b"\0")
SEEDS = (1, 2, 3, 4, 5)


def vsi(i: int) -> Vsi:
    """VSI number ``i``: a UUID VSIID, one MAC/VID filter entry with its own MAC."""
    return Vsi(
        manager_id=MANAGER,
        type_id=1 + i % 8,
        type_version=1,
        vsiid=uuid.UUID(int=(0x5A0F << 112) | (i + 1)).bytes,
        vsiid_format=VsiidFormat.UUID,
        filter_format=FilterFormat.MAC_VID,
        entries=(FilterEntry(vid=2 + i % 4000, mac=bytes((0x52, 0, 0, 0, i >> 8 & 0xFF, i & 0xFF))),),
    )


def operating(rka: int) -> Operating:
    return Operating.from_tlv(local_tlv(EvbConfig(role=Role.STATION, rka=rka), None))


class ArrivalLog(StationPort):
    """A station that can also keep every frame it receives, in arrival order (to see reordering)."""

    def __init__(self, config: PortConfig, *, now: float, record: bool = False) -> None:
        self.record = record
        self.arrivals: list[bytes] = []
        super().__init__(config, now=now)

    def receive_frame(self, data: bytes, now: float) -> None:
        if self.record:
            self.arrivals.append(data)
        super().receive_frame(data, now)


@dataclass
class Pair:
    """One station port and one bridge port on a link, and everything they reported."""

    net: Network
    st: ArrivalLog
    br: BridgePort
    link: Link
    keep_events: bool = True
    events: list[tuple[float, str, Event]] = field(default_factory=list)
    associated: collections.Counter[str] = field(default_factory=collections.Counter)
    t0: float = 0.0  #: when the Associates were given
    t_last_assoc: float = 0.0  #: the last VsiAssociated on the station
    #: frames the bridge sent that survived the loss (``id`` → send order), and the frames themselves
    bridge_sent: dict[int, int] = field(default_factory=dict)
    _frames: list[bytes] = field(default_factory=list)

    def wire(self, port: Port, data: bytes) -> bool:
        """The link's per-frame hook: note the bridge's frames, drop nothing."""
        if port is self.br:
            self.bridge_sent[id(data)] = len(self._frames)
            self._frames.append(data)
        return True

    def on_event(self, port: Port, ev: Event) -> None:
        side = "station" if port is self.st else "bridge"
        if isinstance(ev, VsiAssociated):
            self.associated[side] += 1
            if side == "station":
                self.t_last_assoc = self.net.now
        if self.keep_events:
            self.events.append((self.net.now, side, ev))

    def of(self, side: str, kind: type[Any] | tuple[type[Any], ...]) -> list[Any]:
        return [ev for _, s, ev in self.events if s == side and isinstance(ev, kind)]

    def station_view(self) -> dict[VsiKey, tuple[VdpMode | None, tuple[FilterEntry, ...]]]:
        return {k: (r.confirmed, r.entries) for k, r in self.st.vdp.vsis.items()}

    def bridge_view(self) -> dict[VsiKey, tuple[VdpMode | None, tuple[FilterEntry, ...]]]:
        return {k: (r.mode, r.answer.entries if r.answer else ()) for k, r in self.br.vdp.vsis.items()}


def pair(
    seed: int,
    *,
    loss: float = 0.0,
    jitter: float = 0.0,
    delay: float = 0.0001,
    rka: int = 20,
    keep_events: bool = True,
    record_frames: bool = False,
) -> Pair:
    """Station and bridge joined by a link, EVB negotiated (both sides); ``record_frames``: note
    the order in which the bridge's frames are sent and arrive."""
    net = Network(rng=random.Random(seed))
    st = ArrivalLog(
        PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION, rka=rka), min_gap=0.0, first_seq=1),
        now=0.0,
        record=record_frames,
    )
    br = BridgePort(
        PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE, rka=rka), min_gap=0.0, first_seq=1), now=0.0
    )
    p = Pair(net=net, st=st, br=br, link=None, keep_events=keep_events)  # type: ignore[arg-type]
    net.on_event = p.on_event
    p.link = net.connect(st, br, delay=delay, jitter=jitter, loss=loss)
    if record_frames:
        p.link.drop = p.wire
    net.run_until(600.0, stop=lambda: st.negotiated and br.negotiated)
    assert st.negotiated and br.negotiated
    return p


def associate(p: Pair, n: int, *, limit: float = 60.0) -> None:
    """Give ``n`` Associates at once and run until the station has confirmed all of them."""
    p.t0 = p.net.now
    for i in range(n):
        p.st.associate(vsi(i), now=p.t0)
    p.net.poke(p.st)
    p.net.run_until(p.t0 + limit, stop=lambda: p.associated["station"] >= n)


def check_all_associated(p: Pair, n: int) -> None:
    """Every VSI associated exactly once on each side, nothing failed, both sides agree."""
    keys = {vsi(i).key for i in range(n)}
    st_assoc = collections.Counter(ev.key for ev in p.of("station", VsiAssociated))
    assert len(st_assoc) == n and set(st_assoc) == keys
    assert max(st_assoc.values()) == 1, "a VSI was reported associated twice"
    br_assoc = collections.Counter(ev.key for ev in p.of("bridge", VsiAssociated))
    assert set(br_assoc) == keys and max(br_assoc.values()) == 1
    for side in ("station", "bridge"):
        assert p.of(side, (VsiRejected, VsiDeassociated, VdpViolation, FrameDropped)) == []
    assert all(ev.mode is VdpMode.ASSOC for ev in p.of("station", VsiAssociated))
    # the bridge's view (keys, modes, granted entries) is the station's (keys, confirmed modes, entries)
    assert p.station_view() == p.bridge_view()
    assert set(p.st.vdp.vsis) == keys
    assert {r.confirmed for r in p.st.vdp.vsis.values()} == {VdpMode.ASSOC}
    assert all(r.entries == vsi(i).entries for i, r in enumerate(p.st.vdp.vsis.values()))
    assert {r.state for r in p.br.vdp.vsis.values()} == {BrState.ESTABLISHED}


# --------------------------------------------------------------------------- loss


@pytest.mark.parametrize("seed", SEEDS)
def test_1000_vsis_all_associate_with_30_percent_loss(seed: int) -> None:
    p = pair(seed, loss=0.3)
    associate(p, 1000)
    assert p.associated["station"] == 1000
    check_all_associated(p, 1000)
    st, br, link = p.st, p.br, p.link
    # the loss was real, both ways, and ECP recovered by retransmitting
    for stats in (link.a_to_b, link.b_to_a):
        assert stats.lost > 0 and abs(stats.lost / stats.frames - 0.3) < 0.15
    assert st.ecp_tx.retransmissions > 0 and br.ecp_tx.retransmissions > 0
    # one answer taken per VSI; a request is sent again only when ECP gave up on its payload
    # (and not at all if the answer to the first copy arrives while it waits in the queue)
    assert st.vdp.counters.answers == 1000
    assert 1000 <= st.vdp.counters.requests_sent <= 1000 + st.vdp.counters.resent_after_abandon
    assert {r.state for r in st.vdp.vsis.values()} == {StState.ESTABLISHED}
    # respWaitDelay (15.76 s) never came into play: everything was answered within a second
    assert p.t_last_assoc - p.t0 < 1.0


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_1000_vsis_all_associate_with_loss_and_reordering(seed: int) -> None:
    # jitter 2 ms against a 0.2 ms round trip and a 2.56 ms ack timeout: frames overtake each other,
    # and acknowledgements race retransmissions
    p = pair(seed, loss=0.3, jitter=0.002, record_frames=True)
    associate(p, 1000)
    check_all_associated(p, 1000)
    # frames from the bridge reached the station out of the order they were sent in (the
    # station keeps what it received, so no id() of a noted frame is reused)
    order = [p.bridge_sent[id(data)] for data in p.st.arrivals if id(data) in p.bridge_sent]
    assert len(order) > 30 and len(set(order)) == len(order)
    assert sum(1 for a, b in itertools.pairwise(order) if b < a) > 0


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_hold_keepalives_under_loss_and_jitter_no_spurious_deassociate(seed: int) -> None:
    # RKA = 14: refresh every 163.84 ms, the bridge times a VSI out after 272.64 ms without one
    o = operating(14)
    assert (o.reinit_keepalive, o.keepalive_timeout) == (0.16384, 0.27264)
    p = pair(seed, loss=0.3, jitter=0.001, rka=14)
    associate(p, 1000)
    check_all_associated(p, 1000)
    hold_from = p.net.now
    periods = 6
    p.net.run_until(hold_from + periods * o.reinit_keepalive)
    assert p.net.now == hold_from + periods * o.reinit_keepalive
    for side in ("station", "bridge"):
        assert p.of(side, (VsiDeassociated, VsiRejected, VdpViolation)) == []
    assert p.br.vdp.counters.keepalive_timeouts == 0
    # the VSIs were really refreshed all along: about one keep-alive per VSI per period
    assert p.st.vdp.counters.keepalives_sent >= (periods - 1) * 1000
    assert p.br.vdp.counters.refreshes >= (periods - 1) * 1000
    assert len(p.br.vdp.vsis) == 1000 and p.station_view() == p.bridge_view()
    assert collections.Counter(ev.key for ev in p.of("station", VsiAssociated)).most_common(1)[0][1] == 1


def test_hold_without_loss_refreshes_every_vsi_each_period() -> None:
    o = operating(14)
    p = pair(1, rka=14)
    associate(p, 1000)
    hold_from = p.net.now
    p.net.run_until(hold_from + 6 * o.reinit_keepalive)
    assert p.of("station", VsiDeassociated) == [] and p.of("bridge", VsiDeassociated) == []
    # no loss: one keep-alive per VSI per refresh, no ECP retransmission
    assert p.st.ecp_tx.retransmissions == 0 and p.br.ecp_tx.retransmissions == 0
    assert 5 * 1000 <= p.st.vdp.counters.keepalives_sent <= 7 * 1000
    # every keep-alive sent reached the bridge, but those of the ECPDU in flight at the end (≤ 42)
    assert 0 <= p.st.vdp.counters.keepalives_sent - p.br.vdp.counters.refreshes <= 42
    assert p.station_view() == p.bridge_view()


def test_unacknowledged_request_ends_after_resp_wait_delay() -> None:
    # A bridge that never hears the station's ECPDUs. ECP gives up on each after 1 + R = 4 sends
    # (4 × 2.56 ms); the station queues the request again, but its respWaitDelay keeps running
    # from the first hand-over to ECP (vdp.md §8): 1.5 × ((2·3 + 1)·10·2^8 + 10·2^20) µs
    # = 15.75552 s. Then the VSI ends (``timeout``) and the station stops sending.
    p = pair(1)
    sent: list[float] = []

    def deaf_bridge(port: Port, data: bytes) -> bool:
        if port is p.st and data[12:14] == b"\x89\x40":  # ECP from the station: lost
            sent.append(p.net.now)
            return False
        return True

    p.link.drop = deaf_bridge
    rwd = operating(20).resp_wait_delay
    assert rwd == 15.75552
    associate(p, 1, limit=100.0)
    ended = p.of("station", VsiDeassociated)
    assert [ev.reason for ev in ended] == ["timeout"] and p.st.vdp.vsis == {}
    t_end = next(t for t, _, ev in p.events if isinstance(ev, VsiDeassociated))
    assert t_end == pytest.approx(p.t0 + rwd, abs=1e-9)
    assert p.of("station", VsiAssociated) == [] and p.of("bridge", VsiAssociated) == []
    # queued again RESEND_LIMIT (3) times after ECP gave up, each time 1 + R = 4 sends 2.56 ms
    # apart, then silence until respWaitDelay ends the VSI: a silent peer is not flooded
    assert sent[0] == p.t0 and len(sent) == (1 + 3) * (1 + 3)
    assert [round((t - p.t0) / 0.00256, 6) for t in sent] == [float(i) for i in range(16)]
    assert p.st.vdp.counters.resent_after_abandon == 3


# --------------------------------------------------------------------------- scale


def test_5000_vsis_on_one_port_associate_within_50_ms_virtual() -> None:
    p = pair(1, keep_events=False)
    associate(p, 5000)
    assert p.associated == {"station": 5000, "bridge": 5000}
    elapsed = p.t_last_assoc - p.t0
    # packed ECPDUs: a VSI TLV is 27 + 8 octets, 1493 - 18 octets of room after the Manager ID
    # TLV: 42 per ECPDU. The first Associate leaves at once, alone; the other 4,999 queue up
    # behind it: 1 + 120 ECPDUs, one in flight at a time, each acknowledged after a round trip
    # of 2 × 0.1 ms: at least 121 × 0.2 ms = 24.2 ms
    per_pdu = (1493 - 18) // 35
    assert per_pdu == 42
    assert p.st.vdp.counters.pdus_built == 1 + math.ceil(4999 / per_pdu) == 121
    assert p.st.vdp.counters.requests_sent == 5000
    assert 121 * 2 * 0.0001 - 1e-9 <= elapsed < 0.05
    assert len(p.br.vdp.vsis) == 5000 and p.station_view() == p.bridge_view()


# --------------------------------------------------------------------------- determinism


def trace(seed: int) -> tuple[list[tuple[float, str, str]], LinkStats, LinkStats]:
    p = pair(seed, loss=0.3, jitter=0.001)
    associate(p, 200)
    p.net.run_until(p.net.now + 1.0)
    return [(t, s, repr(ev)) for t, s, ev in p.events], p.link.a_to_b, p.link.b_to_a


def test_same_seed_same_run_different_seed_different_losses() -> None:
    a, b, c = trace(11), trace(11), trace(12)
    assert a == b
    assert len(a[0]) > 200
    assert (a[1].lost, a[2].lost) != (c[1].lost, c[2].lost)


def _deterministic(result: Any) -> dict[str, Any]:
    d = asdict(result)
    for wall_or_memory in ("wall_seconds", "peak_rss_mb", "bytes_per_vsi_per_side"):
        del d[wall_or_memory]
    return d


def test_simulate_run_is_reproducible() -> None:
    params = SimParams(vsis=300, loss=0.3, jitter=0.001, seed=7)
    first, again = run(params), run(params)
    assert _deterministic(first) == _deterministic(again)
    assert first.associated == 300 and first.failed == 0 and first.frames_lost > 0
    other = run(SimParams(vsis=300, loss=0.3, jitter=0.001, seed=8))
    assert other.associated == 300
    assert other.frames_lost != first.frames_lost


# --------------------------------------------------------------------------- evb.simulate.run


def test_run_counts_each_spurious_deassociate_once() -> None:
    # one VSI TLV per ECPDU and 20 ms between ECPDUs: 50 refreshes/s for 20 VSIs that each need
    # one every ~0.17 s (RKA 14): refreshes fall behind, the bridge times VSIs out
    # (toutKeepAlive 272.64 ms) and tells the station. Both sides report each VSI's end; the
    # bridge may re-admit a late keep-alive and time it out again. It is one VSI lost each time.
    r = run(SimParams(vsis=20, rka=14, max_per_pdu=1, min_gap=0.02, duration=2.0))
    assert r.associated == 20 and r.failed == 0
    assert r.bridge_vsis_at_end == 0
    assert r.spurious_deassociates == 20


def test_run_counts_failures_and_holds_after_association() -> None:
    ok = run(SimParams(vsis=50, rka=14, duration=1.0))
    assert (ok.associated, ok.failed, ok.spurious_deassociates) == (50, 0, 0)
    assert ok.virtual_seconds_to_associate is not None
    # the hold starts once all are associated and lasts ``duration``
    expected_end = ok.virtual_seconds_to_negotiate + ok.virtual_seconds_to_associate + 1.0
    assert ok.virtual_seconds_total == pytest.approx(expected_end, abs=2e-6)
    assert ok.keepalives_sent >= 5 * 50
    # 99 % loss: the VSIs' requests go unanswered and each ends after respWaitDelay
    bad = run(SimParams(vsis=3, loss=0.99, seed=1))
    assert bad.associated == 0 and bad.failed == 3 and bad.spurious_deassociates == 0
    assert bad.virtual_seconds_to_associate is None


def test_run_reports_progress_up_to_the_total() -> None:
    calls: list[tuple[int, int, str]] = []

    def progress(done: int, total: int, phase: str = "associating") -> None:
        calls.append((done, total, phase))

    run(SimParams(vsis=1000, rka=14, duration=0.5), progress=progress)
    assoc = [d for d, t, ph in calls if ph == "associating"]
    hold = [d for d, t, ph in calls if ph == "hold"]
    assert assoc == sorted(assoc) and assoc[-1] == 1000 and len(assoc) >= 10
    assert hold == sorted(hold) and hold[-1] == 1000
    assert {t for _, t, _ in calls} == {1000}


# --------------------------------------------------------------------------- memory per VSI

_NOT_HELD = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.CodeType)


def held(root: object) -> tuple[int, collections.Counter[str]]:
    """Bytes of every object reachable from ``root`` (classes, functions, enum members excluded)."""
    seen: set[int] = set()
    total = 0
    by_type: collections.Counter[str] = collections.Counter()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (bool, enum.Enum, *_NOT_HELD)):
            continue
        seen.add(id(obj))
        size = sys.getsizeof(obj)
        total += size
        by_type[type(obj).__name__] += size
        stack.extend(gc.get_referents(obj))
    return total, by_type


T = TypeVar("T")
MEMORY_STAGES = ("associated", "after 3 keep-alive periods")


def memory_run(n: int, reading: Callable[[Pair], T]) -> list[T]:
    """Associate ``n`` VSIs (RKA 14), then hold them 3 keep-alive periods; ``reading(pair)`` after each.

    No loss and no randomness: two runs build the same state. ``reading`` is also called once
    before the Associates (the baseline); the Vsi descriptions are made after it and only the
    station keeps them."""
    o = operating(14)
    p = pair(1, rka=14, keep_events=False)
    gc.collect()
    readings = [reading(p)]
    associate(p, n)
    assert p.associated["station"] == n
    for stage in MEMORY_STAGES:
        if stage != "associated":
            p.net.run_until(p.net.now + 3 * o.reinit_keepalive)
            assert p.st.vdp.counters.keepalives_sent >= 2 * n
        gc.collect()
        readings.append(reading(p))
    return readings


def test_memory_per_vsi_per_side_is_under_1000_bytes() -> None:
    n = 2000
    # 1. tracemalloc: every byte allocated since before the Associates and still held (both
    # sides, the network, the VSI descriptions), per VSI and side
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        traced_raw = memory_run(n, lambda _: tracemalloc.get_traced_memory()[0])
    finally:
        if not was_tracing:
            tracemalloc.stop()
    base = traced_raw[0]
    traced = [(t - base) / (2 * n) for t in traced_raw[1:]]
    # 2. the same run again, untraced: the bytes reachable from each side's VDP machine, by type
    walked = memory_run(n, lambda p: (held(p.st.vdp), held(p.br.vdp)))
    (st0, st0_types), (br0, br0_types) = walked[0]
    for stage, per_side, ((st, st_types), (br, br_types)) in zip(MEMORY_STAGES, traced, walked[1:], strict=True):
        station, bridge = (st - st0) / n, (br - br0) / n
        breakdown = {
            "station": {k: round((v - st0_types[k]) / n) for k, v in st_types.most_common() if v > st0_types[k]},
            "bridge": {k: round((v - br0_types[k]) / n) for k, v in br_types.most_common() if v > br0_types[k]},
        }
        msg = f"{stage}: {per_side:.0f} B/VSI/side traced, station {station:.0f}, bridge {bridge:.0f}; {breakdown}"
        assert per_side <= 1000, msg
        assert station <= 1000 and bridge <= 1000, msg
        # the two sides' walks account for what tracemalloc saw (nothing big held elsewhere)
        assert abs((station + bridge) / 2 - per_side) <= 0.1 * per_side, msg


# --------------------------------------------------------------------------- the network itself


class Probe:
    """The least a port must do for the network: send what it is given, record what it gets,
    ask for the deadlines in ``timers`` one after another and report each as an event."""

    def __init__(self, timers: Iterable[float] = ()) -> None:
        self.outbox: list[bytes] = []
        self.received: list[tuple[float, bytes]] = []
        self.fired: list[float] = []
        self.timers = list(timers)
        self._events: collections.deque[tuple[str, float]] = collections.deque()

    def send(self, *frames: bytes) -> None:
        self.outbox.extend(frames)

    def receive_frame(self, data: bytes, now: float) -> None:
        self.received.append((now, data))

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        self.timers.pop(0)
        self._events.append(("timer", now))

    def frames_to_send(self) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    def next_event(self) -> tuple[str, float] | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        return self.timers[0] if self.timers else None


def probes(
    seed: int = 1, *, timers: Iterable[float] = (), **link: Any
) -> tuple[Network, Probe, Probe, Link, list[tuple[Probe, Any]]]:
    net = Network(rng=random.Random(seed))
    events: list[tuple[Probe, Any]] = []
    net.on_event = lambda port, ev: events.append((port, ev))  # type: ignore[arg-type]
    a, b = Probe(timers), Probe()
    lk = net.connect(a, b, **link)  # type: ignore[arg-type]
    return net, a, b, lk, events


def test_network_delay_delivers_in_order_and_counts() -> None:
    net, a, b, link, _ = probes(delay=0.005)
    a.send(b"one", b"two!", b"three")
    net.poke(a)  # type: ignore[arg-type]
    net.run_until(1.0)
    assert b.received == [(0.005, b"one"), (0.005, b"two!"), (0.005, b"three")]
    assert a.received == []
    assert link.a_to_b == LinkStats(frames=3, bytes=12, lost=0)
    assert link.b_to_a == LinkStats()
    b.send(b"back")
    net.poke(b)  # type: ignore[arg-type]
    net.run_until(2.0)
    assert a.received == [(1.005, b"back")]
    assert link.b_to_a == LinkStats(frames=1, bytes=4, lost=0)


def test_network_jitter_spreads_and_reorders() -> None:
    net, a, b, link, _ = probes(delay=0.001, jitter=0.002)
    frames = [i.to_bytes(2, "big") for i in range(500)]
    a.send(*frames)
    net.poke(a)  # type: ignore[arg-type]
    net.run_until(1.0)
    times = [t for t, _ in b.received]
    assert sorted(d for _, d in b.received) == frames  # nothing lost or duplicated
    assert times == sorted(times) and min(times) >= 0.001 and max(times) < 0.003
    assert max(times) - min(times) > 0.0015  # spread over most of the jitter window
    order = [int.from_bytes(d, "big") for _, d in b.received]
    assert order != list(range(500))
    assert link.a_to_b == LinkStats(frames=500, bytes=1000, lost=0)


def test_network_loss_each_way() -> None:
    n = 20_000
    net, a, b, link, _ = probes(loss=0.3)
    a.send(*[i.to_bytes(3, "big") for i in range(n)])
    b.send(*[i.to_bytes(3, "big") for i in range(n)])
    net.poke(a)  # type: ignore[arg-type]
    net.poke(b)  # type: ignore[arg-type]
    net.run_until(1.0)
    sigma = math.sqrt(n * 0.3 * 0.7)  # binomial: ≈ 65 frames
    for stats, got in ((link.a_to_b, b.received), (link.b_to_a, a.received)):
        assert stats.frames == n and stats.bytes == 3 * n
        assert abs(stats.lost - 0.3 * n) < 4 * sigma
        assert len(got) == n - stats.lost
        order = [int.from_bytes(d, "big") for _, d in got]
        assert order == sorted(order)  # no jitter: the survivors keep their order
    assert link.a_to_b.lost != link.b_to_a.lost  # independent draws each way


def test_network_drop_hook_decides_each_frame() -> None:
    net, a, b, link, _ = probes()
    asked: list[tuple[Probe, bytes]] = []

    def keep(port: Any, data: bytes) -> bool:
        asked.append((port, data))
        return not data.startswith(b"drop")

    link.drop = keep
    a.send(b"keep-1", b"drop-2", b"keep-3")
    b.send(b"drop-4", b"keep-5")
    net.poke(a)  # type: ignore[arg-type]
    net.poke(b)  # type: ignore[arg-type]
    net.run_until(1.0)
    assert asked == [(a, b"keep-1"), (a, b"drop-2"), (a, b"keep-3"), (b, b"drop-4"), (b, b"keep-5")]
    assert [d for _, d in b.received] == [b"keep-1", b"keep-3"]
    assert [d for _, d in a.received] == [b"keep-5"]
    assert (link.a_to_b.frames, link.a_to_b.lost, link.b_to_a.frames, link.b_to_a.lost) == (3, 1, 2, 1)


def test_network_run_until_and_step() -> None:
    net, a, _b, _link, events = probes(timers=[1.0, 2.0, 3.0])
    net.run_until(2.5)
    assert a.fired == [1.0, 2.0]
    assert net.now == 2.5  # the clock stops at the limit, not at the last event
    assert events == [(a, ("timer", 1.0)), (a, ("timer", 2.0))]
    net.run_until(1.0)
    assert net.now == 2.5  # never backwards
    assert net.step() is True and a.fired == [1.0, 2.0, 3.0] and net.now == 3.0
    assert net.step() is False and net.now == 3.0  # nothing left
    net.run_until(10.0)
    assert net.now == 10.0


def test_network_run_until_stop_returns_after_the_step() -> None:
    net, a, _b, _link, _ = probes(timers=[1.0, 2.0, 3.0, 4.0])
    net.run_until(100.0, stop=lambda: len(a.fired) == 2)
    assert a.fired == [1.0, 2.0] and net.now == 2.0
    net.run_until(100.0)
    assert a.fired == [1.0, 2.0, 3.0, 4.0] and net.now == 100.0


def test_network_follows_a_moved_deadline() -> None:
    net, a, _b, _link, _ = probes(timers=[5.0])
    a.timers = [1.0]  # a command moved the port's deadline earlier
    net.poke(a)  # type: ignore[arg-type]
    net.run_until(10.0)
    assert a.fired == [1.0]  # the stale 5.0 entry is not delivered


def test_network_events_reach_the_callback_in_order() -> None:
    p = pair(3)
    kinds = [type(ev).__name__ for _, side, ev in p.events if side == "station"]
    assert kinds[0] == "NeighborAdded" and "EvbNegotiated" in kinds
    times = [t for t, _, _ in p.events]
    assert times == sorted(times)
