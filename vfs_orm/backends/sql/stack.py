"""Layers: read-only underlays over the top database, resolved by one SQL statement (the stack's
shape, shared by the backends; SQLite ATTACHes underlays in ``sqlite/attach.py``).

The top database is the only one ever written. Underlays are attached read-only (``mode=ro``
URIs; in-memory underlays through the ``memdb`` VFS, so a live in-memory VFS stays live), and a
path resolves across all of them with ONE statement: a UNION ALL over the schemas ordered by
priority (``repository.StackRepository``).

Deep stacks. SQLite allows 10 attached databases per connection on this build
(``SQLITE_LIMIT_ATTACHED``). The top connection carries the top layer and the first 10
underlays (group 0); every further 10 underlays are attached to an extra read-only connection
of the same thread (groups 1, 2, ...). A lookup runs group by group in priority order and stops
at the first hit, so it costs one statement per group searched; listings and globs run one
statement per group and merge by priority in Python.

Foreign underlays. An underlay the top's connections cannot reach (a SQLite pack under a
PostgreSQL tree, a tree of another PostgreSQL database or server, a tree under a SQLite file) is
read through a read-only VFS of its own (``Layer.reader``, its unit of work): it is a group of
its own, searched in its place in the priority order with that backend's statements on that
VFS's connection of the calling thread. Native layers after it form a new group on the top's
connections, so groups stay contiguous runs of priorities.

Resolution (which layer provides a path, whiteouts) is ``namespace/resolver.py``'s; what
writes do over layers (copy-up, whiteouts) is ``namespace/tree.py``'s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from vfs_orm.backends.base import InodeRepository, StackRepository
from vfs_orm.content import PLAIN, Content
from vfs_orm.rows import LOCAL


def _unbound(*args: Any) -> Any:
    raise NotImplementedError("a LayerStack's statements are its backend's "
                              "(Backend.layer_stack)")


@dataclass(frozen=True)
class Layer:
    """One underlay of a stack."""

    name: str
    priority: int
    alias: str  # generated ("l1", "l2", ...), never taken from user input
    uri: str  # read-only URI it is attached with
    db_path: str
    uuid: str | None = None
    source: Any = field(default=None, compare=False, repr=False)  # a live VFS, kept alive
    #: A foreign underlay's unit of work (its own read-only VFS's), through which it is read;
    #: None for an underlay attached to (or, on PostgreSQL, seen by) the top's connections.
    reader: Any = field(default=None, compare=False, repr=False)
    #: The VFS of a foreign underlay was opened for the stack (closed with the layer).
    owned: bool = field(default=False, compare=False, repr=False)


@dataclass(frozen=True)
class LayerStack:
    """An immutable snapshot of the underlays, highest priority first."""

    version: int
    layers: tuple[Layer, ...]
    per_connection: int = 10
    busy_timeout: float = 30.0
    #: The top layer's schema on the connection: "main" here, the tree on PostgreSQL.
    top_schema: str = "main"
    #: The statements of one layer's schema, and of a group of schemas (a backend's own,
    #: compiled for its dialect).
    inode_statements: Callable[[str, Content], InodeRepository] = field(
        default=_unbound, compare=False, repr=False)
    stack_statements: Callable[[tuple[tuple[int, str], ...], Content, bool],
                               StackRepository] = field(
        default=_unbound, compare=False, repr=False)
    #: How a thread's connections are brought to the stack: underlays ATTACHed to each
    #: connection (SQLite's ``attach.apply``), or None: they are schemas every connection
    #: already sees (PostgreSQL: one database, no attach limit, one group).
    attach: Callable[[LayerStack, Any], None] | None = field(default=None, compare=False,
                                                              repr=False)
    #: How reads check content (``Content.verify``).
    content: Content = PLAIN
    #: The top database is case-insensitive: every layer is searched by its folded keys.
    folded: bool = False
    #: The top database may hold whiteouts (it was written over underlays): even alone, it
    #: is read through the stack statements, which hide them.
    whiteouts: bool = False

    # -- shape ----------------------------------------------------------------------------
    @functools.cached_property
    def _plan(self) -> tuple[tuple[tuple[tuple[int, str], ...], tuple[str, int]], ...]:
        """(entries, home) per connection group, in priority order: entries are (priority
        index, schema), index 0 the top; home is ("main", 0) for the top's connection,
        ("aux", k) for its k-th extra connection, ("foreign", k) for layer k's own reader.
        Native layers fill the connections ``per_connection`` at a time; a foreign layer
        cuts the run (a group is always a contiguous run of priorities)."""
        n = self.per_connection
        out: list[tuple[tuple[tuple[int, str], ...], tuple[str, int]]] = []
        run: list[tuple[int, str]] = [(0, self.top_schema)]
        home = ("main", 0)
        native = 0
        for k, lay in enumerate(self.layers):
            if lay.reader is not None:
                if run:
                    out.append((tuple(run), home))
                out.append((((k + 1, lay.reader.stack.top_schema),), ("foreign", k)))
                run = []
                continue
            at = ("main", 0) if native < n else ("aux", native // n - 1)
            native += 1
            if run and at != home:
                out.append((tuple(run), home))
                run = []
            home = at
            run.append((k + 1, lay.alias))
        if run:
            out.append((tuple(run), home))
        return tuple(out)

    @functools.cached_property
    def groups(self) -> tuple[tuple[tuple[int, str], ...], ...]:
        """(priority index, schema) entries per connection group; index 0 is the top."""
        return tuple(entries for entries, _ in self._plan)

    @functools.cached_property
    def repos(self) -> tuple[StackRepository, ...]:
        out = []
        for entries, (where, k) in self._plan:
            make = self.layers[k].reader.stack.stack_statements if where == "foreign" \
                else self.stack_statements
            out.append(make(entries, self.content, self.folded))
        return tuple(out)

    @functools.cached_property
    def _group_by_prio(self) -> dict[int, int]:
        return {prio: g for g, entries in enumerate(self.groups) for prio, _ in entries}

    def group_of(self, prio: int) -> int:
        return self._group_by_prio[prio]

    def schema_of(self, prio: int) -> str:
        return self.top_schema if prio == 0 else self.layers[prio - 1].alias

    def name_of(self, prio: int) -> str:
        return LOCAL if prio == 0 else self.layers[prio - 1].name

    def statements_of(self, prio: int) -> InodeRepository:
        """The statements that read one layer's inodes and chunks."""
        if prio == 0:
            return self.inode_statements(self.top_schema, self.content)
        content = replace(self.content, partial=False)
        reader = self.layers[prio - 1].reader
        if reader is not None:
            stack: LayerStack = reader.stack
            return stack.inode_statements(stack.top_schema, content)
        return self.inode_statements(self.schema_of(prio), content)

    def connection(self, st: Any, group: int) -> Any:
        """The driver connection of one thread that holds a connection group's schemas."""
        where, k = self._plan[group][1]
        if where == "main":
            return st.raw
        if where == "aux":
            return st.aux[k].raw
        return self.layers[k].reader.view().raw

    @property
    def readers(self) -> list[Any]:
        """The units of work of the foreign underlays."""
        return [lay.reader for lay in self.layers if lay.reader is not None]

    # -- attaching ------------------------------------------------------------------------
    def apply(self, st: Any) -> None:
        """Bring one thread's connections to this stack (the backend's ``attach``; without
        one, its connections already see every layer)."""
        if self.attach is None:
            st.stack = self
            return
        self.attach(self, st)
