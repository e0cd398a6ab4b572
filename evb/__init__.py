"""evb: IEEE 802.1Qbg-2012 Edge Virtual Bridging in Python (EVB TLV, CDCP, ECP, VDP)."""

__version__ = "0.1.0"
