"""PostgreSQL engines: URLs, tree names, the driver (psycopg 3, an optional extra)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from vfs_orm.errors import ContractError, InvalidPathError, VFSError

DEFAULT_TREE = "vfs"
#: A tree is a PostgreSQL schema: a plain lower-case identifier, never quoted from user input
#: into SQL without this check (and never a system schema).
_TREE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = ("pg_", "information_schema")


def check_tree(tree: object) -> str:
    if not isinstance(tree, str):
        raise TypeError(f"tree must be a str, not {type(tree).__name__}")
    if not _TREE.fullmatch(tree) or tree.startswith(_RESERVED) or tree == "public":
        raise ContractError.for_path(
            tree, "a tree name is a lower-case identifier (letters, digits, _; at most 63; "
                  "not public, information_schema or pg_*)")
    return tree


def require_driver() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise VFSError.for_path(None, "PostgreSQL needs the psycopg driver: pip install "
                                      "'vfs-orm[postgresql]'") from None


def parse_url(url: str) -> URL:
    """``url`` parsed, or a one-line error that does not repeat its password.

    Raises:
        InvalidPathError: not a URL SQLAlchemy can read (a bad port, brackets, ...).
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018  (checked only when read)
    except (ArgumentError, ValueError, TypeError) as exc:
        shown = re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", str(url))
        raise InvalidPathError.for_path(shown, f"not a valid PostgreSQL URL ({exc})") from None
    return parsed


def make_engine(url: str, *, read_only: bool, busy_timeout: float) -> Engine:
    """An engine on psycopg 3 whatever driver the URL names (``postgresql://`` included)."""
    require_driver()
    parsed = parse_url(url).set(drivername="postgresql+psycopg")
    options = f"-c lock_timeout={int(busy_timeout * 1000)}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    else:
        # Write transactions are SERIALIZABLE: a sequential scan marks the whole table as
        # read, and then every concurrent writer of the tree conflicts with it. On a small
        # tree the planner prefers one for a lookup (measured: W11 at 4 writers, thousands
        # of aborted saves in 12 s; with this, a handful). Scans that no index serves still
        # run as sequential scans.
        options += " -c enable_seqscan=off"
    args: dict[str, Any] = {"options": options, "application_name": "vfs_orm"}
    # vfs_wait_for_server: how long a statement on a lost connection waits for a server
    # to connect to again (a restart, a failover to a promoted standby): busy_timeout.
    return create_engine(parsed, connect_args=args, pool_pre_ping=True,
                         execution_options={"vfs_wait_for_server": busy_timeout})


def where(url: str, tree: str) -> str:
    """How errors name a tree: the URL without its password, and the tree."""
    return f"{parse_url(url).render_as_string(hide_password=True)}#{tree}"


def same_database(a: Any, b: Any) -> bool:
    """Whether two engine URLs name the same database of the same server (the user, the
    password and the driver may differ: a read-only role reads the same trees)."""
    def key(url: Any) -> tuple[Any, ...]:
        return (url.host, url.port, url.database, url.query.get("host"),
                url.query.get("port"))
    return key(make_url(a)) == key(make_url(b))
