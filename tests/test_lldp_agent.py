"""The LLDP agent alone (evb/lldp/agent.py; 802.1AB clause 9 as EVB needs it, lldp-evb-cdcp.md §1).

Virtual clock: each test jumps from one ``next_deadline()`` to the next and records what the
agent sent and reported.
"""

from __future__ import annotations

import pytest

from evb.lldp.agent import LldpAgent, LldpTimers
from evb.lldp.events import LldpEvent, NeighborAdded, NeighborAged, NeighborRemoved, NeighborUpdated, TooManyNeighbors
from evb.lldp.wire import ChassisId, ChassisIdSubtype, EvbTlv, Lldpdu, PortId, PortIdSubtype
from tests.helpers import BRIDGE_MAC, STATION_MAC

OTHER_MAC = bytes.fromhex("020000000c01")


def lldpdu(mac: bytes, ttl: int, *, rka: int = 20) -> Lldpdu:
    return Lldpdu(
        chassis_id=ChassisId(ChassisIdSubtype.MAC_ADDRESS, mac),
        port_id=PortId(PortIdSubtype.MAC_ADDRESS, mac),
        ttl=ttl,
        tlvs=(EvbTlv(rka=rka),) if ttl else (),
    )


def msap(mac: bytes) -> tuple[int, bytes, int, bytes]:
    return (ChassisIdSubtype.MAC_ADDRESS, mac, PortIdSubtype.MAC_ADDRESS, mac)


class Driver:
    """An agent on a virtual clock: what it sent (time, TTL) and the events it reported."""

    def __init__(self, timers: LldpTimers | None = None, *, now: float = 0.0) -> None:
        self.built: list[int] = []
        self.agent = LldpAgent(self._build, timers or LldpTimers(), now=now)
        self.sent: list[tuple[float, int]] = []
        self.events: list[tuple[float, LldpEvent]] = []

    def _build(self, ttl: int) -> Lldpdu:
        self.built.append(ttl)
        return lldpdu(STATION_MAC, ttl)

    def collect(self, now: float) -> None:
        self.sent += [(now, pdu.ttl) for pdu in self.agent.out]
        self.agent.out.clear()
        self.events += [(now, ev) for ev in self.agent.events]
        self.agent.events.clear()

    def timer(self, now: float) -> None:
        self.agent.handle_timer(now)
        self.collect(now)

    def run(self, until: float) -> None:
        while (t := self.agent.next_deadline()) is not None and t <= until:
            self.timer(t)

    def receive(self, pdu: Lldpdu, now: float) -> None:
        self.agent.receive(pdu, now)
        self.collect(now)

    def times(self, since: float = float("-inf")) -> list[float]:
        return [t for t, _ in self.sent if t >= since]


# --------------------------------------------------------------------------- transmit


def test_first_lldpdu_at_start() -> None:
    d = Driver(now=5.0)
    assert d.agent.next_deadline() == 5.0
    assert d.sent == []  # nothing before the first timer call
    d.timer(5.0)
    assert d.sent == [(5.0, 120)]
    assert d.built == [120] and d.agent.tx_count == 1


def test_start_is_fast_then_tx_interval() -> None:
    """A start counts as a change: tx_fast_init LLDPDUs fast_interval apart, then every tx_interval."""
    d = Driver(now=5.0)
    d.run(100.0)
    assert d.times() == [5.0, 6.0, 7.0, 8.0, 38.0, 68.0, 98.0]
    assert all(ttl == 120 for _, ttl in d.sent)


@pytest.mark.parametrize(
    "timers",
    [LldpTimers(), LldpTimers(tx_fast_init=2, fast_interval=0.25, tx_interval=10.0)],
    ids=["defaults", "fast2-0.25s-10s"],
)
def test_fast_transmission_after_local_changed(timers: LldpTimers) -> None:
    d = Driver(timers)
    d.run(100.0)
    idle = d.times()[-1]
    assert 100.0 - idle < timers.tx_interval  # the regular transmission is running
    d.agent.local_changed(100.5)
    assert d.agent.next_deadline() == 100.5  # at once: credit is left
    fast = [100.5 + k * timers.fast_interval for k in range(timers.tx_fast_init)]
    regular = [fast[-1] + k * timers.tx_interval for k in (1, 2, 3)]
    d.run(regular[-1] + 1e-6)
    assert d.times(100.5) == pytest.approx(fast + regular, abs=1e-9)


def test_local_changed_during_fast_transmission_restarts_the_series() -> None:
    d = Driver()
    d.run(100.0)
    d.agent.local_changed(100.0)
    d.run(101.5)  # sent at 100, 101
    d.agent.local_changed(101.5)
    d.run(140.0)
    assert d.times(100.0) == [100.0, 101.0, 101.5, 102.5, 103.5, 104.5, 134.5]


def test_credit_limits_bursts() -> None:
    """txCreditMax LLDPDUs in a burst; then one per credit, one credit back per second."""
    d = Driver(LldpTimers(tx_interval=1000.0))
    d.run(100.0)
    assert d.times() == [0.0, 1.0, 2.0, 3.0]
    for k in range(10):  # ten changes 10 ms apart
        t = 100.0 + k / 100
        d.agent.local_changed(t)
        d.run(t)
    assert d.times(100.0) == [100.0, 100.01, 100.02, 100.03, 100.04]  # tx_credit_max = 5
    d.run(2000.0)
    # the credit ticks once a second; the fast series of the last change goes on, then tx_interval
    assert d.times(100.05) == [101.0, 102.0, 103.0, 104.0, 1104.0]
    assert d.agent.tx_count == 4 + 5 + 5


def test_credit_is_capped_at_tx_credit_max() -> None:
    d = Driver(LldpTimers(tx_interval=1000.0, tx_credit_max=2))
    d.run(500.0)  # a long idle time earns no more than 2 credits
    for k in range(5):
        d.agent.local_changed(500.0 + k / 100)
        d.run(500.0 + k / 100)
    assert d.times(500.0) == [500.0, 500.01]


@pytest.mark.parametrize(
    ("timers", "ttl"),
    [
        (LldpTimers(), 120),  # msgTxInterval 30 s × msgTxHold 4, as lldpad (lldp-evb-cdcp.md §1.3)
        (LldpTimers(tx_interval=10.0, tx_hold=3), 30),
        (LldpTimers(tx_interval=2.0, tx_hold=2), 4),
        (LldpTimers(tx_interval=30000.0, tx_hold=4), 0xFFFF),  # the TTL field is 16 bits
    ],
)
def test_ttl_is_tx_interval_times_tx_hold(timers: LldpTimers, ttl: int) -> None:
    assert timers.ttl == ttl
    d = Driver(timers)
    d.run(0.0)
    assert d.sent == [(0.0, ttl)]


# --------------------------------------------------------------------------- receive


def test_neighbor_added_updated_and_aged_at_exactly_rx_time_plus_ttl() -> None:
    d = Driver(LldpTimers(tx_interval=1000.0))
    d.run(10.0)
    d.receive(lldpdu(BRIDGE_MAC, 120), 12.5)
    assert [e for _, e in d.events] == [NeighborAdded(msap=msap(BRIDGE_MAC), ttl=120)]
    nb = d.agent.neighbors[msap(BRIDGE_MAC)]
    assert nb.expires == 132.5 and nb.lldpdu == lldpdu(BRIDGE_MAC, 120)
    d.receive(lldpdu(BRIDGE_MAC, 120), 40.0)  # same content: no event, expiry pushed on
    assert len(d.events) == 1 and nb.expires == 160.0
    d.receive(lldpdu(BRIDGE_MAC, 90, rka=21), 50.0)  # new content and TTL
    assert d.events[1:] == [(50.0, NeighborUpdated(msap=msap(BRIDGE_MAC)))]
    assert nb.expires == 140.0 and nb.lldpdu.evb == EvbTlv(rka=21)
    assert d.agent.next_deadline() == 140.0
    d.run(140.0 - 1e-6)
    assert msap(BRIDGE_MAC) in d.agent.neighbors
    d.run(140.0)
    assert d.events[2:] == [(140.0, NeighborAged(msap=msap(BRIDGE_MAC)))]
    assert d.agent.neighbors == {} and d.agent.aged == 1
    assert d.agent.rx_count == 3


def test_ttl_0_removes_the_neighbor_at_once() -> None:
    d = Driver()
    d.receive(lldpdu(BRIDGE_MAC, 120), 1.0)
    assert d.agent.receive(lldpdu(BRIDGE_MAC, 0), 2.0) is None
    d.collect(2.0)
    assert d.events[1:] == [(2.0, NeighborRemoved(msap=msap(BRIDGE_MAC)))]
    assert d.agent.neighbors == {} and d.agent.aged == 0
    d.receive(lldpdu(OTHER_MAC, 0), 3.0)  # TTL 0 of an unknown MSAP: nothing to remove
    assert len(d.events) == 2


def test_too_many_neighbors_discards_and_reports() -> None:
    d = Driver()  # max_neighbors = 1: an EVB port has one peer
    d.receive(lldpdu(BRIDGE_MAC, 120), 1.0)
    assert d.agent.receive(lldpdu(OTHER_MAC, 120), 2.0) is None
    d.receive(lldpdu(OTHER_MAC, 120), 3.0)
    assert [e for _, e in d.events] == [
        NeighborAdded(msap=msap(BRIDGE_MAC), ttl=120),
        TooManyNeighbors(msap=msap(OTHER_MAC)),
        TooManyNeighbors(msap=msap(OTHER_MAC)),
    ]
    assert list(d.agent.neighbors) == [msap(BRIDGE_MAC)] and d.agent.too_many == 2
    # the known neighbor still refreshes; once it is gone the other one is accepted
    assert d.agent.receive(lldpdu(BRIDGE_MAC, 120), 4.0) is d.agent.neighbors[msap(BRIDGE_MAC)]
    d.receive(lldpdu(BRIDGE_MAC, 0), 5.0)
    d.receive(lldpdu(OTHER_MAC, 120), 6.0)
    assert list(d.agent.neighbors) == [msap(OTHER_MAC)]


def test_max_neighbors_is_a_parameter() -> None:
    d = Driver(LldpTimers(max_neighbors=3))
    macs = [bytes((2, 0, 0, 0, 0xC, n)) for n in range(4)]
    for n, mac in enumerate(macs):
        d.receive(lldpdu(mac, 120), float(n))
    assert list(d.agent.neighbors) == [msap(m) for m in macs[:3]]
    assert [type(e) for _, e in d.events] == [NeighborAdded] * 3 + [TooManyNeighbors]


# --------------------------------------------------------------------------- shutdown and restart


def test_shutdown_sends_ttl_0_once_then_nothing() -> None:
    d = Driver()
    d.run(50.0)
    before = len(d.sent)
    d.agent.shutdown()
    d.collect(50.0)
    assert d.sent[before:] == [(50.0, 0)] and d.built[-1] == 0
    d.agent.shutdown()  # again: nothing more
    d.agent.local_changed(51.0)  # ignored while shut down
    d.collect(51.0)
    d.run(1000.0)
    assert d.sent[before:] == [(50.0, 0)]
    assert d.agent.next_deadline() is None  # no transmission, no neighbor, full credit


def test_neighbors_still_age_while_shut_down() -> None:
    d = Driver()
    d.receive(lldpdu(BRIDGE_MAC, 120), 1.0)
    d.agent.shutdown()
    d.collect(1.0)
    d.run(200.0)
    assert (121.0, NeighborAged(msap=msap(BRIDGE_MAC))) in d.events


def test_restart_transmits_at_once_then_fast() -> None:
    d = Driver()
    d.run(50.0)
    d.agent.shutdown()
    d.collect(50.0)
    d.agent.restart(200.0)
    assert d.agent.next_deadline() == 200.0
    d.run(300.0)
    assert [(t, ttl) for t, ttl in d.sent if t >= 200.0] == [
        (t, 120) for t in (200.0, 201.0, 202.0, 203.0, 233.0, 263.0, 293.0)
    ]
