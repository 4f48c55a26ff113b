"""The PostgreSQL backend: a tree is a schema of a PostgreSQL database, through psycopg 3.

``VFS("postgresql+psycopg://user@host/db", tree="saves")``. Many processes and machines may
open the same tree: readers never block, writers of one tree run in parallel in SERIALIZABLE
transactions and wait only for the rows they both change (see ``connection``). Importing
vfs_orm never imports this package or psycopg (an optional extra, ``vfs-orm[postgresql]``).

Its modules: ``engine`` (URLs, tree names, the driver), ``schema`` (creating and checking a
tree's format), ``connection`` (a thread's connection and its transactions), ``errors``
(SQLSTATE to VFSError), ``statements`` (the SQLite backend's statements compiled for
PostgreSQL, with the few that differ replaced).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy

from vfs_orm.backends.base import DEFAULT_BUSY_TIMEOUT, Capabilities, Opened
from vfs_orm.backends.postgresql import closed as _closed
from vfs_orm.backends.postgresql import engine as _engine
from vfs_orm.backends.postgresql import schema as _schema
from vfs_orm.backends.postgresql.connection import PGConnection
from vfs_orm.backends.postgresql.errors import PGError, translate_sqlstate
from vfs_orm.backends.postgresql.statements import (
    PGCheckRepository,
    PGInodeRepository,
    PGManifestRepository,
    PGStackRepository,
)
from vfs_orm.backends.sql.check import CheckReport, counts
from vfs_orm.backends.sql.check import check as _check
from vfs_orm.backends.sql.revisions import head_revision
from vfs_orm.backends.sql.stack import Layer, LayerStack
from vfs_orm.backends.sql.statements import compiled_once
from vfs_orm.backends.sql.views import PG_VIEW_SCHEMA, pg_checkpoint_views
from vfs_orm.content import PLAIN, Content
from vfs_orm.errors import InvalidOperationError, ReadOnlyError, VFSError
from vfs_orm.rows import Identity

if TYPE_CHECKING:
    from vfs_orm.uow import UnitOfWork

DEFAULT_TREE = _engine.DEFAULT_TREE
#: The tables of a tree (compact() vacuums them).
_TABLES = ("vfs_inodes", "vfs_chunks", "vfs_groups", "vfs_layer_manifests",
           "vfs_alembic_version")
#: Underlays per connection group: all of them (schemas of one database need no ATTACH).
_ALL_IN_ONE_GROUP = 1 << 30


class PostgreSQLBackend:
    """One tree of a PostgreSQL database (see ``backends.base.Backend``)."""

    capabilities = Capabilities(
        name="postgresql", dialect="postgresql", in_memory=False, images=False,
        blob_reads=False, layers=True, layers_per_connection=_ALL_IN_ONE_GROUP, multi_process=True,
        reclaims_space=True, durability_choice=False, checkpoint_views=True)
    errors: tuple[type[BaseException], ...] = (PGError,)

    def __init__(self, tree: str = DEFAULT_TREE) -> None:
        self.tree = _engine.check_tree(tree)
        #: The tree in the database: ``tree`` itself, except for a checkpoint's view.
        self.source_tree: str | None = self.tree

    def translate(self, exc: BaseException, path: str | None = None) -> VFSError:
        if isinstance(exc, PGError):
            return exc.translate(path)
        return translate_sqlstate(getattr(exc, "orig", exc), path)

    def checkpoint_view_refused(self, exc: BaseException) -> bool:
        """Whether ``exc``, from opening a checkpoint's view, means this server makes no
        temporary views (a hot standby): ``open_checkpoint`` copies the checkpoint then."""
        return views_refused(exc)

    # -- opening ----------------------------------------------------------------------------
    def check_host(self, engine: Any) -> None:
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
            raise VFSError.for_path(str(engine.url), "vfs_orm on PostgreSQL needs a "
                                                     "postgresql+psycopg engine (psycopg 3)")

    def open_engine(self, db_path: str, *, read_only: bool, durable: bool,
                    busy_timeout: float, image: bytes | None = None,
                    tree: str | None = None, checkpoint: int | None = None) -> Opened:
        if checkpoint is not None:
            raise ValueError("a checkpoint's view needs checkpoint_backend()")
        engine = _engine.make_engine(db_path, read_only=read_only, busy_timeout=busy_timeout)
        return Opened(engine, db_path, False, None)

    @contextlib.contextmanager
    def own_transactions(self, conn: Any) -> Iterator[None]:
        yield  # setting up runs in SQLAlchemy's own transaction (see prepare)

    def prepare(self, conn: Any, *, where: str, memory: bool, read_only: bool, embedded: bool,
                page_size: int | None, on_create: Callable[[Any], None],
                tree: str | None = None) -> Identity | None:
        if embedded and conn.in_transaction():
            # A host session's transaction: the tree must exist already (creating it needs
            # its own transaction); upgrade_engine() creates it.
            rev = _schema.tree_revision(conn, self.tree)
            if rev != head_revision():
                raise InvalidOperationError.for_path(
                    where, "create the tree first: vfs_orm.upgrade_engine(engine, tree=...)")
            return None
        return _schema.prepare(conn, tree=self.tree, where=where, read_only=read_only,
                               on_create=on_create)

    def connection(self, conn: Any, borrowed: bool = False) -> PGConnection:
        return PGConnection(conn, self.tree, borrowed)

    def attach_limit(self, raw: Any) -> int:
        return _ALL_IN_ONE_GROUP

    def layer_stack(self, version: int, layers: tuple[Layer, ...], per_connection: int,
                    busy_timeout: float, content: Content = PLAIN, folded: bool = False,
                    whiteouts: bool = False) -> LayerStack:
        """Underlays are trees (schemas) of the same database: every connection sees them,
        so the whole stack is one group, resolved by one statement."""
        return LayerStack(version, layers, _ALL_IN_ONE_GROUP, busy_timeout,
                          top_schema=self.tree, inode_statements=_inode_statements,
                          stack_statements=_stack_statements, content=content,
                          folded=folded, whiteouts=whiteouts)

    def underlay_schema(self, engine: Any, layer_backend: Any, layer_engine: Any,
                        counter: int) -> str | None:
        """A tree of the same database is a schema this tree's connections see (one group
        with it); anything else (a SQLite pack, another database or server) is foreign."""
        if not isinstance(layer_backend, PostgreSQLBackend) or \
                not _engine.same_database(engine.url, layer_engine.url):
            return None
        if layer_backend.tree == self.tree:
            raise ValueError("a tree cannot be its own underlay")
        return layer_backend.tree

    # -- statements -------------------------------------------------------------------------
    def inode_statements(self, schema: str = "main", content: Content = PLAIN
                         ) -> PGInodeRepository:
        return _inode_statements(self.tree, content)

    def manifest_statements(self) -> PGManifestRepository:
        return _manifest_statements(self.tree)

    def head_revision(self) -> str:
        return head_revision()

    def revision(self, target: Any) -> str | None:
        engine = target if not isinstance(target, str) else _engine.make_engine(
            target, read_only=True, busy_timeout=DEFAULT_BUSY_TIMEOUT)
        try:
            with engine.connect() as conn:
                return _schema.tree_revision(conn, self.tree)
        finally:
            if engine is not target:
                engine.dispose()

    # -- maintenance ------------------------------------------------------------------------
    def check(self, raw: Any, quick: bool) -> CheckReport:
        return _check(raw, quick, lambda raw: _closed.problem(raw, self.tree),
                      repo=PGCheckRepository(self.tree), manifests=self.manifest_statements())

    def info(self, raw: Any, entry_problems: Callable[[Any], Any]) -> dict[str, Any]:
        repo = PGCheckRepository(self.tree)
        rev = raw.execute(f'SELECT version_num FROM "{self.tree}".vfs_alembic_version',
                          ()).fetchone()
        return {"revision": rev[0] if rev else None, "head": head_revision(),
                "tree": self.source_tree, **counts(raw, repo, entry_problems)}

    def compact(self, uow: UnitOfWork, *, embedded: bool, file_db: bool, full: bool = False
                ) -> dict[str, Any]:
        """``VACUUM (ANALYZE)`` (or ``VACUUM (FULL, ANALYZE)``) of the tree's tables, on this
        thread's connection outside any transaction (VACUUM cannot run inside one)."""
        if uow.read_only:
            raise ReadOnlyError.for_path(uow.where, "the VFS is read-only")
        if embedded or uow.in_batch():
            raise InvalidOperationError.for_path(
                uow.where, "compact() needs a connection of its own outside any transaction "
                           "(not inside atomic_batch() or a host application's session)")
        tables = ", ".join(f'"{self.tree}".{t}' for t in _TABLES)
        with uow.lock:
            try:
                raw = uow.raw()
                before = self._space(raw)
                raw.script(f"VACUUM ({'FULL, ' if full else ''}ANALYZE) {tables}")
                after = self._space(raw)
            except PGError as exc:
                raise exc.translate(uow.where) from exc
            uow.writes += 1  # open handles re-check their file before trusting a cache
        (bytes_before, dead_before), (bytes_after, dead_after) = before, after
        return {"method": "vacuum full" if full else "vacuum", "bytes_before": bytes_before,
                "bytes_after": bytes_after, "dead_rows_before": dead_before,
                "dead_rows_after": dead_after}

    def _space(self, raw: Any) -> tuple[int, int]:
        """(bytes on disk of the tree's tables with their indexes and TOAST, dead rows as
        the statistics collector counts them)."""
        row = raw.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint, "
            "coalesce(sum(pg_stat_get_dead_tuples(c.oid)), 0)::bigint "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (self.tree,)).fetchone()
        size, dead = (None, None) if row is None else row
        if type(size) is not int or type(dead) is not int:
            raise VFSError.for_path(None, "the server did not report the tree's size")
        return size, dead

    def sync(self, raw: Any) -> None:
        """Every commit is durable on the server when it returns."""

    # -- images (not yet: a pack of a tree comes with `vfs-orm copy`) -------------------------
    def _no_images(self) -> VFSError:
        return InvalidOperationError.for_path(None, "images of PostgreSQL trees are not "
                                                    "available yet")

    def collect_image(self, data: bytes | Iterable[bytes]) -> bytes:
        raise self._no_images()

    def memory_image(self, raw: Any, block_size: int) -> list[bytes]:
        raise self._no_images()

    def file_image(self, db_path: str, read_only_uri: str, block_size: int) -> Iterator[bytes]:
        raise self._no_images()

    def replace_content(self, source: Any, target: Any) -> None:
        raise self._no_images()

    def file_bytes(self, db_path: str) -> int:
        return 0


@compiled_once
def _inode_statements(tree: str, content: Content = PLAIN) -> PGInodeRepository:
    return PGInodeRepository(tree, content)


@compiled_once
def _stack_statements(entries: tuple[tuple[int, str], ...], content: Content = PLAIN,
                      folded: bool = False) -> PGStackRepository:
    return PGStackRepository(entries, content, folded)


@functools.lru_cache(maxsize=64)
def _manifest_statements(tree: str) -> PGManifestRepository:
    return PGManifestRepository(tree)


def backend(tree: str | None) -> PostgreSQLBackend:
    return _backend(DEFAULT_TREE if tree is None else tree)


class CheckpointViewBackend(PostgreSQLBackend):
    """Checkpoint ``checkpoint`` of ``tree`` read in place (``VFS.open_checkpoint``): every
    connection of its (read-only) engine makes the format's tables temporary views of the
    checkpoint (``backends/sql/views.py``), and its statements name them (``pg_temp``); the
    format and the closed schema are checked on the real tree."""

    def __init__(self, tree: str, checkpoint: int) -> None:
        super().__init__(tree)
        self.real_tree = self.tree  # checked by the base class
        self.tree = PG_VIEW_SCHEMA
        self.checkpoint = checkpoint

    def open_engine(self, db_path: str, *, read_only: bool, durable: bool,
                    busy_timeout: float, image: bytes | None = None,
                    tree: str | None = None, checkpoint: int | None = None) -> Opened:
        if not read_only or checkpoint != self.checkpoint:
            raise ValueError("a checkpoint's view is read-only, of its own checkpoint")
        engine = _engine.make_engine(db_path, read_only=True, busy_timeout=busy_timeout)
        views = pg_checkpoint_views(self.real_tree, self.checkpoint)

        @sqlalchemy.event.listens_for(engine, "connect")
        def _views(driver: Any, _record: Any) -> None:
            # The session is read-only by default (the engine's): these views are the one
            # thing it creates, in a transaction of their own that says it writes. A hot
            # standby refuses it (open_checkpoint then copies the checkpoint).
            autocommit, driver.autocommit = driver.autocommit, True
            try:
                driver.execute("BEGIN READ WRITE")
                for statement in views:
                    driver.execute(statement)
                driver.execute("COMMIT")
            except BaseException:
                # Out of the failed transaction first: its error is the one to report.
                with contextlib.suppress(Exception):
                    driver.execute("ROLLBACK")
                raise
            finally:
                driver.autocommit = autocommit

        return Opened(engine, db_path, False, None)

    def prepare(self, conn: Any, *, where: str, memory: bool, read_only: bool, embedded: bool,
                page_size: int | None, on_create: Callable[[Any], None],
                tree: str | None = None) -> Identity | None:
        return _schema.prepare(conn, tree=self.real_tree, where=where, read_only=True,
                               on_create=on_create)

    def revision(self, target: Any) -> str | None:
        raise InvalidOperationError.for_path(None, "a checkpoint's view has no revision of "
                                                   "its own: ask its tree")


#: SQLSTATEs that mean a server will not let a session make its temporary views: a hot
#: standby (0A000: no read-write transaction in recovery; 25006), or no TEMP privilege
#: (42501). ``open_checkpoint`` copies the checkpoint then; any other error is raised.
_NO_VIEWS = frozenset({"0A000", "25006", "42501"})


def views_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (raised while opening a checkpoint's view) is the server refusing
    the temporary views themselves, as a hot standby does."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if getattr(cur, "sqlstate", None) in _NO_VIEWS \
                or getattr(getattr(cur, "orig", None), "sqlstate", None) in _NO_VIEWS:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def checkpoint_backend(tree: str | None, checkpoint: int) -> CheckpointViewBackend:
    """The backend of checkpoint ``checkpoint`` of ``tree`` read in place."""
    return CheckpointViewBackend(DEFAULT_TREE if tree is None else tree, checkpoint)


@functools.lru_cache(maxsize=64)
def _backend(tree: str) -> PostgreSQLBackend:
    return PostgreSQLBackend(tree)
