"""``evb conformance``: a conformance suite that plays the counterpart of a device under test.

The device under test (DUT) is an 802.1Qbg station or bridge on the other end of one link. The
tester (``tester.Tester``) speaks LLDP/EVB, ECP and VDP itself, built from ``evb``'s own codecs,
and scripted cases (``cases_*.py``, registered in ``model.CATALOG``) drive it frame by frame and
judge the DUT's answers against ``../shared/spec``. The same cases run over a real interface
(``links.RawFrameLink``) on the wall clock and, in the unit tests, against ``evb``'s own sans-IO
ports on a virtual clock (``links.SimDut`` inside ``vclock.run``).
"""
