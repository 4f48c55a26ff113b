"""fsspec's own contract suite (``fsspec.tests.abstract``: copy, get, put, open, pipe; 137 tests)
against the ``vfsorm`` filesystem, on a SQLite pack and on a PostgreSQL tree."""

from __future__ import annotations

import posixpath

import pytest

fsspec = pytest.importorskip("fsspec", reason="the fsspec extra is not installed")
from fsspec.tests import abstract

from vfs_orm import VFS
from vfs_orm.adapters.fsspec import VFSFileSystem


@pytest.fixture(params=["sqlite", "postgresql"])
def vfs_fs(request, tmp_path):
    """A vfsorm filesystem over a new pack file, or a new PostgreSQL tree."""
    if request.param == "sqlite":
        fs = fsspec.filesystem("vfsorm", db=str(tmp_path / "pack.vfs"), skip_instance_cache=True)
    else:
        url = request.getfixturevalue("pg_url")
        tree = request.getfixturevalue("pg_tree")
        fs = fsspec.filesystem("vfsorm", db=url, tree=tree, skip_instance_cache=True)
    # A new pack: created by the first write (a read of a missing pack never creates it).
    assert isinstance(fs, VFSFileSystem) and isinstance(fs.writer, VFS)
    yield fs
    fs.close()


class VFSOrmFixtures(abstract.AbstractFixtures):
    @pytest.fixture
    def fs(self, vfs_fs):
        return vfs_fs

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self, fs):
        fs.makedirs("/contract", exist_ok=True)
        return "/contract"


class TestVFSOrmCopy(abstract.AbstractCopyTests, VFSOrmFixtures):
    pass


class TestVFSOrmGet(abstract.AbstractGetTests, VFSOrmFixtures):
    pass


class TestVFSOrmPut(abstract.AbstractPutTests, VFSOrmFixtures):
    pass


class TestVFSOrmOpen(abstract.AbstractOpenTests, VFSOrmFixtures):
    pass


class TestVFSOrmPipe(abstract.AbstractPipeTests, VFSOrmFixtures):
    pass
