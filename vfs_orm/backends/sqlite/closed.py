"""The closed schema (SPEC §9): a database is data, never code.

A save or a mod comes from a stranger. SQLite runs whatever triggers a file carries when
vfs_orm writes to it (``trusted_schema=OFF`` stops only functions and virtual tables), and
views, extra indexes or changed columns steer what its statements do. So, before any
statement that writes, every database vfs_orm opens is compared with the exact schema of the
revision it records (``catalogue``): its tables (columns, defaults, generated columns,
constraints, foreign keys), indexes (columns, partial conditions), triggers and views, and
nothing else beside SQLite's own ``sqlite_*`` objects. Anything else is refused by name
(``ForeignSchemaError``) and the file is left as it was; ``repair`` removes what can be
removed from a file its owner trusts.

The reference catalogue of a revision is built once per process from the revisions' own
upgrade steps on an empty in-memory database (the seed library's format from its DDL), so a
new revision is covered by writing its migration.

A second wall stands behind the comparison (``deny_schema_code``): each connection vfs_orm
makes has an authorizer that refuses, when a statement is compiled, any action coming from a
trigger or a view. A trigger planted after the check (by another process) makes the statement
that would fire it fail instead of running it.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from vfs_orm.errors import CorruptionError, ForeignSchemaError

#: The seed library's tables (the legacy format), as it created them.
SEED_DDL = (
    "CREATE TABLE inodes (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT UNIQUE NOT NULL, "
    "is_directory INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, "
    "modified_at TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX idx_inode_path ON inodes(path)",
    "CREATE TABLE chunks (inode_id INTEGER NOT NULL, chunk_index INTEGER NOT NULL, data BLOB, "
    "PRIMARY KEY (inode_id, chunk_index), "
    "FOREIGN KEY(inode_id) REFERENCES inodes(id) ON DELETE CASCADE)",
)
LEGACY = "legacy"

#: One object's facts: (type, table it belongs to, details). Equal facts, equal behaviour.
Facts = tuple[str, str, tuple[Any, ...]]

_CHECK = re.compile(r"CHECK\s*(\(.*)", re.I)
_CONSTRAINT = re.compile(r'CONSTRAINT\s+"?(\w+)', re.I)
_WHERE = re.compile(r"\bWHERE\b(.*)$", re.I | re.S)


def pragma(raw: sqlite3.Connection, sql: str) -> list[sqlite3.Row]:
    """A PRAGMA's rows, read by column name (``sqlite3.Row``): PRAGMA rows have grown columns
    across SQLite releases, so no reader depends on their number or order."""
    cur = raw.cursor()
    cur.row_factory = sqlite3.Row
    try:
        return cur.execute(sql).fetchall()
    finally:
        cur.close()


def _squeeze(sql: str) -> str:
    """SQL text without the spacing and quoting that differ between writers of one schema."""
    return re.sub(r'[\s"`\[\]]+', "", sql).rstrip(",").lower()


def _table_facts(raw: sqlite3.Connection, schema: str, name: str, sql: str) -> tuple[Any, ...]:
    q = f'"{schema}".'
    columns = tuple((r["name"], str(r["type"]).upper(), r["notnull"], r["dflt_value"], r["pk"],
                     r["hidden"]) for r in pragma(raw, f'PRAGMA {q}table_xinfo("{name}")'))
    # The indexes SQLite makes for UNIQUE and PRIMARY KEY constraints; the others are
    # objects of their own in the catalogue.
    indexes = tuple(sorted((r["name"], r["unique"], r["origin"], r["partial"])
                           for r in pragma(raw, f'PRAGMA {q}index_list("{name}")')
                           if str(r["name"]).startswith("sqlite_autoindex_")))
    foreign = tuple(sorted((r["table"], r["from"], r["to"], r["on_update"], r["on_delete"],
                            r["match"])
                           for r in pragma(raw, f'PRAGMA {q}foreign_key_list("{name}")')))
    # One constraint a line; which comes last (no comma) depends on the writer's order.
    checks = tuple(sorted(_squeeze(m) for m in _CHECK.findall(sql)))
    constraints = tuple(sorted(_CONSTRAINT.findall(sql)))
    flat = _squeeze(sql)
    options = ("withoutrowid" in flat[flat.rfind(")"):], flat.endswith("strict"))
    return columns, indexes, foreign, checks, constraints, options


def _index_facts(raw: sqlite3.Connection, schema: str, name: str, sql: str | None
                 ) -> tuple[Any, ...]:
    keys = tuple((r["seqno"], r["cid"], r["name"], r["desc"], r["coll"], r["key"])
                 for r in pragma(raw, f'PRAGMA "{schema}".index_xinfo("{name}")'))
    where = _WHERE.search(sql or "")
    return keys, _squeeze(where.group(1)) if where else ""


#: SQLite's planner statistics. vfs_orm never writes them (it runs no ANALYZE), and planted
#: rows turn its indexed lookups into full scans (measured: every hot statement but the
#: primary-key lookup), so rows in them count as a foreign object.
_STATISTICS = ("sqlite_stat1", "sqlite_stat4")


def _has_statistics(raw: sqlite3.Connection, schema: str, table: str, embedded: bool) -> bool:
    where = " WHERE tbl LIKE 'vfs\\_%' ESCAPE '\\'" if embedded else ""
    return raw.execute(f'SELECT 1 FROM "{schema}".{table}{where} LIMIT 1').fetchone() is not None


def catalogue(raw: sqlite3.Connection, schema: str = "main", *,
              embedded: bool = False) -> dict[str, Facts]:
    """Every schema object of ``schema`` but SQLite's own (``sqlite_*``), by name.

    ``embedded``: the database is a host application's; its own tables and indexes are its
    business, but any trigger or view, and anything on a ``vfs_`` table, is counted."""
    out: dict[str, Facts] = {}
    for kind, name, table, sql in raw.execute(
            f'SELECT type, name, tbl_name, sql FROM "{schema}".sqlite_master').fetchall():
        name, table, sql = str(name), str(table), sql if sql is None else str(sql)
        if name in _STATISTICS and kind == "table":
            if _has_statistics(raw, schema, name, embedded):
                out[name] = ("statistics", name, ())
            continue
        if name.startswith("sqlite_"):
            continue
        if embedded and kind in ("table", "index") and not table.startswith("vfs_"):
            continue
        if kind == "table":
            facts: tuple[Any, ...] = _table_facts(raw, schema, name, sql or "")
        elif kind == "index":
            facts = _index_facts(raw, schema, name, sql)
        else:  # triggers and views are never part of a vfs_orm schema: code, or a disguise
            facts = (_squeeze(sql or ""),)
        out[name] = (str(kind), table, facts)
    return out


def differences(raw: sqlite3.Connection, want: dict[str, Facts], schema: str = "main", *,
                embedded: bool = False) -> tuple[list[str], list[str]]:
    """(foreign objects, objects of the format that were changed or are missing), by name,
    for the database behind ``raw`` against ``want``, the catalogue of the revision it
    records (``schema.expected``)."""
    have = catalogue(raw, schema, embedded=embedded)
    foreign = sorted(f"{have[n][0]} {n}" for n in have if n not in want)
    changed = sorted(f"{want[n][0]} {n}" for n in want if n in have and have[n] != want[n])
    missing = sorted(f"{want[n][0]} {n} (missing)" for n in want if n not in have)
    return foreign, changed + missing


def verify(raw: sqlite3.Connection, want: dict[str, Facts], where: str,
           schema: str = "main", *, embedded: bool = False) -> None:
    """Refuse the database unless its schema is exactly ``want``, its revision's.

    Raises:
        ForeignSchemaError: it holds objects vfs_orm did not make (named in the message and
            in ``err.objects``), or objects of its format were changed.
    """
    foreign, changed = differences(raw, want, schema, embedded=embedded)
    if foreign or changed:
        raise ForeignSchemaError.for_objects(where, foreign, changed)


def repair(raw: sqlite3.Connection, want: dict[str, Facts], where: str) -> list[str]:
    """Drop the foreign triggers, views, indexes and tables of the database behind ``raw``
    (inside the caller's write transaction). Returns what was dropped.

    Raises:
        CorruptionError: objects of the format itself were changed: dropping cannot fix that
            (restore the file from a copy, or unpack and pack it again).
    """
    foreign, changed = differences(raw, want)
    if changed:
        raise CorruptionError.for_path(
            where, f"objects of the vfs_orm format were changed ({', '.join(changed)}); "
                   f"repair removes only foreign objects, nothing was changed")
    dropped = []
    # Triggers and views first: nothing of theirs may run while tables are dropped.
    order = {"trigger": 0, "view": 1, "index": 2, "table": 3}
    for entry in sorted(foreign, key=lambda e: order.get(e.split(" ", 1)[0], 4)):
        kind, name = entry.split(" ", 1)
        quoted = name.replace('"', '""')
        if kind == "statistics":  # SQLite's own table: emptied, not dropped
            raw.execute(f"DELETE FROM {name}")
            dropped.append(entry)
            continue
        exists = raw.execute("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?",
                             (kind, name)).fetchone()
        if exists:  # an index goes with its table
            raw.execute(f'DROP {kind.upper()} "{quoted}"')
        dropped.append(entry)
    return dropped


def deny_schema_code(action: int, arg1: str | None, arg2: str | None, db: str | None,
                     source: str | None) -> int:
    """sqlite3 authorizer: refuse whatever a trigger or a view would do (``source`` names the
    innermost trigger or view behind the action). vfs_orm's schema has neither."""
    return sqlite3.SQLITE_DENY if source is not None else sqlite3.SQLITE_OK


def install_wall(raw: sqlite3.Connection, views: frozenset[str] = frozenset()) -> None:
    """The wall on ``raw``. ``views``: temporary views vfs_orm itself made on this connection
    (a checkpoint's view, ``backends/sql/views.py``), whose reads go through. No object of a
    database can take their names: the tables of the format have them in ``main``, and
    nothing but this connection can create objects in its own ``temp`` schema."""
    if not views:
        raw.set_authorizer(deny_schema_code)
        return

    def allow_views(action: int, arg1: str | None, arg2: str | None, db: str | None,
                    source: str | None) -> int:
        return sqlite3.SQLITE_OK if source is None or source in views else sqlite3.SQLITE_DENY

    raw.set_authorizer(allow_views)


