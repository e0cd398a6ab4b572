"""Deterministic fuzzing of ``decode_frame`` with mutations of the reference captures.

Oracle, for every case, strict and lenient: the decoder returns or raises ``DecodeError``,
nothing else (no ``IndexError``, ``struct.error``, construct error, ``ValueError``); what
decodes re-encodes to exactly the input; strict decoding succeeds exactly when lenient
decoding succeeds without an ``InvalidTlv``, and then both give the same frame.

The cases (seeded ``random.Random``, so every run checks the same ones) are every unique
capture frame, untagged and VLAN-tagged, each mutated by: truncation at every length, every
single-bit flip, octet replacements, TLV length and type changes, filter-count changes, ECP
header changes, extension with garbage, and stacks of random mutations. Duplicates are
checked once; the number of distinct cases is asserted so the test cannot silently shrink.
``fuzz/long_fuzz.py`` runs the same oracle for as long as one wants.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from evb.ecp.wire import Ecpdu
from evb.errors import DecodeError
from evb.ethernet import VlanTag
from evb.frame import decode_frame, encode_frame
from tests.conftest import capture_frames
from tests.fuzzing import check_frame, frame_layout, mutations
from tests.strategies import DETERMINISTIC

SEED = 0x802_1B6
MIN_CASES = 100_000


def tagged(frame: bytes, tags: tuple[VlanTag, ...]) -> bytes:
    return frame[:12] + b"".join(t.encode() for t in tags) + frame[12:]


def seed_frames() -> list[bytes]:
    """Unique capture frames; half of them behind a C-tag, a quarter behind an S-tag and a C-tag."""
    unique = list(dict.fromkeys(data for _name, _number, data in capture_frames()))
    one = [tagged(f, (VlanTag(vid=10 + i, pcp=i % 8),)) for i, f in enumerate(unique[::2])]
    two = [tagged(f, (VlanTag(vid=100, tpid=0x88A8), VlanTag(vid=i, dei=True))) for i, f in enumerate(unique[1::4])]
    return unique + one + two


def test_mutated_captures_only_raise_decode_error_and_reencode_exactly() -> None:
    seeds = seed_frames()
    assert len(seeds) > 150, "the reference captures are missing"
    seen: set[bytes] = set()
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    failures: list[str] = []
    for index, frame in enumerate(seeds):
        rng = random.Random(f"{SEED}:{index}")
        stacked = 200 if index < len(seeds) // 2 else 60
        for kind, case in mutations(frame, rng, stacked_per_frame=stacked):
            if case in seen:
                continue
            seen.add(case)
            kinds[kind] += 1
            try:
                outcomes[check_frame(case)] += 1
            except Exception as exc:  # any escape is a finding: collect it with its input
                failures.append(f"{kind} {case.hex()}: {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} failing cases, first ones:\n" + "\n".join(failures[:10])
    total = sum(kinds.values())
    assert total >= MIN_CASES, f"only {total} distinct cases ({dict(kinds)})"
    # every class contributed, and the mutations reach all three outcomes in bulk
    assert all(kinds[k] > 0 for k in ("truncate", "bitflip", "replace", "length", "type", "count", "header", "extend"))
    assert min(outcomes["rejected"], outcomes["invalid-tlv"], outcomes["decoded"]) > 1000, outcomes


def test_truncated_capture_frames_decode_only_at_tlv_boundaries() -> None:
    """A prefix of a frame decodes exactly when it ends where a complete PDU can end.

    LLDPDUs need their End TLV, so only a cut inside the padding decodes; an ECPDU has no
    length field and VDP needs no End TLV, so a VDP request cut right after one of its TLVs is
    a valid shorter request; an acknowledgement is its 4-octet header.
    """
    for data in dict.fromkeys(d for _name, _number, d in capture_frames()):
        whole = decode_frame(data)
        content_end = len(data) - whole.pad
        layout = frame_layout(data)
        ends = {content_end}
        if isinstance(whole.pdu, Ecpdu):
            ends.add(layout.payload + 4)
            ends.update(off + 2 + (((data[off] << 8) | data[off + 1]) & 0x1FF) for off in layout.tlv_headers)
        for n in range(len(data)):
            try:
                frame = decode_frame(data[:n])
            except DecodeError:
                assert n < content_end and n not in ends, f"prefix {n} of {data.hex()} does not decode"
                continue
            assert n in ends or n >= content_end, f"prefix {n} of {data.hex()} decodes"
            assert encode_frame(frame) == data[:n]


@DETERMINISTIC
@given(
    st.sampled_from([b"\x88\xcc", b"\x89\x40", b"\x88\xb7", b"\x81\x00\x00\x0a\x89\x40", b"\x88\xb7\x00\x1b\x3f"]),
    st.binary(max_size=120),
)
def test_random_payloads_only_raise_decode_error(ethertype: bytes, payload: bytes) -> None:
    check_frame(bytes(12) + ethertype + payload)
