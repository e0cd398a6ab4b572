"""evb/settings.py: station.toml / bridge.toml, checked key by key.

Every error is a ``ConfigError`` naming the file, the line (when the key is in the file) and the
dotted key, so an operator can go straight to it. The key names and defaults follow the module
docstring (lldpad's EVB keys: rrreq/rrcap, gid, retries = R, rte, rwd, rka; lldpad-behaviour.md §2).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from evb.settings import (
    DEFAULT_BRIDGE_SOCKET,
    BridgeSettings,
    ConfigError,
    DataPlaneSettings,
    EvbSettings,
    StationSettings,
    VdpSettings,
    load_bridge,
    load_station,
)


def write(tmp_path: Path, text: str, name: str = "station.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- defaults


def test_station_defaults_from_the_command_line_only() -> None:
    assert load_station(None, iface="eth3") == StationSettings(
        iface="eth3",
        socket="/run/evb/station-eth3.sock",
        state="/var/lib/evb/station-eth3.json",
        evb=EvbSettings(rr=True, gid=False, retries=3, rte=8, rwd=20, rka=20),
        vdp=VdpSettings(min_gap_ms=3.0, max_per_pdu=0, end_tlv=True, max_vsis=0),
    )


def test_station_minimal_file_state_defaults_next_to_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\niface = "eth0"\n')
    s = load_station(path)
    assert s.iface == "eth0"
    assert s.socket == "/run/evb/station-eth0.sock"
    assert s.state == str(tmp_path / "station.eth0.state.json")
    assert s.evb == EvbSettings()
    assert s.vdp == VdpSettings()


def test_station_full_file_as_in_the_module_docstring(tmp_path: Path) -> None:
    # the documented layout, trailing comments included
    path = write(
        tmp_path,
        """\
        [station]
        iface = "eth0"
        socket = "/tmp/evb/st.sock"     # control socket
        state = "/tmp/evb/st.json"      # desired VSI state

        [evb]                  # what this side proposes
        rrreq = false          # request reflective relay
        gid = true             # group IDs (SGID)
        retries = 7            # R
        rte = 31               # ECP retransmission exponent
        rwd = 0                # resource-wait-delay exponent
        rka = 25               # keep-alive exponent

        [vdp]
        min_gap_ms = 5         # an integer is a float here
        max_per_pdu = 10
        end_tlv = false
        """,
    )
    assert load_station(path) == StationSettings(
        iface="eth0",
        socket="/tmp/evb/st.sock",
        state="/tmp/evb/st.json",
        evb=EvbSettings(rr=False, gid=True, retries=7, rte=31, rwd=0, rka=25),
        vdp=VdpSettings(min_gap_ms=5.0, max_per_pdu=10, end_tlv=False, max_vsis=0),
    )


def test_command_line_overrides_socket_and_state(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\niface = "eth0"\nsocket = "/a.sock"\nstate = "/a.json"\n')
    s = load_station(path, iface="eth0", socket="/b.sock", state="/b.json")
    assert (s.iface, s.socket, s.state) == ("eth0", "/b.sock", "/b.json")


def test_bridge_defaults_and_file(tmp_path: Path) -> None:
    assert load_bridge(None, ports=["p1", "p2"]) == BridgeSettings(
        ports=("p1", "p2"), socket=DEFAULT_BRIDGE_SOCKET, policy=None, evb=EvbSettings(), vdp=VdpSettings()
    )
    path = write(
        tmp_path,
        """\
        [bridge]
        ports = ["veth1", "veth2"]
        socket = "/tmp/br.sock"

        [evb]
        rrcap = false
        rte = 10

        [vdp]
        max_vsis = 500
        wildcard_vid = 100
        """,
        "bridge.toml",
    )
    b = load_bridge(path)
    assert b.ports == ("veth1", "veth2")
    assert b.socket == "/tmp/br.sock"
    assert b.evb == EvbSettings(rr=False, rte=10)
    assert b.vdp == VdpSettings(max_vsis=500, wildcard_vid=100)
    # --port replaces the file's list
    assert load_bridge(path, ports=["x0"]).ports == ("x0",)


# --------------------------------------------------------------------------- errors: file, line, key


def test_error_names_file_line_and_key_for_a_range_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\niface = "eth0"\n\n[evb]\nrrreq = true\nrte = 40\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)
    err = info.value
    assert (err.path, err.line, err.key) == (path, 6, "evb.rte")
    assert str(err) == f"{path}:6: evb.rte: 40 is outside 0..31"


def test_line_is_found_under_a_header_with_a_comment(tmp_path: Path) -> None:
    # "[evb]   # comment" is how the module docstring writes its tables
    path = write(tmp_path, '[station]\niface = "eth0"\n[evb]        # proposals\nrka = 99\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert (info.value.line, info.value.key) == (4, "evb.rka")


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("evb", "retries", "8", "8 is outside 0..7"),  # R is a 3-bit field
        ("evb", "retries", "-1", "-1 is outside 0..7"),
        ("evb", "rte", "32", "32 is outside 0..31"),  # RTE, RWD, RKA are 5-bit fields
        ("evb", "rwd", "32", "32 is outside 0..31"),
        ("evb", "rka", "-1", "-1 is outside 0..31"),
        ("vdp", "min_gap_ms", "-0.5", "-0.5 is outside 0.0..10000.0"),
        ("vdp", "min_gap_ms", "10001", "10001.0 is outside 0.0..10000.0"),
        ("vdp", "max_per_pdu", "1001", "1001 is outside 0..1000"),
    ],
)
def test_range_checks(tmp_path: Path, table: str, key: str, value: str, message: str) -> None:
    path = write(tmp_path, f'[station]\niface = "eth0"\n[{table}]\n{key} = {value}\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert (info.value.key, info.value.line, info.value.message) == (f"{table}.{key}", 4, message)


def test_range_bounds_are_inclusive(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\niface = "e"\n[evb]\nretries = 0\nrte = 0\nrwd = 31\nrka = 31\n')
    assert load_station(path).evb == EvbSettings(retries=0, rte=0, rwd=31, rka=31)


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("evb", "rte", '"8"', "must be int, not '8'"),
        ("evb", "rte", "8.0", "must be int, not 8.0"),
        ("evb", "rte", "true", "must be int, not True"),  # a bool is not an int here
        ("evb", "rrreq", "1", "must be bool, not 1"),
        ("vdp", "min_gap_ms", '"3"', "must be float, not '3'"),
        ("vdp", "min_gap_ms", "true", "must be float, not True"),
        ("vdp", "end_tlv", '"yes"', "must be bool, not 'yes'"),
    ],
)
def test_type_checks(tmp_path: Path, table: str, key: str, value: str, message: str) -> None:
    path = write(tmp_path, f'[station]\niface = "eth0"\n[{table}]\n{key} = {value}\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert (info.value.key, info.value.line, info.value.message) == (f"{table}.{key}", 4, message)


def test_unknown_key_names_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\niface = "eth0"\n\n[vdp]\nmin_gap_ms = 3\nmax_vsis = 10\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)  # max_vsis is a bridge key
    assert (info.value.key, info.value.line) == ("vdp.max_vsis", 6)
    assert info.value.message == "unknown key (known: end_tlv, max_per_pdu, min_gap_ms)"


def test_station_key_in_a_bridge_file_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, '[bridge]\nports = ["a"]\n[evb]\nrrreq = true\n', "bridge.toml")
    with pytest.raises(ConfigError) as info:
        load_bridge(path)
    assert (info.value.key, info.value.line) == ("evb.rrreq", 4)
    assert "rrcap" in info.value.message


def test_unknown_table_is_refused_not_ignored(tmp_path: Path) -> None:
    # a misspelt [vdp] would otherwise leave the operator's min_gap_ms silently unused
    path = write(tmp_path, '[station]\niface = "eth0"\n\n[vpd]\nmin_gap_ms = 10\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert (info.value.key, info.value.line) == ("vpd", 4)
    assert info.value.message == "unknown table (known: evb, mqtt, station, vdp)"
    bridge = write(tmp_path, '[bridge]\nports = ["a"]\n[station]\niface = "x"\n', "bridge.toml")
    with pytest.raises(ConfigError) as info:
        load_bridge(bridge)
    assert (info.value.key, info.value.line) == ("station", 3)


def test_a_table_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'evb = 5\n[station]\niface = "eth0"\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert (info.value.key, info.value.message) == ("evb", "must be a table")


def test_not_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\niface = "eth0\n')
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert info.value.line == 2
    assert info.value.key == ""
    assert str(info.value).startswith(f"{path}:2: not valid TOML")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_station(tmp_path / "missing.toml", iface="eth0")
    assert str(info.value) == f"{tmp_path / 'missing.toml'}: cannot read (No such file or directory)"


# --------------------------------------------------------------------------- --iface / --port vs the file


def test_no_interface_anywhere() -> None:
    with pytest.raises(ConfigError) as info:
        load_station(None)
    assert str(info.value) == "command line: station.iface: no interface: give --iface or station.iface"


def test_iface_from_command_line_when_the_file_has_none(tmp_path: Path) -> None:
    path = write(tmp_path, "[evb]\nrte = 9\n")
    s = load_station(path, iface="eth7")
    assert (s.iface, s.evb.rte, s.state) == ("eth7", 9, str(tmp_path / "station.eth7.state.json"))


def test_same_iface_in_file_and_on_command_line_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\niface = "eth0"\n')
    assert load_station(path, iface="eth0").iface == "eth0"


def test_iface_conflict_names_both_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '# station\n[station]\niface = "eth0"\n')
    with pytest.raises(ConfigError) as info:
        load_station(path, iface="eth1")
    assert (info.value.key, info.value.line) == ("station.iface", 3)
    assert str(info.value) == f"{path}:3: station.iface: says 'eth0' but --iface says 'eth1'"


def test_iface_of_the_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "[station]\niface = 5\n")
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert (info.value.key, info.value.line, info.value.message) == ("station.iface", 2, "must be str, not 5")


@pytest.mark.parametrize("ports", ["[]", '[""]', "[1]"])
def test_bridge_needs_named_ports(tmp_path: Path, ports: str) -> None:
    path = write(tmp_path, f"[bridge]\nports = {ports}\n", "bridge.toml")
    with pytest.raises(ConfigError) as info:
        load_bridge(path)
    assert info.value.key == "bridge.ports"
    assert "no ports" in info.value.message


def test_bridge_without_ports_anywhere() -> None:
    with pytest.raises(ConfigError) as info:
        load_bridge(None)
    assert str(info.value).startswith("command line: bridge.ports: no ports")


# --------------------------------------------------------------------------- [dataplane]


def test_dataplane_table_and_command_line_on_top(tmp_path: Path) -> None:
    assert load_bridge(None, ports=["p1"]).dataplane == DataPlaneSettings()  # none: log only
    path = write(
        tmp_path,
        """\
        [bridge]
        ports = ["veth1"]

        [dataplane]
        kind = "kernel"
        bridge_name = "labbr0"
        nft_table = "lab"
        default_vid = 100
        ring_frames = 4096
        forward_counters = false
        """,
        "bridge.toml",
    )
    assert load_bridge(path).dataplane == DataPlaneSettings(
        kind="kernel", bridge_name="labbr0", nft_table="lab", default_vid=100, ring_frames=4096, forward_counters=False
    )
    given = {"kind": "emulated", "bridge_name": None, "nft_table": None, "default_vid": 7, "forward_counters": None}
    assert load_bridge(path, dataplane=given).dataplane == DataPlaneSettings(
        kind="emulated", bridge_name="labbr0", nft_table="lab", default_vid=7, ring_frames=4096, forward_counters=False
    )
    on = load_bridge(None, ports=["p1"], dataplane={"forward_counters": False}).dataplane
    assert on.forward_counters is False


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ('kind = "ovs"', "dataplane.kind", "'ovs' is not one of none, kernel, emulated"),
        ("default_vid = 4095", "dataplane.default_vid", "4095 is outside 1..4094"),
        ("default_vid = 0", "dataplane.default_vid", "0 is outside 1..4094"),
        ('bridge_name = "a bridge"', "dataplane.bridge_name", "'a bridge': 1-15 letters, digits, _ . -"),
        ('nft_table = "x234567890123456"', "dataplane.nft_table", "1-15 letters, digits, _ . -"),
        ("ring_frames = 10", "dataplane.ring_frames", "10 is outside 64..1048576"),
        ("hairpin = true", "dataplane.hairpin", "unknown key"),
        ('forward_counters = "no"', "dataplane.forward_counters", "must be bool, not 'no'"),
    ],
)
def test_dataplane_errors_name_file_line_and_key(tmp_path: Path, line: str, key: str, message: str) -> None:
    path = write(tmp_path, f'[bridge]\nports = ["p1"]\n\n[dataplane]\n{line}\n', "bridge.toml")
    with pytest.raises(ConfigError) as info:
        load_bridge(path)
    assert (info.value.key, info.value.line) == (key, 5)
    assert message in str(info.value)


def test_default_vid_from_the_command_line_is_range_checked() -> None:
    with pytest.raises(ConfigError, match=r"--default-vid: 5000 is outside 1\.\.4094"):
        load_bridge(None, ports=["p1"], dataplane={"default_vid": 5000})
