"""evb/cli_agents.py: ``evb station|bridge run``, ``evb vsi ...``, ``evb status`` without a daemon.

Exit status (the epilog of every command): 0 success; 1 the bridge refused, or no answer in time;
2 bad usage or input; 3 no daemon listens on the control socket. Bad options are refused before
any connection is tried; the daemons are never started (their settings are refused first). The
last tests put a stub ``ControlServer`` on a temporary socket to see what the CLI sends and how
it maps error codes to exit codes; the CLI runs in a worker thread, the server on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog
from structlog.testing import capture_logs

from evb.aio.control_server import ControlServer, Notify
from evb.cli import main
from evb.cli_agents import EXIT_NO_DAEMON, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from evb.control import ControlError, ErrorCode, vsi_from_args

U1 = "5a0f1c2e-0001-4d3c-8e21-0a0000000001"
VSI_OPTS = ["--uuid", U1, "--type-id", "5", "--type-version", "4", "--manager-id", "labmgr"]
EXIT_TEXT = (
    "exit status: 0 success; 1 the bridge refused, or no answer in time; 2 bad usage or input; "
    "3 no daemon listens on the control socket."
)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="evb-cli-") as d:  # unix socket paths: ≤ 107 octets
        yield Path(d)


@pytest.fixture(autouse=True)
def _wide_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # argparse wraps help to the terminal width


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def described(text: str, option: str) -> bool:
    """Is ``option`` listed in the options section with a description (same or next line)?"""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if line.startswith("  ") and words and words[0].rstrip(",") == option:
            rest = line.strip()[len(option) :].split("  ", 1)
            if len(rest) == 2 and rest[1].strip():
                return True
            return i + 1 < len(lines) and lines[i + 1].startswith(" " * 8) and bool(lines[i + 1].strip())
    return False


def test_exit_codes() -> None:
    assert (EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_NO_DAEMON) == (0, 1, 2, 3)


# --------------------------------------------------------------------------- --help


RUN_OPTIONS = {
    ("station", "run"): ["--iface", "--config", "--socket", "--state", "--log-format", "--log-level"],
    ("bridge", "run"): ["--port", "--config", "--policy", "--socket", "--log-format", "--log-level"],
}
VSI_OPTIONS = [
    "--iface",
    "--socket",
    "--uuid",
    "--type-id",
    "--type-version",
    "--manager-id",
    "--filter",
    "--format",
    "--hints",
    "--wait",
    "--from-file",
    "--json",
]


@pytest.mark.parametrize("cmd", sorted(RUN_OPTIONS))
def test_run_help_describes_every_option(capsys: pytest.CaptureFixture[str], cmd: tuple[str, str]) -> None:
    text = help_text(capsys, *cmd)
    for option in RUN_OPTIONS[cmd]:
        assert described(text, option), f"{' '.join(cmd)} --help: {option} missing or without description"
    assert EXIT_TEXT in " ".join(text.split())
    assert f"evb {' '.join(cmd)} --" in text  # an example


@pytest.mark.parametrize("mode", ["assoc", "preassoc", "preassoc-rr", "deassoc"])
def test_vsi_help_describes_every_option(capsys: pytest.CaptureFixture[str], mode: str) -> None:
    text = help_text(capsys, "vsi", mode)
    for option in VSI_OPTIONS:
        assert described(text, option), f"vsi {mode} --help: {option} missing or without description"
    flat = " ".join(text.split())
    assert EXIT_TEXT in flat
    # the filter notation of vdptool, with the PS/PCP nibble (lldpad-behaviour.md §2.3)
    assert "VID (format 1), VID-MAC (2), VID--GROUP (3), VID-MAC-GROUP (4)" in flat
    assert "0xd00d = PS 1, PCP 5, VID 13" in flat
    assert f"evb vsi {mode} --iface eth0 --uuid {U1}" in text


@pytest.mark.parametrize(
    "argv", [("vsi", "list"), ("vsi", "show"), ("status",), ("bridge", "status")], ids=lambda a: " ".join(a)
)
def test_client_help_has_the_exit_codes(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    text = help_text(capsys, *argv)
    assert EXIT_TEXT in " ".join(text.split())
    assert described(text, "--socket") and described(text, "--json")


# --------------------------------------------------------------------------- bad usage: exit 2, nothing sent


def test_vsi_assoc_missing_options_named(capsys: pytest.CaptureFixture[str], sock_dir: Path) -> None:
    sock = str(sock_dir / "none.sock")  # no daemon either: the options are checked first
    rc, out, err = run(capsys, "vsi", "assoc", "--socket", sock)
    assert (rc, out) == (2, "")
    assert (
        err
        == "evb: command line: missing --uuid, --type-id, --type-version, --manager-id, --filter (or use --from-file)\n"
    )
    rc, out, err = run(capsys, "vsi", "deassoc", "--socket", sock, "--uuid", U1, "--type-version", "4")
    assert rc == 2
    assert "missing --type-id, --manager-id, --filter (or use --from-file)" in err


def test_vsi_assoc_needs_an_agent(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "vsi", "assoc", *VSI_OPTS, "--filter", "10")
    assert rc == 2
    assert err == "evb: command line: --iface IF (or --socket PATH) is needed\n"


@pytest.mark.parametrize("argv", [("vsi", "list"), ("vsi", "show", "u1"), ("status",)], ids=lambda a: " ".join(a))
def test_client_needs_an_agent(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert err == "evb: command line: say which agent: --iface IF, --bridge or --socket PATH\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--type-id", "five"), "argument --type-id: invalid int value: 'five'"),
        (("--format", "eui64"), "argument --format: invalid choice: 'eui64'"),
        (("--hints", "sideways"), "argument --hints: invalid choice: 'sideways'"),
        (("--bogus",), "unrecognized arguments: --bogus"),
    ],
)
def test_vsi_assoc_argparse_errors(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["vsi", "assoc", "--iface", "eth0", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_vsi_list_agent_options_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["vsi", "list", "--iface", "eth0", "--bridge"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read (No such file or directory)"),
        ("[[vsi]\n", "not valid TOML"),
        ("title = 'x'\n", "vsi: no [[vsi]] tables"),
        (f'[[vsi]]\nuuid = "{U1}"\ncolour = "red"\n', "vsi[0]: unknown keys ['colour']"),
    ],
)
def test_vsi_from_file_errors(
    capsys: pytest.CaptureFixture[str], sock_dir: Path, content: str | None, message: str
) -> None:
    path = sock_dir / "vsis.toml"
    if content is not None:
        path.write_text(content)
    rc, _, err = run(capsys, "vsi", "assoc", "--socket", str(sock_dir / "none.sock"), "--from-file", str(path))
    assert rc == 2
    assert err.startswith(f"evb: {path}: ")
    assert message in err


def test_station_run_refuses_bad_settings_before_starting(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(capsys, "station", "run")
    assert rc == 2
    assert err == "evb station run: command line: station.iface: no interface: give --iface or station.iface\n"
    rc, _, err = run(capsys, "station", "run", "--config", str(tmp_path / "missing.toml"))
    assert rc == 2
    assert err == f"evb station run: {tmp_path / 'missing.toml'}: cannot read (No such file or directory)\n"
    config = tmp_path / "station.toml"
    config.write_text('[station]\niface = "eth0"\n')
    rc, _, err = run(capsys, "station", "run", "--config", str(config), "--iface", "eth1")
    assert rc == 2
    assert err == f"evb station run: {config}:2: station.iface: says 'eth0' but --iface says 'eth1'\n"
    config.write_text('[station]\niface = "eth0"\n[evb]\nrte = 32\n')
    rc, _, err = run(capsys, "station", "run", "--config", str(config))
    assert rc == 2
    assert err == f"evb station run: {config}:4: evb.rte: 32 is outside 0..31\n"


def test_bridge_run_refuses_bad_settings_before_starting(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(capsys, "bridge", "run")
    assert rc == 2
    assert err.startswith("evb bridge run: command line: bridge.ports: no ports")
    policy = tmp_path / "policy.toml"
    rc, _, err = run(capsys, "bridge", "run", "--port", "veth1", "--policy", str(policy))
    assert rc == 2
    assert err == f"evb bridge run: {policy}: cannot read (No such file or directory)\n"
    policy.write_text('[[manager]]\nid = "labmgr"\n[[manager.type]]\nid = 5\nversion = 4\nvlans = [5000]\n')
    rc, _, err = run(capsys, "bridge", "run", "--port", "veth1", "--policy", str(policy))
    assert rc == 2  # a bad policy file: the bridge does not start, and says where
    assert err.startswith(f"evb bridge run: {policy}:6: manager[0].type[0].vlans")


# --------------------------------------------------------------------------- no daemon: exit 3


@pytest.mark.parametrize(
    "argv",
    [
        ("vsi", "assoc", *VSI_OPTS, "--filter", "10"),
        ("vsi", "preassoc-rr", *VSI_OPTS, "--filter", "10", "--wait"),
        ("vsi", "list"),
        ("vsi", "show", "5a0f"),
        ("status",),
        ("bridge", "status"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_no_daemon_exit_3(capsys: pytest.CaptureFixture[str], sock_dir: Path, argv: tuple[str, ...]) -> None:
    sock = sock_dir / "station.sock"
    rc, out, err = run(capsys, *argv, "--socket", str(sock))
    assert (rc, out) == (3, "")
    assert err == f"evb: no daemon listens on {sock} (No such file or directory); is it running?\n"


def test_stale_socket_exit_3(capsys: pytest.CaptureFixture[str], sock_dir: Path) -> None:
    sock = sock_dir / "station.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))  # left behind by a daemon that died
    dead.close()
    rc, _, err = run(capsys, "status", "--socket", str(sock))
    assert rc == 3
    assert err == f"evb: no daemon listens on {sock} (Connection refused); is it running?\n"


# --------------------------------------------------------------------------- against a stub daemon


class Stub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.error: ControlError | None = None

    async def request(self, args: dict[str, Any], notify: Notify) -> Any:
        self.requests.append(args)
        if self.error is not None:
            raise self.error
        vsi_from_args(args)  # what the station daemon does first with the arguments
        if args["wait"]:
            return {"vsi": f"labmgr/{args['uuid']}", "mode": args["mode"], "filters": [{"vid": 10, "pcp": 0}]}
        return {"vsi": f"labmgr/{args['uuid']}", "queued": args["mode"]}


@pytest_asyncio.fixture
async def stub(sock_dir: Path) -> AsyncIterator[tuple[Stub, Path]]:
    s = Stub()
    path = sock_dir / "stub.sock"
    with capture_logs():
        server = ControlServer(path, {"vsi.request": s.request}, structlog.get_logger())
        await server.start()
        try:
            yield s, path
        finally:
            await server.close()


async def run_async(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.asyncio
async def test_vsi_assoc_sends_the_options(capsys: pytest.CaptureFixture[str], stub: tuple[Stub, Path]) -> None:
    s, path = stub
    rc, out, err = await run_async(
        capsys,
        "vsi",
        "assoc",
        "--socket",
        str(path),
        *VSI_OPTS,
        "--filter",
        "10",
        "--filter",
        "0xd00d",
        "--hints",
        "to",
    )
    assert (rc, out, err) == (0, f"labmgr/{U1}: assoc requested\n", "")
    assert s.requests == [
        {
            "uuid": U1,
            "type_id": 5,
            "type_version": 4,
            "manager_id": "labmgr",
            "filters": ["10", "0xd00d"],
            "format": "uuid",
            "hints": "to",
            "mode": "assoc",
            "wait": False,
        }
    ]
    rc, out, _ = await run_async(
        capsys, "vsi", "preassoc", "--socket", str(path), *VSI_OPTS, "--filter", "10", "--wait"
    )
    assert (rc, out) == (0, f"labmgr/{U1}: preassoc [vid=10 pcp=0]\n")
    rc, out, _ = await run_async(capsys, "vsi", "deassoc", "--socket", str(path), *VSI_OPTS, "--filter", "10", "--json")
    assert rc == 0
    assert json.loads(out) == {"ok": True, "result": {"vsi": f"labmgr/{U1}", "queued": "deassoc"}}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("code", "rc"),
    [
        (ErrorCode.REJECTED, 1),
        (ErrorCode.TIMEOUT, 1),
        (ErrorCode.INTERNAL, 1),
        (ErrorCode.BAD_REQUEST, 2),
        (ErrorCode.NOT_ALLOWED, 2),
        (ErrorCode.NOT_FOUND, 2),
    ],
)
async def test_error_answers_map_to_exit_codes(
    capsys: pytest.CaptureFixture[str], stub: tuple[Stub, Path], code: ErrorCode, rc: int
) -> None:
    s, path = stub
    s.error = ControlError(code, "it went wrong", {"status": 3} if code is ErrorCode.REJECTED else None)
    got, out, err = await run_async(capsys, "vsi", "assoc", "--socket", str(path), *VSI_OPTS, "--filter", "10")
    assert (got, out, err) == (rc, "", "evb: it went wrong\n")
    got, out, _ = await run_async(capsys, "vsi", "assoc", "--socket", str(path), *VSI_OPTS, "--filter", "10", "--json")
    assert got == rc
    assert json.loads(out) == {"ok": False, "error": s.error.to_json()}


@pytest.mark.asyncio
async def test_bad_filter_refused_by_the_daemon_is_usage(
    capsys: pytest.CaptureFixture[str], stub: tuple[Stub, Path]
) -> None:
    _, path = stub
    rc, _, err = await run_async(capsys, "vsi", "assoc", "--socket", str(path), *VSI_OPTS, "--filter", "10-zz")
    assert rc == 2
    assert err == "evb: --filter '10-zz': 'zz' is not a MAC address aa:bb:cc:dd:ee:ff\n"


@pytest.mark.asyncio
async def test_unknown_command_of_an_old_daemon_is_usage(
    capsys: pytest.CaptureFixture[str], stub: tuple[Stub, Path]
) -> None:
    _, path = stub  # the stub serves vsi.request only
    rc, _, err = await run_async(capsys, "status", "--socket", str(path))
    assert rc == 2
    assert err == "evb: unknown command 'status'; known: vsi.request\n"
