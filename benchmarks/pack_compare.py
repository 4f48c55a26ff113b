"""Asset packs on real data: vfs_orm (zstd at levels 3 and 19, with and without a trained
dictionary, zlib, uncompressed; a release pack without solid groups, and on 512-byte pages) against zipfile
(DEFLATED, level 9), Info-ZIP's `zip -9` and `tar --zstd` (pack time and size: a tar is not
read file by file), the same trees in one run; then where the bytes of the dictionary packs
go (SQLite's dbstat: stored content, the dictionary, checksums, digests, paths, indexes,
empty space in pages, the rest: row and page headers, integers, the schema, empty tables).

    python benchmarks/pack_compare.py [--rounds 5]     # writes benchmarks/PACKS.md

Trees: Python's own standard library source (this interpreter's, without site-packages and
__pycache__), its 1,790 ``.py`` modules alone (many small text files), and matplotlib's
mpl-data (PNG/SVG icons, TrueType/AFM fonts, sample data),
taken from the matplotlib wheel (downloaded once into benchmarks/.work; nothing installed).

Measured per pack: its size on disk, the time to pack (once), and the time to read every file
back whole (median of the rounds, the subjects interleaved; the OS cache warm for all).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"


def stdlib_tree() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path) -> list[Path]:
    out = []
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "__pycache__"))
        out += [Path(top) / f for f in sorted(files)
                if not os.path.islink(Path(top) / f) and os.path.isfile(Path(top) / f)]
    return out


def mpl_data_tree() -> Path:
    """matplotlib's mpl-data directory, unpacked from its wheel."""
    dest = WORK / "mpl-data"
    if (dest / "matplotlibrc").exists():
        return dest
    WORK.mkdir(exist_ok=True)
    wheels = WORK / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                    ":all:", "-d", str(wheels), "matplotlib"], check=True,
                   capture_output=True)
    wheel = next(wheels.glob("matplotlib-*.whl"))
    tmp = Path(tempfile.mkdtemp(dir=WORK))
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith("matplotlib/mpl-data/"):
                zf.extract(name, tmp)
    shutil.move(str(tmp / "matplotlib" / "mpl-data"), dest)
    shutil.rmtree(tmp)
    return dest


def copy_tree(files: list[Path], root: Path, dest: Path) -> None:
    """The tree as a plain directory (what `vfs-orm pack` takes)."""
    for f in files:
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)


def pack_vfs(src: Path, out: Path, compression: str | None, level: int | None = None,
             dictionary: bool = False, page_size: int | None = None,
             solid: bool | None = None) -> None:
    from vfs_orm.pack import pack

    pack(str(src), str(out), compression=compression, compression_level=level,
         dictionary=dictionary, page_size=page_size, solid=solid)


def pack_zip_cli(src: Path, out: Path) -> None:
    subprocess.run(["zip", "-9", "-r", "-q", "-X", str(out), "."], cwd=src, check=True)


def pack_tar_zstd(src: Path, out: Path) -> None:
    subprocess.run(["tar", "--zstd", "-cf", str(out), "."], cwd=src, check=True)


def pack_zip(src: Path, out: Path) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for top, _dirs, files in sorted(os.walk(src)):
            for f in sorted(files):
                p = Path(top) / f
                zf.write(p, p.relative_to(src).as_posix())


def read_vfs(path: Path) -> int:
    from vfs_orm import VFS

    n = 0
    with VFS(str(path), read_only=True) as fs:
        for top, _dirs, files in fs.walk("/"):
            for f in files:
                n += len(fs.read_bytes(top.rstrip("/") + "/" + f))
    return n


def read_zip(path: Path) -> int:
    n = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                n += len(zf.read(info))
    return n


SUBJECTS: list[tuple[str, Callable[[Path, Path], None], Callable[[Path], int] | None]] = [
    ("vfs_orm zstd 3 (default)", lambda s, o: pack_vfs(s, o, "zstd"), read_vfs),
    ("vfs_orm zstd 3 --dict", lambda s, o: pack_vfs(s, o, "zstd", 3, True), read_vfs),
    ("vfs_orm zstd 19", lambda s, o: pack_vfs(s, o, "zstd", 19), read_vfs),
    ("vfs_orm zstd 19 --dict", lambda s, o: pack_vfs(s, o, "zstd", 19, True), read_vfs),
    ("vfs_orm zstd 19 --dict --no-solid",
     lambda s, o: pack_vfs(s, o, "zstd", 19, True, solid=False), read_vfs),
    ("vfs_orm zstd 19 --dict --page-size 512",
     lambda s, o: pack_vfs(s, o, "zstd", 19, True, 512), read_vfs),
    ("vfs_orm zlib 6", lambda s, o: pack_vfs(s, o, "zlib"), read_vfs),
    ("vfs_orm (none)", lambda s, o: pack_vfs(s, o, None), read_vfs),
    ("zipfile DEFLATED 9", pack_zip, read_zip),
    ("zip -9 (Info-ZIP)", pack_zip_cli, read_zip),
    ("tar --zstd (level 3, solid)", pack_tar_zstd, None),
]


BROKEN_DOWN = ["vfs_orm zstd 3 --dict", "vfs_orm zstd 19 --dict --no-solid",
               "vfs_orm zstd 19 --dict", "vfs_orm zstd 19 --dict --page-size 512"]


def breakdown(path: Path) -> dict[str, int]:
    """Where the bytes of a pack file go, from SQLite's dbstat table and the stored values."""
    con = sqlite3.connect(path)
    try:
        def one(sql: str) -> int:
            return int(con.execute(sql).fetchone()[0] or 0)

        out = {
            "page size": one("PRAGMA page_size"),
            "file": path.stat().st_size,
            "stored content": one("SELECT sum(length(data)) FROM vfs_inodes")
            + one("SELECT sum(length(data)) FROM vfs_chunks")
            + one("SELECT sum(length(data)) FROM vfs_groups"),
            "dictionary": one("SELECT sum(length(data)) FROM vfs_dictionaries"),
            "checksums": one("SELECT sum(length(sums)) FROM vfs_inodes")
            + one("SELECT sum(length(sums)) FROM vfs_chunks")
            + one("SELECT sum(length(sums)) FROM vfs_groups"),
            "SHA-256 digests": one("SELECT sum(length(digest)) FROM vfs_inodes")
            + one("SELECT sum(length(digest)) FROM vfs_groups"),
            "paths (rows)": one("SELECT sum(length(parent) + length(name) + length(fparent)"
                                " + length(fname)) FROM vfs_inodes"),
            "indexes (pages)": one("SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name "
                                   "FROM sqlite_schema WHERE type = 'index')"),
            "empty space in table pages": one(
                "SELECT sum(unused) FROM dbstat WHERE name NOT IN (SELECT name "
                "FROM sqlite_schema WHERE type = 'index')"),
        }
        out["the rest"] = out["file"] - sum(v for k, v in out.items()
                                            if k not in ("page size", "file"))
        return out
    finally:
        con.close()


def measure(name: str, root: Path, files: list[Path], rounds: int) -> list[str]:
    base = Path(tempfile.mkdtemp(prefix="vfs-packs-"))
    try:
        src = base / "src"
        copy_tree(files, root, src)
        plain = sum(f.stat().st_size for f in files)
        packs, pack_s = {}, {}
        for label, make, _read in SUBJECTS:
            out = base / (label.replace(" ", "_").replace("(", "").replace(")", "") + ".pack")
            t = time.perf_counter()
            make(src, out)
            pack_s[label] = time.perf_counter() - t
            packs[label] = out
        times: dict[str, list[float]] = {label: [] for label, _, _ in SUBJECTS}
        for _ in range(rounds):
            for label, _make, read in SUBJECTS:
                if read is None:
                    continue
                t = time.perf_counter()
                got = read(packs[label])
                times[label].append(time.perf_counter() - t)
                assert got == plain, (label, got, plain)
        zip_size = packs["zip -9 (Info-ZIP)"].stat().st_size
        zip_read = statistics.median(times["zipfile DEFLATED 9"])
        lines = [f"### {name}: {len(files):,} files, {plain / 2**20:.1f} MiB", "",
                 "| pack | size | vs zip | pack time | full read (median) | read MB/s | "
                 "read vs zip |", "|---|---:|---:|---:|---:|---:|---:|"]
        for label, _, _ in SUBJECTS:
            size = packs[label].stat().st_size
            if not times[label]:
                lines.append(f"| {label} | {size / 2**20:.2f} MiB | {size / zip_size:.2f} | "
                             f"{pack_s[label]:.1f} s | n/a | n/a | n/a |")
                continue
            med = statistics.median(times[label])
            lines.append(f"| {label} | {size / 2**20:.2f} MiB | {size / zip_size:.2f} | "
                         f"{pack_s[label]:.1f} s | {med * 1000:.0f} ms | "
                         f"{plain / med / 1e6:.0f} | {zip_read / med:.2f}x |")
        lines += ["", f"Where the bytes of the dictionary packs go ({name}), bytes:", "",
                  "| | " + " | ".join(BROKEN_DOWN) + " |",
                  "|---|" + "---:|" * len(BROKEN_DOWN)]
        parts = {label: breakdown(packs[label]) for label in BROKEN_DOWN}
        for what in parts[BROKEN_DOWN[0]]:
            lines.append(f"| {what} | " + " | ".join(f"{parts[label][what]:,}"
                                                     for label in BROKEN_DOWN) + " |")
        return lines + [""]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "PACKS.md")
    args = ap.parse_args()
    std = stdlib_tree()
    mpl = mpl_data_tree()
    out = ["# Asset packs: vfs_orm against zipfile on real trees", "",
           f"`python benchmarks/pack_compare.py --rounds {args.rounds}`: one process, the "
           f"subjects interleaved, medians of {args.rounds} full reads (every file read whole: "
           f"`VFS.read_bytes` after `walk`, `ZipFile.read` over `infolist`); sizes are the "
           f"pack files on disk. vfs_orm verifies every block's checksum while reading "
           f"(the default). \"vs zip\": size against `zip -9`'s; \"read vs zip\": "
           f"zipfile's read time / this pack's (> 1: faster; both zips read alike).", ""]
    out += measure(f"Python {sys.version.split()[0]} standard library source", std,
                   stdlib_files(std), args.rounds)
    out += measure(f"Python {sys.version.split()[0]} standard library, the .py modules alone",
                   std, [f for f in stdlib_files(std) if f.suffix == ".py"], args.rounds)
    out += measure("matplotlib mpl-data (PNG, SVG, fonts, sample data)", mpl,
                   stdlib_files(mpl), args.rounds)
    args.out.write_text("\n".join(out))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
