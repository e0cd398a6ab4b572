"""``KernelDataPlane`` without a kernel: the commands and nft scripts it produces (a recording runner).

The live behaviour (frames forwarded, hairpinned, dropped, counted) is in
tests/integration/test_dataplane_kernel.py; this checks the bookkeeping: incremental set
changes with reference counts, batching, VID 0 and VID-only entries, port loss, cleanup.
"""

from __future__ import annotations

import json

import pytest

from evb.vdp.wire import FilterEntry, VdpMode
from evb.vepa_bridge.kernel import DataPlaneError, KernelDataPlane, decode_raw, raw_element

MAC1 = bytes.fromhex("020000000101")
MAC2 = bytes.fromhex("020000000102")
KEY1 = (b"m" * 16, 1, b"\x01" * 16)
KEY2 = (b"m" * 16, 1, b"\x02" * 16)
M1_10 = "0x200000001018100000a"  #: MAC1 . TPID 0x8100 . VID 10, a raw ``allowed`` element
M2_10 = "0x200000001028100000a"
M2_11 = "0x200000001028100000b"


class Recorder:
    """Records (argv, stdin); answers ``nft -j list counters`` with ``counters``; fails what ``fail`` starts."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail: tuple[str, ...] = ()
        self.counters: list[dict[str, object]] = []
        self.sets: list[dict[str, object]] = []  #: what ``nft -j list table`` shows

    def __call__(self, cmd: list[str], stdin: str | None) -> str:
        self.calls.append((cmd, stdin))
        if self.fail and tuple(cmd[: len(self.fail)]) == self.fail:
            raise DataPlaneError(f"{' '.join(cmd)}: exit 1")
        if cmd[:4] == ["nft", "-j", "list", "counters"]:
            return json.dumps({"nftables": [{"metainfo": {}}, *({"counter": c} for c in self.counters)]})
        if cmd[:4] == ["nft", "-j", "list", "table"]:
            return json.dumps({"nftables": [{"metainfo": {}}, *({"set": s} for s in self.sets)]})
        return ""

    def scripts(self) -> list[str]:
        return [stdin for cmd, stdin in self.calls if cmd == ["nft", "-f", "-"] and stdin is not None]


def element_ops(script: str) -> list[tuple[str, str, str]]:
    """``add|delete element bridge T SET { e1, e2 }`` lines → [(op, set, element), ...] in order
    (a verdict map's ``: accept`` left off)."""
    out = []
    for line in script.splitlines():
        op, _element, _netdev, _table, name, rest = line.split(" ", 5)
        out += [(op, name, e.removesuffix(" : accept").strip()) for e in rest.strip("{} ").split(", ")]
    return out


def make(**kw: object) -> tuple[KernelDataPlane, Recorder]:
    rec = Recorder()
    dp = KernelDataPlane(("p1", "p2"), runner=rec, **kw)  # type: ignore[arg-type]
    dp.start()
    rec.calls.clear()
    return dp, rec


def test_start_cleans_up_first_then_builds_bridge_and_table() -> None:
    rec = Recorder()
    rec.fail = ("nft", "delete")  # no stale table: not an error
    dp = KernelDataPlane(("p1", "p2"), bridge="br9", table="t9", runner=rec)
    dp.start()
    argvs = [" ".join(cmd) for cmd, _ in rec.calls]
    assert argvs[:4] == [
        "nft delete table bridge t9",
        "nft delete table netdev t9",  # an older version's table
        "ip link del dev br9",
        "ip link add name br9 type bridge stp_state 0",
    ]
    assert "ip link set dev p1 master br9" in argvs and "bridge link set dev p2 hairpin off" in argvs
    assert argvs[-4:-1] == [  # after the ports, before the table: 01:80:c2:00:00:00 kept to the bridge
        "bridge link set dev p1 mcast_router 0",
        "bridge link set dev p2 mcast_router 0",
        "bridge mdb add dev br9 port br9 grp 01:80:c2:00:00:00 permanent",
    ]
    assert "ip link set dev br9 type bridge mcast_snooping 1" in argvs
    assert not dp.link_local_first
    (script,) = rec.scripts()
    assert script.startswith("table bridge t9 {")
    for name in ("p0_forwarded", "p0_reflected", "p0_dropped", "p0_control", "p1_dropped"):
        assert f"counter {name} {{ }}" in script
    # per-element counters: the per-VSI counts; the MAC/VID admission set is a verdict map; the port leads every key
    assert "map allowed { typeof meta iif . @ll,48,80 : verdict ; counter ; }" in script
    assert "set held_allowed { typeof meta iif . @ll,48,80 ; counter ; }" in script
    assert "set vids { typeof meta iif . @ll,96,32 ; counter ; }" in script
    assert "set untagged { typeof meta iif . ether saddr ; counter ; }" in script
    assert "set untagged_vids { typeof meta iif ; counter ; }" in script
    admit = script[script.index("chain admit") : script.index("chain local")]
    assert "type filter hook prerouting priority filter;" in admit
    # the accepts first, then link-local, then the pre-associated entries, then the refusals
    control = (
        "@ll,0,40 == 0x0180c20000 @ll,40,8 & 0xf0 == 0x0 "
        'counter name meta iif map { "p1" : "p0_control", "p2" : "p1_control" } drop'
    )
    assert control in admit
    assert "meta iif . @ll,48,80 & 0xffffffffffffffff0fff vmap @allowed" in admit
    assert "meta iif . @ll,96,32 & 0xffff0fff @vids accept" in admit
    assert "ether type != 8021q meta iif @untagged_vids accept" in admit
    assert admit.index("@allowed") < admit.index("@untagged_vids ") < admit.index(control)
    assert admit.index(control) < admit.index("@held_allowed") < admit.index("@held_untagged_vids")
    assert 'counter name meta iif map { "p1" : "p0_dropped", "p2" : "p1_dropped" } drop' in admit
    assert admit.index("@held_untagged_vids") < admit.index("p0_dropped")
    local = script[script.index("chain local") : script.index("chain count")]
    assert "type filter hook input priority filter;" in local
    assert '@ll,40,8 & 0xf0 == 0x0 counter name meta iif map { "p1" : "p0_control", "p2" : "p1_control" }\n' in local
    count = script[script.index("chain count") :]
    assert "type filter hook forward priority filter;" in count
    assert (
        'counter name meta iif . meta oif map { "p1" . "p1" : "p0_reflected", "p1" . "p2" : "p0_forwarded", '
        '"p2" . "p1" : "p1_forwarded", "p2" . "p2" : "p1_reflected" }'
    ) in count


@pytest.mark.parametrize("refused", [("bridge", "mdb"), ("ip", "link", "set", "dev", "evbbr0", "type")])
def test_link_local_test_comes_first_where_the_bridge_refuses_the_multicast_entry(refused: tuple[str, ...]) -> None:
    rec = Recorder()
    rec.fail = refused
    dp = KernelDataPlane(("p1", "p2"), runner=rec)
    dp.start()
    assert dp.link_local_first and dp.status()["link_local_first"] is True
    (script,) = rec.scripts()
    admit = script[script.index("chain admit") : script.index("chain local")]
    assert admit.index("p0_control") < admit.index("@allowed")


def test_without_forward_counters_no_count_chain() -> None:
    rec = Recorder()
    dp = KernelDataPlane(("p1", "p2"), runner=rec, forward_counters=False)
    dp.start()
    (script,) = rec.scripts()
    assert "chain count" not in script and "hook forward" not in script and "p0_forwarded" not in script
    assert "meta iif . @ll,48,80 & 0xffffffffffffffff0fff vmap @allowed" in script
    assert dp.status()["forward_counters"] is False


def counted(val: object, packets: int) -> dict[str, object]:
    return {"elem": {"val": val, "counter": {"packets": packets, "bytes": 64 * packets}}}


def test_per_vsi_and_passed_counters_come_from_the_set_elements() -> None:
    dp, rec = make(forward_counters=False)
    dp.associate("p1", KEY1, VdpMode.ASSOC, (FilterEntry(vid=10, mac=MAC1), FilterEntry(vid=1)))
    dp.associate("p2", KEY2, VdpMode.PREASSOC, (FilterEntry(vid=10, mac=MAC2),))
    rec.sets = [
        {"name": "allowed", "map": "verdict", "elem": [[counted({"concat": ["p1", M1_10]}, 7), {"accept": None}]]},
        {"name": "vids", "elem": [counted({"concat": ["p1", 0x81000001]}, 2)]},  # nft -j may give a number
        {"name": "untagged_vids", "elem": [counted("p1", 3)]},
        {"name": "held_allowed", "elem": [counted({"concat": ["p2", M2_10]}, 4)]},
    ]
    rec.counters = [{"name": "p1_dropped", "packets": 9, "bytes": 0}]
    assert dp.vsi_counters_all() == {
        ("p1", KEY1): {"passed": 12, "dropped": 0},
        ("p2", KEY2): {"passed": 0, "dropped": 4},
    }
    counters = dp.counters()
    assert counters["p1"] == {"forwarded": None, "reflected": None, "passed": 12, "dropped": 0, "control": 0}
    assert counters["p2"] == {"forwarded": None, "reflected": None, "passed": 0, "dropped": 9, "control": 0}
    assert dp.elements()["allowed"] == {"p1/02:00:00:00:01:01/10"}
    assert dp.elements()["untagged_vids"] == {"p1"} and dp.elements()["held_allowed"] == {"p2/02:00:00:00:01:02/10"}


def test_pre_associated_vsi_is_held_not_admitted() -> None:
    dp, rec = make()
    entry = FilterEntry(vid=10, mac=MAC1)
    dp.associate("p1", KEY1, VdpMode.PREASSOC, (entry,))
    assert rec.scripts() == [f'add element bridge evb held_allowed {{ "p1" . {M1_10} }}\n']
    dp.associate("p1", KEY1, VdpMode.ASSOC, (entry,))  # now associated: moved to the admission map
    assert rec.scripts()[1] == (
        f'delete element bridge evb held_allowed {{ "p1" . {M1_10} }}\n'
        f'add element bridge evb allowed {{ "p1" . {M1_10} : accept }}\n'
    )


def test_entries_are_reference_counted() -> None:
    dp, rec = make()
    entry = FilterEntry(vid=10, mac=MAC1)
    dp.associate("p1", KEY1, VdpMode.ASSOC, (entry,))
    dp.associate("p1", KEY2, VdpMode.ASSOC, (entry,))  # same MAC/VID in a second VSI: nothing new
    assert rec.scripts() == [f'add element bridge evb allowed {{ "p1" . {M1_10} : accept }}\n']
    dp.deassociate("p1", KEY1)
    assert len(rec.scripts()) == 1  # still used by KEY2
    dp.deassociate("p1", KEY2)
    assert rec.scripts()[1] == f'delete element bridge evb allowed {{ "p1" . {M1_10} }}\n'
    dp.deassociate("p1", KEY2)  # unknown: no command
    assert len(rec.scripts()) == 2


def test_reassociate_changes_only_the_difference() -> None:
    dp, rec = make()
    dp.associate("p1", KEY1, VdpMode.ASSOC, (FilterEntry(vid=10, mac=MAC1), FilterEntry(vid=10, mac=MAC2)))
    dp.associate("p1", KEY1, VdpMode.ASSOC, (FilterEntry(vid=10, mac=MAC1), FilterEntry(vid=11, mac=MAC2)))
    assert rec.scripts()[1] == (
        f'delete element bridge evb allowed {{ "p1" . {M2_10} }}\n'
        f'add element bridge evb allowed {{ "p1" . {M2_11} : accept }}\n'
    )
    dp.associate("p1", KEY1, VdpMode.ASSOC, (FilterEntry(vid=10, mac=MAC1), FilterEntry(vid=11, mac=MAC2)))
    assert len(rec.scripts()) == 2  # the same again: nothing


@pytest.mark.parametrize("default_vid", [1, 7])
def test_default_vid_admits_untagged_and_vid_0_means_default(default_vid: int) -> None:
    dp, rec = make(default_vid=default_vid)
    dp.associate("p2", KEY1, VdpMode.ASSOC, (FilterEntry(vid=0, mac=MAC1),))
    assert rec.scripts() == [
        f'add element bridge evb allowed {{ "p2" . {raw_element(MAC1, default_vid)} : accept }}\n'
        'add element bridge evb untagged { "p2" . 02:00:00:00:01:01 }\n'
    ]


def test_vid_only_entries_go_to_the_vid_sets() -> None:
    dp, rec = make()
    dp.associate("p1", KEY1, VdpMode.ASSOC, (FilterEntry(vid=30), FilterEntry(vid=1, group_id=9)))
    assert rec.scripts() == [  # one command per set, the elements listed
        'add element bridge evb untagged_vids { "p1" }\n'
        'add element bridge evb vids { "p1" . 0x81000001, "p1" . 0x8100001e }\n'
    ]


def test_batch_sends_one_transaction() -> None:
    dp, rec = make()
    with dp.batch():
        for i in range(100):
            key = (b"m" * 16, 1, i.to_bytes(16, "big"))
            dp.associate("p1", key, VdpMode.ASSOC, (FilterEntry(vid=100, mac=bytes([2, 0, 0, 1, 0, i])),))
        with dp.batch():  # nested: the outer block sends
            dp.deassociate("p1", (b"m" * 16, 1, (0).to_bytes(16, "big")))
    (script,) = rec.scripts()
    ops = element_ops(script)
    assert [op for op, _, _ in ops] == ["add"] * 100 + ["delete"]
    assert ops[-1] == ("delete", "allowed", '"p1" . ' + raw_element(bytes([2, 0, 0, 1, 0, 0]), 100))
    assert len({e for _, _, e in ops}) == 100


def test_port_down_turns_hairpin_off_and_removes_the_ports_vsis_at_once() -> None:
    dp, rec = make()
    dp.port_up("p1", reflective_relay=True)
    dp.port_up("p2", reflective_relay=True)
    dp.associate("p1", KEY1, VdpMode.ASSOC, (FilterEntry(vid=10, mac=MAC1),))
    dp.associate("p1", KEY2, VdpMode.ASSOC, (FilterEntry(vid=10, mac=MAC2),))
    dp.associate("p2", KEY1, VdpMode.ASSOC, (FilterEntry(vid=10, mac=MAC1),))
    rec.calls.clear()
    dp.port_down("p1")
    assert rec.calls[0] == (["bridge", "link", "set", "dev", "p1", "hairpin", "off"], None)
    (script,) = rec.scripts()
    assert [(op, name) for op, name, _ in element_ops(script)] == [("delete", "allowed")] * 2
    assert dp.rr == {"p2": True} and list(dp.vsis) == [("p2", KEY1)]


def test_counters_read_by_name() -> None:
    dp, rec = make()
    rec.counters = [
        {"name": "p0_forwarded", "packets": 5, "bytes": 300},
        {"name": "p1_dropped", "packets": 1000, "bytes": 60000},
        {"name": "other", "packets": 9, "bytes": 9},
    ]
    assert dp.counters() == {
        "p1": {"forwarded": 5, "reflected": 0, "dropped": 0, "control": 0},
        "p2": {"forwarded": 0, "reflected": 0, "dropped": 1000, "control": 0},
    }
    assert rec.calls[-1] == (["nft", "-j", "list", "counters", "table", "bridge", "evb"], None)


def test_close_removes_table_and_bridge_even_if_one_is_gone() -> None:
    dp, rec = make()
    rec.fail = ("nft",)
    dp.close()
    assert [c for c, _ in rec.calls] == [
        ["nft", "delete", "table", "bridge", "evb"],
        ["nft", "delete", "table", "netdev", "evb"],  # an older version's table
        ["ip", "link", "del", "dev", "evbbr0"],
    ]
    assert not dp.started and dp.counters()["p1"]["dropped"] == 0


def test_default_vid_range() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4094"):
        KernelDataPlane(("p1",), default_vid=4095)


def test_a_big_batch_is_sent_as_lists_of_at_most_1000_elements() -> None:
    dp, rec = make()
    with dp.batch():
        for i in range(2500):
            key = (b"m" * 16, 1, i.to_bytes(16, "big"))
            mac = bytes([2, 0, 0, 1, i >> 8, i & 0xFF])
            dp.associate("p1", key, VdpMode.ASSOC, (FilterEntry(vid=100, mac=mac),))
    (script,) = rec.scripts()
    lines = script.splitlines()
    assert [line.count(" : accept") for line in lines] == [1000, 1000, 500]
    assert len(set(element_ops(script))) == 2500


def test_raw_elements_round_trip() -> None:
    assert raw_element(MAC1, 10) == M1_10 and decode_raw(M1_10) == "02:00:00:00:01:01/10"
    assert decode_raw(raw_element(bytes.fromhex("52ffffffffff"), 4094)) == "52:ff:ff:ff:ff:ff/4094"
    assert raw_element(None, 30) == "0x8100001e" and decode_raw("0x8100001e") == "30"
