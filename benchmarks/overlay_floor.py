"""What the first write in place to a file a checkpoint shares could cost at best: pages
committed (frames added to the write-ahead log), counted with raw sqlite3 on a real tree.

    python benchmarks/overlay_floor.py [--files 2000]  ->  prints a markdown table

A tree of ``--files`` files of 100 KiB is written with vfs_orm (64 KiB chunks), then raw
sqlite3 runs, 20 times each, the least a write of 4 KiB into a file's first chunk can commit:

- in place, as an unshared file is written: the chunk's record rewritten at the same size
  (SQLite writes only the pages whose bytes changed) and the file's row;
- a whole new 64 KiB chunk at a new key with an overlay row (format 0014's first write in
  place to a shared file, less its statements' other work): copy on write of whole chunks;
- a 4 KiB value at a new key and the file's row updated: copy on write of 4 KiB blocks with
  no row of its own (what a partial-chunk format could reach at best);
- the same with an overlay row and its index entries, as format 0014 makes one.

Pages do not depend on the machine's load, so one run says what it says.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

SPAN = 1 << 32  # chunk ids: inode * 2**32 + index
WRITES = 20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    from vfs_orm import VFS

    base = Path(tempfile.mkdtemp(prefix="vfs-floor-", dir=os.environ.get("VFS_BENCH_DIR")))
    db = str(base / "tree.vfs")
    try:
        blob = os.urandom(100 * 1024 + 4096)
        with VFS(db, durable=False) as fs:
            with fs.atomic_batch():
                for i in range(args.files):
                    fs.write_bytes(f"/data/d{i % 100}/f{i}.bin", blob[i % 4096:][:100 * 1024])
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("PRAGMA journal_mode=wal")
        con.execute("PRAGMA foreign_keys=off")
        page = int(con.execute("PRAGMA page_size").fetchone()[0])
        files = [r[0] for r in con.execute(
            "SELECT id FROM vfs_inodes WHERE kind = 1 AND parent IS NOT NULL")]
        rnd = random.Random(3)
        wal = Path(db + "-wal")

        def frames(write: Callable[[int], None]) -> float:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            counts = []
            for _ in range(WRITES):
                before = wal.stat().st_size if wal.exists() else 0
                con.execute("BEGIN IMMEDIATE")
                write(rnd.choice(files))
                con.execute("COMMIT")
                counts.append((wal.stat().st_size - before) // (page + 24))
            return statistics.median(counts)

        def in_place(f: int) -> None:
            sums, data = con.execute("SELECT sums, data FROM vfs_chunks WHERE id = ?",
                                     (f * SPAN,)).fetchone()
            data = bytearray(data)
            data[8192:12288] = os.urandom(4096)
            sums = bytearray(sums)
            sums[:8] = os.urandom(8)
            con.execute("UPDATE vfs_chunks SET sums = ?, data = ? WHERE id = ?",
                        (bytes(sums), bytes(data), f * SPAN))
            con.execute("UPDATE vfs_inodes SET mtime_ns = mtime_ns + 1 WHERE id = ?", (f,))

        def overlay_row(f: int) -> int:
            return int(con.execute(
                "INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, ctime_ns, "
                "mtime_ns, generation, refs, base) SELECT NULL, 'overlay', 1, mode, size, "
                "chunk_size, ctime_ns, mtime_ns, 0, 1, id FROM vfs_inodes WHERE id = ? "
                "RETURNING id", (f,)).fetchone()[0])

        def add_chunk(key: int, size: int) -> None:
            con.execute("INSERT INTO vfs_chunks (id, inode_id, idx, codec, sums, data) "
                        "VALUES (?, ?, 0, 0, ?, ?)",
                        (key * SPAN, key, os.urandom(8 * (1 + size // 4096)), os.urandom(size)))

        def whole_chunk_overlay(f: int) -> None:
            key = overlay_row(f)
            add_chunk(key, 64 * 1024)
            con.execute("UPDATE vfs_inodes SET content = ?, base = ?, refs = refs + 1, "
                        "mtime_ns = mtime_ns + 1 WHERE id = ?", (key, f, f))

        unused = [int(con.execute("SELECT max(id) FROM vfs_inodes").fetchone()[0]) + 1000]

        def block_no_row(f: int) -> None:
            unused[0] += 1
            add_chunk(unused[0], 4096 + 8)
            con.execute("UPDATE vfs_inodes SET mtime_ns = mtime_ns + 1 WHERE id = ?", (f,))

        def block_with_row(f: int) -> None:
            key = overlay_row(f)
            add_chunk(key, 4096 + 8)
            con.execute("UPDATE vfs_inodes SET content = ?, base = ?, refs = refs + 1, "
                        "mtime_ns = mtime_ns + 1 WHERE id = ?", (key, f, f))

        rows = [("in place (an unshared file)", frames(in_place)),
                ("a new 64 KiB chunk and an overlay row (format 0014)",
                 frames(whole_chunk_overlay)),
                ("a new 4 KiB block, no row of its own", frames(block_no_row)),
                ("a new 4 KiB block and an overlay row", frames(block_with_row))]
        con.close()
        print(f"# The first write's floor (benchmarks/overlay_floor.py)\n\n{args.files:,} files "
              f"of 100 KiB, 64 KiB chunks, {page}-byte pages; medians of {WRITES} writes of "
              f"4 KiB into a file's first chunk, raw sqlite3.\n\n"
              "| how the write is stored | pages committed | vs in place |\n|---|---:|---:|")
        for label, n in rows:
            print(f"| {label} | {n:.0f} | {n / rows[0][1]:.2f}x |")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
