"""fsspec on vfs_orm against fsspec's local filesystem and its zip filesystem, on the same data
in the same run, and the adapter's overhead over vfs_orm's own API.

    python benchmarks/fsspec_bench.py [--rounds 5] [--out benchmarks/FSSPEC.md]

Data: 10,000 small files (200 B - 4 KiB) and one ~100 MiB Parquet file, written to a local
directory, a zip (stored, so that both archives hold the bytes as they are) and a vfs_orm
pack. Workloads, each timed ``--rounds`` times (median reported, rounds interleaved across
subjects):

- small: ``cat_file`` of each of the 10,000 small files;
- parquet: ``pyarrow.parquet.read_table`` of the 100 MiB file through the filesystem;
- stream: the 100 MiB file read through ``fs.open`` in 1 MiB pieces.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import zipfile

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vfs_orm import VFS

SMALL = 10_000
PARQUET_ROWS = 6_500_000  # ~100 MiB with uncompressed int64/float64 columns


def build(work: str) -> dict[str, str]:
    rng = random.Random(7)
    local = os.path.join(work, "local")
    names = [f"assets/{i % 100:02}/item{i:05}.bin" for i in range(SMALL)]
    for name in names:
        path = os.path.join(local, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(rng.randint(200, 4096)))
    table = pa.table({"id": pa.array(range(PARQUET_ROWS), pa.int64()),
                      "x": pa.array([rng.random() for _ in range(PARQUET_ROWS)], pa.float64())})
    os.makedirs(os.path.join(local, "tables"))
    pq.write_table(table, os.path.join(local, "tables/big.parquet"), compression="none")
    zpath = os.path.join(work, "data.zip")
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
        for name in [*names, "tables/big.parquet"]:
            z.write(os.path.join(local, name), name)
    pack = os.path.join(work, "data.vfs")
    with VFS(pack, durable=False) as fs, fs.atomic_batch():
        for name in [*names, "tables/big.parquet"]:
            with open(os.path.join(local, name), "rb") as src:
                fs.write_bytes("/" + name, src.read())
    return {"local": local, "zip": zpath, "pack": pack, "names": "\n".join(names)}


def subjects(data: dict[str, str]) -> dict[str, tuple[object, str]]:
    """name -> (filesystem, root prefix of the data in it)."""
    return {
        "fsspec local": (fsspec.filesystem("file"), data["local"] + "/"),
        "fsspec zip": (fsspec.filesystem("zip", fo=data["zip"]), ""),
        "fsspec vfsorm": (fsspec.filesystem("vfsorm", db=data["pack"]), "/"),
    }


def small(fs, root, names):
    for n in names:
        fs.cat_file(root + n)


def small_api(vfs, names):
    for n in names:
        vfs.read_bytes("/" + n)


def parquet(fs, root):
    pq.read_table(root + "tables/big.parquet", filesystem=fs)


def stream(fs, root):
    with fs.open(root + "tables/big.parquet", "rb") as f:
        while f.read(1 << 20):
            pass


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vfs-orm-fsspec-bench-")
    try:
        data = build(work)
        names = data["names"].split("\n")
        subs = subjects(data)
        api = VFS(data["pack"], read_only=True)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for name, (fs, root) in subs.items():
                times.setdefault(("small", name), []).append(timed(lambda: small(fs, root, names)))
                times.setdefault(("parquet", name), []).append(timed(lambda: parquet(fs, root)))
                times.setdefault(("stream", name), []).append(timed(lambda: stream(fs, root)))
            times.setdefault(("small", "vfs_orm API"), []).append(
                timed(lambda: small_api(api, names)))
        med = {k: statistics.median(v) for k, v in times.items()}
        size = os.path.getsize(os.path.join(data["local"], "tables/big.parquet"))
        lines = [
            "# fsspec: vfs_orm against fsspec's local and zip filesystems",
            "",
            f"`python benchmarks/fsspec_bench.py --rounds {args.rounds}`: medians of "
            f"{args.rounds} interleaved rounds, one process, same data in each store "
            f"({SMALL:,} small files of 200 B-4 KiB; one {size / 2**20:.0f} MiB Parquet "
            "file, uncompressed; zip entries stored). Ratios: time of the row / time of "
            "fsspec's local filesystem (lower is faster).",
            "",
            "| workload | subject | median | vs local | vs zip |",
            "|---|---|---|---|---|",
        ]
        for wl in ("small", "parquet", "stream"):
            for name in [*subs, "vfs_orm API"]:
                if (wl, name) not in med:
                    continue
                t = med[(wl, name)]
                lines.append(f"| {wl} | {name} | {t * 1000:.1f} ms | "
                             f"{t / med[(wl, 'fsspec local')]:.2f}x | "
                             f"{t / med[(wl, 'fsspec zip')]:.2f}x |")
        overhead = med[("small", "fsspec vfsorm")] / med[("small", "vfs_orm API")]
        lines += ["", f"Adapter overhead on small-file reads (fsspec `cat_file` over "
                      f"`VFS.read_bytes`): **{overhead:.2f}x** "
                      f"({med[('small', 'fsspec vfsorm')] / SMALL * 1e6:.1f} us against "
                      f"{med[('small', 'vfs_orm API')] / SMALL * 1e6:.1f} us a file).", ""]
        text = "\n".join(lines)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        api.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
