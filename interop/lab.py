"""A two-namespace lab for live interoperability tests: lldpad and our agents on a veth pair.

One network namespace plays the station, the other the bridge; a veth pair with fixed,
locally administered MACs joins them. Into each namespace the tests put either an lldpad
(driven with ``lldptool``/``vdptool``) or one of our daemons (``evb station run`` /
``evb bridge run``, driven through the control socket), and optionally a tshark capture.

    with Lab() as lab:
        br = lab.start_lldpad("bridge", ecprte=10, vdprka=15)
        st = lab.start_station(evb={"rka": 15})
        lab.wait_evb(st, br)
        st.request("assoc", uuid=..., filters=["10-02:00:00:00:01:01"], wait=True)

Everything a lab starts is recorded and stopped when it closes, and its namespaces are
deleted, also after a failure (``Lab`` is a context manager). Names are unique per lab
(``evl<owner pid><n>``) so parallel runs never meet; ``sweep_stale()`` removes the namespaces of
labs whose owning process died without cleaning up.

Things about lldpad this module takes care of (see the project's interop notes):

* lldpad refuses to start while another instance's pid is recorded in its POSIX
  shared-memory segment, so each instance runs in a private mount namespace with its own
  tmpfs on ``/dev/shm``;
* lldpad fixes the VDP role (station or bridge) when the port comes up, from the
  configuration of that moment. ``start_lldpad`` therefore configures a first instance with
  ``lldptool``, stops it, and starts a second one on the saved configuration ("two passes");
  LLDP transmission is switched on only in the second pass;
* a converged EVB exchange is detected from lldptool's view (local and peer TLV agree on
  everything but the mode and the "taken from the peer" bits).

Needs root, ``ip`` (iproute2), ``unshare``/``mount`` (util-linux), and for the lldpad parts
``lldpad``, ``lldptool`` and ``vdptool``; ``tshark`` only for captures, ``nft`` (nftables) only
for ``set_loss``. Nothing here depends
on files outside this repository. Waiting is done by polling with a deadline: these are
real processes on a real clock.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from evb.cli_ctl import toml_value
from evb.control_client import ConnectError, call
from evb.errors import DecodeError
from evb.frame import Frame, decode_frame
from evb.lldp.wire import EvbMode, EvbTlv, decode_evb_tlv

STATION_MAC = "02:00:00:00:0a:01"
BRIDGE_MAC = "02:00:00:00:0b:01"
#: LLDP and ECP: everything EVB puts on the wire
CAPTURE_FILTER = "ether proto 0x88cc or ether proto 0x8940"
#: lldptool's and vdptool's names of the VDP requests (also the control API's)
MODES = ("preassoc", "preassoc-rr", "assoc", "deassoc")
#: The EVB keys of lldptool-evb22 that ``start_lldpad`` accepts (lldpad's tlvid0080c20d keys)
LLDPAD_EVB_KEYS = ("evbrrreq", "evbrrcap", "evbgpid", "ecpretries", "ecprte", "vdprwd", "vdprka")

_NAME_RE = re.compile(r"^evl([0-9a-f]{6})[0-9a-f]{2}-(st|br)$")
_counter = itertools.count(1)
#: ``Lab.inject``'s sender, run with ``python -c`` in a namespace: IFNAME GAP HEXFRAME...
_INJECT = """
import socket, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
sock.bind((sys.argv[1], 0))
for text in sys.argv[3:]:
    sock.send(bytes.fromhex(text))
    time.sleep(float(sys.argv[2]))
"""
T = TypeVar("T")


class LabError(Exception):
    """Something in the lab did not work (a command failed, a process died, a wait timed out)."""


# --------------------------------------------------------------------------- helpers


def missing_prerequisites(*, lldpad: bool = True, tshark: bool = False, nft: bool = False) -> str | None:
    """Why the lab cannot run here (not root, a tool missing), or None if it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, raw sockets, mounts)"
    tools = ["ip", "unshare", "mount"]
    if lldpad:
        tools += ["lldpad", "lldptool", "vdptool"]
    if tshark:
        tools += ["tshark"]
    if nft:
        tools += ["nft"]
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return (
            f"missing tool(s): {', '.join(missing)} "
            "(Debian: apt-get install lldpad tshark iproute2 util-linux nftables)"
        )
    return None


def run(
    cmd: list[str], *, ns: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a command (inside network namespace ``ns`` if given) and return its result as text."""
    full = ["ip", "netns", "exec", ns, *cmd] if ns else cmd
    try:
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(full)}: no result within {timeout} s") from None
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(full)}: exit {res.returncode}: {(res.stderr or res.stdout).strip()}")
    return res


def wait_for(what: str, fn: Callable[[], T], *, timeout: float, interval: float = 0.05) -> T:
    """Call ``fn`` until it returns something truthy (which is returned); LabError after ``timeout``.

    ``fn`` may raise ``LabError`` to give up at once (e.g. a process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    """The names of the network namespaces ``ip netns`` knows."""
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def sweep_stale() -> list[str]:
    """Delete the namespaces of labs whose owner process is gone (and end what still runs in them).

    Only names of this module's pattern are touched, and only when the pid encoded in the
    name no longer exists. Returns the namespaces deleted.
    """
    gone = []
    for ns in list_namespaces():
        m = _NAME_RE.match(ns)
        if not m or _pid_alive(int(m.group(1), 16)):
            continue
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run(["ip", "netns", "del", ns], check=False)
        gone.append(ns)
    return gone


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path}: unreadable)"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- processes


class Process:
    """A process the lab started (in its own session), with its output in ``log``."""

    def __init__(self, name: str, cmd: list[str], log: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` (e.g. ``signal.SIGSTOP``/``SIGCONT``/``SIGKILL``) to the process."""
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Ask the process to end with ``sig`` (SIGKILL after ``timeout``); returns its exit status."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
                os.kill(self.pid, signal.SIGCONT)  # a frozen process cannot act on the signal
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL, no questions asked (a crash, as far as the peer can tell)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def _reap_group(self) -> None:
        # children left in the process group we created for it (tshark's dumpcap, say)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def check_alive(self) -> None:
        if not self.alive():
            raise LabError(
                f"{self.name} exited with status {self.popen.returncode}; log {self.log}:\n{_tail(self.log)}"
            )


# --------------------------------------------------------------------------- the lab


@dataclass(frozen=True, slots=True)
class Side:
    """One end of the veth pair."""

    role: str  #: "station" or "bridge"
    ns: str
    ifname: str
    mac: str


class Lab:
    """Two namespaces joined by a veth pair, and the processes started in them.

    ``workdir`` holds configuration files, logs, sockets and captures (default: a new short
    directory under the system temporary directory, since unix socket paths are limited to
    108 octets). That default directory is removed on close unless ``keep`` is true or the
    ``with`` block failed; a directory given by the caller is left in place.
    """

    def __init__(self, *, workdir: str | Path | None = None, keep: bool = False) -> None:
        self.prefix = self._unique_prefix()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.station = Side("station", f"{self.prefix}-st", f"{self.prefix}-st", STATION_MAC)
        self.bridge = Side("bridge", f"{self.prefix}-br", f"{self.prefix}-br", BRIDGE_MAC)
        self._procs: list[Process] = []
        self._namespaces: list[str] = []
        self._closed = False

    @staticmethod
    def _unique_prefix() -> str:
        existing = set(list_namespaces())
        while True:
            prefix = f"evl{os.getpid() & 0xFFFFFF:06x}{next(_counter) & 0xFF:02x}"
            if f"{prefix}-st" not in existing and f"{prefix}-br" not in existing:
                return prefix

    # ------------------------------------------------------------------ set-up, tear-down

    def __enter__(self) -> Lab:
        try:
            self.up()
        except BaseException:
            self.close(keep_files=True)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(keep_files=self.keep or exc_type is not None)

    def up(self) -> None:
        """Create the namespaces and the veth pair (IPv6 off: no stray traffic), links up."""
        for side in (self.station, self.bridge):
            run(["ip", "netns", "add", side.ns])
            self._namespaces.append(side.ns)
            run(["ip", "-n", side.ns, "link", "set", "lo", "up"])
        st, br = self.station, self.bridge
        peer = ["peer", "name", br.ifname, "netns", br.ns, "address", br.mac]
        run(["ip", "link", "add", st.ifname, "netns", st.ns, "address", st.mac, "type", "veth", *peer])
        for side in (st, br):
            run(["sysctl", "-qw", f"net.ipv6.conf.{side.ifname}.disable_ipv6=1"], ns=side.ns, check=False)
            run(["ip", "-n", side.ns, "link", "set", side.ifname, "up"])

    def close(self, *, keep_files: bool = False) -> None:
        """Stop every process (newest first), delete the namespaces, remove the work directory."""
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                proc.stop(timeout=5)
        for ns in self._namespaces:
            run(["ip", "netns", "del", ns], check=False)
        if keep_files or not self._own_workdir:
            print(f"lab {self.prefix}: files kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def side(self, role: str) -> Side:
        if role not in ("station", "bridge"):
            raise LabError(f"role must be 'station' or 'bridge', not {role!r}")
        return self.station if role == "station" else self.bridge

    def spawn(self, name: str, cmd: list[str], *, ns: str, log: Path) -> Process:
        """Start ``cmd`` inside namespace ``ns``; it is stopped when the lab closes."""
        proc = Process(name, ["ip", "netns", "exec", ns, *cmd], log)
        self._procs.append(proc)
        return proc

    def set_link(self, role: str, up: bool) -> None:
        """Take one end of the veth down or up."""
        side = self.side(role)
        run(["ip", "-n", side.ns, "link", "set", side.ifname, "up" if up else "down"])

    def peer_side(self, role: str) -> Side:
        """The other end of the veth (where frames for ``role`` are sent from)."""
        return self.bridge if self.side(role) is self.station else self.station

    def set_loss(self, role: str, percent: int) -> None:
        """Lose ``percent`` % of the frames that arrive at ``role``'s end, at random (0: none).

        Made with nftables (``nft``, Debian's nftables) as a table ``netdev evbloss`` whose
        chain drops ``numgen random mod 100 < percent``. The chain hooks the *egress* of the
        other end, not the ingress of this one: an AF_PACKET socket bound with ETH_P_ALL (our
        agents', lldpad's, tshark's) is a tap that the kernel serves before the ingress hook,
        so an ingress rule would count its drops while the agent still read every frame. The
        sender's ``send`` fails with ENOBUFS for a dropped frame, which our agents count
        (``aio.send_failed``) and otherwise ignore, as a frame lost on the wire. The tables
        live in the lab's namespaces and go with them when the lab closes.
        """
        if not 0 <= percent <= 100:
            raise LabError(f"percent must be 0..100, not {percent}")
        sender = self.peer_side(role)
        run(["nft", "delete", "table", "netdev", "evbloss"], ns=sender.ns, check=False)
        if percent == 0:
            return
        run(["nft", "add", "table", "netdev", "evbloss"], ns=sender.ns)
        hook = f'{{ type filter hook egress device "{sender.ifname}" priority 0 ; }}'
        run(["nft", "add", "chain", "netdev", "evbloss", "out", hook], ns=sender.ns)
        match = [] if percent == 100 else ["numgen", "random", "mod", "100", "<", str(percent)]
        run(["nft", "add", "rule", "netdev", "evbloss", "out", *match, "counter", "drop"], ns=sender.ns)

    def lost(self, role: str) -> int:
        """How many frames on their way to ``role`` the ``set_loss`` rule dropped so far."""
        sender = self.peer_side(role)
        out = run(["nft", "list", "chain", "netdev", "evbloss", "out"], ns=sender.ns, check=False).stdout
        m = re.search(r"counter packets (\d+)", out)
        return int(m.group(1)) if m else 0

    def inject(self, role: str, frames: list[bytes], *, gap: float = 0.005) -> None:
        """Send whole Ethernet frames (no FCS, as given: build them with the sender's MAC) to
        ``role``'s end, from the other end's namespace through a raw AF_PACKET socket,
        ``gap`` seconds apart. The agent in the sending namespace does not see them (it ignores
        outgoing frames). Frames shorter than an Ethernet header are refused by the kernel."""
        sender = self.peer_side(role)
        run([sys.executable, "-c", _INJECT, sender.ifname, repr(gap), *(f.hex() for f in frames)], ns=sender.ns)

    # ------------------------------------------------------------------ components

    def start_lldpad(self, role: str, *, loglevel: int = 7, **evb: bool | int) -> Lldpad:
        """lldpad in the namespace of ``role``, configured for that EVB role (see ``Lldpad``).

        ``evb``: ``evbrrreq``, ``evbrrcap``, ``evbgpid`` (bool), ``ecpretries``, ``ecprte``,
        ``vdprwd``, ``vdprka`` (int). A station requests RR and a bridge offers it unless told.
        """
        lldpad = Lldpad(self, self.side(role), evb, loglevel=loglevel)
        lldpad.start()
        return lldpad

    def start_station(self, **kw: Any) -> Agent:
        """Our station agent on the station end (keywords as ``start_agent``)."""
        return self.start_agent("station", **kw)

    def start_bridge(self, **kw: Any) -> Agent:
        """Our bridge agent on the bridge end (one port; keywords as ``start_agent``)."""
        return self.start_agent("bridge", **kw)

    def start_agent(
        self,
        role: str,
        *,
        evb: dict[str, Any] | None = None,
        vdp: dict[str, Any] | None = None,
        log_level: str = "info",
        name: str | None = None,
        policy: str | Path | None = None,
        extra: list[str] | None = None,
        mqtt: dict[str, Any] | None = None,
    ) -> Agent:
        """One of our agents on ``role``'s end; ``evb``/``vdp``/``mqtt``: the [evb]/[vdp]/[mqtt]
        tables of its TOML; ``policy``: a bridge's policy file (or ``mqtt://`` URL); ``extra``:
        more command-line arguments (``--fault``)."""
        agent = Agent(
            self, self.side(role), evb or {}, vdp or {}, log_level=log_level, name=name or role, policy=policy
        )
        agent.mqtt = dict(mqtt or {})
        agent.extra = list(extra or [])
        agent.start()
        return agent

    def capture(self, role: str = "bridge", *, name: str = "capture", bpf: str = CAPTURE_FILTER) -> Capture:
        """Start tshark on one end of the veth (both directions are seen on either end)."""
        cap = Capture(self, self.side(role), self.workdir / f"{name}.pcap", bpf)
        cap.start()
        return cap

    def wait_evb(self, *ends: Lldpad | Agent, timeout: float = 30) -> float:
        """Wait until each given end sees EVB converged; returns the seconds it took."""
        t0 = time.monotonic()
        for end in ends:
            end.wait_evb(timeout=max(0.1, timeout - (time.monotonic() - t0)))
        return time.monotonic() - t0


# --------------------------------------------------------------------------- lldpad


def parse_evb_pretty(text: str) -> EvbTlv | None:
    """lldptool's pretty print of an EVB TLV (``lldptool -t [-n] -V evb``) as an ``EvbTlv``.

    The text looks like ``EVB Configuration TLV bridge:rrcap,rrctr(0x3) station:rrreq,rrstat(0x5)
    retries:3 rte:10 mode:station r/l:1 rwd:20 r/l:1 rka:20`` (tabs and newlines in between);
    the two status octets are read from the hex values in parentheses.
    """
    flat = " ".join(text.split())
    if "EVB Configuration TLV" not in flat:
        return None
    m = re.search(
        r"bridge:[^(]*\((?:0x)?([0-9a-fA-F]+)\) station:[^(]*\((?:0x)?([0-9a-fA-F]+)\) retries:(\d+) rte:(\d+) "
        r"mode:(\w+) r/l:(\d) rwd:(\d+) r/l:(\d) rka:(\d+)",
        flat,
    )
    if m is None:
        raise LabError(f"cannot read lldptool's EVB TLV: {flat!r}")
    bstat, sstat = int(m.group(1), 16), int(m.group(2), 16)
    modes = {"bridge": EvbMode.BRIDGE, "station": EvbMode.STATION}
    return EvbTlv(
        bgid=bool(bstat & 4),
        rrcap=bool(bstat & 2),
        rrctr=bool(bstat & 1),
        sgid=bool(sstat & 8),
        rrreq=bool(sstat & 4),
        rrstat=sstat & 3,
        r=int(m.group(3)),
        rte=int(m.group(4)),
        mode=modes.get(m.group(5), EvbMode.NOT_SUPPORTED),
        rol_rwd=m.group(6) == "1",
        rwd=int(m.group(7)),
        rol_rka=m.group(8) == "1",
        rka=int(m.group(9)),
    )


def evb_agree(local: EvbTlv | None, peer: EvbTlv | None) -> bool:
    """Do two EVB TLVs (ours and the peer's) agree: opposite modes, every other field equal.

    The ROL bits are left out: they say whose value was taken, which may differ between the
    sides (lldpad ignores received ROL bits).
    """
    if local is None or peer is None or {local.mode, peer.mode} != {EvbMode.STATION, EvbMode.BRIDGE}:
        return False
    return replace(local, mode=EvbMode.STATION, rol_rwd=False, rol_rka=False) == replace(
        peer, mode=EvbMode.STATION, rol_rwd=False, rol_rka=False
    )


@dataclass(frozen=True, slots=True)
class VdpResult:
    """What a ``vdptool`` set command did."""

    rc: int
    output: str
    elapsed: float  #: seconds, including vdptool's own start-up
    waited: bool = True  #: sent with ``-W`` (wait for the bridge's answer)

    @property
    def ok(self) -> bool:
        """Exit status 0, no failure text, and with ``-W`` the bridge's answer printed (vdptool
        exits 0 after "FAILED: ..." and also when no answer came)."""
        if self.rc != 0 or re.search(r"fail|error|invalid", self.output, re.IGNORECASE):
            return False
        return not self.waited or "Response from VDP" in self.output


class Lldpad:
    """One lldpad instance in a namespace, in station or bridge role (two-pass start)."""

    def __init__(self, lab: Lab, side: Side, evb: dict[str, bool | int], *, loglevel: int = 7) -> None:
        unknown = set(evb) - set(LLDPAD_EVB_KEYS)
        if unknown:
            raise LabError(f"unknown lldpad EVB key(s) {sorted(unknown)}; known: {', '.join(LLDPAD_EVB_KEYS)}")
        self.lab = lab
        self.side = side
        self.role = side.role
        self.ns = side.ns
        self.ifname = side.ifname
        self.evb = dict(evb)
        if "evbrrreq" not in evb and "evbrrcap" not in evb:
            self.evb["evbrrreq" if self.role == "station" else "evbrrcap"] = True
        self.loglevel = loglevel
        self.dir = lab.workdir / f"lldpad-{self.role}"
        self.dir.mkdir(exist_ok=True)
        self.conf = self.dir / "lldpad.conf"
        self.log = self.dir / "lldpad.log"
        self.proc: Process | None = None
        self.started_at = 0.0  #: time.monotonic() of the second pass's start
        self._log_offset = 0  #: where the log of the running instance starts

    # ------------------------------------------------------------------ life cycle

    def _spawn(self) -> None:
        # A private mount namespace with a fresh tmpfs on /dev/shm: this instance sees no
        # other lldpad's shared-memory segment. The shell execs lldpad, so the pid is lldpad's.
        script = 'mount -t tmpfs lldpad-shm /dev/shm && exec lldpad -p -f "$1" -V "$2"'
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "lldpad-start"]
        self.proc = self.lab.spawn(
            f"lldpad {self.role}", [*cmd, str(self.conf), str(self.loglevel)], ns=self.ns, log=self.log
        )
        proc = self.proc

        def answering() -> bool:
            proc.check_alive()
            return run(["lldptool", "-p"], ns=self.ns, check=False, timeout=5).returncode == 0

        wait_for(f"lldpad in {self.ns} to answer", answering, timeout=10)

    def start(self) -> None:
        """Two passes: configure EVB with lldptool, stop, start again on the saved configuration."""
        self.conf.write_text("")
        self._spawn()
        self.lldptool("-T", "-g", "ncb", "-V", "evb", "-c", "enableTx=yes")
        self.lldptool("-T", "-g", "ncb", "-V", "evb", "-c", f"evbmode={self.role}")
        for key, value in self.evb.items():
            text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
            self.lldptool("-T", "-g", "ncb", "-V", "evb", "-c", f"{key}={text}")
        saved = self.conf.read_text()
        self.stop()
        self.conf.write_text(saved)  # lldpad rewrites its file on the way out
        with open(self.log, "a") as f:
            f.write("---- lab: restart on the saved configuration ----\n")
        self.restart()

    def restart(self) -> None:
        """Start lldpad (again) on its configuration file and switch LLDP on (second pass)."""
        if self.proc is not None and self.proc.alive():
            raise LabError(f"lldpad in {self.ns} is still running")
        self.started_at = time.monotonic()
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        self._spawn()
        self.lldptool("-L", "adminStatus=rxtx")
        self.lldptool("-L", "-g", "ncb", "adminStatus=rxtx")

    def stop(self) -> None:
        """SIGTERM (a clean exit)."""
        if self.proc is not None:
            self.proc.stop()

    def kill(self) -> None:
        """SIGKILL: the peer sees nothing (no LLDP shutdown)."""
        if self.proc is not None:
            self.proc.kill()

    def send_signal(self, sig: int) -> None:
        """e.g. ``signal.SIGSTOP`` / ``signal.SIGCONT`` to freeze and thaw it."""
        if self.proc is None:
            raise LabError("lldpad not started")
        self.proc.send_signal(sig)

    # ------------------------------------------------------------------ lldptool

    def lldptool(self, *args: str, check: bool = True) -> str:
        """``lldptool`` on this instance's interface (``-i IF`` is added after the first option)."""
        argv = ["lldptool", args[0], "-i", self.ifname, *args[1:]] if args else ["lldptool"]
        return run(argv, ns=self.ns, check=check, timeout=10).stdout

    def evb_settings(self) -> dict[str, str]:
        """The configured EVB keys as lldptool prints them (``-t -V evb -c``)."""
        out = self.lldptool("-t", "-g", "ncb", "-V", "evb", "-c")
        return dict(line.strip().split("=", 1) for line in out.splitlines() if "=" in line)

    def evb_local(self) -> EvbTlv | None:
        """The EVB TLV this lldpad sends, from lldptool's pretty print."""
        return parse_evb_pretty(self.lldptool("-t", "-g", "ncb", "-V", "evb", check=False))

    def evb_peer(self) -> EvbTlv | None:
        """The peer's EVB TLV as this lldpad last received it (None before any)."""
        return parse_evb_pretty(self.lldptool("-t", "-n", "-g", "ncb", "-V", "evb", check=False))

    def wait_evb(self, timeout: float = 30) -> tuple[EvbTlv, EvbTlv]:
        """Wait until local and peer TLVs agree (EVB converged) and lldpad's VDP uses the values.

        Returns lldptool's (local, peer) TLVs. The second condition is read from the debug log
        (``vdp_values``); with a ``loglevel`` below 7 the wait ends 2.5 s after the start instead.
        """
        got: list[tuple[EvbTlv, EvbTlv]] = []
        t0 = time.monotonic()

        def converged() -> bool:
            assert self.proc is not None
            self.proc.check_alive()
            local, peer = self.evb_local(), self.evb_peer()
            if local is not None and peer is not None and evb_agree(local, peer):
                got.append((local, peer))
                return True
            return False

        wait_for(f"EVB convergence at lldpad {self.role}", converged, timeout=timeout, interval=0.1)
        local = got[-1][0]
        want = {"r": local.r, "rte": local.rte, "rwd": local.rwd, "rka": local.rka}
        # lldpad's VDP learns the values only from a TLV built or received after the VDP module
        # started (about a second after lldpad); until then a station refuses VSI commands.
        if self.loglevel < 7:
            time.sleep(max(0.0, self.started_at + 2.5 - time.monotonic()))
            return got[-1]
        wait_for(
            f"lldpad {self.role}'s VDP to take over {want}",
            lambda: self.vdp_values() == want,
            timeout=max(0.5, timeout - (time.monotonic() - t0)),
            interval=0.1,
        )
        return got[-1]

    def vdp_values(self) -> dict[str, int] | None:
        """R, RTE, RWD, RKA as lldpad's VDP module last took them over from EVB, since the last start.

        Read from lldpad's debug log (``data_from_evb:IF rwd:.. rka:.. gpid:.. retry:.. rte:..``),
        so only with ``loglevel=7``. None before the VDP module has them.
        """
        with open(self.log, "rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode(errors="replace")
        found = re.findall(
            rf"data_from_evb:{re.escape(self.ifname)} rwd:(\d+) rka:(\d+) gpid:\d+ retry:(\d+) rte:(\d+)", text
        )
        if not found:
            return None
        rwd, rka, r, rte = (int(x) for x in found[-1])
        return {"r": r, "rte": rte, "rwd": rwd, "rka": rka}

    # ------------------------------------------------------------------ vdptool (station role)

    def vdp(
        self,
        mode: str,
        *,
        uuid: str,
        filters: list[str],
        manager_id: str = "labmgr",
        type_id: int = 5,
        type_version: int = 4,
        hints: str = "none",
        wait: bool = True,
        timeout: float = 40,
    ) -> VdpResult:
        """A VDP request through vdptool (``-W`` waits for the bridge's answer)."""
        if mode not in MODES:
            raise LabError(f"mode must be one of {', '.join(MODES)}")
        argv = ["vdptool", "-i", self.ifname, "-T", *(["-W"] if wait else []), "-V", mode]
        for kv in (
            f"mode={mode}",
            f"mgrid2={manager_id}",
            f"typeid={type_id}",
            f"uuid={uuid}",
            f"typeidver={type_version}",
            f"hints={hints}",
            *(f"filter={f}" for f in filters),
        ):
            argv += ["-c", kv]
        t0 = time.monotonic()
        res = run(argv, ns=self.ns, check=False, timeout=timeout)
        return VdpResult(res.returncode, (res.stdout + res.stderr).strip(), time.monotonic() - t0, wait)

    def vsis(self, mode: str | None = None, **match: str) -> list[dict[str, Any]]:
        """The VSIs this (station) lldpad knows (``vdptool -t``), each a dict of vdptool's keys.

        vdptool lists the VSIs of one mode per call (``-V mode``); without ``mode`` all four
        are asked. ``filter`` is a list; ``match`` (e.g. ``uuid=...``) is passed as ``-c k=v``.
        """
        rows: list[dict[str, Any]] = []
        for m in [mode] if mode else MODES:
            argv = [
                "vdptool",
                "-i",
                self.ifname,
                "-t",
                "-V",
                str(m),
                *itertools.chain(*(["-c", f"{k}={v}"] for k, v in match.items())),
            ]
            res = run(argv, ns=self.ns, check=False, timeout=10)
            rows += parse_vdptool_list(res.stdout)
        return rows


def parse_vdptool_list(text: str) -> list[dict[str, Any]]:
    """``vdptool -t`` output (``VSI  0:`` blocks of ``key = value`` lines) as dicts."""
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        if re.match(r"^VSI\s+\d+:", line):
            rows.append({"filter": []})
        elif "=" in line and rows:
            key, value = (s.strip() for s in line.split("=", 1))
            if key == "filter":
                rows[-1]["filter"].append(value)
            else:
                rows[-1][key] = value
    return rows


# --------------------------------------------------------------------------- our agents


def toml_text(tables: dict[str, dict[str, Any]]) -> str:
    """A small TOML writer for the agents' flat tables."""
    out = []
    for name, table in tables.items():
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        out.append("")
    return "\n".join(out)


class Agent:
    """One of our daemons (``evb station run`` / ``evb bridge run``) in a namespace.

    Runs ``sys.executable -m evb.cli`` (the interpreter running the tests, hence the same
    installation of ``evb``) with a TOML file built from ``evb``/``vdp``, a control socket
    and, for a station, a state file in the lab's directory; its JSON log goes to ``log``.
    """

    def __init__(
        self,
        lab: Lab,
        side: Side,
        evb: dict[str, Any],
        vdp: dict[str, Any],
        *,
        log_level: str = "info",
        name: str | None = None,
        policy: str | Path | None = None,
    ) -> None:
        self.lab = lab
        self.side = side
        self.policy = policy  #: bridge: the policy file (VSI type database)
        self.role = side.role
        self.ns = side.ns
        self.ifname = side.ifname
        self.name = name or self.role
        base = lab.workdir / self.name
        self.config = base.with_suffix(".toml")
        self.socket = str(base.with_suffix(".sock"))
        self.state = base.with_suffix(".state.json")
        self.log = base.with_suffix(".log")
        self.log_level = log_level
        self.evb = dict(evb)
        self.vdp = dict(vdp)
        self.extra: list[str] = []  #: more command-line arguments
        self.mqtt: dict[str, Any] = {}  #: the [mqtt] table (none if empty)
        self.proc: Process | None = None

    def _write_config(self) -> None:
        head: dict[str, Any] = {"iface": self.ifname} if self.role == "station" else {"ports": [self.ifname]}
        if self.policy is not None:
            head["policy"] = str(self.policy)
        tables: dict[str, dict[str, Any]] = {self.role: head}
        if self.evb:
            tables["evb"] = self.evb
        if self.vdp:
            tables["vdp"] = self.vdp
        if self.mqtt:
            tables["mqtt"] = self.mqtt
        self.config.write_text(toml_text(tables))

    def command_line(self) -> list[str]:
        cmd = [sys.executable, "-m", "evb.cli", self.role, "run", "--config", str(self.config), "--socket", self.socket]
        if self.role == "station":
            cmd += ["--iface", self.ifname, "--state", str(self.state)]
        else:
            cmd += ["--port", self.ifname]
        return [*cmd, *self.extra, "--log-format", "json", "--log-level", self.log_level]

    def start(self, timeout: float = 20) -> None:
        """Start the daemon and wait until its control socket answers."""
        if self.proc is not None and self.proc.alive():
            raise LabError(f"{self.name} is already running")
        self._write_config()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        self.proc = self.lab.spawn(self.name, self.command_line(), ns=self.ns, log=self.log)
        proc = self.proc

        def answering() -> bool:
            proc.check_alive()
            try:
                call(self.socket, "status", timeout=2)
            except (ConnectError, OSError):
                return False
            return True

        wait_for(f"{self.name}'s control socket {self.socket}", answering, timeout=timeout)

    def stop(self) -> int | None:
        """SIGTERM (the agent leaves with LLDP TTL 0); returns the exit status."""
        return self.proc.stop() if self.proc is not None else None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    def send_signal(self, sig: int) -> None:
        if self.proc is None:
            raise LabError(f"{self.name} not started")
        self.proc.send_signal(sig)

    # ------------------------------------------------------------------ control API

    def call(self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float | None = 60) -> Any:
        """One control-API request (``vsi.request``, ``vsi.bulk``, ``vsi.list``, ``vsi.show``, ``status``)."""
        return call(self.socket, cmd, args, timeout=timeout)

    def status(self) -> dict[str, Any]:
        """``status``; for a bridge, the entry of its (only) port."""
        st: dict[str, Any] = self.call("status")
        return st["ports"][0] if "ports" in st else st

    def vsis(self) -> list[dict[str, Any]]:
        return list(self.call("vsi.list"))

    def request(
        self,
        mode: str,
        *,
        uuid: str,
        filters: list[str],
        manager_id: str = "labmgr",
        type_id: int = 5,
        type_version: int = 4,
        hints: str = "none",
        wait: bool = True,
        timeout: float | None = 60,
    ) -> Any:
        """``vsi.request`` (station): ask for one VSI, by default waiting for the bridge's answer."""
        args = {
            "mode": mode,
            "uuid": uuid,
            "filters": filters,
            "manager_id": manager_id,
            "type_id": type_id,
            "type_version": type_version,
            "hints": hints,
            "wait": wait,
        }
        return self.call("vsi.request", args, timeout=timeout)

    def evb_local(self) -> EvbTlv:
        """The EVB TLV we send, decoded from ``status``."""
        return _evb_from_hex(self.status()["evb"]["local_tlv"])

    def evb_peer(self) -> EvbTlv | None:
        peer = self.status()["evb"]["peer_tlv"]
        return _evb_from_hex(peer) if peer else None

    def wait_evb(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until the agent reports EVB negotiated; returns its ``status``."""
        got: list[dict[str, Any]] = []

        def negotiated() -> bool:
            assert self.proc is not None
            self.proc.check_alive()
            st = self.status()
            if st["evb"]["negotiated"]:
                got.append(st)
                return True
            return False

        wait_for(f"EVB negotiation at our {self.role}", negotiated, timeout=timeout)
        return got[-1]

    # ------------------------------------------------------------------ log

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        records = []
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log records of one event (``vdp.vsi_associated``, ``vdp.vsi_deassociated`` ...)."""
        return [r for r in self.log_records() if r.get("event") == name]

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log, lines)


def _evb_from_hex(text: str) -> EvbTlv:
    raw = bytes.fromhex(text)
    return decode_evb_tlv(raw[6:11])  # after the TLV header, OUI and subtype


# --------------------------------------------------------------------------- captures


@dataclass(frozen=True, slots=True)
class Captured:
    """One captured frame: its time (seconds since the epoch), bytes and decoding."""

    time: float
    data: bytes
    frame: Frame | None = field(default=None)  #: None for frames that are not LLDP/ECP or do not decode


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """The records of a classic pcap file, tolerating a last record still being written."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if len(data) < 24:
        return []
    magic = data[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e6),
        b"\xa1\xb2\xc3\xd4": (">", 1e6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e9),
        b"\xa1\xb2\x3c\x4d": (">", 1e9),
    }
    if magic not in formats:
        raise LabError(f"{path}: not a classic pcap file")
    endian, scale = formats[magic]
    rec = struct.Struct(endian + "IIII")
    out = []
    p = 24
    while p + rec.size <= len(data):
        sec, frac, caplen, _wirelen = rec.unpack_from(data, p)
        if p + rec.size + caplen > len(data):
            break
        out.append((sec + frac / scale, data[p + rec.size : p + rec.size + caplen]))
        p += rec.size + caplen
    return out


class Capture:
    """tshark writing a classic pcap on one end of the veth."""

    def __init__(self, lab: Lab, side: Side, path: Path, bpf: str) -> None:
        self.lab = lab
        self.side = side
        self.path = path
        self.bpf = bpf
        self.log = path.with_suffix(".tshark.log")
        self.proc: Process | None = None

    def start(self, timeout: float = 15) -> None:
        cmd = ["tshark", "-q", "-i", self.side.ifname, "-f", self.bpf, "-F", "pcap", "-w", str(self.path)]
        self.proc = self.lab.spawn("tshark", cmd, ns=self.side.ns, log=self.log)
        proc = self.proc

        def capturing() -> bool:
            proc.check_alive()
            return "Capturing on" in self.log.read_text(errors="replace")

        wait_for("tshark to start capturing", capturing, timeout=timeout)
        time.sleep(0.5)  # dumpcap may still be settling when tshark reports

    def stop(self) -> None:
        """Stop tshark (SIGINT) after a moment: the capture engine hands frames over late."""
        if self.proc is not None and self.proc.alive():
            time.sleep(0.5)
            self.proc.stop(signal.SIGINT)

    def frames(self) -> list[Captured]:
        """Every frame written so far, decoded with ``evb.frame.decode_frame``."""
        out = []
        for t, data in read_pcap(self.path):
            try:
                frame: Frame | None = decode_frame(data)
            except DecodeError:
                frame = None
            out.append(Captured(t, data, frame))
        return out

    def wait_frames(
        self, what: str, predicate: Callable[[list[Captured]], bool], timeout: float = 10
    ) -> list[Captured]:
        """Poll the capture file until ``predicate(frames)`` holds; returns the frames."""
        got: list[list[Captured]] = []

        def ok() -> bool:
            frames = self.frames()
            if predicate(frames):
                got.append(frames)
                return True
            return False

        wait_for(what, ok, timeout=timeout, interval=0.1)
        return got[-1]


def iter_ecp(frames: list[Captured]) -> Iterator[tuple[Captured, Frame]]:
    """The captured ECP frames (decoded), in order."""
    from evb.ecp.wire import Ecpdu

    for c in frames:
        if c.frame is not None and isinstance(c.frame.pdu, Ecpdu):
            yield c, c.frame
