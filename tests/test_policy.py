"""The emulated bridge's VSI type database (``evb/vepa_bridge/policy.py``).

Loader: the documented example, and every kind of mistake with the file, line and key the
``PolicyError`` names. Decisions: each rule with its status code (vdp.md §4.3; the module
docstring says why each code), the wildcard-VID assignment (vdp.md §5.3, where we differ from
lldpad's bridge, which returns VID 0 unchanged, §12 row 4), the per-port limits and the
Keep/Hard bits; then the limits through a real ``VdpBridge``, whose VSI counts feed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from evb.settings import ConfigError
from evb.vdp.bridge import BridgeTimers, Decision, PolicyRequest, VdpBridge, Verdict
from evb.vdp.events import VsiRejected
from evb.vdp.wire import (
    FilterEntry,
    FilterFormat,
    VdpMode,
    VdpPdu,
    VdpStatus,
    VsiidFormat,
    VsiManagerIdTlv,
    VsiTlv,
    manager_id_from_text,
)
from evb.vepa_bridge.policy import (
    PolicyError,
    PortLimits,
    VsiType,
    VsiTypeDatabase,
    load_policy,
    parse_policy,
)
from tests.helpers import LABMGR, U1, U2, U3

#: The example of the module docstring and of the brief (line numbers matter to the error tests).
EXAMPLE = """\
[defaults]            # per port unless a [ports.NAME] table says otherwise
max_vsis = 1000       # VSIs on one port (any mode)
max_reserved = 100    # VSIs in pre-associate-with-RR state on one port

[ports."eth1.100"]    # a VLAN interface's name has a dot: quoted
max_vsis = 3

[[manager]]
id = "labmgr"         # ASCII name (≤16) or UUID, as vdptool's mgrid2
[[manager.type]]
id = 5
version = 4           # or versions = [3, 4]
vlans = [10, 20, "100-199"]   # allowed VIDs
assign_vid = 10       # the VID given to a wildcard (VID 0) entry; absent: wildcard refused
pcp = [0, 1, 2]       # allowed PCP when PS is set (default any)
max_entries = 4       # filter entries per VSI
macs = ["52:54:00:*", "02:00:00:00:01:*"]   # allowed MAC prefixes (default any unicast)
groups = [1001, 1002]                       # allowed group IDs (formats 3/4; default any)

[[manager.type]]
id = 6
versions = [1, 2]

[[manager]]
id = "5a0f1c2e-0000-4d3c-8e21-0a00000000ff"
"""

UUID_MGR = bytes.fromhex("5a0f1c2e00004d3c8e210a00000000ff")
TYPE5 = VsiType(
    type_id=5,
    versions=frozenset({4}),
    vlans=frozenset({10, 20, *range(100, 200)}),
    assign_vid=10,
    pcp=frozenset({0, 1, 2}),
    max_entries=4,
    macs=(bytes.fromhex("525400"), bytes.fromhex("0200000001")),
    groups=frozenset({1001, 1002}),
)
TYPE6 = VsiType(type_id=6, versions=frozenset({1, 2}))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------- loader


def test_example_loads(tmp_path: Path) -> None:
    db = load_policy(write(tmp_path, EXAMPLE))
    assert db == VsiTypeDatabase(
        managers={LABMGR: {(5, 4): TYPE5, (6, 1): TYPE6, (6, 2): TYPE6}, UUID_MGR: {}},
        defaults=PortLimits(max_vsis=1000, max_reserved=100),
        ports={"eth1.100": PortLimits(max_vsis=3, max_reserved=100)},  # unset keys come from [defaults]
    )
    assert db.limits("eth1.100") == PortLimits(max_vsis=3, max_reserved=100)
    assert db.limits("eth2") == PortLimits(max_vsis=1000, max_reserved=100)


def test_minimal_and_empty_files() -> None:
    assert parse_policy("") == VsiTypeDatabase()
    db = parse_policy('[[manager]]\nid = "m"\n[[manager.type]]\nid = 0\nversion = 0\n')
    assert db.managers == {b"m".ljust(16, b"\0"): {(0, 0): VsiType(type_id=0, versions=frozenset({0}))}}
    assert db.defaults == PortLimits(max_vsis=0, max_reserved=0)  # 0 = no limit


def test_same_type_under_two_managers_is_no_duplicate() -> None:
    text = '[[manager]]\nid = "a"\n[[manager.type]]\nid = 5\nversion = 4\n'
    db = parse_policy(text + text.replace('"a"', '"b"'))
    assert [list(types) for types in db.managers.values()] == [[(5, 4)], [(5, 4)]]


def test_mac_prefix_forms() -> None:
    text = '[[manager]]\nid = "a"\n[[manager.type]]\nid = 5\nversion = 4\nmacs = ["52-54-00-*", "02:00:00:00:01:05"]\n'
    (vtype,) = parse_policy(text).managers[b"a".ljust(16, b"\0")].values()
    assert vtype.macs == (bytes.fromhex("525400"), bytes.fromhex("020000000105"))  # a prefix, a whole MAC


#: the first 4 lines of most error cases: one manager with one type (its id on line 4)
HEAD = '[[manager]]\nid = "labmgr"\n[[manager.type]]\nid = 5\n'
T = "manager[0].type[0]"

#: (text, key, line, message start) of each mistake
ERRORS = [
    # document and tables
    ("[vpd]\nx = 1\n", "vpd", 1, "unknown table (known: defaults, manager, ports)"),
    ("\nmanagers = []\n", "managers", 2, "unknown table"),
    ("[defaults]\nmax_vsis = 1\n[x\n", "", 3, "not valid TOML"),
    ("[defaults]\nmax_vsi = 3\n", "defaults.max_vsi", 2, "unknown key (known: max_reserved, max_vsis)"),
    ('[defaults]\nmax_vsis = "many"\n', "defaults.max_vsis", 2, "must be an integer, not 'many'"),
    ("[defaults]\nmax_vsis = true\n", "defaults.max_vsis", 2, "must be an integer, not True"),
    ("[defaults]\n\nmax_reserved = -1\n", "defaults.max_reserved", 3, "-1 is outside 0..10000000"),
    ("defaults = 3\n", "defaults", 1, "must be a table, not 3"),
    ("[defaults]\nmax_vsis = 5\n\n[ports.eth1]\nmax_reserved = 1.5\n", "ports.eth1.max_reserved", 5, "must be an"),
    ('[ports."eth1.100"]\nmax_vsi = 1\n', 'ports."eth1.100".max_vsi', 2, "unknown key"),
    ("[ports]\neth1 = 5\n", "ports.eth1", 2, "must be a table, not 5"),
    ("ports = 3\n", "ports", 1, "must be a table of [ports.NAME] tables"),
    # managers
    ('[manager]\nid = "labmgr"\n', "manager", 1, "must be an array of tables ([[manager]])"),
    ("[[manager]]\n[[manager.type]]\nid = 5\nversion = 1\n", "manager[0]", 1, "has no id"),
    ('[[manager]]\nid = "a-name-of-17-char"\n', "manager[0].id", 2, "'a-name-of-17-char' is neither an ASCII name"),
    ('[[manager]]\nid = "mgré"\n', "manager[0].id", 2, "'mgré' is neither an ASCII name of 1..16"),
    ('[[manager]]\nid = ""\n', "manager[0].id", 2, "'' is neither"),
    ("[[manager]]\nid = 5\n", "manager[0].id", 2, "must be a string, not 5"),
    ('[[manager]]\nid = "a"\nname = "x"\n', "manager[0].name", 3, "unknown key (known: id, type)"),
    # "labmgr" again, as 32 hex digits: the same 16 octets
    (HEAD + 'version = 4\n[[manager]]\nid = "6c61626d677200000000000000000000"\n', "manager[1].id", 7, "manager '6c61"),
    ('[[manager]]\nid = "a"\ntype = 5\n', "manager[0].type", 3, "must be an array of tables ([[manager.type]])"),
    # types
    ('[[manager]]\nid = "a"\n[[manager.type]]\nversion = 1\n', T, 3, "has no id (the VSI Type ID)"),
    (HEAD.replace("id = 5", "id = 16777216") + "version = 1\n", f"{T}.id", 4, "16777216 is outside 0..16777215"),
    (HEAD.replace("id = 5", 'id = "5"') + "version = 1\n", f"{T}.id", 4, "must be an integer, not '5'"),
    (HEAD + "vlans = [10]\n", T, 3, "needs exactly one of version, versions"),
    (HEAD + "version = 4\nversions = [3]\n", f"{T}.versions", 6, "needs exactly one of version, versions"),
    (HEAD + "version = 256\n", f"{T}.version", 5, "256 is outside 0..255"),
    (HEAD + "versions = [3, 3]\n", f"{T}.versions", 5, "element 1: 3 is given twice"),
    (HEAD + "versions = []\n", f"{T}.versions", 5, "is empty, so nothing would be allowed"),
    (HEAD + "version = 4\nvlan = [10]\n", f"{T}.vlan", 6, "unknown key (known: assign_vid, groups, id, macs,"),
    (
        HEAD + "versions = [3, 4]\n\n[[manager.type]]\nid = 5\nversion = 4\n",
        "manager[0].type[1].version",
        9,
        "type 5 version 4 is defined twice (also manager[0].type[0])",
    ),
    # VIDs
    (HEAD + "version = 4\nvlans = [0]\n", f"{T}.vlans", 6, "element 0: 0 is outside 1..4094"),
    (HEAD + "version = 4\nvlans = [10, 4095]\n", f"{T}.vlans", 6, "element 1: 4095 is outside 1..4094"),
    (HEAD + 'version = 4\nvlans = ["4000-4095"]\n', f"{T}.vlans", 6, "element 0: '4000-4095' is outside 1..4094"),
    (HEAD + 'version = 4\nvlans = ["199-100"]\n', f"{T}.vlans", 6, "element 0: range '199-100' is written backwards"),
    (HEAD + 'version = 4\nvlans = ["100-199", 150]\n', f"{T}.vlans", 6, "element 1: 150 overlaps element 0 (100-199)"),
    (HEAD + 'version = 4\nvlans = ["10-20", "20-30"]\n', f"{T}.vlans", 6, "element 1: '20-30' overlaps element 0"),
    (HEAD + "version = 4\nvlans = [10, 10]\n", f"{T}.vlans", 6, "element 1: 10 overlaps element 0 (10)"),
    (HEAD + 'version = 4\nvlans = ["10..20"]\n', f"{T}.vlans", 6, "element 0: '10..20' is neither a VID nor a range"),
    (HEAD + "version = 4\nvlans = [10.0]\n", f"{T}.vlans", 6, "element 0: 10.0 is neither a VID nor a range"),
    (HEAD + "version = 4\nvlans = 10\n", f"{T}.vlans", 6, "must be an array, not 10"),
    (HEAD + "version = 4\nvlans = [\n  10,\n  4095,\n]\n", f"{T}.vlans", 6, "element 1: 4095"),  # the key's line
    (HEAD + "version = 4\nvlans = [10, 20]\nassign_vid = 30\n", f"{T}.assign_vid", 7, "30 is not one of the type's"),
    (HEAD + "version = 4\nassign_vid = 0\n", f"{T}.assign_vid", 6, "0 is outside 1..4094"),
    # PCP, entries, group IDs
    (HEAD + "version = 4\npcp = [0, 8]\n", f"{T}.pcp", 6, "element 1: 8 is outside 0..7"),
    (HEAD + "version = 4\npcp = [1, 1]\n", f"{T}.pcp", 6, "element 1: 1 is given twice"),
    (HEAD + "version = 4\nmax_entries = 0\n", f"{T}.max_entries", 6, "0 is outside 1..243"),
    (HEAD + "version = 4\nmax_entries = 244\n", f"{T}.max_entries", 6, "244 is outside 1..243"),
    (HEAD + "version = 4\ngroups = [0]\n", f"{T}.groups", 6, "element 0: 0 is outside 1..4294967295"),
    (HEAD + "version = 4\ngroups = [4294967296]\n", f"{T}.groups", 6, "element 0: 4294967296 is outside"),
    # MAC prefixes
    (HEAD + 'version = 4\nmacs = ["52:54:00"]\n', f"{T}.macs", 6, "element 0: '52:54:00': 3 octets: a whole MAC has 6"),
    (HEAD + 'version = 4\nmacs = ["52:54:0:*"]\n', f"{T}.macs", 6, "element 0: '52:54:0:*': octets are two hex"),
    (HEAD + 'version = 4\nmacs = ["gg:*"]\n', f"{T}.macs", 6, "element 0: 'gg:*': octets are two hex digits"),
    (HEAD + 'version = 4\nmacs = ["525400*"]\n', f"{T}.macs", 6, "element 0: '525400*': a prefix is octets then"),
    (HEAD + 'version = 4\nmacs = ["*"]\n', f"{T}.macs", 6, "element 0: '*': a prefix is octets then"),
    (
        HEAD + 'version = 4\nmacs = ["52:54:00:00:00:01:*"]\n',
        f"{T}.macs",
        6,
        "element 0: '52:54:00:00:00:01:*': a prefix has at",
    ),
    (HEAD + 'version = 4\nmacs = ["01:00:5e:*"]\n', f"{T}.macs", 6, "element 0: '01:00:5e:*': a group (multicast)"),
    (
        HEAD + 'version = 4\nmacs = ["00:00:00:00:00:00"]\n',
        f"{T}.macs",
        6,
        "element 0: '00:00:00:00:00:00': the all-zero MAC",
    ),
    (HEAD + 'version = 4\nmacs = ["52:54:00:*", "52-54-00-*"]\n', f"{T}.macs", 6, "element 1: '52-54-00-*' is given"),
    (HEAD + "version = 4\nmacs = [525400]\n", f"{T}.macs", 6, "element 0: must be a string, not 525400"),
    # a mistake in the second manager's second type
    (
        EXAMPLE + '[[manager.type]]\nid = 1\nversion = 1\n\n[[manager.type]]\nid = 2\nversion = 1\npcp = ["1"]\n',
        "manager[1].type[1].pcp",
        33,  # EXAMPLE has 25 lines
        "element 0: must be an integer, not '1'",
    ),
]


@pytest.mark.parametrize(("text", "key", "line", "message"), ERRORS, ids=[f"{e[1] or 'toml'}-{e[2]}" for e in ERRORS])
def test_mistakes_name_file_line_and_key(tmp_path: Path, text: str, key: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    err = info.value
    assert isinstance(err, ConfigError)
    assert (err.path, err.key, err.line) == (path, key, line)
    assert err.message.startswith(message), err.message
    assert str(err) == (f"{path}:{line}: {key}: {err.message}" if key else f"{path}:{line}: {err.message}")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "missing.toml")
    assert (info.value.path, info.value.key, info.value.line) == (tmp_path / "missing.toml", "", None)
    assert info.value.message.startswith("cannot read (No such file")


def test_inline_tables_get_the_line_of_their_key(tmp_path: Path) -> None:
    """Tables written inline have no header: the error points at the key that holds them."""
    path = write(tmp_path, '\n[[manager]]\nid = "a"\ntype = [{ id = 5, version = 4, vlans = [5000] }]\n')
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert (info.value.key, info.value.line) == ("manager[0].type[0].vlans", 4)


# ---------------------------------------------------------------------------------------------- decisions

DB = parse_policy(EXAMPLE)
OK_MAC = bytes.fromhex("525400123456")


@dataclass
class Counts:
    """A port's VSI counts as a policy sees them (``PortView``)."""

    total: int = 0
    modes: dict[VdpMode, int] = field(default_factory=dict)

    def vsi_count(self) -> int:
        return self.total

    def mode_count(self, mode: VdpMode) -> int:
        return self.modes.get(mode, 0)


def entry(
    vid: int = 10, mac: bytes | None = OK_MAC, *, ps: bool = False, pcp: int = 0, group_id: int | None = None
) -> FilterEntry:
    return FilterEntry(vid=vid, pcp=pcp, ps=ps, mac=mac, group_id=group_id)


def request(
    *entries: FilterEntry,
    mode: VdpMode = VdpMode.ASSOC,
    current: VdpMode | None = None,
    manager: bytes = LABMGR,
    type_id: int = 5,
    version: int = 4,
    fmt: FilterFormat = FilterFormat.MAC_VID,
    port: Counts | None = None,
) -> PolicyRequest:
    tlv = VsiTlv(mode, VdpStatus.request(), type_id, version, VsiidFormat.UUID, U1, fmt, entries or (entry(),))
    return PolicyRequest(manager_id=manager, tlv=tlv, current=current, port=port)


def outcome(d: Decision) -> tuple[str, int, bool, bool]:
    return d.verdict.value, d.code, d.keep, d.hard


def distinct(n: int, vid: int = 10) -> tuple[FilterEntry, ...]:
    """``n`` entries with different allowed MACs."""
    return tuple(entry(vid, mac=bytes.fromhex(f"5254000000{i:02x}")) for i in range(n))


ACCEPT = ("accept", 0, False, False)
INVALID = ("reject", 5, False, True)  #: invalid VID, GroupID or MAC, Hard
SHORT = ("reject", 2, False, False)  #: insufficient resources, not Hard

#: (id, request, outcome, start of the reason) — a new VSI unless ``current`` is given
RULES = [
    ("allowed", request(), ACCEPT, ""),
    ("range-low", request(entry(100)), ACCEPT, ""),
    ("range-high", request(entry(199)), ACCEPT, ""),
    ("manager-unknown", request(manager=manager_id_from_text("other")), ("reject", 3, False, True), "unknown VSI man"),
    ("manager-uuid", request(manager=UUID_MGR), ("reject", 4, False, True), "VSI type 5 version 4 unknown to manager"),
    ("type-unknown", request(type_id=7), ("reject", 4, False, True), "VSI type 7 version 4 unknown to manager labmgr"),
    ("version-unknown", request(version=3), ("reject", 4, False, True), "VSI type 5 version 3 unknown"),
    ("versions-1", request(type_id=6, version=1), ACCEPT, ""),
    ("versions-2", request(type_id=6, version=2), ACCEPT, ""),
    ("versions-3", request(type_id=6, version=3), ("reject", 4, False, True), "VSI type 6 version 3"),
    ("vid-30", request(entry(30)), INVALID, "entry 0: VID 30 not allowed"),
    ("vid-99", request(entry(10), entry(99, mac=bytes.fromhex("525400000002"))), INVALID, "entry 1: VID 99 not"),
    ("vid-200", request(entry(200)), INVALID, "entry 0: VID 200 not allowed"),
    ("vid-4095", request(entry(4095), type_id=6, version=1), INVALID, "entry 0: VID 4095 not allowed"),
    ("wildcard-no-assign", request(entry(0), type_id=6, version=1), INVALID, "entry 0: wildcard VID 0 refused"),
    ("pcp-ps", request(entry(10, ps=True, pcp=3)), INVALID, "entry 0: PCP 3 not allowed"),
    ("pcp-ps-ok", request(entry(10, ps=True, pcp=2)), ACCEPT, ""),
    ("pcp-no-ps", request(entry(10, pcp=7)), ACCEPT, ""),  # PS clear: the PCP is not significant
    ("mac-prefix", request(entry(mac=bytes.fromhex("525401123456"))), INVALID, "entry 0: MAC 52:54:01:12:34:56 not"),
    ("mac-prefix-2", request(entry(mac=bytes.fromhex("0200000001ff"))), ACCEPT, ""),
    ("mac-short", request(entry(mac=bytes.fromhex("020000000200"))), INVALID, "entry 0: MAC 02:00:00:00:02:00 not"),
    ("mac-multicast", request(entry(mac=bytes.fromhex("535400000001"))), INVALID, "entry 0: MAC 53:54:00:00:00:01 is"),
    # the type that allows any MAC still refuses a group address (for VSIs never validated: reloads)
    ("mac-any-multicast", request(entry(mac=b"\x01" * 6), type_id=6, version=1), INVALID, "entry 0: MAC 01:01"),
    ("mac-any-zero", request(entry(mac=bytes(6)), type_id=6, version=1), INVALID, "entry 0: MAC 00:00:00:00:00:00 is"),
    ("mac-any", request(entry(mac=bytes.fromhex("0e0000000001")), type_id=6, version=1), ACCEPT, ""),
    ("vid-only-format", request(entry(mac=None), fmt=FilterFormat.VID), ACCEPT, ""),  # no MAC to restrict
    ("group", request(entry(group_id=1002), fmt=FilterFormat.GROUP_MAC_VID), ACCEPT, ""),
    ("group-no-mac", request(entry(mac=None, group_id=1001), fmt=FilterFormat.GROUP_VID), ACCEPT, ""),
    ("group-no", request(entry(group_id=1003), fmt=FilterFormat.GROUP_MAC_VID), INVALID, "entry 0: group ID 1003"),
    ("entries-4", request(*distinct(4)), ACCEPT, ""),
    ("entries-5", request(*distinct(5)), SHORT, "5 filter entries, type 5 allows 4"),
    # invalid values are checked first: a permanent refusal says more than a transient one
    ("entries-5-bad", request(*distinct(5, vid=30)), INVALID, "entry 0: VID 30 not allowed"),
    # a VSI the port holds: a shortage keeps it, invalid values release it
    ("held-short", request(*distinct(5), current=VdpMode.PREASSOC), ("reject", 2, True, False), "5 filter entries"),
    ("held-vid", request(entry(30), current=VdpMode.PREASSOC), INVALID, "entry 0: VID 30"),
    ("held-type", request(type_id=7, current=VdpMode.ASSOC), ("reject", 4, False, True), "VSI type 7"),
    ("held-manager", request(manager=b"x" * 16, current=VdpMode.ASSOC), ("reject", 3, False, True), "unknown VSI"),
    ("held-ok", request(current=VdpMode.PREASSOC_RR), ACCEPT, ""),
    # the wildcard whose assigned VID makes two entries the same
    ("wildcard-duplicate", request(entry(0), entry(10)), INVALID, "entry 1: with VID 10 assigned it repeats entry 0"),
]


@pytest.mark.parametrize(("req", "expected", "reason"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rules(req: PolicyRequest, expected: tuple[str, int, bool, bool], reason: str) -> None:
    d = DB.decide(req)
    assert outcome(d) == expected
    assert d.reason.startswith(reason), d.reason
    if d.verdict is Verdict.ACCEPT:
        assert d.entries is None  # granted as asked


def test_wildcard_gets_assign_vid_and_keeps_pcp() -> None:
    """vdp.md §5.3: the bridge fills in the VID of a VID-0 entry; PS and PCP stay as asked."""
    asked = (
        entry(0, ps=True, pcp=2),
        entry(20, mac=bytes.fromhex("525400000002")),
        entry(0, mac=bytes.fromhex("0200000001aa")),
    )
    d = DB.decide(request(*asked))
    assert outcome(d) == ACCEPT
    assert d.entries == (
        FilterEntry(vid=10, ps=True, pcp=2, mac=OK_MAC),
        asked[1],
        FilterEntry(vid=10, mac=bytes.fromhex("0200000001aa")),
    )
    # format 1: one wildcard entry
    d = DB.decide(request(FilterEntry(vid=0, pcp=1), fmt=FilterFormat.VID))
    assert d.entries == (FilterEntry(vid=10, pcp=1),)


def test_wildcard_pcp_still_checked() -> None:
    assert outcome(DB.decide(request(entry(0, ps=True, pcp=5)))) == INVALID


def test_empty_database_refuses_every_manager() -> None:
    d = VsiTypeDatabase().decide(request())
    assert outcome(d) == ("reject", 3, False, True)
    assert d.reason == "unknown VSI manager labmgr"


# ------------------------------------------------------------------------------------- per-port limits

RR, PRE, ASSOC = VdpMode.PREASSOC_RR, VdpMode.PREASSOC, VdpMode.ASSOC

LIMITS = [
    # new VSIs against max_vsis = 1000 (defaults)
    ("new-999", request(port=Counts(999)), ACCEPT),
    ("new-1000", request(port=Counts(1000)), SHORT),
    # a VSI the port holds adds nothing: a mode change is no new VSI
    ("held-1000", request(current=PRE, port=Counts(1000)), ACCEPT),
    # reservations against max_reserved = 100
    ("rr-new-99", request(mode=RR, port=Counts(500, {RR: 99})), ACCEPT),
    ("rr-new-100", request(mode=RR, port=Counts(500, {RR: 100})), SHORT),
    ("rr-from-pre-100", request(mode=RR, current=PRE, port=Counts(500, {RR: 100})), ("reject", 2, True, False)),
    ("rr-refresh-100", request(mode=RR, current=RR, port=Counts(500, {RR: 100})), ACCEPT),
    ("assoc-100", request(mode=ASSOC, port=Counts(500, {RR: 100})), ACCEPT),  # reservations limit only RR
    ("pre-100", request(mode=PRE, current=RR, port=Counts(500, {RR: 100})), ACCEPT),
    # no counts given (a caller other than a bridge port): no limits
    ("no-view", request(mode=RR), ACCEPT),
]


@pytest.mark.parametrize(("req", "expected"), [r[1:] for r in LIMITS], ids=[r[0] for r in LIMITS])
def test_port_limits(req: PolicyRequest, expected: tuple[str, int, bool, bool]) -> None:
    assert outcome(DB.decide(req, port="eth1")) == expected
    assert outcome(DB.policy_for("eth1")(req)) == expected  # the same decision through the port's Policy


def test_port_table_overrides_defaults() -> None:
    """[ports."eth1.100"] max_vsis = 3; max_reserved comes from [defaults]."""
    vlan_port = DB.policy_for("eth1.100")
    assert outcome(vlan_port(request(port=Counts(2)))) == ACCEPT
    d = vlan_port(request(port=Counts(3)))
    assert outcome(d) == SHORT
    assert d.reason == "port full (max_vsis = 3)"
    assert outcome(vlan_port(request(mode=RR, port=Counts(2, {RR: 100})))) == SHORT
    assert outcome(DB.policy_for("eth2")(request(port=Counts(3)))) == ACCEPT


# ------------------------------------------------------------------------------ through a VdpBridge

TIMERS = BridgeTimers(resource_wait_delay=10.48576, keepalive_timeout=15.75552)


def pdu(*tlvs: VsiTlv) -> VdpPdu:
    return VdpPdu((VsiManagerIdTlv(LABMGR), *tlvs))


def tlv(vsiid: bytes, mode: VdpMode, *entries: FilterEntry) -> VsiTlv:
    return VsiTlv(mode, VdpStatus.request(), 5, 4, VsiidFormat.UUID, vsiid, FilterFormat.MAC_VID, entries)


def answers(bridge: VdpBridge) -> list[tuple[bytes, VdpMode, int, tuple[FilterEntry, ...]]]:
    """Every queued answer: (VSIID, TLV type, status octet, entries)."""
    out = []
    while (got := bridge.next_pdu()) is not None:
        out += [(t.vsiid, t.mode, t.status.octet, t.entries) for t in got[0].vsis]
    return out


def test_limits_count_the_bridges_vsis() -> None:
    """max_reserved = 2 on port "p": the bridge's own counts (``VdpBridge.mode_count``) feed the
    policy, and change as VSIs come, change mode and go."""
    db = parse_policy(EXAMPLE.replace('"eth1.100"', "p").replace("max_vsis = 3", "max_reserved = 2"))
    br = VdpBridge(timers=TIMERS, policy=db.policy_for("p"))
    m = [entry(10, mac=bytes.fromhex(f"5254000000{i:02x}")) for i in range(4)]
    u4 = bytes(15) + b"\x04"
    br.receive(pdu(tlv(U1, RR, m[0]), tlv(U2, RR, m[1]), tlv(U3, RR, m[2]), tlv(u4, PRE, m[3])), now=0.0)
    assert answers(br) == [
        (U1, RR, 0x40, (m[0],)),
        (U2, RR, 0x40, (m[1],)),
        (U3, VdpMode.DEASSOC, 0x42, (m[2],)),  # a new VSI refused: De-Associate TLV, code 2, no Keep, no Hard
        (u4, PRE, 0x40, (m[3],)),
    ]
    assert (br.vsi_count(), br.mode_count(RR), br.mode_count(PRE)) == (3, 2, 1)
    rejected = [e for e in br.events if isinstance(e, VsiRejected)]
    assert [(e.key[2], e.code, e.reason) for e in rejected] == [(U3, 2, "port's reservations full (max_reserved = 2)")]
    # the pre-associated VSI asks to reserve: refused with Keep, it stays pre-associated
    br.receive(pdu(tlv(u4, RR, m[3])), now=1.0)
    assert answers(br) == [(u4, RR, 0x62, (m[3],))]
    assert br.vsis[(LABMGR, VsiidFormat.UUID, u4)].mode is PRE
    # U1 moves on to Associate: a reservation is free again, u4 gets it
    br.receive(pdu(tlv(U1, ASSOC, m[0]), tlv(u4, RR, m[3])), now=2.0)
    assert answers(br) == [(U1, ASSOC, 0x40, (m[0],)), (u4, RR, 0x40, (m[3],))]
    assert (br.vsi_count(), br.mode_count(RR), br.mode_count(ASSOC), br.mode_count(PRE)) == (3, 2, 1, 0)
    # U2 de-associates: U3 now fits
    br.receive(pdu(tlv(U2, VdpMode.DEASSOC, m[1]), tlv(U3, RR, m[2])), now=3.0)
    assert answers(br) == [(U2, VdpMode.DEASSOC, 0x40, (m[1],)), (U3, RR, 0x40, (m[2],))]
    assert (br.vsi_count(), br.mode_count(RR), br.mode_count(ASSOC)) == (3, 2, 1)
    # toutKeepAlive releases all three: every count back to 0
    br.handle_timer(now=3.0 + TIMERS.keepalive_timeout)
    assert (br.vsi_count(), br.mode_count(RR), br.mode_count(ASSOC)) == (0, 0, 0)


def test_bridge_grants_the_assigned_vid() -> None:
    br = VdpBridge(timers=TIMERS, policy=DB.policy_for("eth1"))
    br.receive(pdu(tlv(U1, ASSOC, entry(0, ps=True, pcp=1))), now=0.0)
    assert answers(br) == [(U1, ASSOC, 0x40, (entry(10, ps=True, pcp=1),))]
    # the station's keep-alive may carry the granted entries or the ones it asked for: both refresh
    br.receive(pdu(tlv(U1, ASSOC, entry(10, ps=True, pcp=1)), tlv(U1, ASSOC, entry(0, ps=True, pcp=1))), now=1.0)
    assert answers(br) == [(U1, ASSOC, 0x40, (entry(10, ps=True, pcp=1),))] * 2
    assert br.counters.refreshes == 2


def test_invalid_for_a_held_vsi_releases_it_with_hard() -> None:
    """A VSI the bridge holds asks for a type the database does not know: the answer is a
    De-Associate TLV with code 4 and Hard (0x54), and the VSI is gone."""
    br = VdpBridge(timers=TIMERS, policy=DB.policy_for("eth1"))
    br.receive(pdu(tlv(U1, PRE, entry())), now=0.0)
    other = VsiTlv(ASSOC, VdpStatus.request(), 5, 9, VsiidFormat.UUID, U1, FilterFormat.MAC_VID, (entry(),))
    br.receive(pdu(other), now=1.0)
    assert answers(br) == [(U1, PRE, 0x40, (entry(),)), (U1, VdpMode.DEASSOC, 0x54, (entry(),))]
    assert br.vsis == {} and br.mode_count(PRE) == 0
