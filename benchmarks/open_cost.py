"""What the closed schema costs at open (#27): ``VFS(path, read_only=True)`` of an existing
pack, with the schema comparison and the authorizer, against the same open with both switched
off (the code before the closed schema), and a raw ``sqlite3.connect`` + one query as the floor.

The reference catalogue of a revision is built once per process (the first open pays it): it
is reported on its own. Medians of ROUNDS rounds of OPENS opens each; writes OPEN-COST.md.

    python benchmarks/open_cost.py [--rounds 5] [--opens 200]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from vfs_orm import VFS
from vfs_orm.backends.sqlite import closed, schema

HERE = Path(__file__).resolve().parent


def _pack(directory: str) -> str:
    path = os.path.join(directory, "pack.vfs")
    with VFS(path) as fs:
        fs.write_files({f"/d{i % 20}/f{i}.bin": bytes([i % 251]) * 2048 for i in range(2000)})
    return path


def _per_open(opens: int, path: str) -> float:
    start = time.perf_counter()
    for _ in range(opens):
        VFS(path, read_only=True).close()
    return (time.perf_counter() - start) / opens


def _raw(opens: int, path: str) -> float:
    start = time.perf_counter()
    for _ in range(opens):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        con.execute("SELECT version_num FROM vfs_alembic_version").fetchone()
        con.close()
    return (time.perf_counter() - start) / opens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--opens", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = _pack(d)
        schema.expected.cache_clear()
        schema.expected_shape.cache_clear()
        start = time.perf_counter()
        VFS(path, read_only=True).close()
        first = time.perf_counter() - start
        rows: dict[str, list[float]] = {"closed schema": [], "without it": [], "raw sqlite3": []}
        for _ in range(args.rounds):
            rows["closed schema"].append(_per_open(args.opens, path))
            with mock.patch.object(closed, "verify", lambda *a, **k: None), \
                    mock.patch("vfs_orm.backends.sqlite.engine.install_wall", lambda raw, *a: None):
                rows["without it"].append(_per_open(args.opens, path))
            rows["raw sqlite3"].append(_raw(args.opens, path))
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}
    lines = [
        "# Opening a pack: what the closed schema costs",
        "",
        f"`benchmarks/open_cost.py`: `VFS(path, read_only=True)` + `close()` of a 2,000-file "
        f"pack, medians of {args.rounds} rounds of {args.opens} opens, one process.",
        "",
        "| open | ms per open | x without |",
        "|---|---:|---:|",
    ]
    for k, v in med.items():
        lines.append(f"| {k} | {v:.3f} | {v / med['without it']:.2f} |")
    lines += ["", f"First open in a process (builds the reference catalogue from the "
                  f"migrations once): {first * 1e3:.1f} ms.", ""]
    text = "\n".join(lines)
    print(text)
    (HERE / "OPEN-COST.md").write_text(text)


if __name__ == "__main__":
    main()
