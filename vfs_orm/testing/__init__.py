"""The conformance suite, for anything that makes a ``VFS``: a backend, an adapter, a
configuration (layers, compression, a host's engine). It is the suite vfs_orm's own tests run
on every configuration they know (SQLite file and ``:memory:``, stacks of underlays,
PostgreSQL trees, ...), shipped as fsspec ships ``fsspec.tests.abstract`` and PyFilesystem2
``fs.test``.

Subclass ``VFSConformance`` in a test module (its name starting with ``Test``) and give it a
``fs`` fixture: a new, writable VFS for each test, closed afterwards::

    import pytest
    from vfs_orm import VFS
    from vfs_orm.testing import VFSConformance

    class TestMyBackend(VFSConformance):
        @pytest.fixture
        def fs(self, tmp_path):
            with VFS(tmp_path / "t.vfs") as fs:
                yield fs

Every test works in an empty directory (``root``, ``/work``) beside a tree that exists before
it (``pre``, under ``/pre``; written if the VFS does not already show it, so a layered VFS
may provide it from an underlay), and ends with ``fs.check()`` finding the database sound.
``FileTests``, ``StreamTests`` and ``TreeTests`` are its three parts, for a subclass that
wants only some.

Needs pytest (the ``testing`` extra: ``pip install 'vfs-orm[testing]'``); nothing else of
vfs_orm imports this package. For pytest's detailed assertion messages, call
``pytest.register_assert_rewrite("vfs_orm.testing")`` in a ``conftest.py`` before importing it.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("vfs_orm.testing needs pytest: pip install 'vfs-orm[testing]'") from exc

from vfs_orm.testing.base import PRE, ROOT, Conformance
from vfs_orm.testing.files import FileTests
from vfs_orm.testing.streams import StreamTests
from vfs_orm.testing.tree import TreeTests

__all__ = ["PRE", "ROOT", "Conformance", "FileTests", "StreamTests", "TreeTests",
           "VFSConformance"]


class VFSConformance(FileTests, StreamTests, TreeTests):
    """The whole suite: ``FileTests``, ``StreamTests`` and ``TreeTests``. A subclass provides
    the ``fs`` fixture."""
