"""The station's desired VSI state, persisted as a small JSON file (written atomically).

One entry per VSI the operator asked for: its description and the mode wanted. A VSI leaves
the file only when its de-associate has been answered, so a ``deassoc`` issued while the
bridge is unreachable survives a restart, and a restart re-requests every VSI in the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from evb.control import MODE_NAMES, MODES
from evb.vdp.events import VsiKey
from evb.vdp.station import Vsi
from evb.vdp.wire import FilterEntry, FilterFormat, VdpMode

VERSION = 1


def _vsi_to(vsi: Vsi) -> dict[str, Any]:
    return {
        "manager_id": vsi.manager_id.hex(),
        "type_id": vsi.type_id,
        "type_version": vsi.type_version,
        "vsiid_format": int(vsi.vsiid_format),
        "vsiid": vsi.vsiid.hex(),
        "filter_format": int(vsi.filter_format),
        "entries": [
            {"vid": e.vid, "pcp": e.pcp, "ps": e.ps, "mac": e.mac.hex() if e.mac else None, "group_id": e.group_id}
            for e in vsi.entries
        ],
    }


def _vsi_from(d: dict[str, Any]) -> Vsi:
    return Vsi(
        manager_id=bytes.fromhex(d["manager_id"]),
        type_id=int(d["type_id"]),
        type_version=int(d["type_version"]),
        vsiid_format=int(d["vsiid_format"]),
        vsiid=bytes.fromhex(d["vsiid"]),
        filter_format=FilterFormat(int(d["filter_format"])),
        entries=tuple(
            FilterEntry(
                vid=int(e["vid"]),
                pcp=int(e["pcp"]),
                ps=bool(e["ps"]),
                mac=bytes.fromhex(e["mac"]) if e.get("mac") else None,
                group_id=e.get("group_id"),
            )
            for e in d["entries"]
        ),
    )


class DesiredState:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.vsis: dict[VsiKey, tuple[Vsi, VdpMode, str]] = {}

    def load(self) -> list[str]:
        """Read the file; returns problems with individual entries (skipped, not fatal)."""
        problems: list[str] = []
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return problems
        except (OSError, ValueError) as exc:
            return [f"{self.path}: unreadable, starting empty ({exc})"]
        if not isinstance(doc, dict) or not isinstance(doc.get("vsis", []), list):
            return [f"{self.path}: not a state file (no vsis list), starting empty"]
        for i, item in enumerate(doc.get("vsis", [])):
            try:
                vsi = _vsi_from(item["vsi"])
                self.vsis[vsi.key] = (vsi, MODES[item["mode"]], item.get("hints", "none"))
            except (KeyError, ValueError, TypeError) as exc:
                problems.append(f"{self.path}: entry {i} skipped ({exc!r})")
        return problems

    def set(self, vsi: Vsi, mode: VdpMode, hints: str, *, save: bool = True) -> None:
        self.vsis[vsi.key] = (vsi, mode, hints)
        if save:
            self.save()

    def drop(self, key: VsiKey, *, save: bool = True) -> None:
        if self.vsis.pop(key, None) is not None and save:
            self.save()

    def save(self) -> None:
        self.write(self.snapshot())

    def snapshot(self) -> str:
        """The file's text for the VSIs wanted now (``write`` puts it on disk, maybe in a thread)."""
        doc = {
            "version": VERSION,
            "vsis": [
                {"vsi": _vsi_to(vsi), "mode": MODE_NAMES[mode], "hints": hints}
                for vsi, mode, hints in self.vsis.values()
            ],
        }
        return json.dumps(doc)  # json.dump writes piecemeal: 6x slower

    def write(self, text: str) -> None:
        """Replace the file with ``text`` atomically and durably (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
