"""The on-disk format: what a database is, and its creation and upgrade (Alembic).

This is the only module that imports Alembic. It knows how to:

- tell what a file is before touching it (not SQLite, truncated, someone else's schema, the seed
  library's legacy schema, an older or newer vfs_orm revision);
- verify that the tables have the shape of the revision their version row names;
- create or upgrade a database in ONE transaction with foreign keys off, checking
  ``PRAGMA foreign_key_check`` before commit (a batch table rebuild with foreign keys on
  cascade-deletes every chunk: ENGINEERING-NOTES §4).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine

from vfs_orm.backends.sql.revisions import (
    ALEMBIC_LOCK,
    alembic_config,
    head_revision,
    known_revisions,
    migrations_dir,
)
from vfs_orm.backends.sql.revisions import script as _script
from vfs_orm.backends.sqlite import closed
from vfs_orm.backends.sqlite.closed import pragma
from vfs_orm.backends.sqlite.engine import (
    DEFAULT_PAGE_SIZE,
    LEGACY_TABLES,
    check_file,
    check_host_engine,
    driver,
    driver_begin,
    file_uri,
    make_engine,
    memory_uri,
    own_transactions,
    restore_transactions,
    set_journal_mode,
)
from vfs_orm.errors import (
    CorruptionError,
    FormatVersionError,
    NotAVFSDatabaseError,
    VFSError,
)
from vfs_orm.models import APPLICATION_ID, VERSION_TABLE

# The shared revisions, named here too (the tests and migrations/env.py reach them here).
__all__ = ["ALEMBIC_LOCK", "_script", "alembic_config", "head_revision", "known_revisions",
           "migrations_dir"]

# Status reads go to the driver connection: a SQLAlchemy execute would autobegin a transaction
# and the upgrade's own BEGIN IMMEDIATE could not follow.
def _tables(conn: Connection, schema: str = "main") -> set[str]:
    raw = driver(conn)
    rows = raw.execute(
        f'SELECT name FROM "{schema}".sqlite_master WHERE type = \'table\'').fetchall()
    return {name for name, in rows}


def current_revision(conn: Connection, schema: str = "main") -> str | None:
    if VERSION_TABLE not in _tables(conn, schema):
        return None
    raw = driver(conn)
    return _version(raw, f'SELECT version_num FROM "{schema}".{VERSION_TABLE}')


def _version(raw: sqlite3.Connection, sql: str) -> str | None:
    row = raw.execute(sql).fetchone()
    if row is None:
        return None
    version, = row
    return str(version)


def format_status(conn: Connection, schema: str = "main", embedded: bool = False
                  ) -> tuple[str, str | None]:
    """Classify the database behind ``conn``.

    Returns (status, revision) where status is one of ``empty`` (no tables: a new file),
    ``current``, ``older``, ``newer``, ``legacy`` (the seed library's schema) or ``foreign``
    (some other application's SQLite file). ``embedded``: the database belongs to a host
    application, whose own tables are expected and ignored.
    """
    tables = _tables(conn, schema)
    if embedded:
        tables = {t for t in tables if t.startswith("vfs_") or t == "sqlite_sequence"}
        tables.discard("sqlite_sequence")
    if VERSION_TABLE in tables:
        rev = current_revision(conn, schema)
        if rev is None:
            return "empty", None
        if rev == head_revision():
            return "current", rev
        return ("older" if rev in known_revisions() else "newer"), rev
    if any(t.startswith("vfs_") for t in tables):
        return "foreign", None
    if LEGACY_TABLES <= tables:
        return "legacy", None
    if not tables:
        return "empty", None
    return "foreign", None


def admit(conn: Connection, where: str, schema: str = "main", embedded: bool = False
          ) -> tuple[str, str | None]:
    """``format_status``, and for a database of a known format (current, older, legacy) the
    closed-schema check against the schema of the revision it records, before anything is
    written to it (see ``closed``). A forged version row over tables of another revision is a
    ``CorruptionError`` (``verify_schema``), as before.

    Raises:
        ForeignSchemaError: objects vfs_orm did not make, or changed objects of its format.
        CorruptionError: the tables do not have the shape of the revision recorded.
    """
    status, rev = format_status(conn, schema, embedded=embedded)
    if status in ("current", "older"):
        verify_schema(conn, str(rev), where, schema)
        closed.verify(driver(conn), expected(str(rev)), where, schema, embedded=embedded)
    elif status == "legacy":
        closed.verify(driver(conn), expected(closed.LEGACY), where, schema, embedded=embedded)
    return status, rev


_CHECK = re.compile(r"CHECK\s*(\(.*)")
_CONSTRAINT = re.compile(r'CONSTRAINT\s+"?(\w+)')


def schema_shape(raw: sqlite3.Connection, schema: str = "main") -> tuple[Any, ...]:
    """What the ``vfs_`` tables look like: per table its columns (name, type, not null,
    primary key), indexes (name, unique), CHECK clauses and constraint names. Two databases
    at the same format revision have the same shape, whatever their content."""
    shape = []
    for name, sql in raw.execute(
            f'SELECT name, sql FROM "{schema}".sqlite_master WHERE type = \'table\' '
            f"AND name LIKE 'vfs\\_%' ESCAPE '\\' AND name != '{VERSION_TABLE}' "
            f"ORDER BY name").fetchall():
        columns = tuple((r["name"], str(r["type"]).upper(), r["notnull"], r["pk"])
                        for r in pragma(raw, f'PRAGMA "{schema}".table_info("{name}")'))
        indexes = tuple(sorted((r["name"], r["unique"]) for r in
                               pragma(raw, f'PRAGMA "{schema}".index_list("{name}")')))
        sql = sql or ""
        # One constraint a line; which comes last (no comma) depends on the writer's order.
        checks = tuple(sorted(re.sub(r'[\s"]+', "", m).rstrip(",") for m in _CHECK.findall(sql)))
        shape.append((name, columns, indexes, checks, tuple(sorted(_CONSTRAINT.findall(sql)))))
    return tuple(shape)


@functools.cache
def expected_shape(revision: str) -> tuple[Any, ...]:
    """The shape a database at ``revision`` has: built once per process by running the
    revisions' own upgrade steps on an empty in-memory database. (Not through ``alembic``'s
    command API: this also runs inside a maintainer's ``alembic`` command, which must not be
    nested.)"""
    engine = make_engine(memory_uri(), read_only=False, shared=True)
    try:
        with engine.connect() as conn:
            with conn.begin():
                create_at(conn, revision, stamp=False)
            return schema_shape(driver(conn))
    finally:
        engine.dispose()


@functools.cache
def expected(revision: str) -> dict[str, closed.Facts]:
    """The catalogue of a database at ``revision`` (``closed.LEGACY``: the seed library's),
    made once per process by creating it in memory: what ``closed`` compares a database with."""
    engine = make_engine(memory_uri(), read_only=False, shared=True)
    try:
        with engine.connect() as conn:
            raw = driver(conn)
            if revision == closed.LEGACY:
                for ddl in closed.SEED_DDL:
                    raw.execute(ddl)
            else:
                with conn.begin():
                    create_at(conn, revision)
            return closed.catalogue(raw)
    finally:
        engine.dispose()


def create_at(conn: Connection, revision: str, stamp: bool = True) -> None:
    """Create the tables of ``revision`` on an empty database by running the revisions' own
    upgrade steps (not through ``alembic``'s command API, which may already be running: a
    maintainer's ``alembic upgrade``), inside the caller's transaction."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    steps = list(_script().iterate_revisions(revision, "base"))[::-1]
    context = MigrationContext.configure(
        conn, opts={"render_as_batch": True, "version_table": VERSION_TABLE})
    with ALEMBIC_LOCK, Operations.context(context):
        for step in steps:
            step.module.upgrade()
    if stamp:
        context.stamp(_script(), revision)


def verify_schema(conn: Connection, revision: str, where: str, schema: str = "main") -> None:
    """Refuse to treat the tables behind ``conn`` as ``revision`` unless they have its shape:
    a forged or damaged version row must never make an upgrade run over tables of another
    revision (it would rewrite them as if they were older, losing data)."""
    problem = shape_problem(driver(conn), revision, schema)
    if problem is not None:
        raise CorruptionError.for_path(where, f"damaged database: {problem}; it was left "
                                              f"untouched (`vfs-orm check` tells more)")


def schema_problem(raw: sqlite3.Connection) -> str | None:
    """For ``check()``: None if the schema is exactly the recorded revision's (its tables'
    shape, and no object vfs_orm did not make: see ``closed``)."""
    revision = _version(raw, f"SELECT version_num FROM {VERSION_TABLE}")
    problem = shape_problem(raw, revision)
    if problem is not None or revision is None:
        return problem
    foreign, changed = closed.differences(raw, expected(revision))
    if foreign or changed:
        return "; ".join(
            ([f"foreign schema objects (vfs_orm did not make them; `vfs-orm check --repair` "
              f"removes them): {', '.join(foreign)}"] if foreign else [])
            + ([f"objects of the format were changed: {', '.join(changed)}"] if changed else []))
    return None


def shape_problem(raw: sqlite3.Connection, revision: str | None, schema: str = "main"
                  ) -> str | None:
    """None if the tables have the shape of ``revision``."""
    if revision not in known_revisions():
        return f"unknown format revision {revision!r:.40}"
    want = expected_shape(revision)
    # Tables the revision does not have are the closed schema's business (foreign objects,
    # refused by name); here: do the revision's own tables have its shape?
    known = {t[0]: {ix[0] for ix in t[2]} for t in want}
    have = tuple((name, columns, tuple(ix for ix in indexes if ix[0] in known[name]), *rest)
                 for name, columns, indexes, *rest in schema_shape(raw, schema)
                 if name in known)
    if have != want:
        differ = sorted({t[0] for t in set(have) ^ set(want)})
        return (f"its version row says format revision {revision}, but its tables do not "
                f"have that revision's shape (tables that differ: {', '.join(differ)})")
    return None


def refusal(status: str, rev: str | None, where: str) -> VFSError:
    head = head_revision()
    if status == "newer":
        return FormatVersionError.for_path(
            where, f"database format revision {rev} is newer than this vfs_orm "
                   f"(reads up to {head}); upgrade vfs_orm to open it")
    if status == "older":
        return FormatVersionError.for_path(
            where, f"database format revision {rev} is older than {head} and the database is "
                   f"read-only; upgrade it with `vfs-orm upgrade PATH` or vfs_orm.upgrade(PATH)")
    if status == "legacy":
        return FormatVersionError.for_path(
            where, f"database is in the seed library's legacy format and must be upgraded to "
                   f"{head}; run `vfs-orm upgrade PATH` or vfs_orm.upgrade(PATH)")
    if status == "empty":
        return NotAVFSDatabaseError.for_path(where, "empty database: not a vfs_orm database")
    return NotAVFSDatabaseError.for_path(where, "not a vfs_orm database (unknown schema)")


# --------------------------------------------------------------------------------------------
# Create and upgrade
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def foreign_keys_off(conn: Connection) -> Iterator[None]:
    """Foreign keys off for the duration (they can only change outside a transaction)."""
    raw = driver(conn)
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _legacy_module() -> Any:
    """migrations/legacy_seed.py (shipped in the wheel with the other migration scripts)."""
    import importlib.util

    path = os.path.join(migrations_dir(), "legacy_seed.py")
    spec = importlib.util.spec_from_file_location("vfs_orm_migrations_legacy_seed", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def migrate(conn: Connection, *, where: str, page_size: int | None = None,
            on_create: Callable[[Connection], None] | None = None,
            embedded: bool = False) -> str:
    """Bring the database behind ``conn`` to the head revision in ONE write transaction.

    The status is read again inside the transaction, so two processes creating the same file
    at once do the work once. Returns the status found before the upgrade.

    ``embedded``: the database is a host application's. Its tables are ignored, its
    ``application_id`` and page size are left alone, and if ``conn`` is already inside the
    host's transaction (``VFS(session=...)``) the work joins that transaction.
    """
    status, rev = admit(conn, where, embedded=embedded)
    if status == "current":
        return status
    if status in ("newer", "foreign"):
        raise refusal(status, rev, where)
    raw = driver(conn)
    if embedded and conn.in_transaction():
        if status != "empty":
            enforced, = raw.execute("PRAGMA foreign_keys").fetchone()
            if enforced:
                raise FormatVersionError.for_path(
                    where, f"the vfs_ tables are at revision {rev}, older than "
                           f"{head_revision()}; upgrade them outside a transaction: "
                           f"VFS(engine=...) or vfs_orm.upgrade_engine(engine)")
        from alembic import command

        driver_begin(conn)
        with ALEMBIC_LOCK:
            command.upgrade(alembic_config(conn), "head")
        if status == "empty" and on_create is not None:
            on_create(conn)
        return status
    if status == "empty" and not embedded:
        # Settings that must precede the first table, and WAL, which can't change in a txn.
        raw.execute(f"PRAGMA page_size={int(page_size or DEFAULT_PAGE_SIZE)}")
        # Incremental auto-vacuum keeps pointer-map pages: a random read inside a chunk finds
        # the overflow page it needs from them instead of reading every page of the chain
        # before it (a 4 KiB read in a 64 KiB chunk: ~17 -> ~9 us). It also lets compact()
        # give free pages back without rewriting the file.
        raw.execute("PRAGMA auto_vacuum=INCREMENTAL")
    with foreign_keys_off(conn):
        with conn.execution_options(vfs_begin="BEGIN IMMEDIATE").begin():
            if not raw.in_transaction:  # a host engine without install_transaction_fix
                raw.execute("BEGIN IMMEDIATE")
            status, rev = admit(conn, where, embedded=embedded)
            if status in ("newer", "foreign"):
                raise refusal(status, rev, where)
            if status == "current":
                return status
            from alembic import command

            if status == "legacy":
                # The seed's rows are converted into the tables of the revision the converter
                # writes, which the revisions after it then upgrade like any older file.
                legacy = _legacy_module()
                legacy.upgrade(raw, lambda: create_at(conn, legacy.TARGET_REVISION))
            with ALEMBIC_LOCK:
                command.upgrade(alembic_config(conn), "head")
            if status == "empty" and on_create is not None:
                on_create(conn)
            if not embedded:
                raw.execute(f"PRAGMA application_id={APPLICATION_ID}")
            bad = raw.execute("PRAGMA foreign_key_check").fetchone()
            if bad is not None:
                raise VFSError.for_path(where, f"upgrade would break a foreign key: {tuple(bad)}")
    return status


def upgrade(path: str | os.PathLike[str], backup: bool = False) -> dict[str, Any]:
    """Upgrade a vfs_orm (or seed library) database file to the current format, in place, in
    one transaction. With ``backup``, a consistent copy is written first beside it
    (``PATH.bak-<revision>``, via SQLite's backup API).

    Returns ``{"path", "from", "to", "backup"}``; ``from`` is the revision found ("legacy"
    for the seed's format), equal to ``to`` when there was nothing to do.

    Raises:
        NotFoundError, NotAVFSDatabaseError, FormatVersionError (newer than this release).
    """
    p = os.fspath(path)
    check_file(p, must_exist=True)
    engine = make_engine(file_uri(p, read_only=False), read_only=False, shared=False)
    try:
        with engine.connect() as conn:
            status, rev = admit(conn, p)
            found = "legacy" if status == "legacy" else rev
            if status in ("newer", "foreign", "empty"):
                raise refusal(status, rev, p)
            copy = None
            if backup and status != "current":
                copy = f"{p}.bak-{found}"
                n = 1
                while os.path.exists(copy):
                    n += 1
                    copy = f"{p}.bak-{found}-{n}"
                dst = sqlite3.connect(copy)
                try:
                    driver(conn).backup(dst)
                finally:
                    dst.close()
            migrate(conn, where=p)
            set_journal_mode(conn, "WAL")
    except sqlite3.DatabaseError as exc:
        raise NotAVFSDatabaseError.for_path(p, f"cannot upgrade: {exc}") from exc
    finally:
        engine.dispose()
    return {"path": p, "from": found, "to": head_revision(), "backup": copy}


def repair(path: str | os.PathLike[str]) -> list[str]:
    """Remove the schema objects vfs_orm did not make (triggers, views, indexes, tables) from
    a database file whose owner trusts it, in one transaction; nothing of theirs runs while
    they go (the authorizer stays on). Returns what was removed ("trigger NAME", ...).

    Raises:
        NotFoundError, NotAVFSDatabaseError, FormatVersionError: not a database this release
            reads.
        CorruptionError: objects of the format itself were changed (dropping cannot fix that).
    """
    p = os.fspath(path)
    check_file(p, must_exist=True)
    engine = make_engine(file_uri(p, read_only=False), read_only=False, shared=False)
    try:
        with engine.connect() as conn:
            status, rev = format_status(conn)
            if status not in ("current", "older", "legacy"):
                raise refusal(status, rev, p)
            revision = closed.LEGACY if status == "legacy" else str(rev)
            with conn.execution_options(vfs_begin="BEGIN IMMEDIATE").begin():
                return closed.repair(driver(conn), expected(revision), p)
    except sqlite3.DatabaseError as exc:
        raise NotAVFSDatabaseError.for_path(p, f"cannot repair: {exc}") from exc
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine) -> str:
    """Create or upgrade the vfs_ tables in a host application's database (outside any of
    its transactions). Returns the status found (see ``format_status``)."""
    check_host_engine(engine)
    with engine.connect() as conn:
        before = own_transactions(conn)
        try:
            return migrate(conn, where=str(engine.url), embedded=True)
        finally:
            restore_transactions(conn, before)


def run_alembic_on_file(db_path: str, run: Callable[[Connection], None],
                        destination: str | None = None) -> None:
    """Used by ``migrations/env.py`` when a maintainer runs ``alembic -x db=PATH ...``: the
    same one-transaction, foreign-keys-off rules as the library's own upgrades, and the same
    look at the file first. The seed library's files are converted (only by an upgrade to
    head: their conversion produces the current format); another application's file, a newer
    revision, or tables that do not match their version row are refused, untouched."""
    check_file(db_path, must_exist=False)
    engine = make_engine(file_uri(db_path, read_only=False), read_only=False, shared=False)
    to_head = destination in ("head", "heads") or destination == head_revision()
    try:
        with engine.connect() as conn:
            status, rev = admit(conn, db_path)
            if status in ("newer", "foreign"):
                raise refusal(status, rev, db_path)
            if status == "legacy" and not to_head:
                raise FormatVersionError.for_path(
                    db_path, "the seed library's legacy format converts to the current "
                             "format only: run `alembic -x db=PATH upgrade head` or "
                             "`vfs-orm upgrade PATH`; the file was left untouched")
            if status == "empty":
                raw = driver(conn)
                raw.execute(f"PRAGMA page_size={DEFAULT_PAGE_SIZE}")
                raw.execute("PRAGMA auto_vacuum=INCREMENTAL")
            with foreign_keys_off(conn):
                with conn.begin():
                    if status == "legacy":
                        legacy = _legacy_module()
                        legacy.upgrade(driver(conn),
                                       lambda: create_at(conn, legacy.TARGET_REVISION))
                    run(conn)
                    driver(conn).execute(
                        f"PRAGMA application_id={APPLICATION_ID}")
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if bad is not None:
                        raise VFSError.for_path(db_path, f"foreign key violation: {tuple(bad)}")
    finally:
        engine.dispose()
