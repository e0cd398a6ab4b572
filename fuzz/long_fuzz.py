"""Long-running fuzz target for the evb decoders (run by hand; not part of the test suite).

Run from the repository root::

    .venv/bin/python fuzz/long_fuzz.py --minutes 10             # hypothesis, random seed
    .venv/bin/python fuzz/long_fuzz.py --minutes 60 --seed 7    # reproducible run
    .venv/bin/python fuzz/long_fuzz.py --minutes 10 --engine atheris   # needs `pip install atheris`

Oracle, as in ``tests/test_fuzz.py``: ``decode_frame(b, strict=False)`` and ``strict=True`` only
ever raise ``DecodeError``; what decodes re-encodes to exactly ``b``; strict decoding succeeds
exactly when lenient decoding does without an ``InvalidTlv``. In addition the fast path and
the construct reference (``evb/*/schema.py``) must agree on every ECP and draft-ECP payload.

Inputs (hypothesis engine): capture frames and generated frames (``tests/strategies.py``),
each with 1-4 mutations aimed at random octets, TLV lengths, TLV types and filter counts,
plus random payloads behind every EVB EtherType. A failure is shrunk to a minimal input,
printed, saved as ``fuzz/crashes/<sha1>.hex`` and ends the run with exit status 1.
The atheris engine feeds libFuzzer's byte mutations (seeded with the capture frames).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `tests` importable

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evb.frame import encode_frame  # noqa: E402
from tests import strategies as s  # noqa: E402
from tests.conftest import capture_frames  # noqa: E402
from tests.fuzzing import check_frame, cross_check_frame, frame_layout  # noqa: E402

CRASH_DIR = Path(__file__).resolve().parent / "crashes"
ETHERTYPES = [b"\x88\xcc", b"\x89\x40", b"\x88\xb7\x00\x1b\x3f", b"\x81\x00\x00\x0a\x89\x40", b"\x88\xa8\x00\x01"]

counts = {"cases": 0}


def oracle(data: bytes) -> None:
    counts["cases"] += 1
    check_frame(data)
    cross_check_frame(data)


def save_crash(data: bytes) -> Path:
    CRASH_DIR.mkdir(exist_ok=True)
    path = CRASH_DIR / f"{hashlib.sha1(data).hexdigest()}.hex"
    path.write_text(data.hex() + "\n")
    return path


def fuzz_inputs() -> st.SearchStrategy[bytes]:
    captured = sorted(set(d for _name, _number, d in capture_frames()))
    return st.one_of(
        s.mutated(st.sampled_from(captured), frame_layout),
        s.mutated(s.frames().map(encode_frame), frame_layout),
        st.builds(lambda et, rest: bytes(12) + et + rest, st.sampled_from(ETHERTYPES), st.binary(max_size=200)),
    )


def run_hypothesis(deadline: float, seed: int, batch: int) -> int:
    inputs = fuzz_inputs()
    failing: list[bytes] = []
    for round_ in range(sys.maxsize):
        if time.monotonic() >= deadline:
            return 0

        @hypothesis_seed(seed + round_)
        @settings(
            max_examples=batch,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.generate, Phase.target, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        @given(inputs)
        def target(data: bytes) -> None:
            try:
                oracle(data)
            except Exception:
                failing[:] = [data]  # the last one raised is the shrunk example hypothesis reports
                raise

        try:
            target()
        except Exception:
            traceback.print_exc()
            print(f"\nFAILED on {failing[-1].hex()}\nsaved as {save_crash(failing[-1])}", file=sys.stderr)
            return 1
        print(f"round {round_ + 1}: {counts['cases']} cases, {max(0.0, deadline - time.monotonic()):.0f} s left")
    return 0


def run_atheris(minutes: float, seed: int) -> int:
    import atheris  # type: ignore[import-not-found]  # optional: pip install atheris

    corpus = Path(tempfile.mkdtemp(prefix="evb-fuzz-corpus-"))  # libFuzzer adds what it finds here
    print(f"corpus: {corpus}")
    for i, data in enumerate(sorted(set(d for _name, _number, d in capture_frames()))):
        (corpus / f"capture-{i:04d}").write_bytes(data)

    def one_input(buf: bytes) -> None:
        try:
            oracle(bytes(buf))
        except Exception:
            print(f"\nFAILED on {bytes(buf).hex()}\nsaved as {save_crash(bytes(buf))}", file=sys.stderr)
            raise

    args = [sys.argv[0], f"-max_total_time={int(minutes * 60)}", f"-seed={seed}", str(corpus)]
    atheris.instrument_all()  # coverage feedback for the already imported evb modules
    atheris.Setup(args, one_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: random, printed)")
    parser.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis")
    parser.add_argument("--batch", type=int, default=2000, help="hypothesis examples per round (default 2000)")
    args = parser.parse_args(argv)
    seed = random.randrange(1 << 31) if args.seed is None else args.seed
    print(f"evb long fuzz: engine {args.engine}, seed {seed}, {args.minutes:g} minutes")
    start = time.monotonic()
    if args.engine == "atheris":
        return run_atheris(args.minutes, seed)
    status = run_hypothesis(start + args.minutes * 60, seed, args.batch)
    rate = counts["cases"] / max(time.monotonic() - start, 1e-9)
    print(f"{'FAILED' if status else 'OK'}: {counts['cases']} cases, {rate:.0f}/s")
    return status


if __name__ == "__main__":
    sys.exit(main())
