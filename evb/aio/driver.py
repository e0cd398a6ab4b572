"""The real-clock driver: one port, one interface, one timer.

It feeds received frames, commands and ``loop.time()`` into a sans-IO port, sends what the port
wants sent, logs and forwards its events, and re-arms a single timer from
``port.next_deadline()`` after every input. It decides nothing about the protocol. A watchdog
checks the interface once a second: when it goes down or disappears the port is told
(``set_link(False)``) and the socket closed; when it is back the socket is reopened.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from evb.aio.rawsock import Link, LinkGone, RawLink, link_is_up
from evb.logconfig import log_event
from evb.port import Event, Port

WATCH_INTERVAL = 1.0


class PortDriver:
    def __init__(
        self,
        port: Port,
        ifname: str,
        log: Any,
        *,
        link_factory: Callable[[str], Link] = RawLink,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.port = port
        self.ifname = ifname
        self.log = log
        self.listeners: list[Callable[[Port, Event], None]] = []
        self._link_factory = link_factory
        self.link: Link | None = None
        self._ifindex: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watch: asyncio.TimerHandle | None = None
        self.send_errors = 0
        self.closed = False

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._open()
        self._on_watch()
        self.flush()

    def stop(self) -> None:
        """Leave politely (LLDP TTL 0) and release everything."""
        if self.closed:
            return
        self.port.shutdown(self.loop.time())
        self.flush()
        self.closed = True
        for handle in (self._timer, self._watch):
            if handle is not None:
                handle.cancel()
        self._close_link()

    def _open(self) -> bool:
        try:
            link = self._link_factory(self.ifname)
        except OSError as exc:
            self.log.warning("aio.link_unavailable", error=str(exc))
            return False
        self.link = link
        self._ifindex = link.ifindex
        self.loop.add_reader(link.fileno(), self._readable)
        self.log.info("aio.link_open", mac=link.mac.hex(":"), ifindex=link.ifindex)
        return True

    def _close_link(self) -> None:
        if self.link is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self.link.fileno())
            self.link.close()
            self.link = None

    def _on_watch(self) -> None:
        self._watch = None
        if self.closed:
            return
        try:
            index = socket.if_nametoindex(self.ifname)
        except OSError:
            index = None
        if self.link is not None and index != self._ifindex:
            self.log.warning("aio.link_removed")
            self._close_link()
        if self.link is None and index is not None:
            self._open()
        up = self.link is not None and link_is_up(self.ifname)
        if up != self.port.link_up:
            self.log.info("aio.link_up" if up else "aio.link_down")
            self.port.set_link(up, self.loop.time())
            self.flush()
        self._watch = self.loop.call_later(WATCH_INTERVAL, self._on_watch)

    # ------------------------------------------------------------------ I/O

    def _readable(self) -> None:
        link = self.link
        if link is None:
            return
        now = self.loop.time()
        try:
            for _ in range(256):  # bounded: let timers and other ports run
                data = link.recv()
                if data is None:
                    break
                self.port.receive_frame(data, now)
        except LinkGone as exc:
            self.log.warning("aio.link_gone", error=str(exc))
            self._close_link()
            self.port.set_link(False, now)
        except OSError as exc:
            self.log.error("aio.receive_failed", error=str(exc))
        self.flush()

    def command(self, fn: Callable[[float], Any]) -> Any:
        """Run ``fn(now)`` against the port (a VDP command), then send and re-arm."""
        try:
            return fn(self.loop.time())
        finally:
            self.flush()

    def flush(self) -> None:
        port = self.port
        frames = port.frames_to_send()
        link = self.link
        for frame in frames:
            if link is None:
                break
            try:
                link.send(frame)
            except LinkGone:
                self._close_link()
                link = None
            except OSError as exc:
                self.send_errors += 1
                self.log.warning("aio.send_failed", error=str(exc))
        while (ev := port.next_event()) is not None:
            log_event(self.log, ev)
            for listener in self.listeners:
                listener(port, ev)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.closed:
            return
        deadline = port.next_deadline()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer, deadline)

    def _on_timer(self, deadline: float) -> None:
        self._timer = None
        self.port.handle_timer(max(deadline, self.loop.time()))
        self.flush()
