"""The shipped conformance suite (vfs_orm.testing) on every configuration of conftest.py:
the ``fs`` fixture there is parametrized over them."""

from __future__ import annotations

from vfs_orm.testing import FileTests, StreamTests, TreeTests


class TestFiles(FileTests):
    """Whole files, metadata and errors: the same answers on every configuration."""


class TestStreams(StreamTests):
    """File objects (open modes, streams, seeks): the same answers on every configuration."""


class TestTree(TreeTests):
    """Directories, moves, copies of trees, walk and glob: the same answers on every
    configuration."""
