"""Where the tester's frames go: a real interface, or an in-process sans-IO DUT.

``FrameLink`` is all the tester needs: ``send(frame)``, ``set_receiver(callback)``, ``close()``.
``RawFrameLink`` is an AF_PACKET socket on an interface (``evb.aio.rawsock.RawLink``: LLDP and
ECP EtherTypes, VLAN tags restored), read with ``loop.add_reader``. ``SimDut`` is a DUT made of
``evb``'s own ``StationPort``/``BridgePort`` on the running loop's clock (with
``vclock.VirtualClockLoop``, simulated time); it is also the link to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from evb.port import Event, Port

Receiver = Callable[[bytes], None]


class FrameLink(Protocol):
    def send(self, frame: bytes) -> None: ...

    def set_receiver(self, receiver: Receiver) -> None: ...

    def close(self) -> None: ...


class RawFrameLink:
    """The tester's end of a real link: an AF_PACKET socket on ``ifname``."""

    def __init__(self, ifname: str) -> None:
        from evb.aio.rawsock import RawLink

        self.ifname = ifname
        self._raw = RawLink(ifname)
        self._loop = asyncio.get_running_loop()
        self._receiver: Receiver | None = None
        self._loop.add_reader(self._raw.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data = self._raw.recv()
            except OSError:
                return
            if data is None:
                return
            if self._receiver is not None:
                self._receiver(data)

    def send(self, frame: bytes) -> None:
        self._raw.send(frame)

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def close(self) -> None:
        self._loop.remove_reader(self._raw.fileno())
        self._raw.close()


class SimDut:
    """A sans-IO port as the DUT, joined to the tester by a link of ``delay`` seconds each way."""

    def __init__(self, port: Port, *, delay: float = 0.0001) -> None:
        self.port = port
        self.delay = delay
        self.events: list[Event] = []
        #: frames the DUT sends pass this filter first (self-tests mutate a DUT with it)
        self.outgoing: Callable[[bytes], bytes | None] = lambda f: f
        self._loop = asyncio.get_running_loop()
        self._receiver: Receiver | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # the tester's side -----------------------------------------------------------
    def send(self, frame: bytes) -> None:
        if not self._closed:
            self._loop.call_later(self.delay, self._deliver, frame)

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._pump()

    def close(self) -> None:
        self._closed = True
        if self._timer:
            self._timer.cancel()

    # the DUT ---------------------------------------------------------------------
    def command(self, fn: Callable[[float], object]) -> object:
        """Run ``fn(now)`` on the port (an operator's command), then send what it produced."""
        result = fn(self._loop.time())
        self._pump()
        return result

    def _deliver(self, frame: bytes) -> None:
        if self._closed:
            return
        self.port.receive_frame(frame, now=self._loop.time())
        self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        self.port.handle_timer(now=self._loop.time())
        self._pump()

    def _pump(self) -> None:
        for frame in self.port.frames_to_send():
            out = self.outgoing(frame)
            if out is not None and self._receiver is not None:
                self._loop.call_later(self.delay, self._receiver, out)
        while (ev := self.port.next_event()) is not None:
            self.events.append(ev)
        deadline = self.port.next_deadline()
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None and not self._closed:
            self._timer = self._loop.call_at(max(deadline, self._loop.time()), self._on_timer)
