"""Shared pytest configuration and the location of the reference captures.

``capture_files()`` is a plain function (usable at collection time, e.g. in ``parametrize``)
and also a session fixture of the same name.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

#: Copies of the reference captures kept with the tests (see PROVENANCE.md there).
LOCAL_CAPTURES = Path(__file__).parent / "data" / "pcap"
#: The team's shared originals, used while the copies do not exist.
SHARED_CAPTURES = Path("/work/shared/captures")


def capture_files() -> list[Path]:
    """The reference ``.pcap`` files: ``tests/data/pcap/`` if it has any, else ``/work/shared/captures``."""
    local = sorted(LOCAL_CAPTURES.glob("*.pcap"))
    return local if local else sorted(SHARED_CAPTURES.glob("*.pcap"))


@functools.cache
def capture_frames() -> tuple[tuple[str, int, bytes], ...]:
    """Every frame of every capture as ``(file name, 1-based frame number, bytes)``."""
    from scapy.utils import RawPcapReader  # imported here: scapy is slow to import

    frames = []
    for path in capture_files():
        reader = RawPcapReader(str(path))
        try:
            frames += [(path.name, number, bytes(pkt)) for number, (pkt, _meta) in enumerate(reader, 1)]
        finally:
            reader.close()
    return tuple(frames)


@pytest.fixture(name="capture_files", scope="session")
def _capture_files_fixture() -> list[Path]:
    return capture_files()
