#!/usr/bin/env python3
"""Benchmark: associate commands through the MQTT broker vs the local control API, side by side in one run.

    sudo .venv/bin/python bench/mqtt.py [--stations 10] [--commands 1000] [--rounds 3] [--json]

The lab (issue 7): ``--stations`` station agents (``evb station run --mqtt``), each in its own
network namespace with a veth to one ``evb bridge run`` with as many ports (accept-all policy,
no data plane) in a bridge namespace; a management network (``evb/mqtt/mgmtnet.py``: a Linux
bridge in the root namespace on a free 10.77.128+.0/24, one veth per station namespace) to a
mosquitto (``evb/mqtt/broker.py``) in the root namespace, where this script, the
orchestrator, runs. Moderate timers: ECP ack timeout 164 ms (``--rte 14``; the agents'
default of 2.56 ms is missed on a loaded 2-vCPU machine and answers get retransmitted),
keep-alives every 42 s (``--rka 22``, out of the runs). The lab's files (state files, logs,
the broker's database) are on ``/dev/shm``: the stations fsync their state file on every
command, and a shared disk adds seconds of noise (``--dir`` to measure that too).

``--commands`` associate commands in all, ``commands / stations`` per station, each a single
command for one VSI (one MAC/VID filter entry). Every round runs the variants one after the
other (interleaved: this machine's speed drifts), each with fresh VSIs; everything is
de-associated (``vsi.bulk deassoc``) between runs, so that every run starts from the same
state (no VSI associated, short state files, retained states cleared):

* ``local``: the commands as ``vsi.request`` with ``wait`` on the stations' unix sockets, one
  connection per station opened beforehand, all its requests written at once (the server runs
  them concurrently). Time: from the first write to the last answer "associated";
* ``mqtt``: the commands published (QoS 1, ``evb/v1/station/{host}/{ifname}/cmd``) from one
  persistent client, round-robin over the stations, all at once (as fast as the broker takes
  them). Time: from the first publish to the last retained ``.../vsi/{vsiid}`` state
  ``"assoc"`` that the client, subscribed to ``evb/v1/station/+/+/vsi/+``, receives; also the
  time to the last reply (``.../reply/{request_id}``, ``--no-replies``: not subscribed) and,
  on stderr, to the last PUBACK;
* ``bulk`` (extra, not compared): the same number as one ``vsi.bulk`` per station.

Reported per round and as best and median; the ratio mqtt/local of both (target: ≤ 2×), and
the CPU seconds the stations, the bridge, the broker and this orchestrator used per run (from
``/proc``; the broker's is its whole cost). On stderr, per run: ECPDUs with VDP (the stations'
requests / the bridge's answers, and retransmissions of each side). A benchmark, not a test:
it asserts nothing. Needs root, ``ip`` (iproute2) and ``mosquitto``. Everything it starts
(namespaces, the management bridge, processes, the broker, its files) is removed on exit,
also on Ctrl-C or SIGTERM (``--keep`` keeps the files).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt

from evb.control_client import ConnectError, call
from evb.mqtt.broker import MISSING, Broker
from evb.mqtt.mgmtnet import MgmtNet, unique_name
from evb.mqtt.mgmtnet import sweep_stale as sweep_mgmt
from evb.mqtt.schema import command_payload, parse_station_topic
from interop.lab import LabError, Process, run, wait_for

CLK_TCK = os.sysconf("SC_CLK_TCK")
MANAGER = "bench"
IFNAME = "uplink"  #: the station's data interface in its namespace (its topics' ifname)
RUN_TIMEOUT = 120.0
VARIANTS = ("local", "mqtt", "bulk")
_NS_RE = re.compile(r"^evbq([0-9a-f]{6})-")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vsi_args(run_no: int, station: int, i: int) -> dict[str, Any]:
    """The arguments of one VSI (unique over the whole bench: run, station, index)."""
    u = uuid.UUID(int=(0xB0E7 << 112) | (run_no << 32) | (station << 16) | i)
    mac = f"52:00:{run_no & 0xFF:02x}:{station:02x}:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}"
    return {
        "manager_id": MANAGER,
        "type_id": 5,
        "type_version": 4,
        "format": "uuid",
        "uuid": str(u),
        "filters": [f"{100 + i % 50}-{mac}"],
    }


def free_subnet() -> str:
    """A /24 for the management bridge that no interface of the root namespace uses (not the
    tests' 10.77.0.0/24: they may run at the same time)."""
    used = []
    for line in run(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
        m = re.search(r"inet (\S+)", line)
        if m:
            used.append(ipaddress.ip_interface(m.group(1)).network)
    for third in range(128, 255):
        net = ipaddress.ip_network(f"10.77.{third}.0/24")
        if not any(net.overlaps(u) for u in used):
            return f"10.77.{third}.1/24"
    raise LabError("no free 10.77.128-254.0/24 for the management network")


def sweep_stale() -> None:
    """Namespaces and management bridges of earlier runs of this bench whose process died."""
    for line in run(["ip", "netns", "list"], check=False).stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        m = _NS_RE.match(ns)
        if m and not os.path.exists(f"/proc/{int(m.group(1), 16)}"):
            for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run(["ip", "netns", "del", ns], check=False)
    sweep_mgmt()


# ---------------------------------------------------------------------- the lab


class Lab:
    """Namespaces, veths, the management network, the broker and the agents; ``close`` undoes all."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n = args.stations
        tag = f"evbq{os.getpid() & 0xFFFFFF:06x}"
        self.br_ns = f"{tag}-br"
        self.st_ns = [f"{tag}-s{i}" for i in range(self.n)]
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=args.dir))
        self.namespaces: list[str] = []
        self.procs: list[Process] = []
        self.mgmt: MgmtNet | None = None
        self.broker: Broker | None = None
        self.bridge: Process | None = None
        self.stations: list[Process] = []
        self.sockets = [str(self.workdir / f"st{i}.sock") for i in range(self.n)]
        self.hosts = [f"hv{i}" for i in range(self.n)]
        self.bridge_socket = str(self.workdir / "bridge.sock")

    def up(self) -> None:
        for ns in (self.br_ns, *self.st_ns):
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], ns=ns, check=False)
        for i, ns in enumerate(self.st_ns):
            run(
                ["ip", "link", "add", IFNAME, "netns", ns, "type", "veth", "peer", "name", f"p{i}", "netns", self.br_ns]
            )
            run(["ip", "-n", ns, "link", "set", IFNAME, "up"])
            run(["ip", "-n", self.br_ns, "link", "set", f"p{i}", "up"])
        self.mgmt = MgmtNet(unique_name(), free_subnet())
        for ns in self.st_ns:
            self.mgmt.add(ns)
        self.broker = Broker(self.workdir, listen_addresses=(self.mgmt.address,)).start()
        log(f"broker {self.broker.url} (stations: {self.mgmt.address}), lab files in {self.workdir}")
        config = self.workdir / "evb.toml"
        config.write_text(f"[evb]\nrte = {self.args.rte}\nrka = {self.args.rka}\n")
        py = [sys.executable, "-m", "evb.cli"]
        common = ["--config", str(config), "--log-format", "json", "--log-level", self.args.log_level]
        ports = [a for i in range(self.n) for a in ("--port", f"p{i}")]
        self.bridge = self.spawn(
            "bridge", self.br_ns, [*py, "bridge", "run", *ports, "--socket", self.bridge_socket, *common]
        )
        url = self.broker.url_for(host=self.mgmt.address)
        for i, ns in enumerate(self.st_ns):
            cmd = [*py, "station", "run", "--iface", IFNAME, "--socket", self.sockets[i]]
            cmd += ["--state", str(self.workdir / f"st{i}.state.json"), "--mqtt", url, "--mqtt-host", self.hosts[i]]
            self.stations.append(self.spawn(f"station{i}", ns, [*cmd, *common]))
        self.wait_ready()

    def spawn(self, name: str, ns: str, cmd: list[str]) -> Process:
        proc = Process(name, ["ip", "netns", "exec", ns, *cmd], self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def wait_ready(self, timeout: float = 60) -> None:
        """Every station answers, has negotiated EVB with the bridge and is connected to the broker."""

        def ready() -> bool:
            for proc in (self.bridge, *self.stations):
                assert proc is not None
                proc.check_alive()
            for path in self.sockets:
                try:
                    st = call(path, "status", timeout=5)
                except (ConnectError, OSError):
                    return False
                if not (st["evb"]["negotiated"] and st.get("mqtt", {}).get("connected")):
                    return False
            return True

        t0 = time.monotonic()
        wait_for("the stations (EVB negotiated, MQTT connected)", ready, timeout=timeout, interval=0.2)
        log(f"{self.n} stations ready in {time.monotonic() - t0:.1f} s")

    def pids(self) -> dict[str, list[int]]:
        assert self.broker is not None and self.broker.proc is not None and self.bridge is not None
        return {
            "stations": [p.pid for p in self.stations],
            "bridge": [self.bridge.pid],
            "broker": [self.broker.proc.pid],
        }

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop(timeout=5)
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        if self.mgmt is not None:
            with contextlib.suppress(Exception):
                self.mgmt.close()
        for ns in self.namespaces:
            run(["ip", "netns", "del", ns], check=False)
        if self.args.keep:
            log(f"lab files kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------- the orchestrator


class CpuMeter:
    """CPU seconds used by the lab's processes and this one between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}

    def sample(self) -> dict[str, float]:
        out = {k: sum(cpu_seconds(p) for p in v) for k, v in self.pids.items()}
        out["orchestrator"] = time.process_time()
        return out

    def start(self) -> None:
        self.before = self.sample()

    def stop(self) -> dict[str, float]:
        after = self.sample()
        return {k: round(after[k] - self.before[k], 3) for k in after}


class Bench:
    def __init__(self, lab: Lab, args: argparse.Namespace) -> None:
        self.lab = lab
        self.args = args
        self.per_station = args.commands // lab.n
        self.run_no = 0
        self.client: aiomqtt.Client | None = None
        #: the MQTT run in progress: called for every message (topic, payload)
        self.on_message: Callable[[str, bytes], None] | None = None
        self.cpu = CpuMeter(lab.pids())

    def batches(self) -> list[list[dict[str, Any]]]:
        """Fresh VSIs for a new run, one list per station."""
        self.run_no += 1
        return [[vsi_args(self.run_no, s, i) for i in range(self.per_station)] for s in range(self.lab.n)]

    # ------------------------------------------------------------------ variants

    async def run_local(self, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
        conns = [await asyncio.open_unix_connection(p, limit=1 << 24) for p in self.lab.sockets]
        payloads = [
            b"".join(
                json.dumps({"id": k, "cmd": "vsi.request", "args": v | {"mode": "assoc", "wait": True}}).encode()
                + b"\n"
                for k, v in enumerate(batch)
            )
            for batch in batches
        ]

        async def station(reader: asyncio.StreamReader, expected: int) -> tuple[int, int, float]:
            ok = failed = 0
            while ok + failed < expected:
                line = await reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                if "notify" in msg:
                    continue
                if msg.get("ok") and msg["result"].get("mode") == "assoc":
                    ok += 1
                else:
                    failed += 1
            return ok, failed, time.perf_counter()

        self.cpu.start()
        t0 = time.perf_counter()
        for (_, writer), data in zip(conns, payloads, strict=True):
            writer.write(data)
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(station(r, len(b)) for (r, _), b in zip(conns, batches, strict=True))), RUN_TIMEOUT
            )
        finally:
            cpu = self.cpu.stop()
            for _, writer in conns:
                writer.close()
        ok = sum(r[0] for r in results)
        return {
            "seconds": max(r[2] for r in results) - t0,
            "ok": ok,
            "failed": sum(r[1] for r in results),
            "cpu": cpu,
        }

    async def run_bulk(self, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
        conns = [await asyncio.open_unix_connection(p, limit=1 << 24) for p in self.lab.sockets]

        async def station(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], batch: list[Any]) -> Any:
            reader, writer = conn
            req = {"id": 1, "cmd": "vsi.bulk", "args": {"mode": "assoc", "vsis": batch, "wait": True}}
            writer.write(json.dumps(req).encode() + b"\n")
            while True:
                msg = json.loads(await reader.readline())
                if "notify" not in msg:
                    return msg, time.perf_counter()

        self.cpu.start()
        t0 = time.perf_counter()
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(station(c, b) for c, b in zip(conns, batches, strict=True))), RUN_TIMEOUT
            )
        finally:
            cpu = self.cpu.stop()
            for _, writer in conns:
                writer.close()
        ok = sum(m["result"]["ok"] for m, _ in results if m.get("ok"))
        return {"seconds": max(t for _, t in results) - t0, "ok": ok, "failed": self.args.commands - ok, "cpu": cpu}

    async def run_mqtt(self, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
        assert self.client is not None
        client = self.client
        n = sum(len(b) for b in batches)
        wanted = {v["uuid"] for b in batches for v in b}
        assoc: set[str] = set()
        replied: set[str] = set()
        failed: list[str] = []
        times: dict[str, float] = {}
        done = asyncio.Event()
        rid_prefix = f"b{os.getpid()}-{self.run_no}-"

        def on_message(topic: str, payload: bytes) -> None:
            t = parse_station_topic(topic)
            if t is None or not payload:
                return
            if t.kind == "vsi" and t.rest in wanted and t.rest not in assoc:
                if json.loads(payload).get("state") == "assoc":
                    assoc.add(t.rest)
                    if len(assoc) == n:
                        times["assoc"] = time.perf_counter()
                        if "replies" in times or not self.args.replies:
                            done.set()
            elif t.kind == "reply" and t.rest.startswith(rid_prefix) and t.rest not in replied:
                replied.add(t.rest)
                if not json.loads(payload).get("ok"):
                    failed.append(t.rest)
                if len(replied) == n:
                    times["replies"] = time.perf_counter()
                    if "assoc" in times:
                        done.set()

        # prepared before the clock starts, as the local run's lines are
        msgs = []
        for i in range(max(len(b) for b in batches)):
            for s, batch in enumerate(batches):
                if i < len(batch):
                    rid = f"{rid_prefix}{s}-{i}"
                    topic = f"evb/v1/station/{self.lab.hosts[s]}/{IFNAME}/cmd"
                    msgs.append((topic, command_payload(rid, "assoc", batch[i])))
        self.on_message = on_message
        self.cpu.start()
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(client.publish(t, p, qos=1) for t, p in msgs)), RUN_TIMEOUT)
            times["published"] = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), RUN_TIMEOUT)
        finally:
            cpu = self.cpu.stop()
            self.on_message = None
        return {
            "seconds": times["assoc"] - t0 if "assoc" in times else None,
            "replies_seconds": times["replies"] - t0 if "replies" in times else None,
            "published_seconds": times["published"] - t0,
            "ok": len(assoc),
            "failed": n - len(assoc),
            "error_replies": len(failed),
            "cpu": cpu,
        }

    async def deassociate(self, batches: list[list[dict[str, Any]]]) -> None:
        """Everything of the last run released, and its retained states cleared, before the next."""

        async def station(path: str, batch: list[Any]) -> None:
            reader, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
            req = {"id": 1, "cmd": "vsi.bulk", "args": {"mode": "deassoc", "vsis": batch, "wait": True}}
            writer.write(json.dumps(req).encode() + b"\n")
            while "notify" in json.loads(await reader.readline()):
                pass
            writer.close()

        await asyncio.gather(*(station(p, b) for p, b in zip(self.lab.sockets, batches, strict=True)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = await asyncio.gather(*(asyncio.to_thread(call, p, "status") for p in self.lab.sockets))
            if all(s["wanted"] == 0 and sum(s["vsis_by_state"].values()) == 0 for s in stats) and all(
                s["mqtt"]["queued"] == 0 for s in stats
            ):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(self.args.settle)

    async def ecp_counts(self) -> dict[str, int]:
        """ECPDUs with VDP: the stations' requests, the bridge's answers (as the stations received
        them, duplicates included), and the retransmissions of either side (ack timer expired)."""
        paths = [*self.lab.sockets, self.lab.bridge_socket]
        *stats, bridge = await asyncio.gather(*(asyncio.to_thread(call, p, "status") for p in paths))
        return {
            "requests": sum(s["ecp"]["sent"] for s in stats),
            "answers": sum(s["ecp"]["received"] for s in stats),
            "duplicates": sum(s["ecp"]["duplicates"] for s in stats),
            "station_retx": sum(s["ecp"]["retransmissions"] for s in stats),
            "bridge_retx": sum(p["ecp"]["retransmissions"] for p in bridge["ports"]),
        }

    # ------------------------------------------------------------------ the rounds

    async def listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            handler = self.on_message
            if handler is not None:
                payload = message.payload
                handler(str(message.topic), payload if isinstance(payload, bytes) else b"")

    async def main(self) -> dict[str, Any]:
        a = self.args
        broker = self.lab.broker
        assert broker is not None
        variants = a.variants
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=f"evb-bench-{os.getpid()}",
            max_inflight_messages=0,  # paho's default is 20 in flight
            keepalive=60,
        ) as client:
            client.pending_calls_threshold = 1 << 30  # no warning per publish beyond 10 at once
            self.client = client
            await client.subscribe("evb/v1/station/+/+/vsi/+", qos=1)
            if a.replies:
                await client.subscribe("evb/v1/station/+/+/reply/+", qos=1)
            listener = asyncio.create_task(self.listen(client))
            try:
                for rnd in range(1, a.rounds + 1):
                    for v in variants:
                        batches = self.batches()
                        before = await self.ecp_counts()
                        r = await getattr(self, f"run_{v}")(batches)
                        after = await self.ecp_counts()
                        r["ecpdus"] = {k: after[k] - before[k] for k in after}
                        runs[v].append(r)
                        extra = ""
                        if v == "mqtt":
                            rs = r["replies_seconds"]
                            extra = f", replies {rs:.3f} s" if rs is not None else ", replies incomplete"
                            extra += f", published {r['published_seconds']:.3f} s"
                        secs = "-" if r["seconds"] is None else f"{r['seconds']:.3f} s"
                        e = r["ecpdus"]
                        log(
                            f"round {rnd}  {v:5}  {secs}{extra}  ok {r['ok']}/{a.commands}  "
                            f"ECPDUs {e['requests']}/{e['answers']} (retx {e['station_retx']}/{e['bridge_retx']})  "
                            f"cpu {', '.join(f'{k} {c:.2f}' for k, c in r['cpu'].items())}"
                        )
                        await self.deassociate(batches)
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await listener
        return summarize(a, runs)


def best_median(values: list[float | None]) -> dict[str, float | None]:
    good = sorted(v for v in values if v is not None)
    if not good:
        return {"best": None, "median": None}
    return {"best": good[0], "median": statistics.median(good)}


def summarize(a: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"stations": a.stations, "commands": a.commands, "rounds": a.rounds, "runs": runs}
    for v, rs in runs.items():
        out[v] = best_median([r["seconds"] for r in rs])
        out[v]["cpu_median"] = {k: statistics.median(r["cpu"][k] for r in rs) for k in rs[0]["cpu"]}
        out[v]["ecpdus_median"] = {k: statistics.median(r["ecpdus"][k] for r in rs) for k in rs[0]["ecpdus"]}
    if "mqtt" in runs:
        out["mqtt_replies"] = best_median([r["replies_seconds"] for r in runs["mqtt"]])
    if "mqtt" in runs and "local" in runs:
        ratios: dict[str, Any] = {}
        for which in ("best", "median"):
            m, loc = out["mqtt"][which], out["local"][which]
            ratios[which] = m / loc if m and loc else None
        ratios["per_round"] = [
            m["seconds"] / loc["seconds"] if m["seconds"] and loc["seconds"] else None
            for loc, m in zip(runs["local"], runs["mqtt"], strict=True)
        ]
        out["ratio_mqtt_over_local"] = ratios
        out["target"] = 2.0
    return out


def table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    variants = list(runs)
    ratios = result.get("ratio_mqtt_over_local")

    def num(x: float | None, w: int = 10) -> str:
        return f"{x:>{w}.3f}" if x is not None else f"{'-':>{w}}"

    def ratio(x: float | None) -> str:
        return "" if ratios is None else f"{x:>11.2f}×" if x else f"{'-':>12}"

    head = f"{'round':>6}" + "".join(f"{v + ' s':>10}" for v in variants)
    head += f"{'replies s':>11}" if "mqtt" in runs else ""
    head += f"{'mqtt/local':>12}" if ratios else ""
    lines = [
        f"{result['commands']:,} associate commands to {result['stations']} stations "
        f"({result['commands'] // result['stations']} each), {result['rounds']} rounds",
        head,
    ]
    for i in range(result["rounds"]):
        row = f"{i + 1:>6}" + "".join(num(runs[v][i]["seconds"]) for v in variants)
        row += num(runs["mqtt"][i]["replies_seconds"], 11) if "mqtt" in runs else ""
        lines.append(row + ratio(ratios["per_round"][i] if ratios else None))
    for which in ("best", "median"):
        row = f"{which:>6}" + "".join(num(result[v][which]) for v in variants)
        row += num(result["mqtt_replies"][which], 11) if "mqtt" in runs else ""
        lines.append(row + ratio(ratios[which] if ratios else None))
    lines.append("CPU seconds per run (medians):")
    for v in variants:
        lines.append(f"  {v:6}" + ", ".join(f"{k} {c:.2f}" for k, c in result[v]["cpu_median"].items()))
    lines.append("ECPDUs per run (medians; VDP requests / answers, retransmissions station / bridge):")
    for v in variants:
        e = result[v]["ecpdus_median"]
        lines.append(f"  {v:6}{e['requests']:g} / {e['answers']:g}, {e['station_retx']:g} / {e['bridge_retx']:g}")
    failed = {v: sum(r["failed"] for r in runs[v]) for v in variants}
    if any(failed.values()):
        lines.append("NOT associated (all rounds): " + ", ".join(f"{v} {n}" for v, n in failed.items()))
    if ratios and ratios["median"] is not None:
        verdict = "within" if ratios["median"] <= result["target"] else "above"
        lines.append(f"mqtt/local (medians) {ratios['median']:.2f}×: {verdict} the target ≤ {result['target']:.0f}×")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stations", type=int, default=10, help="station agents (default 10)")
    ap.add_argument("--commands", type=int, default=1000, help="associate commands per run, in all (default 1000)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="what runs in each round, in this order (default: local mqtt bulk; one alone: for profiling)",
    )
    ap.add_argument(
        "--rte",
        type=int,
        default=14,
        help="[evb] rte of both agents: ECP ack timeout 10 µs × 2^RTE (default 14: 164 ms; the agents' own default 8 "
        "is 2.56 ms, which a loaded 2-vCPU machine misses: answers are retransmitted)",
    )
    ap.add_argument("--rka", type=int, default=22, help="[evb] rka: keep-alive every 10 µs × 2^RKA (default 22: 42 s)")
    ap.add_argument(
        "--no-replies",
        dest="replies",
        action="store_false",
        help="mqtt: do not subscribe to the replies (only the retained states; saves this client's CPU)",
    )
    ap.add_argument("--settle", type=float, default=1.0, help="quiet seconds between runs (default 1)")
    ap.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    ap.add_argument(
        "--dir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where the lab's files go: state files, logs, the broker's database (default /dev/shm, a tmpfs: "
        "the stations fsync their state file on every command, and a shared disk adds seconds of noise)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the lab's files (logs, broker database)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("bench/mqtt.py: needs root (network namespaces)")
        return 2
    if MISSING:
        log(f"bench/mqtt.py: {MISSING}")
        return 2
    if args.commands % args.stations or not 1 <= args.stations <= 250:
        log("bench/mqtt.py: --commands must be a multiple of --stations (1..250)")
        return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    sweep_stale()
    lab = Lab(args)
    try:
        lab.up()
        result = asyncio.run(Bench(lab, args).main())
    except KeyboardInterrupt:
        log("bench/mqtt.py: interrupted, tearing down")
        return 130
    except (LabError, subprocess.CalledProcessError, OSError, TimeoutError, aiomqtt.MqttError) as exc:
        log(f"bench/mqtt.py: {exc}")
        args.keep = True
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the tear-down short
        lab.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
