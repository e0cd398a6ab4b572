"""``evb lab demo --json`` end to end: builds the namespace lab, every check passes, nothing is left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

_MISSING = [tool for tool in ("ip", "bridge", "nft") if shutil.which(tool) is None]
SKIP = "needs root" if os.geteuid() != 0 else (f"missing: {', '.join(_MISSING)}" if _MISSING else None)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

CHECKS = [
    "same host via hairpin",
    "other host reachable",
    "other host, back",
    "spoofed source MAC dropped",
    "unassociated VM dropped",
    "deassociated VM stops",
]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_lab_demo_all_checks_pass() -> None:
    before = _namespaces()
    res = subprocess.run(
        [sys.executable, "-m", "evb.cli", "lab", "demo", "--json"], capture_output=True, text=True, timeout=180
    )
    assert res.stdout, res.stderr
    doc = json.loads(res.stdout)
    assert [c["name"] for c in doc["checks"]] == CHECKS
    failed = [c for c in doc["checks"] if not c["passed"]]
    assert failed == [], failed
    assert doc["passed"] is True
    assert res.returncode == 0, res.stderr
    assert doc["associated"] == {"vm1": "assoc", "vm2": "assoc", "vm3": "assoc", "vm4": "assoc"}
    # the counters behind the checks: 20 reflected on b1 (vm1 -> vm2), 60 dropped on b1 (spoof, vm5, vm2 after deassoc)
    b1 = doc["dataplane"]["ports"]["b1"]["counters"]
    assert b1["reflected"] >= 20 and b1["dropped"] == 60
    if shutil.which("tshark"):
        assert "VDP ASSOC" in doc["ladder"] and "VDP DEASSOC" in doc["ladder"]
    assert not os.path.exists(doc["workdir"])
    assert {ns for ns in _namespaces() - before if ns.startswith(doc["prefix"])} == set()
