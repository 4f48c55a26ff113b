"""What a solid pack (format 0013, small files in groups) costs a reader: one small file read
whose group is not decoded yet, one whose group is (the stack keeps decoded groups), and the
same file of the same tree packed without groups, against ``zipfile`` reading it.

    python benchmarks/solid_reads.py [--files 400] [--rounds 5]

The tree is the standard library's .py modules (as in pack_compare.py), packed at the release
setting (zstd 19, a dictionary) with and without groups. Each round reads the same random
sample of the small (grouped) files through each subject, in one process; reported: the
median time per file over the rounds' medians, and the ratio to zipfile's.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pack_compare import copy_tree, pack_vfs, pack_zip_cli, stdlib_files, stdlib_tree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from vfs_orm import VFS

    root = stdlib_tree()
    files = [f for f in stdlib_files(root) if f.suffix == ".py"]
    with tempfile.TemporaryDirectory(prefix="vfs-solid-") as tmp:
        base = Path(tmp)
        copy_tree(files, root, base / "src")
        solid, plain, zipped = base / "solid.vfs", base / "plain.vfs", base / "z.zip"
        pack_vfs(base / "src", solid, "zstd", 19, True, solid=True)
        pack_vfs(base / "src", plain, "zstd", 19, True, solid=False)
        pack_zip_cli(base / "src", zipped)
        small = ["/" + f.relative_to(root).as_posix() for f in files
                 if f.stat().st_size <= 16 << 10]
        sample = random.Random(14).sample(small, min(args.files, len(small)))
        medians: dict[str, list[float]] = {k: [] for k in
                                           ("solid, group not decoded", "solid, group decoded",
                                            "not solid", "zipfile")}
        with VFS(str(solid), read_only=True) as s, VFS(str(plain), read_only=True) as p, \
                zipfile.ZipFile(zipped) as z:
            groups = s._bases._groups  # the decoded groups a stack keeps
            for _ in range(args.rounds):
                cold, warm, flat, zipt = [], [], [], []
                for path in sample:
                    groups.clear()
                    t = time.perf_counter()
                    a = s.read_bytes(path)
                    cold.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    b = s.read_bytes(path)
                    warm.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    c = p.read_bytes(path)
                    flat.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    d = z.read(path.lstrip("/"))
                    zipt.append(time.perf_counter() - t)
                    assert a == b == c == d, path
                for key, got in zip(medians, (cold, warm, flat, zipt), strict=True):
                    medians[key].append(statistics.median(got))
    zip_med = statistics.median(medians["zipfile"])
    print(f"One small file read ({len(sample)} random .py modules of at most 16 KiB, medians "
          f"of {args.rounds} rounds' medians):\n")
    print("| read through | per file | vs zipfile |\n|---|---:|---:|")
    for key, got in medians.items():
        med = statistics.median(got)
        print(f"| {key} | {med * 1e6:.0f} us | {med / zip_med:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
