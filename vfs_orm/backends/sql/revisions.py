"""The format's Alembic revisions, shared by every backend: where the scripts are, the head,
the known revisions, and the lock every migration of the process runs under. Alembic is
imported only when a script is first needed.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from vfs_orm.errors import VFSError

#: Alembic's ``op`` and ``context`` are process-wide proxies: two migrations running at once
#: in two threads (a new in-memory VFS created while another thread builds the closed schema's
#: reference) send each other's operations to the wrong database ("table already exists").
#: Every migration in the process runs under this lock.
ALEMBIC_LOCK = threading.RLock()


@functools.lru_cache(maxsize=1)
def migrations_dir() -> str:
    """Where the Alembic scripts are: inside the installed package (wheel), or the repository's
    top-level ``migrations/`` (source checkout, editable install)."""
    pkg = Path(__file__).resolve().parents[2]  # the vfs_orm package
    for cand in (pkg / "migrations", pkg.parent / "migrations"):
        if (cand / "env.py").is_file():
            return str(cand)
    raise VFSError.for_path(None, "vfs_orm's migration scripts are missing from this install")


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()  # no ini file: env.py must not reconfigure the host's logging
    cfg.set_main_option("script_location", migrations_dir().replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.lru_cache(maxsize=1)
def script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    return str(script().get_current_head())


def known_revisions() -> list[str]:
    return [r.revision for r in script().walk_revisions()][::-1]
