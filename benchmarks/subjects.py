"""The systems compared side by side: vfs_orm, raw sqlite3 (the physical limit of this
storage), the OS file system, zipfile, and the seed library (stella-sqlite-vfs 1.0.0).

Each subject implements the same small interface over a store living on disk. A method a
subject cannot do raises ``NotImplementedError`` and the benchmark reports "n/a".
"""

from __future__ import annotations

import fnmatch
import glob as _glob
import io
import os
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED_DIR = HERE / ".seed"


class Subject:
    name = "?"
    only: tuple[str, ...] | None = None  # workloads this subject takes part in (None: all)
    cannot: tuple[str, ...] = ()  # workloads it has no way to do (reported as n/a)
    # A subject too slow for full-size runs measures a smaller sample (a rate stays a rate):
    # everywhere (slow), or in the workloads named in slow_in.
    slow = False
    slow_in: tuple[str, ...] = ()

    def create(self, path: Path) -> Any: raise NotImplementedError
    def open(self, path: Path) -> Any: return self.create(path)
    def close(self, store: Any) -> None: pass
    def ingest(self, store: Any, files: Iterable[tuple[str, bytes]]) -> None: raise NotImplementedError
    def read(self, store: Any, path: str) -> bytes: raise NotImplementedError
    def write_big(self, store: Any, path: str, pieces: Iterable[bytes]) -> None: raise NotImplementedError
    def open_read(self, store: Any, path: str) -> Any: raise NotImplementedError
    # WS: a sequential stream (a texture or a track played from start to end).
    def open_stream(self, store: Any, path: str) -> Any: return self.open_read(store, path)
    def listdir(self, store: Any, path: str) -> list[str]: raise NotImplementedError
    def glob(self, store: Any, pattern: str) -> list[str]: raise NotImplementedError
    def exists(self, store: Any, path: str) -> bool: raise NotImplementedError
    def stat_size(self, store: Any, path: str) -> int: raise NotImplementedError
    def save(self, store: Any, files: list[tuple[str, bytes]]) -> None: raise NotImplementedError
    # W10: a stack of n databases, layer 0 on top; files[k] go into layer k.
    def make_stack(self, root: Path, layers: list[list[tuple[str, bytes]]]) -> Any: raise NotImplementedError
    def read_stack(self, stack: Any, path: str) -> bytes: raise NotImplementedError
    def close_stack(self, stack: Any) -> None: pass


# ------------------------------------------------------------------------------------------
class VfsOrm(Subject):
    name = "vfs_orm"

    def create(self, path: Path) -> Any:
        from vfs_orm import VFS
        return VFS(str(path))

    def close(self, store: Any) -> None:
        store.close()

    def ingest(self, store, files):
        store.write_files(files)  # the bulk API: one transaction, one executemany

    def read(self, store, path):
        return store.read_bytes(path)

    def write_big(self, store, path, pieces):
        with store.open(path, "wb") as f:
            for piece in pieces:
                f.write(piece)

    def open_read(self, store, path):
        return store.open(path, "rb")

    def listdir(self, store, path):
        return store.listdir(path)

    def glob(self, store, pattern):
        return store.glob(pattern)

    def exists(self, store, path):
        return store.exists(path)

    def stat_size(self, store, path):
        return store.stat(path).st_size

    def save(self, store, files):
        with store.atomic_batch():
            for p, data in files:
                store.write_bytes(p, data)

    def make_stack(self, root, layers):
        paths = []
        for k, files in enumerate(layers):
            path = root / f"layer{k}.vfs"
            fs = self.create(path)
            self.ingest(fs, files)
            fs.close()
            paths.append(path)
        top = self.open(paths[0])
        for k, path in enumerate(paths[1:], start=1):
            top.add_underlay(str(path), priority=len(paths) - k, name=f"layer{k}")
        return top

    def read_stack(self, stack, path):
        return stack.read_bytes(path)

    def close_stack(self, stack):
        stack.close()


class VfsOrmLoop(VfsOrm):
    """W1 written the other way a user might: write_bytes per file inside atomic_batch()."""

    name = "vfs_orm_loop"
    only = ("w1",)

    def ingest(self, store, files):
        with store.atomic_batch():
            for p, data in files:
                store.write_bytes(p, data)


class VfsOrm64k(VfsOrm):
    """vfs_orm on 64 KiB SQLite pages (the default is 4 KiB): for the page-size decision."""

    name = "vfs_orm_64k"
    only = ("w2", "w4", "w5", "w9")

    def create(self, path: Path) -> Any:
        from vfs_orm import VFS
        return VFS(str(path), page_size=65536)


class VfsOrmUnverified(VfsOrm):
    """vfs_orm reading without checking block CRCs (``verify=False``): what verification
    costs on the read workloads."""

    name = "vfs_orm_unverified"
    only = ("w2", "w4", "w5", "ws")

    def create(self, path: Path) -> Any:
        from vfs_orm import VFS
        return VFS(str(path), verify=False)


# ------------------------------------------------------------------------------------------
class RawSqlite(Subject):
    """Minimal schema, WAL, one prepared statement per operation, bulk writes in one
    transaction: what any library on this storage can at best approach."""

    name = "raw_sqlite"
    CHUNK = 65536

    def create(self, path: Path) -> Any:
        con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, data BLOB)")
        con.execute("CREATE TABLE IF NOT EXISTS chunks(path TEXT, idx INTEGER, data BLOB, "
                    "PRIMARY KEY(path, idx))")
        return con

    def close(self, store):
        store.close()

    def ingest(self, con, files):
        con.execute("BEGIN")
        con.executemany("INSERT OR REPLACE INTO files VALUES(?, ?)", files)
        con.execute("COMMIT")

    def read(self, con, path):
        return con.execute("SELECT data FROM files WHERE path = ?", (path,)).fetchone()[0]

    def write_big(self, con, path, pieces):
        con.execute("BEGIN")
        idx, buf = 0, bytearray()
        for piece in pieces:
            buf += piece
            while len(buf) >= self.CHUNK:
                con.execute("INSERT OR REPLACE INTO chunks VALUES(?, ?, ?)",
                            (path, idx, bytes(buf[:self.CHUNK])))
                del buf[:self.CHUNK]
                idx += 1
        if buf:
            con.execute("INSERT OR REPLACE INTO chunks VALUES(?, ?, ?)", (path, idx, bytes(buf)))
        con.execute("COMMIT")

    def open_read(self, con, path):
        return _RawChunkReader(con, path, self.CHUNK)

    def open_stream(self, con, path):
        return _RawStreamReader(con, path)

    def listdir(self, con, path):
        """Direct children from the path index: one range query, skipping each
        subdirectory's subtree with a new range query (stays flat as the store grows)."""
        prefix = path.rstrip("/") + "/"
        lo, hi = prefix, prefix[:-1] + "0"
        names: list[str] = []
        while True:
            found_subdir = False
            for (p,) in con.execute("SELECT path FROM files WHERE path > ? AND path < ?",
                                    (lo, hi)):
                rest = p[len(prefix):]
                cut = rest.find("/")
                if cut < 0:
                    names.append(rest)
                    continue
                names.append(rest[:cut])
                lo = prefix + rest[:cut] + "0"  # skip this subdirectory's subtree
                found_subdir = True
                break
            if not found_subdir:
                return names

    def glob(self, con, pattern):
        return [r[0] for r in con.execute("SELECT path FROM files WHERE path GLOB ?", (pattern,))]

    def exists(self, con, path):
        return con.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone() is not None

    def stat_size(self, con, path):
        return con.execute("SELECT length(data) FROM files WHERE path = ?", (path,)).fetchone()[0]

    def save(self, con, files):
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT OR REPLACE INTO files VALUES(?, ?)", files)
        con.execute("COMMIT")

    def make_stack(self, root, layers):
        """Layer 0 is main; the rest ATTACHed, 10 per connection (SQLite's limit here); a
        read is one UNION ALL ... ORDER BY prio LIMIT 1 per connection, in priority order."""
        paths = []
        for k, files in enumerate(layers):
            con = self.create(root / f"raw{k}.db")
            self.ingest(con, files)
            con.close()
            paths.append(root / f"raw{k}.db")
        conns = []
        groups = [paths[:11]] + [paths[i:i + 10] for i in range(11, len(paths), 10)]
        prio = 0
        for g, members in enumerate(groups):
            if g == 0:
                con = sqlite3.connect(str(members[0]), isolation_level=None)
                names, attached = ["main"], members[1:]
            else:
                con = sqlite3.connect(":memory:", isolation_level=None)
                names, attached = [], members
            for j, p in enumerate(attached):
                con.execute(f"ATTACH DATABASE ? AS l{j}", (f"file:{p}?mode=ro",))
                names.append(f"l{j}")
            sql = " UNION ALL ".join(
                f"SELECT {prio + j} AS prio, data FROM {n}.files WHERE path = ?1"
                for j, n in enumerate(names)) + " ORDER BY prio LIMIT 1"
            prio += len(names)
            conns.append((con, sql))
        return conns

    def read_stack(self, conns, path):
        for con, sql in conns:
            row = con.execute(sql, (path,)).fetchone()
            if row is not None:
                return row[1]
        raise FileNotFoundError(path)

    def close_stack(self, conns):
        for con, _ in conns:
            con.close()


class RawSqliteIncrementalVacuum(RawSqlite):
    """Raw sqlite3 with the one file setting vfs_orm adds (incremental auto-vacuum, whose
    pointer-map pages spare random reads the overflow-chain walk): shows how much of W5's
    margin is that setting and how much is left to vfs_orm's own code."""

    name = "raw_sqlite_iav"
    only = ("w5",)

    def create(self, path: Path) -> Any:
        con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before the first table, like vfs_orm
        con.close()
        return super().create(path)


class RawSqliteLoop(RawSqlite):
    """W1 written the way vfs_orm_loop writes it: one INSERT per file in one transaction (the
    like-for-like baseline of a per-file API called in a loop)."""

    name = "raw_sqlite_loop"
    only = ("w1",)

    def ingest(self, con, files):
        con.execute("BEGIN")
        for p, data in files:
            con.execute("INSERT OR REPLACE INTO files VALUES(?, ?)", (p, data))
        con.execute("COMMIT")


class RawReader(Subject):
    """WS only: vfs_orm writes the store (the same file vfs_orm streams), raw sqlite3 reads it:
    the file's chunks in order, one BLOB each (the physical limit of reading THAT file)."""

    name = "raw_reader"
    only = ("ws",)

    def create(self, path: Path) -> Any:
        from vfs_orm import VFS
        return {"vfs": VFS(str(path)), "path": str(path)}

    def write_big(self, store, path, pieces):
        with store["vfs"].open(path, "wb") as f:
            for piece in pieces:
                f.write(piece)
        store["vfs"].close()

    def close(self, store):
        if "con" in store:
            store["con"].close()

    def open_stream(self, store, path):
        con = store.get("con")
        if con is None:
            con = store["con"] = sqlite3.connect(f"file:{store['path']}?mode=ro", uri=True)
        parent, name = path.rsplit("/", 1)
        (inode,) = con.execute("SELECT id FROM vfs_inodes WHERE parent = ? AND name = ?",
                               (parent or "/", name)).fetchone()
        return _RawStreamReader(con, rowids=[r[0] for r in con.execute(
            "SELECT id FROM vfs_chunks WHERE id >= ? AND id < ? ORDER BY id",
            (inode << 32, (inode + 1) << 32))], table="vfs_chunks")


class RawReaderMmap(RawReader):
    """The raw reader with the one connection setting vfs_orm adds (memory-mapped reads):
    shows how much of WS's margin is that setting and how much is vfs_orm's own code."""

    name = "raw_reader_mmap"

    def open_stream(self, store, path):
        if "con" not in store:
            store["con"] = sqlite3.connect(f"file:{store['path']}?mode=ro", uri=True)
            store["con"].execute(f"PRAGMA mmap_size={1 << 31}")
        return super().open_stream(store, path)


class _RawStreamReader(io.RawIOBase):
    """The straightforward raw streaming reader: the file's chunks in order, each through
    incremental BLOB I/O, every read returning the bytes asked for (a short read only at a
    chunk's end)."""

    def __init__(self, con, path=None, rowids=None, table="chunks"):
        self.con, self.table = con, table
        self.rowids = rowids if rowids is not None else [r[0] for r in con.execute(
            "SELECT rowid FROM chunks WHERE path = ? ORDER BY idx", (path,))]
        self.k, self.blob = 0, None

    def readable(self):
        return True

    def read(self, n=-1):
        while True:
            if self.blob is None:
                if self.k >= len(self.rowids):
                    return b""
                self.blob = self.con.blobopen(self.table, "data", self.rowids[self.k],
                                              readonly=True)
                self.k += 1
            data = self.blob.read(n)
            if data:
                return data
            self.blob.close()
            self.blob = None

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self):
        if self.blob is not None:
            self.blob.close()
            self.blob = None
        super().close()


class _RawChunkReader:
    """Seekable reader over raw 64 KiB chunks with incremental BLOB I/O."""

    def __init__(self, con, path, chunk):
        self.con, self.path, self.cs, self.pos = con, path, chunk, 0
        self.rowids = dict(con.execute("SELECT idx, rowid FROM chunks WHERE path = ?", (path,)))
        self.size = 0
        if self.rowids:
            last = max(self.rowids)
            with con.blobopen("chunks", "data", self.rowids[last], readonly=True) as b:
                self.size = last * chunk + len(b)

    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.size + pos)
        return self.pos

    def read(self, n=-1):
        if n < 0:
            n = self.size - self.pos
        out = bytearray()
        while n > 0 and self.pos < self.size:
            idx, off = divmod(self.pos, self.cs)
            take = min(n, self.cs - off)
            with self.con.blobopen("chunks", "data", self.rowids[idx], readonly=True) as b:
                b.seek(off)
                piece = b.read(take)
            out += piece
            self.pos += len(piece)
            n -= len(piece)
        return bytes(out)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass

    def close(self):
        pass


# ------------------------------------------------------------------------------------------
class OsFs(Subject):
    name = "os_fs"
    cannot = ("w10", "w11")  # no layers; W11 is for databases

    def create(self, path: Path) -> Any:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _p(self, root, p):
        return str(root) + p

    def ingest(self, root, files):
        made = set()
        for p, data in files:
            full = self._p(root, p)
            d = os.path.dirname(full)
            if d not in made:
                os.makedirs(d, exist_ok=True)
                made.add(d)
            with open(full, "wb") as f:
                f.write(data)

    def read(self, root, path):
        with open(self._p(root, path), "rb") as f:
            return f.read()

    def write_big(self, root, path, pieces):
        full = self._p(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            for piece in pieces:
                f.write(piece)

    def open_read(self, root, path):
        return open(self._p(root, path), "rb")

    def listdir(self, root, path):
        return os.listdir(self._p(root, path))

    def glob(self, root, pattern):
        n = len(str(root))
        return [p[n:] for p in _glob.glob(self._p(root, pattern))]

    def exists(self, root, path):
        return os.path.exists(self._p(root, path))

    def stat_size(self, root, path):
        return os.stat(self._p(root, path)).st_size

    def save(self, root, files):
        """Durable atomic save the way careful programs do it on a file system: write a temp
        file, fsync, rename over the old one, fsync the directory. (Atomic per file only.)"""
        dirs = set()
        for p, data in files:
            full = self._p(root, p)
            d = os.path.dirname(full)
            os.makedirs(d, exist_ok=True)
            tmp = full + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
            dirs.add(d)
        for d in dirs:
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


# ------------------------------------------------------------------------------------------
class ZipFs(Subject):
    """ZIP_STORED archive: written once, read many times."""

    name = "zipfile"
    cannot = ("w9", "w10", "w11")  # no in-place update of an archive, no layers
    slow_in = ("w5",)  # ~35 seeks/s: every seek re-reads the member from its start

    def create(self, path: Path) -> Any:
        return {"path": path, "zf": None}

    def _reader(self, store):
        if store["zf"] is None:
            store["zf"] = zipfile.ZipFile(store["path"], "r")
        return store["zf"]

    def close(self, store):
        if store["zf"] is not None:
            store["zf"].close()

    def ingest(self, store, files):
        with zipfile.ZipFile(store["path"], "w", zipfile.ZIP_STORED) as zf:
            for p, data in files:
                zf.writestr(p.lstrip("/"), data)

    def read(self, store, path):
        return self._reader(store).read(path.lstrip("/"))

    def write_big(self, store, path, pieces):
        with zipfile.ZipFile(store["path"], "w", zipfile.ZIP_STORED) as zf:
            with zf.open(path.lstrip("/"), "w", force_zip64=True) as f:
                for piece in pieces:
                    f.write(piece)

    def open_read(self, store, path):
        return self._reader(store).open(path.lstrip("/"))

    def listdir(self, store, path):
        prefix = path.strip("/") + "/" if path != "/" else ""
        names = set()
        for n in self._reader(store).namelist():
            if n.startswith(prefix):
                names.add(n[len(prefix):].split("/", 1)[0])
        return sorted(names)

    def glob(self, store, pattern):
        rx = fnmatch.translate(pattern.lstrip("/"))
        import re
        c = re.compile(rx)
        return ["/" + n for n in self._reader(store).namelist() if c.match(n)]

    def exists(self, store, path):
        try:
            self._reader(store).getinfo(path.lstrip("/"))
            return True
        except KeyError:
            return False

    def stat_size(self, store, path):
        return self._reader(store).getinfo(path.lstrip("/")).file_size


# ------------------------------------------------------------------------------------------
def fetch_seed() -> bool:
    """Make the seed library importable as ``lib.vfs``: fetched with ``pip download`` at
    benchmark time into benchmarks/.seed (never committed). False if it cannot be had."""
    pkg = SEED_DIR / "lib" / "vfs.py"
    if not pkg.exists():
        SEED_DIR.mkdir(exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "--python-version", "3.12", "--only-binary=:all:",
                            "-d", str(SEED_DIR), "stella-sqlite-vfs==1.0.0"],
                           check=True, capture_output=True, timeout=120)
            wheel = next(SEED_DIR.glob("stella_sqlite_vfs-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(SEED_DIR)
        except (subprocess.SubprocessError, StopIteration, OSError):
            return False
    if str(SEED_DIR) not in sys.path:
        sys.path.insert(0, str(SEED_DIR))
    try:
        import icontract  # noqa: F401 - the seed needs it; vfs_orm depends on it too
        import lib.vfs  # noqa: F401
    except Exception:
        return False
    return True


class Stella(Subject):
    """The seed library, through its own API."""

    name = "stella"
    cannot = ("w11",)  # one process at a time
    slow = True

    def create(self, path: Path) -> Any:
        from lib.vfs import VirtualFileSystem
        return VirtualFileSystem(str(path))

    def close(self, store):
        store.close()

    def ingest(self, store, files):
        with store.atomic_batch():
            for p, data in files:
                store.write_bytes(p, data)

    def build_fast(self, path: Path, files: list[tuple[str, bytes]]) -> None:
        """Fill a store in the seed's own documented schema with SQL (its own ingest runs at
        ~128 files/s): for benchmarks that measure reads and listings, not ingest."""
        store = self.create(path)
        store.close()
        con = sqlite3.connect(str(path))
        from datetime import datetime
        now = datetime.now().isoformat()
        dirs = set()
        for p, _ in files:
            parts = p.strip("/").split("/")[:-1]
            for k in range(1, len(parts) + 1):
                dirs.add("/" + "/".join(parts[:k]))
        con.executemany("INSERT OR IGNORE INTO inodes(path, is_directory, created_at, "
                        "modified_at, size) VALUES(?, 1, ?, ?, 0)",
                        [(d, now, now) for d in sorted(dirs)])
        for p, data in files:
            cur = con.execute("INSERT INTO inodes(path, is_directory, created_at, modified_at, "
                              "size) VALUES(?, 0, ?, ?, ?)", (p, now, now, len(data)))
            con.execute("INSERT INTO chunks(inode_id, chunk_index, data) VALUES(?, 0, ?)",
                        (cur.lastrowid, data))
        con.commit()
        con.close()

    def make_stack(self, root, layers):
        from lib.vfs import VirtualFileSystem
        vfss = []
        for k, files in enumerate(layers):
            path = root / f"stella{k}.db"
            self.build_fast(path, files)
            vfss.append(VirtualFileSystem(str(path)))
        top = vfss[0]
        for k, fs in enumerate(vfss[1:], start=1):
            top.add_underlay(fs, priority=len(vfss) - k, name=f"layer{k}")
        return top

    read_stack = VfsOrm.read_stack

    read = VfsOrm.read
    write_big = VfsOrm.write_big
    open_read = VfsOrm.open_read
    listdir = VfsOrm.listdir
    glob = VfsOrm.glob
    exists = VfsOrm.exists
    save = VfsOrm.save

    def stat_size(self, store, path):
        return store.stat(path).st_size


def all_subjects() -> list[Subject]:
    # vfs_orm and raw sqlite3 first, one after the other: the ratio that matters is theirs.
    subjects: list[Subject] = [VfsOrm(), RawSqlite(), RawReader(), VfsOrmLoop(), VfsOrm64k(),
                               VfsOrmUnverified(), RawSqliteIncrementalVacuum(), RawSqliteLoop(),
                               RawReaderMmap(), OsFs(), ZipFs()]
    if os.environ.get("VFS_BENCH_NO_SEED") != "1" and fetch_seed():
        subjects.append(Stella())
    return subjects
