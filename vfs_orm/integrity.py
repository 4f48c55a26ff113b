"""Verified content: a file's SHA-256 from its stored chunks, and the deep check.

A digest is normally computed while the file is written (``tree``, ``_io``); what is here
computes it from the stored chunks, streaming a window of chunks at a time, for files written
in place since (their digest is then unknown) and for ``check(deep=True)``, which re-reads
everything: every chunk's block checksums, every compressed value's decompression, every file's
digest against the one stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from vfs_orm import stored
from vfs_orm.backends import DB_ERRORS, translate
from vfs_orm.content import Damage
from vfs_orm.errors import CorruptionError
from vfs_orm.rows import ChunkRow

#: Chunks read per statement while streaming a file.
WINDOW = 64
_ZEROS = bytes(1 << 20)


def file_digest(read_span: Callable[[int, int], list[ChunkRow]], size: int,
                chunk_size: int) -> bytes:
    """SHA-256 of a file of ``size`` bytes whose chunks ``read_span(first, stop)`` returns
    (missing chunks are holes: zeros)."""
    h = hashlib.sha256()
    at = 0

    def zeros(upto: int) -> None:
        nonlocal at
        while at < upto:
            n = min(len(_ZEROS), upto - at)
            h.update(_ZEROS[:n])
            at += n

    for first in range(0, max(1, (size + chunk_size - 1) // chunk_size), WINDOW):
        for row in read_span(first, first + WINDOW):
            if row.idx is None or row.data is None:
                continue
            start = row.idx * chunk_size
            if start < at or start >= size:
                continue
            zeros(start)
            piece = row.data[:min(chunk_size, size - start)]
            h.update(piece)
            at += len(piece)
    zeros(size)
    return h.digest()


def verify_files(repo: Any, raw: Any) -> tuple[list[str], int]:
    """Read every file of one database through ``repo`` (whose content rules verify), and
    compare each with its stored digest. Returns (problems, files verified)."""
    problems: list[str] = []
    verified = 0
    for ident, parent, name, size, cs, digest in repo.files(raw):
        path = stored.path_of(parent, name) or f"inode {ident!r:.20}"
        if type(ident) is not int or type(size) is not int or type(cs) is not int \
                or not 0 <= size < stored.MAX_FILE_SIZE or not 0 < cs <= stored.MAX_CHUNK_SIZE:
            continue  # the structural check reports the row

        def span(first: int, stop: int, ident: int = ident) -> list[ChunkRow]:
            return list(repo.read_span(raw, ident, first, stop))

        try:
            got = file_digest(span, size, cs)
        except Damage as exc:
            problems.append(f"{path}: {exc.in_file(path, cs).strerror}")
            continue
        except CorruptionError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        except DB_ERRORS as exc:  # e.g. content stored as text that is not UTF-8
            problems.append(f"{path}: unreadable content ({translate(exc, path).strerror})")
            continue
        verified += 1
        if digest is not None and digest != got:
            problems.append(f"{path}: content does not match its SHA-256 digest")
    return problems, verified


def tree_diff(old: Any, new: Any) -> list[tuple[str, str]]:
    """(mark, path) of every file that differs between two VFS views, by digest: "+" only in
    ``new``, "-" only in ``old``, "M" different content; sorted by path."""
    def files(fs: Any) -> set[str]:
        return {(top.rstrip("/") + "/" + f) for top, _, names in fs.walk("/") for f in names}

    a, b = files(old), files(new)
    out = [("-", p) for p in a - b] + [("+", p) for p in b - a]
    out += [("M", p) for p in a & b if old.digest(p) != new.digest(p)]
    return sorted(out, key=lambda c: c[1])


__all__ = ["file_digest", "tree_diff", "verify_files"]
