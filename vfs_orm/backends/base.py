"""The backend seam: what a database engine provides to the layers above it.

Everything above ``vfs_orm.backends`` (the namespace, the unit of work, io objects, the facade,
the CLI) reaches a database only through a ``Backend``: it never imports a driver, and never a
backend's modules (an import-linter contract in ``pyproject.toml`` enforces both). A backend
declares what it can do in ``Capabilities`` (as PyFilesystem2's ``getmeta`` does), so callers
ask instead of trying.

A backend provides:

- **opening**: an engine for a path (``open_engine``), the format checked or created on a
  connection (``prepare``), a host application's engine accepted (``check_host``);
- **connections**: one per thread (``connection``), whose transactions follow
  ``TransactionalConnection``;
- **statements**: compiled once, run on the driver connection (``inode_statements``,
  ``manifest_statements``, ``stack``), returning rows the repository names (``vfs_orm.rows``);
- **errors**: the driver's exceptions (``errors``) and their translation into ``VFSError``
  subclasses by error code (``translate``);
- **maintenance and images**: ``check``, ``info``, ``compact``, ``sync``, images as bytes.

The next backend is one more package beside ``sqlite/`` plus a fixture in the conformance
suite (``tests/conformance``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from vfs_orm.errors import VFSError

#: Seconds a writer waits for another process's write lock, unless told otherwise.
DEFAULT_BUSY_TIMEOUT = 30.0


class DriverError(Exception):
    """A driver's exception, wrapped by its backend where it leaves the driver, so that the
    layers above can catch it without importing the driver (an optional extra). The backend
    translates it into a ``VFSError`` by the driver's error code (``translate``)."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig

    #: A transient conflict with another transaction (a serialization failure, a deadlock):
    #: the whole operation may run again from the start and succeed.
    retryable = False

    def translate(self, path: str | None) -> VFSError:
        raise NotImplementedError


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do."""

    name: str  #: the backend's name ("sqlite")
    dialect: str  #: the SQLAlchemy dialect its engines use
    in_memory: bool  #: databases that live in this process's memory (``":memory:"``)
    images: bool  #: a database as bytes: ``to_bytes``/``from_bytes``/``serialize_iter``
    blob_reads: bool  #: reading part of a stored value without a query (streaming reads)
    layers: bool  #: read-only underlays resolved inside SQL
    layers_per_connection: int  #: underlays one connection can reach (0: no limit)
    multi_process: bool  #: several processes read and write one database
    reclaims_space: bool  #: ``compact()`` gives freed space back to the disk
    durability_choice: bool  #: ``durable=False`` trades power-loss safety for speed


@dataclass(frozen=True)
class Opened:
    """What ``Backend.open_engine`` made: the engine, the URI another VFS attaches this
    database with (read-only), and whether it lives in memory."""

    engine: Any
    read_only_uri: str
    memory: bool
    #: Keeps an in-memory image alive until the engine's first connection holds it.
    keep_alive: Any = None


class TransactionalConnection(Protocol):
    """One thread's connection, as the unit of work drives it."""

    raw: Any  #: the driver connection that statements run on
    depth: int  #: open batch levels
    poisoned: dict[int, BaseException]
    snapshot: bool  #: inside ``VFS.snapshot()``
    txn: int  #: bumped whenever what the transaction saw may be undone or overtaken
    stack: Any  #: the layer stack this connection has attached
    conn: Any  #: the SQLAlchemy connection that owns ``raw``

    def in_transaction(self) -> bool: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def savepoint(self, name: str) -> None: ...
    def release(self, name: str) -> None: ...
    def rollback_to(self, name: str) -> None: ...
    def pin_snapshot(self) -> None: ...
    def end_snapshot(self) -> None: ...
    def close(self) -> None: ...

    #: What ``trace`` last set: every statement run on this connection goes to it.
    tracing: Callable[[str], object] | None

    def trace(self, record: Callable[[str], object] | None) -> None:
        """Hand every statement run on this connection from now on to ``record`` (None:
        stop). Costs nothing while no one traces: nothing on the statement path checks."""


def rollback_borrowed(sa_stack: list[Any]) -> None:
    """Undo the innermost SQLAlchemy transaction vfs_orm opened on a host's connection (a
    borrowed session's): both backends' connections drive host transactions this way."""
    txn = sa_stack.pop()
    if txn.is_active:
        txn.rollback()


class Backend(Protocol):
    """A database engine vfs_orm can keep a tree in."""

    capabilities: Capabilities
    #: Exceptions the driver (and SQLAlchemy over it) raise: caught where a public call ends.
    errors: tuple[type[BaseException], ...]

    def translate(self, exc: BaseException, path: str | None = None) -> VFSError: ...

    # -- opening --------------------------------------------------------------------------
    def check_host(self, engine: Any) -> None:
        """Accept a host application's engine (or refuse it with a VFSError)."""

    def open_engine(self, db_path: str, *, read_only: bool, durable: bool,
                    busy_timeout: float, image: bytes | None = None,
                    tree: str | None = None) -> Opened:
        """An engine for a path or URL (``tree``: where in the database the tree lives)."""

    def own_transactions(self, conn: Any) -> AbstractContextManager[None]:
        """While vfs_orm sets a connection up, its own transactions are the only ones."""

    def prepare(self, conn: Any, *, where: str, memory: bool, read_only: bool, embedded: bool,
                page_size: int | None, on_create: Callable[[Any], None],
                tree: str | None = None) -> Any:
        """Check (read-only) or create/upgrade the format; returns the identity row."""

    def connection(self, conn: Any, borrowed: bool = False) -> TransactionalConnection:
        """One thread's connection, driven by the unit of work."""

    def attach_limit(self, raw: Any) -> int:
        """Underlays one connection can reach."""

    def layer_stack(self, version: int, layers: tuple[Any, ...], per_connection: int,
                    busy_timeout: float, content: Any = ..., folded: bool = False,
                    whiteouts: bool = False) -> Any:
        """A ``LayerStack`` of underlays for this backend's connections."""

    def underlay_schema(self, engine: Any, layer_backend: Backend, layer_engine: Any,
                        counter: int) -> str | None:
        """The schema an underlay is reached by from this backend's connections (SQLite: a
        generated ATTACH alias; PostgreSQL: the underlay's tree), or None for an underlay
        they cannot reach: it is then read through its own VFS (a foreign layer)."""

    # -- statements -------------------------------------------------------------------------
    def inode_statements(self, schema: str = "main", content: Any = ...) -> Any: ...
    def manifest_statements(self) -> Any: ...
    def head_revision(self) -> str: ...
    def revision(self, target: Any) -> str | None:
        """The format revision of a database (a path or URL) or of a host's engine; None
        where there is none yet."""

    # -- maintenance and images -------------------------------------------------------------
    def check(self, raw: Any, quick: bool) -> Any: ...
    def info(self, raw: Any, entry_problems: Callable[[Any], Any]) -> dict[str, Any]: ...
    def compact(self, uow: Any, *, embedded: bool, file_db: bool, full: bool = False
                ) -> dict[str, Any]: ...
    def sync(self, raw: Any) -> None: ...
    def collect_image(self, data: bytes | Iterable[bytes]) -> bytes: ...
    def memory_image(self, raw: Any, block_size: int) -> list[bytes]: ...
    def file_image(self, db_path: str, read_only_uri: str, block_size: int
                   ) -> Iterator[bytes]: ...
    def replace_content(self, source: Any, target: Any) -> None: ...
    def file_bytes(self, db_path: str) -> int: ...
