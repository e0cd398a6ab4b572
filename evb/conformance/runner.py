"""Running cases one after the other on one tester, and the reports: table, JSON, JUnit XML, pcap."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from evb.conformance.hooks import HookFailed, HookUnsupported
from evb.conformance.model import VERDICTS, Case, CaseResult, Fail, Skip
from evb.conformance.tester import Tester

Progress = Callable[[int, int, CaseResult | None], None]
NO_EVB = "no EVB session before the case"


@dataclass(slots=True)
class Report:
    dut_role: str
    target: str  #: interface name, or "simulated ..."
    results: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0
    operating: dict[str, int] = field(default_factory=dict)
    tolerance: float = 0.0
    dut_evb: str = ""

    def counts(self) -> dict[str, int]:
        c = Counter(r.verdict for r in self.results)
        return {v: c.get(v, 0) for v in VERDICTS}

    @property
    def ok(self) -> bool:
        n = self.counts()
        return n["fail"] == 0 and n["error"] == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "dut_role": self.dut_role,
            "target": self.target,
            "seconds": round(self.seconds, 3),
            "operating": self.operating,
            "tolerance": self.tolerance,
            "dut_evb": self.dut_evb,
            "counts": self.counts(),
            "cases": [r.to_json() for r in self.results],
        }

    def junit(self) -> str:
        n = self.counts()
        name = f"evb conformance ({self.dut_role} DUT, {self.target})"
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f"<testsuites tests={quoteattr(str(len(self.results)))} failures={quoteattr(str(n['fail']))} "
            f"errors={quoteattr(str(n['error']))} skipped={quoteattr(str(n['skip']))} "
            f"time={quoteattr(f'{self.seconds:.3f}')}>",
            f"  <testsuite name={quoteattr(name)} tests={quoteattr(str(len(self.results)))} "
            f"failures={quoteattr(str(n['fail']))} errors={quoteattr(str(n['error']))} "
            f"skipped={quoteattr(str(n['skip']))} time={quoteattr(f'{self.seconds:.3f}')}>",
        ]
        for r in self.results:
            c = r.case
            head = (
                f"    <testcase classname={quoteattr('conformance.' + c.id.rsplit('.', 1)[0])} "
                f"name={quoteattr(c.id)} time={quoteattr(f'{r.seconds:.3f}')}"
            )
            body = f"{c.title} [{c.clause}]"
            frame = f"\nframe: {r.frame.hex()}" if r.frame else ""
            if r.verdict == "pass":
                lines.append(head + " />")
                continue
            lines.append(head + ">")
            tag = {"fail": "failure", "error": "error", "skip": "skipped"}[r.verdict]
            lines.append(f"      <{tag} message={quoteattr(r.reason)}>{escape(body + frame)}</{tag}>")
            lines.append("    </testcase>")
        lines += ["  </testsuite>", "</testsuites>", ""]
        return "\n".join(lines)


async def run_cases(
    tester: Tester,
    cases: list[Case],
    *,
    report: Report,
    progress: Progress | None = None,
    case_timeout: float | None = None,
) -> Report:
    """Run ``cases`` in order on ``tester`` (started here, closed at the end) into ``report``."""
    wall = time.monotonic()
    try:
        await tester.start()
    except Fail as exc:
        for c in cases:
            report.results.append(CaseResult(c, "error", f"no EVB session with the DUT: {exc.reason}", exc.frame))
        report.seconds = time.monotonic() - wall
        await tester.close()
        return report
    op = tester.op
    report.operating = {"r": op.r, "rte": op.rte, "rwd": op.rwd, "rka": op.rka}
    report.tolerance = tester.config.tolerance
    report.dut_evb = str(tester.peer_evb)
    if case_timeout is None:
        case_timeout = 30 + 12 * (op.resp_wait_delay + op.keepalive_timeout)
    lost = 0
    gone = ""  #: the case after which the DUT stopped acknowledging anything
    for i, c in enumerate(cases):
        if progress:
            progress(i, len(cases), None)
        if lost >= 2:  # the DUT stopped talking EVB: do not wait evb_timeout for every case left
            result = CaseResult(c, "error", "not run: no EVB session with the DUT any more")
        elif gone:
            result = CaseResult(c, "error", f"not run: the DUT stopped acknowledging ECPDUs after {gone}")
        else:
            result = await run_one(tester, c, case_timeout)
            lost = lost + 1 if result.reason.startswith(NO_EVB) else 0
            if result.verdict in ("fail", "error") and not await tester.responsive():
                gone = c.id
                result.reason += " — and then the DUT stopped acknowledging ECPDUs (did it die?)"
        report.results.append(result)
        if progress:
            progress(i + 1, len(cases), result)
    await tester.close()
    report.seconds = time.monotonic() - wall
    return report


async def run_one(tester: Tester, c: Case, case_timeout: float) -> CaseResult:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tester.begin_case(c)
    verdict, reason, frame = "pass", "", None
    try:
        await tester.ensure_evb()
    except Fail as exc:
        tester.case = None
        return CaseResult(c, "error", f"{NO_EVB}: {exc.reason}", exc.frame, loop.time() - t0)
    try:
        await asyncio.wait_for(c.fn(tester), case_timeout)
    except Fail as exc:
        verdict, reason, frame = "fail", exc.reason, exc.frame
    except (Skip, HookUnsupported) as exc:
        verdict, reason = "skip", str(exc)
    except HookFailed as exc:
        verdict, reason = "error", str(exc)
    except TimeoutError:
        verdict, reason = "error", f"the case did not finish within {case_timeout:.0f} s"
    except Exception as exc:  # a bug of the suite: reported, the run goes on
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        verdict, reason = "error", f"{type(exc).__name__}: {exc} ({Path(tb.filename).name}:{tb.lineno})"
    try:
        await asyncio.wait_for(tester.end_case(), case_timeout)
    except (Fail, TimeoutError) as exc:
        if verdict == "pass":
            verdict, reason = "error", str(exc) or "clean-up did not finish"
    return CaseResult(c, verdict, reason, frame, loop.time() - t0, (tester.case_start, len(tester.log)))


def table(report: Report, *, width: int = 100) -> str:
    """The summary table: one row per case, failures with their reason and frame."""
    rows = []
    idw = max([len(r.case.id) for r in report.results] + [4])
    rows.append(f"{'CASE':<{idw}}  {'VERDICT':<7}  {'SECONDS':>7}  TITLE / REASON")
    for r in report.results:
        text = r.case.title if r.verdict == "pass" else r.reason
        rows.append(f"{r.case.id:<{idw}}  {r.verdict.upper():<7}  {r.seconds:7.3f}  {text}")
        if r.verdict == "fail":
            rows.append(f"{'':<{idw}}  {'':<7}  {'':>7}  checks: {r.case.clause}")
            if r.frame:
                h = r.frame.hex()
                rows.append(f"{'':<{idw}}  {'':<7}  {'':>7}  frame: {h[:width]}{'…' if len(h) > width else ''}")
    n = report.counts()
    rows.append("")
    rows.append(
        f"{len(report.results)} cases against a {report.dut_role} DUT ({report.target}) in {report.seconds:.1f} s: "
        f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped, {n['error']} errors"
    )
    return "\n".join(rows)
