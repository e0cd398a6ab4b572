#!/usr/bin/env python3
"""Benchmark: hairpin forwarding through the bridge's data plane, side by side in one run.

    sudo .venv/bin/python bench/dataplane.py [--frames 1000000] [--rounds 5] [--vsis 100000]
        [--variants bare,kernel-10,kernel-N,kernel-N-lean,emulated] [--json]

One hypervisor namespace and one bridge namespace, joined by two veth pairs (``hv0``–``p0``,
the port under test, and ``hv1``–``p1``, a second station port that only makes the bridge a
bridge). A sender in the hypervisor namespace writes 64-octet frames (60 + FCS) tagged VID 10
from VM1 to VM2, both behind ``hv0``: the bridge must send each one back out of the port it came
in (reflective relay). What comes back is counted from ``hv0``'s ``rx_packets``. The sender uses
a ``PACKET_MMAP`` transmit ring (``evb/aio/ring.py``) pinned to CPU 0, one ``send()`` per 256
frames, so the kernel's forwarding path and not Python dominates its cost; the emulated
forwarder runs on CPU 1.

Data planes, ``--rounds`` rounds of ``--frames`` frames each; in every round the kernel
variants run one after the other (interleaved: this machine's speed drifts over a minute);
the best and the median round count:

* ``bare``: the Linux bridge with ``hairpin on``, no nftables (the anchor);
* ``kernel-10`` / ``kernel-N``: our kernel backend (``KernelDataPlane``: the same bridge plus the
  nftables admission table, forwarded/reflected counters on) with 10 and ``--vsis`` associated
  VSIs (one MAC/VID entry each, VM1 and VM2 among them), programmed through the data-plane
  interface in one batch — the time that takes is "programming";
* ``kernel-N-lean``: the same with ``forward_counters = false`` (no counting rule in the forward hook);
* ``emulated``: our emulated backend (``EmulatedDataPlane``, AF_PACKET rings, in its own
  process, as in ``evb bridge run --dataplane emulated``) with ``--vsis`` VSIs: its top speed
  (the sender at full speed), then a paced run at ``--paced`` frames/s for ``--paced-seconds``:
  "lost" = sent − received there.

``--variants`` picks some of them (default all; ``N`` stands for ``--vsis``), e.g.
``bare,kernel-N-lean`` for a quick comparison. Each run also reports the CPU time per frame
(the sender and ``ksoftirqd`` on its CPU: the whole forwarding path runs there), which other
jobs on a busy machine disturb less than frames/s.

Ratios (of those measured): kernel-N / bare (with and without forward counters; best and
median rounds; and of CPU time per frame, bare / kernel), emulated / kernel-N. A benchmark,
not a test: it asserts nothing.
Targets (issue 5): kernel-N ≥ 0.85× bare; emulated ≥ 0.15× kernel and 0 lost at a paced
150,000 frames/s; programming 100,000 VSIs ≤ 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evb.aio.ring import TX_DATA, PacketRing
from evb.vdp.wire import FilterEntry, VdpMode

HERE = Path(__file__).resolve()
VM1, VM2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
VID = 10
ETHERTYPE = 0x88B5
MANAGER = bytes(16)


def frame(src: bytes, dst: bytes, vid: int = VID) -> bytes:
    return (dst + src + struct.pack("!HHH", 0x8100, vid, ETHERTYPE) + b"evb-bench").ljust(60, b"\0")


def vsis(n: int) -> list[tuple[tuple[bytes, int, bytes], FilterEntry]]:
    """VM1, VM2, then n-2 more VSIs with distinct MAC/VID entries."""
    out = []
    for i in range(n):
        mac = (VM1, VM2)[i] if i < 2 else b"\x52" + i.to_bytes(5, "big")
        vid = VID if i < 2 else 1 + i % 4000
        out.append(((MANAGER, 1, uuid.UUID(int=i + 1).bytes), FilterEntry(vid=vid, mac=mac)))
    return out


# ---------------------------------------------------------------------- workers (own processes)


def rx_packets(ifname: str) -> int:
    with open(f"/sys/class/net/{ifname}/statistics/rx_packets") as f:
        return int(f.read())


def ksoftirqd(cpu: int) -> str | None:
    """``/proc/PID/schedstat`` of ``ksoftirqd/<cpu>`` (its first field: the CPU time it has run, ns)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == f"ksoftirqd/{cpu}":
                    return f"/proc/{pid}/schedstat"
    return None


def run_ns(schedstat: str | None) -> int:
    if schedstat is None:
        return 0
    with open(schedstat) as f:
        return int(f.read().split()[0])


def worker_send(ifname: str, count: int, rate: float, cpu: int) -> dict[str, Any]:
    """Send ``count`` frames VM1 → VM2 (``rate`` frames/s, 0 = as fast as possible). Besides the
    wall time, ``cpu``: the CPU time the sender and ``ksoftirqd`` of its CPU spent meanwhile
    (the whole forwarding path runs in softirq on the sender's CPU, mostly in the sender's own
    context), which other jobs on a busy machine disturb less than the wall time."""
    os.sched_setaffinity(0, {cpu})
    ring = PacketRing(ifname, tx_frames=4096)
    m, fs, base, slots = ring.map, ring.frame_size, ring.rx_frames * ring.frame_size, ring.tx_frames
    data = frame(VM1, VM2)
    for i in range(slots):  # every slot holds the same frame: sending is setting its status
        off = base + i * fs
        m[off + TX_DATA : off + TX_DATA + len(data)] = data
        struct.pack_into("=II", m, off, 0, len(data))
    warm = frame(VM2, b"\xff" * 6)  # VM2 speaks first: every data plane learns it behind hv0
    warmer = PacketRing(ifname, tx_frames=8)
    warmer.queue(warm)
    warmer.flush()
    time.sleep(0.3)
    warmer.close()
    send = ring.sock.send
    batch, sent, i = 256, 0, 0
    softirqd = ksoftirqd(cpu)
    rx0 = rx_packets(ifname)
    c0, s0 = time.process_time(), run_ns(softirqd)
    t0 = time.perf_counter()
    while sent < count:
        if rate:
            due = int((time.perf_counter() - t0) * rate) - sent
            if due <= 0:
                time.sleep(0.0002)
                continue
            k = min(batch, due, count - sent)
        else:
            k = min(batch, count - sent)
        for _ in range(k):
            off = base + i * fs
            while m[off] & 7:  # still the kernel's: let it send
                send(b"")
            m[off] = 1  # TP_STATUS_SEND_REQUEST
            i = i + 1 if i + 1 < slots else 0
        send(b"")
        sent += k
    t1 = time.perf_counter()
    c1, s1 = time.process_time(), run_ns(softirqd)
    rx1 = rx_packets(ifname)
    time.sleep(0.5)
    rx2 = rx_packets(ifname)
    ring.close()
    cpu_seconds = c1 - c0 + (s1 - s0) / 1e9
    return {"sent": sent, "seconds": t1 - t0, "cpu": cpu_seconds, "received_during": rx1 - rx0, "received": rx2 - rx0}


def worker_emulated(ports: list[str], n: int, cpu: int) -> None:
    """Run the emulated data plane with ``n`` VSIs on ``ports[0]`` until SIGTERM; print its status."""
    from evb.vepa_bridge.emulated import EmulatedDataPlane

    os.sched_setaffinity(0, {cpu})

    async def main() -> dict[str, Any]:
        dp = EmulatedDataPlane(ports)
        dp.start()
        for p in ports:
            dp.port_up(p, reflective_relay=True)
        t0 = time.perf_counter()
        for key, entry in vsis(n):
            dp.associate(ports[0], key, VdpMode.ASSOC, (entry,))
        programming = time.perf_counter() - t0
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(json.dumps({"ready": True, "programming": programming}), flush=True)
        await stop.wait()
        status = dp.status()
        dp.close()
        return status | {"programming": programming}

    print(json.dumps(asyncio.run(main())), flush=True)


# ---------------------------------------------------------------------- the bench


def sh(*cmd: str, check: bool = True) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and res.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
    return res.stdout


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        tag = f"evbdp{os.getpid()}"
        self.hv, self.br = f"{tag}-hv", f"{tag}-br"

    def __enter__(self) -> Bench:
        sh("ip", "netns", "add", self.hv)
        sh("ip", "netns", "add", self.br)
        for i in (0, 1):
            sh("ip", "link", "add", f"hv{i}", "netns", self.hv, "type", "veth", "peer", f"p{i}", "netns", self.br)
            sh("ip", "-n", self.hv, "link", "set", f"hv{i}", "up")
            sh("ip", "-n", self.br, "link", "set", f"p{i}", "up")
        for ns in (self.hv, self.br):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        return self

    def __exit__(self, *exc: object) -> None:
        sh("ip", "netns", "del", self.hv, check=False)
        sh("ip", "netns", "del", self.br, check=False)

    def python(self, ns: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", ns, sys.executable, str(HERE), *args]

    def send(self, count: int, rate: float = 0) -> dict[str, Any]:
        out = sh(*self.python(self.hv, "_send", "hv0", str(count), str(rate), "0"))
        result: dict[str, Any] = json.loads(out)
        return result

    def settle(self, quiet: float = 0.5, limit: float = 10.0) -> None:
        """Wait until nothing has arrived at ``hv0`` for ``quiet`` seconds (at most ``limit``)."""
        read = ["ip", "netns", "exec", self.hv, "cat", "/sys/class/net/hv0/statistics/rx_packets"]
        last, deadline = sh(*read), time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = sh(*read)
            if now == last:
                return
            last = now

    def best(self, label: str) -> dict[str, Any]:
        runs = [self.send(self.args.frames) for _ in range(self.args.rounds)]
        for r in runs:
            r["rate"] = r["received_during"] / r["seconds"]
        best = max(runs, key=lambda r: r["rate"])
        rates = ", ".join(f"{r['rate']:,.0f}" for r in runs)
        self.log(f"{label:12} {best['rate']:>10,.0f} frames/s   (runs: {rates})")
        return {"rate": best["rate"], "runs": [r["rate"] for r in runs], "lost": best["sent"] - best["received"]}

    def log(self, text: str) -> None:
        if not self.args.json:
            print(text, flush=True)

    def kernel_plane(self, *, forward_counters: bool = True) -> Any:
        from evb.vepa_bridge.kernel import DataPlaneError, KernelDataPlane

        prefix = ["ip", "netns", "exec", self.br]

        def runner(cmd: list[str], stdin: str | None) -> str:
            res = subprocess.run(prefix + cmd, input=stdin, capture_output=True, text=True, check=False)
            if res.returncode:
                raise DataPlaneError(f"{' '.join(cmd)}: {res.stderr.strip()}")
            return res.stdout

        return KernelDataPlane(
            ["p0", "p1"], bridge="evbdpbr", table="evbdp", runner=runner, forward_counters=forward_counters
        )

    def run(self) -> dict[str, Any]:
        """The kernel variants interleaved round by round (this machine's speed drifts by ±10 %
        over a minute): per round, each variant is programmed, measured once and removed."""
        a = self.args
        result: dict[str, Any] = {"frames": a.frames, "rounds": a.rounds, "vsis": a.vsis}
        full, lean = self.kernel_plane(), self.kernel_plane(forward_counters=False)
        variants: dict[str, tuple[Any, int]] = {
            "bare": (None, 0),
            "kernel-10": (full, 10),
            f"kernel-{a.vsis}": (full, a.vsis),
            f"kernel-{a.vsis}-lean": (lean, a.vsis),
        }
        variants = {k: v for k, v in variants.items() if k in a.chosen}
        rates: dict[str, list[float]] = {v: [] for v in variants}
        cpu: dict[str, list[float]] = {v: [] for v in variants}  #: µs per frame
        programming: dict[str, list[float]] = {v: [] for v in variants}
        full.start()  # the bridge (both planes use the same one)
        try:
            for p in ("p0", "p1"):
                full.port_up(p, reflective_relay=True)
            for rnd in range(a.rounds if variants else 0):
                for label, (dp, n) in variants.items():
                    full.cleanup_table()
                    if dp is not None:
                        dp.vsis.clear()
                        dp._refs.clear()
                        dp._nft(dp._table_script())
                        dp.started = True
                        t0 = time.perf_counter()
                        with dp.batch():
                            for key, entry in vsis(n):
                                dp.associate("p0", key, VdpMode.ASSOC, (entry,))
                        programming[label].append(time.perf_counter() - t0)
                    r = self.send(a.frames)
                    rates[label].append(r["received_during"] / r["seconds"])
                    cpu[label].append(r["cpu"] / max(r["received_during"], 1) * 1e6)
                    extra = f"  (programmed in {programming[label][-1]:.2f} s)" if dp is not None else ""
                    self.log(
                        f"round {rnd + 1}  {label:20} {rates[label][-1]:>10,.0f} frames/s"
                        f"  {cpu[label][-1]:.3f} µs CPU/frame{extra}"
                    )
        finally:
            full.close()
        for label in variants:
            runs, cpus = sorted(rates[label]), sorted(cpu[label])
            result[label] = {
                "rate": runs[-1],
                "median": runs[len(runs) // 2],
                "runs": rates[label],
                "cpu_us": cpus[0],
                "cpu_us_median": cpus[len(cpus) // 2],
            }
            if programming[label]:
                result[label]["programming"] = min(programming[label])
        if "emulated" in a.chosen:
            result["emulated"] = self.emulated()
        ratios: dict[str, float] = {}
        if "bare" in result:
            bare = result["bare"]
            for label in variants:
                if label != "bare":
                    k = result[label]
                    ratios[f"{label}/bare"] = k["rate"] / bare["rate"]
                    ratios[f"{label}/bare (medians)"] = k["median"] / bare["median"]
                    ratios[f"{label}/bare (CPU per frame, best)"] = bare["cpu_us"] / k["cpu_us"]
                    ratios[f"{label}/bare (CPU per frame, medians)"] = bare["cpu_us_median"] / k["cpu_us_median"]
        if "emulated" in result and f"kernel-{a.vsis}" in result:
            ratios[f"emulated/kernel-{a.vsis}"] = result["emulated"]["rate"] / result[f"kernel-{a.vsis}"]["rate"]
        result["ratios"] = ratios
        if f"kernel-{a.vsis}" in result:
            result["programming"] = result[f"kernel-{a.vsis}"]["programming"]
        return result

    def emulated(self) -> dict[str, Any]:
        a = self.args
        proc = subprocess.Popen(
            self.python(self.br, "_emulated", str(a.vsis), "1", "p0", "p1"), stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        try:
            ready = json.loads(proc.stdout.readline())
            self.log(f"programmed {a.vsis:,} VSIs into the emulated data plane in {ready['programming']:.3f} s")
            top = self.best("emulated")
            self.settle()  # the forwarder's backlog of the last full-speed run is not the paced run's
            paced = self.send(int(a.paced * a.paced_seconds), a.paced)
            paced["lost"] = paced["sent"] - paced["received"]
            paced["rate"] = paced["sent"] / paced["seconds"]
            self.log(
                f"emulated paced at {paced['rate']:,.0f} frames/s for {paced['seconds']:.1f} s: "
                f"{paced['sent']:,} sent, {paced['received']:,} received, {paced['lost']:,} lost"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        status = json.loads(out.strip().splitlines()[-1])
        return top | {"paced": paced, "programming": ready["programming"], "status": status}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_send":
        ifname, count, rate, cpu = sys.argv[2:6]
        print(json.dumps(worker_send(ifname, int(count), float(rate), int(cpu))))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_emulated":
        worker_emulated(sys.argv[4:], int(sys.argv[2]), int(sys.argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000, help="frames per run (default 1,000,000)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--vsis", type=int, default=100_000, help="associated VSIs for the big runs (default 100,000)")
    ap.add_argument("--paced", type=float, default=150_000, help="paced rate for the emulated loss run (default 150k)")
    ap.add_argument("--paced-seconds", type=float, default=5.0, help="length of the paced run (default 5 s)")
    ap.add_argument(
        "--variants",
        default="bare,kernel-10,kernel-N,kernel-N-lean,emulated",
        help="comma-separated data planes to measure (N: --vsis; default all)",
    )
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args()
    args.chosen = {v.strip().replace("-N", f"-{args.vsis}") for v in args.variants.split(",")}
    known = {"bare", "kernel-10", f"kernel-{args.vsis}", f"kernel-{args.vsis}-lean", "emulated"}
    if args.chosen - known:
        unknown = ", ".join(sorted(args.chosen - known))
        ap.error(f"unknown variants: {unknown} (known: bare, kernel-10, kernel-N, kernel-N-lean, emulated)")
    if os.geteuid() != 0:
        print("bench/dataplane.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    with Bench(args) as bench:
        result = bench.run()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, ratio in result["ratios"].items():
            print(f"{name:48} {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
