"""Reading a PostgreSQL tree's checkpoint in place (``open_checkpoint``) against the copy it
made before round 13 (``copying.copy_checkpoint`` into a SQLite file), on a throwaway cluster
(tests/pgserver.py). Medians of 5 rounds; the random reads through the view and through the
live tree alternate which goes first. One line of output, recorded in CHECKPOINTS.md.

    python benchmarks/checkpoint_pg_view.py [--files 1000] [--kib 100]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import pgserver

from vfs_orm import VFS
from vfs_orm.copying import copy_checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--kib", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="vfs-ck-pg-")
    cluster = pgserver.start()
    try:
        paths = [f"/d{i % 20}/f{i}.bin" for i in range(args.files)]
        with VFS(cluster.url, tree="bench") as fs:
            blob = os.urandom(args.kib * 1024 + 4096)
            with fs.atomic_batch():
                for i, p in enumerate(paths):
                    fs.write_bytes(p, blob[i % 4096:i % 4096 + args.kib * 1024])
            fs.checkpoint("c")
            opens, copies, view_reads, live_reads = [], [], [], []
            rnd = random.Random(1)
            for r in range(args.rounds):
                t = time.perf_counter()
                view = fs.open_checkpoint("c")
                opens.append(time.perf_counter() - t)
                assert view.db_path == fs.db_path  # in place, not a copy
                picked = rnd.sample(paths, min(200, len(paths)))
                for side in ((0, 1) if r % 2 else (1, 0)):
                    reader = view if side else fs
                    t = time.perf_counter()
                    for p in picked:
                        reader.read_bytes(p)
                    (view_reads if side else live_reads).append(time.perf_counter() - t)
                view.close()
                copy = os.path.join(scratch, f"copy{r}.vfs")
                with VFS(copy, durable=False) as target:
                    t = time.perf_counter()
                    copy_checkpoint(fs._checkpoints, "c", target)
                    copies.append(time.perf_counter() - t)
                os.remove(copy)
    finally:
        cluster.stop()
    med = statistics.median
    print(f"PostgreSQL, {args.files:,} files of {args.kib} KiB: open_checkpoint in place "
          f"{med(opens):.4f} s, the copy {med(copies):.3f} s "
          f"({med(copies) / med(opens):.0f}x); 200 random reads through the view "
          f"{med(view_reads) / med(live_reads):.2f}x the live tree's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
