"""Reading packet captures (pcap and pcapng) through scapy's raw readers.

An adapter: it owns file I/O and nothing protocol-specific. Frames come out as
``CapturedFrame`` with a 1-based number (as Wireshark counts) and a float timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evb._fast import fast_constructor
from evb.errors import EvbError

LINKTYPE_ETHERNET = 1


class CaptureError(EvbError):
    """A capture file cannot be read (missing, not pcap/pcapng, not Ethernet)."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    number: int  #: 1-based
    time: float  #: seconds since the epoch
    data: bytes
    linktype: int = LINKTYPE_ETHERNET


_make = fast_constructor(CapturedFrame)


def read_capture(path: str | Path) -> Iterator[CapturedFrame]:
    """Yield every frame of a pcap or pcapng file."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    try:
        reader = RawPcapReader(str(path))
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except (Scapy_Exception, OSError, EOFError, ValueError) as exc:
        raise CaptureError(f"{path}: not a pcap or pcapng file ({exc})") from None
    try:
        classic_linktype = getattr(reader, "linktype", None)
        scale = 1e9 if getattr(reader, "nano", False) else 1e6
        number = 0
        packets = iter(reader)
        while True:
            try:
                data, meta_ = next(packets)
            except StopIteration:
                return
            except (Scapy_Exception, OSError, ValueError, EOFError) as exc:
                raise CaptureError(f"{path}: frame {number + 1}: unreadable ({exc})") from None
            number += 1
            meta: Any = meta_
            if classic_linktype is not None:
                yield _make(number, meta[0] + meta[1] / scale, data, classic_linktype)
            else:
                yield _make(number, ((meta.tshigh << 32) | meta.tslow) / meta.tsresol, data, meta.linktype)
    finally:
        reader.close()


def write_pcap(path: str | Path, frames: list[tuple[float, bytes]]) -> None:
    """Write frames (time, bytes) to a classic pcap file (Ethernet, microseconds)."""
    import struct

    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for ts, data in frames:
            sec = int(ts)
            usec = round((ts - sec) * 1e6)
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            f.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            f.write(data)
