#!/usr/bin/env python3
"""W6 at 1,000,000 files: listdir of a 1,000-entry directory and of "/" for vfs_orm and raw
sqlite3 in the same run (too slow for the regular suite: building each store takes ~1 min).

    python benchmarks/w6_million.py [--files 1000000]

Prints a Markdown table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from subjects import RawSqlite, VfsOrm  # noqa: E402


def files(total: int, wide: int = 1000):
    yield from ((f"/wide/e{i:05}", b"x") for i in range(wide))
    yield from ((f"/d{i % 100:02}/s{i % 7}/f{i}", b"x") for i in range(total - wide))


def median_ms(fn, calls: int = 20, rounds: int = 5) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t) / calls * 1000)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for subject in (VfsOrm(), RawSqlite()):
            store = subject.create(Path(tmp) / f"{subject.name}.db")
            t = time.perf_counter()
            subject.ingest(store, files(args.files))
            build = time.perf_counter() - t
            assert len(subject.listdir(store, "/wide")) == 1000
            wide = median_ms(lambda: subject.listdir(store, "/wide"))
            root = median_ms(lambda: subject.listdir(store, "/"))
            rows.append((subject.name, build, wide, root))
            subject.close(store)
    by = {r[0]: r for r in rows}
    lines = [f"\n## W6 at {args.files:,} files (benchmarks/w6_million.py, same run)\n",
             "| subject | build s | listdir 1000-entry dir ms | listdir('/') ms |",
             "|---|---:|---:|---:|"]
    lines += [f"| {n} | {b:.1f} | {w:.3f} | {r:.3f} |" for n, b, w, r in rows]
    v, r = by["vfs_orm"], by["raw_sqlite"]
    lines.append(f"\nvfs_orm time / raw time: 1000-entry dir {v[2] / r[2]:.2f}, "
                 f"'/' {v[3] / r[3]:.2f} (target <= 1.5)\n")
    text = "\n".join(lines)
    print(text)
    with open(HERE / "RESULTS.md", "a") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
