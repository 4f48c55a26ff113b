"""Whole trees copied from one VFS to another, whatever their backends: a pack to a server tree
and back, and the images of backends that have none of their own (``serialize_iter`` of a
PostgreSQL tree is a SQLite pack of it).

Through the public API only: directories with their modes, owners and mtimes, files streamed
in pieces (never whole in memory) with their modes, owners and mtimes, all in ONE atomic batch
of the destination (all or nothing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vfs_orm import paths, special
from vfs_orm.errors import InvalidOperationError
from vfs_orm.namespace.checkpoints import Checkpoints
from vfs_orm.rows import DIR, FILE

if TYPE_CHECKING:
    from vfs_orm.vfs import VFS

#: (files copied, bytes copied) after each file.
Progress = Callable[[int, int], None]
_PIECE = 1 << 20


def _own(dst: VFS, path: str, uid: int | None, gid: int | None, kept: bool) -> None:
    """Give ``dst``'s entry at ``path`` the stored owner (uid, gid) of its source (None: not
    set). ``kept``: the entry was there before this copy (it may hold another owner);
    otherwise it was just made, with none."""
    if kept:
        st = dst.stat(path)
        if (st.owner_uid, st.owner_gid) == (uid, gid):
            return
    elif uid is None and gid is None:
        return
    dst._set_owner(path, uid, gid)


@dataclass
class Copied:
    files: int = 0
    dirs: int = 0
    bytes: int = 0


def copy_tree(src: VFS, dst: VFS, progress: Progress | None = None, *,
              replace: bool = False, checkpoints: bool = True) -> Copied:
    """Copy everything ``src`` shows into ``dst``, which must be empty unless ``replace``
    (then its content, and its checkpoints, are removed first, in the same batch).

    ``checkpoints``: ``src``'s checkpoints come along, oldest first, each taken in ``dst``
    after its entries were written there; then the tree itself. A file unchanged since the
    previous state (same digest) is not written again, so ``dst`` shares its content between
    them as ``src`` did."""
    done = Copied()
    with dst.atomic_batch():
        existing = dst.listdir("/")
        if existing and not replace:
            raise InvalidOperationError.for_path(
                dst.db_path, "the destination is not empty (copy into a new tree)")
        if replace:
            for old in dst.checkpoints():
                dst.drop_checkpoint(old.name)
            for name in existing:
                p = paths.join("/", name)
                (dst.rmtree if dst.isdir(p) else dst.remove)(p)
        history = src.checkpoints() if checkpoints else []
        for info in history:
            _sync_checkpoint(src._checkpoints, info.name, dst, done)
            dst._checkpoints.create(info.name, None, auto=info.auto)
        # What dst holds now (the last checkpoint's entries): kept where src has the same.
        have: dict[str, bool] = {}
        if history:
            for top, subdirs, files in dst.walk("/"):
                have.update({paths.join(top, d): True for d in subdirs})
                have.update({paths.join(top, f): False for f in files})
        seen: set[str] = set()
        dirs: list[tuple[str, int, int]] = []
        owned: list[tuple[str, int | None, int | None, bool]] = []
        for top, subdirs, files in src.walk("/"):
            for d in subdirs:
                p = paths.join(top, d)
                st = src.stat(p)
                seen.add(p)
                if have.get(p) is not True:
                    if p in have:
                        dst.remove(p)
                    dst.mkdir(p)
                    done.dirs += 1
                dirs.append((p, st.st_mode & 0o7777, st.st_mtime_ns))
                owned.append((p, st.owner_uid, st.owner_gid, have.get(p) is True))
            for f in files:
                p = paths.join(top, f)
                st = src.stat(p)
                seen.add(p)
                if have.get(p) is True:
                    dst.rmtree(p)
                if have.get(p) is not False or dst.digest(p) != src.digest(p) \
                        or special.kind_of(dst.stat(p).st_mode) != special.kind_of(st.st_mode):
                    write_entry(dst, p, st.st_mode, entry_pieces(src, p, st.st_mode),
                                have.get(p) is False)
                    done.files += 1
                    done.bytes += st.st_size
                dst.chmod(p, st.st_mode & 0o7777)
                _own(dst, p, st.owner_uid, st.owner_gid, have.get(p) is False)
                dst.utime(p, ns=(st.st_mtime_ns, st.st_mtime_ns))
                if progress is not None:
                    progress(done.files, done.bytes)
        for p in sorted(set(have) - seen):
            if dst.exists(p):
                (dst.rmtree if dst.isdir(p) else dst.remove)(p)
        for p, uid, gid, kept in owned:
            _own(dst, p, uid, gid, kept)
        for p, mode, mtime in reversed(dirs):  # after their entries: children last touched
            dst.chmod(p, mode)
            dst.utime(p, ns=(mtime, mtime))
    return done


def entry_pieces(src: VFS, path: str, mode: int) -> Iterator[bytes]:
    """The content of the file entry ``path`` of ``src``, a piece at a time: a regular
    file's bytes, a link's target, a device's number (format 0010)."""
    kind = special.kind_of(mode)
    if kind == special.LINK:
        yield os.fsencode(src.readlink(path))
    elif kind in special.NODES:
        yield special.node_content(path, kind, src.device_number(path))
    else:
        with src.open(path, "rb") as fin:
            while piece := fin.read(_PIECE):
                yield piece


def write_entry(dst: VFS, path: str, mode: int, pieces: Iterable[bytes], present: bool) -> None:
    """Write the file entry ``path`` of ``mode`` (its type: a regular file, a link, a node)
    into ``dst`` from its content's ``pieces`` (a generator: read as written), replacing the
    file entry there if ``present``."""
    kind = special.kind_of(mode)
    if kind == special.REGULAR:
        with dst.open(path, "wb") as fout:
            for piece in pieces:
                fout.write(piece)
        return
    content = b"".join(pieces)
    if present:
        dst.remove(path)
    if kind == special.LINK:
        dst.symlink(special.link_target(path, content), path)
    else:
        dst.mknod(path, mode, special.device_of(path, mode, content))


def _sync_checkpoint(checkpoints: Checkpoints, name: str, dst: VFS, done: Copied) -> None:
    """Make ``dst``'s tree the entries of checkpoint ``name`` (of another tree): only what
    differs from what ``dst`` holds is written (files compared by digest)."""
    entries = [e for e in checkpoints.entries(name) if e.kind in (DIR, FILE)]
    wanted = {e.path: e for e in entries}
    have: dict[str, bool] = {}
    for top, subdirs, files in dst.walk("/"):
        have.update({paths.join(top, d): True for d in subdirs})
        have.update({paths.join(top, f): False for f in files})
    gone = sorted(p for p, is_dir in have.items()
                  if p not in wanted or (wanted[p].kind == DIR) != is_dir)
    removed: list[str] = []
    for p in gone:
        if any(paths.is_within(p, r) for r in removed):
            continue
        (dst.rmtree if have[p] else dst.remove)(p)
        removed.append(p)
    dirs = []
    for e in entries:
        present = e.path in have and not any(paths.is_within(e.path, r) for r in removed)
        if e.kind == DIR:
            if not present:
                dst.mkdir(e.path, parents=True, exist_ok=True)
                done.dirs += 1
            _own(dst, e.path, e.uid, e.gid, present)
            dirs.append(e)
            continue
        if not present or bytes.fromhex(dst.digest(e.path)) != checkpoints.digest(e) \
                or special.kind_of(dst.stat(e.path).st_mode) != special.kind_of(e.mode):
            write_entry(dst, e.path, e.mode, checkpoints.content(e), present)
            done.files += 1
            done.bytes += e.size
        dst.chmod(e.path, e.mode & 0o7777)
        _own(dst, e.path, e.uid, e.gid, present)
        dst.utime(e.path, ns=(e.mtime_ns, e.mtime_ns))
    for e in reversed(dirs):
        dst.chmod(e.path, e.mode & 0o7777)
        dst.utime(e.path, ns=(e.mtime_ns, e.mtime_ns))


def copy_checkpoint(checkpoints: Checkpoints, name: str, dst: VFS) -> Copied:
    """Write the files and directories of checkpoint ``name`` into the empty VFS ``dst``, in
    one batch, with their modes, owners and mtimes (whiteouts are left out: they mean something only
    over the underlays of the tree the checkpoint was taken of)."""
    done = Copied()
    entries = checkpoints.entries(name)
    with dst.atomic_batch():
        dirs = []
        for e in entries:
            if e.kind == DIR:
                dst.mkdir(e.path, parents=True, exist_ok=True)
                _own(dst, e.path, e.uid, e.gid, False)
                dirs.append(e)
                done.dirs += 1
            elif e.kind == FILE:
                write_entry(dst, e.path, e.mode, checkpoints.content(e), False)
                dst.chmod(e.path, e.mode & 0o7777)
                _own(dst, e.path, e.uid, e.gid, False)
                dst.utime(e.path, ns=(e.mtime_ns, e.mtime_ns))
                done.files += 1
                done.bytes += e.size
        for e in reversed(dirs):
            dst.chmod(e.path, e.mode & 0o7777)
            dst.utime(e.path, ns=(e.mtime_ns, e.mtime_ns))
    return done
