"""evb/station_agent/state.py: the station's desired VSI state file.

The file survives restarts (a restart re-requests every VSI in it), is written atomically
(temporary file + ``os.replace``: a reader sees the old or the new file, never half of one),
and a bad file or entry is reported and skipped, never fatal to the daemon.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evb.station_agent.state import VERSION, DesiredState
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode, VsiidFormat
from tests.helpers import LABMGR, U1, U3

MAC1 = bytes.fromhex("020000000101")

V1 = Vsi(
    manager_id=LABMGR,
    type_id=5,
    type_version=4,
    vsiid=U1,
    filter_format=FilterFormat.MAC_VID,
    entries=(FilterEntry(vid=10, mac=MAC1), FilterEntry(vid=0, mac=bytes.fromhex("020000000102"))),
)
V2 = Vsi(
    manager_id=bytes(range(16)),
    type_id=0xFFFFFF,
    type_version=255,
    vsiid=bytes(10) + bytes.fromhex("5254008eaa11"),
    vsiid_format=VsiidFormat.MAC,
    filter_format=FilterFormat.GROUP_MAC_VID,
    entries=(FilterEntry(vid=13, pcp=5, ps=True, mac=MAC1, group_id=0xFFFFFFFF),),
)
V3 = Vsi(
    manager_id=LABMGR,
    type_id=1,
    type_version=0,
    vsiid=U3,
    filter_format=FilterFormat.GROUP_VID,
    entries=(FilterEntry(vid=0, group_id=200),),
)


def test_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"  # the directory is created
    st = DesiredState(path)
    st.set(V1, VdpMode.ASSOC, "none")
    st.set(V2, VdpMode.PREASSOC_RR, "to")
    st.set(V3, VdpMode.DEASSOC, "from")
    again = DesiredState(path)
    assert again.load() == []
    assert again.vsis == {
        V1.key: (V1, VdpMode.ASSOC, "none"),
        V2.key: (V2, VdpMode.PREASSOC_RR, "to"),
        V3.key: (V3, VdpMode.DEASSOC, "from"),
    }
    assert list(again.vsis) == [V1.key, V2.key, V3.key]  # order kept


def test_file_format(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    DesiredState(path).set(V3, VdpMode.PREASSOC, "none")
    doc = json.loads(path.read_text())
    assert doc == {
        "version": VERSION,
        "vsis": [
            {
                "vsi": {
                    "manager_id": LABMGR.hex(),
                    "type_id": 1,
                    "type_version": 0,
                    "vsiid_format": 5,
                    "vsiid": U3.hex(),
                    "filter_format": 3,
                    "entries": [{"vid": 0, "pcp": 0, "ps": False, "mac": None, "group_id": 200}],
                },
                "mode": "preassoc",
                "hints": "none",
            }
        ],
    }


def test_set_replaces_drop_removes_and_saves(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    st = DesiredState(path)
    st.set(V1, VdpMode.ASSOC, "none")
    st.set(V1, VdpMode.DEASSOC, "none")  # same key: replaced, not added
    st.set(V2, VdpMode.ASSOC, "none", save=False)  # not on disk yet
    on_disk = DesiredState(path)
    on_disk.load()
    assert on_disk.vsis == {V1.key: (V1, VdpMode.DEASSOC, "none")}
    st.drop(V1.key)  # saves: V2 reaches the disk too
    on_disk = DesiredState(path)
    on_disk.load()
    assert on_disk.vsis == {V2.key: (V2, VdpMode.ASSOC, "none")}
    mtime = path.stat().st_mtime_ns
    st.drop(V3.key)  # unknown: nothing to write
    assert path.stat().st_mtime_ns == mtime


def test_save_replaces_the_file_not_rewrites_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    st = DesiredState(path)
    st.set(V1, VdpMode.ASSOC, "none")
    inode = path.stat().st_ino
    st.set(V2, VdpMode.ASSOC, "none")
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temporary left


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    st = DesiredState(path)
    st.set(V1, VdpMode.ASSOC, "none")
    before = path.read_bytes()
    with pytest.raises(TypeError):
        st.set(V2, VdpMode.ASSOC, object())  # type: ignore[arg-type]  # JSON cannot encode it: dump fails midway
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    st = DesiredState(tmp_path / "none.json")
    assert st.load() == []
    assert st.vsis == {}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"\xff\xfe\x00garbage",  # not UTF-8
        b"[1, 2]",  # JSON, but not a state file
        b'"vsis"',
        b'{"version": 1, "vsis": 5}',
    ],
)
def test_corrupt_file_is_reported_not_fatal(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    st = DesiredState(path)
    problems = st.load()
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: ")
    assert "starting empty" in problems[0]
    assert st.vsis == {}
    st.set(V1, VdpMode.ASSOC, "none")  # and the next save repairs the file
    again = DesiredState(path)
    assert again.load() == []
    assert again.vsis == {V1.key: (V1, VdpMode.ASSOC, "none")}


def test_bad_entries_are_skipped_the_rest_loaded(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    st = DesiredState(path)
    st.set(V1, VdpMode.ASSOC, "none")
    st.set(V2, VdpMode.PREASSOC, "none")
    doc = json.loads(path.read_text())
    good = doc["vsis"]
    bad_mode = json.loads(json.dumps(good[0])) | {"mode": "associate"}
    bad_hex = json.loads(json.dumps(good[0]))
    bad_hex["vsi"]["vsiid"] = "zz"
    bad_format = json.loads(json.dumps(good[0]))
    bad_format["vsi"]["filter_format"] = 9
    bad_vid = json.loads(json.dumps(good[1]))
    bad_vid["vsi"]["entries"][0]["vid"] = "ten"
    no_vsi = {"mode": "assoc"}
    doc["vsis"] = [bad_mode, good[0], bad_hex, 7, bad_format, no_vsi, bad_vid, good[1]]
    path.write_text(json.dumps(doc))
    again = DesiredState(path)
    problems = again.load()
    assert [p.split(" skipped")[0] for p in problems] == [f"{path}: entry {i}" for i in (0, 2, 3, 4, 5, 6)]
    assert again.vsis == {V1.key: (V1, VdpMode.ASSOC, "none"), V2.key: (V2, VdpMode.PREASSOC, "none")}


def test_hints_default_to_none(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    DesiredState(path).set(V1, VdpMode.ASSOC, "to")
    doc = json.loads(path.read_text())
    del doc["vsis"][0]["hints"]
    path.write_text(json.dumps(doc))
    st = DesiredState(path)
    assert st.load() == []
    assert st.vsis[V1.key] == (V1, VdpMode.ASSOC, "none")


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # reading a directory fails with an OSError
    problems = DesiredState(path).load()
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: unreadable, starting empty")
