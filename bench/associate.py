#!/usr/bin/env python3
"""Benchmark: associating N VSIs station → bridge over veth, evb vs lldpad, side by side.

    sudo .venv/bin/python bench/associate.py [--n 100 1000 5000] [--mixed-n 1000] [--json]

For each N (one MAC/VID filter entry per VSI), in fresh network namespaces (interop/lab.py):

* **evb ↔ evb**: our bridge and our station with their default settings (packing as many
  VSIs per ECPDU as fit, 3 ms between new ECPDUs); the N VSIs are handed over in one
  ``evb vsi assoc --from-file`` call (the control API's ``vsi.bulk``);
* **lldpad ↔ lldpad**: the Debian lldpad in both roles, driven with ``vdptool`` as lab.sh does
  (one vdptool per VSI, without -W, 8 at a time so that process start-up is not all we
  measure);
* **evb station ↔ lldpad bridge** (``--mixed-n``): our packing and pacing against lldpad.

Each time is read from a tshark capture on the link: from the first VDP request to the
station's acknowledgement of the last VDP answer. "lost" = VSIs without a successful answer
once the link has been quiet for 3 s. "ECPDUs" = ECP requests carrying VDP, each way. The ratio
is lldpad's time over ours. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evb.ecp.wire import Ecpdu, EcpOp
from evb.ethernet import parse_mac
from evb.vdp.wire import VdpPdu, VsiTlv
from interop.lab import STATION_MAC, Captured, Lab, missing_prerequisites

QUIET = 3.0


def vsi_uuid(i: int) -> str:
    return str(uuid.UUID(int=(0x5A0F1C2E << 96) | (0xB << 80) | (i + 1)))


def vsi_mac(i: int) -> str:
    return "52:00:" + ":".join(f"{b:02x}" for b in (i + 1).to_bytes(4, "big"))


def vsi_filter(i: int) -> str:
    return f"{2 + i % 4000}-{vsi_mac(i)}"


def analyse(frames: list[Captured], n: int) -> dict[str, Any]:
    """Time from the first VDP request to the station's ack of the last VDP answer; answered VSIs."""
    st_mac = parse_mac(STATION_MAC)
    first_req = None
    answered: set[bytes] = set()
    answer_seq_time: dict[int, float] = {}
    last_ack = None
    pdus = {"station": 0, "bridge": 0}
    for c in frames:
        f = c.frame
        if f is None or not isinstance(f.pdu, Ecpdu):
            continue
        e = f.pdu
        if e.op is EcpOp.REQUEST and isinstance(e.ulpdu, VdpPdu):
            side = "station" if f.src == st_mac else "bridge"
            pdus[side] += 1
            vsis = [t for t in e.ulpdu.tlvs if isinstance(t, VsiTlv)]
            if side == "station" and first_req is None and vsis:
                first_req = c.time
            if side == "bridge":
                new = [t for t in vsis if t.status.response and t.status.code == 0 and t.vsiid not in answered]
                if new:
                    answered.update(t.vsiid for t in new)
                    answer_seq_time[e.seq] = c.time
        elif e.op is EcpOp.ACK and f.src == st_mac and e.seq in answer_seq_time:
            last_ack = c.time
    took = None if first_req is None or last_ack is None else last_ack - first_req
    return {"seconds": took, "answered": len(answered), "lost": n - len(answered), "ecpdus": pdus}


def wait_quiet(lab: Lab, cap: Any, n: int, timeout: float) -> list[Captured]:
    """Poll the capture until all N are answered or nothing new came for QUIET seconds."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    frames: list[Captured] = []
    while time.monotonic() < deadline:
        frames = cap.frames()
        count = len(frames)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
            if analyse(frames, n)["answered"] >= n:
                time.sleep(0.5)  # the final acknowledgement
                return cap.frames()
        elif time.monotonic() - last_change > QUIET:
            break
        time.sleep(0.2)
    return frames


def run_evb(n: int) -> dict[str, Any]:
    with Lab() as lab:
        br = lab.start_bridge()
        st = lab.start_station()
        lab.wait_evb(st, br)
        cap = lab.capture("bridge")
        vsis = [
            {"uuid": vsi_uuid(i), "type_id": 5, "type_version": 4, "manager_id": "labmgr", "filters": [vsi_filter(i)]}
            for i in range(n)
        ]
        t0 = time.monotonic()
        result = st.call("vsi.bulk", {"mode": "assoc", "vsis": vsis, "wait": True}, timeout=600)
        api = time.monotonic() - t0
        frames = wait_quiet(lab, cap, n, timeout=120)
        out = analyse(frames, n) | {"api_seconds": round(api, 3), "agent_ok": result["ok"]}
        cap.stop()
        return out


def run_lldpad(n: int) -> dict[str, Any]:
    with Lab() as lab:
        br = lab.start_lldpad("bridge", loglevel=3)
        st = lab.start_lldpad("station", loglevel=3)
        lab.wait_evb(st, br)
        cap = lab.capture("bridge")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: st.vdp("assoc", uuid=vsi_uuid(i), filters=[vsi_filter(i)], wait=False), range(n)))
        frames = wait_quiet(lab, cap, n, timeout=max(120, n * 0.05))
        cap.stop()
        return analyse(frames, n)


def run_mixed(n: int) -> dict[str, Any]:
    with Lab() as lab:
        br = lab.start_lldpad("bridge", loglevel=3)
        st = lab.start_station()
        lab.wait_evb(st, br)
        cap = lab.capture("bridge")
        vsis = [
            {"uuid": vsi_uuid(i), "type_id": 5, "type_version": 4, "manager_id": "labmgr", "filters": [vsi_filter(i)]}
            for i in range(n)
        ]
        st.call("vsi.bulk", {"mode": "assoc", "vsis": vsis, "wait": False}, timeout=600)
        frames = wait_quiet(lab, cap, n, timeout=max(120, n * 0.02))
        cap.stop()
        return analyse(frames, n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--mixed-n", type=int, default=1000, help="evb station ↔ lldpad bridge (0: skip)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    problem = missing_prerequisites(lldpad=True, tshark=True)
    if problem:
        print(f"bench/associate.py: {problem}", file=sys.stderr)
        return 2
    rows = []
    for n in a.n:
        ours = run_evb(n)
        theirs = run_lldpad(n)
        ratio = None
        if ours["seconds"] and theirs["seconds"]:
            ratio = round(theirs["seconds"] / ours["seconds"], 1)
        rows.append({"n": n, "evb": ours, "lldpad": theirs, "lldpad_over_evb": ratio})
        if not a.json:
            print(
                f"N={n:>5}  evb: {fmt(ours)}   lldpad: {fmt(theirs)}   "
                f"ratio lldpad/evb: {ratio if ratio is not None else '-'}x",
                flush=True,
            )
    mixed = run_mixed(a.mixed_n) if a.mixed_n else None
    if mixed and not a.json:
        print(f"evb station -> lldpad bridge, N={a.mixed_n}: {fmt(mixed)}")
    if a.json:
        print(json.dumps({"rows": rows, "mixed": mixed}))
    return 0


def fmt(r: dict[str, Any]) -> str:
    s = "-" if r["seconds"] is None else f"{r['seconds']:.3f} s"
    return f"{s}, lost {r['lost']}, ECPDUs {r['ecpdus']['station']}/{r['ecpdus']['bridge']}"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"bench/associate.py: {exc}", file=sys.stderr)
        sys.exit(1)
