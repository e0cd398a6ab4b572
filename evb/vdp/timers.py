"""Per-VSI timers for thousands of VSIs: buckets of equal deadlines on a heap of times.

VSIs answered in one PDU get the same deadline (``now + constant``), so a port with 6,000 VSIs
has a few hundred distinct deadlines: one heap entry per distinct time and a list per time is
much cheaper, in time and memory, than one heap entry per VSI. Each record has ``deadline``
(when its timer runs out, ``None`` when stopped) and ``armed`` (the bucket it sits in). Moving
a deadline later (a refresh) only changes ``deadline``; the record is re-filed when its old
bucket comes up. Moving it earlier files it again at once; the old entry is then ignored
(``armed`` no longer names it). Removing a record: set ``armed = deadline = None``.
"""

from __future__ import annotations

import heapq
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    deadline: float | None
    armed: float | None


R = TypeVar("R", bound=Timed)


class Buckets(Generic[R]):
    def __init__(self) -> None:
        self._times: list[float] = []
        self._buckets: dict[float, list[R]] = {}

    def arm(self, rec: R) -> None:
        """File ``rec`` for its ``deadline`` (call after setting it)."""
        d = rec.deadline
        if d is None or (rec.armed is not None and d >= rec.armed):
            return
        rec.armed = d
        bucket = self._buckets.get(d)
        if bucket is None:
            self._buckets[d] = [rec]
            heapq.heappush(self._times, d)
        else:
            bucket.append(rec)

    def earliest(self) -> float | None:
        """The earliest deadline of a live record (stale entries are dropped on the way)."""
        times, buckets = self._times, self._buckets
        while times:
            t = times[0]
            keep = []
            for rec in buckets[t]:
                if rec.armed != t:
                    continue  # removed, or filed again earlier
                d = rec.deadline
                if d is None:
                    rec.armed = None
                elif d > t:
                    rec.armed = None
                    self.arm(rec)  # refreshed: file it for its new deadline
                else:
                    keep.append(rec)
            if keep:
                buckets[t] = keep
                return t
            heapq.heappop(times)
            del buckets[t]
        return None

    def pop_due(self, now: float) -> list[R]:
        """Every live record whose deadline is ≤ ``now``, earliest first; they are disarmed."""
        out: list[R] = []
        while (t := self.earliest()) is not None and t <= now:
            heapq.heappop(self._times)
            bucket = self._buckets.pop(t)
            for rec in bucket:
                rec.armed = None
            out.extend(bucket)
        return out

    def clear(self) -> None:
        self._times.clear()
        self._buckets.clear()

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())
