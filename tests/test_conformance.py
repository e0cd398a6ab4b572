"""``evb conformance``: the catalogue, the engine on a virtual clock, the reports, the CLI, hooks.

The whole catalogue runs here against evb's own sans-IO station and bridge (``--sim``): every
case must pass or be skipped with a reason. The self-test runs the same cases against ports told
to misbehave (``PortConfig.faults``) and checks that the suite notices each fault. The live runs
(our daemons and lldpad in network namespaces) are in tests/integration/test_conformance_live.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evb.capture import read_capture
from evb.cli import main
from evb.conformance import vclock
from evb.conformance.hooks import ACTIONS, CommandHook, HookFailed, HookUnsupported
from evb.conformance.model import CATALOG, ROLES, load_all, select
from evb.conformance.runner import Report
from evb.conformance.sim import run_simulated_sync

SPEC_FILES = ("README.md", "lldp-evb-cdcp.md", "ecp.md", "vdp.md", "lldpad-behaviour.md")


@pytest.fixture(scope="module", params=ROLES)
def sim_report(request: pytest.FixtureRequest) -> Report:
    report, _ = run_simulated_sync(request.param, select(request.param))
    return report


def test_catalogue_is_big_unique_and_cites_the_spec() -> None:
    cases = load_all()
    assert len(cases) >= 120
    for c in cases.values():
        assert re.fullmatch(r"[a-z]+\.(station|bridge)\.[a-z0-9.-]+", c.id), c.id
        assert c.id.split(".")[1] == c.role
        assert c.title and c.expect, c.id
        assert any(f in c.clause for f in SPEC_FILES), f"{c.id}: clause {c.clause!r} names no spec file"
        assert set(c.needs) <= set(ACTIONS), c.id
    per_role = {r: sum(1 for c in cases.values() if c.role == r) for r in ROLES}
    assert min(per_role.values()) >= 40, per_role


def test_every_case_passes_or_is_skipped_against_our_own_ports(sim_report: Report) -> None:
    bad = [f"{r.case.id}: {r.verdict}: {r.reason}" for r in sim_report.results if r.verdict not in ("pass", "skip")]
    assert not bad, "\n".join(bad)
    skipped = [r for r in sim_report.results if r.verdict == "skip"]
    assert all(r.reason for r in skipped)
    assert len(skipped) <= len(sim_report.results) // 10  # the simulated hook can do every action


@pytest.mark.parametrize(
    ("role", "fault", "must_fail"),
    [
        ("bridge", "no-ecp-ack", ["ecp.bridge.rx.ack", "ecp.bridge.rx.duplicate"]),
        ("station", "no-ecp-ack", ["ecp.station.rx.ack"]),
        ("bridge", "wrong-status", ["vdp.bridge.*"]),
        ("station", "no-keepalive", ["vdp.station.*"]),
        ("station", "no-evb-copy", ["evb.station.*"]),
        ("bridge", "no-evb-copy", ["evb.bridge.*"]),
    ],
)
def test_the_suite_catches_each_fault(role: str, fault: str, must_fail: list[str]) -> None:
    cases = select(role, must_fail)
    report, _ = run_simulated_sync(role, cases, fault=fault)
    failed = [r.case.id for r in report.results if r.verdict == "fail"]
    assert failed, f"fault {fault} went unnoticed by {[c.id for c in cases]}"
    if fault == "no-ecp-ack":  # the first case fails, then the DUT is found dead: the rest are errors
        assert failed == [cases[0].id] and all(r.verdict == "error" for r in report.results[1:])
    elif not any("*" in p for p in must_fail):
        assert set(failed) == set(must_fail)
    assert not report.ok


def test_a_clean_dut_passes_what_the_faulty_one_fails() -> None:
    cases = select("station", ["ecp.station.rx.*"])
    good, _ = run_simulated_sync("station", cases)
    bad, _ = run_simulated_sync("station", cases, fault="no-ecp-ack")
    assert good.ok and good.counts()["pass"] == len(cases)
    # the first case fails; then the DUT acknowledges nothing: the rest are not run (errors)
    first, *rest = bad.results
    assert first.verdict == "fail" and "stopped acknowledging ECPDUs" in first.reason
    assert [r.verdict for r in rest] == ["error"] * len(rest)
    assert all(r.reason.startswith("not run: the DUT stopped acknowledging ECPDUs after ecp.") for r in rest)


def test_reports_json_and_junit(tmp_path: Path) -> None:
    report, tester = run_simulated_sync("bridge", select("bridge", ["ecp.bridge.rx.*"]), fault="no-ecp-ack")
    doc = report.to_json()
    assert doc["counts"]["fail"] == 1 and doc["counts"]["error"] == len(doc["cases"]) - 1
    assert doc["dut_role"] == "bridge"
    first = doc["cases"][0]
    assert first["verdict"] == "fail" and first["clause"].startswith("ecp.md") and first["reason"]
    root = ET.fromstring(report.junit())
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("errors") == str(len(doc["cases"]) - 1)
    failure = suite.find("testcase/failure")
    assert failure is not None and "ecp.md" in (failure.text or "")
    # every frame sent and seen is logged, in time order
    assert tester.log and [s.t for s in tester.log] == sorted(s.t for s in tester.log)


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "list", "--role", "station", "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)
    assert cases and all(c["role"] == "station" for c in cases)
    assert {"id", "title", "clause", "needs", "expect"} <= set(cases[0])
    assert main(["conformance", "list", "--cases", "ecp.*.rx.ack"]) == 0
    out = capsys.readouterr().out
    assert "ecp.station.rx.ack " in out and "ecp.bridge.rx.ack " in out and "2 cases" in out


def test_cli_run_simulated_writes_junit_json_and_pcap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit, js, pcap = tmp_path / "r.xml", tmp_path / "r.json", tmp_path / "r.pcap"
    argv = ["conformance", "run", "--sim", "bridge", "--cases", "ecp.*", "--junit", str(junit), "--json", str(js)]
    assert main([*argv, "--pcap", str(pcap)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"24 cases against a bridge DUT .*: 24 passed, 0 failed", out), out
    assert ET.parse(junit).getroot().get("tests") == "24"
    assert json.loads(js.read_text())["counts"]["pass"] == 24
    frames = list(read_capture(pcap))
    assert len(frames) > 100


def test_cli_run_exit_status_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "run", "--sim", "station", "--cases", "ecp.*.rx.ack", "--sim-fault", "no-ecp-ack"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["conformance", "run", "--sim", "station", "--cases", "nothing.*"]) == 2
    assert main(["conformance", "run", "--sim", "station", "--sim-fault", "typo"]) == 2
    assert main(["conformance", "run", "--sim", "bridge", "--rte", "40"]) == 2
    with pytest.raises(SystemExit):
        main(["conformance", "run", "--dut-role", "bridge"])  # neither --iface nor --sim


def test_cases_needing_an_action_are_skipped_without_a_hook() -> None:
    from evb.conformance.sim import run_simulated

    needing = [c for c in select("station") if c.needs][:5]
    assert needing

    async def run() -> Report:
        report, _ = await run_simulated("station", needing, setup=None)
        return report

    # the simulated station has a hook; take it away
    async def no_hook() -> Report:
        from evb.conformance.links import SimDut
        from evb.conformance.runner import run_cases
        from evb.conformance.sim import TESTER_MAC, make_port
        from evb.conformance.tester import Tester

        loop = asyncio.get_running_loop()
        dut = SimDut(make_port("station", now=loop.time()))
        tester = Tester(dut, dut_role="station", mac=TESTER_MAC, hook=None)
        return await run_cases(tester, needing, report=Report(dut_role="station", target="no hook"))

    report = vclock.run(no_hook())
    assert [r.verdict for r in report.results] == ["skip"] * len(needing)
    assert all("no --hook" in r.reason for r in report.results)
    assert vclock.run(run()).counts()["skip"] == 0


def test_virtual_clock_jumps_and_stays_ordered() -> None:
    async def scenario() -> tuple[float, list[str]]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        t0 = loop.time()
        loop.call_later(2.0, order.append, "b")
        loop.call_later(1.0, order.append, "a")
        await asyncio.sleep(3600)
        return loop.time() - t0, order

    elapsed, order = vclock.run(scenario())
    assert elapsed == pytest.approx(3600) and order == ["a", "b"]


@pytest.mark.parametrize(("code", "error"), [(0, None), (3, HookUnsupported), (1, HookFailed)])
def test_command_hook_exit_codes(tmp_path: Path, code: int, error: type[Exception] | None) -> None:
    seen = tmp_path / "seen.json"
    hook = CommandHook(f"cat > {seen}; echo nope >&2; exit {code}", iface="veth9")

    async def call() -> None:
        await hook("associate", {"vsi": {"uuid": "x"}})

    if error is None:
        asyncio.run(call())
    else:
        with pytest.raises(error, match="nope"):
            asyncio.run(call())
    assert json.loads(seen.read_text()) == {"action": "associate", "iface": "veth9", "vsi": {"uuid": "x"}}


def test_ready_made_hooks_translate_the_action(tmp_path: Path) -> None:
    """interop/hooks/evb-station and vdptool build the right command lines (a fake tool records them)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    log = tmp_path / "argv"
    fake = tmp_path / "vdptool"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    doc = {
        "action": "preassociate-rr",
        "iface": "veth9",
        "vsi": {
            "manager": "conformance",
            "type_id": 10,
            "type_version": 1,
            "uuid": "c0f0c0f0-0000-4000-8000-000000000007",
            "filter_format": 2,
            "filters": ["10-02:cf:00:00:00:07"],
            "hints": "to",
        },
    }
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", EVB=str(fake))
    for hook in ("vdptool", "evb-station"):
        res = subprocess.run(
            [
                sys.executable,
                str(root / "interop" / "hooks" / hook),
                *(["--socket", "/s"] if hook != "vdptool" else []),
            ],
            input=json.dumps(doc),
            text=True,
            capture_output=True,
            env=env,
            check=False,
        )
        assert res.returncode == 0, res.stderr
    lines = log.read_text().splitlines()
    assert lines[0].split() == [
        "-i", "veth9", "-T", "-V", "preassoc-rr", "-c", "mode=preassoc-rr", "-c", "mgrid2=conformance",
        "-c", "typeid=10", "-c", "typeidver=1", "-c", "uuid=c0f0c0f0-0000-4000-8000-000000000007",
        "-c", "hints=to", "-c", "filter=10-02:cf:00:00:00:07",
    ]  # fmt: skip
    assert lines[1].split()[:3] == ["vsi", "preassoc-rr", "--socket"]
    assert "--hints to" in lines[1] and "--filter 10-02:cf:00:00:00:07" in lines[1]
    unknown = dict(doc, action="reboot")
    res = subprocess.run(
        [sys.executable, str(root / "interop" / "hooks" / "vdptool")],
        input=json.dumps(unknown),
        text=True,
        capture_output=True,
        env=env,
        check=False,
    )
    assert res.returncode == 3


def test_catalog_registry_is_shared() -> None:
    load_all()
    assert CATALOG is load_all()
