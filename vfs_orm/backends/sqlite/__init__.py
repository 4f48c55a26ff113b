"""The SQLite backend: one database file (or ``:memory:``) through pysqlite.

Its modules: ``engine`` (engines, pragmas, URIs, opening errors, host engines), ``schema`` (the
format: status, Alembic upgrades, schema verification), ``connection`` (a thread's connection
and its ``BEGIN IMMEDIATE`` transactions), ``errors`` (result codes to VFSErrors),
``dialect`` (the shared SQL core's statements compiled for SQLite, its hooks, incremental BLOB
reads), ``attach`` (underlays ATTACHed in connection groups), ``images`` (databases as bytes),
``closed`` (the closed schema) and ``maintenance`` (space). The statements themselves, the
layer stack's shape and the format's checks are the shared core's (``backends/sql``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from vfs_orm.backends.base import Capabilities, Opened
from vfs_orm.backends.sql.check import CheckReport
from vfs_orm.backends.sql.check import check as _check
from vfs_orm.backends.sql.check import counts as _counts
from vfs_orm.backends.sql.stack import Layer, LayerStack
from vfs_orm.backends.sqlite import attach as _attach
from vfs_orm.backends.sqlite import engine as _engine
from vfs_orm.backends.sqlite import images as _images
from vfs_orm.backends.sqlite import schema as _schema
from vfs_orm.backends.sqlite.connection import ThreadConnection
from vfs_orm.backends.sqlite.dialect import (
    SQLiteCheckRepository,
    SQLiteInodeRepository,
    SQLiteManifestRepository,
    inode_repository,
    stack_repository,
)
from vfs_orm.backends.sqlite.errors import DB_ERRORS, translate
from vfs_orm.backends.sqlite.maintenance import AUTO_VACUUM_MODES
from vfs_orm.backends.sqlite.maintenance import compact as _compact
from vfs_orm.content import PLAIN, Content
from vfs_orm.errors import VFSError
from vfs_orm.rows import Identity

if TYPE_CHECKING:
    from vfs_orm.uow import UnitOfWork

__all__ = ["SQLITE", "SQLiteBackend"]



@functools.cache
def _manifests() -> SQLiteManifestRepository:
    """The manifest statements of a SQLite database, compiled once per process (they hold no
    state of their own; every open needs them, twice)."""
    return SQLiteManifestRepository()

class SQLiteBackend:
    """The operations the layers above need from SQLite (see ``backends.base``)."""

    capabilities = Capabilities(
        name="sqlite", dialect="sqlite", in_memory=True, images=True, blob_reads=True,
        layers=True, layers_per_connection=10, multi_process=True, reclaims_space=True,
        durability_choice=True, checkpoint_views=True)
    source_tree: str | None = None  # a file holds one tree
    errors: tuple[type[BaseException], ...] = DB_ERRORS

    # -- errors -----------------------------------------------------------------------------
    def translate(self, exc: BaseException, path: str | None = None) -> VFSError:
        return translate(exc, path)

    def checkpoint_view_refused(self, exc: BaseException) -> bool:
        return False  # a file's checkpoint view is always made: any error is raised

    # -- opening ----------------------------------------------------------------------------
    def check_host(self, engine: Any) -> None:
        _engine.check_host_engine(engine)

    def open_engine(self, db_path: str, *, read_only: bool, durable: bool,
                    busy_timeout: float, image: bytes | None = None,
                    tree: str | None = None, checkpoint: int | None = None) -> Opened:
        """An engine for ``db_path`` (``":memory:"``: a private in-memory database, holding
        ``image`` if given; ``checkpoint``: a file's checkpoint read as its tree)."""
        memory = db_path == ":memory:"
        keep_alive = None
        if memory:
            uri = _engine.memory_uri()
            if image is not None:
                keep_alive = _images.load(image, uri)
            ro_uri = uri + "&mode=ro"
        else:
            _engine.check_file(db_path, must_exist=read_only)
            uri = _engine.file_uri(db_path, read_only)
            ro_uri = _engine.file_uri(db_path, True)
        if checkpoint is not None and (memory or not read_only):
            raise ValueError("a checkpoint is read in place from a file, read-only")
        engine = _engine.make_engine(uri, read_only=read_only, shared=memory, durable=durable,
                                     busy_timeout=busy_timeout, checkpoint=checkpoint)
        return Opened(engine, ro_uri, memory, keep_alive)

    @contextlib.contextmanager
    def own_transactions(self, conn: Any) -> Iterator[None]:
        """While vfs_orm sets a connection up, its own BEGIN/COMMIT are the only ones."""
        before = _engine.own_transactions(conn)
        try:
            yield
        finally:
            _engine.restore_transactions(conn, before)

    def prepare(self, conn: Any, *, where: str, memory: bool, read_only: bool, embedded: bool,
                page_size: int | None, on_create: Callable[[Any], None],
                tree: str | None = None) -> Identity | None:
        """Check (read-only) or create/upgrade the format on ``conn``; returns the identity
        row (see ``ManifestRepository.identity_row``)."""
        if read_only:
            status, rev = _schema.admit(conn, where, embedded=embedded)
            if status != "current":
                raise _schema.refusal(status, rev, where)
        else:
            _schema.migrate(conn, where=where, page_size=page_size, on_create=on_create,
                            embedded=embedded)
            if not memory and not embedded:
                _engine.set_journal_mode(conn, "WAL")
        return _manifests().identity_row(_engine.driver(conn))

    def connection(self, conn: Any, borrowed: bool = False) -> ThreadConnection:
        return ThreadConnection(conn, borrowed)

    def attach_limit(self, raw: sqlite3.Connection) -> int:
        """Underlays one connection can ATTACH (this build's SQLITE_LIMIT_ATTACHED)."""
        return max(1, raw.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED))

    def layer_stack(self, version: int, layers: tuple[Layer, ...], per_connection: int,
                    busy_timeout: float, content: Content = PLAIN, folded: bool = False,
                    whiteouts: bool = False) -> LayerStack:
        return LayerStack(version, layers, per_connection, busy_timeout,
                          inode_statements=inode_repository, stack_statements=stack_repository,
                          attach=_attach.apply, content=content, folded=folded,
                          whiteouts=whiteouts)

    def underlay_schema(self, engine: Any, layer_backend: Any, layer_engine: Any,
                        counter: int) -> str | None:
        """A SQLite database is ATTACHed under a generated alias; a PostgreSQL tree is a
        foreign underlay (None)."""
        return f"l{counter}" if layer_backend is self else None

    # -- statements -------------------------------------------------------------------------
    def inode_statements(self, schema: str = "main", content: Content = PLAIN
                         ) -> SQLiteInodeRepository:
        return inode_repository(schema, content)

    def manifest_statements(self) -> SQLiteManifestRepository:
        return _manifests()

    def head_revision(self) -> str:
        return _schema.head_revision()

    def revision(self, target: Any) -> str | None:
        if not isinstance(target, str):
            with target.connect() as conn:
                return _schema.format_status(conn, embedded=True)[1]
        engine = _engine.make_engine(_engine.file_uri(target, read_only=True), read_only=True,
                                     shared=False)
        try:
            with engine.connect() as conn:
                return _schema.format_status(conn)[1]
        finally:
            engine.dispose()

    # -- maintenance ------------------------------------------------------------------------
    def check(self, raw: sqlite3.Connection, quick: bool) -> CheckReport:
        return _check(raw, quick, _schema.schema_problem, repo=SQLiteCheckRepository(),
                      manifests=_manifests())

    def info(self, raw: sqlite3.Connection, entry_problems: Callable[[Any], Any]
             ) -> dict[str, Any]:
        """Counts, sizes and settings of the database behind ``raw``."""
        repo = SQLiteCheckRepository()
        rev = raw.execute("SELECT version_num FROM vfs_alembic_version").fetchone()
        pragmas = repo.pragmas(raw)
        return {"revision": rev[0] if rev else None, "head": _schema.head_revision(),
                **_counts(raw, repo, entry_problems),
                "page_size": pragmas["page_size"], "pages": pragmas["page_count"],
                "free_pages": pragmas["freelist_count"],
                "journal_mode": pragmas["journal_mode"],
                "auto_vacuum": AUTO_VACUUM_MODES.get(pragmas["auto_vacuum"], "unknown")}

    def compact(self, uow: UnitOfWork, *, embedded: bool, file_db: bool, full: bool = False
                ) -> dict[str, Any]:
        """``full``: ``VACUUM`` (pages packed full), instead of giving back free pages."""
        return _compact(uow, embedded=embedded, file_db=file_db, full=full)

    def sync(self, raw: sqlite3.Connection) -> None:
        """Fold the WAL into the database file (everything committed becomes durable there)."""
        raw.execute("PRAGMA wal_checkpoint(FULL)").fetchall()

    # -- images -----------------------------------------------------------------------------
    def collect_image(self, data: bytes | Iterable[bytes]) -> bytes:
        return _images.collect(data)

    def memory_image(self, raw: sqlite3.Connection, block_size: int) -> list[bytes]:
        """An in-memory database's image, whole (the caller holds its lock)."""
        return list(_images.memory_blocks(raw, block_size))

    def file_image(self, db_path: str, read_only_uri: str, block_size: int) -> Iterator[bytes]:
        """A file database's image, streamed from a consistent snapshot with bounded memory
        (writers go on meanwhile)."""
        rw_uri = _engine.file_uri(db_path, read_only=False)
        checkpointer: list[sqlite3.Connection] = []

        def writer() -> sqlite3.Connection:
            if not checkpointer:
                checkpointer.append(sqlite3.connect(rw_uri, uri=True, isolation_level=None,
                                                    timeout=5.0))
            return checkpointer[0]

        try:
            yield from _images.file_blocks(db_path, read_only_uri, writer, block_size)
        finally:
            for c in checkpointer:
                c.close()

    def replace_content(self, source: sqlite3.Connection, target: sqlite3.Connection) -> None:
        """Make ``target``'s database a copy of ``source``'s, in one step (``source``: an
        image opened in memory, given ``target``'s page size first if it has another: SQLite's
        backup cannot change a WAL database's page size, and patches use 512-byte pages)."""
        want = int(target.execute("PRAGMA page_size").fetchone()[0])
        if int(source.execute("PRAGMA page_size").fetchone()[0]) == want:
            source.backup(target)
            return
        # An in-memory database keeps its page size through VACUUM: the image is given the
        # target's in a file of its own (rollback journal), then copied.
        with tempfile.TemporaryDirectory(prefix="vfs-orm-image-") as tmp:
            repaged = os.path.join(tmp, "image.db")
            with open(repaged, "wb") as f:
                f.write(source.serialize())
            copy = sqlite3.connect(repaged, isolation_level=None)
            try:
                copy.execute("PRAGMA journal_mode = DELETE")
                copy.execute(f"PRAGMA page_size = {want}")
                copy.execute("VACUUM")
                copy.backup(target)
            finally:
                copy.close()

    def file_bytes(self, db_path: str) -> int:
        return os.path.getsize(db_path)


#: The SQLite backend (stateless: one instance serves every VFS).
SQLITE = SQLiteBackend()
