"""`evb simulate` as a user runs it (through ``evb.cli.main``): the table, --json, exit codes, help.

Runs are kept small; the simulation itself is covered by tests/test_sim.py.
"""

from __future__ import annotations

import json
import re

import pytest

from evb.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, main

OPTIONS = (
    "--vsis",
    "--ports",
    "--loss",
    "--delay-ms",
    "--jitter-ms",
    "--rte",
    "--rwd",
    "--rka",
    "--retries",
    "--duration",
    "--seed",
    "--min-gap-ms",
    "--max-per-pdu",
    "--json",
)


def simulate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def table(out: str) -> dict[str, str]:
    """The human output: one ``name  value`` row per line (name and value two or more spaces apart)."""
    rows = {}
    for line in out.splitlines():
        name, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        rows[name] = value
    return rows


def test_table_has_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = simulate(capsys, "--vsis", "200", "--ports", "2", "--loss", "0.2", "--seed", "3")
    assert rc == EXIT_OK
    assert err == ""  # the progress bar is drawn only on a terminal
    rows = table(out)
    assert rows["VSIs / ports"] == "200 / 2"
    assert rows["loss each way / delay"] == "20% / 0.1 ms"
    assert re.fullmatch(r"0\.\d{6} s", rows["time to associate all (virtual)"])
    assert float(rows["time to associate all (virtual)"].split()[0]) > 0
    assert rows["associated / failed"] == "200 / 0"
    assert rows["spurious de-associates"] == "0"
    for way in ("station -> bridge", "bridge -> station"):
        m = re.fullmatch(r"(\d+) frames, (\d+) bytes", rows[way])
        assert m is not None and 0 < int(m[1]) * 60 <= int(m[2])  # padded to 60 octets at least
    m = re.fullmatch(r"(\d+) / (\d+)", rows["frames lost / ECP retransmissions"])
    assert m is not None and int(m[1]) > 0 and int(m[2]) > 0  # 20 % loss: lost frames, retransmitted
    assert re.fullmatch(r"\d+\.\d\d s", rows["wall time"])
    assert re.fullmatch(r"\d+\.\d MB", rows["peak RSS"]) and float(rows["peak RSS"].split()[0]) > 0
    assert re.fullmatch(r"\d+ bytes", rows["memory per VSI per side"])
    assert re.fullmatch(r"0 s, 0 keep-alives", rows["hold (virtual)"])
    assert "EVB converged at (virtual)" in rows


def test_json_is_one_object_with_the_results(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = simulate(capsys, "--vsis", "100", "--rka", "14", "--duration", "0.5", "--json")
    assert rc == EXIT_OK and err == ""
    lines = out.splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert isinstance(r, dict)
    for key in (
        "associated",
        "failed",
        "virtual_seconds_to_associate",
        "spurious_deassociates",
        "retransmissions",
        "wall_seconds",
        "peak_rss_mb",
    ):
        assert key in r
    assert (r["vsis"], r["associated"], r["failed"], r["spurious_deassociates"]) == (100, 100, 0, 0)
    assert r["retransmissions"] == 0 and r["frames_lost"] == 0  # no loss asked for
    assert 0 < r["virtual_seconds_to_associate"] < 0.05
    assert r["wall_seconds"] >= 0 and r["peak_rss_mb"] > 0
    # held 0.5 s after the last association: RKA 14 refreshes every 163.84 ms, 3 rounds
    assert r["virtual_seconds_total"] == pytest.approx(
        r["virtual_seconds_to_negotiate"] + r["virtual_seconds_to_associate"] + 0.5, abs=2e-6
    )
    assert 3 * 100 <= r["keepalives_sent"] <= 4 * 100
    assert r["bridge_vsis_at_end"] == 100
    for way in ("station_to_bridge", "bridge_to_station"):
        assert r[f"{way}_frames"] > 0 and r[f"{way}_bytes"] >= 60 * r[f"{way}_frames"]


def test_same_seed_same_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for _ in range(2):
        rc, out, _ = simulate(capsys, "--vsis", "300", "--loss", "0.3", "--seed", "5", "--json")
        assert rc == EXIT_OK
        r = json.loads(out)
        for wall_or_memory in ("wall_seconds", "peak_rss_mb", "bytes_per_vsi_per_side"):
            del r[wall_or_memory]
        runs.append(r)
    assert runs[0] == runs[1] and runs[0]["frames_lost"] > 0


def test_exit_1_when_a_vsi_fails(capsys: pytest.CaptureFixture[str]) -> None:
    # 99 % loss each way: EVB converges in the end (LLDP every 30 s), the VSIs' requests do not
    # get through; each VSI ends after respWaitDelay (15.76 s virtual)
    rc, out, err = simulate(capsys, "--vsis", "3", "--loss", "0.99", "--json")
    assert rc == EXIT_PROBLEMS and err == ""
    r = json.loads(out)
    assert (r["associated"], r["failed"]) == (0, 3)
    assert r["virtual_seconds_to_associate"] is None
    assert r["frames_lost"] > 0.9 * (r["station_to_bridge_frames"] + r["bridge_to_station_frames"])
    rc, out, _ = simulate(capsys, "--vsis", "3", "--loss", "0.99")
    assert rc == EXIT_PROBLEMS
    rows = table(out)
    assert rows["associated / failed"] == "0 / 3" and rows["time to associate all (virtual)"] == "-"


def test_exit_1_on_spurious_deassociates(capsys: pytest.CaptureFixture[str]) -> None:
    # ECP paced to one VSI TLV per 20 ms cannot refresh 20 VSIs every ~0.17 s (RKA 14): the
    # bridge times them out (toutKeepAlive 272.64 ms); each VSI counts once
    rc, out, _ = simulate(
        capsys, "--vsis", "20", "--rka", "14", "--max-per-pdu", "1", "--min-gap-ms", "20", "--duration", "2", "--json"
    )
    assert rc == EXIT_PROBLEMS
    r = json.loads(out)
    assert (r["associated"], r["failed"], r["spurious_deassociates"]) == (20, 0, 20)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--loss", "1.5"), "--loss must be in [0, 1)"),
        (("--loss", "1"), "--loss must be in [0, 1)"),
        (("--loss", "-0.1"), "--loss must be in [0, 1)"),
        (("--retries", "9"), "--retries must be 0..7"),
        (("--ports", "0"), "--ports ≥ 1"),
        (("--vsis", "-1"), "--vsis must be ≥ 0"),
        (("--rte", "40"), "--rte must be 0..31"),
        (("--rwd", "32"), "--rwd must be 0..31"),
        (("--rka", "-1"), "--rka must be 0..31"),
        (("--delay-ms", "-1"), "times must not be negative"),
        (("--duration", "-5"), "times must not be negative"),
    ],
)
def test_exit_2_on_bad_arguments(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    rc, out, err = simulate(capsys, *argv)
    assert rc == EXIT_USAGE
    assert out == ""  # nothing simulated
    assert err.startswith("evb simulate: ") and message in err


def test_exit_2_on_unparsable_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--vsis", "many"])
    assert exc.value.code == EXIT_USAGE
    assert "invalid int value" in capsys.readouterr().err


def test_help_mentions_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert re.search(rf"(^|\s){re.escape(option)}\b", text), option
    # what it prints, and the exit statuses
    for words in ("virtual time", "frames and bytes", "retransmissions", "associated/failed", "exit status"):
        assert words in " ".join(text.split()), words
    assert "simulate" in main_help(capsys)


def main_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main(["--help"])
    return capsys.readouterr().out


def test_no_vsis_is_a_trivial_success(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = simulate(capsys, "--vsis", "0", "--json")
    assert rc == EXIT_OK
    r = json.loads(out)
    assert (r["associated"], r["failed"], r["virtual_seconds_to_associate"]) == (0, 0, 0.0)
