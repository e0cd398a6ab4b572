#!/usr/bin/env python3
"""Benchmark: decoding ECP/VDP frames from a pcap, evb vs tshark, side by side in one run.

    .venv/bin/python bench/decode.py [--frames 200000] [--rounds 3] [--json]

Builds a classic pcap of N frames, each an ECP request whose VDP ULPDU is a VSI Manager ID
TLV + an Associate TLV with one MAC/VID entry (requests and responses alternate, 5000
distinct VSIs, MACs and VIDs, as in a capture of many keep-alives), then times, alternating
the tools round by round:

* tshark  ``tshark -r FILE -T fields -e ecp.seq`` (the issue's command; ``ecp.seq`` is the
  draft-ECP field, so tshark still dissects everything but prints empty lines) and
  ``-e ecp.seqno`` (the ratified sequence number), output to /dev/null;
* evb     reading the file with scapy's RawPcapReader (what ``evb decode`` uses) and
  ``evb.frame.decode_frame`` on every frame into frozen dataclasses, every field decoded.

Each tool's best round is reported as frames/s, with evb's ratio to each tshark variant.
It also checks that both decoded the same sequence numbers. A benchmark, not a test: it
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evb.capture import read_capture, write_pcap
from evb.ecp.wire import Ecpdu, EcpOp
from evb.ethernet import NEAREST_CUSTOMER_BRIDGE
from evb.frame import build_frame, decode_frame
from evb.vdp.wire import (
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpPdu,
    VdpStatus,
    VsiManagerIdTlv,
    VsiTlv,
)

STATION = bytes.fromhex("02000000" + "0a01")
BRIDGE = bytes.fromhex("02000000" + "0b01")


def make_frames(n: int, vsis: int = 5000) -> list[bytes]:
    mgr = VsiManagerIdTlv.from_text("labmgr")
    frames = []
    for i in range(n):
        k = (i // 2) % vsis
        response = i % 2 == 1
        vsi = VsiTlv(
            VdpMode.ASSOC,
            VdpStatus.reply() if response else VdpStatus.request(),
            5,
            4,
            5,
            uuid.UUID(int=(0x5A0F1C2E << 96) | k).bytes,
            FilterFormat.MAC_VID,
            (FilterEntry(vid=2 + k % 4000, mac=bytes.fromhex("52000000") + k.to_bytes(2, "big")),),
        )
        pdu = Ecpdu(EcpOp.REQUEST, 1, (i // 2) % 65535 + 1, VdpPdu((mgr, vsi)))
        frames.append(build_frame(NEAREST_CUSTOMER_BRIDGE, BRIDGE if response else STATION, pdu))
    return frames


def time_tshark(path: Path, field: str) -> float:
    t = time.perf_counter()
    subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", field],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def tshark_seqs(path: Path) -> list[int]:
    res = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "ecp.seqno"],
        check=True,
        capture_output=True,
        text=True,
    )
    return [int(x) for x in res.stdout.split()]


def time_evb(path: Path) -> tuple[float, list[int]]:
    seqs = []
    t = time.perf_counter()
    for cf in read_capture(path):
        seqs.append(decode_frame(cf.data).pdu.seq)  # type: ignore[union-attr]
    return time.perf_counter() - t, seqs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a = ap.parse_args()
    if not shutil.which("tshark"):
        print("bench/decode.py: tshark is not installed (apt-get install -y tshark)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pcap"
        write_pcap(path, [(1.7e9 + i * 1e-4, f) for i, f in enumerate(make_frames(a.frames))])
        ours_seqs: list[int] = []
        best = {"evb": float("inf"), "tshark ecp.seq": float("inf"), "tshark ecp.seqno": float("inf")}
        for _ in range(a.rounds):
            best["tshark ecp.seq"] = min(best["tshark ecp.seq"], time_tshark(path, "ecp.seq"))
            dt, ours_seqs = time_evb(path)
            best["evb"] = min(best["evb"], dt)
            best["tshark ecp.seqno"] = min(best["tshark ecp.seqno"], time_tshark(path, "ecp.seqno"))
        same = ours_seqs == tshark_seqs(path)
    rate = {k: a.frames / v for k, v in best.items()}
    result = {
        "frames": a.frames,
        "rounds": a.rounds,
        "frames_per_s": {k: round(v) for k, v in rate.items()},
        "ratio_vs_tshark_ecp_seq": round(rate["evb"] / rate["tshark ecp.seq"], 3),
        "ratio_vs_tshark_ecp_seqno": round(rate["evb"] / rate["tshark ecp.seqno"], 3),
        "same_sequence_numbers": same,
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{a.frames} ECP/VDP frames, best of {a.rounds} rounds")
        for k, v in rate.items():
            print(f"  {k:<18} {v:>10,.0f} frames/s")
        print(f"  ratio evb / tshark -e ecp.seq   : {result['ratio_vs_tshark_ecp_seq']:.2f}x")
        print(f"  ratio evb / tshark -e ecp.seqno : {result['ratio_vs_tshark_ecp_seqno']:.2f}x")
        print(f"  both decoded the same sequence numbers: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
