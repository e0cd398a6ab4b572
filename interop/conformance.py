"""Run ``evb conformance`` against a real DUT in a two-namespace lab (``interop/lab.py``).

    sudo .venv/bin/python -m interop.conformance --dut evb-station [--cases 'vdp.*'] [--fault no-keepalive]
    sudo .venv/bin/python -m interop.conformance --dut lldpad-bridge --json out.json

DUTs: ``evb-station`` / ``evb-bridge`` (our daemons, driven through the ready-made hook
``interop/hooks/evb-station``) and ``lldpad-station`` / ``lldpad-bridge`` (the Debian lldpad,
driven with ``interop/hooks/vdptool``). The DUT runs on the lab's station (or bridge) end with
small timers (RTE 8, RWD 12, RKA 12; the tester proposes RWD/RKA 14, the larger value wins) and
group IDs on (our bridge also gives wildcard VIDs VID 100: ``[vdp] wildcard_vid``), the
tester runs ``evb conformance run`` on the other end of the veth. The tests in
``tests/integration/test_conformance_live.py`` and the table in ``interop/README.md`` come
from here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from interop.lab import Lab, missing_prerequisites

HERE = Path(__file__).resolve().parent
DUTS = ("evb-station", "evb-bridge", "lldpad-station", "lldpad-bridge")
TIMERS = {"rte": 8, "rwd": 12, "rka": 12}


def run_conformance(
    dut: str,
    *,
    cases: list[str] | None = None,
    fault: str | None = None,
    workdir: str | Path | None = None,
    pcap: bool = False,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Bring up the lab with ``dut``, run the suite from the other end; the JSON report."""
    kind, role = dut.split("-")
    with Lab(workdir=workdir) as lab:
        dut_side = lab.side(role)
        tester_side = lab.peer_side(role)
        hook = None
        target: Any  # our Agent or the Lldpad: it must still run at the end
        if kind == "evb":
            extra = ["--fault", fault] if fault else []
            vdp = {"wildcard_vid": 100} if role == "bridge" else {}  # the standard: the bridge supplies a VID
            target = agent = lab.start_agent(role, evb=dict(TIMERS, gid=True), vdp=vdp, extra=extra)
            if role == "station":
                hook = (
                    f"{shlex.quote(str(HERE / 'hooks' / 'evb-station'))} --netns {dut_side.ns} --socket {agent.socket}"
                )
        else:
            target = lab.start_lldpad(
                role, ecprte=TIMERS["rte"], vdprwd=TIMERS["rwd"], vdprka=TIMERS["rka"], evbgpid=True
            )
            if role == "station":
                hook = f"{shlex.quote(str(HERE / 'hooks' / 'vdptool'))} --netns {dut_side.ns} --iface {dut_side.ifname}"
        out = lab.workdir / "conformance.json"
        cmd = [sys.executable, "-m", "evb.cli", "conformance", "run", "--dut-role", role]
        cmd += ["--iface", tester_side.ifname, "--json", str(out), "--junit", str(lab.workdir / "conformance.xml")]
        if pcap:
            cmd += ["--pcap", str(lab.workdir / "conformance.pcap")]
        if hook:
            cmd += ["--hook", hook]
        for pattern in cases or []:
            cmd += ["--cases", pattern]
        env = dict(os.environ, EVB=f"{sys.executable} -m evb.cli")
        res = subprocess.run(
            ["ip", "netns", "exec", tester_side.ns, *cmd],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if not out.exists():
            raise RuntimeError(f"evb conformance run: exit {res.returncode}: {res.stderr.strip()[-2000:]}")
        report: dict[str, Any] = json.loads(out.read_text())
        report["dut"] = dut
        report["dut_alive"] = target.proc is not None and target.proc.alive()  # a malformed frame may kill it
        report["exit"] = res.returncode
        report["table"] = res.stdout
        report["workdir"] = str(lab.workdir)
        return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dut", choices=DUTS, required=True)
    ap.add_argument("--cases", action="append", help="glob of case ids (repeatable)")
    ap.add_argument("--fault", help="our agent's --fault (self-test)")
    ap.add_argument("--json", metavar="OUT", help="write the report here")
    ap.add_argument("--keep", metavar="DIR", help="lab directory to keep (logs, pcap, JUnit)")
    args = ap.parse_args()
    problem = missing_prerequisites(lldpad=args.dut.startswith("lldpad"))
    if problem:
        print(f"interop.conformance: {problem}", file=sys.stderr)
        return 2
    report = run_conformance(args.dut, cases=args.cases, fault=args.fault, workdir=args.keep, pcap=bool(args.keep))
    print(report["table"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return int(report["exit"])


if __name__ == "__main__":
    sys.exit(main())
