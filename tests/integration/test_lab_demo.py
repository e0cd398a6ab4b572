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


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto")
def test_lab_demo_driven_over_mqtt() -> None:
    """``--mqtt``: a broker, agents with --mqtt, the VSIs associated and de-associated with ``evb ctl``."""
    before, links = _namespaces(), _links()
    res = subprocess.run(
        [sys.executable, "-m", "evb.cli", "lab", "demo", "--mqtt", "--no-capture", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.stdout, res.stderr
    doc = json.loads(res.stdout)
    assert [c["name"] for c in doc["checks"]] == ["retained MQTT state", *CHECKS]
    assert [c for c in doc["checks"] if not c["passed"]] == []
    assert doc["passed"] is True and res.returncode == 0
    assert doc["mqtt"]["policy"] == "evb ctl vtdb put"
    assert doc["mqtt"]["driven_by"] == "evb ctl" and doc["mqtt"]["broker"].startswith("mqtt://127.0.0.1:")
    assert doc["associated"] == {"vm1": "assoc", "vm2": "assoc", "vm3": "assoc", "vm4": "assoc"}
    assert doc["checks"][0]["detail"].startswith("4/4 VSIs read 'assoc'")
    port = int(doc["mqtt"]["broker"].rsplit(":", 1)[1])
    free = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    assert free.strip() == ""  # the broker is gone
    assert {ns for ns in _namespaces() - before if ns.startswith(doc["prefix"])} == set()
    assert _links() <= links  # the management bridge and its veths are gone
