"""Where names live: what a path resolves to in the top database and the layers under it.

A single database is the one-layer case of a stack. Every query the namespace asks goes
through here and answers with named rows (``vfs_orm.rows``) carrying the layer they came from
(``TOP`` for the database that is written). With no underlay attached, each query takes the
single-database statement (one index probe, no UNION): the fast path is chosen by the data,
the stack in effect, not by a subclass.

Across layers, resolution is by exact path (as in the seed library and PhysFS): the highest
layer holding an entry at a path provides it, and a whiteout (kind 3) in a higher layer hides
everything below it at that path (see ``backends/sql/stack.py`` for a stack's shape, and
``backends/sqlite/attach.py`` for how one is attached).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, TypeVar

from vfs_orm import paths
from vfs_orm.backends import InodeRepository, LayerStack
from vfs_orm.content.store import Source
from vfs_orm.rows import (
    DIR,
    LOCAL,
    N_INODE,
    TOP,
    WHITEOUT,
    Entry,
    GlobHit,
    Node,
    OpenNode,
    TreeEntry,
)
from vfs_orm.uow import UnitOfWork

_T = TypeVar("_T")
_EMPTY = LayerStack(0, ())

# Where ``kind`` sits in the rows of each StackRepository listing.
_KIND_AT = {"listing": 3, "subtree": 4, "glob_in": 2, "glob_level": 3, "glob_below": 3}
#: Where ``kind`` sits in a top-database inode row (``INODE_COLUMNS``).
_KIND = 1
_name_key = operator.itemgetter(1)  # (prio, name, ...) listing rows, by name
_path_key = operator.itemgetter(1, 2)  # (prio, parent, name, ...) subtree rows, by path


def _node(row: Any, at: int) -> Node:
    """A top-database row (inode columns from ``at``) as a Node of the top layer."""
    return Node._make((TOP, *row[at:at + N_INODE]))


class Resolver:
    """Answers "what is at this path" for one VFS, over whatever stack is in effect."""

    def __init__(self, uow: UnitOfWork, repo: InodeRepository) -> None:
        self.uow = uow
        self.repo = repo  # the top database's statements

    @property
    def layered(self) -> bool:
        """Whether underlays are attached (otherwise every query is the top database's)."""
        return self.uow.layered

    @property
    def folded(self) -> bool:
        """Whether paths match under case folding (a case-insensitive top)."""
        return bool(self.stack().folded)

    @property
    def underlays(self) -> bool:
        """Whether underlays are attached (``layered`` is also true for a case-insensitive
        database alone, whose lookups go through the folded layer statements)."""
        return self.uow.layered and bool(self.stack().layers)

    def stack(self) -> LayerStack:
        return self._view()[1]

    def name_of(self, layer: int) -> str:
        return LOCAL if layer == TOP else self.stack().name_of(layer)

    # -- the top database -------------------------------------------------------------------
    def probe(self, query: Callable[[Any, str, str], _T], path: str) -> _T:
        """``query(raw, parent, name)`` on this thread's connection to the top database,
        under the lock when the connection is shared (in-memory databases)."""
        parent, name = paths.split(path)
        uow = self.uow
        if uow.shared:
            with uow.lock:
                return query(uow.raw(), parent, name)
        return query(uow.raw(), parent, name)

    def top(self, raw: Any, path: str) -> Node | None:
        """The top layer's own row at ``path`` (a whiteout included)."""
        row = self.repo.lookup(raw, *paths.split(path))
        return None if row is None else _node(row, 0)

    def top_of(self, raw: Any, path: str, found: Node | None) -> Node | None:
        """The top layer's own row at ``path`` given what ``path`` resolved to: the node
        itself when the top provides it; when a lower layer does, nothing (a top row would
        have won); when nothing does, a whiteout may sit there, only if there are underlays."""
        if found is not None:
            return found if found.layer == TOP else None
        return self.top(raw, path) if self.layered else None

    def target(self, raw: Any, path: str) -> tuple[Node | None, bool]:
        """Inside a write: the node at ``path`` and whether its parent is known to be a
        directory of the top layer (then no ancestor needs checking). One statement for a
        single database: the entry and its parent together."""
        if self.layered:
            return self.find(path), False
        parent, name = paths.split(path)
        prow, row = self.repo.lookup_pair(raw, parent, name)
        node = None if row is None else _node(row, 0)
        return node, node is not None or (prow is not None and prow[_KIND] == DIR)

    # -- resolution -------------------------------------------------------------------------
    def find(self, path: str) -> Node | None:
        """The node providing ``path``, None if nothing does (or a whiteout hides it)."""
        uow = self.uow
        if not uow.layered:  # one database: one index probe (inlined: a hot path)
            parent, name = paths.split(path)
            if uow.shared:
                with uow.lock:
                    return self.repo.find(uow.raw(), parent, name)
            return self.repo.find(uow.raw(), parent, name)
        row = self._first_hit("resolve", path)
        if row is None:
            return None
        node = Node._make(row)
        return None if node.kind == WHITEOUT else node

    def exists(self, path: str) -> bool:
        uow = self.uow
        if not uow.layered:
            parent, name = paths.split(path)
            if uow.shared:
                with uow.lock:
                    return self.repo.exists(uow.raw(), parent, name)
            return self.repo.exists(uow.raw(), parent, name)
        return self.find(path) is not None

    def open(self, path: str) -> OpenNode | None:
        """The node providing ``path`` with its first chunk's bytes, one statement per
        connection group searched."""
        if not self.uow.layered:
            return self.probe(self.repo.open_node, path)
        row = self._first_hit("resolve_first", path)
        if row is None:
            return None
        node = OpenNode._make(row)
        return None if node.kind == WHITEOUT else node

    def find_all(self, path: str) -> list[Node]:
        """Every layer's node at ``path``, whiteouts included, highest first."""
        if not self.uow.layered:
            row = self.probe(self.repo.lookup, path)
            return [] if row is None else [_node(row, 0)]
        parent, name = paths.split(path)
        st, stack = self._view()
        out: list[Node] = []
        with self.uow.read_lock:
            for g, repo in enumerate(stack.repos):
                out += [Node._make(r) for r in repo.resolve_all(stack.connection(st, g),
                                                                 parent, name)]
        return out

    def _view(self) -> tuple[Any, LayerStack]:
        st = self.uow.view()
        stack = st.stack if st.stack is not None else self.uow.stack
        return st, (stack if stack is not None else _EMPTY)

    def _first_hit(self, method: str, path: str) -> tuple[Any, ...] | None:
        """Search the connection groups in priority order with one statement each; the first
        row found (maybe a whiteout) is the highest layer's."""
        parent, name = paths.split(path)
        st, stack = self._view()
        with self.uow.read_lock:
            for g, repo in enumerate(stack.repos):
                row = getattr(repo, method)(stack.connection(st, g), parent, name)
                if row is not None:
                    return row  # type: ignore[no-any-return]
        return None

    def _merged(self, method: str, keylen: int, *args: Any) -> list[tuple[Any, ...]]:
        """Run a listing statement on every group and keep, per key, the highest layer's row
        (rows are (prio, *key, ...); whiteouts dropped after the merge)."""
        st, stack = self._view()
        best: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        with self.uow.read_lock:
            for g, repo in enumerate(stack.repos):
                for row in getattr(repo, method)(stack.connection(st, g), *args):
                    # Positional: one merge over five row shapes, (prio, *key, ...).
                    key = row[1:1 + keylen]
                    if key not in best:
                        best[key] = row
        kind_at = _KIND_AT[method]  # positional, as the key above
        return [r for r in best.values() if r[kind_at] != WHITEOUT]

    # -- listings ---------------------------------------------------------------------------
    def names(self, path: str) -> list[str]:
        """Names in the directory ``path``, sorted (nothing is checked about ``path``)."""
        if not self.uow.layered:
            with self.uow.read_lock:
                return self.repo.list_names(self.uow.raw(), path)
        return sorted([row[1] for row in self._merged("listing", 1, path)])

    def entries(self, path: str) -> list[Entry]:
        """(name, node) of the directory ``path``'s entries, sorted by name."""
        if not self.uow.layered:
            with self.uow.read_lock:
                rows = self.repo.list_entries(self.uow.raw(), path)
            return [Entry(name, Node(TOP, i, k, m, s, cs, ct, mt, g, u, gi))
                    for name, i, k, m, s, cs, ct, mt, g, u, gi in rows]
        return [Entry(name, Node(prio, i, k, m, s, cs, ct, mt, g, u, gi))
                for prio, name, i, k, m, s, cs, ct, mt, g, u, gi
                in sorted(self._merged("listing", 1, path), key=_name_key)]

    def has_entries(self, path: str) -> bool:
        if not self.uow.layered:
            with self.uow.read_lock:
                return self.repo.has_children(self.uow.raw(), path)
        return bool(self._merged("listing", 1, path))

    def subtree(self, path: str) -> list[TreeEntry]:
        """Everything strictly below ``path``, by (parent, name)."""
        lo, hi = paths.subtree_bounds(path)
        if not self.uow.layered:
            with self.uow.read_lock:
                rows = self.repo.subtree(self.uow.raw(), path, lo, hi)
            return [TreeEntry(parent, name, Node(TOP, i, k, m, s, cs, ct, mt, g, u, gi))
                    for parent, name, i, k, m, s, cs, ct, mt, g, u, gi in rows]
        return [TreeEntry(parent, name, Node(prio, i, k, m, s, cs, ct, mt, g, u, gi))
                for prio, parent, name, i, k, m, s, cs, ct, mt, g, u, gi
                in sorted(self._merged("subtree", 2, path, lo, hi), key=_path_key)]

    def glob_in(self, parent: str, name_glob: str) -> list[str]:
        if not self.uow.layered:
            with self.uow.read_lock:
                return self.repo.glob_in(self.uow.raw(), parent, name_glob)
        return sorted([name for _, name, _ in self._merged("glob_in", 1, parent, name_glob)])

    def glob_levels(self, prefix: str, globs: tuple[str, ...]) -> list[str]:
        """Paths below ``prefix`` with one segment per GLOB in ``globs`` (two or more)."""
        if not self.uow.layered:
            with self.uow.read_lock:
                return self.repo.glob_chain(self.uow.raw(), prefix, globs)
        # Across layers a directory level may come from any layer, so the levels are not
        # joined: one GLOB on the parent path with exactly as many "/" as the pattern (a
        # segment GLOB never holds "/"), merged by priority.
        parent_glob = (prefix if prefix != "/" else "") + "/" + "/".join(globs[:-1])
        depth = parent_glob.count("/")
        return [paths.join(parent, name) for _, parent, name, _
                in self._merged("glob_level", 2, parent_glob, depth, globs[-1])]

    def glob_below(self, top: str, name_glob: str) -> list[GlobHit]:
        lo, hi = paths.subtree_bounds(top)
        if not self.uow.layered:
            with self.uow.read_lock:
                rows = self.repo.glob_below(self.uow.raw(), top, lo, hi, name_glob)
            return [GlobHit._make(r) for r in rows]
        return [GlobHit(parent, name, kind) for _, parent, name, kind
                in self._merged("glob_below", 2, top, lo, hi, name_glob)]

    def lower_keys(self, path: str, subtree: bool) -> list[tuple[str, str]]:
        """(parent, name) of every entry the underlays have at ``path`` (and below it): what
        removing ``path`` from the merged view must cover with whiteouts."""
        if not self.uow.layered:
            return []
        st, stack = self._view()
        lo, hi = paths.subtree_bounds(path) if subtree else ("", "")  # an empty range
        keys: set[tuple[str, str]] = set()
        for g, repo in enumerate(stack.repos):
            keys.update(repo.lower_keys(stack.connection(st, g), path, lo, hi))
        if self.folded:
            # One whiteout per folded key (a case-insensitive top holds at most one entry per
            # key): underlays of a case-sensitive base may spell one name several ways; the
            # path's own spelling is the one kept for it.
            own = paths.split(path)
            chosen: dict[tuple[str, str], tuple[str, str]] = {}
            for key in sorted(keys):
                folded = (paths.fold(key[0]), paths.fold(key[1]))
                if folded not in chosen or key == own:
                    chosen[folded] = key
            keys = set(chosen.values())
        return sorted(keys, key=lambda k: (len(k[0]), k))

    # -- reading content ----------------------------------------------------------------------
    def sources(self) -> list[tuple[tuple[int, int, int], Source, bool]]:
        """(key, reader, stable) of every layer, the bottom one first (where deltas' bases
        usually are); the key names the layer's place in this version of this VFS's stack;
        stable: an underlay (read-only here), not the top."""
        stack = self.stack()
        return [((id(self), stack.version, layer), self.reader(layer), layer != TOP)
                for layer in range(len(stack.layers), -1, -1)]

    def reader(self, layer: int) -> Source:
        """The statements and the (per-thread) connection that read a layer's content."""
        stack = self.stack()
        return Source(stack.statements_of(layer),
                      functools.partial(_layer_connection, self.uow, stack, stack.group_of(layer)))


def _layer_connection(uow: UnitOfWork, stack: LayerStack, group: int) -> Any:
    """The connection holding a group's schemas, for the calling thread (handles may move
    between threads)."""
    st = uow.view()
    return stack.connection(st, group)
