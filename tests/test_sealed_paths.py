"""Every path that re-places content keeps it sealed to its place, and every damage it finds
names the file (format 0007). From a review of the seal: copy on write both ways, spills,
copy-up from underlays, checkpoints (their holders and inline entries in the deep check),
images, dictionaries, copies between backends, case-insensitive trees; on SQLite and
PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from test_sealed_content import swap_pg_chunks

from vfs_orm import VFS, CorruptionError

A = bytes(range(256)) * 64        # 16 KiB: four chunks of 4 KiB
B = bytes(reversed(range(256))) * 64
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _ok(fs):
    rep = fs.check(deep=True)
    assert rep.ok, rep.problems


def _all(fs):
    out = {}
    for top, _, files in fs.walk("/"):
        for f in files:
            p = (top.rstrip("/") + "/" + f)
            if stat.S_ISREG(fs.stat(p).st_mode):  # links and FIFOs (format 0010) hold no bytes
                out[p] = fs.read_bytes(p)
    return out


@pytest.mark.parametrize("name", ["format_0001", "format_0002", "format_0003", "format_0006",
                                  "format_0007", "format_0008", "format_0009", "format_0010",
                                  "format_0011",
                                  "legacy-seed-format", "legacy-seed-mixed"])
def test_upgraded_fixtures_read_and_check(tmp_path, name):
    dst = tmp_path / "f.db"
    shutil.copy(FIXTURES / f"{name}.db", dst)
    dst.chmod(0o644)
    with VFS(str(dst)) as fs:
        _all(fs)
        _ok(fs)
        for cp in fs.checkpoints():
            with fs.open_checkpoint(cp.name) as v:
                _all(v)


def test_upgraded_fixture_0006_writes(tmp_path):
    dst = tmp_path / "f.db"
    shutil.copy(FIXTURES / "format_0006.db", dst)
    dst.chmod(0o644)
    with VFS(str(dst)) as fs:
        files = _all(fs)
        for p, data in files.items():
            if data:
                with fs.open(p, "r+b") as f:
                    f.seek(1)
                    f.write(b"Z")
        for cp in fs.checkpoints():
            fs.restore(cp.name)
            _all(fs)
        _ok(fs)


def _pair(path, **kw):
    with VFS(str(path), chunk_size=4096, **kw) as fs:
        fs.write_bytes("/a.bin", A)
        fs.write_bytes("/b.bin", B)


def _ids(con, name):
    return [r[0] for r in con.execute(
        "SELECT c.id FROM vfs_chunks c JOIN vfs_inodes i ON c.inode_id = i.id "
        "WHERE i.name = ? ORDER BY c.idx", (name,))]


def _swap(con, one, two):
    rows = {cid: con.execute("SELECT codec, sums, data FROM vfs_chunks WHERE id = ?",
                             (cid,)).fetchone() for cid in (one, two)}
    for cid, other in ((one, two), (two, one)):
        con.execute("UPDATE vfs_chunks SET codec = ?, sums = ?, data = ? WHERE id = ?",
                    (*rows[other], cid))


def _moved(tmp_path, **kw):
    path = tmp_path / "p.vfs"
    _pair(path, **kw)
    con = sqlite3.connect(path)
    _swap(con, _ids(con, "a.bin")[1], _ids(con, "b.bin")[1])
    con.commit()
    con.close()
    return path


def test_msg_read_bytes(tmp_path):
    with VFS(str(_moved(tmp_path))) as fs:
        with pytest.raises(CorruptionError) as ei:
            fs.read_bytes("/a.bin")
    m = str(ei.value)
    assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m


def test_msg_blob_read(tmp_path):
    with VFS(str(_moved(tmp_path)), read_only=True) as fs:
        with fs.open("/a.bin", "rb") as f, pytest.raises(CorruptionError) as ei:
            f.seek(4100)
            f.read(10)
    m = str(ei.value)
    assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m


def test_msg_query_part_read(tmp_path):
    with VFS(str(_moved(tmp_path))) as fs:
        with fs.open("/a.bin", "r+b") as f, pytest.raises(CorruptionError) as ei:
            f.seek(4100)
            f.read(10)
    m = str(ei.value)
    assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m


def test_msg_detach_of_shared_copy(tmp_path):
    path = tmp_path / "p.vfs"
    _pair(path)
    with VFS(str(path)) as fs:
        fs.copy("/a.bin", "/copy.bin")
    con = sqlite3.connect(path)
    _swap(con, _ids(con, "a.bin")[1], _ids(con, "b.bin")[1])
    con.commit()
    con.close()
    with VFS(str(path)) as fs:
        with pytest.raises(CorruptionError) as ei:
            with fs.open("/copy.bin", "r+b") as f:  # into the moved chunk: read to merge
                f.seek(4097)
                f.write(b"x")
    m = str(ei.value)
    assert "another file or position" in m and "/copy.bin" in m and "offset 4096" in m, m


def test_msg_detach_of_holder(tmp_path):
    path = tmp_path / "p.vfs"
    _pair(path)
    with VFS(str(path)) as fs:
        fs.copy("/a.bin", "/copy.bin")
    con = sqlite3.connect(path)
    _swap(con, _ids(con, "a.bin")[1], _ids(con, "b.bin")[1])
    con.commit()
    con.close()
    with VFS(str(path)) as fs:
        with pytest.raises(CorruptionError) as ei:
            with fs.open("/a.bin", "r+b") as f:  # into the moved chunk: read to merge
                f.seek(4097)
                f.write(b"x")
    m = str(ei.value)
    assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m


def test_msg_copy_up(tmp_path):
    base = _moved(tmp_path)
    with VFS(str(tmp_path / "top.vfs")) as fs:
        fs.add_underlay(str(base), name="base")
        with pytest.raises(CorruptionError) as ei:
            with fs.open("/a.bin", "r+b") as f:
                f.write(b"x")
    m = str(ei.value)
    assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m


def test_msg_checkpoint_content(tmp_path):
    path = tmp_path / "p.vfs"
    _pair(path)
    with VFS(str(path)) as fs:
        fs.checkpoint("cp")
        fs.remove("/a.bin")
    con = sqlite3.connect(path)
    held = [r[0] for r in con.execute(
        "SELECT c.id FROM vfs_chunks c JOIN vfs_inodes i ON c.inode_id = i.id "
        "WHERE i.parent IS NULL ORDER BY c.idx")]
    _swap(con, held[1], _ids(con, "b.bin")[1])
    con.commit()
    con.close()
    with VFS(str(path)) as fs, fs.open_checkpoint("cp") as view:  # read in place: no copy
        with pytest.raises(CorruptionError) as ei:
            view.read_bytes("/a.bin")
    m = str(ei.value)
    assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m






def test_pg_ops_then_deep_check(pg_url, pg_tree):
    with VFS(pg_url, tree=pg_tree, chunk_size=4096) as fs:
        fs.write_bytes("/a.bin", A)
        fs.copy("/a.bin", "/copy.bin")
        fs.copy("/a.bin", "/copy2.bin")
        fs.checkpoint("cp")
        with fs.open("/copy.bin", "r+b") as f:
            f.seek(5000)
            f.write(b"edit")
        with fs.open("/a.bin", "r+b") as f:
            f.write(b"head")
        fs.write_text("/grow.txt", "small")
        with fs.open("/grow.txt", "r+b") as f:
            f.seek(9000)
            f.write(b"grown")
        with fs.open("/copy2.bin", "r+b") as f:
            f.truncate(6000)
        fs.mkdir("/d")
        fs.copy("/a.bin", "/d/x.bin")
        fs.copytree("/d", "/e")
        with fs.open("/e/x.bin", "r+b") as f:
            f.seek(4096 * 3 + 1)
            f.write(b"Q")
        _ok(fs)
        with fs.open_checkpoint("cp") as v:
            assert v.read_bytes("/a.bin") == A
        fs.restore("cp")
        assert fs.read_bytes("/a.bin") == A
        _ok(fs)
        img = fs.to_bytes()
    with VFS.from_bytes(img) as v:
        assert v.read_bytes("/a.bin") == A
        _ok(v)


def test_pg_layered_first_chunk_moved(pg_url, pg_tree):
    from sqlalchemy import create_engine
    base = pg_tree + "b"
    with VFS(pg_url, tree=base, chunk_size=4096) as fs:
        fs.write_bytes("/a.bin", A)
        fs.write_bytes("/b.bin", B)
        fs.write_text("/small.txt", "hi")
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            q = (f'SELECT c.id FROM "{base}".vfs_chunks c JOIN "{base}".vfs_inodes i '
                 f"ON c.inode_id = i.id WHERE i.name = %s AND c.idx = 0")
            one = conn.exec_driver_sql(q, ("a.bin",)).scalar()
            two = conn.exec_driver_sql(q, ("b.bin",)).scalar()
            conn.exec_driver_sql(
                f'UPDATE "{base}".vfs_chunks AS c SET codec = o.codec, sums = o.sums, '
                f'data = o.data FROM "{base}".vfs_chunks AS o '
                f"WHERE (c.id, o.id) IN ((%s, %s), (%s, %s))", (one, two, two, one))
        with VFS(pg_url, tree=pg_tree) as fs:
            fs.add_underlay(pg_url, tree=base, name="base")
            assert fs.read_text("/small.txt") == "hi"
            with pytest.raises(CorruptionError) as ei:
                fs.read_bytes("/a.bin")
            m = str(ei.value)
            assert "another file or position" in m and "/a.bin" in m, m
            with pytest.raises(CorruptionError) as ei:
                with fs.open("/a.bin", "rb") as f:
                    f.read(10)
            m = str(ei.value)
            assert "another file or position" in m and "/a.bin" in m, m
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{base}" CASCADE')
        engine.dispose()


def _scenario(fs):
    fs.write_bytes("/a.bin", A)
    fs.write_bytes("/b.bin", B)
    for k in range(30):
        fs.write_text(f"/s/f{k}.json", ('{"key": ' + str(k) + ', "name": "value value value"}') * 3)
    fs.copy("/a.bin", "/copy.bin")
    fs.checkpoint("cp")
    with fs.open("/copy.bin", "r+b") as f:
        f.seek(5000)
        f.write(b"edit")
    with fs.open("/a.bin", "r+b") as f:
        f.write(b"head")
    with fs.open("/s/f1.json", "r+b") as f:
        f.seek(9000)
        f.write(b"grown")
    with fs.open("/b.bin", "r+b") as f:
        f.truncate(5000)
        f.truncate(20000)
    with fs.open("/w.bin", "wb") as f:
        f.write(A)
        f.seek(100)
        f.write(b"zz")
    fs.copytree("/s", "/t")
    with fs.open("/t/f2.json", "ab") as f:
        f.write(b"more" * 2000)


@pytest.mark.parametrize("kw", [{}, {"compression": "zlib"}, {"compression": "zstd"},
                                {"case_insensitive": True}])
def test_sqlite_scenario(tmp_path, kw):
    with VFS(str(tmp_path / "x.vfs"), chunk_size=4096, **kw) as fs:
        _scenario(fs)
        _ok(fs)
        before = _all(fs)
        if kw.get("compression") == "zstd":
            fs.train_dictionary(recompress=True)
            assert _all(fs) == before
            _ok(fs)
        fs.compact()
        _ok(fs)
        img = fs.to_bytes()
        with fs.open_checkpoint("cp") as v:
            _all(v)
        fs.restore("cp")
        _ok(fs)
        fs.drop_checkpoint("cp")
        _ok(fs)
    with VFS.from_bytes(img) as v:
        assert _all(v) == before
        _ok(v)
        v.restore("cp")
        _ok(v)
    with VFS(str(tmp_path / "y.vfs")) as y:
        y.deserialize_iter(img)
        assert _all(y) == before
        _ok(y)


def test_checkpoint_read_after_dictionary_recompress(tmp_path):
    with VFS(str(tmp_path / "d.vfs"), chunk_size=4096, compression="zstd") as fs:
        for k in range(30):
            fs.write_text(f"/s/f{k}.json", ('{"key": ' + str(k) + ', "name": "value value value"}') * 3)
        with fs.open("/s/f1.json", "r+b") as f:  # chunked now: chunk 0 a small JSON value
            f.seek(9000)
            f.write(b"grown")
        want = fs.read_bytes("/s/f1.json")
        fs.checkpoint("cp")                        # the checkpoint reads those chunks
        fs.train_dictionary(recompress=True)       # ... now compressed with the dictionary
        assert fs.read_bytes("/s/f1.json") == want
        with fs.open_checkpoint("cp") as v:        # CorruptionError: dictionary missing
            assert v.read_bytes("/s/f1.json") == want


def test_deep_check_sees_moved_chunk_of_checkpoint_holder(tmp_path):
    path = tmp_path / "p.vfs"
    _pair(path)
    with VFS(str(path)) as fs:
        fs.checkpoint("cp")
        fs.remove("/a.bin")          # its chunks stay, in a hidden holder the checkpoint reads
    con = sqlite3.connect(path)
    held = [r[0] for r in con.execute(
        "SELECT c.id FROM vfs_chunks c JOIN vfs_inodes i ON c.inode_id = i.id "
        "WHERE i.parent IS NULL ORDER BY c.idx")]
    _swap(con, held[1], held[2])     # moved within the holder
    con.commit()
    con.close()
    with VFS(str(path)) as fs:
        with fs.open_checkpoint("cp") as view, \
                pytest.raises(CorruptionError, match="another file or position"):
            view.read_bytes("/a.bin")
        report = fs.check(deep=True)
        assert not report.ok, "deep check missed a moved chunk that a checkpoint reads"


def test_deep_check_pg_moved_chunk(pg_url, pg_tree):
    with VFS(pg_url, tree=pg_tree, chunk_size=4096) as fs:
        fs.write_bytes("/a.bin", A)
        fs.write_bytes("/b.bin", B)
    swap_pg_chunks(pg_url, pg_tree, 1)
    with VFS(pg_url, tree=pg_tree) as fs:
        report = fs.check(deep=True)
        assert len(report.problems) == 2, report.problems
        assert all("another file or position" in p and "offset 4096" in p
                   for p in report.problems), report.problems
        with fs.open("/a.bin", "rb") as f, pytest.raises(CorruptionError) as ei:
            f.seek(4100)
            f.read(10)
        m = str(ei.value)
        assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m




@pytest.mark.parametrize("name", ["format_0002", "format_0006", "legacy-seed-chunk1000"])
def test_old_images_from_bytes(name):
    data = (FIXTURES / f"{name}.db").read_bytes()
    with VFS.from_bytes(data) as v:
        _all(v)
        _ok(v)
        for cp in v.checkpoints():
            v.restore(cp.name)
            _all(v)
            _ok(v)


def test_copy_up_then_check(tmp_path):
    base = tmp_path / "base.vfs"
    _pair(base, compression="zlib")
    with VFS(str(tmp_path / "top.vfs"), chunk_size=4096) as fs:
        fs.add_underlay(str(base), name="base")
        with fs.open("/a.bin", "r+b") as f:
            f.seek(5000)
            f.write(b"x")
        fs.copy("/b.bin", "/b2.bin")
        fs.copytree("/", "/sub") if False else None
        assert fs.read_bytes("/b2.bin") == B
        _ok(fs)


def test_spill_of_damaged_inline_message(tmp_path):
    from vfs_orm.content import block_sums
    path = tmp_path / "p.vfs"
    with VFS(str(path), chunk_size=4096) as fs:
        fs.write_text("/small.txt", "hello")
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_inodes SET sums = ? WHERE name = 'small.txt'",
                (block_sums(b"hello", 5 << 32),))    # sealed to another place
    con.commit()
    con.close()
    with VFS(str(path)) as fs:
        with pytest.raises(CorruptionError) as ei:
            fs.read_text("/small.txt")
        assert "/small.txt" in str(ei.value)
        with pytest.raises(CorruptionError) as ei:
            with fs.open("/small.txt", "r+b") as f:
                f.seek(9000)
                f.write(b"x")
    m = str(ei.value)
    assert "another file or position" in m and "/small.txt" in m, m


def test_mount_ops_on_shared_copy(tmp_path):
    import os

    from vfs_orm.adapters.mount import Operations
    with VFS(str(tmp_path / "m.vfs"), chunk_size=4096) as fs:
        fs.write_bytes("/a.bin", A)
        fs.copy("/a.bin", "/c.bin")
        fs.checkpoint("cp")
        ops = Operations(fs)
        r = ops.open("/c.bin", os.O_RDONLY)
        assert ops.read("/c.bin", 100, 4096, r) == A[4096:4196]
        w = ops.open("/a.bin", os.O_RDWR)
        ops.write("/a.bin", b"XY", 4097, w)
        assert ops.read("/c.bin", 100, 4096, r) == A[4096:4196]
        ops.truncate("/c.bin", 6000)
        ops.release("/a.bin", w)
        ops.release("/c.bin", r)
        assert fs.read_bytes("/c.bin") == A[:6000]
        _ok(fs)
        fs.restore("cp")
        assert fs.read_bytes("/a.bin") == A
        _ok(fs)


def test_copy_tree_sqlite_pg_and_back(pg_url, pg_tree, tmp_path):
    from vfs_orm.copying import copy_tree
    src = str(tmp_path / "s.vfs")
    with VFS(src, chunk_size=4096, compression="zlib") as fs:
        _scenario(fs)
        want = _all(fs)
        with VFS(pg_url, tree=pg_tree, chunk_size=4096) as pg:
            copy_tree(fs, pg)
            assert _all(pg) == want
            _ok(pg)
            pg.restore("cp")
            _ok(pg)
            with VFS(str(tmp_path / "back.vfs"), chunk_size=4096) as back:
                copy_tree(pg, back)
                _ok(back)


@pytest.mark.parametrize("name", ["format_0001", "format_0003", "legacy-seed-mixed"])
def test_upgraded_fixture_compacted(tmp_path, name):
    dst = tmp_path / "f.db"
    shutil.copy(FIXTURES / f"{name}.db", dst)
    dst.chmod(0o644)
    with VFS(str(dst)) as fs:
        before = _all(fs)
        fs.compact()
        assert _all(fs) == before
        _ok(fs)
    con = sqlite3.connect(dst)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name='vfs_chunks'").fetchone()[0]
    assert "id INTEGER NOT NULL" in sql or "INTEGER PRIMARY KEY" in sql.upper(), sql












_OLD_WRITER = r'''
import sys
from vfs_orm import VFS
A = bytes(range(256)) * 64
target = sys.argv[1]
kw = {"tree": sys.argv[2]} if len(sys.argv) > 2 else {}
fs = VFS(target, chunk_size=4096, **kw)
fs.write_bytes("/before.bin", A)
print("ready", flush=True)
sys.stdin.readline()
try:
    fs.write_bytes("/after.bin", A)
    fs.write_text("/after.txt", "hello")
    print("wrote", flush=True)
except Exception as exc:
    print("refused", type(exc).__name__, exc, flush=True)
fs.close()
'''








@pytest.mark.parametrize("kw", [{}, {"compression": "zstd"}, {"case_insensitive": True}])
def test_pg_scenario(pg_url, pg_tree, kw):
    with VFS(pg_url, tree=pg_tree, chunk_size=4096, **kw) as fs:
        _scenario(fs)
        _ok(fs)
        before = _all(fs)
        if kw.get("compression") == "zstd":
            fs.train_dictionary(recompress=True)
            assert _all(fs) == before
            _ok(fs)
        fs.compact()
        _ok(fs)
        fs.restore("cp")
        _ok(fs)
        fs.drop_checkpoint("cp")
        _ok(fs)


def test_msg_layered_reads(tmp_path):
    base = _moved(tmp_path)      # chunk 1 of a.bin and b.bin swapped
    con = sqlite3.connect(base)
    _swap(con, _ids(con, "a.bin")[0], _ids(con, "b.bin")[0])
    con.commit()
    con.close()
    with VFS(str(tmp_path / "top.vfs")) as fs:
        fs.add_underlay(str(base), name="base")
        for read in (lambda: fs.read_bytes("/a.bin"),
                     lambda: fs.open("/a.bin", "rb").read(10)):
            with pytest.raises(CorruptionError) as ei:
                read()
            m = str(ei.value)
            assert "another file or position" in m and "/a.bin" in m and "offset 0" in m, m
    (tmp_path / "2").mkdir()
    base2 = _moved(tmp_path / "2")   # only chunk 1 swapped
    with VFS(str(tmp_path / "top2.vfs")) as fs:
        fs.add_underlay(str(base2), name="base")
        with fs.open("/a.bin", "rb") as f, pytest.raises(CorruptionError) as ei:
            f.seek(4100)
            f.read(10)
        m = str(ei.value)
        assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m
        with pytest.raises(CorruptionError) as ei:
            fs.read_bytes("/a.bin")
        m = str(ei.value)
        assert "another file or position" in m and "/a.bin" in m and "offset 4096" in m, m




def _swap_inline(con, table, one, two, extra=""):
    rows = {n: con.execute(f"SELECT codec, sums, data FROM {table} WHERE name = ?{extra}",
                           (n,)).fetchone() for n in (one, two)}
    for n, o in ((one, two), (two, one)):
        con.execute(f"UPDATE {table} SET codec = ?, sums = ?, data = ? WHERE name = ?{extra}",
                    (*rows[o], n))


def test_deep_check_finds_swapped_inline_in_checkpoint(tmp_path):
    path = tmp_path / "p.vfs"
    with VFS(str(path)) as fs:
        fs.write_text("/one.txt", "first file")
        fs.write_text("/two.txt", "second file")
        fs.checkpoint("cp")
    con = sqlite3.connect(path)
    _swap_inline(con, "vfs_checkpoint_inodes", "one.txt", "two.txt")
    con.commit()
    con.close()
    with VFS(str(path)) as fs:
        with fs.open_checkpoint("cp") as v:
            got = v.read_text("/one.txt")
        report = fs.check(deep=True)
    assert got == "first file" or not report.ok, (got, report.problems)


def test_spill_finds_swapped_inline_bytes(tmp_path):
    path = tmp_path / "p.vfs"
    with VFS(str(path), chunk_size=4096) as fs:
        fs.write_text("/one.txt", "first file")
        fs.write_text("/two.txt", "other file")
    con = sqlite3.connect(path)
    _swap_inline(con, "vfs_inodes", "one.txt", "two.txt")
    con.commit()
    con.close()
    with VFS(str(path)) as fs:
        # The spill to chunk 0 checks the bytes against the file's SHA-256 before sealing
        # them there (a write in place forgets the digest): the moved bytes are caught.
        with pytest.raises(CorruptionError, match=r"another file.*'/one.txt'"):
            with fs.open("/one.txt", "ab") as f:
                f.write(b"!")
        report = fs.check(deep=True)
    assert any(p.startswith("/one.txt") for p in report.problems), report.problems
