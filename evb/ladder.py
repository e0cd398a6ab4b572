"""Station ↔ bridge ladder diagrams of a decoded exchange, as text and as SVG.

Pure: takes ``(time, Frame)`` pairs, returns strings. Roles come from the EVB TLVs each MAC
sends (EVB mode 1 bridge, 2 station), else from VDP (requests come from the station),
else from the order in which the MACs appear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from evb.describe import entry_text, short_vsiid
from evb.ecp.wire import DraftEcpdu, Ecpdu, EcpOp
from evb.ethernet import mac_to_str
from evb.frame import Frame
from evb.lldp.wire import EvbMode, Lldpdu
from evb.tlv import InvalidTlv
from evb.vdp.wire import VdpMode, VdpPdu, VsiTlv


@dataclass(frozen=True, slots=True)
class Party:
    mac: bytes
    role: str  #: "station", "bridge" or "peer"

    @property
    def title(self) -> str:
        return f"{self.role} {mac_to_str(self.mac)}"


@dataclass(frozen=True, slots=True)
class Step:
    time: float  #: seconds since the first frame
    src: int  #: column index
    dst: int
    label: str
    style: str  #: lldp, req, resp, ack, error, unsolicited


def infer_parties(frames: Sequence[tuple[float, Frame]]) -> list[Party]:
    roles: dict[bytes, str] = {}
    order: list[bytes] = []
    for _, f in frames:
        if f.src not in order:
            order.append(f.src)
        pdu = f.pdu
        if isinstance(pdu, Lldpdu) and pdu.evb is not None:
            mode = pdu.evb.mode
            if mode in (EvbMode.BRIDGE, EvbMode.STATION):
                roles.setdefault(f.src, "bridge" if mode == EvbMode.BRIDGE else "station")
        elif isinstance(pdu, Ecpdu) and isinstance(pdu.ulpdu, VdpPdu):
            for t in pdu.ulpdu.vsis:
                if t.status.response:
                    roles.setdefault(f.src, "bridge")
                elif t.mode != VdpMode.DEASSOC:
                    roles.setdefault(f.src, "station")
    rank = {"station": 0, "peer": 1, "bridge": 2}
    parties = [Party(m, roles.get(m, "peer")) for m in order]
    return sorted(parties, key=lambda p: rank[p.role])


def _vdp_label(pdu: VdpPdu) -> tuple[str, str]:
    words, style = [], "req"
    for t in pdu.tlvs:
        if isinstance(t, VsiTlv):
            entries = ", ".join(entry_text(e) for e in t.entries)
            words.append(f"{t.mode.label} {short_vsiid(t)} [{entries}] {t.status.describe()}")
            if t.status.response:
                style = "error" if t.status.code else "resp"
            elif t.mode == VdpMode.DEASSOC and style == "req":
                style = "req"
        elif isinstance(t, InvalidTlv):
            words.append(f"INVALID({t.field})")
            style = "error"
    if pdu.composition_errors():
        style = "error"
    return "VDP " + "; ".join(words), style


def step_label(frame: Frame) -> tuple[str, str]:
    """Short label and style of one arrow."""
    pdu = frame.pdu
    if isinstance(pdu, Lldpdu):
        evb = pdu.evb
        if evb is None:
            return f"LLDP ttl={pdu.ttl}", "lldp"
        rol = ",".join(name for name, on in (("RWD", evb.rol_rwd), ("RKA", evb.rol_rka)) if on)
        return (
            f"LLDP EVB br={evb.bridge_status:02x} st={evb.station_status:02x} "
            f"R={evb.r} RTE={evb.rte} RWD={evb.rwd} RKA={evb.rka}{f' ROL({rol})' if rol else ''}",
            "lldp",
        )
    if isinstance(pdu, Ecpdu):
        if pdu.op == EcpOp.ACK:
            return f"ECP ACK {pdu.seq}", "ack"
        if isinstance(pdu.ulpdu, VdpPdu):
            text, style = _vdp_label(pdu.ulpdu)
            return f"ECP REQ {pdu.seq} {text}", style
        return f"ECP op={int(pdu.op)} seq={pdu.seq} subtype={int(pdu.subtype)}", "req"
    if isinstance(pdu, DraftEcpdu):
        return f"ECP-draft {'REQ' if pdu.mode == 0 else 'ACK'} {pdu.seq}", "ack" if pdu.mode else "req"
    raise TypeError(type(pdu))


def build_steps(frames: Sequence[tuple[float, Frame]]) -> tuple[list[Party], list[Step]]:
    parties = infer_parties(frames)
    col = {p.mac: i for i, p in enumerate(parties)}
    t0 = frames[0][0] if frames else 0.0
    steps = []
    for t, f in frames:
        src = col[f.src]
        dst = col.get(f.dst)
        if dst is None or dst == src:  # group address: the peer is the nearest other party
            dst = src + 1 if src + 1 < len(parties) else src - 1
        if dst < 0:
            dst = src
        label, style = step_label(f)
        if style == "req" and parties[src].role == "bridge":
            style = "unsolicited"
        steps.append(Step(t - t0, src, dst, label, style))
    return parties, steps


def text_ladder(frames: Sequence[tuple[float, Frame]], *, width: int = 0) -> str:
    """A ladder diagram in plain text, one arrow per frame."""
    parties, steps = build_steps(frames)
    if not parties:
        return "(no frames)\n"
    longest = max((len(s.label) for s in steps), default=20)
    span = width or max(40, min(110, longest + 8))
    cols = [12 + i * (span + 1) for i in range(len(parties))]
    total = cols[-1] + 1
    head = [" "] * (total + 40)
    for p, c in zip(parties, cols, strict=True):
        title = p.title
        start = max(0, c - len(title) // 2)
        head[start : start + len(title)] = title
    lines = ["".join(head).rstrip()]
    for s in steps:
        row = [" "] * total
        for c in cols:
            row[c] = "|"
        t = f"{s.time:10.6f}"
        row[0 : len(t)] = t
        a, b = cols[s.src], cols[s.dst]
        if a == b:
            lines.append("".join(row) + f" {s.label}")
            continue
        lo, hi = min(a, b), max(a, b)
        inner = hi - lo - 1
        label = s.label if len(s.label) <= inner - 6 else s.label[: max(0, inner - 7)] + "…"
        body = f" {label} "
        fill = "-" * max(0, inner - len(body) - 2)
        seg = ("-" + body + fill + ">") if a < b else ("<" + fill + body + "-")
        row[lo + 1 : hi] = seg[:inner].ljust(inner, "-")
        lines.append("".join(row).rstrip())
    return "\n".join(lines) + "\n"


_COLORS = {
    "lldp": "#888888",
    "req": "#1f5fbf",
    "resp": "#1e8a3c",
    "ack": "#b0b0b0",
    "error": "#c62828",
    "unsolicited": "#d17a00",
}


def svg_ladder(frames: Sequence[tuple[float, Frame]], *, title: str = "") -> str:
    """The same ladder as an SVG image (no external resources)."""
    parties, steps = build_steps(frames)
    row_h, top, left, col_w = 26, 70, 110, 640
    n = max(1, len(parties))
    width = left + (n - 1) * col_w + 160
    height = top + row_h * (len(steps) + 1) + 20
    xs = [left + 60 + i * col_w for i in range(n)]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, monospace" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        "<defs>",
    ]
    for style, color in _COLORS.items():
        out.append(
            f'<marker id="arrow-{style}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
            f'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{color}"/></marker>'
        )
    out.append("</defs>")
    if title:
        out.append(f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>')
    for p, x in zip(parties, xs, strict=True):
        out.append(f'<text x="{x}" y="{top - 22}" text-anchor="middle" font-weight="bold">{escape(p.role)}</text>')
        out.append(f'<text x="{x}" y="{top - 8}" text-anchor="middle">{mac_to_str(p.mac)}</text>')
        out.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{height - 10}" stroke="#444" stroke-width="2"/>')
    out.append(f'<text x="10" y="{top - 8}" font-weight="bold">time (s)</text>')
    for i, s in enumerate(steps):
        y = top + row_h * (i + 1)
        color = _COLORS[s.style]
        out.append(f'<text x="10" y="{y + 4}">{s.time:.6f}</text>')
        x1, x2 = xs[s.src], xs[s.dst]
        if x1 == x2:
            out.append(f'<text x="{x1 + 8}" y="{y + 4}" fill="{color}">{escape(s.label)}</text>')
            continue
        out.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{color}" stroke-width="1.5" '
            f'marker-end="url(#arrow-{s.style})"/>'
        )
        label = s.label if len(s.label) <= 80 else s.label[:79] + "…"
        out.append(
            f'<text x="{(x1 + x2) / 2}" y="{y - 5}" text-anchor="middle" fill="{color}">'
            f"<title>{escape(s.label)}</title>{escape(label)}</text>"
        )
    legend_x = 10
    legend_y = height - 6
    for style, color in _COLORS.items():
        out.append(f'<text x="{legend_x}" y="{legend_y}" fill="{color}" font-size="10">■ {style}</text>')
        legend_x += 90
    out.append("</svg>")
    return "\n".join(out) + "\n"
