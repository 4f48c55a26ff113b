"""The closed schema on PostgreSQL (SPEC §9): a tree holds vfs_orm's tables and nothing that
runs code when vfs_orm reads or writes them.

A tree is a schema of a server that other roles may reach. Before any statement that writes,
its schema is compared with what vfs_orm makes: its own tables (with their indexes and id
sequences) and nothing else; no trigger, rule or row-level policy on them, and no view or
function in the schema (an index expression or a default calls a function by name). Anything
else is refused by name (``ForeignSchemaError``), the tree untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection

from vfs_orm.errors import ForeignSchemaError
from vfs_orm.models import VERSION_TABLE, Base

#: Every relation kind but tables ('r'), indexes ('i', 'I') and sequences ('S').
_FOREIGN_KINDS = {"v": "view", "m": "materialized view", "f": "foreign table",
                  "p": "partitioned table", "c": "type", "t": "toast table"}

_OBJECTS = """
SELECT 'relation', c.relname, c.relkind::text FROM pg_class c
 WHERE c.relnamespace = to_regnamespace(%s)
   AND c.relkind NOT IN ('i', 'I', 'S')
UNION ALL
SELECT 'trigger', t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = to_regnamespace(%s) AND NOT t.tgisinternal
UNION ALL
SELECT 'rule', r.rulename, r.tablename FROM pg_rules r WHERE r.schemaname = %s
UNION ALL
SELECT 'policy', p.polname, c.relname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = to_regnamespace(%s)
UNION ALL
SELECT 'function', p.proname, '' FROM pg_proc p
 WHERE p.pronamespace = to_regnamespace(%s)
"""


def foreign_objects(execute: Callable[[str, tuple[str, ...]], Iterable[Any]], tree: str
                    ) -> list[str]:
    """What the tree's schema holds beside vfs_orm's own tables, by kind and name.
    ``execute(sql, params)`` returns the rows of a statement (a SQLAlchemy connection's or a
    raw one's)."""
    tables = set(Base.metadata.tables) | {VERSION_TABLE}
    found = []
    for kind, name, detail in execute(_OBJECTS, (tree,) * _OBJECTS.count("%s")):
        if kind == "relation":
            if detail == "r" and name in tables:
                continue
            kind = _FOREIGN_KINDS.get(detail, "table")
        elif kind != "function":
            name = f"{name} on {detail}"
        found.append(f"{kind} {name}")
    return sorted(found)


def verify(conn: Connection, tree: str, where: str) -> None:
    """Raises:
    ForeignSchemaError: the tree's schema holds objects vfs_orm did not make."""
    foreign = foreign_objects(lambda sql, params: conn.exec_driver_sql(sql, params).all(), tree)
    if foreign:
        raise ForeignSchemaError.for_objects(where, foreign, [])


def problem(raw: Any, tree: str) -> str | None:
    """For ``check()``: the foreign objects as one line, or None."""
    foreign = foreign_objects(lambda sql, params: raw.execute(sql, params).fetchall(), tree)
    if not foreign:
        return None
    return f"foreign schema objects (vfs_orm did not make them): {', '.join(foreign)}"
