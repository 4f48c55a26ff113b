"""What sealing checksums to their place (format 0007) costs reads: an A/B of two checkouts
in one run, alternating, each against raw sqlite3 reading the same rows.

    python benchmarks/seal_cost.py OLD_CHECKOUT NEW_CHECKOUT  ->  prints a markdown table

Each round runs, in a fresh subprocess per checkout, (a) ``read_bytes`` of 2,000 files of
16 KiB (four 4 KiB chunks), (b) 20,000 random 4 KiB reads of a 64 MiB file (BLOB part reads,
the path that now reads a chunk's whole sums to check the seal) and (c) ``read_bytes`` of that
file; the ratio is raw sqlite3 time / vfs_orm time (higher is better), medians of the rounds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile

ROUNDS = 5

_RUN = r"""
import json, os, random, sqlite3, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from vfs_orm import VFS
d = tempfile.mkdtemp()
path = os.path.join(d, "p.vfs")
with VFS(path, chunk_size=4096) as fs:
    fs.write_files({f"/s/f{i:04}.bin": os.urandom(16384) for i in range(2000)})
    fs.write_bytes("/big.bin", os.urandom(64 << 20))
def best(fn, n=3):
    out = []
    for _ in range(n):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return min(out)
rnd = random.Random(1)
offsets = [rnd.randrange(0, (64 << 20) - 4096) // 4096 * 4096 for _ in range(20000)]
with VFS(path, read_only=True) as fs:
    names = [f"/s/f{i:04}.bin" for i in range(2000)]
    small = best(lambda: [fs.read_bytes(n) for n in names])
    def rand():
        with fs.open("/big.bin", "rb", buffering=0) as f:
            for o in offsets:
                f.seek(o); f.read(4096)
    rand_t = best(rand)
    whole = best(lambda: fs.read_bytes("/big.bin"))
con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
ids = [r[0] for r in con.execute("SELECT id FROM vfs_inodes WHERE parent = '/s'")]
big = con.execute("SELECT id FROM vfs_inodes WHERE name = 'big.bin'").fetchone()[0]
SPAN = "SELECT data FROM vfs_chunks WHERE id >= ? AND id < ? ORDER BY id"
def raw_small():
    for i in ids:
        b"".join(r[0] for r in con.execute(SPAN, (i << 32, (i + 1) << 32)))
def raw_rand():
    for o in offsets:
        with con.blobopen("vfs_chunks", "data", (big << 32) + o // 4096, readonly=True) as b:
            b.read(4096)
def raw_whole():
    b"".join(r[0] for r in con.execute(SPAN, (big << 32, (big + 1) << 32)))
print(json.dumps({"small": best(raw_small) / small, "random": best(raw_rand) / rand_t,
                  "whole": best(raw_whole) / whole}))
"""


def main() -> None:
    old, new = sys.argv[1], sys.argv[2]
    got: dict[str, list[dict[str, float]]] = {old: [], new: []}
    for _ in range(ROUNDS):
        for tree in (old, new):
            out = subprocess.run([sys.executable, "-c", _RUN, tree], capture_output=True,
                                 text=True, check=True)
            got[tree].append(json.loads(out.stdout))
    print("| reads (raw sqlite3 time / vfs_orm time) | before (0006) | after (0007) |")
    print("|---|---|---|")
    for key, label in (("small", "read_bytes of 2,000 files of 16 KiB"),
                       ("random", "20,000 random 4 KiB reads (BLOB part reads)"),
                       ("whole", "read_bytes of a 64 MiB file")):
        b = statistics.median(r[key] for r in got[old])
        a = statistics.median(r[key] for r in got[new])
        print(f"| {label} | {b:.2f} | {a:.2f} |")


if __name__ == "__main__":
    tempfile.gettempdir()
    main()
