"""The public facade: ``VFS`` (also exported as ``VirtualFileSystem``, the seed library's name).

It checks and normalises arguments, wraps raw streams in ``io`` objects and turns every driver
error into a ``VFSError``. It holds no SQL and no driver: namespace work is ``Tree``'s
(``namespace/``), transactions are the unit of work's, and everything specific to a database
engine (opening, statements, images, maintenance) is the backend's (``backends/``).

Hot read paths (``exists``, ``stat``, ``read_bytes``, ``open`` for reading) translate errors
inline; the other public methods use the ``_translated`` decorator (a fraction of a µs a call,
which would be a tenth of an ``exists``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import math
import os
import shutil
import stat as _stat
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Concatenate, Literal, ParamSpec, TypeVar, overload

import icontract

from vfs_orm import _glob, composition, dictionaries, grouping, layering, paths, special, stored
from vfs_orm._io import IteratorReader, wrap
from vfs_orm.backends import (
    DB_ERRORS,
    DEFAULT_BUSY_TIMEOUT,
    SQLITE,
    Backend,
    Layer,
    translate,
)
from vfs_orm.content import (
    ZSTD,
    Content,
    Damage,
    Dictionaries,
    compression_name,
)
from vfs_orm.content.deltas import Bases
from vfs_orm.copying import copy_checkpoint, copy_tree
from vfs_orm.errors import (
    ClosedError,
    ContractError,
    InvalidOperationError,
    PatchBaseError,
    ReadOnlyError,
    RootContractError,
    VFSError,
)
from vfs_orm.integrity import changes, verify_files
from vfs_orm.layering import PatchRecord as PatchRecord
from vfs_orm.layering import manifest_digest as manifest_digest
from vfs_orm.namespace.checkpoints import Checkpoints, check_name
from vfs_orm.namespace.tree import Tree
from vfs_orm.rows import DIR, FILE
from vfs_orm.types import FILE_MODE, CheckpointInfo, DirEntry, StatResult
from vfs_orm.uow import UnitOfWork

if TYPE_CHECKING:
    from _typeshed import (
        OpenBinaryMode,
        OpenBinaryModeReading,
        OpenBinaryModeUpdating,
        OpenBinaryModeWriting,
        OpenTextMode,
    )

_MODE_CHARS = frozenset("rwaxbt+")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _translated(method: Callable[Concatenate[VFS, _P], _R]) -> Callable[Concatenate[VFS, _P], _R]:
    """Driver errors leaving a public method become VFSErrors naming the database. Typed with
    ParamSpec so that type checkers see each method's own signature."""
    @functools.wraps(method)
    def translated(self: VFS, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except DB_ERRORS as exc:
            if self._uow is not None and self._uow.may_retry(exc):
                return _retried(method, self, exc, *args, **kwargs)
            raise translate(exc, self._where) from exc
    return translated


class _NotSmaller(Exception):
    """``train_dictionary(only_if_smaller=True)``: the dictionary would not pay; raised inside
    its transaction to roll it back."""


def _retried(method: Callable[Concatenate[VFS, _P], _R], self: VFS, first: BaseException,
             /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Run an operation again after a serialization failure or a deadlock (PostgreSQL). Only
    a whole operation of its own transaction is run again: inside ``atomic_batch`` the
    caller's block is the unit, so the error (``BusyError``) goes to the caller."""
    try:
        return self._live_uow().retrying(lambda: method(self, *args, **kwargs), _keep, first)
    except DB_ERRORS as exc:
        raise translate(exc, self._where) from exc


def _keep() -> None:
    """Nothing to put back before a VFS method runs again: it holds no state of its own."""


def _is_root(path: object) -> bool:
    """For contracts: True only for a valid path that names the root (other bad paths are
    left to ``paths.normalize`` to report)."""
    try:
        return paths.normalize(path) == paths.ROOT
    except (TypeError, ValueError):
        return False


def _root_error(path: object) -> RootContractError:
    return RootContractError.for_path(str(path), "the root directory cannot be removed or moved")


def _content_error(path: object) -> ContractError:
    return ContractError.for_path(str(path), "content must not be None")


_MODES: dict[str, tuple[str, bool]] = {}


def _parse_mode(mode: object) -> tuple[str, bool]:
    """Validate an open() mode like io.open does. Returns (one of r/w/a/x, plus)."""
    known = _MODES.get(mode) if isinstance(mode, str) else None
    if known is not None:
        return known
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    chars = set(mode)
    if not mode or not chars <= _MODE_CHARS or len(mode) != len(chars):
        raise ValueError(f"invalid mode: {mode!r}")
    kinds = chars & set("rwax")
    if len(kinds) != 1 or ("b" in chars and "t" in chars):
        raise ValueError(f"invalid mode: {mode!r}")
    parsed = _MODES[mode] = (kinds.pop(), "+" in chars)
    return parsed


#: Stored times are signed 64-bit nanoseconds since the epoch.
_NS_MIN, _NS_MAX = -(1 << 63), (1 << 63) - 1


def _utime_ns(times: Any, ns: Any) -> int:
    """The modification time ``utime(times=, ns=)`` asks for, in nanoseconds, checked."""
    if ns is not None and times is not None:
        raise ValueError("utime: give times or ns, not both")
    pair = ns if ns is not None else times
    if pair is None:
        return time.time_ns()
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise TypeError("utime: times and ns must be a pair (atime, mtime)")
    value = pair[1]
    if ns is not None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("utime: ns must be a pair of ints")
        mtime = value
    else:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError("utime: times must be a pair of numbers")
        if not math.isfinite(value):
            raise InvalidOperationError.for_path(None, f"utime: time {value} is not finite")
        scaled = value * 1e9 if isinstance(value, float) else value * 10**9
        mtime = int(scaled) if _NS_MIN <= scaled <= _NS_MAX else _NS_MAX + 1
    if not _NS_MIN <= mtime <= _NS_MAX:
        raise InvalidOperationError.for_path(
            None, "utime: time outside what vfs_orm stores (signed 64-bit nanoseconds, "
                  "years 1677 to 2262)")
    return mtime


def _owner_ids(path: str, uid: Any, gid: Any) -> tuple[int, int]:
    """``chown``'s (uid, gid), checked: ints, each -1 (unchanged) or a storable id."""
    for value in (uid, gid):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("chown: uid and gid must be ints")
        if value != -1 and not 0 <= value <= stored.MAX_OWNER:
            raise InvalidOperationError.for_path(
                path, f"chown: {value} is not an owner id (-1, or 0 to {stored.MAX_OWNER})")
    return int(uid), int(gid)


class VFS:
    """A POSIX-like file system stored in one SQLite database, or in a tree (a schema) of a
    PostgreSQL database.

    Args:
        db_path: a file path (``str`` or ``os.PathLike``) or ``":memory:"``.
        chunk_size: size of the chunks new files are stored in. ``None`` uses the database's
            own (64 KiB for new databases). Existing files keep the chunk size they were
            written with, so any value reads every file correctly.
        read_only: open without ever writing (the file is opened ``mode=ro`` by SQLite).
        page_size: SQLite page size of a NEW database (4096 by default).
        durable: ``True`` (default) makes every commit survive power loss
            (``synchronous=FULL``); ``False`` survives process crashes only, and is faster.
        busy_timeout: seconds a writer waits for another process's write lock (PostgreSQL:
            for the tree's lock).
        engine: a host application's SQLAlchemy engine: the files live in its database
            (see the guide's "Embedding" page).
        session: a host application's SQLAlchemy session: every operation joins its
            transaction.
        tree: the tree (a PostgreSQL schema) when ``db_path`` is a PostgreSQL URL; ``"vfs"``
            by default.
        compression: ``"zstd"`` or ``"zlib"`` for a NEW database (recorded in it); None
            stores content as is.
        verify: check every block's checksum on reads (the default); False skips it.
        case_insensitive: a NEW database matching names under Unicode case folding; None
            takes the database's own setting.

    Raises:
        ContractError: ``db_path`` is empty (also a ValueError and icontract.ViolationError),
            or ``tree`` is given with a SQLite path.
        NotFoundError: ``read_only`` and the file does not exist.
        NotAVFSDatabaseError: the file is not SQLite, truncated, or another application's.
        FormatVersionError: the file's format revision is newer than this release, or older
            and opened read-only.
    """

    # The facade's state: built by vfs_orm.composition.compose, the stack's changed by
    # vfs_orm.layering.
    _uow: UnitOfWork | None
    _backend: Backend
    _db_path: str
    _where: str
    _ro_uri: str
    _embedded: bool
    _read_only: bool
    _chunk_size: int
    _compression: str | None
    _case_insensitive: bool | None
    _folded: bool
    _stored_compression: Any
    _stored_ci: Any
    _content: Content
    _read_content: Content
    _repo: Any
    _manifest: Any
    _tree: Tree
    _checkpoints: Checkpoints
    _per_connection: int
    _may_hide: bool
    _layers: list[Layer]
    _alias_counter: int
    _layer_dicts: dict[str, Dictionaries]
    _patch: PatchRecord | None
    _layer_patch: dict[str, PatchRecord]
    _layer_digest: dict[str, str]
    _groups: bool
    _layer_groups: set[str]
    _bases: Bases
    _writes_deltas: bool
    _view: int | None  # the checkpoint this VFS reads in place (open_checkpoint), if any
    _scratch: Any = None  # removes the temporary file of a checkpoint's copy, if any

    @icontract.require(lambda db_path: not isinstance(db_path, str) or len(db_path) > 0,
                       "database path must not be empty",
                       error=lambda db_path: ContractError.for_path(
                           "", "database path must not be empty"))
    def __init__(self, db_path: str | os.PathLike[str] = ":memory:",
                 chunk_size: int | None = None, read_only: bool = False, *,
                 page_size: int | None = None, durable: bool = True,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                 engine: Any = None, session: Any = None, tree: str | None = None,
                 compression: str | None = None, verify: bool = True,
                 case_insensitive: bool | None = None,
                 compression_level: int | None = None) -> None:
        composition.compose(self, db_path, chunk_size, read_only, page_size, durable,
                            busy_timeout, engine, session, None, tree, compression, verify,
                            case_insensitive, compression_level)

    def _path(self, path: Any) -> str:
        """A path argument, normalised; in a case-insensitive database, spelled as stored as
        far as it exists (so that every statement on this database sees one spelling of each
        entry: ``Save.DAT`` reaches ``save.dat``)."""
        p = paths.normalize(path)
        return self._tree.canonical(p) if self._folded else p

    @staticmethod
    def _rpath(path: Any) -> str:
        """A path argument of a read, normalised. In a case-insensitive database reads find
        any spelling through the folded keys themselves (one indexed statement): no stored
        spelling is looked up first."""
        return paths.normalize(path)

    def _target(self, src: Any, dst: Any) -> str:
        """A rename's destination: as ``_path``, except that a rename that only changes case
        (the destination folds onto the source itself) keeps the new spelling."""
        d = self._path(dst)
        if self._folded and d == self._path(src):
            given = paths.normalize(dst)
            parent, name = paths.split(given)
            return paths.join(self._path(parent), name) if parent else given
        return d

    @property
    def case_insensitive(self) -> bool:
        """Whether paths in this database match under case folding (chosen at creation)."""
        return self._folded

    @_translated
    def content_manifest(self) -> dict[str, str]:
        """Every entry of the tree (through the layers): path -> "dir" for a directory, or
        the file's SHA-256 (hex), prefixed with its type for a symbolic link, FIFO, socket or
        device ("link:...", format 0010). What patch packs are checked against.

        Raises:
            ClosedError: the VFS is closed.
            CorruptionError: damaged content whose digest had to be computed.
        """
        out: dict[str, str] = {}
        for top, dirs, files in self.walk("/"):
            for d in dirs:
                out[paths.join(top, d)] = "dir"
            if not files:
                continue
            modes = {e.name: e.stat().st_mode for e in self.scandir(top)}
            for f in files:
                p = paths.join(top, f)
                out[p] = special.manifest_value(modes.get(f, special.REGULAR), self.digest(p))
        return out

    def content_digest(self) -> str:
        """SHA-256 (hex) of ``content_manifest()``: two trees with the same paths, kinds and
        file contents have the same digest (modes and times are not part of it).

        Raises:
            ClosedError: the VFS is closed.
            CorruptionError: damaged content whose digest had to be computed.
        """
        return manifest_digest(self.content_manifest())

    @property
    def patch(self) -> PatchRecord | None:
        """What this database says it patches, if it is a patch pack (see vfs_orm.patching)."""
        return self._patch

    @_translated
    def patch_manifest(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The content manifest of the tree this patch pack makes (checked against its
        digest). ``base``: the ``content_manifest`` of the tree the patch was made from; a
        patch made by this release records only what differs from it, so it is needed then.

        Raises:
            PatchBaseError: not a patch pack; or ``base`` is needed and missing, or is not
                the manifest of the patch's base.
            CorruptionError: a damaged record.
        """
        if self._patch is None:
            raise PatchBaseError.for_path(self._where, "not a patch pack")
        uow = self._live_uow()
        with uow.read_lock:
            row = self._manifest.patch_record(uow.raw())
        return layering.unpack_manifest(row, self._patch, self._where, base)

    def _record_patch(self, base_uuid: str, base_digest: str, manifest: dict[str, str],
                      base: Mapping[str, str] | None = None) -> None:
        self._check_writable(self._db_path)
        new_digest = manifest_digest(manifest)
        with self._live_uow().write() as raw:
            self._manifest.record_patch(raw, base_uuid, base_digest, new_digest,
                                        layering.pack_manifest(manifest, base),
                                        time.time_ns())
        self._patch = PatchRecord(base_uuid, base_digest, new_digest)

    @_translated
    def train_dictionary(self, samples: list[bytes] | None = None, *, size: int | None = None,
                         recompress: bool = True, only_if_smaller: bool = False) -> int | None:
        """Train a zstd dictionary on this database's values (inline files and chunks of at
        most 1 MiB, an even spread of about 16 to 32 MiB of them, deltas left out; or on
        ``samples``), store it in the database and compress new values of up to 1 MiB with it;
        ``recompress``: also store every existing value again with it where that makes it
        smaller (in the same one transaction). ``size``: the dictionary's size in bytes
        (default: ``vfs_orm.content.dictionary_size``: a fiftieth of the samples, 16 to 256
        KiB; a quarter, up to 4 MiB, at a release level, 19 and up). ``only_if_smaller`` (with
        ``recompress``): keep nothing, and return None, unless the values it makes smaller
        save more bytes than the stored dictionary takes. Packs of many small files shrink by
        a sixth or more (see benchmarks/PACKS.md). The database must be compressed with zstd;
        reading it needs this release (format 0011: the dictionary is stored compressed) and
        zstandard.

        Returns:
            The dictionary's id, or None when ``only_if_smaller`` kept nothing.

        Raises:
            ContractError: the database is not zstd-compressed, there is too little to
                train on, or ``size`` is not 1 KiB to 16 MiB. ReadOnlyError: read-only.
                InvalidOperationError: inside ``atomic_batch()`` or a host session's
                transaction. CorruptionError: a stored value is damaged.
        """
        self._check_writable(self._db_path)
        if self._content.codec != ZSTD:
            raise ContractError.for_path(self._where, "a dictionary needs a database created "
                                                      "with compression='zstd'")
        if only_if_smaller and not recompress:
            raise ContractError.for_path(self._where, "only_if_smaller needs recompress=True")
        uow = self._live_uow()
        # New values are compressed with the dictionary from here on: a transaction that
        # rolls back later would leave them naming a dictionary never stored.
        self._own_transaction(uow, "train_dictionary()")
        reader = replace(self._content, partial=False)
        if samples is None:
            with uow.read_lock:
                samples = dictionaries.samples(self._manifest, uow.raw(), reader)
        entry, writer = dictionaries.trained(self._content, samples, size, self._where)
        stored = self._content.dicts is not None and entry.ident in self._content.dicts.by_id
        try:
            with uow.write() as raw:
                saved = dictionaries.store(self._manifest, raw, entry, self._content, reader,
                                           writer, recompress)
                if only_if_smaller and not stored and saved <= len(entry.data):
                    raise _NotSmaller  # rolls the dictionary and the values back
        except _NotSmaller:
            return None
        layering.use_content(self, writer)
        ident: int = entry.ident
        return ident

    def _own_transaction(self, uow: UnitOfWork, what: str) -> None:
        """Refuse ``what`` inside ``atomic_batch()`` or a host session's transaction: it
        changes how this VFS reads or writes content once it commits."""
        if uow.in_batch() or uow.session is not None:
            raise InvalidOperationError.for_path(
                self._where, f"{what} cannot run inside atomic_batch() or a host session: it "
                             f"needs its own transaction")

    @_translated
    def group_small_files(self, size: int = grouping.GROUP_SIZE) -> int:
        """Store this database's small compressed files in groups of about ``size`` plain
        bytes (format 0013: a solid pack): several files' bytes in one stored value, each
        file's own value then a 16-byte slice of its group, wherever that is smaller. One zstd
        frame finds what the files share, and no row leaves most of a page empty: the
        standard library's modules pack about a twentieth smaller (benchmarks/PACKS.md).
        Reading a grouped file decodes its group (kept for the next files of it). Made for
        release packs (``pack(solid=True)``, the default at release levels): files written
        later are stored one by one as before. Reading the database needs this release; a
        VFS already open on it elsewhere reads the grouped files once it is opened again.

        Returns:
            How many groups were stored.

        Raises:
            ContractError: the database is not compressed, or ``size`` is not 4 KiB to
                512 KiB. ReadOnlyError: read-only. InvalidOperationError: inside
                ``atomic_batch()`` or a host session's transaction. CorruptionError: a stored
                value is damaged.
        """
        self._check_writable(self._db_path)
        if self._content.codec == 0:
            raise ContractError.for_path(self._where, "groups need a database created with "
                                                      "compression='zstd' or 'zlib'")
        low, high = grouping.GROUP_SIZES
        if type(size) is not int or not low <= size <= high:
            raise ContractError.for_path(self._where, f"size must be an int from {low} to "
                                                      f"{high}")
        uow = self._live_uow()
        self._own_transaction(uow, "group_small_files()")
        reader = replace(self._content, partial=False)
        fresh = not self._groups
        if fresh:
            # Slices are read with bases from before the first one is committed: another
            # thread of this VFS may read one the moment the write commits.
            self._groups = True
            layering.use_content(self, self._content)
        made = 0
        try:
            with uow.write() as raw:
                made, _files, _saved = grouping.group_small_values(self._manifest, raw, reader,
                                                                   self._content, size)
        finally:
            if fresh and not made:  # nothing grouped (or rolled back): as it was
                self._groups = False
                layering.use_content(self, self._content)
        if made:
            self._bases.forget_damaged_groups()  # a damaged row may have been written again
        return made

    @property
    def compression(self) -> str | None:
        """How this database compresses content: 'zstd', 'zlib' or None (chosen at
        creation)."""
        return compression_name(self._content.codec)

    @_translated
    def check(self, quick: bool = False, deep: bool = False) -> Any:
        """Check the database: SQLite's integrity check and the format's invariants (see
        ``vfs_orm.check``). ``deep``: also read every file back, checking each chunk's checksums
        and each file against its SHA-256 digest (damaged files are listed as problems).
        Returns a report with ``ok``, ``problems``, ``warnings`` and ``counts``. A
        checkpoint's view (``open_checkpoint``) checks the database it reads.

        Raises:
            ClosedError: the VFS is closed.
        """
        uow = self._live_uow()
        if self._view is not None:  # its tables are views: check the real ones
            with VFS(self._db_path, read_only=True, busy_timeout=uow.retry_for,
                     tree=self._backend.source_tree) as whole:
                return whole.check(quick, deep)
        with uow.read_lock:
            report = self._backend.check(uow.raw(), quick)
            for entry in (self._content.dicts.by_id.values() if self._content.dicts else ()):
                try:
                    entry.zstd_dict()
                except Damage as exc:
                    report.problems.append(exc.what)
            if deep:
                strict = self._backend.inode_statements(
                    content=Content(self._content.codec, dicts=self._content.dicts,
                                    bases=self._content.bases))
                problems, warnings, verified = verify_files(
                    strict, uow.raw(), bases_held=self._patch is not None and bool(self._layers))
                report.problems.extend(problems)
                report.warnings.extend(warnings)
                report.counts["files_verified"] = verified
        if deep:  # what only checkpoints hold
            problems, warnings, verified = self._checkpoints.verify(strict)
            report.problems.extend(problems)
            report.warnings.extend(warnings)
            report.counts["checkpoint_files_verified"] = verified
        return report

    @_translated
    def digest(self, path: str) -> str:
        """The SHA-256 of a file's content, as hex: the digest stored with the file when it
        was written, so the content is not read (a file written in place since has its digest
        computed once, and recorded). Two files with the same digest have the same bytes.

        Raises:
            NotFoundError: nothing at ``path``.
            IsADirError: ``path`` is a directory.
            NotADirError: a component of the path is a file.
            InvalidPathError: the path has NUL or control characters.
            CorruptionError: a stored value fails its check (damaged or crafted database).
        """
        return self._tree.digest(self._rpath(path)).hex()

    @_translated
    def info(self) -> dict[str, Any]:
        """Format revision, identity, counts, sizes and SQLite settings of this database.

        Raises:
            ClosedError: the VFS is closed.
        """
        uow = self._live_uow()
        with uow.read_lock:
            found = self._backend.info(uow.raw(), stored.row_problems)
        file_bytes = 0 if self._db_path == ":memory:" or self._embedded else \
            self._backend.file_bytes(self._db_path)
        return {"path": self._db_path, "revision": found.pop("revision"),
                "head": found.pop("head"), "identity": self.identity, **found,
                "chunk_size": self._chunk_size,
                "file_bytes": file_bytes, "layers": self.list_layers()}

    @_translated
    def compact(self, full: bool = False) -> dict[str, Any]:
        """Give the space of deleted and shrunk files back to the disk (SQLite keeps freed
        pages for reuse otherwise). Cheap on databases made by this version (incremental
        auto-vacuum); an older file is rewritten once with VACUUM, which makes later calls
        cheap too. Only this database, never its underlays. Returns the method used and
        ``bytes_before`` / ``bytes_after``.

        On PostgreSQL: ``VACUUM (ANALYZE)`` of the tree's tables (dead rows become reusable
        space, empty pages at their ends go back to the disk; readers and writers go on);
        ``full=True`` runs ``VACUUM FULL``, which rewrites the tables to their live size but
        holds an ACCESS EXCLUSIVE lock on each while it does (every reader and writer of the
        tree waits). On SQLite ``full=True`` rewrites the file with ``VACUUM``: every page
        packed full, so the room rows that shrank left in their pages goes too (a solid pack's
        ``group_small_files`` leaves much); other writers wait while it runs.

        Raises:
            InvalidOperationError: inside ``atomic_batch()``, in a host's session, or embedded
                in a host database that does not use incremental auto-vacuum (with
                ``full=True``: in any host database or session).
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            BusyError: another writer held the write lock past ``busy_timeout``.
        """
        uow = self._live_uow()
        file_db = not (self._embedded or uow.shared)
        return self._backend.compact(uow, embedded=self._embedded, file_db=file_db, full=full)

    # -- history: checkpoints -------------------------------------------------------------
    @_translated
    def checkpoint(self, name: str | None = None, *, keep: int | None = None) -> str:
        """Take a checkpoint: a named point-in-time copy of the tree (this database's entries;
        content is shared with the tree, copy on write, so it costs metadata only). It is one
        committed state, and later writes never change it.

        Args:
            name: its name; None makes an automatic one (``auto-N``).
            keep: keep only the last ``keep`` automatic checkpoints (older ones are dropped
                in the same transaction).

        Returns:
            The checkpoint's name.

        Raises:
            AlreadyExistsError: a checkpoint of that name exists.
            ContractError: a bad name (a ``ValueError``).
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        self._check_writable(self._db_path)
        return self._checkpoints.create(name, keep)

    @_translated
    def checkpoints(self) -> list[CheckpointInfo]:
        """The checkpoints, oldest first: name, time, file count and the stored bytes only
        each holds (what dropping it frees).

        Raises:
            ClosedError: the VFS is closed.
            CorruptionError: damaged checkpoint rows.
        """
        self._live_uow()
        return self._checkpoints.infos()

    @_translated
    def restore(self, name: str) -> None:
        """Make the tree exactly checkpoint ``name`` (whiteouts over underlays included), in
        one transaction: all or nothing. The checkpoint stays. Open file handles go stale.

        Raises:
            NotFoundError: no such checkpoint.
            CorruptionError: its rows are damaged (the tree is left as it was).
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        self._check_writable(self._db_path)
        self._checkpoints.restore(name)

    @_translated
    def drop_checkpoint(self, name: str) -> None:
        """Drop a checkpoint, freeing the content only it held.

        Raises:
            NotFoundError: no such checkpoint.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        self._check_writable(self._db_path)
        self._checkpoints.drop(name)

    @_translated
    def open_checkpoint(self, name: str) -> VFS:
        """A read-only VFS of checkpoint ``name``: its files, directories, links and nodes,
        with their modes, owners and mtimes (whiteouts left out: they mean something only
        over this tree's underlays); close it when done.

        On a SQLite file or a PostgreSQL tree with no underlays it reads the checkpoint in
        place, through its own connections to the same database: opening it costs a check of
        the checkpoint's entries (its metadata) and copies no content. Dropping the
        checkpoint empties such a view (its open files go stale). Its ``check()`` is the
        database's, checkpoints included; its ``to_bytes()`` is an image of the checkpoint
        alone. Elsewhere (a PostgreSQL hot standby, an in-memory database, a stack with
        underlays) the checkpoint is copied into a new VFS in a temporary file, removed when
        the view is closed, which costs its bytes.

        Raises:
            NotFoundError: no such checkpoint.
            CorruptionError: damaged checkpoint rows or (when copied) content.
        """
        uow = self._live_uow()
        check_name(name)
        if self._backend.capabilities.checkpoint_views and not uow.shared \
                and not self._embedded and not self._layers and self._view is None:
            ck = self._checkpoints.checked(name)
            obj = VFS.__new__(VFS)
            try:
                composition.compose(obj, self._db_path, self._chunk_size, True, None, True,
                                    uow.retry_for, None, None, None, tree=self._backend.source_tree,
                                    verify=self._content.verify, checkpoint=ck)
                return obj
            except VFSError as exc:
                # A PostgreSQL hot standby makes no views (nothing is created in recovery):
                # the copy below reads the checkpoint there. Anything else is raised.
                if not self._backend.checkpoint_view_refused(exc):
                    raise
        # A copy, in a file of its own (an in-memory one would hold the checkpoint's bytes in
        # RAM, and at most 1 GiB of them), removed when the view is closed or collected.
        scratch = tempfile.mkdtemp(prefix="vfs-orm-checkpoint-")
        try:
            view = VFS(os.path.join(scratch, "checkpoint.vfs"), chunk_size=self._chunk_size,
                       durable=False)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        view._scratch = weakref.finalize(view, shutil.rmtree, scratch, True)
        try:
            copy_checkpoint(self._checkpoints, name, view)
        except BaseException:
            view.close()
            raise
        view._freeze()
        return view

    @_translated
    def diff(self, name_a: str, name_b: str | None = None) -> list[tuple[str, str]]:
        """The files that differ between checkpoint ``name_a`` and checkpoint ``name_b`` (None:
        the tree as it is now; like a checkpoint, this database's own files, not its
        underlays'), by SHA-256 digest: ("+", path) only in b, ("-", path) only in
        a, ("M", path) changed; sorted by path. What ``vfs-orm diff`` prints.

        Raises:
            NotFoundError: no such checkpoint.
        """
        # Compared by type and digest: a link and a file holding its target differ (0010).
        ck, kind = self._checkpoints, special.kind_of
        old = {e.path: e for e in ck.entries(check_name(name_a)) if e.kind == FILE}
        if name_b is None:  # the tree's own files (not its underlays'), as a checkpoint has
            live = ck.top_files()
            return changes(set(old), set(live), lambda p: (kind(old[p].mode), ck.digest(old[p])),
                           lambda p: (kind(self.stat(p).st_mode),
                                      live[p] or bytes.fromhex(self.digest(p))))
        new = {e.path: e for e in ck.entries(check_name(name_b)) if e.kind == FILE}
        return changes(set(old), set(new), lambda p: (kind(old[p].mode), ck.digest(old[p])),
                       lambda p: (kind(new[p].mode), ck.digest(new[p])))

    # -- images as bytes ------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes | Iterable[bytes], *, chunk_size: int | None = None,
                   read_only: bool = False) -> VFS:
        """An in-memory VFS holding the database image ``data`` (``bytes``, or any iterable
        of bytes such as an HTTP response's ``iter_bytes()``). Nothing is written to disk.
        An image of an older format revision is upgraded in memory.

        Raises:
            NotAVFSDatabaseError: empty, not SQLite, truncated, or another application's
                database, or larger than the 1 GiB an in-memory database holds.
            FormatVersionError: the image is from a newer vfs_orm.
            TypeError: ``data`` is not bytes or an iterable of bytes.
        """
        image = SQLITE.collect_image(data)
        obj = cls.__new__(cls)
        composition.compose(obj, ":memory:", chunk_size, False, None, True,
                            DEFAULT_BUSY_TIMEOUT, None, None, image)
        obj._read_only = False
        if read_only:
            obj._freeze()
        return obj

    def _freeze(self) -> None:
        """Make a VFS that was filled in memory read-only from now on (an image opened
        ``read_only``, a checkpoint's view): writes refused, no stack recorded on them."""
        self._read_only = True
        uow = self._live_uow()
        uow.read_only = True
        uow.before_write = None

    def serialize_iter(self, block_size: int = 65536) -> Iterator[bytes]:
        """Yield a consistent snapshot of the database as the bytes of a regular SQLite file
        (in ``block_size`` pieces). File databases stream from disk with bounded memory;
        writers are not blocked meanwhile. A tree of a backend without images of its own
        (PostgreSQL) yields a SQLite pack of it, built in memory from one snapshot.

        Raises:
            ContractError: ``block_size`` is not a positive int.
            VFSError: the VFS is embedded in a host database (serialise the host's database).
            ClosedError: the VFS is closed.
        """
        if not isinstance(block_size, int) or block_size <= 0:
            raise ContractError.for_path(self._db_path, "block_size must be a positive int")
        uow = self._live_uow()
        if not self._backend.capabilities.images or self._view is not None:
            yield from self._pack_image(block_size)  # (a view's file holds the live tree)
            return
        if self._embedded:
            raise VFSError.for_path(self._db_path, "an embedded VFS does not own its database: "
                                                   "serialise the host's database instead")
        try:
            if uow.shared:
                with uow.lock:
                    blocks = self._backend.memory_image(uow.raw(), block_size)
                yield from blocks
                return
            yield from self._backend.file_image(self._db_path, self._ro_uri, block_size)
        except DB_ERRORS as exc:
            raise translate(exc, self._db_path) from exc

    def serialize_fileobj(self, block_size: int = 65536) -> io.BufferedReader:
        """The image as a non-seekable readable file object (for ``upload_fileobj``-style
        APIs).

        Raises:
            ContractError: ``block_size`` is not a positive int.
            VFSError: the VFS is embedded in a host database.
            ClosedError: the VFS is closed.
        """
        return io.BufferedReader(IteratorReader(self.serialize_iter(block_size)), block_size)

    def to_bytes(self) -> bytes:
        """The whole image in memory.

        Raises:
            VFSError: the VFS is embedded in a host database.
            ClosedError: the VFS is closed.
        """
        return b"".join(self.serialize_iter())

    @_translated
    def deserialize_iter(self, data: bytes | Iterable[bytes]) -> None:
        """Replace this database's whole content with an image (bytes or an iterable of
        bytes), in one step: the image is checked (and upgraded if older) in memory first, so
        a bad image changes nothing. Open file handles become stale.

        Raises:
            NotAVFSDatabaseError: the image is not a vfs_orm database (nothing changes).
            FormatVersionError: the image is from a newer vfs_orm (nothing changes).
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            BusyError: another writer held the write lock past ``busy_timeout``.
        """
        uow = self._live_uow()
        self._check_writable(self._db_path)
        if self._embedded:
            raise VFSError.for_path(self._db_path, "an embedded VFS does not own its database")
        if uow.in_batch():
            raise VFSError.for_path(self._db_path, "cannot replace the content inside a batch")
        source = VFS.from_bytes(data)
        if not self._backend.capabilities.images:
            try:  # another backend: the pack's tree copied in, one batch, all or nothing
                copy_tree(source, self, replace=True)
                uow.epoch += 1
            finally:
                source.close()
            return
        try:
            if source._patch is not None:  # a patch image: over this stack, or refused now
                layering.check_patches(self, self._layers, {}, top=source._patch)
            with uow.lock:
                self._backend.replace_content(source._live_uow().raw(), uow.raw())
                uow.epoch += 1
                composition.adopt(self, source)
                uow.before_write = layering.recorder(self)
        finally:
            source.close()

    def _pack_image(self, block_size: int) -> Iterator[bytes]:
        """A SQLite pack of this tree (read in one snapshot), as image bytes."""
        with VFS(":memory:", chunk_size=self._chunk_size) as pack, self.snapshot():
            copy_tree(self, pack)
            blocks = list(pack.serialize_iter(block_size))
        yield from blocks

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database. Open file handles become unusable. Idempotent."""
        if self._uow is not None:
            self._uow.close()
        for lay in getattr(self, "_layers", ()):
            if lay.owned:
                lay.source.close()
        if getattr(self, "_scratch", None) is not None:
            self._scratch()  # a checkpoint's copy: its temporary file goes

    @property
    def closed(self) -> bool:
        return self._uow is None or self._uow.closed

    def __enter__(self) -> VFS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self._read_only else "writable")
        return f"<VFS {self._db_path!r} {state}>"

    @property
    def db_path(self) -> str:
        return self._db_path

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def chunk_size(self) -> int:
        """Chunk size used for files written by this instance."""
        return self._chunk_size

    def _live_uow(self) -> UnitOfWork:
        if self._uow is None or self._uow.closed:
            raise ClosedError.for_path(self._db_path, "the VFS is closed")
        return self._uow

    def _check_writable(self, path: str) -> None:
        if self._read_only:
            raise ReadOnlyError.for_path(path, "the VFS is read-only")

    # -- queries (hot paths: errors translated inline) -------------------------------------
    def exists(self, path: str) -> bool:
        """True if ``path`` names a file or a directory.

        Raises:
            InvalidPathError: the path has NUL or control characters.
            ClosedError: the VFS is closed.
        """
        p = self._rpath(path)
        try:
            return self._tree.exists(p)
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc

    def isfile(self, path: str) -> bool:
        """True if ``path`` names a regular file (``os.path.isfile``; a symbolic link is not
        followed, so it is not one, nor is a FIFO, socket or device).

        Raises:
            InvalidPathError: the path has NUL or control characters.
        """
        p = self._rpath(path)
        try:
            row = self._tree.lookup(p)
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc
        return row is not None and row.kind != DIR and \
            special.kind_of(row.mode) == special.REGULAR

    def isdir(self, path: str) -> bool:
        """True if ``path`` names a directory (``os.path.isdir``).

        Raises:
            InvalidPathError: the path has NUL or control characters.
        """
        p = self._rpath(path)
        try:
            row = self._tree.lookup(p)
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc
        return row is not None and row.kind == DIR

    def stat(self, path: str) -> StatResult:
        """Metadata of a file or directory (a directory's size is 0).

        Raises:
            NotFoundError: nothing at ``path``.
            NotADirError: a component of the path is a file.
            InvalidPathError: the path has NUL or control characters.
            CorruptionError: a stored value fails its check (damaged or crafted database).
        """
        p = self._rpath(path)
        try:
            return self._tree.stat(p)
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc

    def getsize(self, path: str) -> int:
        """The size of a file in bytes (0 for a directory), as ``os.path.getsize``.

        Raises:
            NotFoundError: nothing at ``path``.
            NotADirError: a component of the path is a file.
            InvalidPathError: the path has NUL or control characters.
        """
        return self.stat(path).st_size

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a file, in one query.

        Raises:
            NotFoundError: nothing at ``path``.
            IsADirError: ``path`` is a directory.
            NotADirError: a component of the path is a file.
            InvalidPathError: the path has NUL or control characters.
            CorruptionError: the content fails its checksum, or a stored value fails its check.
        """
        p = self._rpath(path)
        try:
            return self._tree.read_bytes(p)
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc

    def read_text(self, path: str, encoding: str = "utf-8", errors: str | None = None) -> str:
        """The whole content of a file decoded, with universal newlines (as ``open(p, "r")``).

        Raises:
            NotFoundError: nothing at ``path``.
            IsADirError: ``path`` is a directory.
            NotADirError: a component of the path is a file.
            CorruptionError: the content fails its checksum.
            UnicodeDecodeError: the content is not valid in ``encoding``.
        """
        data = self.read_bytes(path)
        return io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors=errors).read()

    def listdir(self, path: str = "/") -> list[str]:
        """Names in a directory, sorted. Costs O(entries in that directory).

        Raises:
            NotFoundError: nothing at ``path``.
            NotADirError: ``path`` (or a component of it) is a file.
            InvalidPathError: the path has NUL or control characters.
        """
        p = self._rpath(path)
        try:
            return self._tree.listdir(p)
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc

    def scandir(self, path: str = "/", *, recursive: bool = False) -> list[DirEntry]:
        """A directory's entries with their metadata, sorted by name: ``os.scandir``'s
        ``DirEntry`` interface (``name``, ``path``, ``is_dir()``, ``is_file()``, ``stat()``),
        from ONE statement. ``recursive=True``: every entry below ``path``, each directory's
        entry before its content, also one statement.

        Raises:
            NotFoundError: nothing at ``path``.
            NotADirError: ``path`` (or a component of it) is a file.
            InvalidPathError: the path has NUL or control characters.
        """
        # A recursive listing matches entries to their directories by stored spelling.
        p = self._path(path) if recursive else self._rpath(path)
        try:
            return self._tree.scandir(p, bool(recursive))
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc

    # Typed as typeshed types builtins.open: text modes give a TextIOWrapper; binary modes a
    # BufferedReader, BufferedWriter or BufferedRandom, or with buffering=0 the raw stream.
    @overload
    def open(self, path: str, mode: OpenTextMode = "r", buffering: int = -1,
             encoding: str | None = None, errors: str | None = None,
             newline: str | None = None) -> io.TextIOWrapper: ...

    # buffering=0: the raw stream, an io.RawIOBase (not a FileIO, as builtins.open gives);
    # only the fallbacks below, typeshed's own, overlap it.
    @overload
    def open(  # type: ignore[overload-overlap]
            self, path: str, mode: OpenBinaryMode, buffering: Literal[0],
            encoding: None = None, errors: None = None,
            newline: None = None) -> io.RawIOBase: ...

    @overload
    def open(self, path: str, mode: OpenBinaryModeUpdating, buffering: Literal[-1, 1] = -1,
             encoding: None = None, errors: None = None,
             newline: None = None) -> io.BufferedRandom: ...

    @overload
    def open(self, path: str, mode: OpenBinaryModeWriting, buffering: Literal[-1, 1] = -1,
             encoding: None = None, errors: None = None,
             newline: None = None) -> io.BufferedWriter: ...

    @overload
    def open(self, path: str, mode: OpenBinaryModeReading, buffering: Literal[-1, 1] = -1,
             encoding: None = None, errors: None = None,
             newline: None = None) -> io.BufferedReader: ...

    @overload
    def open(self, path: str, mode: OpenBinaryMode, buffering: int = -1,
             encoding: None = None, errors: None = None,
             newline: None = None) -> BinaryIO: ...

    @overload
    def open(self, path: str, mode: str, buffering: int = -1,
             encoding: str | None = None, errors: str | None = None,
             newline: str | None = None) -> IO[Any]: ...

    def open(self, path: str, mode: str = "r", buffering: int = -1,
             encoding: str | None = None, errors: str | None = None,
             newline: str | None = None) -> Any:
        """Open a file and return a real ``io`` object, like the builtin ``open``.

        ``w``/``x`` replace the content atomically at close (readers see the old content until
        then; an exception inside ``with`` keeps the old content). ``a``/``r+`` write in place,
        each flush atomic. Text defaults to UTF-8. ``buffering=0`` returns the raw stream.

        Raises:
            NotFoundError: reading (``r``, ``r+``) a path where nothing is.
            IsADirError: ``path`` is a directory.
            NotADirError: a component of the path is a file.
            AlreadyExistsError: mode ``x`` and ``path`` exists.
            ReadOnlyError: a writing mode on a read-only VFS.
            ValueError: an invalid mode, or ``buffering=0`` in text mode.
            StaleHandleError: (on the returned file) the file was replaced or removed meanwhile.
            CorruptionError: (on the returned file) content fails its checksum.
        """
        kind, plus = _parse_mode(mode)
        p = self._rpath(path) if kind == "r" and not plus else self._path(path)
        if not isinstance(buffering, int):
            raise TypeError("buffering must be an int")
        tree = self._tree
        try:
            if kind == "r":
                if plus:
                    self._check_writable(p)
                if plus:
                    node = tree.open_for_update(p)
                    raw = tree.handle(p, inode_id=node.id, size=node.size,
                                      chunk_size=node.chunk_size, readable=True, writable=True,
                                      generation=node.generation)
                else:
                    opened, extra = tree.reader_args(p)
                    raw = tree.handle(p, inode_id=opened.id, size=opened.size,
                                      chunk_size=opened.chunk_size, readable=True,
                                      writable=False, generation=opened.generation, **extra)
                    raw.prime(opened.first)
            elif kind in "wx":
                self._check_writable(p)
                ctime = tree.check_writable_target(p, exclusive=kind == "x")
                raw = tree.handle(p, inode_id=None, size=0, chunk_size=self._chunk_size,
                                  readable=plus, writable=True, staged=True,
                                  exclusive=kind == "x", ctime_ns=ctime)
            else:
                self._check_writable(p)
                node = tree.create_empty(p)
                raw = tree.handle(p, inode_id=node.id, size=node.size,
                                  chunk_size=node.chunk_size, readable=plus, writable=True,
                                  append=True, generation=node.generation)
                raw.seek(node.size)
        except DB_ERRORS as exc:
            raise translate(exc, p) from exc
        try:
            return wrap(raw, mode, buffering, encoding, errors, newline)
        except BaseException:
            raw.abandon()
            raise

    # -- changes --------------------------------------------------------------------------
    @_translated
    def write_bytes(self, path: str, content: bytes, *, mode: int | None = None,
                    mtime_ns: int | None = None) -> int:
        """Replace a file's content in one transaction (parents are created). Returns the
        number of bytes written.

        Raises:
            ContractError: ``content`` is None (a ``ValueError`` and ``icontract.ViolationError``).
            TypeError: ``content`` is not bytes-like.
            IsADirError: ``path`` is a directory.
            NotADirError: a component of the path is a file.
            FileTooLargeError: ``content`` is 1 TiB or more.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            BusyError: another writer held the write lock past ``busy_timeout``.
            NoSpaceError: the disk or the database is full; nothing of the write is committed.
        """
        p, data = self._checked_write(path, content)
        return self._tree.write_bytes(p, data, mtime_ns=mtime_ns,
                                      mode=FILE_MODE if mode is None else _file_mode(mode))

    def _checked_write(self, path: object, content: object) -> tuple[str, bytes]:
        """(normalised path, bytes) for a whole-file write, or the error. The contract is
        checked inline: icontract's wrapper costs ~10 µs a call, a third of a small-file
        write. It raises the same ContractError the decorators raise."""
        if content is None:
            raise _content_error(path)
        p = self._path(path)
        if isinstance(content, str) or not isinstance(content, (bytes, bytearray, memoryview)):
            raise TypeError(f"content must be bytes-like, not {type(content).__name__}")
        self._check_writable(p)
        return p, bytes(content)

    @_translated
    def write_files(self, files: Mapping[str, bytes] | Iterable[tuple[str, bytes]], *,
                    mode: int | None = None) -> int:
        """Write many whole files in ONE transaction: the same as ``write_bytes`` for each
        (in order: parents created, existing files replaced), all or nothing. The bulk
        ingest path: new small files are inserted by one executemany. Returns the number of
        files written.

        Raises:
            ContractError: a content is None.
            TypeError: ``files`` is not a mapping or an iterable of (path, bytes) pairs.
            IsADirError: a path is a directory (nothing is written then).
            NotADirError: a component of a path is a file (nothing is written).
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            BusyError: another writer held the write lock past ``busy_timeout``.
            NoSpaceError: the disk or the database is full; nothing of the write is committed.
        """
        items = files.items() if isinstance(files, Mapping) else files
        checked: list[tuple[str, bytes]] = []
        for item in items:
            try:
                path, content = item
            except (TypeError, ValueError):
                raise TypeError(f"files must be a mapping or (path, bytes) pairs, got an item "
                                f"{type(item).__name__}") from None
            checked.append(self._checked_write(path, content))
        if not checked:
            self._live_uow()
            return 0
        file_mode = FILE_MODE if mode is None else _file_mode(mode)
        if self._folded:
            # Each path spelled as stored once the ones before it exist ("/A/x" then "/a/y"
            # must land in one directory): one by one, in one transaction.
            with self.atomic_batch():
                for path, content in checked:
                    self._tree.write_bytes(self._path(path), content, mode=file_mode)
            return len(checked)
        return self._tree.write_files(checked, file_mode)

    @_translated
    def write_text(self, path: str, content: str, encoding: str = "utf-8",
                   errors: str | None = None, newline: str | None = None) -> int:
        """Replace a file's content with ``content`` encoded. Returns the characters written.

        Raises:
            ContractError: ``content`` is None.
            TypeError: ``content`` is not a str.
            IsADirError: ``path`` is a directory.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            BusyError: another writer held the write lock past ``busy_timeout``.
            NoSpaceError: the disk or the database is full; nothing of the write is committed.
        """
        if content is None:  # inline contract, see write_bytes
            raise _content_error(path)
        p = self._path(path)
        if not isinstance(content, str):
            raise TypeError(f"content must be str, not {type(content).__name__}")
        text = content
        if newline not in (None, "", "\n"):
            text = text.replace("\n", newline)
        self._check_writable(p)
        self._tree.write_bytes(p, text.encode(encoding, errors or "strict"))
        return len(content)

    @_translated
    def mkdir(self, path: str, parents: bool = False, exist_ok: bool = False) -> None:
        """Create a directory.

        Raises:
            AlreadyExistsError: ``path`` exists (unless a directory and ``exist_ok``).
            NotFoundError: the parent is missing and not ``parents``.
            NotADirError: a component of the parent is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        p = self._path(path)
        self._check_writable(p)
        if p == paths.ROOT:
            if exist_ok:
                return
            raise _exists_error(p)
        self._tree.mkdir(p, parents=parents, exist_ok=exist_ok)

    @_translated
    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits (``mode & 0o7777``) of a file or directory; the type bits
        stay. vfs_orm stores them (``pack``/``unpack`` keep them) but does not enforce them.

        Raises:
            NotFoundError: nothing at ``path``.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        p = self._path(path)
        self._check_writable(p)
        if not isinstance(mode, int):
            raise TypeError("mode must be an int")
        self._tree.set_meta(p, mode=mode & 0o7777)

    @_translated
    def chown(self, path: str, uid: int, gid: int, *, clear_setid: bool = False) -> None:
        """Set the numeric owner and group of a file or directory (``os.chown``; -1 leaves
        one unchanged). vfs_orm stores them (format 0009) and ``stat`` reports them
        (``st_uid``, ``st_gid``); an entry whose owner was never set reports the calling
        process's. Like ``chmod`` it neither checks who may chown nor enforces them (a mount
        does, through the kernel). An entry of an underlay is copied up first. The mode is
        left as it is unless ``clear_setid``: then, in the same transaction, a file loses its
        set-user-ID bit and, if group-executable, its set-group-ID bit, as Linux does when an
        unprivileged process chowns (``vfs-orm mount`` asks for that).

        Raises:
            NotFoundError: nothing at ``path``.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            TypeError: ``uid`` or ``gid`` is not an int.
            InvalidOperationError: ``uid`` or ``gid`` is not -1 or an id in [0, 2**32 - 2]
                (a ``ValueError``).
        """
        p = self._path(path)
        self._check_writable(p)
        self._tree.set_meta(p, owner=_owner_ids(p, uid, gid), clear_setid=clear_setid)

    @_translated
    def _set_owner(self, path: str, uid: int | None, gid: int | None) -> None:
        """The stored owner exactly (None: not set), for copies between trees
        (``copying``, ``patching``): ``chown`` cannot unset one."""
        p = self._path(path)
        self._check_writable(p)
        self._tree.set_meta(p, owner=(uid, gid))

    @_translated
    def symlink(self, target: str | os.PathLike[str], path: str) -> None:
        """Create a symbolic link ``path`` pointing to ``target`` (``os.symlink``'s order;
        format 0010). The target is stored as given, relative or absolute, and need not
        exist. The API does not follow links: ``readlink`` reads one, and opening one as a
        file is ``SpecialFileError`` (``ELOOP``); a mount shows it to the kernel, which
        follows it. A whole write over a link (``write_bytes``, ``open(path, "w")``)
        replaces it with a regular file, as ``os.replace`` of a saved file does.

        Raises:
            AlreadyExistsError: something is at ``path``.
            NotFoundError: ``target`` is empty (as ``symlink(2)``).
            InvalidPathError: ``target`` holds a NUL or is 4,096 bytes or longer
                (``ENAMETOOLONG``).
            TypeError: ``target`` is not a str or path.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        p = self._path(path)
        self._check_writable(p)
        self._tree.write_bytes(p, special.link_content(p, target), exclusive=True,
                               mode=special.LINK | 0o777)

    @_translated
    def readlink(self, path: str) -> str:
        """The target of the symbolic link ``path`` (``os.readlink``).

        Raises:
            NotFoundError: nothing at ``path``.
            InvalidOperationError: ``path`` is not a symbolic link (``EINVAL``, a
                ``ValueError``).
            CorruptionError: the stored target is damaged.
        """
        p = self._path(path)
        mode, content = self._tree.special_content(p)
        if special.kind_of(mode) != special.LINK:
            raise InvalidOperationError.for_path(p, "not a symbolic link")
        return special.link_target(p, content)

    @_translated
    def mknod(self, path: str, mode: int = 0o600 | _stat.S_IFREG, device: int = 0) -> None:
        """Create a FIFO, a socket, a character or block device, or an empty regular file
        (``os.mknod``; format 0010): the type bits of ``mode`` say which, its permission
        bits are kept, ``device`` (``os.makedev``) is stored for a device. vfs_orm stores
        them for a mount, where the kernel serves them; the API cannot open them
        (``SpecialFileError``, ``ENXIO``).

        Raises:
            AlreadyExistsError: something is at ``path``.
            InvalidOperationError: ``mode`` asks for a directory or a symbolic link
                (``mkdir``, ``symlink``), or ``device`` is not a 32-bit Linux device number
                (a ``ValueError``).
            TypeError: ``mode`` or ``device`` is not an int.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        p = self._path(path)
        self._check_writable(p)
        if not isinstance(mode, int):
            raise TypeError("mode must be an int")
        kind = special.kind_of(mode) or special.REGULAR
        if kind == special.REGULAR:
            self._tree.write_bytes(p, b"", exclusive=True, mode=_file_mode(mode))
            return
        content = special.node_content(p, kind, device)
        self._tree.write_bytes(p, content, exclusive=True, mode=kind | (mode & 0o7777))

    @_translated
    def device_number(self, path: str) -> int:
        """The device number ``mknod`` stored for a character or block device (``st_rdev``:
        ``os.major``/``os.minor`` take it apart); 0 for a FIFO or a socket.

        Raises:
            NotFoundError: nothing at ``path``.
            InvalidOperationError: ``path`` is a regular file, a directory or a link (a
                ``ValueError``).
            CorruptionError: the stored number is damaged.
        """
        p = self._path(path)
        mode, content = self._tree.special_content(p)
        if special.kind_of(mode) not in special.NODES:
            raise InvalidOperationError.for_path(p, "not a FIFO, socket or device")
        return special.device_of(p, mode, content)

    @_translated
    def utime(self, path: str, times: tuple[float, float] | None = None, *,
              ns: tuple[int, int] | None = None) -> None:
        """``os.utime``: set the modification time (the access time is not stored).

        Raises:
            NotFoundError: nothing at ``path``.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            TypeError: ``times`` or ``ns`` is not a pair of numbers (of ints for ``ns``).
            InvalidOperationError: a time that is not finite or outside the signed 64-bit
                nanoseconds vfs_orm stores (years 1677 to 2262), a ``ValueError``.
        """
        p = self._path(path)
        self._check_writable(p)
        mtime = _utime_ns(times, ns)
        self._tree.set_meta(p, mtime_ns=mtime)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and any missing parents (``os.makedirs``).

        Raises:
            AlreadyExistsError: ``path`` exists and not ``exist_ok`` (or is a file).
            NotADirError: a component is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        self.mkdir(path, parents=True, exist_ok=exist_ok)

    @icontract.require(lambda path: not _is_root(path), "cannot remove the root",
                       error=lambda path: _root_error(path))
    @_translated
    def remove(self, path: str) -> None:
        """Delete a file.

        Raises:
            NotFoundError: nothing at ``path``.
            IsADirError: ``path`` is a directory.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        p = self._path(path)
        self._check_writable(p)
        self._tree.remove(p)

    def unlink(self, path: str) -> None:
        """Same as ``remove``.

        Raises:
            NotFoundError: nothing at ``path``.
            IsADirError: ``path`` is a directory.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        self.remove(path)

    @icontract.require(lambda path: not _is_root(path), "cannot remove the root",
                       error=lambda path: _root_error(path))
    @_translated
    def rmdir(self, path: str) -> None:
        """Delete an empty directory.

        Raises:
            DirNotEmptyError: the directory has entries (a ``PermissionError``, errno ENOTEMPTY).
            NotFoundError: nothing at ``path``.
            NotADirError: ``path`` is a file.
            RootContractError: ``path`` is ``/``.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        p = self._path(path)
        self._check_writable(p)
        self._tree.rmdir(p)

    @icontract.require(lambda path: not _is_root(path), "cannot remove the root",
                       error=lambda path: _root_error(path))
    @_translated
    def rmtree(self, path: str) -> None:
        """Delete a directory and everything below it, in one statement.

        Raises:
            NotADirError: ``path`` is a file (as ``shutil.rmtree``).
            NotFoundError: nothing at ``path``.
            RootContractError: ``path`` is ``/``.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        p = self._path(path)
        self._check_writable(p)
        self._tree.rmtree(p)

    @icontract.require(lambda src: not _is_root(src), "cannot rename the root",
                       error=lambda src: _root_error(src))
    @_translated
    def rename(self, src: str, dst: str) -> None:
        """Move a file or a whole directory (one statement however large the tree).

        Raises:
            AlreadyExistsError: ``dst`` exists (as the seed library; use ``replace``).
            NotFoundError: nothing at ``src``.
            InvalidOperationError: moving a directory into itself (EINVAL).
            RootContractError: ``src`` is ``/``.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        s, d = self._path(src), self._target(src, dst)
        self._check_writable(s)
        if d == paths.ROOT:
            raise _exists_error(s, d)
        self._tree.move(s, d, overwrite=False)

    @icontract.require(lambda src: not _is_root(src), "cannot rename the root",
                       error=lambda src: _root_error(src))
    @_translated
    def replace(self, src: str, dst: str) -> None:
        """``os.replace``: like ``rename`` but an existing file (or empty directory, for a
        directory) at ``dst`` is replaced.

        Raises:
            NotFoundError: nothing at ``src``.
            IsADirError: ``dst`` is a directory and ``src`` a file.
            NotADirError: ``src`` is a directory and ``dst`` a file.
            DirNotEmptyError: ``dst`` is a non-empty directory.
            InvalidOperationError: moving a directory into itself.
            RootContractError: ``src`` is ``/``.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        s, d = self._path(src), self._target(src, dst)
        self._check_writable(s)
        if d == paths.ROOT:
            raise _exists_error(s, d)
        self._tree.move(s, d, overwrite=True)

    @_translated
    def copy(self, src: str, dst: str) -> None:
        """Copy a file's content (replacing ``dst`` if it is a file); no bytes pass through
        Python.

        Raises:
            NotFoundError: nothing at ``src``.
            IsADirError: ``src`` or ``dst`` is a directory.
            NotADirError: a component of the path is a file.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        s, d = self._path(src), self._path(dst)
        self._check_writable(d)
        self._tree.copy_file(s, d)

    @_translated
    def copytree(self, src: str, dst: str, dirs_exist_ok: bool = False) -> None:
        """Copy a directory tree in one transaction.

        Raises:
            AlreadyExistsError: ``dst`` exists (unless a directory and ``dirs_exist_ok``).
            NotFoundError: nothing at ``src``.
            NotADirError: ``src`` is a file.
            InvalidOperationError: ``dst`` is inside ``src``.
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
        """
        s, d = self._path(src), self._path(dst)
        self._check_writable(d)
        self._tree.copytree(s, d, dirs_exist_ok)

    def walk(self, top: str = "/", topdown: bool = True,
             onerror: Callable[[OSError], Any] | None = None
             ) -> Iterator[tuple[str, list[str], list[str]]]:
        """``os.walk``: (dirpath, dirnames, filenames) for every directory, one query each.
        With ``topdown``, pruning ``dirnames`` in place skips those subtrees.

        Raises:
            InvalidPathError: the path has NUL or control characters.
            ClosedError: the VFS is closed.
        """
        t = self._rpath(top)
        try:
            yield from self._tree.walk(t, topdown, onerror)
        except DB_ERRORS as exc:
            raise translate(exc, t) from exc

    @_translated
    def glob(self, pattern: str) -> list[str]:
        """Paths matching ``pattern``, sorted: ``*``, ``?`` and ``[...]`` match inside one
        segment, ``**`` across segments, ``[!x]`` and ``[^x]`` negate.

        Raises:
            InvalidPathError: the path has NUL or control characters.
            ClosedError: the VFS is closed.
        """
        if not isinstance(pattern, str):
            raise TypeError("pattern must be str")
        p = paths.normalize(pattern)
        return _glob.glob(self._tree, p)

    # -- layers ---------------------------------------------------------------------------
    def add_underlay(self, vfs: VFS | str | os.PathLike[str], priority: int = 0,
                     name: str | None = None, *, tree: str | None = None) -> str:
        """Add a read-only layer under this one (mods, DLC, a base pack).

        Reads look in this (local) layer first, then in the underlays by descending priority
        (equal priorities: the earlier added first). Writes only ever go to the local layer.

        Args:
            vfs: a ``VFS`` (it stays live: later writes to it show through), or the path of a
                vfs_orm database or a PostgreSQL URL (opened read-only). Any backend may lie
                under any other: a SQLite file under a SQLite file is ATTACHed, a tree of the
                same PostgreSQL database is read by the same statements as this tree; anything
                else (a SQLite pack under a tree, a tree of another database or server) is a
                foreign layer, read through a read-only VFS of its own (a ``VFS`` given here
                must then stay open while it is a layer).
            priority: higher is searched first.
            name: a unique name; ``underlay_N`` by default.
            tree: the underlay's tree, when ``vfs`` is a PostgreSQL URL.

        Returns:
            The layer's name.

        Raises:
            ValueError: the name is taken ("already exists") or reserved, or ``vfs`` is this VFS.
            TypeError: ``priority`` is not an int.
            FormatVersionError: the underlay is at another format revision (``vfs-orm upgrade PATH``).
            NotAVFSDatabaseError: the path is not a vfs_orm database.
            NotFoundError: nothing at the path (or no such tree).
            VFSError: inside ``atomic_batch()``, or on an embedded VFS (layers need a VFS that
                owns its database).
        """
        name = layering.check_new(self, name, priority)
        if isinstance(vfs, VFS):
            if vfs is self:
                raise ValueError("a VFS cannot be its own underlay")
            return layering.attach(self, vfs, False, name, priority)
        if isinstance(vfs, (str, os.PathLike)):
            # checks it and its format
            return layering.attach(self, VFS(vfs, read_only=True, tree=tree), True, name,
                                   priority)
        raise TypeError("vfs must be a VFS or the path of a vfs_orm database")

    def remove_underlay(self, name: str) -> bool:
        """Remove a layer by name. Returns True if it was there.

        Raises:
            ContractError: ``name`` is not a non-empty string.
            VFSError: inside ``atomic_batch()`` (layers cannot change there).
        """
        return layering.remove(self, name)

    def _open_reader(self, path: str) -> VFS:
        """A read-only VFS of ``path`` (a layer's database, read on its own)."""
        return VFS(path, read_only=True)

    def list_layers(self) -> list[dict[str, Any]]:
        """Layers in resolution order: local first (priority ``inf``), then the underlays.

        Raises:
            ClosedError: the VFS is closed.
        """
        return layering.listed(self)

    @_translated
    def which_layer(self, path: str) -> str | None:
        """The name of the layer that provides ``path`` ("local" for this one), or None.

        Raises:
            InvalidPathError: the path has NUL or control characters.
        """
        return self._tree.which(self._rpath(path))

    @_translated
    def which_layer_detailed(self, path: str) -> dict[str, Any]:
        """Which layers hold ``path`` and which one wins:
        ``{"path", "resolved_from", "layers": [{"name", "has_file", "kind"?}, ...]}``.

        Raises:
            InvalidPathError: the path has NUL or control characters.
        """
        return self._tree.which_detailed(self._rpath(path))

    @property
    def identity(self) -> dict[str, Any]:
        """This database's manifest: uuid, name, version, description, created_ns,
        modified_ns, chunk_size."""
        uow = self._live_uow()
        with uow.read_lock:
            row = self._manifest.identity_row(uow.raw())
        return row._asdict() if row is not None else {}

    @_translated
    def describe(self, name: str | None = None, version: str | None = None,
                 description: str | None = None) -> None:
        """Set this database's name, version and description in its manifest (what a mod or
        DLC pack says about itself).

        Raises:
            ReadOnlyError: the VFS is read-only (a ``PermissionError``).
            BusyError: another writer held the write lock past ``busy_timeout``.
        """
        self._check_writable(self._db_path)
        with self._live_uow().write() as raw:
            self._manifest.describe(raw, name, version, description, time.time_ns())

    @_translated
    def check_layers(self) -> list[dict[str, Any]]:
        """Compare the underlays attached now with the ones this database was last written
        with (recorded in its manifest). Each problem is a dict with ``problem`` one of:

        - ``missing``: a recorded layer is not attached ("this save was made with a mod you
          no longer have");
        - ``changed``: a layer of that name is attached but it is another database (uuid);
        - ``added``: an attached layer was not there when the database was last written.

        An empty list means the stack is the one recorded.

        Raises:
            ClosedError: the VFS is closed.
        """
        return layering.check(self)

    # -- transactions ---------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic_batch(self) -> Iterator[VFS]:
        """Everything written inside commits together, or not at all if an exception leaves
        the block. Nested batches are savepoints: an inner failure caught inside an outer
        batch undoes only the inner block. Other threads' writes wait until the batch ends.

        Raises:
            BusyError: another writer held the write lock past ``busy_timeout``.
            ReadOnlyError: a write inside, on a read-only VFS.
            NoSpaceError: the disk or the database is full; nothing of the write is committed.
        """
        uow = self._live_uow()
        with uow.batch():
            yield self

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[VFS]:
        """Every read inside sees one committed state: a game loading a 5-file save while
        another process saves gets all five files of one save. Works on a read-only VFS and
        through layers, and never blocks writers (SQLite: one read transaction pinning the
        WAL snapshot; :memory: databases hold this VFS's lock instead). Nestable; inside
        ``atomic_batch`` it changes nothing. Writes inside raise ``InvalidOperationError``
        (use ``atomic_batch`` to read and write consistently).

        Raises:
            InvalidOperationError: a write inside the block, on a file database or a
                PostgreSQL tree (use ``atomic_batch``). A ``:memory:`` database is one
                connection: a write of this VFS inside its snapshot goes through.
        """
        uow = self._live_uow()
        with uow.snapshot():
            yield self

    @contextlib.contextmanager
    def tracer(self, callback: Callable[[str], object] | None = None) -> Iterator[list[str]]:
        """Record the SQL statements this VFS runs while the block runs: ``with
        fs.tracer() as statements:`` gives a list that fills with each statement's text, in
        order (``callback`` is also called with each). What the tests of hot paths count, and
        a way to see what a call costs: ``exists`` is one ``SELECT``, a small
        ``write_bytes`` one ``INSERT`` between ``BEGIN IMMEDIATE`` and ``COMMIT``.

        SQLite gives each statement as it ran it, values bound, ``BEGIN`` and ``COMMIT``
        included (sqlite3's trace callback); PostgreSQL the text sent, with its placeholders
        (``%s`` or ``$1``), a transaction's ``BEGIN ISOLATION LEVEL ...`` before its first
        statement. A row of an ``executemany`` is one entry on both. Statements of this
        thread's connection are traced (a ``:memory:`` database has one connection for every
        thread), with the underlays it reads (the extra connections of a deep stack attached
        when the block starts); not those of another ``VFS`` object, nor the setup statements
        SQLAlchemy runs when a connection is opened. Tracers nest: each sees every
        statement of its block. Nothing is traced and nothing is paid outside a block.

        Raises:
            ClosedError: the VFS is closed.
        """
        uow = self._live_uow()
        st = uow.view()
        statements: list[str] = []
        outer = st.tracing

        def record(sql: str) -> None:
            statements.append(sql)
            if callback is not None:
                callback(sql)
            if outer is not None:
                outer(sql)

        st.trace(record)
        try:
            yield statements
        finally:
            st.trace(outer)

    def flush(self) -> None:
        """Nothing to do: every write is committed when it returns (or when its batch ends).

        Raises:
            ClosedError: the VFS is closed.
        """
        self._live_uow()

    def mount(self, mountpoint: str | os.PathLike[str],
              options: dict[str, Any] | None = None) -> AbstractContextManager[str]:
        """``with vfs.mount(dir):`` serves this VFS as a real directory at ``dir`` (libfuse 3,
        the ``mount`` extra) from a background thread, and unmounts on exit. ``options`` are
        FUSE ``-o`` options (``{"allow_other": True}``). See docs/guide/mounting.md.

        Raises:
            MountError: no binding, no ``/dev/fuse``, or the kernel refused the mount.
        """
        from vfs_orm.adapters.mount import mounted

        return mounted(self, mountpoint, options)

    @_translated
    def sync(self) -> None:
        """Make everything committed durable and fold the WAL into the database file.

        Raises:
            ClosedError: the VFS is closed.
            BusyError: another writer held the write lock past ``busy_timeout``.
        """
        uow = self._live_uow()
        if uow.shared or uow.in_batch() or self._embedded:
            return
        with uow.read_lock:
            self._backend.sync(uow.raw())


def _file_mode(mode: int) -> int:
    return FILE_MODE & ~0o7777 | (mode & 0o7777)


def _exists_error(path: str, path2: str | None = None) -> VFSError:
    from vfs_orm.errors import AlreadyExistsError

    return AlreadyExistsError.for_path(path, os.strerror(errno.EEXIST), path2)


#: The seed library's name.
VirtualFileSystem = VFS
