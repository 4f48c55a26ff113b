#!/usr/bin/env python3
"""A/B of two checkouts with the benchmark suite, in one session: the same workloads run
round by round, alternating checkouts, so that both see the same machine.

    python benchmarks/ab_compare.py BEFORE_DIR AFTER_DIR [--rounds 5] [-k EXPR]
    python benchmarks/ab_compare.py BEFORE AFTER -k "_pg and not w11" --subject vfs_orm_pg

Each round runs this checkout's benchmarks (``benchmarks/bench_*.py``, full sizes) once with
BEFORE's ``vfs_orm`` first on the import path, once with AFTER's; every workload's ratio to
raw sqlite3 of the same run is kept, and the table gives the median ratio of each side over
the rounds (and the spread). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import collect, reference_for  # noqa: E402  (this directory's run.py)

DEFAULT_K = "not _pg and not w11"


def one_run(tree: Path, k: str, out: Path, subject: str = "vfs_orm") -> dict[str, float]:
    """label -> vfs_orm / reference ratio (for "ms" workloads: reference time / vfs_orm's)."""
    env = dict(os.environ, PYTHONPATH=str(tree), VFS_BENCH_SMOKE="0")
    cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
           "-o", "python_files=bench_*.py", "-o", "testpaths=benchmarks",
           f"--benchmark-json={out}", "--benchmark-disable-gc", "-k", k]
    subprocess.run(cmd, cwd=HERE.parent, env=env, check=True, stdout=subprocess.DEVNULL)
    results = collect(out)
    units = collect.units  # type: ignore[attr-defined]
    ratios = {}
    for label, subjects in results.items():
        ref = subjects.get("raw_pg" if subject.endswith("_pg") else reference_for(label))
        mine = subjects.get(subject)
        if ref and mine:
            ratios[label] = ref / mine if units[label] == "ms" else mine / ref
    return ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-k", default=DEFAULT_K)
    ap.add_argument("--subject", default="vfs_orm",
                    help="the subject compared (vfs_orm_pg: against raw_pg, with -k _pg)")
    args = ap.parse_args()
    got: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            for side, tree in (("before", args.before), ("after", args.after)):
                ratios = one_run(tree.resolve(), args.k, Path(tmp) / f"{side}{n}.json",
                                 args.subject)
                for label, ratio in ratios.items():
                    got[side].setdefault(label, []).append(ratio)
                print(f"round {n + 1}/{args.rounds} {side} done", file=sys.stderr)
    print(f"| workload (vfs_orm / raw, medians of {args.rounds}) | before | after | after / "
          f"before |")
    print("|---|---:|---:|---:|")
    for label in sorted(got["after"]):
        b, a = got["before"].get(label), got["after"][label]
        if not b:
            continue
        mb, ma = statistics.median(b), statistics.median(a)
        print(f"| {label.strip()} | {mb:.2f} ({min(b):.2f}-{max(b):.2f}) | {ma:.2f} "
              f"({min(a):.2f}-{max(a):.2f}) | {ma / mb:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
