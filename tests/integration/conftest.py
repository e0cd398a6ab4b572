"""Live interoperability tests in network namespaces (``interop/lab.py``, helpers in ``labs.py``).

Stale namespaces of killed earlier runs are removed first; a failing test gets the tails of the
open labs' logs attached to its report.
"""

from __future__ import annotations

from typing import Any

import pytest

from interop.lab import sweep_stale
from tests.integration.labs import OPEN_LABS, SKIP_REASON, log_tails


@pytest.fixture(scope="session", autouse=True)
def _sweep_stale_labs() -> None:
    """Namespaces left behind by a lab whose test process was killed are deleted first."""
    if SKIP_REASON is None:
        sweep_stale()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if report.failed:
        for lab in OPEN_LABS:
            report.sections.extend(log_tails(lab))
    return report
