"""Shared fixtures: every VFS test runs on a real database file in tmp_path (WAL exercised)
and, where it says ``any_vfs``, on ``:memory:`` too. Everything is closed at teardown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

# The shipped conformance suite's assertions explain themselves as a test module's do.
pytest.register_assert_rewrite("vfs_orm.testing")

from vfs_orm import VFS


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "test.vfs")


@pytest.fixture
def make_vfs(tmp_path) -> Iterator[Callable[..., VFS]]:
    made: list[VFS] = []

    def make(path: str | None = None, **kw) -> VFS:
        fs = VFS(path or str(tmp_path / f"db{len(made)}.vfs"), **kw)
        made.append(fs)
        return fs

    yield make
    for fs in made:
        fs.close()


@pytest.fixture
def vfs(db_path) -> Iterator[VFS]:
    fs = VFS(db_path)
    yield fs
    fs.close()


@pytest.fixture(params=["file", "memory"])
def any_vfs(request, tmp_path) -> Iterator[VFS]:
    fs = VFS(str(tmp_path / "any.vfs") if request.param == "file" else ":memory:")
    yield fs
    fs.close()


def tree_of(fs: VFS, top: str = "/") -> dict[str, bytes | None]:
    """Every path below ``top`` mapped to its bytes (None for directories)."""
    out: dict[str, bytes | None] = {}
    for d, dirs, files in fs.walk(top):
        for name in dirs:
            out[os.path.join(d, name)] = None
        for name in files:
            p = os.path.join(d, name)
            out[p] = fs.read_bytes(p)
    return out


# -- PostgreSQL: one throwaway cluster per session (tests/pgserver.py) ----------------------
_PG: dict[str, object] = {}


def _pg_unavailable(reason: str) -> None:
    """Skip with the reason, except under CI=true, where PostgreSQL tests must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests must run under CI=true: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A postgresql+psycopg URL of a running server (started here, or VFS_ORM_PG_URL)."""
    import pgserver

    missing = pgserver.driver_missing()
    if missing:
        _pg_unavailable(missing)
    if "cluster" not in _PG:
        try:
            _PG["cluster"] = pgserver.start()
        except RuntimeError as exc:
            _PG["error"] = str(exc)
            _PG["cluster"] = None
    cluster = _PG["cluster"]
    if cluster is None:
        _pg_unavailable(str(_PG["error"]))
    yield cluster.url  # type: ignore[attr-defined]


def pytest_sessionfinish(session, exitstatus):
    cluster = _PG.get("cluster")
    if cluster is not None:
        cluster.stop()  # type: ignore[attr-defined]


_TREES = iter(range(1, 1 << 30))


@pytest.fixture
def pg_tree(pg_url) -> Iterator[str]:
    """A fresh tree name (a schema dropped after the test)."""
    from sqlalchemy import create_engine

    tree = f"t{os.getpid()}_{next(_TREES)}"
    yield tree
    engine = create_engine(pg_url.replace("postgresql+psycopg", "postgresql+psycopg"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{tree}" CASCADE')
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request, tmp_path) -> Callable[[], VFS]:
    """Opens VFS objects on one tree (a fresh SQLite file, or a fresh PostgreSQL tree): a test
    that takes it runs on both backends."""
    if request.param == "sqlite":
        path = str(tmp_path / "any.vfs")
        return lambda: VFS(path)
    url = request.getfixturevalue("pg_url")
    tree = request.getfixturevalue("pg_tree")
    return lambda: VFS(url, tree=tree)
