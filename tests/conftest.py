"""Shared fixtures: every VFS test runs on a real database file in tmp_path (WAL exercised)
and, where it says ``any_vfs``, on ``:memory:`` too. Everything is closed at teardown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

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
