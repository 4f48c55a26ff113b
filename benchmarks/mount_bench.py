"""Reads through a vfs-orm FUSE mount against the same files on the local disk.

    python benchmarks/mount_bench.py [--big-mib 256] [--small 2000] [--entries 10000] [--runs 5]

Each run mounts the image anew (``vfs-orm mount``, a background server process, the default
writable mount), so the kernel's caches of the mount start empty and every byte comes from
SQLite (whose file is in the page cache); the local copy is read from the page cache too.
So the ratios are what the FUSE layer and vfs_orm cost over the kernel's own file system.
Medians of ``--runs`` runs; ratio = local time / mount time (1.0: as fast as local).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vfs_orm import VFS


def build(root: Path, big_mib: int, small: int, entries: int, url: str | None
          ) -> tuple[str, Path]:
    """The files written to a new image (or to a new tree of the database at ``url``) and
    to a local directory: (what ``vfs-orm mount`` takes, the local directory)."""
    local = root / "local"
    image = url or str(root / "bench.vfs")
    big = os.urandom(1 << 20) * big_mib
    files: dict[str, bytes] = {"/big.bin": big}
    for i in range(small):
        files[f"/small/{i // 100:02d}/f{i:05d}.dat"] = os.urandom(4096)
    for i in range(entries):
        files[f"/many/{i // 500:03d}/e{i:06d}"] = b"x"
    for i in range(READERS):
        files[f"/par/r{i}.bin"] = os.urandom(1 << 20) * (big_mib // 8 or 1)
    with (VFS(image, tree=TREE) if url else VFS(image, durable=False)) as fs:
        fs.write_files(files)
    for path, data in files.items():
        p = local / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return image, local


def seq_read(top: Path) -> None:
    with open(top / "big.bin", "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


READERS = 4
TREE = "mount_bench"


def _read_whole(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def one_after_another(top: Path) -> None:
    for i in range(READERS):
        _read_whole(top / "par" / f"r{i}.bin")


def readers_at_once(top: Path) -> None:
    """READERS threads, each reading its own file (``read`` releases the GIL: the requests
    reach the file system at once)."""
    threads = [threading.Thread(target=_read_whole, args=(top / "par" / f"r{i}.bin",))
               for i in range(READERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def small_reads(top: Path) -> None:
    for d in sorted(os.listdir(top / "small")):
        for name in sorted(os.listdir(top / "small" / d)):
            with open(top / "small" / d / name, "rb") as f:
                f.read()


def find_stat(top: Path) -> None:
    subprocess.run(["find", str(top / "many"), "-printf", "%s %T@\n"], check=True,
                   stdout=subprocess.DEVNULL)


def timed(fn: Callable[[Path], None], top: Path) -> float:
    t = time.perf_counter()
    fn(top)
    return time.perf_counter() - t


def workload_arguments() -> argparse.ArgumentParser:
    """The workloads' sizes and the number of runs (mount_ceiling.py takes the same)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    return ap


def cases(big_mib: int, small: int, entries: int
          ) -> list[tuple[str, Callable[[Path], None], bool]]:
    """(name, workload, warm: timed on its second run in the same mount, where the kernel's
    page cache of the mount serves it)."""
    return [
        (f"sequential read of a {big_mib} MiB file", seq_read, False),
        ("the same file read again (kernel page cache)", seq_read, True),
        (f"read {small} files of 4 KiB", small_reads, False),
        (f"find + stat of {entries} entries", find_stat, False),
        (f"{READERS} files of {big_mib // 8 or 1} MiB, one after another",
         one_after_another, False),
        (f"the same {READERS} files, {READERS} readers at once", readers_at_once, False),
    ]


def main() -> None:
    ap = workload_arguments()
    ap.add_argument("--url", help="a PostgreSQL URL: mount a new tree of it instead of an image")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "vfs_orm"]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        image, local = build(root, args.big_mib, args.small, args.entries, args.url)
        where = [image, *(["--tree", TREE] if args.url else [])]
        mnt = root / "mnt"
        mnt.mkdir()
        workloads = cases(args.big_mib, args.small, args.entries)
        times: dict[str, dict[str, list[float]]] = {n: {"local": [], "mount": []}
                                                   for n, _, _ in workloads}
        for _name, fn, _warm in workloads:
            fn(local)  # warm the page cache of the local copy, and SQLite's file
        for _ in range(args.runs):
            for name, fn, warm in workloads:
                times[name]["local"].append(timed(fn, local))
                subprocess.run([*cli, "mount", *where, str(mnt)], check=True,
                               stdout=subprocess.DEVNULL)
                try:
                    if warm:
                        fn(mnt)
                    times[name]["mount"].append(timed(fn, mnt))
                finally:
                    subprocess.run([*cli, "umount", str(mnt)], check=True)
                    while os.path.ismount(mnt):
                        time.sleep(0.01)
        print("| workload | local disk (median s) | mount (median s) | ratio local/mount |")
        print("| --- | ---: | ---: | ---: |")
        for name, _, _ in workloads:
            loc = statistics.median(times[name]["local"])
            mo = statistics.median(times[name]["mount"])
            print(f"| {name} | {loc:.4f} | {mo:.4f} | {loc / mo:.2f}x |")
        (serial, _, _), (at_once, _, _) = workloads[-2:]
        for side in ("local", "mount"):
            share = (statistics.median(times[at_once][side])
                     / statistics.median(times[serial][side]))
            print(f"\n{side}: {READERS} readers at once take {share:.2f}x the time of the same "
                  "reads one after another")


if __name__ == "__main__":
    main()
