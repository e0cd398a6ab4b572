"""Helpers shared by the live interoperability tests: skip reason, and labs for fixtures.

``open_lab`` registers each lab while it is open so that ``conftest.py`` can attach the tails of
its logs (lldpad, our agents, tshark) to the report of a failing test; the lab's files are kept
(the path is printed) when a test failed while it was open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from interop.lab import Lab, missing_prerequisites

#: Why the live tests cannot run here (None: they can). tshark is optional (frame checks).
SKIP_REASON = missing_prerequisites(lldpad=True)
HAVE_TSHARK = missing_prerequisites(lldpad=False, tshark=True) is None
#: The labs open right now.
OPEN_LABS: list[Lab] = []


@contextlib.contextmanager
def open_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A lab for a fixture or a test: closed at the end, its files kept if a test failed meanwhile."""
    failed_before = request.session.testsfailed
    lab = Lab()
    try:
        lab.up()
    except BaseException:
        lab.close(keep_files=True)
        raise
    OPEN_LABS.append(lab)
    try:
        yield lab
    finally:
        OPEN_LABS.remove(lab)
        lab.close(keep_files=request.session.testsfailed > failed_before)


def log_tails(lab: Lab, lines: int = 25) -> list[tuple[str, str]]:
    """(title, last lines) of every log file of a lab."""
    out = []
    for path in sorted(lab.workdir.rglob("*.log")):
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        out.append((f"lab {lab.prefix}: {path.relative_to(lab.workdir)}", "\n".join(text[-lines:])))
    return out
