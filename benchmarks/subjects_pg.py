"""The PostgreSQL subjects: vfs_orm on a PostgreSQL tree, and raw psycopg 3 on the same server
and socket (the physical limit of this storage: prepared statements, binary results, one
statement per operation, COPY for bulk ingest).

They take part when a server is there: ``VFS_ORM_PG_URL``, or a throwaway cluster that
``benchmarks/conftest.py`` starts from the server binaries (``tests/pgserver.py``).
"""

from __future__ import annotations

import io
import random
import re
import time
from pathlib import Path
from typing import Any

from subjects import Subject, VfsOrm

#: The server's URL (set by conftest.py when a server is up).
SERVER: dict[str, str] = {}


def _tree(path: Path, suffix: str = "") -> str:
    """A tree (schema) name for a store path: lower-case identifier, unique per store."""
    return ("b_" + re.sub(r"[^a-z0-9_]", "_", path.name.lower()) + suffix)[:63]


def _dsn() -> str:
    return SERVER["url"].replace("postgresql+psycopg://", "postgresql://", 1)


class VfsOrmPG(VfsOrm):
    """vfs_orm on a tree of a PostgreSQL server, through the same API as on SQLite."""

    name = "vfs_orm_pg"

    def save(self, store, files):
        """A batch on PostgreSQL is SERIALIZABLE: a conflict with another writer (W11's
        writers all creating /save at their first save) aborts it whole with BusyError, and
        the caller runs it again (docs/guide/postgresql-scale.md)."""
        from vfs_orm import BusyError
        while True:
            try:
                return super().save(store, files)
            except BusyError:
                time.sleep(random.random() * 0.01)

    def create(self, path: Path) -> Any:
        from vfs_orm import VFS
        return VFS(SERVER["url"], tree=_tree(path))

    def make_stack(self, root, layers):
        from vfs_orm import VFS
        trees = [_tree(root, f"_{k}") for k in range(len(layers))]
        for tree, files in zip(trees, layers):
            with VFS(SERVER["url"], tree=tree) as fs:
                fs.write_files(files)
        top = VFS(SERVER["url"], tree=trees[0])
        for k, tree in enumerate(trees[1:], start=1):
            top.add_underlay(SERVER["url"], tree=tree, priority=len(trees) - k, name=f"l{k}")
        return top


class RawPG(Subject):
    """Raw psycopg 3: one schema per store with a ``files`` table (path primary key, whole
    content) and a ``chunks`` table (64 KiB pieces of big files, stored as is so that
    ``substring()`` reads only what it needs). Statements are prepared on first use and
    results come back in binary; bulk ingest is COPY."""

    name = "raw_pg"
    CHUNK = 65536

    def create(self, path: Path) -> Any:
        return self._store(_tree(path, "_raw"))

    def open(self, path: Path) -> Any:
        """An existing store (W11's writer processes: no DDL racing between them)."""
        import psycopg
        con = psycopg.connect(_dsn(), autocommit=True, prepare_threshold=0)
        con.execute(f'SET search_path TO "{_tree(path, "_raw")}"')
        return con

    def _store(self, schema: str) -> Any:
        import psycopg
        con = psycopg.connect(_dsn(), autocommit=True, prepare_threshold=0)
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(f'SET search_path TO "{schema}"')
        con.execute('CREATE TABLE IF NOT EXISTS files (path text COLLATE "C" PRIMARY KEY, '
                    'data bytea)')
        con.execute('CREATE TABLE IF NOT EXISTS chunks (path text COLLATE "C", idx int, '
                    'data bytea, PRIMARY KEY (path, idx))')
        con.execute("ALTER TABLE files ALTER COLUMN data SET STORAGE EXTERNAL")
        con.execute("ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL")
        return con

    def close(self, con):
        con.close()

    def _one(self, con, sql, params):
        return con.cursor(binary=True).execute(sql, params).fetchone()

    def ingest(self, con, files):
        with con.transaction(), con.cursor().copy("COPY files (path, data) FROM STDIN") as cp:
            for p, data in files:
                cp.write_row((p, data))

    def read(self, con, path):
        return self._one(con, "SELECT data FROM files WHERE path = %s", (path,))[0]

    def write_big(self, con, path, pieces):
        with con.transaction():
            cur = con.cursor()
            idx, buf = 0, bytearray()
            for piece in pieces:
                buf += piece
                while len(buf) >= self.CHUNK:
                    cur.execute("INSERT INTO chunks VALUES (%s, %s, %s) ON CONFLICT (path, idx) "
                                "DO UPDATE SET data = excluded.data",
                                (path, idx, bytes(buf[:self.CHUNK])))
                    del buf[:self.CHUNK]
                    idx += 1
            if buf:
                cur.execute("INSERT INTO chunks VALUES (%s, %s, %s) ON CONFLICT (path, idx) "
                            "DO UPDATE SET data = excluded.data", (path, idx, bytes(buf)))

    def open_read(self, con, path):
        return _RawPGReader(con, path, self.CHUNK)

    def listdir(self, con, path):
        """Direct children from the path index: one range query per subdirectory skipped
        (the raw SQLite subject's method)."""
        prefix = path.rstrip("/") + "/"
        lo, hi = prefix, prefix[:-1] + "0"
        names: list[str] = []
        cur = con.cursor(binary=True)
        while True:
            found_subdir = False
            rows = cur.execute("SELECT path FROM files WHERE path > %s AND path < %s "
                               "ORDER BY path LIMIT 256", (lo, hi)).fetchall()
            for (p,) in rows:
                rest = p[len(prefix):]
                cut = rest.find("/")
                if cut < 0:
                    names.append(rest)
                    continue
                names.append(rest[:cut])
                lo = prefix + rest[:cut] + "0"
                found_subdir = True
                break
            if not found_subdir:
                if len(rows) < 256:
                    return names
                lo = rows[-1][0]  # a full batch of entries: the next batch after it

    def glob(self, con, pattern):
        regex = "^" + re.escape(pattern).replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$"
        return [r[0] for r in con.cursor(binary=True).execute(
            "SELECT path FROM files WHERE path ~ %s", (regex,)).fetchall()]

    def exists(self, con, path):
        return self._one(con, "SELECT 1 FROM files WHERE path = %s", (path,)) is not None

    def stat_size(self, con, path):
        return self._one(con, "SELECT octet_length(data) FROM files WHERE path = %s",
                         (path,))[0]

    def save(self, con, files):
        with con.transaction():
            con.cursor().executemany(
                "INSERT INTO files VALUES (%s, %s) ON CONFLICT (path) DO UPDATE SET "
                "data = excluded.data", files)

    def make_stack(self, root, layers):
        """Layer k is schema k of the same database; a read is one UNION ALL ... ORDER BY
        prio LIMIT 1 over all of them."""
        schemas = [_tree(root, f"_raw{k}") for k in range(len(layers))]
        for schema, files in zip(schemas, layers):
            con = self._store(schema)
            self.ingest(con, files)
            con.close()
        import psycopg
        con = psycopg.connect(_dsn(), autocommit=True, prepare_threshold=0)
        sql = " UNION ALL ".join(
            f'SELECT {k} AS prio, data FROM "{s}".files WHERE path = %(p)s'
            for k, s in enumerate(schemas)) + " ORDER BY prio LIMIT 1"
        return con, sql

    def read_stack(self, stack, path):
        con, sql = stack
        row = con.cursor(binary=True).execute(sql, {"p": path}).fetchone()
        if row is None:
            raise FileNotFoundError(path)
        return row[1]

    def close_stack(self, stack):
        stack[0].close()


class _RawPGReader(io.RawIOBase):
    """Seekable reader over raw 64 KiB chunks: each read slices its chunk in SQL."""

    def __init__(self, con, path, chunk):
        self.con, self.path, self.cs, self.pos = con, path, chunk, 0
        self.cur = con.cursor(binary=True)
        row = self.cur.execute("SELECT max(idx), count(*) FROM chunks WHERE path = %s",
                               (path,)).fetchone()
        last = row[0]
        self.size = 0 if last is None else last * chunk + self.cur.execute(
            "SELECT octet_length(data) FROM chunks WHERE path = %s AND idx = %s",
            (path, last)).fetchone()[0]

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.size + pos)
        return self.pos

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.size - self.pos
        out = bytearray()
        while n > 0 and self.pos < self.size:
            idx, off = divmod(self.pos, self.cs)
            take = min(n, self.cs - off)
            piece = self.cur.execute(
                "SELECT substring(data FROM %s FOR %s) FROM chunks WHERE path = %s AND idx = %s",
                (off + 1, take, self.path, idx)).fetchone()[0]
            out += piece
            self.pos += len(piece)
            n -= len(piece)
        return bytes(out)

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def pg_subjects() -> list[Subject]:
    return [VfsOrmPG(), RawPG()]
