"""A small synchronous client of the control API (used by the CLI)."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Callable
from typing import Any

from evb.control import ControlError, ErrorCode

_ids = itertools.count(1)


class ConnectError(Exception):
    pass


def call(
    path: str,
    cmd: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float | None = 120.0,
    on_notify: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Send one request and wait for its answer; raises ``ControlError`` for an error answer."""
    rid = next(_ids)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ConnectError(f"no daemon listens on {path} ({exc.strerror}); is it running?") from None
    except PermissionError:
        raise ConnectError(f"no permission to use {path} (root or the socket's group needed)") from None
    with sock:
        sock.sendall(json.dumps({"id": rid, "cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise ControlError(ErrorCode.TIMEOUT, f"no answer from {path} within {timeout} s") from None
            if not chunk:
                raise ConnectError(f"{path}: the daemon closed the connection")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("id") != rid:
                    continue
                if "notify" in msg:
                    if on_notify is not None:
                        on_notify(msg["notify"])
                    continue
                if msg.get("ok"):
                    return msg.get("result")
                err = msg.get("error") or {}
                try:
                    code = ErrorCode(err.get("code"))
                except ValueError:
                    code = ErrorCode.INTERNAL
                raise ControlError(code, err.get("message", "error"), err.get("data"))
