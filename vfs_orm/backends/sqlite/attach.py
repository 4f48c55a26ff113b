"""Underlays ATTACHed to a thread's SQLite connections, in connection groups (the layer
stack's shape is the shared ``backends/sql/stack.py``'s; attaching is SQLite's own).

SQLite allows 10 attached databases per connection on this build (``SQLITE_LIMIT_ATTACHED``):
the top connection carries the top layer and the first ``per_connection`` underlays (group 0),
every further group an extra read-only connection of the same thread.
"""

from __future__ import annotations

import sqlite3

from vfs_orm.backends.sql.stack import LayerStack
from vfs_orm.backends.sqlite.closed import install_wall
from vfs_orm.backends.sqlite.connection import ThreadConnection
from vfs_orm.errors import VFSError


def apply(stack: LayerStack, st: ThreadConnection) -> None:
    """Bring one thread's connections to ``stack``: DETACH what left, ATTACH what came.

    DETACH is impossible inside a transaction; a connection in the middle of one keeps the
    stack it had until the transaction ends (a consistent snapshot)."""
    if st.raw.in_transaction:
        return
    wanted = [(lay.alias, lay.uri) for lay in stack.layers if lay.reader is None]
    n = stack.per_connection
    _attach_set(st.raw, st.attached, dict(wanted[:n]))
    rest = [dict(wanted[i:i + n]) for i in range(n, len(wanted), n)]
    while len(st.aux) > len(rest):
        st.aux.pop().close()
    for k, want in enumerate(rest):
        if k == len(st.aux):
            # uri=True: the ATTACHed names are file: URIs (mode=ro, memdb).
            aux = _AuxConnection(sqlite3.connect(
                "file::memory:", uri=True, isolation_level=None, check_same_thread=False,
                timeout=stack.busy_timeout))
            aux.raw.execute("PRAGMA trusted_schema=OFF")
            install_wall(aux.raw)
            st.aux.append(aux)
        _attach_set(st.aux[k].raw, st.aux[k].attached, want)
    st.stack = stack


class _AuxConnection:
    """An extra read-only connection of one thread, holding the underlays of one group."""

    __slots__ = ("attached", "raw")

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self.attached: dict[str, str] = {}

    def close(self) -> None:
        self.raw.close()


def _attach_set(raw: sqlite3.Connection, have: dict[str, str], want: dict[str, str]) -> None:
    for alias in [a for a in have if want.get(a) != have[a]]:
        raw.execute(f'DETACH DATABASE "{alias}"')
        del have[alias]
    for alias, uri in want.items():
        if alias not in have:
            if not (alias.isidentifier() and alias.isascii()):
                raise VFSError.for_path(None, f"invalid layer alias {alias!r}")
            raw.execute(f'ATTACH DATABASE ? AS "{alias}"', (uri,))
            have[alias] = uri
