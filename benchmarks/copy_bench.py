"""Shared copies (format 0004): copying a 1 GiB tree inside one vfs_orm database against
copying the same tree on the OS file system (``shutil.copytree``), in one run.

    python benchmarks/copy_bench.py [--mib 1024] [--files 512] [--rounds 3]   # writes COPY.md

vfs_orm's ``copytree`` shares every chunked file's chunks (one row per file, no content byte
moves); the OS copies every byte (``copy_file_range``/``sendfile`` where the kernel offers
them). Reported: the medians of the copy times, and the database file's size before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mib", type=int, default=1024, help="size of the tree")
    ap.add_argument("--files", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "COPY.md")
    args = ap.parse_args()
    from vfs_orm import VFS

    size = args.mib * (1 << 20) // args.files
    base = Path(tempfile.mkdtemp(prefix="vfs-copy-", dir=os.environ.get("VFS_BENCH_DIR")))
    try:
        os_src = base / "os" / "assets"
        db = base / "tree.vfs"
        with VFS(str(db), durable=False) as fs:
            for k in range(args.files):
                data = os.urandom(size)
                rel = f"d{k % 16}/f{k:05}.bin"
                (os_src / rel).parent.mkdir(parents=True, exist_ok=True)
                (os_src / rel).write_bytes(data)
                fs.write_bytes(f"/assets/{rel}", data)
        os_times, vfs_times, sizes = [], [], []
        for r in range(args.rounds):
            dst = base / "os" / f"copy{r}"
            os.sync()
            t = time.perf_counter()
            shutil.copytree(os_src, dst)
            os.sync()  # the bytes on disk, as the database's commit puts them
            os_times.append(time.perf_counter() - t)
            with VFS(str(db)) as fs:
                before = os.path.getsize(db)
                t = time.perf_counter()
                fs.copytree("/assets", f"/copy{r}")  # committed, synced (durable)
                vfs_times.append(time.perf_counter() - t)
                fs.sync()
            sizes.append((before, os.path.getsize(db)))
        total = args.files * size
        os_med, vfs_med = statistics.median(os_times), statistics.median(vfs_times)
        lines = [
            "# Shared copies: copytree of a tree inside one database against the OS", "",
            f"`python benchmarks/copy_bench.py --mib {args.mib} --files {args.files} "
            f"--rounds {args.rounds}`: a tree of {args.files} files, {total / 2**30:.2f} GiB "
            f"of random (incompressible) bytes, copied {args.rounds} times each way; medians.",
            "",
            "| copy | median time | per file | bytes written for content |",
            "|---|---:|---:|---:|",
            f"| OS `shutil.copytree` + sync | {os_med:.2f} s | {os_med / args.files * 1e3:.2f} ms "
            f"| {total / 2**20:,.0f} MiB |",
            f"| vfs_orm `copytree` (shared chunks, durable commit) | {vfs_med:.3f} s | "
            f"{vfs_med / args.files * 1e3:.3f} ms | "
            f"{(sizes[-1][1] - sizes[-1][0]) / 2**20:,.2f} MiB (database growth) |",
            "",
            f"vfs_orm / OS: **{vfs_med / os_med:.3f}x** the time. Database size before and "
            f"after each copy: " + ", ".join(f"{a / 2**20:,.1f} -> {b / 2**20:,.1f} MiB"
                                             for a, b in sizes) + ".", ""]
        args.out.write_text("\n".join(lines))
        print("\n".join(lines))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
