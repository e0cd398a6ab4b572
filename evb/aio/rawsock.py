"""AF_PACKET links: one raw socket per interface for LLDP (0x88CC), ECP (0x8940) and draft ECP (0x88B7).

An adapter: it owns the socket and nothing protocol-specific. It joins the three 802.1
group addresses, filters in the kernel with a classic BPF program (only the three
EtherTypes reach user space), ignores its own outgoing frames (``PACKET_IGNORE_OUTGOING``)
and puts the VLAN tag the kernel strips back into the frame from ``PACKET_AUXDATA``. asyncio's
datagram endpoints refuse AF_PACKET, so the owner drives it with ``loop.add_reader``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Final, Protocol

from evb.ethernet import NEAREST_BRIDGE, NEAREST_CUSTOMER_BRIDGE, NEAREST_NON_TPMR_BRIDGE

ETH_P_ALL: Final = 0x0003
SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_AUXDATA: Final = 8
PACKET_IGNORE_OUTGOING: Final = 23
PACKET_MR_MULTICAST: Final = 0
SO_ATTACH_FILTER: Final = 26
TP_STATUS_VLAN_VALID: Final = 0x10
TP_STATUS_VLAN_TPID_VALID: Final = 0x40
_AUXDATA = struct.Struct("=IIIHHHH")  # tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid

GROUPS: Final = (NEAREST_CUSTOMER_BRIDGE, NEAREST_BRIDGE, NEAREST_NON_TPMR_BRIDGE)
ETHERTYPES: Final = (0x88CC, 0x8940, 0x88B7)


class Link(Protocol):
    """What a driver needs of a link (``RawLink``, or a test double)."""

    ifname: str
    ifindex: int
    mac: bytes

    def fileno(self) -> int: ...

    def recv(self) -> bytes | None: ...

    def send(self, frame: bytes) -> None: ...

    def close(self) -> None: ...


class LinkGone(OSError):
    """The interface went away (removed, or its index changed)."""


def _bpf_program(ethertypes: tuple[int, ...]) -> bytes:
    """Classic BPF: accept frames whose EtherType (offset 12) is one of ``ethertypes``."""
    insns = [(0x28, 0, 0, 12)]  # ldh [12]
    n = len(ethertypes)
    for i, et in enumerate(ethertypes):
        insns.append((0x15, n - i, 0, et))  # jeq #et, accept, next
    insns.append((0x06, 0, 0, 0))  # ret #0 (drop)
    insns.append((0x06, 0, 0, 0x40000))  # ret #262144 (accept whole frame)
    return b"".join(struct.pack("HBBI", *i) for i in insns)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@dataclass(frozen=True, slots=True)
class Received:
    data: bytes  #: the frame as sent, VLAN tag restored


class RawLink:
    """A raw Ethernet socket bound to one interface."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self.sock.setblocking(False)
            self._attach_filter()
            self.sock.bind((ifname, ETH_P_ALL))
            for group in GROUPS:
                mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_MULTICAST, 6, group)
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:
                self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                self.ignores_outgoing = True
            except OSError:  # kernels before 4.20
                self.ignores_outgoing = False
            self.mac: bytes = self.sock.getsockname()[4][:6]
        except BaseException:
            self.sock.close()
            raise
        self._drain()

    def _attach_filter(self) -> None:
        prog = _bpf_program(ETHERTYPES)
        buf = ctypes.create_string_buffer(prog)
        fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
        self._filter_buf = buf  # keep alive while the kernel copies it (it copies at once)

    def _drain(self) -> None:
        """Drop what arrived between socket() and the filter (unfiltered frames)."""
        while True:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                return

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self) -> bytes | None:
        """One frame, or None if nothing is waiting. Raises ``LinkGone`` if the interface is gone."""
        try:
            data, ancdata, _flags, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(_AUXDATA.size))
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                raise LinkGone(exc.errno, f"{self.ifname}: {os.strerror(exc.errno)}") from None
            raise
        if not self.ignores_outgoing and addr[2] == socket.PACKET_OUTGOING:
            return None
        for level, kind, payload in ancdata:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= _AUXDATA.size:
                status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(payload)
                if status & TP_STATUS_VLAN_VALID:
                    if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
                        tpid = 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        return data

    def send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
        except OSError as exc:
            if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                raise LinkGone(exc.errno, f"{self.ifname}: {os.strerror(exc.errno)}") from None
            raise

    def close(self) -> None:
        self.sock.close()


def interface_mac(ifname: str) -> bytes:
    """The interface's MAC address (opens and closes a ``RawLink``; raises ``OSError``)."""
    link = RawLink(ifname)
    try:
        return link.mac
    finally:
        link.close()


def link_is_up(ifname: str) -> bool:
    """Carrier and administrative state from sysfs (``operstate`` up or unknown)."""
    try:
        with open(f"/sys/class/net/{ifname}/operstate") as f:
            state = f.read().strip()
        with open(f"/sys/class/net/{ifname}/flags") as f:
            flags = int(f.read().strip(), 16)
    except OSError:
        return False
    return bool(flags & 0x1) and state in ("up", "unknown")
