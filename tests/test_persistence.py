"""Reopening, chunk sizes stored with the data, read-only opens."""

import random

import pytest
from conftest import tree_of

from vfs_orm import VFS, ContractError, NotFoundError


def test_persists_across_reopen(db_path):
    with VFS(db_path) as fs:
        fs.write_bytes("/a/b", b"hello")
        fs.mkdir("/empty")
        st = fs.stat("/a/b")
    with VFS(db_path) as fs:
        assert fs.read_bytes("/a/b") == b"hello"
        assert fs.isdir("/empty")
        assert fs.stat("/a/b").st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize("write_cs, read_cs", [(1024, 65536), (65536, 4096), (4096, None),
                                                (512, 1 << 20)])
def test_other_chunk_size_reads_everything(db_path, write_cs, read_cs):
    rnd = random.Random(7)
    files = {f"/f{i}": rnd.randbytes(rnd.choice([0, 1, 511, 4097, 70_000, 300_001]))
             for i in range(12)}
    with VFS(db_path, chunk_size=write_cs) as fs:
        for p, d in files.items():
            fs.write_bytes(p, d)
        with fs.open("/sparse", "wb") as f:
            f.seek(100_000)
            f.write(b"tail")
        with fs.open("/appended", "ab") as f:
            for _ in range(5):
                f.write(rnd.randbytes(3000))
    with VFS(db_path, chunk_size=read_cs) as fs:
        for p, d in files.items():
            assert fs.read_bytes(p) == d
            with fs.open(p, "rb") as f:
                assert f.read() == d
        assert fs.read_bytes("/sparse") == bytes(100_000) + b"tail"
        assert fs.getsize("/appended") == 15_000
        # in-place updates of old files keep their own chunk size
        with fs.open("/f5", "r+b") as f:
            f.seek(10)
            f.write(b"PATCH")
        d = bytearray(files["/f5"])
        if len(d) >= 15:
            d[10:15] = b"PATCH"
        else:
            d = d + bytes(10 - len(d)) + b"PATCH" if len(d) < 10 else d[:10] + b"PATCH"
        assert fs.read_bytes("/f5") == bytes(d)


def test_database_default_chunk_size_is_recorded(db_path):
    with VFS(db_path, chunk_size=4096) as fs:
        assert fs.chunk_size == 4096
    with VFS(db_path) as fs:
        assert fs.chunk_size == 4096


def test_invalid_constructor_arguments(tmp_path):
    import icontract
    with pytest.raises(ContractError) as ei:
        VFS("")
    assert isinstance(ei.value, icontract.ViolationError) and isinstance(ei.value, ValueError)
    with pytest.raises(ValueError):
        VFS(str(tmp_path / "x.vfs"), chunk_size=0)
    with pytest.raises(TypeError):
        VFS(str(tmp_path / "x.vfs"), chunk_size="big")
    with pytest.raises(TypeError):
        VFS(42)
    with pytest.raises(ValueError):
        VFS(str(tmp_path / "x.vfs"), page_size=1000)
    with pytest.raises(NotFoundError):
        VFS(str(tmp_path / "missing.vfs"), read_only=True)
    assert not (tmp_path / "missing.vfs").exists()


def test_pathlike_and_odd_file_names(tmp_path):
    p = tmp_path / "we?ird #name %20.vfs"
    with VFS(p) as fs:
        fs.write_text("/x", "y")
    assert p.exists()
    with VFS(str(p), read_only=True) as fs:
        assert fs.read_text("/x") == "y"


def test_memory_databases_are_independent():
    a, b = VFS(), VFS(":memory:")
    try:
        a.write_text("/x", "a")
        assert not b.exists("/x")
    finally:
        a.close()
        b.close()


def test_big_tree_roundtrip(db_path):
    rnd = random.Random(1)
    with VFS(db_path) as fs:
        with fs.atomic_batch():
            for i in range(300):
                fs.write_bytes(f"/d{i % 7}/s{i % 3}/f{i}", rnd.randbytes(i * 10))
        expect = tree_of(fs)
    with VFS(db_path) as fs:
        assert tree_of(fs) == expect
