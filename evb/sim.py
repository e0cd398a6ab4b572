"""An in-memory network of ports with a virtual clock (the engine of ``evb simulate`` and tests).

Pure: no wall clock, no sockets. Frames a port sends are delivered to its peer after
``delay`` (+ uniform ``jitter``, which reorders frames) unless ``loss`` drops them; the clock
jumps from one event to the next (a delivery or a port's deadline). Randomness comes from a
``random.Random`` seeded by the caller, so every run is reproducible.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from evb.port import Event, Port


@dataclass(slots=True)
class LinkStats:
    frames: int = 0
    bytes: int = 0
    lost: int = 0


@dataclass(slots=True, kw_only=True)
class Link:
    """A point-to-point link between two ports."""

    a: Port
    b: Port
    delay: float = 0.0001
    jitter: float = 0.0
    loss: float = 0.0  #: probability that a frame is lost, each direction
    a_to_b: LinkStats = field(default_factory=LinkStats)
    b_to_a: LinkStats = field(default_factory=LinkStats)
    #: per-frame hook deciding a frame's fate: returns False to drop it (tests use it)
    drop: Callable[[Port, bytes], bool] | None = None


class Network:
    """Ports joined by links, driven event by event on a virtual clock."""

    def __init__(self, *, rng: random.Random, now: float = 0.0) -> None:
        self.rng = rng
        self.now = now
        self.links: list[Link] = []
        self._peer: dict[int, tuple[Link, Port]] = {}
        self._wire: list[tuple[float, int, Port, bytes]] = []
        self._timers: list[tuple[float, int, Port]] = []
        self._deadline: dict[int, float | None] = {}
        self._tie = 0
        self.on_event: Callable[[Port, Event], None] | None = None

    def connect(self, a: Port, b: Port, *, delay: float = 0.0001, jitter: float = 0.0, loss: float = 0.0) -> Link:
        link = Link(a=a, b=b, delay=delay, jitter=jitter, loss=loss)
        self.links.append(link)
        self._peer[id(a)] = (link, b)
        self._peer[id(b)] = (link, a)
        self.settle(a)
        self.settle(b)
        return link

    # ------------------------------------------------------------------ driving

    def settle(self, port: Port) -> None:
        """After a port got input: put its frames on the wire, its events out, re-arm its timer."""
        frames = port.frames_to_send()
        if frames:
            link, peer = self._peer[id(port)]
            stats = link.a_to_b if port is link.a else link.b_to_a
            rng = self.rng
            for data in frames:
                stats.frames += 1
                stats.bytes += len(data)
                if (link.loss and rng.random() < link.loss) or (link.drop is not None and not link.drop(port, data)):
                    stats.lost += 1
                    continue
                at = self.now + link.delay + (rng.random() * link.jitter if link.jitter else 0.0)
                self._tie += 1
                heapq.heappush(self._wire, (at, self._tie, peer, data))
        handler = self.on_event
        while (ev := port.next_event()) is not None:
            if handler is not None:
                handler(port, ev)
        deadline = port.next_deadline()
        if deadline != self._deadline.get(id(port)):
            self._deadline[id(port)] = deadline
            if deadline is not None:
                self._tie += 1
                heapq.heappush(self._timers, (deadline, self._tie, port))

    def next_time(self) -> float | None:
        timers = self._timers
        while timers:
            t, _, port = timers[0]
            if self._deadline.get(id(port)) == t:
                break
            heapq.heappop(timers)
        candidates = [q[0][0] for q in (self._wire, timers) if q]
        return min(candidates) if candidates else None

    def step(self) -> bool:
        """Advance to the next event and process everything due then; False if nothing is left."""
        t = self.next_time()
        if t is None:
            return False
        self.now = max(self.now, t)
        now = self.now
        wire = self._wire
        while wire and wire[0][0] <= now:
            _, _, port, data = heapq.heappop(wire)
            port.receive_frame(data, now)
            self.settle(port)
        timers = self._timers
        while timers and timers[0][0] <= now:
            t, _, port = heapq.heappop(timers)
            if self._deadline.get(id(port)) != t:
                continue
            self._deadline[id(port)] = None
            port.handle_timer(now)
            self.settle(port)
        return True

    def run_until(self, t: float, stop: Callable[[], bool] | None = None) -> None:
        """Run until virtual time ``t`` (or until ``stop()`` is true after a step)."""
        while True:
            nt = self.next_time()
            if nt is None or nt > t:
                self.now = max(self.now, t)
                return
            self.step()
            if stop is not None and stop():
                return

    def poke(self, port: Port) -> None:
        """Call after giving a port a command outside ``step`` (associate, ...)."""
        self.settle(port)
