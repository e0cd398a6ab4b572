"""`evb vsi assoc --wait` against a bridge that refuses: exit 1, the status code and its meaning.

lldpad's bridge (release build) refuses a request that fails its validity checks with status
0x42 (response, code 2 "insufficient resources"; vdp.md §5.5), and it refuses VID 1, which the
standard and our station allow. That gives a real refusal on the wire without a policy file.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.labs import SKIP_REASON, open_lab

pytestmark = [pytest.mark.netns, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]

UUID = "5a0f1c2e-00aa-4d3c-8e21-0a00000000aa"


def evb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evb.cli", *args], capture_output=True, text=True, timeout=60)


def test_refusal_exits_1_with_status_code_and_meaning(request: pytest.FixtureRequest) -> None:
    with open_lab(request) as lab:
        br = lab.start_lldpad("bridge", ecprte=10, vdprwd=14, vdprka=15)
        st = lab.start_station(evb={"rte": 10, "rwd": 14, "rka": 15})
        lab.wait_evb(st, br)
        common = [
            "--socket",
            str(st.socket),
            "--uuid",
            UUID,
            "--type-id",
            "5",
            "--type-version",
            "4",
            "--manager-id",
            "labmgr",
            "--wait",
        ]
        res = evb("vsi", "assoc", *common, "--filter", "1-02:00:00:00:01:0a")
        assert res.returncode == 1, res.stderr
        assert "refused" in res.stderr and "status 2 (insufficient resources)" in res.stderr
        res = evb("vsi", "assoc", *common, "--filter", "1-02:00:00:00:01:0a", "--json")
        assert res.returncode == 1
        out = json.loads(res.stdout)
        assert out["ok"] is False and out["error"]["code"] == "E_REJECTED"
        assert out["error"]["data"]["status"] == 2 and out["error"]["data"]["meaning"] == "insufficient resources"
        # the same VSI with a VID lldpad accepts is associated, and the station's view says so
        res = evb("vsi", "assoc", *common, "--filter", "10-02:00:00:00:01:0a", "--json")
        assert res.returncode == 0, res.stderr
        result = json.loads(res.stdout)["result"]
        assert result["mode"] == "assoc" and result["filters"][0]["vid"] == 10
        rows = {r["vsi"]: r for r in st.vsis()}
        assert rows[f"labmgr/{UUID}"]["confirmed"] == "assoc"
