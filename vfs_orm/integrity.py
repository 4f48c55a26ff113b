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

from vfs_orm import special, stored
from vfs_orm.backends import DB_ERRORS, translate
from vfs_orm.content import Damage
from vfs_orm.errors import CorruptionError, PatchBaseError
from vfs_orm.rows import ChunkRow

#: Chunks read per statement while streaming a file, and the most plain bytes one window may
#: hold (a file of 64 MiB chunks is read a chunk at a time, not 64 of them: 4 GiB).
WINDOW = 64
WINDOW_BYTES = 8 << 20
_ZEROS = bytes(1 << 20)


class HolesTooLarge(Exception):
    """A file whose holes (bytes never written, read as zeros) outweigh what is stored by far:
    hashing them would be work driven by a recorded size, not by stored bytes."""


def window(chunk_size: int) -> int:
    return max(1, min(WINDOW, WINDOW_BYTES // max(1, chunk_size)))


def file_digest(read_span: Callable[[int, int], list[ChunkRow]], size: int,
                chunk_size: int, hole_budget: int | None = None) -> bytes:
    """SHA-256 of a file of ``size`` bytes whose chunks ``read_span(first, stop)`` returns
    (missing chunks are holes: zeros). ``hole_budget``: the most hole bytes to hash before
    giving up (``HolesTooLarge``); None: no limit (a digest the caller asked for)."""
    h = hashlib.sha256()
    at = 0
    holes = 0

    def zeros(upto: int) -> None:
        nonlocal at, holes
        if hole_budget is not None and upto > at:
            holes += upto - at
            if holes > hole_budget:
                raise HolesTooLarge(holes)
        while at < upto:
            n = min(len(_ZEROS), upto - at)
            h.update(_ZEROS[:n])
            at += n

    step = window(chunk_size)
    for first in range(0, max(1, (size + chunk_size - 1) // chunk_size), step):
        for row in read_span(first, first + step):
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


#: Hole bytes the deep check hashes beyond what a file stores (sparse files are legitimate; a
#: recorded size of a terabyte over nothing stored is not worth a terabyte of hashing).
HOLE_ALLOWANCE = 256 << 20


def _small(rows: list[ChunkRow], size: int, cs: int) -> bytes:
    """The bytes of a small file (a link's target) from its chunk rows; holes are zeros."""
    out = bytearray(size)
    for row in rows:
        if row.idx is not None and row.data is not None and 0 <= row.idx * cs < size:
            at = row.idx * cs
            piece = bytes(row.data[:size - at])
            out[at:at + len(piece)] = piece
    return bytes(out)


def verify_files(repo: Any, raw: Any, bases_held: bool = False
                 ) -> tuple[list[str], list[str], int]:
    """Read every file of one database through ``repo`` (whose content rules verify), and
    compare each with its stored digest. The work is bounded by what is stored: a chunk
    decompresses to at most its file's chunk size, a window of chunks to ``WINDOW_BYTES``,
    and holes past ``HOLE_ALLOWANCE`` are not hashed (the file's digest is then left
    unverified, with a warning; its stored bytes are still checked).
    ``bases_held``: the database is a patch checked over its base, so a delta whose base is
    missing is a problem (otherwise a warning: it cannot be verified alone).
    Returns (problems, warnings, files verified)."""
    problems: list[str] = []
    warnings: list[str] = []
    verified = 0
    for ident, parent, name, size, cs, digest, mode in repo.files(raw):
        path = stored.path_of(parent, name) or f"inode {ident!r:.20}"
        if type(ident) is not int or type(size) is not int or type(cs) is not int \
                or not 0 <= size < stored.MAX_FILE_SIZE or not 0 < cs <= stored.MAX_CHUNK_SIZE:
            continue  # the structural check reports the row

        def span(first: int, stop: int, ident: int = ident, cs: int = cs) -> list[ChunkRow]:
            return list(repo.read_span(raw, ident, first, stop, cs))

        try:
            got = file_digest(span, size, cs, hole_budget=HOLE_ALLOWANCE)
        except HolesTooLarge as exc:
            warnings.append(f"{path}: digest not verified: more than {exc.args[0]:,} bytes of "
                            f"holes (never written) in a recorded size of {size:,}")
            continue
        except Damage as exc:
            if isinstance(exc, PatchBaseError) and not bases_held:
                warnings.append(f"{path}: not verified: a delta against a file this stack "
                                f"does not hold (check a patch over the tree it was made from)")
            else:  # over its own base, a delta whose base is missing names forged content
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
        elif type(mode) is int and special.kind_of(mode) == special.LINK and size < special.PATH_MAX:
            try:  # a target no symlink(2) could have made (a NUL in it): as readlink says
                special.link_target(path, _small(span(0, -(-size // cs)), size, cs))
            except CorruptionError as exc:
                problems.append(f"{path}: {exc.strerror}")
    return problems, warnings, verified


def tree_diff(old: Any, new: Any) -> list[tuple[str, str]]:
    """(mark, path) of every file that differs between two VFS views, by type and digest: "+"
    only in ``new``, "-" only in ``old``, "M" different content or type; sorted by path."""
    def files(fs: Any) -> set[str]:
        return {(top.rstrip("/") + "/" + f) for top, _, names in fs.walk("/") for f in names}

    def typed(fs: Any) -> Callable[[str], tuple[int, str]]:
        # A link and a file holding its target differ (format 0010).
        return lambda p: (special.kind_of(fs.stat(p).st_mode), fs.digest(p))

    return changes(files(old), files(new), typed(old), typed(new))


def changes(old: set[str], new: set[str], old_digest: Callable[[str], Any],
            new_digest: Callable[[str], Any]) -> list[tuple[str, str]]:
    """(mark, path) between two sets of file paths, the files in both compared by their
    digests (see ``tree_diff``)."""
    out = [("-", p) for p in old - new] + [("+", p) for p in new - old]
    out += [("M", p) for p in old & new if old_digest(p) != new_digest(p)]
    return sorted(out, key=lambda c: c[1])


__all__ = ["changes", "file_digest", "tree_diff", "verify_files"]
