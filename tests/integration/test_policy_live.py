"""Our bridge with a VSI type database, live: lldpad's station gets our refusals, and a reload
de-associates what the new policy forbids (`evb bridge reload`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from interop.lab import wait_for
from tests.integration.labs import SKIP_REASON, open_lab

pytestmark = [pytest.mark.netns, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]

POLICY = """\
[[manager]]
id = "labmgr"
[[manager.type]]
id = 5
version = 4
vlans = [10, 20]
assign_vid = 20
"""
U1 = "5a0f1c2e-0001-4d3c-8e21-0a0000000001"
U2 = "5a0f1c2e-0002-4d3c-8e21-0a0000000002"


def test_lldpad_station_refused_and_reload(request: pytest.FixtureRequest) -> None:
    with open_lab(request) as lab:
        policy = lab.workdir / "policy.toml"
        policy.write_text(POLICY)
        br = lab.start_bridge(evb={"rte": 10, "rwd": 14, "rka": 15}, policy=policy)
        st = lab.start_lldpad("station", ecprte=10, vdprwd=14, vdprka=15)
        lab.wait_evb(st, br)
        ok = st.vdp("assoc", uuid=U1, filters=["10-02:00:00:00:01:01"])
        assert ok.ok, ok.output
        refused = st.vdp("assoc", uuid=U2, filters=["30-02:00:00:00:01:02"])
        # our bridge refuses with a De-Associate TLV, status 0x55 (VID 30 not allowed, hard);
        # vdptool shows the refusal as a response of mode deassoc, and lldpad drops the VSI
        assert "Response from VDP" in refused.output and "mode = deassoc" in refused.output
        assert not st.vsis(uuid=U2)
        rows = {r["vsi"]: r for r in br.vsis()}
        assert set(rows) == {f"labmgr/{U1}"} and rows[f"labmgr/{U1}"]["mode"] == "assoc"
        rejected = [e for e in br.events("vdp.vsi_rejected") if e.get("vsiid") == f"labmgr/{U2}"]
        assert rejected and rejected[0]["code"] == "invalid_vid_group_mac" and rejected[0]["hard"] is True
        # a new policy without VID 10: U1 is de-associated by the bridge, lldpad's station drops it
        policy.write_text(POLICY.replace("[10, 20]", "[20]"))
        res = subprocess.run(
            [sys.executable, "-m", "evb.cli", "bridge", "reload", "--socket", br.socket, "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert res.returncode == 0, res.stderr
        assert '"released": 1' in res.stdout
        assert br.vsis() == []
        wait_for("lldpad's station to drop U1", lambda: not st.vsis(uuid=U1), timeout=10)
        # a broken file is refused and the old policy stays
        policy.write_text(POLICY + "bogus = 1\n")
        res = subprocess.run(
            [sys.executable, "-m", "evb.cli", "bridge", "reload", "--socket", br.socket],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert res.returncode == 2 and "the old one stays" in res.stderr
