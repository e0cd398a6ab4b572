"""Shared test helpers: the reference captures in ``tests/data/pcap/`` and the lab's constants.

The captures are described frame by frame in ``tests/data/pcap/README.md`` (provenance in
``PROVENANCE.md``). Frame numbers are 1-based, as in that README and in Wireshark.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from pathlib import Path

from scapy.utils import RawPcapReader

PCAP_DIR = Path(__file__).parent / "data" / "pcap"

#: The lab set-up common to all captures (captures README, "Set-up common to all files").
STATION_MAC = bytes.fromhex("020000000a01")
BRIDGE_MAC = bytes.fromhex("020000000b01")
LABMGR = b"labmgr".ljust(16, b"\0")  #: Manager ID "labmgr", ASCII, zero-filled to 16 octets
U1 = uuid.UUID("5a0f1c2e-0001-4d3c-8e21-0a0000000001").bytes
U2 = uuid.UUID("5a0f1c2e-0002-4d3c-8e21-0a0000000002").bytes
U3 = uuid.UUID("5a0f1c2e-0003-4d3c-8e21-0a0000000003").bytes

_LINKTYPE_ETHERNET = 1


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One frame of a capture file."""

    number: int  #: 1-based, as in the captures README
    usec: int  #: pcap timestamp in microseconds since the file's first frame
    data: bytes  #: the whole frame as captured (no FCS)

    @property
    def seconds(self) -> float:
        return self.usec / 1e6


def capture_names() -> list[str]:
    """File names of the reference captures, sorted."""
    return sorted(p.name for p in PCAP_DIR.glob("*.pcap"))


@functools.cache
def read_capture(name: str) -> tuple[CapturedFrame, ...]:
    """All frames of ``tests/data/pcap/<name>``, with timestamps from the pcap record headers."""
    reader = RawPcapReader(str(PCAP_DIR / name))
    try:
        if reader.linktype != _LINKTYPE_ETHERNET or getattr(reader, "nano", False):
            raise ValueError(f"{name}: expected a microsecond pcap of Ethernet frames")
        records = [(meta.sec * 1_000_000 + meta.usec, meta.caplen, meta.wirelen, bytes(pkt)) for pkt, meta in reader]
    finally:
        reader.close()
    t0 = records[0][0] if records else 0
    frames = []
    for number, (ts, caplen, wirelen, data) in enumerate(records, 1):
        if caplen != wirelen:
            raise ValueError(f"{name} frame {number}: truncated by the capture ({caplen} of {wirelen} octets)")
        frames.append(CapturedFrame(number, ts - t0, data))
    return tuple(frames)


def capture_frame(name: str, number: int) -> CapturedFrame:
    """Frame ``number`` (1-based) of a capture."""
    return read_capture(name)[number - 1]
