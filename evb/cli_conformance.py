"""``evb conformance list|run``: the conformance suite's command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import textwrap
from typing import Any

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
_F = argparse.RawDescriptionHelpFormatter


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "conformance",
        formatter_class=_F,
        help="a conformance suite you point at any 802.1Qbg station or bridge",
        description=textwrap.dedent(
            """\
            The tester plays the counterpart of the device under test (DUT) over one
            interface: a scripted bridge for a station DUT, a scripted station for a bridge
            DUT. It speaks LLDP/EVB, ECP and VDP itself, drives each case frame by frame and
            judges the DUT's answers against the standard as digested in the project's spec
            (every case names the clause it checks). Cases in which the DUT must act (e.g.
            "associate a VSI") call a hook command; without one they are skipped."""
        ),
    )
    csub = p.add_subparsers(dest="conformance_command", metavar="COMMAND")
    ls = csub.add_parser(
        "list",
        formatter_class=_F,
        help="the cases: id, title, clause, role, what they need",
        description="List the cases (all, or those of one DUT role), with the clause each checks.",
    )
    ls.add_argument("--role", choices=("station", "bridge"), help="only the cases for a DUT of this role")
    ls.add_argument("--cases", metavar="PATTERN", action="append", help="only ids matching this glob (repeatable)")
    ls.add_argument("--json", action="store_true", help="one JSON array of cases")
    ls.set_defaults(func=cmd_list)

    run = csub.add_parser(
        "run",
        formatter_class=_F,
        help="run the cases against a DUT on an interface",
        description=textwrap.dedent(
            """\
            Run the cases for a DUT of --dut-role on the other end of --iface (this host plays
            the counterpart; nothing else may speak LLDP/ECP on that interface). The tester
            first waits until the DUT's EVB TLV agrees with its own (it proposes R 3, RTE 8,
            RWD 14, RKA 14 unless told otherwise; the operating values are the larger of both
            sides', so configure the DUT with small RWD/RKA for a quick run), then runs the
            cases one by one with a progress bar and prints one row per case. Timing checks
            are relative to the negotiated timers with --tolerance.

            The suite's VSIs use the VSI Manager ID "conformance", type 10 version 1, UUIDs
            c0f0c0f0-0000-4000-8000-0000000000NN, MACs 02:cf:00:00:..:.. on VID 10: a bridge
            DUT's policy must accept them. --sim station|bridge runs against evb's own
            station or bridge port in a simulator instead of an interface (seconds of
            simulated time take milliseconds), --sim-fault makes that DUT misbehave."""
        ),
        epilog=textwrap.dedent(
            """\
            hooks: --hook CMD is run through the shell with one JSON object on stdin, e.g.
              {"action": "associate", "iface": "eth1", "vsi": {"manager": "conformance",
               "type_id": 10, "type_version": 1, "uuid": "...", "filter_format": 2,
               "filters": ["10-02:cf:00:00:00:05"], "hints": "none"}}
            actions: associate, preassociate, preassociate-rr, deassociate. Exit 0 = done,
            3 = the DUT cannot (case skipped). Ready-made: interop/hooks/evb-station (our
            station agent) and interop/hooks/vdptool (lldpad).

            examples:
              evb conformance run --dut-role bridge --iface veth1 --junit out.xml
              evb conformance run --dut-role station --iface veth1 \\
                  --hook 'interop/hooks/evb-station --socket /run/evb/station-eth0.sock'
              evb conformance run --sim station --cases 'vdp.*' --json out.json

            exit status: 0 every case passed or was skipped; 1 some failed or errored;
            2 bad usage."""
        ),
    )
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--iface", metavar="IF", help="the interface the DUT is on the other end of")
    where.add_argument("--sim", choices=("station", "bridge"), help="run against evb's own port, simulated")
    run.add_argument("--dut-role", choices=("station", "bridge"), help="the DUT's role (required with --iface)")
    run.add_argument("--dut-mac", metavar="MAC", help="the DUT's MAC (default: learnt from its first LLDPDU)")
    run.add_argument("--cases", metavar="PATTERN", action="append", help="only ids matching this glob (repeatable)")
    run.add_argument("--hook", metavar="CMD", help="command that makes the DUT act (see below)")
    run.add_argument("--junit", metavar="OUT.xml", help="write a JUnit XML report")
    run.add_argument("--json", metavar="OUT.json", help="write the report as JSON ('-': standard output)")
    run.add_argument("--pcap", metavar="OUT.pcap", help="write every frame sent and seen")
    run.add_argument("--tolerance", type=float, default=0.25, help="relative tolerance of timing checks (0.25)")
    for name, default in (("r", 3), ("rte", 8), ("rwd", 14), ("rka", 14)):
        run.add_argument(f"--{name}", type=int, default=default, help=f"the tester's proposed {name.upper()}")
    run.add_argument(
        "--sim-fault",
        default="none",
        metavar="FAULT",
        help="with --sim: make the DUT misbehave, to see the suite catch it: no-keepalive, wrong-status, "
        "no-ecp-ack, no-evb-copy (default none)",
    )
    run.set_defaults(func=cmd_run)


def cmd_list(args: argparse.Namespace) -> int:
    from evb.conformance.model import select

    cases = select(args.role, args.cases)
    if args.json:
        print(json.dumps([c.describe() for c in cases], indent=2))
        return EXIT_OK
    idw = max([len(c.id) for c in cases] + [2])
    print(f"{'ID':<{idw}}  {'NEEDS':<10}  CLAUSE / TITLE")
    for c in cases:
        print(f"{c.id:<{idw}}  {','.join(c.needs) or '-':<10}  {c.clause}: {c.title}")
    roles = {r: sum(1 for c in cases if c.role == r) for r in ("station", "bridge")}
    print(f"\n{len(cases)} cases ({roles['station']} for a station DUT, {roles['bridge']} for a bridge DUT)")
    return EXIT_OK


def _progress(enabled: bool) -> Any:
    from evb.progress import Progress

    bar: Progress | None = None

    def update(done: int, total: int, result: Any) -> None:
        nonlocal bar
        if not enabled:
            return
        if bar is None:
            bar = Progress("conformance", total=total)
        bar.update(done)
        if done == total:
            bar.close()

    return update


def cmd_run(args: argparse.Namespace) -> int:
    from evb.conformance.model import select
    from evb.conformance.runner import table
    from evb.conformance.tester import TesterConfig
    from evb.ethernet import parse_mac

    role = args.sim or args.dut_role
    if not role:
        print("evb conformance run: --dut-role is required with --iface", file=sys.stderr)
        return EXIT_USAGE
    try:
        dut_mac = parse_mac(args.dut_mac) if args.dut_mac else None
        config = TesterConfig(r=args.r, rte=args.rte, rwd=args.rwd, rka=args.rka, tolerance=args.tolerance)
    except ValueError as exc:
        print(f"evb conformance run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, hi in (("r", 7), ("rte", 31), ("rwd", 31), ("rka", 31)):
        if not 0 <= getattr(args, name) <= hi:
            print(f"evb conformance run: --{name} must be 0..{hi}", file=sys.stderr)
            return EXIT_USAGE
    cases = select(role, args.cases)
    if not cases:
        print(f"evb conformance run: no {role} case matches {args.cases}", file=sys.stderr)
        return EXIT_USAGE
    progress = _progress(args.json != "-")
    if args.sim:
        from evb.conformance.sim import FAULTS, run_simulated_sync

        if args.sim_fault not in FAULTS:
            print(f"evb conformance run: --sim-fault must be one of {', '.join(FAULTS)}", file=sys.stderr)
            return EXIT_USAGE
        report, tester = run_simulated_sync(role, cases, fault=args.sim_fault, config=config, progress=progress)
    else:
        if os.geteuid() != 0:
            print("evb conformance run: needs root (a raw socket on the interface)", file=sys.stderr)
            return EXIT_USAGE
        try:
            report, tester = asyncio.run(_run_live(args, role, cases, config, dut_mac, progress))
        except OSError as exc:
            print(f"evb conformance run: {args.iface}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.pcap:
        from evb.capture import write_pcap

        write_pcap(args.pcap, [(s.t + tester.epoch, s.data) for s in tester.log])
    if args.junit:
        with open(args.junit, "w") as f:
            f.write(report.junit())
    if args.json == "-":
        print(json.dumps(report.to_json(), indent=2))
    else:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report.to_json(), f, indent=2)
        print(table(report))
    return EXIT_OK if report.ok else EXIT_FAILURES


async def _run_live(
    args: argparse.Namespace, role: str, cases: list[Any], config: Any, dut_mac: Any, progress: Any
) -> Any:
    from evb.aio.rawsock import interface_mac
    from evb.conformance.hooks import CommandHook
    from evb.conformance.links import RawFrameLink
    from evb.conformance.runner import Report, run_cases
    from evb.conformance.tester import Tester

    link = RawFrameLink(args.iface)
    hook = CommandHook(args.hook, iface=args.iface) if args.hook else None
    tester = Tester(link, dut_role=role, mac=interface_mac(args.iface), dut_mac=dut_mac, hook=hook, config=config)
    report = Report(dut_role=role, target=args.iface)
    await run_cases(tester, cases, report=report, progress=progress)
    return report, tester
