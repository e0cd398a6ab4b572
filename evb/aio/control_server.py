"""The control API server: JSON lines on a unix socket (mode 0660), one task per request.

Handlers are ``async def handler(args, notify) -> result``; ``notify(dict)`` sends an interim
line (progress) with the request's id before the answer. A ``ControlError`` becomes an error
answer with its code; anything else becomes ``E_INTERNAL`` and is logged, never crashes the
daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from evb.control import ControlError, ErrorCode

Notify = Callable[[dict[str, Any]], None]
Handler = Callable[[dict[str, Any], Notify], Awaitable[Any]]
MAX_LINE = 64 * 1024 * 1024


class ControlServer:
    def __init__(self, path: str | Path, handlers: dict[str, Handler], log: Any) -> None:
        self.path = Path(path)
        self.handlers = handlers
        self.log = log
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ControlError(ErrorCode.BAD_REQUEST, f"{self.path} exists and is not a socket; not replacing it")
            self.path.unlink()  # a stale socket of a crashed daemon
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o660)
        self.log.info("control.listening", socket=str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        # 3.11's Server.close() leaves accepted connections open: end them (the client sees EOF,
        # and no connection task is left to be cancelled, and complain, at loop shutdown)
        for writer in self._clients.values():
            writer.close()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()

        async def send(obj: dict[str, Any]) -> None:
            async with lock:
                writer.write(json.dumps(obj).encode() + b"\n")
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        me = asyncio.current_task()
        if me is not None:
            self._clients[me] = writer
        try:
            while line := await reader.readline():
                task = asyncio.create_task(self._one(line, send))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionError, ValueError):
            pass
        finally:
            if me is not None:
                self._clients.pop(me, None)
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def _one(self, line: bytes, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        rid: Any = None
        notes: list[asyncio.Future[None]] = []

        async def answer(obj: dict[str, Any]) -> None:
            await asyncio.gather(*notes, return_exceptions=True)  # interim lines go out before the answer
            await send(obj)

        try:
            try:
                req = json.loads(line)
            except ValueError:
                raise ControlError(ErrorCode.BAD_REQUEST, "request is not JSON") from None
            if not isinstance(req, dict):
                raise ControlError(ErrorCode.BAD_REQUEST, "request must be a JSON object")
            rid = req.get("id")
            cmd = req.get("cmd")
            args = req.get("args") or {}
            handler = self.handlers.get(str(cmd))
            if handler is None:
                raise ControlError(
                    ErrorCode.BAD_REQUEST, f"unknown command {cmd!r}; known: {', '.join(sorted(self.handlers))}"
                )
            if not isinstance(args, dict):
                raise ControlError(ErrorCode.BAD_REQUEST, "args must be a JSON object")

            def notify(data: dict[str, Any]) -> None:
                task = asyncio.ensure_future(send({"id": rid, "notify": data}))
                notes.append(task)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

            result = await handler(args, notify)
            await answer({"id": rid, "ok": True, "result": result})
        except ControlError as exc:
            await answer({"id": rid, "ok": False, "error": exc.to_json()})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the daemon down
            self.log.exception("control.internal_error", error=str(exc))
            await answer({"id": rid, "ok": False, "error": {"code": ErrorCode.INTERNAL.value, "message": str(exc)}})
