"""vfs_orm trees as an fsspec filesystem: protocol ``vfsorm``, for pandas, Dask, DuckDB,
PyArrow, Zarr, xarray and universal_pathlib.

Opened with ``fsspec.filesystem("vfsorm", db=PATH_OR_URL, tree=None, read_only=False,
underlays=[...])``, ``fsspec.filesystem("vfsorm", vfs=live_vfs)``, or a chained URL
``vfsorm:///inner/path::file:///abs/pack.vfs`` (a local pack is opened in place, a pack on any
other fsspec filesystem is streamed into memory read-only with ``VFS.from_bytes``).

Every method is one or a few calls of the public ``VFS`` API: listings with details and
``find`` are one statement each (``VFS.scandir``), ``mv`` is vfs_orm's atomic rename,
``cp_file`` copies inside the database, ``open`` returns vfs_orm's own io objects for every
binary mode, and ``fs.transaction`` is ``atomic_batch``. Errors are vfs_orm's (they are the
builtins fsspec expects: ``FileNotFoundError``, ``IsADirectoryError``...).

Needs the optional extra ``vfs-orm[fsspec]``; importing vfs_orm never imports this module.
"""

from __future__ import annotations

import os
import posixpath
import stat as _stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import filesystem as _filesystem
from fsspec.spec import AbstractFileSystem
from fsspec.transaction import Transaction
from fsspec.utils import stringify_path

from vfs_orm.backends import is_postgresql_url
from vfs_orm.errors import ContractError, NotFoundError
from vfs_orm.types import DirEntry, StatResult
from vfs_orm.vfs import VFS

PROTOCOL = "vfsorm"
_BINARY_MODES = frozenset({"rb", "wb", "ab", "xb", "r+b", "w+b", "a+b", "x+b",
                           "rb+", "wb+", "ab+", "xb+"})
_READ_PIECE = 1 << 20
#: Held while a filesystem opens its VFS (rare: once per filesystem and process).
_OPENING = threading.RLock()


class BatchTransaction(Transaction):  # type: ignore[misc]
    """``fs.transaction``: everything written inside commits together (``atomic_batch``), or
    nothing when the block raises. Files need no deferred commit: vfs_orm's handles write
    into the batch's transaction."""

    def __init__(self, fs: VFSFileSystem, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self._batch: Any = None

    def start(self) -> None:
        self.files.clear()
        self.fs._intrans = True
        self._batch = self.fs.writer.atomic_batch()
        self._batch.__enter__()

    def complete(self, commit: bool = True) -> None:
        batch, self._batch = self._batch, None
        self.files.clear()
        if self.fs is not None:
            self.fs._intrans = False
        if batch is None:
            return
        if commit:
            batch.__exit__(None, None, None)
        else:
            discarded = RuntimeError("fsspec transaction discarded")
            batch.__exit__(RuntimeError, discarded, None)


@dataclass(frozen=True)
class _OpenArgs:
    db: str | None
    tree: str | None
    read_only: bool
    underlays: list[Any]
    fo: str | None
    target_protocol: str | None
    target_options: dict[str, Any] | None


class VFSFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """A vfs_orm tree as an fsspec filesystem (see the module's docstring)."""

    protocol = PROTOCOL
    root_marker = "/"
    transaction_type = BatchTransaction

    def __init__(self, db: str | os.PathLike[str] | None = None, *, vfs: VFS | None = None,
                 tree: str | None = None, read_only: bool = False,
                 underlays: Iterable[Any] = (), fo: str | None = None,
                 target_protocol: str | None = None,
                 target_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        given = [x for x in (db, vfs, fo) if x is not None]
        if len(given) != 1:
            raise ContractError.for_path(None, "vfsorm needs exactly one of db= (a pack path "
                                               "or database URL), vfs= (a live VFS), or a "
                                               "chained URL (vfsorm:///path::file:///pack)")
        self._args = _OpenArgs(None if db is None else os.fspath(db), tree, bool(read_only),
                               list(underlays), fo, target_protocol, target_options)
        self._given = vfs
        self._vfs: VFS | None = None
        self._pid = -1

    # -- the VFS behind it: opened lazily, again after fork ------------------------------------
    @property
    def vfs(self) -> VFS:
        """The ``VFS`` this filesystem reads and writes. A database file that does not exist
        yet (or is empty) is not created by a read: reads of it raise ``NotFoundError`` (or
        ``NotAVFSDatabaseError``); the first write (``writer``) creates it."""
        return self._live(create=False)

    @property
    def writer(self) -> VFS:
        """The ``VFS``, for a write: a database file that does not exist yet is created."""
        return self._live(create=True)

    def _live(self, create: bool) -> VFS:
        vfs = self._vfs
        if vfs is not None and self._pid == os.getpid():
            return vfs
        # One opener at a time: clients write from several threads at once (pyarrow's
        # write_dataset), and a second VFS opened beside the first would replace it while the
        # first one's handles are in use.
        with _OPENING:
            if self._vfs is not None and self._pid == os.getpid():
                return self._vfs
            if self._given is not None and (self._pid in (-1, os.getpid())
                                            or self._given.db_path == ":memory:"):
                self._vfs = self._given  # in a forked child, an in-memory VFS is its own copy
            else:
                # First use, or a forked child: connections are never shared across fork.
                self._vfs = self._open_vfs(create)
            self._pid = os.getpid()
            return self._vfs

    def _open_vfs(self, create: bool) -> VFS:
        a = self._args
        if self._given is not None:  # a forked child of a process using a file VFS
            fs = VFS(self._given.db_path, read_only=self._given.read_only)
            return _with_underlays(fs, _reopened(self._given))
        if a.fo is not None:
            return _with_underlays(_open_chained(a.fo, a.target_protocol, a.target_options,
                                                 a.read_only, create), a.underlays)
        assert a.db is not None
        read_only = a.read_only or (not create and _not_there_yet(a.db))
        return _with_underlays(VFS(a.db, read_only=read_only, tree=a.tree), a.underlays)

    def __reduce__(self) -> Any:
        """Pickles re-open by arguments (a live VFS travels as its database's path)."""
        options = dict(self.storage_options)
        if self._given is not None:
            if self._given.db_path == ":memory:":
                raise TypeError("a vfsorm filesystem over an in-memory VFS cannot be pickled")
            options.pop("vfs", None)
            options["db"] = self._given.db_path
            options["read_only"] = self._given.read_only
            options["underlays"] = _reopened(self._given)
        return _reopen, (type(self), self.storage_args, options)

    def close(self) -> None:
        """Close the VFS this filesystem opened (a VFS passed in is the caller's)."""
        if self._vfs is not None and self._vfs is not self._given:
            self._vfs.close()
        self._vfs = None

    # -- paths ----------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        if path.startswith(PROTOCOL + "://"):
            path = path[len(PROTOCOL) + 3:]
        elif path.startswith(PROTOCOL + ":"):
            path = path[len(PROTOCOL) + 1:]
        return "/" + path.strip("/")

    # -- metadata ---------------------------------------------------------------------------
    @staticmethod
    def _info(path: str, st: StatResult) -> dict[str, Any]:
        # A symbolic link, FIFO, socket or device (format 0010) is "other", as fsspec's
        # LocalFileSystem says of what is neither (links are not followed here).
        kind = "directory" if st.is_dir() else "file" if st.is_file() else "other"
        return {"name": path, "size": st.st_size, "type": kind,
                "mtime": st.st_mtime, "created": st.st_ctime, "mode": st.st_mode,
                "mtime_ns": st.st_mtime_ns, "islink": _stat.S_ISLNK(st.st_mode),
                "layer": st.source_layer,
                "uid": st.st_uid, "gid": st.st_gid}

    def _entry(self, e: DirEntry) -> dict[str, Any]:
        return self._info(e.path, e.stat())

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        p = self._strip_protocol(path)
        return self._info(p, self.vfs.stat(p))

    def _not_a_dir(self, p: str) -> bool:
        """``p`` is there and not a directory: a file, a link or a node (listed as itself)."""
        return self.vfs.exists(p) and not self.vfs.isdir(p)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        p = self._strip_protocol(path)
        try:
            entries = self.vfs.scandir(p)
        except NotADirectoryError:
            if not self._not_a_dir(p):
                raise
            return [self.info(p)] if detail else [p]  # fsspec: ls of a file lists the file
        if detail:
            return [self._entry(e) for e in entries]
        return [e.path for e in entries]

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        """Everything below ``path``: one statement (fsspec's default walks directory by
        directory)."""
        if maxdepth is not None:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail,
                                **kwargs)
        p = self._strip_protocol(path)
        out: dict[str, dict[str, Any]] = {}
        try:
            entries = self.vfs.scandir(p, recursive=True)
        except NotADirectoryError:
            entries = []
            if self._not_a_dir(p):
                out[p] = self.info(p)
        except FileNotFoundError:
            entries = []
        else:
            if withdirs:
                out[p] = self.info(p)
        for e in entries:
            if withdirs or not e.is_dir():
                out[e.path] = self._entry(e)
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            return self.vfs.exists(self._strip_protocol(path))
        except (ValueError, TypeError, NotFoundError):  # a database not created yet too
            return False  # not a valid path: nothing is there

    def isdir(self, path: str) -> bool:
        try:
            return self.vfs.isdir(self._strip_protocol(path))
        except (ValueError, TypeError, NotFoundError):  # a database not created yet too
            return False

    def isfile(self, path: str) -> bool:
        try:
            return self.vfs.isfile(self._strip_protocol(path))
        except (ValueError, TypeError, NotFoundError):  # a database not created yet too
            return False

    def modified(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.vfs.stat(self._strip_protocol(path)).st_mtime, UTC)

    def created(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.vfs.stat(self._strip_protocol(path)).st_ctime, UTC)

    # -- content ----------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> Any:
        if mode not in _BINARY_MODES:
            raise ValueError(f"invalid mode: {mode!r}")
        fs = self.vfs if mode == "rb" else self.writer
        return fs.open(self._strip_protocol(path), mode)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        """Bytes ``[start:end]`` (negative: from the end), reading only those chunks."""
        p = self._strip_protocol(path)
        if start is None and end is None:
            return self.vfs.read_bytes(p)
        with self.vfs.open(p, "rb", buffering=0) as f:
            size = f.seek(0, os.SEEK_END)
            lo, hi = slice(start, end).indices(size)[:2]
            if hi <= lo:
                return b""
            f.seek(lo)
            pieces = []
            while lo < hi:  # a raw read returns at most the rest of one chunk
                piece = f.read(hi - lo)
                if not piece:
                    break
                pieces.append(piece)
                lo += len(piece)
            return b"".join(pieces)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  **kwargs: Any) -> None:
        p = self._strip_protocol(path)
        if mode == "create":
            with self.writer.open(p, "xb") as f:
                f.write(value)
        else:
            self.writer.write_bytes(p, value)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        p = self._strip_protocol(path)
        fs = self.writer
        if truncate or not fs.exists(p):
            fs.write_bytes(p, b"")
        else:
            fs.utime(p)

    # -- the tree ---------------------------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, *, mode: int | None = None,
              parent_mode: int | None = None, **kwargs: Any) -> None:
        """Create a directory; ``mode`` sets its permission bits, ``parent_mode`` those of the
        parents this call creates (vfs_orm stores modes). One transaction."""
        path = self._strip_protocol(path)
        if mode is None and parent_mode is None:
            self.writer.mkdir(path, parents=create_parents)
            return
        with self.writer.atomic_batch():
            missing = []
            parent = posixpath.dirname(path.rstrip("/") or "/")
            while create_parents and parent != "/" and not self.vfs.exists(parent):
                missing.append(parent)
                parent = posixpath.dirname(parent)
            self.vfs.mkdir(path, parents=create_parents)
            if mode is not None:
                self.vfs.chmod(path, mode)
            if parent_mode is not None:
                for made in missing:
                    self.vfs.chmod(made, parent_mode)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.writer.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.vfs.rmdir(self._strip_protocol(path))

    def rm_file(self, path: str) -> None:
        self.vfs.remove(self._strip_protocol(path))

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Files, and directories: whole with ``recursive`` (one statement per directory
        tree), only when empty without it. Globs are expanded first."""
        if maxdepth is not None:
            for p in reversed(self.expand_path(path, recursive=recursive, maxdepth=maxdepth)):
                (self.vfs.rmdir if self.vfs.isdir(p) else self.vfs.remove)(p)
            return
        for p in self.expand_path(path):
            if not self.vfs.isdir(p):
                self.vfs.remove(p)
            elif not recursive:
                self.vfs.rmdir(p)
            elif p == "/":
                for name in self.vfs.listdir("/"):
                    (self.vfs.rmtree if self.vfs.isdir("/" + name) else self.vfs.remove)(
                        "/" + name)
            else:
                self.vfs.rmtree(p)

    def get_file(self, rpath: str, lpath: Any, callback: Any = None, outfile: Any = None,
                 **kwargs: Any) -> None:
        """fsspec's copy to a local path, except that a symbolic link becomes a local link
        with the same target and a FIFO a local FIFO, as ``cp -a`` and ``tar`` make them
        (fsspec's default would open them as files; the API refuses that). Either replaces
        what ``lpath`` held, atomically, and never follows a link already there. A socket
        or device stays ``SpecialFileError``."""
        p = self._strip_protocol(rpath)
        if outfile is None and isinstance(lpath, (str, os.PathLike)):
            try:
                mode = self.vfs.stat(p).st_mode
            except NotFoundError:
                mode = 0
            if _stat.S_ISLNK(mode) or _stat.S_ISFIFO(mode):
                _make_local_special(os.fspath(lpath), mode, self.vfs.readlink(p)
                                    if _stat.S_ISLNK(mode) else None)
                return
        kw = {} if callback is None else {"callback": callback}
        super().get_file(rpath, lpath, outfile=outfile, **kw, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """A file is copied inside the database (no bytes through Python); a directory is
        created (fsspec's ``copy`` walks the tree and calls this for every entry)."""
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.vfs.isdir(src):
            self.vfs.makedirs(dst, exist_ok=True)
        else:
            self.vfs.copy(src, dst)

    def mv(self, path1: Any, path2: str, recursive: bool = False,
           maxdepth: int | None = None, **kwargs: Any) -> None:
        """vfs_orm's atomic rename (a directory moves whole, in one statement), with
        ``shutil.move``'s rules: into an existing directory, replacing an existing file."""
        dst = self._strip_protocol(path2)
        sources = self.expand_path(path1) if isinstance(path1, list) or _has_magic(path1) \
            else [self._strip_protocol(path1)]
        for src in sources:
            target = dst
            if len(sources) > 1 or (self.vfs.isdir(dst) and src != dst):
                target = dst.rstrip("/") + "/" + src.rsplit("/", 1)[-1]
            if src != target:
                self.vfs.replace(src, target)

    # -- transactions -----------------------------------------------------------------------
    def start_transaction(self) -> Any:
        self._transaction = self.transaction_type(self)
        self._transaction.start()
        return self._transaction


def _make_local_special(lpath: str, mode: int, target: str | None) -> None:
    """A link to ``target`` (or, with None, a FIFO of ``mode``'s permissions) at ``lpath``:
    made under a temporary name beside it, then renamed over it (``rename`` replaces a link
    there rather than following it)."""
    parent = os.path.dirname(lpath) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(lpath)}.vfsorm-{os.getpid()}")
    if target is not None:
        os.symlink(target, tmp)
    else:
        os.mkfifo(tmp, _stat.S_IMODE(mode) & 0o777)
    try:
        os.replace(tmp, lpath)
    except BaseException:
        os.unlink(tmp)
        raise


def _has_magic(path: str) -> bool:
    return any(c in path for c in "*?[")


def _reopened(fs: VFS) -> list[tuple[str, int, str]]:
    """``fs``'s underlays as (path, priority, name), in an order that adds them again: the
    lowest priority first (a patch must find its base below it when it is added), equal
    priorities in the order they were added."""
    layers = sorted(fs.list_layers()[1:], key=lambda x: x["priority"])
    return [(x["db_path"], x["priority"], x["name"]) for x in layers]


def _with_underlays(fs: VFS, underlays: Iterable[Any]) -> VFS:
    """Add underlays given as paths, (path, priority[, name]) tuples or dicts."""
    try:
        for spec in underlays:
            if isinstance(spec, dict):
                fs.add_underlay(spec["db"], priority=spec.get("priority", 0),
                                name=spec.get("name"))
            elif isinstance(spec, (tuple, list)):
                fs.add_underlay(*spec)
            else:
                fs.add_underlay(spec)
    except BaseException:
        fs.close()
        raise
    return fs


def _not_there_yet(db: str) -> bool:
    """A local database file that a read must not create: missing, or empty."""
    if is_postgresql_url(db) or db == ":memory:":
        return False
    try:
        return os.path.getsize(db) == 0
    except OSError:
        return not os.path.lexists(db)


def _open_chained(fo: str, protocol: str | None, options: dict[str, Any] | None,
                  read_only: bool, create: bool) -> VFS:
    """A pack reached through another fsspec filesystem: a local file opened in place (read
    only unless written to: a read never creates or rewrites it), any other streamed into
    memory (read-only, never written to a temporary file)."""
    outer = _filesystem(protocol or "file", **(options or {}))
    if isinstance(outer, LocalFileSystem):
        path = outer._strip_protocol(fo)
        return VFS(path, read_only=read_only or (not create and _not_there_yet(path)))
    with outer.open(fo, "rb") as f:
        return VFS.from_bytes(iter(lambda: f.read(_READ_PIECE), b""), read_only=True)


def _reopen(cls: type[VFSFileSystem], args: tuple[Any, ...], options: dict[str, Any]
            ) -> VFSFileSystem:
    return cls(*args, **options)
