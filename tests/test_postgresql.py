"""PostgreSQL-specific behaviour: trees, format creation, concurrency, errors. (Everything the
API promises on every backend is in tests/conformance, which runs on PostgreSQL too.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import create_engine

from vfs_orm import VFS, ContractError, FormatVersionError, NotFoundError, ReadOnlyError, VFSError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sql(url: str, *statements: str) -> list:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            out = []
            for s in statements:
                res = conn.exec_driver_sql(s)
                out.append(res.fetchall() if res.returns_rows else None)
            return out
    finally:
        engine.dispose()


def test_a_tree_is_a_schema(pg_url, pg_tree):
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/saves/slot1.json", b'{"hp": 3}')
        assert fs.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
        info = fs.info()
        assert info["tree"] == pg_tree and info["files"] == 1 and info["revision"] == info["head"]
    tables, storage, version = _sql(
        pg_url,
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{pg_tree}' "
        f"ORDER BY 1",
        f"SELECT attstorage FROM pg_attribute WHERE attrelid = '\"{pg_tree}\".vfs_chunks'"
        f"::regclass AND attname = 'data'",
        f'SELECT version_num FROM "{pg_tree}".vfs_alembic_version')
    assert [t[0] for t in tables] == ["vfs_alembic_version", "vfs_chunks", "vfs_inodes",
                                      "vfs_layer_manifests"]
    assert storage == [("e",)]  # STORAGE EXTERNAL: substring() reads only what it needs
    assert version == [(info["head"],)]
    with VFS(pg_url, tree=pg_tree, read_only=True) as again:
        assert again.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
        with pytest.raises(ReadOnlyError):
            again.write_bytes("/x", b"")


def test_trees_are_separate(pg_url, pg_tree):
    other = pg_tree + "_b"
    try:
        with VFS(pg_url, tree=pg_tree) as a, VFS(pg_url, tree=other) as b:
            a.write_bytes("/f", b"a")
            b.write_bytes("/f", b"b")
            assert (a.read_bytes("/f"), b.read_bytes("/f")) == (b"a", b"b")
            assert a.identity["uuid"] != b.identity["uuid"]
    finally:
        _sql(pg_url, f'DROP SCHEMA IF EXISTS "{other}" CASCADE')


@pytest.mark.parametrize("bad", ["", "Saves", "1st", "a-b", "a;drop table x", 'x"y', "public",
                                 "pg_catalog", "information_schema", "a" * 64, "ü"])
def test_hostile_tree_names_are_refused(pg_url, bad):
    with pytest.raises(ContractError):
        VFS(pg_url, tree=bad)


def test_tree_is_only_for_postgresql(tmp_path):
    with pytest.raises(ContractError):
        VFS(tmp_path / "x.vfs", tree="saves")


def test_read_only_never_creates_a_tree(pg_url, pg_tree):
    with pytest.raises(NotFoundError):
        VFS(pg_url, tree=pg_tree, read_only=True)
    assert _sql(pg_url, f"SELECT count(*) FROM information_schema.schemata "
                        f"WHERE schema_name = '{pg_tree}'")[0] == [(0,)]


def test_a_newer_tree_is_refused_untouched(pg_url, pg_tree):
    VFS(pg_url, tree=pg_tree).close()
    _sql(pg_url, f"UPDATE \"{pg_tree}\".vfs_alembic_version SET version_num = '9999'")
    with pytest.raises(FormatVersionError):
        VFS(pg_url, tree=pg_tree)
    assert _sql(pg_url, f'SELECT version_num FROM "{pg_tree}".vfs_alembic_version')[0] == \
        [("9999",)]


def test_hostile_paths_are_data(pg_url, pg_tree):
    names = ["'; DROP TABLE vfs_inodes; --", "%s", "%(x)s", "$1", "a\\b", "ünï ☃", "*", "[x]"]
    with VFS(pg_url, tree=pg_tree) as fs:
        for n in names:
            fs.write_bytes(f"/d/{n}", n.encode())
        assert fs.listdir("/d") == sorted(names)
        assert fs.glob("/d/*%*") == sorted(f"/d/{n}" for n in names if "%" in n)
        assert fs.glob("/d/[[]x]") == ["/d/[x]"]
        for n in names:
            assert fs.read_bytes(f"/d/{n}") == n.encode()
        fs.describe(name="'); DROP SCHEMA x; --", description="%s %(a)s")
        assert fs.identity["name"] == "'); DROP SCHEMA x; --"


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_concurrent_writers_lose_no_update(pg_url, pg_tree):
    """8 processes x 200 read-modify-write increments of one counter file end at 1,600:
    writes to a tree serialise on the tree's lock, and a batch reads what it writes over."""
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/counter", b"0")
    code = """
        import sys
        from vfs_orm import VFS
        with VFS(sys.argv[1], tree=sys.argv[2]) as fs:
            for _ in range(200):
                with fs.atomic_batch():
                    n = int(fs.read_bytes("/counter"))
                    fs.write_bytes("/counter", str(n + 1).encode())
        print("done")
    """
    children = [_child(code, pg_url, pg_tree) for _ in range(8)]
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-2000:]
        assert out.strip() == "done"
    with VFS(pg_url, tree=pg_tree) as fs:
        assert fs.read_bytes("/counter") == b"1600"


def test_two_processes_create_one_tree(pg_url, pg_tree):
    code = """
        import sys
        from vfs_orm import VFS
        with VFS(sys.argv[1], tree=sys.argv[2]) as fs:
            fs.write_bytes("/" + sys.argv[3], b"x")
            print(fs.identity["uuid"])
    """
    children = [_child(code, pg_url, pg_tree, f"p{k}") for k in range(4)]
    uuids = set()
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        uuids.add(out.strip())
    assert len(uuids) == 1  # one tree, created once
    with VFS(pg_url, tree=pg_tree) as fs:
        assert fs.listdir("/") == ["p0", "p1", "p2", "p3"]


def test_missing_driver_names_the_extra(tmp_path):
    code = """
        import sys
        sys.modules["psycopg"] = None  # as if it were not installed
        from vfs_orm import VFS, VFSError
        try:
            VFS("postgresql+psycopg://nobody@/nothing?host=/nonexistent", tree="t")
        except VFSError as exc:
            print(type(exc).__name__, exc)
    """
    child = _child(code)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert "pip install 'vfs-orm[postgresql]'" in out


def test_layers_and_images_say_not_yet(pg_url, pg_tree, tmp_path):
    base = tmp_path / "base.vfs"
    VFS(base).close()
    with VFS(pg_url, tree=pg_tree) as fs:
        with pytest.raises(VFSError, match="not available on postgresql yet"):
            fs.add_underlay(base)
        with pytest.raises(VFSError, match="not available yet"):
            fs.to_bytes()
