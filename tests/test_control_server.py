"""evb/aio/control_server.py and evb/control_client.py: JSON lines on a unix socket.

Request ``{"id", "cmd", "args"}``; answer ``{"id", "ok": true, "result"}`` or ``{"id", "ok": false,
"error": {"code", "message"[, "data"]}}``; interim ``{"id", "notify"}`` lines come before the answer.
Every test runs a real server on a real unix socket in a temporary directory, on pytest-asyncio's
loop; the synchronous client runs in a worker thread. Handlers block on events the test sets, so
no test depends on timing (the one client timeout test waits 0.2 s on purpose).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog
from structlog.testing import capture_logs

from evb.aio.control_server import ControlServer, Notify
from evb.control import ControlError, ErrorCode, vsi_from_args, vsi_json
from evb.control_client import ConnectError, call

TIMEOUT = 5.0  #: generous upper bound for anything that should happen at once


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # short path: a unix socket path must fit in 108 octets, pytest's tmp_path may not
    with tempfile.TemporaryDirectory(prefix="evb-ctl-") as d:
        yield Path(d)


class Handlers:
    """The handlers the tests serve, and the events they wait on."""

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def gate(self, name: str) -> asyncio.Event:
        return self.release.setdefault(name, asyncio.Event())

    async def echo(self, args: dict[str, Any], notify: Notify) -> Any:
        self.seen.append(("echo", args))
        return {"echo": args}

    async def progress(self, args: dict[str, Any], notify: Notify) -> Any:
        # notifies without yielding in between: the answer must still come last
        for i in range(1, int(args.get("n", 3)) + 1):
            notify({"done": i})
        return {"done": int(args.get("n", 3))}

    async def wait(self, args: dict[str, Any], notify: Notify) -> Any:
        notify({"waiting": args["gate"]})
        await self.gate(args["gate"]).wait()
        return {"released": args["gate"]}

    async def boom(self, args: dict[str, Any], notify: Notify) -> Any:
        raise RuntimeError("handler bug")

    async def boom_after_notify(self, args: dict[str, Any], notify: Notify) -> Any:
        notify({"step": 1})
        raise KeyError("late bug")

    async def refuse(self, args: dict[str, Any], notify: Notify) -> Any:
        raise ControlError(ErrorCode.REJECTED, "bridge said no", {"status": 3})

    async def missing(self, args: dict[str, Any], notify: Notify) -> Any:
        raise ControlError(ErrorCode.NOT_FOUND, "no such VSI")

    async def vsi(self, args: dict[str, Any], notify: Notify) -> Any:
        return vsi_json(vsi_from_args(args))  # bad arguments raise ControlError(BAD_REQUEST)

    def table(self) -> dict[str, Any]:
        return {
            "echo": self.echo,
            "progress": self.progress,
            "wait": self.wait,
            "boom": self.boom,
            "boom.late": self.boom_after_notify,
            "refuse": self.refuse,
            "missing": self.missing,
            "vsi.request": self.vsi,
        }


class Server:
    def __init__(self, path: Path, handlers: Handlers, server: ControlServer, logs: list[Any]) -> None:
        self.path, self.handlers, self.server, self.logs = path, handlers, server, logs


@pytest_asyncio.fixture
async def server(sock_dir: Path) -> AsyncIterator[Server]:
    handlers = Handlers()
    path = sock_dir / "run" / "ctl.sock"  # the directory is created by start()
    with capture_logs() as logs:
        srv = ControlServer(path, handlers.table(), structlog.get_logger())
        await srv.start()
        try:
            yield Server(path, handlers, srv, logs)
        finally:
            for ev in handlers.release.values():
                ev.set()
            await srv.close()


class Conn:
    """One client connection speaking JSON lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, path: Path) -> Conn:
        return cls(*await asyncio.open_unix_connection(str(path)))

    async def send(self, obj: Any) -> None:
        self.writer.write(obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n")
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        assert line.endswith(b"\n"), f"connection closed: {line!r}"
        msg: dict[str, Any] = json.loads(line)
        return msg

    async def request(self, obj: Any) -> dict[str, Any]:
        await self.send(obj)
        return await self.recv()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest_asyncio.fixture
async def conn(server: Server) -> AsyncIterator[Conn]:
    c = await Conn.open(server.path)
    yield c
    await c.close()


# --------------------------------------------------------------------------- answers


@pytest.mark.asyncio
async def test_answer_carries_the_request_id(server: Server, conn: Conn) -> None:
    assert await conn.request({"id": 7, "cmd": "echo", "args": {"a": 1}}) == {
        "id": 7,
        "ok": True,
        "result": {"echo": {"a": 1}},
    }
    assert await conn.request({"id": "x-1", "cmd": "echo"}) == {"id": "x-1", "ok": True, "result": {"echo": {}}}
    assert server.handlers.seen == [("echo", {"a": 1}), ("echo", {})]  # no args: {}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("line", "rid", "message"),
    [
        (b"this is not json\n", None, "request is not JSON"),
        (b'{"id": 3, "cmd": \n', None, "request is not JSON"),
        (b"\n", None, "request is not JSON"),
        (b"[1, 2]\n", None, "request must be a JSON object"),
        (b'{"id": 4, "cmd": "echo", "args": [1]}\n', 4, "args must be a JSON object"),
        (b'{"id": 5, "cmd": "echo", "args": "x"}\n', 5, "args must be a JSON object"),
    ],
)
async def test_bad_request(server: Server, conn: Conn, line: bytes, rid: Any, message: str) -> None:
    assert await conn.request(line) == {"id": rid, "ok": False, "error": {"code": "E_BAD_REQUEST", "message": message}}
    # the connection is still usable
    assert (await conn.request({"id": 9, "cmd": "echo"}))["ok"] is True
    assert server.handlers.seen == [("echo", {})]


@pytest.mark.asyncio
@pytest.mark.parametrize("cmd", ["nope", None, 5])
async def test_unknown_command(server: Server, conn: Conn, cmd: Any) -> None:
    answer = await conn.request({"id": 1, "cmd": cmd})
    assert answer["id"] == 1
    assert answer["ok"] is False
    assert answer["error"] == {
        "code": "E_BAD_REQUEST",
        "message": f"unknown command {cmd!r}; known: boom, boom.late, echo, missing, progress, refuse, "
        "vsi.request, wait",
    }


@pytest.mark.asyncio
async def test_bad_arguments_of_a_command(conn: Conn) -> None:
    args = {"uuid": "5a0f1c2e-0001-4d3c-8e21-0a0000000001", "type_id": 5, "type_version": 4, "manager_id": "labmgr"}
    answer = await conn.request({"id": 2, "cmd": "vsi.request", "args": args | {"filters": ["10-zz"]}})
    assert answer == {
        "id": 2,
        "ok": False,
        "error": {"code": "E_BAD_REQUEST", "message": "--filter '10-zz': 'zz' is not a MAC address aa:bb:cc:dd:ee:ff"},
    }
    answer = await conn.request({"id": 3, "cmd": "vsi.request", "args": args})
    assert answer["error"] == {"code": "E_BAD_REQUEST", "message": "missing argument 'filters'"}
    answer = await conn.request({"id": 4, "cmd": "vsi.request", "args": args | {"filters": ["10"]}})
    assert answer["ok"] is True
    assert answer["result"]["filters"] == ["10"]


@pytest.mark.asyncio
async def test_control_error_keeps_code_and_data(conn: Conn) -> None:
    assert await conn.request({"id": 1, "cmd": "refuse"}) == {
        "id": 1,
        "ok": False,
        "error": {"code": "E_REJECTED", "message": "bridge said no", "data": {"status": 3}},
    }
    assert await conn.request({"id": 2, "cmd": "missing"}) == {
        "id": 2,
        "ok": False,
        "error": {"code": "E_NOT_FOUND", "message": "no such VSI"},
    }


@pytest.mark.asyncio
async def test_handler_that_raises_is_internal_and_the_server_survives(server: Server, conn: Conn) -> None:
    assert await conn.request({"id": 1, "cmd": "boom"}) == {
        "id": 1,
        "ok": False,
        "error": {"code": "E_INTERNAL", "message": "handler bug"},
    }
    # same connection, and a new one, still served
    assert (await conn.request({"id": 2, "cmd": "echo"}))["ok"] is True
    other = await Conn.open(server.path)
    assert (await other.request({"id": 3, "cmd": "echo"}))["ok"] is True
    await other.close()
    errors = [e for e in server.logs if e["event"] == "control.internal_error"]
    assert errors == [
        {"event": "control.internal_error", "error": "handler bug", "log_level": "error", "exc_info": True}
    ]


@pytest.mark.asyncio
async def test_notify_lines_come_before_the_answer(conn: Conn) -> None:
    await conn.send({"id": 11, "cmd": "progress", "args": {"n": 3}})
    lines = [await conn.recv() for _ in range(4)]
    assert lines == [
        {"id": 11, "notify": {"done": 1}},
        {"id": 11, "notify": {"done": 2}},
        {"id": 11, "notify": {"done": 3}},
        {"id": 11, "ok": True, "result": {"done": 3}},
    ]


@pytest.mark.asyncio
async def test_notify_before_an_error_answer(conn: Conn) -> None:
    await conn.send({"id": 12, "cmd": "boom.late"})
    assert await conn.recv() == {"id": 12, "notify": {"step": 1}}
    assert await conn.recv() == {"id": 12, "ok": False, "error": {"code": "E_INTERNAL", "message": "'late bug'"}}


@pytest.mark.asyncio
async def test_concurrent_requests_on_one_connection_answered_by_id(server: Server, conn: Conn) -> None:
    await conn.send({"id": 1, "cmd": "wait", "args": {"gate": "a"}})
    await conn.send({"id": 2, "cmd": "wait", "args": {"gate": "b"}})
    assert {json.dumps(await conn.recv()) for _ in range(2)} == {
        json.dumps({"id": 1, "notify": {"waiting": "a"}}),
        json.dumps({"id": 2, "notify": {"waiting": "b"}}),
    }
    # a third, quick request is answered while the first two wait
    assert await conn.request({"id": 3, "cmd": "echo"}) == {"id": 3, "ok": True, "result": {"echo": {}}}
    server.handlers.gate("b").set()
    assert await conn.recv() == {"id": 2, "ok": True, "result": {"released": "b"}}
    server.handlers.gate("a").set()
    assert await conn.recv() == {"id": 1, "ok": True, "result": {"released": "a"}}


@pytest.mark.asyncio
async def test_requests_pipelined_in_one_write(conn: Conn) -> None:
    await conn.send(b"".join(json.dumps({"id": i, "cmd": "echo", "args": {"i": i}}).encode() + b"\n" for i in range(5)))
    answers = [await conn.recv() for _ in range(5)]
    assert sorted((a["id"], a["result"]["echo"]["i"]) for a in answers) == [(i, i) for i in range(5)]


# --------------------------------------------------------------------------- the socket file


@pytest.mark.asyncio
async def test_socket_mode_0660(server: Server) -> None:
    st = os.stat(server.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert {"event": "control.listening", "socket": str(server.path), "log_level": "info"} in server.logs


@pytest.mark.asyncio
async def test_stale_socket_file_is_replaced(sock_dir: Path) -> None:
    path = sock_dir / "stale.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))  # a daemon that died without removing its socket
    crashed.close()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_unix_connection(str(path))
    with capture_logs():
        srv = ControlServer(path, Handlers().table(), structlog.get_logger())
        await srv.start()
    try:
        c = await Conn.open(path)
        assert (await c.request({"id": 1, "cmd": "echo"}))["ok"] is True
        await c.close()
    finally:
        await srv.close()
    assert not path.exists()  # close() removes the socket file


@pytest.mark.asyncio
async def test_close_ends_open_connections(server: Server, conn: Conn) -> None:
    await conn.send({"id": 1, "cmd": "wait", "args": {"gate": "never"}})
    assert await conn.recv() == {"id": 1, "notify": {"waiting": "never"}}
    await server.server.close()
    assert await asyncio.wait_for(conn.reader.read(), TIMEOUT) == b""  # EOF, no answer
    assert not server.path.exists()


# --------------------------------------------------------------------------- the synchronous client


@pytest.mark.asyncio
async def test_client_call_returns_the_result_and_passes_notifies(server: Server) -> None:
    notes: list[dict[str, Any]] = []
    result = await asyncio.to_thread(call, str(server.path), "progress", {"n": 4}, on_notify=notes.append)
    assert result == {"done": 4}
    assert notes == [{"done": 1}, {"done": 2}, {"done": 3}, {"done": 4}]  # none lost after the answer


@pytest.mark.asyncio
async def test_client_call_raises_control_error(server: Server) -> None:
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(call, str(server.path), "refuse")
    assert (info.value.code, info.value.message, info.value.data) == (
        ErrorCode.REJECTED,
        "bridge said no",
        {"status": 3},
    )
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(call, str(server.path), "nope")
    assert info.value.code is ErrorCode.BAD_REQUEST
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(call, str(server.path), "boom")
    assert (info.value.code, info.value.message) == (ErrorCode.INTERNAL, "handler bug")


@pytest.mark.asyncio
async def test_client_call_times_out(server: Server) -> None:
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(call, str(server.path), "wait", {"gate": "g"}, timeout=0.2)
    assert info.value.code is ErrorCode.TIMEOUT
    assert info.value.message == f"no answer from {server.path} within 0.2 s"


def test_client_without_a_daemon(sock_dir: Path) -> None:
    path = sock_dir / "none.sock"
    with pytest.raises(ConnectError) as info:
        call(str(path), "status")
    assert str(info.value) == f"no daemon listens on {path} (No such file or directory); is it running?"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with pytest.raises(ConnectError) as info:
        call(str(path), "status")
    assert str(info.value) == f"no daemon listens on {path} (Connection refused); is it running?"
