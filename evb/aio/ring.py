"""Memory-mapped AF_PACKET rings (``PACKET_MMAP``, ``TPACKET_V2``): many frames per system call.

The emulated data plane and ``bench/dataplane.py`` move hundreds of thousands of frames a
second from Python; one ``recv``/``send`` per frame cannot. With a receive ring the kernel
writes frames into shared memory and user space reads them with no system call at all; with a
transmit ring user space fills slots and one ``send()`` hands all of them to the driver.

Layout (``linux/if_packet.h``): the ring is ``block_nr`` blocks of ``block_size`` bytes, each cut
into frames of ``frame_size``; every frame slot starts with a ``tpacket2_hdr``::

    u32 tp_status  u32 tp_len  u32 tp_snaplen  u16 tp_mac  u16 tp_net
    u32 tp_sec  u32 tp_nsec  u16 tp_vlan_tci  u16 tp_vlan_tpid  u8 pad[4]      (32 octets)

Receive: a slot whose ``tp_status`` has ``TP_STATUS_USER`` is ours; the frame is at ``tp_mac``,
``tp_len`` long, and its VLAN tag (the kernel strips it, as for ``PACKET_AUXDATA``) is in
``tp_vlan_tci``/``tp_vlan_tpid`` when ``TP_STATUS_VLAN_VALID`` is set; writing
``TP_STATUS_KERNEL`` (0) gives the slot back. Transmit: the frame goes at offset 32 (the header
size), ``tp_len`` its length, ``tp_status`` ``TP_STATUS_SEND_REQUEST``; ``send(b"")`` sends every
requested slot and the kernel sets them back to ``TP_STATUS_AVAILABLE``.
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import struct
from typing import Final

ETH_P_ALL: Final = 0x0003
SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_MR_PROMISC: Final = 1
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_TX_RING: Final = 13
PACKET_VERSION: Final = 10
PACKET_QDISC_BYPASS: Final = 20
PACKET_IGNORE_OUTGOING: Final = 23
TPACKET_V2: Final = 1
TP_STATUS_KERNEL: Final = 0
TP_STATUS_USER: Final = 1
TP_STATUS_SEND_REQUEST: Final = 1
TP_STATUS_WRONG_FORMAT: Final = 4
TP_STATUS_VLAN_VALID: Final = 0x10
TP_STATUS_VLAN_TPID_VALID: Final = 0x40
HDR: Final = struct.Struct("=IIIHHIIHH4x")  # tpacket2_hdr, 32 octets
TX_DATA: Final = HDR.size  #: where a transmitted frame starts in its slot
_TX_HDR = struct.Struct("=II")  # tp_status, tp_len
RX_RELEASE: Final = struct.pack("=I", TP_STATUS_KERNEL)  #: written over tp_status: the slot is the kernel's again


def _ring_req(block_size: int, block_nr: int, frame_size: int) -> bytes:
    return struct.pack("IIII", block_size, block_nr, frame_size, block_size * block_nr // frame_size)


class PacketRing:
    """A raw socket bound to ``ifname`` with an RX ring, a TX ring, or both (one mapping).

    ``frames`` slots of ``frame_size`` octets each way (``frame_size`` a power of two ≥ 2048:
    a slot holds a 1518-octet tagged frame). ``ignore_outgoing`` keeps the socket's own sends
    (and the stack's) out of the RX ring; ``promiscuous`` puts the interface in promiscuous mode
    while the socket is open (a bridge port must hear frames for every address).
    """

    def __init__(
        self,
        ifname: str,
        *,
        rx_frames: int = 0,
        tx_frames: int = 0,
        frame_size: int = 2048,
        ignore_outgoing: bool = True,
        qdisc_bypass: bool = True,
        promiscuous: bool = False,
    ) -> None:
        self.ifname = ifname
        self.frame_size = frame_size
        per_block = max(1, mmap.PAGESIZE * 4 // frame_size)
        self.block_size = per_block * frame_size
        self.rx_frames = -(-rx_frames // per_block) * per_block if rx_frames else 0
        self.tx_frames = -(-tx_frames // per_block) * per_block if tx_frames else 0
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL if rx_frames else 0))
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            if ignore_outgoing:
                self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            if qdisc_bypass and tx_frames:
                self.sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            if self.rx_frames:
                req = _ring_req(self.block_size, self.rx_frames // per_block, frame_size)
                self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            if self.tx_frames:
                req = _ring_req(self.block_size, self.tx_frames // per_block, frame_size)
                self.sock.setsockopt(SOL_PACKET, PACKET_TX_RING, req)
            self.sock.bind((ifname, ETH_P_ALL if rx_frames else 0))
            if promiscuous:  # a bridge port hears every address (held while the socket is open)
                ifindex = socket.if_nametoindex(ifname)
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self.sock.setblocking(False)
            size = (self.rx_frames + self.tx_frames) * frame_size
            self.map = mmap.mmap(self.sock.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            self.sock.close()
            raise
        self.mac: bytes = self.sock.getsockname()[4][:6]
        self._rx_next = 0
        self._tx_base = self.rx_frames * frame_size
        self._tx_next = 0
        self._tx_pending = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    # ------------------------------------------------------------------ receive

    def statistics(self) -> tuple[int, int]:
        """``(packets, drops)`` since the last call (``PACKET_STATISTICS`` resets them)."""
        packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return packets, drops

    # ------------------------------------------------------------------ transmit

    def queue(self, frame: bytes | bytearray | memoryview) -> bool:
        """Put ``frame`` in the next TX slot; False if the ring is full (call ``flush()``)."""
        off = self._tx_base + self._tx_next * self.frame_size
        m = self.map
        if m[off] & 0x7:  # SEND_REQUEST or SENDING: not sent yet
            return False
        n = len(frame)
        m[off + TX_DATA : off + TX_DATA + n] = frame
        _TX_HDR.pack_into(m, off, TP_STATUS_SEND_REQUEST, n)
        self._tx_next = self._tx_next + 1 if self._tx_next + 1 < self.tx_frames else 0
        self._tx_pending += 1
        return True

    def flush(self) -> int:
        """Hand every queued slot to the kernel; how many were queued."""
        n, self._tx_pending = self._tx_pending, 0
        if n:
            with contextlib.suppress(BlockingIOError):  # the kernel sends what it can now, the rest later
                self.sock.send(b"", socket.MSG_DONTWAIT)
        return n

    def close(self) -> None:
        self.map.close()
        self.sock.close()
