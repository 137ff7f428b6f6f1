"""Damaged and hostile inputs: a seeded corpus through `streamer process`, tallied.

  python benchmarks/fuzz.py [--seed 2024] [--per-base 28] [--keep DIR]

Builds the corpus of tests/media.py (truncations, byte flips, header damage, damaged timestamps,
non-video files, empty files, folders, symlink loops, devices), runs each case in this process
with the identity model and a 1 s read timeout, and prints: cases, exits by kind, warnings,
tracebacks, outputs that do not play, and the slowest case.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from media import fuzz_corpus, probe, run_case  # noqa: E402


def tally(folder: Path, seed: int, per_base: int) -> dict:
    logging.getLogger("libav").setLevel(logging.CRITICAL)
    started = time.perf_counter()
    cases = fuzz_corpus(folder / "corpus", seed=seed, per_base=per_base)
    built = time.perf_counter() - started
    exits: collections.Counter = collections.Counter()
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    figures = {
        "warnings": 0,
        "tracebacks": [],
        "unplayable": [],
        "unwarned_short": [],
        "blamed_disk": [],
        "slowest": (0.0, ""),
    }
    for number, case in enumerate(cases):
        output = folder / f"out{number}.mkv"
        outcome = run_case(case, output)
        if outcome.traceback:
            exits["traceback"] += 1
            by_kind[case.kind]["traceback"] += 1
            figures["tracebacks"].append(case.name)
        elif outcome.code == 0:
            warning = (outcome.summary or {}).get("warning")
            exits["ok, warned" if warning else "ok"] += 1
            by_kind[case.kind]["ok, warned" if warning else "ok"] += 1
            figures["warnings"] += bool(warning)
            try:
                played = probe(output)["frames"]
            except Exception:
                played = -1
            if played != outcome.summary["frames"] or played <= 0:
                figures["unplayable"].append(case.name)
            if case.whole and played < case.whole and not warning and case.kind == "truncated":
                figures["unwarned_short"].append(case.name)
            output.unlink(missing_ok=True)
        else:
            exits[f"error {outcome.code}"] += 1
            by_kind[case.kind][f"error {outcome.code}"] += 1
            if "free space" in outcome.stderr:
                figures["blamed_disk"].append(case.name)
        if outcome.seconds > figures["slowest"][0]:
            figures["slowest"] = (outcome.seconds, case.name)
    kinds = {kind: dict(counts) for kind, counts in sorted(by_kind.items())}
    return {"cases": len(cases), "exits": dict(exits), "kinds": kinds, "corpus_seconds": built, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--per-base", type=int, default=28, help="damaged copies of each of the 8 base videos")
    parser.add_argument("--keep", type=Path, help="build the corpus in this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        started = time.perf_counter()
        result = tally(folder, args.seed, args.per_base)
        total = time.perf_counter() - started
    print(f"cases:        {result['cases']} (seed {args.seed}; corpus built in {result['corpus_seconds']:.1f} s)")
    print("exits:")
    for kind, count in sorted(result["exits"].items()):
        print(f"  {kind:<12}{count}")
    print("by kind of case:")
    for kind, counts in result["kinds"].items():
        print(f"  {kind:<12}" + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))
    print(f"warnings:     {result['warnings']}")
    print(f"blamed on the disk: {len(result['blamed_disk'])} {result['blamed_disk'][:5]}")
    print(f"tracebacks:   {len(result['tracebacks'])} {result['tracebacks'][:5]}")
    print(f"unplayable:   {len(result['unplayable'])} {result['unplayable'][:5]}")
    print(f"short, no warning: {len(result['unwarned_short'])} {result['unwarned_short'][:5]}")
    seconds, name = result["slowest"]
    print(f"max seconds:  {seconds:.2f} ({name})")
    print(f"total:        {total:.1f} s")


if __name__ == "__main__":
    main()
