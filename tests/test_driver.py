"""evb/aio/driver.py: the real-clock driver of one sans-IO port, on a real asyncio loop.

No raw sockets and no namespaces: ``PortDriver(link_factory=...)`` gets a fake link backed by an
AF_UNIX SOCK_SEQPACKET socketpair (one datagram = one Ethernet frame). The driver's watchdog still
looks the interface name up in the kernel, so the fake links claim to be ``lo`` (its ifindex; lo
is up in every network namespace). Waits are for events, each under a generous timeout; the only
fixed delays are the watchdog's 1 s period (link re-opened after it went) and LLDP's fast
transmission interval, chosen small through ``LldpTimers``.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
import structlog
from structlog.testing import capture_logs

from evb.aio.driver import WATCH_INTERVAL, PortDriver
from evb.aio.rawsock import LinkGone, link_is_up
from evb.ecp.wire import Ecpdu
from evb.frame import decode_frame
from evb.lldp.agent import LldpTimers
from evb.lldp.events import EvbLost, EvbNegotiated, NeighborRemoved
from evb.lldp.negotiate import EvbConfig, Role
from evb.lldp.wire import Lldpdu, RrStat
from evb.port import BridgePort, Event, Port, PortConfig, StationPort
from evb.vdp.events import VsiAssociated
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode
from tests.helpers import BRIDGE_MAC, LABMGR, STATION_MAC

IFNAME = "lo"
TIMEOUT = 5.0  #: upper bound for what should happen at once
FAST = 0.05  #: LLDP fast transmission interval of these tests (msgFastTx), seconds

pytestmark = pytest.mark.skipif(not link_is_up(IFNAME), reason="needs the loopback interface up")

VSI = Vsi(
    manager_id=LABMGR,
    type_id=5,
    type_version=4,
    vsiid=uuid.UUID("5a0f1c2e-0001-4d3c-8e21-0a0000000001").bytes,
    filter_format=FilterFormat.MAC_VID,
    entries=(FilterEntry(vid=10, mac=bytes.fromhex("020000000101")),),
)


class FakeLink:
    """What ``PortDriver`` needs of a ``RawLink``, on one end of a socketpair."""

    def __init__(self, sock: socket.socket, mac: bytes, on_send: Callable[[], None] | None = None) -> None:
        sock.setblocking(False)
        self.on_send = on_send
        self.sock = sock
        self.mac = mac
        self.ifindex = socket.if_nametoindex(IFNAME)
        self.gone = False  #: recv() raises LinkGone, as RawLink does for ENODEV
        self.send_error: int | None = None  #: send() raises OSError(send_error)
        self.closed = False
        self.sent: list[bytes] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self) -> bytes | None:
        if self.gone:
            raise LinkGone(errno.ENODEV, f"{IFNAME}: No such device")
        try:
            return self.sock.recv(65535)
        except BlockingIOError:
            return None

    def send(self, frame: bytes) -> None:
        if self.send_error is not None:
            raise OSError(self.send_error, "injected")
        self.sent.append(frame)
        if self.on_send is not None:
            self.on_send()
        self.sock.send(frame)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class Peers:
    """A link factory: each call opens a new socketpair and keeps the test's end."""

    def __init__(self, mac: bytes, on_send: Callable[[], None] | None = None) -> None:
        self.mac = mac
        self.on_send = on_send
        self.links: list[FakeLink] = []
        self.peers: list[socket.socket] = []
        self.fail = 0  #: the next ``fail`` calls raise OSError (interface not there)

    def __call__(self, ifname: str) -> FakeLink:
        assert ifname == IFNAME
        if self.fail:
            self.fail -= 1
            raise OSError(errno.ENODEV, "No such device")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.setblocking(False)
        self.peers.append(theirs)
        self.links.append(FakeLink(ours, self.mac, self.on_send))
        return self.links[-1]

    def close(self) -> None:
        for s in self.peers:
            s.close()


def cable(a_mac: bytes, b_mac: bytes) -> tuple[Callable[[str], FakeLink], Callable[[str], FakeLink]]:
    """Two link factories whose links are the two ends of one socketpair (once: then no interface)."""
    ends = dict(zip((a_mac, b_mac), socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET), strict=True))

    def factory(mac: bytes) -> Callable[[str], FakeLink]:
        def open_link(_name: str) -> FakeLink:
            if mac not in ends:
                raise OSError(errno.ENODEV, "No such device")
            return FakeLink(ends.pop(mac), mac)

        return open_link

    return factory(a_mac), factory(b_mac)


def station(now: float, lldp: LldpTimers | None = None) -> StationPort:
    return StationPort(
        PortConfig(mac=STATION_MAC, evb=EvbConfig(role=Role.STATION), lldp=lldp or LldpTimers(fast_interval=FAST)),
        now=now,
    )


def bridge(now: float) -> BridgePort:
    return BridgePort(
        PortConfig(mac=BRIDGE_MAC, evb=EvbConfig(role=Role.BRIDGE), lldp=LldpTimers(fast_interval=FAST)), now=now
    )


class Watcher:
    """A driver listener: resolves futures when an event matching a predicate arrives."""

    def __init__(self) -> None:
        self.events: list[tuple[Port, Event]] = []
        self._waiting: list[tuple[Callable[[Port, Event], bool], asyncio.Future[Event]]] = []

    def __call__(self, port: Port, ev: Event) -> None:
        self.events.append((port, ev))
        for pred, fut in list(self._waiting):
            if not fut.done() and pred(port, ev):
                fut.set_result(ev)

    async def wait(self, pred: Callable[[Port, Event], bool]) -> Event:
        for port, ev in self.events:
            if pred(port, ev):
                return ev
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting.append((pred, fut))
        return await asyncio.wait_for(fut, TIMEOUT)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


@pytest_asyncio.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Exceptions that escaped into the loop (a callback that raised): must stay empty."""
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield errors
    await asyncio.sleep(0)  # let callbacks scheduled by the test's last step run
    loop.set_exception_handler(None)
    assert errors == []


async def recv_frame(sock: socket.socket) -> bytes:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65535), TIMEOUT)
    assert data, "the driver closed the link"
    return data


async def wait_until(cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- frames in -> port -> frames out


@pytest.mark.asyncio
async def test_station_and_bridge_negotiate_and_associate(logs: list[dict[str, Any]], loop_errors: list[Any]) -> None:
    loop = asyncio.get_running_loop()
    st_link, br_link = cable(STATION_MAC, BRIDGE_MAC)
    st, br = station(loop.time()), bridge(loop.time())
    log = structlog.get_logger()
    ds = PortDriver(st, IFNAME, log.bind(role="station"), link_factory=st_link)
    db = PortDriver(br, IFNAME, log.bind(role="bridge"), link_factory=br_link)
    watch = Watcher()
    ds.listeners.append(watch)
    db.listeners.append(watch)
    ds.start()
    db.start()
    try:
        # LLDP in, EVB TLVs computed, LLDP out: both sides negotiate (port.py theory of operation)
        await watch.wait(lambda p, e: p is st and isinstance(e, EvbNegotiated) and e.rr)
        await watch.wait(lambda p, e: p is br and isinstance(e, EvbNegotiated))
        assert st.negotiated and br.negotiated
        # a command: ECP request out, bridge ACK + VDP response back, station ACK
        assert ds.command(lambda now: st.associate(VSI, now=now)) is None
        got = await watch.wait(lambda p, e: p is st and isinstance(e, VsiAssociated))
        assert got == VsiAssociated(key=VSI.key, mode=VdpMode.ASSOC, type_id=5, type_version=4, entries=VSI.entries)
        await watch.wait(lambda p, e: p is br and isinstance(e, VsiAssociated))
        assert br.counters.ecp_acks_sent >= 1
        assert st.counters.ecp_acks_sent >= 1
        assert isinstance(ds.link, FakeLink)
        sent = [decode_frame(f).pdu for f in ds.link.sent]
        assert any(isinstance(p, Ecpdu) for p in sent)
        assert st.counters.frames_out == len(sent)
        assert st.counters.dropped == br.counters.dropped == 0
        # events are logged under their vocabulary names, per driver logger
        names = {(e.get("role"), e["event"]) for e in logs}
        assert {
            ("station", "aio.link_open"),
            ("station", "lldp.evb_negotiated"),
            ("station", "vdp.vsi_associated"),
        } <= names
        assert ("bridge", "vdp.vsi_associated") in names
        ds.stop()
        # the station's TTL-0 LLDPDU reached the bridge before the station closed its end
        await watch.wait(lambda p, e: p is br and isinstance(e, NeighborRemoved))
        assert await watch.wait(lambda p, e: p is br and isinstance(e, EvbLost)) == EvbLost(
            reason="peer aged out or shut down"
        )
        assert not br.negotiated
    finally:
        ds.stop()
        db.stop()


# --------------------------------------------------------------------------- the timer


@pytest.mark.asyncio
async def test_timer_rearmed_from_next_deadline(loop_errors: list[Any]) -> None:
    # txFastInit = 4 LLDPDUs msgFastTx apart, then msgTxInterval (30 s). At each send we note the
    # loop time and port.next_deadline(), the deadline the driver arms next: every frame must go
    # out at the deadline armed after the previous one (not early; late only by scheduling).
    loop = asyncio.get_running_loop()
    sends: list[tuple[float, float | None]] = []
    peers = Peers(STATION_MAC, on_send=lambda: sends.append((loop.time(), port.next_deadline())))
    port = station(loop.time(), LldpTimers(fast_interval=FAST, tx_fast_init=4))
    driver = PortDriver(port, IFNAME, structlog.get_logger(), link_factory=peers)
    driver.start()
    try:
        for _ in range(4):
            pdu = decode_frame(await recv_frame(peers.peers[0])).pdu
            assert isinstance(pdu, Lldpdu) and pdu.ttl == 120  # msgTxInterval × msgTxHold
        assert len(sends) == 4
        for (sent, armed), (sent_next, _) in itertools.pairwise(sends):
            assert armed is not None
            assert armed == pytest.approx(sent + FAST, abs=0.02)  # the port's deadline: now + msgFastTx
            assert armed - 1e-6 <= sent_next < armed + 1.0
        # after the 4th the next LLDPDU is msgTxInterval away (the 1 s credit timer comes first)
        last_sent, armed = sends[-1]
        assert armed is not None and armed > last_sent + FAST
        assert port.counters.frames_out == 4
    finally:
        driver.stop()
        peers.close()


@pytest.mark.asyncio
async def test_received_frame_rearms_the_timer_and_answers(loop_errors: list[Any]) -> None:
    # a station past its fast transmissions waits msgTxInterval; a bridge LLDPDU with an EVB TLV
    # changes the station's TLV (RRSTAT), so it must send at once, not at the old deadline
    loop = asyncio.get_running_loop()
    peers = Peers(STATION_MAC)
    port = station(loop.time(), LldpTimers(fast_interval=FAST, tx_fast_init=1))
    driver = PortDriver(port, IFNAME, structlog.get_logger(), link_factory=peers)
    driver.start()
    peer = peers.peers[0]
    try:
        data = await recv_frame(peer)
        before = decode_frame(data).pdu
        assert isinstance(before, Lldpdu) and before.evb is not None
        assert before.evb.rrreq and before.evb.rrstat == RrStat.UNKNOWN  # no bridge seen yet
        br = bridge(0.0)  # a sans-IO bridge answers the station's LLDPDU: RRCTR set
        br.receive_frame(data, 0.0)
        br.handle_timer(0.0)
        lldp = [f for f in br.frames_to_send() if isinstance(decode_frame(f).pdu, Lldpdu)]
        assert len(lldp) == 1
        peer.send(lldp[0])
        # recv_frame waits at most TIMEOUT (5 s), far less than msgTxInterval (30 s): the answer
        # was sent because of the input, the timer re-armed from the port's new deadline
        after = decode_frame(await recv_frame(peer)).pdu
        assert isinstance(after, Lldpdu) and after.evb is not None
        assert after.evb.rrstat == RrStat.ENABLED and after.evb.rrctr  # the bridge's grant, echoed
        assert port.counters.frames_in == 1
    finally:
        driver.stop()
        peers.close()


# --------------------------------------------------------------------------- the link going away


@pytest.mark.asyncio
async def test_link_gone_on_recv_marks_link_down_then_reopens(
    logs: list[dict[str, Any]], loop_errors: list[Any]
) -> None:
    loop = asyncio.get_running_loop()
    peers = Peers(STATION_MAC)
    port = station(loop.time())
    watch = Watcher()
    driver = PortDriver(port, IFNAME, structlog.get_logger(), link_factory=peers)
    driver.listeners.append(watch)
    driver.start()
    try:
        await recv_frame(peers.peers[0])
        assert port.link_up
        link = peers.links[0]
        link.gone = True
        peers.peers[0].send(b"\x00" * 60)  # readable: the driver calls recv(), which raises LinkGone
        await wait_until(lambda: not port.link_up)
        assert link.closed
        assert driver.link is None
        gone = [e for e in logs if e["event"] == "aio.link_gone"]
        assert gone == [
            {
                "event": "aio.link_gone",
                "error": f"[Errno {errno.ENODEV}] {IFNAME}: No such device",
                "log_level": "warning",
            }
        ]
        # the driver still runs commands (nothing to send on a down link)
        assert driver.command(lambda now: now) <= loop.time()
        # the watchdog sees the interface (it exists) and opens a new link: the port is up again
        # and LLDP restarts at once (txFastInit)
        await wait_until(lambda: len(peers.links) == 2 and port.link_up, timeout=WATCH_INTERVAL + TIMEOUT)
        pdu = decode_frame(await recv_frame(peers.peers[1])).pdu
        assert isinstance(pdu, Lldpdu) and pdu.ttl > 0
        assert "aio.link_up" in [e["event"] for e in logs]
    finally:
        driver.stop()
        peers.close()


@pytest.mark.asyncio
async def test_negotiated_station_loses_evb_when_the_link_goes(loop_errors: list[Any]) -> None:
    loop = asyncio.get_running_loop()
    st_link, br_link = cable(STATION_MAC, BRIDGE_MAC)
    st, br = station(loop.time()), bridge(loop.time())
    ds = PortDriver(st, IFNAME, structlog.get_logger(), link_factory=st_link)
    db = PortDriver(br, IFNAME, structlog.get_logger(), link_factory=br_link)
    watch = Watcher()
    ds.listeners.append(watch)
    ds.start()
    db.start()
    try:
        await wait_until(lambda: st.negotiated)
        assert isinstance(ds.link, FakeLink) and isinstance(db.link, FakeLink)
        ds.link.gone = True
        db.link.send(b"\x00" * 60)
        lost = await watch.wait(lambda p, e: isinstance(e, EvbLost))
        assert lost == EvbLost(reason="link down")
        assert not st.link_up and not st.negotiated
    finally:
        ds.stop()
        db.stop()


@pytest.mark.asyncio
async def test_send_error_is_counted_not_fatal(logs: list[dict[str, Any]], loop_errors: list[Any]) -> None:
    loop = asyncio.get_running_loop()
    peers = Peers(STATION_MAC)
    port = station(loop.time())
    driver = PortDriver(port, IFNAME, structlog.get_logger(), link_factory=peers)
    driver.start()
    try:
        await recv_frame(peers.peers[0])
        peers.links[0].send_error = errno.ENOBUFS
        driver.command(lambda now: port.shutdown(now))  # queues an LLDPDU (TTL 0) to send
        assert driver.send_errors == 1
        assert [e for e in logs if e["event"] == "aio.send_failed"] == [
            {"event": "aio.send_failed", "error": f"[Errno {errno.ENOBUFS}] injected", "log_level": "warning"}
        ]
        assert driver.link is peers.links[0]  # kept: a full buffer is not a lost interface
    finally:
        driver.stop()
        peers.close()


@pytest.mark.asyncio
async def test_link_unavailable_at_start(logs: list[dict[str, Any]], loop_errors: list[Any]) -> None:
    loop = asyncio.get_running_loop()
    peers = Peers(STATION_MAC)
    peers.fail = 2  # start() tries, then the watchdog's first look at once
    port = station(loop.time())
    driver = PortDriver(port, IFNAME, structlog.get_logger(), link_factory=peers)
    driver.start()
    try:
        assert driver.link is None
        assert not port.link_up  # told by the watchdog
        assert [e["event"] for e in logs] == ["aio.link_unavailable", "aio.link_unavailable", "aio.link_down"]
        # a second later the interface is there: opened, up, LLDP starts
        await wait_until(lambda: port.link_up, timeout=WATCH_INTERVAL + TIMEOUT)
        pdu = decode_frame(await recv_frame(peers.peers[0])).pdu
        assert isinstance(pdu, Lldpdu) and pdu.ttl == 120
    finally:
        driver.stop()
        peers.close()


# --------------------------------------------------------------------------- stop


@pytest.mark.asyncio
async def test_stop_sends_lldp_ttl_0_and_releases_the_link(loop_errors: list[Any]) -> None:
    loop = asyncio.get_running_loop()
    peers = Peers(STATION_MAC)
    port = station(loop.time())
    driver = PortDriver(port, IFNAME, structlog.get_logger(), link_factory=peers)
    driver.start()
    peer = peers.peers[0]
    try:
        first = decode_frame(await recv_frame(peer)).pdu
        assert isinstance(first, Lldpdu) and first.ttl == 120
        driver.stop()
        last = decode_frame(await recv_frame(peer))
        assert isinstance(last.pdu, Lldpdu)
        assert last.pdu.ttl == 0  # "forget me" (802.1AB shutdown LLDPDU)
        assert last.src == STATION_MAC
        assert last.pdu.chassis_id == first.chassis_id and last.pdu.port_id == first.port_id
        # and nothing after it: the link is closed, no timer is left
        assert await asyncio.wait_for(loop.sock_recv(peer, 65535), TIMEOUT) == b""
        assert peers.links[0].closed and driver.link is None and driver.closed
        driver.stop()  # a second stop does nothing
        assert len(peers.links) == 1
    finally:
        driver.stop()
        peers.close()
