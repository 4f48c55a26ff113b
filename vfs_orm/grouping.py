"""Solid packs (format 0013, ``VFS.group_small_files``): a database's small files stored in
groups, several files' bytes one after another in one value, each file's own value then a
16-byte slice of its group (``content.SLICE``).

Compressed one by one, each small file starts its zstd frame knowing nothing but the
dictionary; compressed together, a group's files find what they share (a solid archive, as
``tar --zstd`` is). And a row holding a value of a few hundred bytes leaves most of its page
empty; a slice leaves none. The price is on reads: a small file is read by decoding its
group (the stack keeps the groups it decoded, ``deltas.GROUP_KEEP_BYTES``, so a walk over a
pack decodes each group once). Made once, for release packs: files written later are stored
as before, and a group stays as long as the database holds it (``compact`` does not remove
one that no file reads any more).
"""

from __future__ import annotations

import hashlib
from typing import Any

from vfs_orm.backends import INLINE_MAX
from vfs_orm.content import INLINE, Content
from vfs_orm.content.codec import (
    GROUP_MAX,
    RAW,
    SLICE,
    SLICE_FORMAT,
    ZLIB,
    ZSTD,
    ZSTD_DICT,
    group_id,
    whole_sums,
)

#: A group is closed after the file that brings its plain bytes to this size (measured on
#: the standard library's modules: 16 KiB groups save a third of what 64 KiB ones do, 256 KiB
#: little more; see benchmarks/PACKS.md).
GROUP_SIZE = 64 << 10
#: The sizes ``group_small_files`` accepts: a group, its last file included, must stay within
#: what a reader decodes (``GROUP_MAX``) and what a dictionary compresses.
GROUP_SIZES = (4 << 10, GROUP_MAX // 2)
#: The files grouped: those whose bytes are in their row (at most ``INLINE_MAX``), compressed
#: (a file that did not compress would gain nothing).
_GROUPED = (ZLIB, ZSTD, ZSTD_DICT)


def group_small_values(manifest: Any, raw: Any, reader: Content, writer: Content,
                       size: int = GROUP_SIZE) -> tuple[int, int, int]:
    """Inside a write transaction: store the compressed inline values of the database in
    groups of about ``size`` plain bytes (in the order of their rows: files packed together
    lie together), compressed with ``writer``, wherever a group is smaller than its files'
    values. Returns (groups stored, files in them, bytes saved)."""
    groups = files = saved = 0
    members: list[tuple[int, bytes, int]] = []  # (row id, plain bytes, stored length)

    def close() -> None:
        nonlocal groups, files, saved
        if len(members) > 1:
            plain = b"".join(p for _, p, _ in members)
            digest = hashlib.sha256(plain).digest()
            ident = group_id(digest)
            data, codec, sums = writer.encode(plain, ident)
            before = sum(n for _, _, n in members)
            after = len(data) + len(sums) + SLICE_FORMAT.size * len(members)
            if codec != RAW and after < before:
                manifest.add_group(raw, ident, digest, codec, sums, data)
                out, at = [], 0
                for k, p, _ in members:
                    out.append((SLICE, whole_sums(p, INLINE), SLICE_FORMAT.pack(ident, at, len(p)),
                                k))
                    at += len(p)
                manifest.restore_values(raw, False, out)
                groups, files, saved = groups + 1, files + len(members), saved + before - after
        members.clear()

    held = 0
    for page in manifest.stored_values(raw, False):
        for k, codec, sums, value in page:
            if codec not in _GROUPED or type(value) is not bytes:
                continue
            plain = reader.decode(value, codec, sums, INLINE_MAX, INLINE)
            members.append((k, plain, len(value)))
            held += len(plain)
            if held >= size:
                close()
                held = 0
    close()
    return groups, files, saved


__all__ = ["GROUP_SIZE", "GROUP_SIZES", "group_small_values"]
