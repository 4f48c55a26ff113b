"""universal_pathlib's own contract suite (``BaseTests``, 123 tests) against ``UPath("vfsorm://",
db=...)``, on a SQLite pack and on a PostgreSQL tree.

``BaseTests`` ships only in universal_pathlib's sdist: the sdist of the installed version is
downloaded with pip at test time (cached in ``~/.cache/vfs-orm-tests``), never vendored, and
its ``upath/tests`` package is made importable beside the installed ``upath``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest

pytest.importorskip("upath", reason="the upath extra is not installed")
import upath
from upath import UPath

from vfs_orm.adapters.upath import VFSPath

#: Clean under -W error: any warning (a missing flavour, a deprecated call) fails a test.
pytestmark = pytest.mark.filterwarnings("error")

VERSION = version("universal_pathlib")
CACHE = Path(os.environ.get("VFS_ORM_TEST_CACHE", Path.home() / ".cache" / "vfs-orm-tests"))
NEEDED = ("__init__.py", "cases.py", "utils.py")


def _upath_tests() -> Path:
    """The directory holding ``tests/`` of universal_pathlib's sdist (extracted once)."""
    root = CACHE / f"universal_pathlib-{VERSION}" / "upath"
    if all((root / "tests" / n).exists() for n in NEEDED):
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"universal_pathlib-{VERSION}.tar.gz"
    if not sdist.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"universal_pathlib=={VERSION}", "-d", str(CACHE)],
            capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not sdist.exists():
            raise RuntimeError(f"could not download universal_pathlib's sdist: {proc.stderr}")
    with tarfile.open(sdist) as tar:
        for n in NEEDED:
            member = tar.getmember(f"universal_pathlib-{VERSION}/upath/tests/{n}")
            target = root / "tests" / n
            target.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            target.write_bytes(extracted.read())
    return root


try:
    upath.__path__.append(str(_upath_tests()))  # makes `upath.tests` importable
    from upath.tests.cases import BaseTests
    from upath.tests.utils import OverrideMeta, overrides_base
except Exception as exc:  # no network: say how, or fail under CI
    if os.environ.get("CI"):
        raise
    pytest.skip(f"universal_pathlib's BaseTests unavailable ({exc}); needs PyPI once",
                allow_module_level=True)


@pytest.fixture
def local_testdir(tmp_path):
    """The local tree universal_pathlib's tests compare with (its conftest's fixture)."""
    folder1 = tmp_path / "folder1"
    folder1.mkdir()
    for name in ("file1.txt", "file2.txt"):
        (folder1 / name).write_text(name)
    (tmp_path / "file1.txt").write_text("hello world")
    (tmp_path / "file2.txt").write_bytes(b"hello world")
    return str(tmp_path)


@pytest.fixture
def pathlib_base(local_testdir):
    return Path(local_testdir)


@pytest.fixture
def clear_fsspec_memory_cache():
    from fsspec import get_filesystem_class

    memory = get_filesystem_class("memory")
    dirs, store = memory.pseudo_dirs.copy(), memory.store.copy()
    try:
        yield
    finally:
        memory.pseudo_dirs, memory.store = dirs, store


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path_factory):
    if request.param == "sqlite":  # not in tmp_path: that is the local tree compared with
        return {"db": str(tmp_path_factory.mktemp("pack") / "pack.vfs")}
    return {"db": request.getfixturevalue("pg_url"), "tree": request.getfixturevalue("pg_tree")}


class TestVFSPath(BaseTests, metaclass=OverrideMeta):
    @pytest.fixture(autouse=True)
    def path(self, storage):
        self.path = UPath("vfsorm:///suite", **storage)
        self.prepare_file_system()

    @overrides_base
    def test_is_correct_class(self):
        assert isinstance(self.path, VFSPath)
