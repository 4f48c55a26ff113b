"""How small can a release pack of the standard library's ``.py`` modules get? A lower bound,
part by part, against `zip -9` of the same files (issue #31, item 2: the target is 0.8x).

    python benchmarks/pack_bound.py [--quick] [--real] [--out FILE]

The tree is pack_compare.py's "the .py modules alone" (imported from there: this
interpreter's standard library, without site-packages and __pycache__). Printed, as markdown
tables (and written to ``--out``, default benchmarks/.work/pack_bound.md):

1. Content only, one zstd frame per file as a release pack stores it (``Content.encode``'s
   rule: values under 64 bytes, or that do not get smaller, stored as is; a dictionary for
   values up to ``DICT_VALUES``), trained on the samples ``vfs-orm pack --dict`` takes
   (``pack._samples``), per trainer, dictionary size and level (19, 22); the dictionary's
   own size raw (as stored today) and zstd-19-compressed.
2. Solid groups: files smaller than N KiB concatenated (by path, or by extension then file
   name) into groups of up to N KiB, one zstd frame each (without a dictionary, with
   today's, with the best of 1.); what one small file's read then decompresses.
3. Per-file metadata a pack must store: the bytes of each field from the tree's own names and
   sizes, and real SQLite databases holding exactly those rows and no content (VACUUMed, at
   512 B, 1 KiB and 4 KiB pages), next to today's rows (a real pack's, content dropped).
4. The bound: content + dictionary + metadata, per-file values and solid groups, summed and
   built as real SQLite databases.
5. (``--real``) Real packs through ``vfs_orm.pack.pack`` (what ``vfs-orm pack --compress zstd
   --level 19 --dict`` runs; today's with the CLI itself) with the dictionary parameters of
   1. that shrink content + raw dictionary, the training swapped in by patching
   ``vfs_orm.dictionaries.train`` in this process (vfs_orm itself unchanged).

Trained dictionaries are kept in benchmarks/.work/pack_bound/ (keyed by trainer, size and
level) so a second run compresses again without training again. Sizes are exact and
deterministic for a given interpreter and zstd; only the times depend on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_compare import (
    WORK,
    copy_tree,
    pack_zip_cli,
    stdlib_files,
    stdlib_tree,
)

from vfs_orm import dictionaries
from vfs_orm.content.codec import (
    BLOCK,
    DICT_VALUES,
    MIN_COMPRESS,
    SUM,
    dictionary_size,
    train,
)
from vfs_orm.pack import Report, _samples, pack, scan

CACHE = WORK / "pack_bound"
KiB = 1024
LEVELS = (19, 22)
PAGE_SIZES = (512, 1024, 4096)


@dataclass
class Tree:
    root: Path  # a plain copy of the tree (what `vfs-orm pack` takes)
    rels: list[str]  # every file, relative, in pack_compare's walk order
    data: dict[str, bytes]
    dirs: list[str]  # every directory below the root, relative
    zip_size: int
    samples: list[bytes]  # what `vfs-orm pack --dict` trains on


def load_tree(base: Path) -> Tree:
    std = stdlib_tree()
    files = [f for f in stdlib_files(std) if f.suffix == ".py"]
    src = base / "src"
    copy_tree(files, std, src)
    rels = [f.relative_to(std).as_posix() for f in files]
    data = {rel: (src / rel).read_bytes() for rel in rels}
    dirs = sorted({str(Path(rel).parent) for rel in rels} - {"."})
    dirs = sorted({str(p) for d in dirs for p in [Path(d), *Path(d).parents]} - {"."})
    out = base / "modules.zip"
    pack_zip_cli(src, out)
    samples = _samples(str(src), scan(str(src), Report()))
    return Tree(src, rels, data, dirs, out.stat().st_size, samples)


# -- 1. content, one frame per file ---------------------------------------------------------

def per_file(values: list[bytes], level: int, dict_data: bytes | None) -> int:
    """Bytes a pack stores for ``values``, one zstd frame each (``Content.encode``'s rule)."""
    zd = None if dict_data is None else zstandard.ZstdCompressionDict(dict_data)
    with_dict = zstandard.ZstdCompressor(level=level, dict_data=zd)
    plain = zstandard.ZstdCompressor(level=level)
    total = 0
    for v in values:
        n = len(v)
        if n >= MIN_COMPRESS:
            comp = with_dict if zd is not None and n <= DICT_VALUES else plain
            n = min(n, len(comp.compress(v)))
        total += n
    return total


def encode_all(tree: Tree, rels: list[str], level: int, dict_data: bytes | None
               ) -> dict[str, bytes]:
    """The stored value of each of ``rels`` (as ``per_file`` counts them)."""
    zd = None if dict_data is None else zstandard.ZstdCompressionDict(dict_data)
    with_dict = zstandard.ZstdCompressor(level=level, dict_data=zd)
    plain = zstandard.ZstdCompressor(level=level)
    out = {}
    for rel in rels:
        v = tree.data[rel]
        if len(v) >= MIN_COMPRESS:
            c = (with_dict if zd is not None and len(v) <= DICT_VALUES else plain).compress(v)
            v = c if len(c) < len(v) else v
        out[rel] = v
    return out


def packed_dict(dict_data: bytes) -> int:
    """The dictionary's size stored as one zstd-19 frame (it is text like the files)."""
    return len(zstandard.ZstdCompressor(level=19).compress(dict_data))


def dict_key(trainer: str, size: int, samples: list[bytes]) -> str:
    return hashlib.sha256(f"{trainer}|{size}|19|{len(samples)}|"
                          f"{sum(map(len, samples))}".encode()).hexdigest()[:16]


def _cached(key: str, make: Callable[[], bytes]) -> tuple[bytes, float]:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / (key + ".dict")
    if path.exists():
        return path.read_bytes(), float((CACHE / (key + ".secs")).read_text())
    t = time.perf_counter()
    data = make()
    secs = time.perf_counter() - t
    path.write_bytes(data)
    (CACHE / (key + ".secs")).write_text(f"{secs:.2f}")
    return data, secs


def _fastcover_defaults(samples: list[bytes], size: int, level: int) -> bytes:
    # zstandard's k=0, d=0: libzstd's fastCover picks k and d itself
    trained = zstandard.train_dictionary(size, samples, level=level)
    return trained.as_bytes()


def _fastcover_steps(samples: list[bytes], size: int, level: int) -> bytes:
    # ZDICT_optimizeTrainFromBuffer_fastCover: k in [50, 2000], d in {6, 8}, 8 steps
    trained = zstandard.train_dictionary(size, samples, level=level, steps=8, threads=2)
    return trained.as_bytes()


def _cli_trainer(flag: str) -> Callable[[list[bytes], int, int], bytes]:
    def run(samples: list[bytes], size: int, level: int) -> bytes:
        with tempfile.TemporaryDirectory(prefix="vfs-bound-") as tmp:
            sdir = Path(tmp) / "s"
            sdir.mkdir()
            for i, s in enumerate(samples):
                (sdir / f"{i:05d}").write_bytes(s)
            out = Path(tmp) / "dict"
            subprocess.run(["zstd", flag, "-T2", f"-{level}", f"--maxdict={size}", "-q", "-r",
                            str(sdir), "-o", str(out)], check=True, capture_output=True)
            return out.read_bytes()
    return run


#: name -> (how to train, the sizes to sweep it over)
TRAINERS: dict[str, Callable[[list[bytes], int, int], bytes]] = {
    "fastcover k=2048 d=8 (today)": lambda s, size, lvl: train(s, size, level=lvl),
    "fastcover, zstandard's defaults (k=0, d=0)": _fastcover_defaults,
    "fastcover optimized (steps=8, threads=2)": _fastcover_steps,
    "cover k=1024 d=6 (zstd CLI)": _cli_trainer("--train-cover=k=1024,d=6"),
    # zstd's search over k in [50, 2000], d in {6, 8}: 11 minutes for 256 KiB on this machine
    "cover optimized (zstd CLI --train-cover)": _cli_trainer("--train-cover"),
}


@dataclass
class DictResult:
    trainer: str
    size: int
    level: int
    dict_data: bytes
    train_s: float
    content: dict[int, int]  # level -> stored content bytes
    packed: int  # the dictionary zstd-compressed

    def total(self, level: int, compressed: bool) -> int:
        return self.content[level] + (self.packed if compressed else len(self.dict_data))


def sweep_dicts(tree: Tree, trainers: dict[str, list[int]]) -> list[DictResult]:
    values = [tree.data[r] for r in tree.rels]
    out = []
    for name, make in TRAINERS.items():
        for size in trainers.get(name, []):
            data, secs = _cached(dict_key(name, size, tree.samples),
                                 lambda: make(tree.samples, size, 19))
            content = {lvl: per_file(values, lvl, data) for lvl in LEVELS}
            r = DictResult(name, size, 19, data, secs, content, packed_dict(data))
            print(f"  {name} {size // KiB} KiB: dict {len(data):,} ({r.packed:,} packed), "
                  f"content {content}, {secs:.1f} s", file=sys.stderr, flush=True)
            out.append(r)
    return out


# -- 2. solid groups ------------------------------------------------------------------------

ORDERS: dict[str, Callable[[str], tuple[str, ...]]] = {
    "by path": lambda rel: (rel,),
    "by extension, then file name": lambda rel: (Path(rel).suffix, Path(rel).name, rel),
}


def groups_of(tree: Tree, order: str, limit: int) -> tuple[list[list[str]], list[str]]:
    """Files under ``limit`` bytes in groups of at most ``limit`` bytes, in ``order``; and
    the files left on their own."""
    rels = sorted(tree.rels, key=ORDERS[order])
    groups: list[list[str]] = []
    alone: list[str] = []
    cur: list[str] = []
    held = 0
    for rel in rels:
        n = len(tree.data[rel])
        if n >= limit:
            alone.append(rel)
            continue
        if cur and held + n > limit:
            groups.append(cur)
            cur, held = [], 0
        cur.append(rel)
        held += n
    if cur:
        groups.append(cur)
    return groups, alone


def solid(tree: Tree, order: str, limit: int, level: int, dict_data: bytes | None
          ) -> dict[str, float]:
    groups, alone = groups_of(tree, order, limit)
    blobs = [b"".join(tree.data[r] for r in g) for g in groups]
    stored = per_file(blobs, level, dict_data) + per_file([tree.data[r] for r in alone],
                                                          level, dict_data)
    whole, prefix = [], []
    for g in groups:
        size = sum(len(tree.data[r]) for r in g)
        at = 0
        for r in g:
            at += len(tree.data[r])
            whole.append(size)
            prefix.append(at)
    return {"stored": stored, "groups": len(groups), "grouped": len(whole),
            "alone": len(alone), "whole_med": statistics.median(whole),
            "whole_max": max(whole), "prefix_med": statistics.median(prefix),
            "prefix_max": max(prefix)}


# -- 3. metadata ----------------------------------------------------------------------------

def sums_len(n: int) -> int:
    return (-(-n // BLOCK) * SUM + SUM) if n else 0


def varint_int(v: int) -> int:
    """Bytes of an integer in an SQLite record body (0 and 1 are free: in the header)."""
    if v in (0, 1):
        return 0
    for size, bound in ((1, 1 << 7), (2, 1 << 15), (3, 1 << 23), (4, 1 << 31), (6, 1 << 47)):
        if -bound <= v < bound:
            return size
    return 8


def metadata_fields(tree: Tree) -> list[tuple[str, int]]:
    """The bytes of each field every entry needs, from the tree's names and sizes (the
    values themselves, no SQLite framing)."""
    files = tree.rels
    names = sum(len(Path(r).name.encode()) for r in files)
    dnames = sum(len(Path(d).name.encode()) for d in tree.dirs)
    n_entries = len(files) + len(tree.dirs) + 1
    ids = sum(varint_int(i) for i in range(1, n_entries + 1))
    return [
        ("names (files)", names),
        ("names (directories)", dnames),
        ("parent (an integer id)", ids),
        ("mode", sum(varint_int(0o100644) for _ in files)
         + sum(varint_int(0o40755) for _ in range(len(tree.dirs) + 1))),
        ("size", sum(varint_int(len(tree.data[r])) for r in files)),
        ("mtime (ns)", 8 * n_entries),
        ("SHA-256 digest", 32 * len(files)),
        ("XXH3 block sums + seal", sum(sums_len(len(tree.data[r])) for r in files)),
    ]


#: The least a pack's entry table can hold: an id, its parent's id, its name, mode, size,
#: mtime, owner (NULL: not set), the file's SHA-256 and block sums; (parent, name) unique.
MIN_SCHEMA = """
CREATE TABLE entries (id INTEGER PRIMARY KEY, parent INTEGER, name TEXT, mode INTEGER,
    size INTEGER, mtime_ns INTEGER, uid INTEGER, gid INTEGER, digest BLOB, sums BLOB,
    data BLOB);
CREATE UNIQUE INDEX entries_parent_name ON entries (parent, name);
CREATE TABLE groups (id INTEGER PRIMARY KEY, data BLOB);
CREATE TABLE dictionaries (id INTEGER PRIMARY KEY, data BLOB);
"""


def min_rows(tree: Tree, checksums: bool = True
             ) -> list[tuple[int, int | None, str, int, int, int, bytes | None, bytes | None]]:
    """Rows of the minimal entry table (no content): directories first, then files."""
    ids = {".": 1}
    rows: list[tuple[int, int | None, str, int, int, int, bytes | None, bytes | None]] = [
        (1, None, "", 0o40755, 0, 1_700_000_000_000_000_000, None, None)]
    for d in tree.dirs:
        ids[d] = len(ids) + 1
        rows.append((ids[d], ids[str(Path(d).parent)], Path(d).name, 0o40755, 0,
                     1_700_000_000_000_000_000, None, None))
    for i, rel in enumerate(tree.rels):
        v = tree.data[rel]
        sums = (b"\x5a" * sums_len(len(v))) if checksums else None  # random-like: 8 B each
        digest = hashlib.sha256(v).digest() if checksums else None
        rows.append((len(ids) + 1 + i, ids[str(Path(rel).parent)], Path(rel).name, 0o100644,
                     len(v), 1_700_000_000_123_456_789 + i, digest, sums))
    return rows


def build_min(path: Path, page: int, tree: Tree, checksums: bool = True,
              values: dict[str, bytes] | None = None,
              groups: list[tuple[list[str], bytes]] | None = None,
              dict_blob: bytes | None = None) -> dict[str, int]:
    """A real SQLite database: the minimal entry table, optionally with each file's stored
    value inline (``values``) or solid groups (``groups``: the files of a group hold the
    group's id in ``data``... as an 8-byte (group, offset) pair), and a dictionary row."""
    if path.exists():
        path.unlink()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA page_size = {page}")
    con.execute("PRAGMA auto_vacuum = NONE")
    con.executescript(MIN_SCHEMA)
    rows = min_rows(tree, checksums)
    where = {}
    if groups is not None:
        for gid, (members, blob) in enumerate(groups, 1):
            con.execute("INSERT INTO groups VALUES (?, ?)", (gid, blob))
            at = 0
            for rel in members:
                where[rel] = (gid << 32 | at).to_bytes(8, "big")
                at += len(tree.data[rel])
    n_dirs = len(tree.dirs) + 1
    out = []
    for i, row in enumerate(rows):
        data = None
        if i >= n_dirs:
            rel = tree.rels[i - n_dirs]
            data = where.get(rel) if rel in where else (values or {}).get(rel)
        out.append((*row[:6], None, None, row[6], row[7], data))
    con.executemany("INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?)", out)
    if dict_blob is not None:
        con.execute("INSERT INTO dictionaries VALUES (1, ?)", (dict_blob,))
    con.commit()
    con.execute("VACUUM")
    stat = _dbstat(con)
    con.close()
    stat["file"] = path.stat().st_size
    return stat


def _dbstat(con: sqlite3.Connection) -> dict[str, int]:
    def one(sql: str) -> int:
        return int(con.execute(sql).fetchone()[0] or 0)
    idx = "(SELECT name FROM sqlite_schema WHERE type = 'index')"
    return {
        "index pages": one(f"SELECT sum(pgsize) FROM dbstat WHERE name IN {idx}"),
        "table pages": one(f"SELECT sum(pgsize) FROM dbstat WHERE name NOT IN {idx}"),
        "unused in table pages": one(f"SELECT sum(unused) FROM dbstat WHERE name NOT IN "
                                     f"{idx}"),
        "payload": one(f"SELECT sum(payload) FROM dbstat WHERE name NOT IN {idx}"),
    }


def today_rows_only(pack_file: Path, dest: Path, page: int) -> dict[str, int]:
    """A real pack's schema and rows with every stored value and the dictionary dropped
    (``data`` NULL, chunk values empty), copied into a new database of ``page``-byte pages
    (no auto-vacuum) and VACUUMed: today's per-entry cost without content."""
    if dest.exists():
        dest.unlink()
    src = sqlite3.connect(pack_file)
    ddl = [sql for (sql,) in src.execute(
        "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
        "ORDER BY type = 'index', rowid")]
    tables = [n for (n,) in src.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    src.close()
    con = sqlite3.connect(dest)
    con.execute(f"PRAGMA page_size = {page}")
    con.execute("PRAGMA auto_vacuum = NONE")
    for sql in ddl:
        con.execute(sql)
    con.execute("ATTACH DATABASE ? AS src", (str(pack_file),))
    for t in tables:
        con.execute(f"INSERT INTO main.{t} SELECT * FROM src.{t}")
    con.execute("UPDATE vfs_inodes SET data = NULL")
    con.execute("UPDATE vfs_chunks SET data = x''")
    con.execute("DELETE FROM vfs_dictionaries")
    con.commit()
    con.execute("DETACH DATABASE src")
    con.execute("VACUUM")
    stat = _dbstat(con)
    con.close()
    stat["file"] = dest.stat().st_size
    return stat


# -- 5. real packs --------------------------------------------------------------------------

def real_pack(src: Path, out: Path, trainer: str | None, size: int | None) -> tuple[int, float]:
    """A release pack through vfs_orm.pack.pack; ``trainer``/``size``: the dictionary
    training swapped in (None: today's, run through the CLI itself). The pack time then
    leaves out the training when the dictionary was kept by 1. (it says so)."""
    if out.exists():
        out.unlink()
    t = time.perf_counter()
    if trainer is None:
        subprocess.run([str(Path(sys.executable).parent / "vfs-orm"), "pack", "--compress",
                        "zstd", "--level", "19", "--dict", "-q", str(src), str(out)],
                       check=True)
    else:
        make = TRAINERS[trainer]
        before = dictionaries.train

        def swapped(samples: list[bytes], _size: int | None = None, level: int = 3) -> bytes:
            n = size or dictionary_size(sum(map(len, samples)))
            # the dictionary of 1. when these are its samples (the optimizers take minutes)
            made, _ = _cached(dict_key(trainer, n, samples), lambda: make(samples, n, level))
            data = bytearray(made)
            # the id vfs_orm derives from the content, as its own train() does
            from vfs_orm.content.codec import dictionary_id
            data[4:8] = dictionary_id(bytes(data)).to_bytes(4, "little")
            return bytes(data)

        dictionaries.train = swapped  # type: ignore[assignment]
        try:
            pack(str(src), str(out), compression="zstd", compression_level=19,
                 dictionary=True)
        finally:
            dictionaries.train = before
    return out.stat().st_size, time.perf_counter() - t


# -- the report -----------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="fewer dictionary sizes and no CLI cover training")
    ap.add_argument("--real", action="store_true", help="also make real packs (5.)")
    ap.add_argument("--out", type=Path, default=WORK / "pack_bound.md")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vfs-bound-"))
    lines: list[str] = []

    def emit(*rows: str) -> None:
        lines.extend(rows)
        print("\n".join(rows), flush=True)

    try:
        tree = load_tree(base)
        z = tree.zip_size
        plain = sum(map(len, tree.data.values()))
        rule = dictionary_size(sum(map(len, tree.samples)))
        emit(f"Tree: {len(tree.rels):,} files, {len(tree.dirs):,} directories, {plain:,} "
             f"bytes; `zip -9`: {z:,} bytes (0.8x: {int(0.8 * z):,}). Samples `--dict` "
             f"trains on: {len(tree.samples):,} files, {sum(map(len, tree.samples)):,} "
             f"bytes; today's rule gives a {rule // KiB} KiB dictionary. zstandard "
             f"{zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION}). Load average "
             f"at start: {os.getloadavg()[0]:.1f}.", "")

        # 1.
        # (the optimizers only where they finish in minutes on a shared 2-core machine)
        per_trainer = {
            "fastcover k=2048 d=8 (today)": [s * KiB for s in (32, 64, 112, 256, 512, 1024,
                                                                2048)],
            "fastcover, zstandard's defaults (k=0, d=0)": [112 * KiB, 256 * KiB, 1024 * KiB],
            "fastcover optimized (steps=8, threads=2)": [256 * KiB],
            "cover k=1024 d=6 (zstd CLI)": [112 * KiB, 256 * KiB, 1024 * KiB, 2048 * KiB],
            "cover optimized (zstd CLI --train-cover)": [256 * KiB],
        }
        if args.quick:
            per_trainer = {"fastcover k=2048 d=8 (today)": [112 * KiB, rule],
                           "cover k=1024 d=6 (zstd CLI)": [256 * KiB]}
        values = [tree.data[r] for r in tree.rels]
        nodict = {lvl: per_file(values, lvl, None) for lvl in LEVELS}
        results = sweep_dicts(tree, per_trainer)
        emit("#### 1. Content, one zstd frame per file, with a trained dictionary", "",
             f"No dictionary: {nodict[19]:,} bytes at level 19 ({nodict[19] / z:.3f}x), "
             f"{nodict[22]:,} at 22 ({nodict[22] / z:.3f}x).", "",
             "| trainer | dict size | train s | dict raw | dict zstd-19 | content 19 | "
             "content 22 | content+dict raw (19) | vs zip | content+dict zstd (19) | "
             "vs zip |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            emit(f"| {r.trainer} | {r.size // KiB} KiB | {r.train_s:.1f} | "
                 f"{len(r.dict_data):,} | {r.packed:,} | {r.content[19]:,} | "
                 f"{r.content[22]:,} | {r.total(19, False):,} | "
                 f"{r.total(19, False) / z:.3f} | {r.total(19, True):,} | "
                 f"{r.total(19, True) / z:.3f} |")
        today = next(r for r in results if r.trainer.endswith("(today)") and r.size == rule)
        best_raw = min(results, key=lambda r: min(r.total(lvl, False) for lvl in LEVELS))
        best_packed = min(results, key=lambda r: min(r.total(lvl, True) for lvl in LEVELS))
        lvl_raw = min(LEVELS, key=lambda lvl: best_raw.total(lvl, False))
        lvl_packed = min(LEVELS, key=lambda lvl: best_packed.total(lvl, True))
        emit("", f"Today ({today.trainer}, {rule // KiB} KiB, level 19): content + dictionary "
             f"{today.total(19, False):,} ({today.total(19, False) / z:.3f}x). Best with the "
             f"dictionary stored as is: {best_raw.trainer}, {best_raw.size // KiB} KiB, level "
             f"{lvl_raw}: {best_raw.total(lvl_raw, False):,} "
             f"({best_raw.total(lvl_raw, False) / z:.3f}x). Best with it stored compressed: "
             f"{best_packed.trainer}, {best_packed.size // KiB} KiB, level {lvl_packed}: "
             f"{best_packed.total(lvl_packed, True):,} "
             f"({best_packed.total(lvl_packed, True) / z:.3f}x).", "")

        # 2.
        emit("#### 2. Solid groups: small files concatenated, one zstd frame per group (level "
             "19)", "",
             f"Files under N KiB in groups of at most N KiB; bigger files one frame each (as in "
             f"1.). \"dict\": today's ({rule // KiB} KiB, stored as is: {len(today.dict_data):,} "
             f"bytes, not counted in \"content\"); \"best dict\": "
             f"{best_packed.trainer}, {best_packed.size // KiB} KiB (zstd-19-compressed: "
             f"{best_packed.packed:,} bytes, not counted). A read of one grouped file "
             f"decompresses its group up to its own end (\"prefix\"), or the whole group.", "",
             "| order | N | groups | files grouped | content, no dict | vs zip | content, dict "
             "| +dict raw vs zip | content, best dict | +dict zstd vs zip | read: prefix "
             "median / max | whole group median / max |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        best_solid: tuple[int, str, int, str] | None = None
        for order in ORDERS:
            for n in (16, 64, 256, 1024):
                if args.quick and n not in (64, 256):
                    continue
                a = solid(tree, order, n * KiB, 19, None)
                b = solid(tree, order, n * KiB, 19, today.dict_data)
                c = solid(tree, order, n * KiB, 19, best_packed.dict_data)
                totals = {"none": int(a["stored"]),
                          "today's dict raw": int(b["stored"]) + len(today.dict_data),
                          "best dict compressed": int(c["stored"]) + best_packed.packed}
                for how, tot in totals.items():
                    if best_solid is None or tot < best_solid[0]:
                        best_solid = (tot, order, n, how)
                with_today = totals["today's dict raw"]
                emit(f"| {order} | {n} KiB | {a['groups']:,} | {a['grouped']:,} | "
                     f"{a['stored']:,} | {a['stored'] / z:.3f} | {b['stored']:,} | "
                     f"{with_today / z:.3f} | "
                     f"{c['stored']:,} | {totals['best dict compressed'] / z:.3f} | "
                     f"{a['prefix_med'] / KiB:.1f} / {a['prefix_max'] / KiB:.0f} KiB | "
                     f"{a['whole_med'] / KiB:.1f} / {a['whole_max'] / KiB:.0f} KiB |")
        assert best_solid is not None
        cat = {o: b"".join(tree.data[r] for r in sorted(tree.rels, key=ORDERS[o]))
               for o in ORDERS}
        one = {o: len(zstandard.ZstdCompressor(level=19).compress(v)) for o, v in cat.items()}
        long = {o: len(zstandard.ZstdCompressor(compression_params=zstandard.
                                                  ZstdCompressionParameters.from_level(
                                                      19, window_log=25)).compress(v))
                for o, v in cat.items()}
        emit("", "One frame of every file (a solid archive, for reference): "
             + "; ".join(f"{o}: {one[o]:,} ({one[o] / z:.3f}x) at 19, {long[o]:,} "
                         f"({long[o] / z:.3f}x) with a 32 MiB window" for o in ORDERS)
             + f". Best grouping: {best_solid[1]}, {best_solid[2]} KiB, {best_solid[3]}: "
             f"{best_solid[0]:,} ({best_solid[0] / z:.3f}x).", "")

        # 3.
        fields = metadata_fields(tree)
        raw_meta = sum(v for _, v in fields)
        emit("#### 3. Per-entry metadata, without content", "",
             f"{len(tree.rels):,} files and {len(tree.dirs) + 1:,} directories (the root "
             f"included). Bytes of each field's values (integers as SQLite stores them in a "
             f"record body):", "", "| field | bytes |", "|---|---:|")
        for what, v in fields:
            emit(f"| {what} | {v:,} |")
        checks = sum(v for what, v in fields if what.startswith(("SHA", "XXH3")))
        emit(f"| **all** | **{raw_meta:,}** ({raw_meta / len(tree.rels):.0f} per file) |",
             f"| of which checksums | {checks:,} |", "")
        base_pack = base / "today.pack"
        size0, secs0 = real_pack(tree.root, base_pack, None, None)
        emit("Real SQLite databases holding those rows and no content (`auto_vacuum=NONE`, "
             "VACUUMed): \"minimal\" is an entry table (id, parent id, name, mode, size, "
             "mtime, uid and gid NULL, digest, sums) with a unique index on (parent, name); "
             "\"today's rows\" is a real release pack (`vfs-orm pack --compress zstd --level "
             "19 --dict`, "
             f"{base_pack.stat().st_size:,} bytes) with every stored value and the dictionary "
             "dropped, copied into a new database of that page size: its schema, its "
             "`vfs_inodes` rows (paths as strings, the case-folded key and its index, ctime, "
             "generation, refs...), the manifest row.", "",
             "| database | page | file | table pages | index pages | unused in tables | "
             "payload | per file |", "|---|---:|---:|---:|---:|---:|---:|---:|")
        meta: dict[tuple[str, int], int] = {}
        for page in PAGE_SIZES:
            for label, make in (
                    ("minimal", lambda p, pg: build_min(p, pg, tree)),
                    ("minimal, no SHA-256 or block sums",
                     lambda p, pg: build_min(p, pg, tree, checksums=False)),
                    ("today's rows", lambda p, pg: today_rows_only(base_pack, p, pg))):
                st = make(base / f"meta-{page}.db", page)
                meta[label, page] = st["file"]
                emit(f"| {label} | {page} | {st['file']:,} | {st['table pages']:,} | "
                     f"{st['index pages']:,} | {st['unused in table pages']:,} | "
                     f"{st['payload']:,} | {st['file'] / len(tree.rels):.0f} |")

        # 4.
        emit("", "#### 4. The bound: content + dictionary + metadata", "",
             "Summed: the content and dictionary of 1./2. plus the metadata database of 3. (each "
             "value of content adds at least its record header and, on small pages, overflow "
             "page headers: the \"built\" columns hold everything in one real database, "
             "minimal entry table with the values inline or in a group table).", "")
        best_vals = encode_all(tree, tree.rels, lvl_packed, best_packed.dict_data)
        packed_dict_blob = zstandard.ZstdCompressor(level=19).compress(best_packed.dict_data)
        _, order, n, how = best_solid
        groups, alone = groups_of(tree, order, n * KiB)
        gdict = None if how == "none" else (today.dict_data if how.startswith("today")
                                            else best_packed.dict_data)
        gcomp = zstandard.ZstdCompressor(
            level=19, dict_data=None if gdict is None else zstandard.ZstdCompressionDict(gdict))
        gblobs = []
        for g in groups:
            blob = b"".join(tree.data[r] for r in g)
            c = gcomp.compress(blob)
            gblobs.append((g, c if len(c) < len(blob) else blob))
        alone_vals = encode_all(tree, alone, 19, gdict)
        gdict_blob = None if gdict is None else (
            gdict if how.startswith("today") else packed_dict_blob)
        today_vals = encode_all(tree, tree.rels, 19, today.dict_data)
        raw_vals = encode_all(tree, tree.rels, lvl_raw, best_raw.dict_data)
        # (label, content + dictionary, stored values, groups, dictionary row)
        cases: list[tuple[str, int, dict[str, bytes], list[tuple[list[str], bytes]] | None,
                          bytes | None]] = [
            ("per-file values, today's dictionary as is", today.total(19, False), today_vals,
             None, today.dict_data),
            ("per-file values, best dictionary stored as is", best_raw.total(lvl_raw, False),
             raw_vals, None, best_raw.dict_data),
            ("per-file values, best dictionary stored compressed",
             best_packed.total(lvl_packed, True), best_vals, None, packed_dict_blob),
            (f"solid groups ({order}, {n} KiB, {how})", best_solid[0], alone_vals, gblobs,
             gdict_blob),
        ]
        emit("| content as | content + dict | + minimal metadata (1 KiB / 512 B) | vs zip (512 B) | "
             "+ metadata, no checksums (512 B) | vs zip | built, 512 B | vs zip | built, "
             "1 KiB | vs zip | built, no checksums, 512 B | vs zip |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        m1, m5 = meta["minimal", 1024], meta["minimal", 512]
        nc = meta["minimal, no SHA-256 or block sums", 512]
        for label, cd, vals, grp, dblob in cases:
            b5, b1, bn = (build_min(base / "b.db", pg, tree, checksums=ck, values=vals,
                                    groups=grp, dict_blob=dblob)["file"]
                          for pg, ck in ((512, True), (1024, True), (512, False)))
            emit(f"| {label} | {cd:,} | {cd + m1:,} / {cd + m5:,} | "
                 f"{(cd + m5) / z:.3f} | {cd + nc:,} | {(cd + nc) / z:.3f} | "
                 f"{b5:,} | {b5 / z:.3f} | {b1:,} | {b1 / z:.3f} | {bn:,} | {bn / z:.3f} |")
        emit("")

        # 5.
        if args.real:
            emit("#### 5. Real release packs with other dictionary parameters", "",
                 "`vfs_orm.pack.pack(compression='zstd', compression_level=19, "
                 "dictionary=True)`, the training swapped in (today's: `vfs-orm pack` itself). "
                 "Pack times are one run each; the other dictionaries are those 1. trained and "
                 "kept, so their pack time leaves the training out (its time is 1.'s).", "",
                 "| dictionary | pack | vs zip | vs today | pack time | training |",
                 "|---|---:|---:|---:|---:|---:|")
            emit(f"| today ({today.trainer}, {rule // KiB} KiB) | {size0:,} | "
                 f"{size0 / z:.3f} | 1.000 | {secs0:.1f} s | included |")
            tried = sorted((r for r in results
                            if r.total(19, False) < today.total(19, False)),
                           key=lambda r: r.total(19, False))[:3]
            for r in tried:
                size1, secs1 = real_pack(tree.root, base / "r1.pack", r.trainer, r.size)
                emit(f"| {r.trainer}, {r.size // KiB} KiB | {size1:,} | {size1 / z:.3f} | "
                     f"{size1 / size0:.3f} | {secs1:.1f} s | {r.train_s:.1f} s |")
            emit("")
        emit(f"Load average at the end: {os.getloadavg()[0]:.1f}.")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
