"""Hooks: how the suite asks the DUT to act (associate a VSI, de-associate it, ...).

A case that needs the DUT to do something calls ``tester.act(action, **params)``; the run's hook
performs it. ``CommandHook`` runs ``--hook CMD`` through the shell with one JSON object on its
standard input::

    {"action": "associate", "iface": "eth1", "vsi": {"manager": "conformance",
     "type_id": 10, "type_version": 1, "uuid": "...", "filter_format": 2,
     "filters": ["10-02:00:00:00:01:01"], "hints": "none"}}

Actions: ``associate``, ``preassociate``, ``preassociate-rr``, ``deassociate`` (VSI as above;
``filters`` in vdptool's ``VID[-MAC[-GROUP]]`` notation, VID 0 = "bridge, choose"). The hook
must return as soon as the DUT has taken the command: it must not wait for the VDP answer,
which the tester itself gives. Exit status 0 = done, 3 = "this DUT cannot do that" (the case is
skipped), anything else is an error. Ready-made hooks: ``interop/hooks/``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

ACTIONS = ("associate", "preassociate", "preassociate-rr", "deassociate")
EXIT_UNSUPPORTED = 3

Hook = Callable[[str, dict[str, Any]], Awaitable[None]]


class HookUnsupported(Exception):
    """The hook says the DUT cannot perform this action."""


class HookFailed(Exception):
    """The hook command failed."""


class CommandHook:
    """``--hook CMD``: a shell command, the action as JSON on stdin."""

    def __init__(self, command: str, *, iface: str = "", timeout: float = 30.0) -> None:
        self.command = command
        self.iface = iface
        self.timeout = timeout

    async def __call__(self, action: str, params: dict[str, Any]) -> None:
        doc = json.dumps({"action": action, "iface": self.iface, **params})
        proc = await asyncio.create_subprocess_shell(
            self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(doc.encode()), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise HookFailed(f"hook {action}: no exit within {self.timeout:g} s") from None
        if proc.returncode == EXIT_UNSUPPORTED:
            raise HookUnsupported(f"hook cannot {action}: {(err or out).decode(errors='replace').strip()}")
        if proc.returncode != 0:
            text = (err or out).decode(errors="replace").strip()
            raise HookFailed(f"hook {action}: exit {proc.returncode}: {text}")
