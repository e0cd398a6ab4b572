"""An asyncio event loop on a virtual clock: time jumps to the next timer when nothing is ready.

For running the conformance cases against in-process sans-IO ports (``links.SimDut``): no file
descriptors, no threads, so "waiting for I/O" can only mean "waiting for the next timer", and the
loop can advance its clock instead of sleeping. A run of many simulated seconds takes
milliseconds and is deterministic.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _ClockSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)  # the loop's self-pipe only
        if not ready and timeout is not None and timeout > 0:
            self._loop.now += timeout
        elif not ready and timeout is None:
            raise RuntimeError("virtual clock: nothing scheduled and nothing ready (deadlock)")
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        super().__init__(_ClockSelector(self))

    def time(self) -> float:
        return self.now


def run(coro: Coroutine[Any, Any, T], *, start: float = 1000.0) -> T:
    """``asyncio.run`` on a virtual clock."""
    loop = VirtualClockLoop(start)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
