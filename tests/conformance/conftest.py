"""The conformance suite's configurations: the suite (``vfs_orm.testing``, subclassed in
tests/conformance) runs on each.

A configuration is a way to hold a tree: one database file, ``:memory:``, a file database over
one empty underlay, over three underlays (empty and non-empty, the working directory living
only in a lower layer, so every write there copies it up), over twelve (more than one
connection can attach: connection groups), a host application's SQLAlchemy engine, a
zstd-compressed database, a case-insensitive one (alone, and over three case-sensitive
underlays), a tree
on a PostgreSQL server (a throwaway cluster the tests start, see tests/pgserver.py), and a
PostgreSQL tree over three underlay trees of the same database, and one over two SQLite packs
with a tree of its database between them (foreign layers, each read through a VFS of its
own). Tests
work below ``/work`` beside the tree under ``/pre`` (see vfs_orm.testing); the underlays' own
content elsewhere must stay visible and must never change (checked after every test).

The next backend gets the whole suite by adding its configuration here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from vfs_orm import VFS
from vfs_orm.testing import PRE, ROOT

BASE_FILES = {"/base/readme.txt": b"from an underlay\n",
              "/base/sub/deep.bin": bytes(range(256)) * 300}  # several 4 KiB chunks


@dataclass
class Setup:
    fs: VFS
    root: str = ROOT
    underlays: list[Path | tuple[str, str]] = field(default_factory=list)
    visible: dict[str, bytes] = field(default_factory=dict)  # underlay files the view shows


def _underlay(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    with VFS(path, chunk_size=4096) as under:
        for d in dirs:
            under.makedirs(d, exist_ok=True)
        for p, data in files.items():
            under.write_bytes(p, data)
    return path


def _digest(layer: Path | tuple[str, str]) -> str:
    """An underlay's fingerprint: its file's bytes, or everything a tree holds."""
    if isinstance(layer, Path):
        return hashlib.sha256(layer.read_bytes()).hexdigest()
    import pgserver

    return pgserver.tree_digest(*layer)


def _pg_underlay(url: str, tree: str, files: dict[str, bytes], dirs: tuple[str, ...] = ()
                 ) -> tuple[str, str]:
    with VFS(url, tree=tree, chunk_size=4096) as under:
        for d in dirs:
            under.makedirs(d, exist_ok=True)
        for p, data in files.items():
            under.write_bytes(p, data)
    return url, tree


def _three_layers(make):  # type: ignore[no-untyped-def]
    """Three underlays: empty; BASE_FILES with part of PRE; the rest of PRE and older
    copies that the others shadow (PRE's directory spans two layers)."""
    first = {p: d for p, d in PRE.items() if not p.endswith(".bin")}
    lowest = {p: d for p, d in PRE.items() if p.endswith(".bin")}
    lowest.update({"/base/readme.txt": b"shadowed\n", "/pre/keep.txt": b"old\n"})
    return [make("empty", {}, ()), make("base", {**BASE_FILES, **first}, (ROOT,)),
            make("lowest", lowest, (ROOT,))]


def _make(kind: str, tmp: Path, request: pytest.FixtureRequest) -> tuple[Setup, list[object]]:
    cleanup: list[object] = []
    if kind == "postgresql":
        url = request.getfixturevalue("pg_url")
        tree = request.getfixturevalue("pg_tree")
        return Setup(VFS(url, tree=tree, chunk_size=4096)), cleanup
    if kind == "postgresql-layered":  # three underlay trees of the same database
        url = request.getfixturevalue("pg_url")
        tree = request.getfixturevalue("pg_tree")
        setup = Setup(VFS(url, tree=tree, chunk_size=4096))
        setup.underlays = _three_layers(
            lambda name, files, dirs: _pg_underlay(url, f"{tree}_{name}", files, dirs))
        setup.visible = dict(BASE_FILES)
        cleanup.append(_DropTrees(url, [t for _, t in setup.underlays]))
        for k, (u, t) in enumerate(setup.underlays):
            setup.fs.add_underlay(u, tree=t, priority=100 - k, name=f"u{k}")
        return setup, cleanup
    if kind == "postgresql-foreign":  # SQLite packs and a same-database tree, interleaved
        url = request.getfixturevalue("pg_url")
        tree = request.getfixturevalue("pg_tree")
        setup = Setup(VFS(url, tree=tree, chunk_size=4096))
        setup.underlays = _three_layers(
            lambda name, files, dirs: _pg_underlay(url, f"{tree}_{name}", files, dirs)
            if name == "base" else _underlay(tmp / f"{name}.vfs", files, dirs))
        setup.visible = dict(BASE_FILES)
        cleanup.append(_DropTrees(url, [lay[1] for lay in setup.underlays
                                        if isinstance(lay, tuple)]))
        for k, lay in enumerate(setup.underlays):
            if isinstance(lay, tuple):
                setup.fs.add_underlay(lay[0], tree=lay[1], priority=100 - k, name=f"u{k}")
            else:
                setup.fs.add_underlay(lay, priority=100 - k, name=f"u{k}")
        return setup, cleanup
    if kind == "file":
        return Setup(VFS(tmp / "top.vfs", chunk_size=4096)), cleanup
    if kind == "memory":
        return Setup(VFS(":memory:", chunk_size=4096)), cleanup
    if kind == "compressed":  # format 0004: content zstd-compressed where it shrinks
        return Setup(VFS(tmp / "top.vfs", chunk_size=4096, compression="zstd")), cleanup
    if kind == "case-insensitive":
        return Setup(VFS(tmp / "top.vfs", chunk_size=4096, case_insensitive=True)), cleanup
    if kind == "case-insensitive-layered":  # over three case-sensitive underlays
        fs = VFS(tmp / "top.vfs", chunk_size=4096, case_insensitive=True)
        setup = Setup(fs)
        setup.underlays = _three_layers(
            lambda name, files, dirs: _underlay(tmp / f"{name}.vfs", files, dirs))
        setup.visible = dict(BASE_FILES)
        for k, path in enumerate(setup.underlays):
            fs.add_underlay(path, priority=100 - k, name=f"u{k}")
        return setup, cleanup
    if kind == "host-engine":
        engine = create_engine(f"sqlite:///{tmp / 'host.db'}")
        cleanup.append(engine)
        return Setup(VFS(engine=engine, chunk_size=4096)), cleanup
    fs = VFS(tmp / "top.vfs", chunk_size=4096)
    setup = Setup(fs)
    if kind == "one-underlay":
        setup.underlays = [_underlay(tmp / "empty.vfs", {})]
    elif kind == "three-underlays":
        setup.underlays = _three_layers(
            lambda name, files, dirs: _underlay(tmp / f"{name}.vfs", files, dirs))
        setup.visible = dict(BASE_FILES)
    elif kind == "deep-stack":
        setup.underlays = [_underlay(tmp / f"l{k}.vfs", {f"/base/l{k}.txt": b"%d" % k})
                           for k in range(11)]
        # The working tree in the second connection group: copies pass through Python.
        setup.underlays.append(_underlay(tmp / "l11.vfs", PRE, dirs=(ROOT,)))
        setup.visible = {f"/base/l{k}.txt": b"%d" % k for k in range(11)}
    else:
        raise AssertionError(kind)
    for k, path in enumerate(setup.underlays):
        fs.add_underlay(path, priority=100 - k, name=f"u{k}")
    return setup, cleanup


CONFIGS = ["file", "memory", "one-underlay", "three-underlays", "deep-stack", "host-engine",
           "compressed", "case-insensitive", "case-insensitive-layered", "postgresql",
           "postgresql-layered", "postgresql-foreign"]


class _DropTrees:
    """Cleanup of underlay trees made for one test (the top tree is pg_tree's)."""

    def __init__(self, url: str, trees: list[str]) -> None:
        self.url, self.trees = url, trees

    def dispose(self) -> None:
        import pgserver

        pgserver.drop_trees(self.url, self.trees)


@pytest.fixture(params=CONFIGS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    s, cleanup = _make(request.param, tmp_path, request)
    before = {p: _digest(p) for p in s.underlays}
    try:
        yield s  # the suite's fixtures make root and /pre, and check() the database after
        for p, data in s.visible.items():
            if not p.startswith(s.root + "/"):
                assert s.fs.read_bytes(p) == data, f"underlay file {p} changed in the view"
        s.fs.close()
        assert {p: _digest(p) for p in s.underlays} == before, "a write reached an underlay"
    finally:
        s.fs.close()
        for engine in cleanup:
            engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def fs(setup: Setup) -> VFS:
    return setup.fs
