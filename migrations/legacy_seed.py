"""Upgrade of the seed library's files (stella-sqlite-vfs 1.0.0) to the vfs_orm format.

The seed kept ``inodes(id, path UNIQUE, is_directory, created_at TEXT, modified_at TEXT,
size)`` and ``chunks(inode_id, chunk_index, data)``, no version table, and never recorded its
chunk size: chunk ``k`` of a file starts at byte ``k * chunk_size`` of whatever chunk size the
writing session used, and a database can hold files of several sessions with different sizes.

So the chunk size is inferred per file from the data, never assumed:
- the database-wide guess is the most common length of chunks that are not a file's last one
  (those are full in anything written sequentially);
- a file keeps the guess only if it is consistent with its own chunks (no chunk longer than
  it, every chunk ``k`` ending within the file's size, the size within the last chunk);
- otherwise the file's own evidence decides (the length of its non-last chunks, or the
  position of its last chunk), the smallest consistent value winning.

Timestamps were naive local ISO strings; they become nanoseconds since the epoch, exactly
(microseconds included). Directories, empty files, sparse files and renamed entries come over
as they are. Runs inside the caller's transaction (see ``migrate`` in
vfs_orm/backends/sqlite/schema.py), after the current schema was created; the legacy tables are
dropped at the end.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

CHUNK_SPAN = 1 << 32
DEFAULT = 65536


def _ns(iso: str | None) -> int:
    if not iso:
        return 0
    dt = datetime.fromisoformat(iso)
    return int(dt.replace(microsecond=0).timestamp()) * 10**9 + dt.microsecond * 1000


def _split(path: str) -> tuple[str, str]:
    if path == "/":
        return "", ""
    k = path.rfind("/")
    return (path[:k] or "/"), path[k + 1:]


def _consistent(cs: int, size: int, chunks: list[tuple[int, int]]) -> bool:
    """chunks: (index, length) of one file."""
    if cs <= 0:
        return False
    last = max(k for k, _ in chunks)
    for k, n in chunks:
        if n > cs or k * cs + n > size:
            return False
    return size <= (last + 1) * cs


def infer_chunk_sizes(files: dict[int, tuple[int, list[tuple[int, int]]]]) -> tuple[int, dict[int, int]]:
    """files: inode id -> (size, [(chunk index, length)]). Returns (database-wide chunk size,
    {inode id: chunk size})."""
    full = Counter()
    longest = 0
    for _size, chunks in files.values():
        if not chunks:
            continue
        last = max(k for k, _ in chunks)
        longest = max(longest, max(n for _, n in chunks))
        for k, n in chunks:
            if k < last and n > 0:
                full[n] += 1
    # With no full chunk anywhere (every file fits in one chunk), any size at least as long as
    # the longest chunk reads everything right: take 64 KiB or that length.
    guess = full.most_common(1)[0][0] if full else max(longest, DEFAULT)
    per_file: dict[int, int] = {}
    for inode, (size, chunks) in files.items():
        if not chunks:
            per_file[inode] = guess
            continue
        if _consistent(guess, size, chunks):
            per_file[inode] = guess
            continue
        last_k, last_n = max(chunks)
        candidates = {n for k, n in chunks if k < last_k}
        if last_k:
            if (size - last_n) % last_k == 0:  # the file ends exactly at its last chunk
                candidates.add((size - last_n) // last_k)
            candidates.add(-(-size // (last_k + 1)))
        candidates.add(max(n for _, n in chunks))
        ok = sorted(c for c in candidates if _consistent(c, size, chunks))
        if not ok:
            # A sparse tail made by truncate-extend: drop the "size within the last chunk" rule.
            ok = sorted(c for c in candidates if c > 0 and all(
                n <= c and k * c + n <= size for k, n in chunks))
        per_file[inode] = ok[0] if ok else guess
    return guess, per_file


#: The format revision whose tables ``upgrade`` writes into (later revisions take it on).
TARGET_REVISION = "0003"


def upgrade(raw: Any, create_schema: Callable[[], None]) -> None:
    """Convert a seed database in place. ``raw`` is the sqlite3 connection, inside the
    caller's write transaction with foreign keys off; ``create_schema`` creates the tables of
    ``TARGET_REVISION``."""
    inodes = raw.execute(
        "SELECT id, path, is_directory, created_at, modified_at, size FROM inodes").fetchall()
    chunk_rows = raw.execute("SELECT inode_id, chunk_index, length(data) FROM chunks").fetchall()
    per_inode: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for inode_id, idx, n in chunk_rows:
        per_inode[inode_id].append((idx, n or 0))
    files = {i: (size or 0, per_inode.get(i, [])) for i, _, is_dir, _, _, size in inodes
             if not is_dir}
    guess, per_file = infer_chunk_sizes(files)

    create_schema()

    root = [r for r in inodes if r[1] == "/"]
    if root:
        _, _, _, c, m, _ = root[0]
        raw.execute("UPDATE vfs_inodes SET ctime_ns = ?, mtime_ns = ? WHERE parent = '' AND "
                    "name = ''", (_ns(c), _ns(m)))
    raw.execute("CREATE TEMP TABLE vfs_legacy_map(old INTEGER PRIMARY KEY, new INTEGER)")
    # Parents first, so that every entry's directory exists before it.
    for old_id, path, is_dir, created, modified, size in sorted(
            (r for r in inodes if r[1] != "/"), key=lambda r: (r[1].count("/"), r[1])):
        parent, name = _split(path)
        kind = 2 if is_dir else 1
        mode = 0o40755 if is_dir else 0o100644
        cs = 0 if is_dir else per_file[old_id]
        cur = raw.execute(
            "INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, ctime_ns, "
            "mtime_ns, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (parent, name, kind, mode, 0 if is_dir else (size or 0), cs, _ns(created),
             _ns(modified)))
        raw.execute("INSERT INTO vfs_legacy_map VALUES (?, ?)", (old_id, cur.lastrowid))
    # Every byte moves inside SQLite, in one statement.
    raw.execute(
        f"INSERT INTO vfs_chunks (id, inode_id, idx, data) "
        f"SELECT m.new * {CHUNK_SPAN} + c.chunk_index, m.new, c.chunk_index, c.data "
        f"FROM chunks AS c JOIN vfs_legacy_map AS m ON m.old = c.inode_id "
        f"JOIN inodes AS i ON i.id = c.inode_id WHERE i.is_directory = 0")
    raw.execute("DROP TABLE vfs_legacy_map")
    now = int(datetime.now().timestamp() * 1e9)
    created = _ns(root[0][3]) if root else now
    raw.execute(
        "INSERT INTO vfs_layer_manifests (role, uuid, name, version, description, created_ns, "
        "modified_ns, chunk_size) VALUES ('self', ?, NULL, NULL, ?, ?, ?, ?)",
        (str(uuid.uuid4()), "upgraded from the seed library's format", created, now, guess))
    raw.execute("DROP TABLE chunks")
    raw.execute("DROP TABLE inodes")
