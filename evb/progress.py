"""A small progress bar for long runs, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``Progress("decoding", total=n)``; ``update(done)``; ``close()``. Silent off a TTY."""

    def __init__(self, label: str, *, total: int, stream: TextIO | None = None, min_interval: float = 0.1) -> None:
        self.label = label
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._shown = False
        self._min = min_interval
        self._start = time.monotonic()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self._min and done < self.total:
            return
        if not self._shown and now - self._start < 0.5:  # short runs draw nothing
            return
        self._last = now
        self._shown = True
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}%")
        self.stream.flush()

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * (len(self.label) + 41) + "\r")
            self.stream.flush()
