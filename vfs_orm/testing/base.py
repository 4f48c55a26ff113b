"""What every test of the suite stands on: the ``fs`` under test (the subclass's fixture), an
empty working directory ``root``, a tree that exists before the test (``pre``), and a check
of the database after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vfs_orm import VFS

#: The working directory of the tests (made if it does not exist; it must be empty).
ROOT = "/work"
#: Files under /pre before a test starts: written into the VFS when it does not show them
#: (a layered configuration may provide them from its underlays instead, so that changing
#: them copies up and removing them whites out). Tests see the same tree either way.
PRE = {"/pre/keep.txt": b"kept\n",
       "/pre/sub/x.bin": bytes(range(200)) * 50,
       "/pre/sub/y.txt": b"y"}


class Conformance:
    """The fixtures of the suite; a subclass provides ``fs``: a fixture giving a new,
    writable VFS for each test (it closes it afterwards)."""

    @pytest.fixture
    def root(self, fs: VFS) -> str:
        """The empty directory the tests work in."""
        if not fs.isdir(ROOT):
            fs.makedirs(ROOT)
        return ROOT

    @pytest.fixture
    def pre(self, fs: VFS) -> dict[str, bytes]:
        """The tree under /pre that exists before the test (see ``PRE``)."""
        for p, data in PRE.items():
            if not fs.exists(p):
                fs.write_bytes(p, data)
            assert fs.read_bytes(p) == data, f"{p} is not what the suite expects"
        return dict(PRE)

    @pytest.fixture(autouse=True)
    def _checked(self, fs: VFS, root: str, pre: dict[str, bytes]) -> Iterator[None]:
        """Every test starts with ``root`` and ``pre`` in place, and leaves a database that
        ``check()`` finds sound."""
        yield
        if not fs.closed:
            report = fs.check()
            assert report.ok, report.problems
