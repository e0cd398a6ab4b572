"""Interoperability tooling for evb: cross-checks against other implementations (tshark), lab scripts."""
