"""VFS.compact(): the space of deleted files goes back to the disk, and nothing else changes."""

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import vfs_orm
from vfs_orm import VFS, InvalidOperationError, ReadOnlyError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MiB = 1 << 20


def _pragma(path, name):
    con = sqlite3.connect(path)
    try:
        return con.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        con.close()


def _digest(fs):
    out = {}
    for top, dirs, files in fs.walk("/"):
        for name in files:
            p = top.rstrip("/") + "/" + name
            out[p] = hashlib.sha256(fs.read_bytes(p)).hexdigest()
        for name in dirs:
            out[top.rstrip("/") + "/" + name] = "dir"
    return out


def test_a_new_database_uses_incremental_auto_vacuum(db_path):
    with VFS(db_path) as fs:
        fs.write_bytes("/a", b"x")
        assert fs.info()["auto_vacuum"] == "incremental"
    assert _pragma(db_path, "auto_vacuum") == 2


def test_deleted_files_space_goes_back_to_the_disk(db_path):
    keep = os.urandom(300_000)
    with VFS(db_path) as fs:
        fs.write_bytes("/keep/a.bin", keep)
        fs.write_text("/keep/b.txt", "small")
        fs.write_bytes("/big/huge.bin", os.urandom(12 * MiB))
        fs.sync()
        full = os.path.getsize(db_path)
        fs.remove("/big/huge.bin")
        fs.sync()
        assert os.path.getsize(db_path) == full  # SQLite keeps freed pages for reuse
        before = fs.info()["free_pages"]
        assert before > 12 * MiB // 4096 * 0.9
        result = fs.compact()
        assert result["method"] == "incremental"
        assert result["free_pages_before"] == before and result["free_pages_after"] == 0
        assert result["bytes_before"] - result["bytes_after"] > 11 * MiB
        assert result["wal_truncated"]
        assert fs.info()["free_pages"] == 0
        assert fs.read_bytes("/keep/a.bin") == keep
        assert fs.read_text("/keep/b.txt") == "small"
        assert fs.check().ok
    assert os.path.getsize(db_path) < 1 * MiB
    assert not os.path.exists(db_path + "-wal") or os.path.getsize(db_path + "-wal") == 0


def test_open_handles_here_and_in_another_process_read_on_across_compaction(db_path, tmp_path):
    data = os.urandom(5 * MiB + 123)
    with VFS(db_path) as fs:
        fs.write_bytes("/data.bin", data)
        for i in range(20):
            fs.write_bytes(f"/junk/{i}.bin", os.urandom(400_000))
        f = fs.open("/data.bin", "rb")
        assert f.read(1000) == data[:1000]
        f.seek(3 * MiB + 7)
        assert f.read(4096) == data[3 * MiB + 7:3 * MiB + 7 + 4096]
        other = VFS(db_path, read_only=True)
        g = other.open("/data.bin", "rb")
        g.seek(MiB)
        assert g.read(10) == data[MiB:MiB + 10]
        fs.rmtree("/junk")
        assert fs.compact()["free_pages_after"] == 0
        rnd = random.Random(3)
        for handle in (f, g):
            for _ in range(50):
                off = rnd.randrange(len(data))
                handle.seek(off)
                assert handle.read(5000) == data[off:off + 5000]
            handle.seek(0)
            assert handle.read() == data
        g.close()
        other.close()
        f.close()
    # a reader in another process that opened before the compaction
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, hashlib
            from vfs_orm import VFS
            with VFS(sys.argv[1], read_only=True) as fs, fs.open("/data.bin", "rb") as f:
                f.read(100)
                print("open", flush=True)
                sys.stdin.readline()
                f.seek(0)
                print(hashlib.sha256(f.read()).hexdigest(), flush=True)
        """), db_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"
    with VFS(db_path) as fs:
        fs.write_bytes("/junk2.bin", os.urandom(2 * MiB))
        fs.remove("/junk2.bin")
        assert fs.compact()["free_pages_after"] == 0
    out, _ = reader.communicate("go\n", timeout=60)
    assert out.strip() == hashlib.sha256(data).hexdigest()
    assert reader.returncode == 0


@pytest.mark.parametrize("fixture", ["format_0002.db", "legacy-seed-format.db"])
def test_an_older_file_is_rewritten_once_then_compacts_incrementally(tmp_path, fixture):
    path = str(tmp_path / fixture)
    shutil.copy(FIXTURES / fixture, path)
    assert _pragma(path, "auto_vacuum") == 0
    with VFS(path) as fs:  # upgraded on open; the file's auto-vacuum mode is left as it was
        assert fs.info()["auto_vacuum"] == "none"
        fs.write_bytes("/tmp/filler.bin", os.urandom(3 * MiB))
        fs.remove("/tmp/filler.bin")
        before = _digest(fs)
        first = fs.compact()
        assert first["method"] == "vacuum" and first["auto_vacuum"] == "incremental"
        assert first["free_pages_after"] == 0 and first["bytes_after"] < first["bytes_before"]
        assert _digest(fs) == before
        fs.write_bytes("/tmp/filler.bin", os.urandom(MiB))
        fs.remove("/tmp/filler.bin")
        second = fs.compact()
        assert second["method"] == "incremental" and second["free_pages_after"] == 0
        assert _digest(fs) == before
        assert fs.check().ok
    assert _pragma(path, "auto_vacuum") == 2
    manifest = json.loads((FIXTURES / fixture.replace(".db", ".manifest.json")).read_text())
    with VFS(path, read_only=True) as fs:
        for p, meta in manifest.items():
            if meta["type"] == "file":
                data = fs.read_bytes(p)
                assert hashlib.sha256(data).hexdigest() == meta["sha256"], p


def test_memory_database_compacts(any_vfs):
    any_vfs.write_bytes("/keep", b"k" * 10_000)
    any_vfs.write_bytes("/gone", os.urandom(2 * MiB))
    any_vfs.remove("/gone")
    result = any_vfs.compact()
    assert result["free_pages_after"] == 0
    assert result["bytes_after"] < result["bytes_before"] - MiB
    assert any_vfs.read_bytes("/keep") == b"k" * 10_000


def test_refused_when_read_only_or_inside_a_batch(db_path):
    with VFS(db_path) as fs:
        fs.write_bytes("/gone", os.urandom(MiB))
        fs.remove("/gone")
        free = fs.info()["free_pages"]
        with fs.atomic_batch():
            fs.write_text("/in-batch", "kept")
            with pytest.raises(InvalidOperationError, match="atomic_batch"):
                fs.compact()
        assert fs.read_text("/in-batch") == "kept"
        assert fs.info()["free_pages"] == free
    with VFS(db_path, read_only=True) as ro:
        with pytest.raises(ReadOnlyError):
            ro.compact()
    assert _pragma(db_path, "freelist_count") == free


def test_underlays_are_never_touched(tmp_path):
    base_path = str(tmp_path / "base.vfs")
    with VFS(base_path) as base:
        base.write_bytes("/assets/a.bin", os.urandom(MiB))
        base.write_bytes("/assets/gone.bin", os.urandom(MiB))
        base.remove("/assets/gone.bin")
        base.sync()
    underlay_bytes = Path(base_path).read_bytes()
    with VFS(str(tmp_path / "top.vfs")) as top:
        top.add_underlay(base_path, priority=0, name="base")
        top.write_bytes("/save/x.bin", os.urandom(MiB))
        top.remove("/save/x.bin")
        a = top.read_bytes("/assets/a.bin")
        assert top.compact()["free_pages_after"] == 0
        assert top.read_bytes("/assets/a.bin") == a
        assert top.which_layer("/assets/a.bin") == "base"
    assert Path(base_path).read_bytes() == underlay_bytes


def test_embedded_host_database(tmp_path):
    # A host database left at auto_vacuum=NONE: rewriting it is the host's decision.
    plain = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    vfs_orm.install_transaction_fix(plain)
    with VFS(engine=plain) as fs:
        fs.write_bytes("/a", os.urandom(MiB))
        fs.remove("/a")
        fs.write_text("/b", "kept")
        with pytest.raises(InvalidOperationError, match="host application"):
            fs.compact()
        assert fs.read_text("/b") == "kept"
    plain.dispose()
    # A host that chose incremental auto-vacuum: compact() works, also inside its session.
    path = tmp_path / "host.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA auto_vacuum=INCREMENTAL")
    con.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)")
    con.close()
    engine = create_engine(f"sqlite:///{path}")
    vfs_orm.install_transaction_fix(engine)
    with VFS(engine=engine) as fs:
        fs.write_bytes("/a", os.urandom(MiB))
        fs.remove("/a")
        assert fs.compact()["free_pages_after"] == 0
    with Session(engine) as s:
        fs = VFS(session=s)
        fs.write_bytes("/c", os.urandom(MiB))
        s.commit()
        fs.remove("/c")
        result = fs.compact()
        assert result["method"] == "incremental" and result["free_pages_after"] == 0
        s.commit()
        fs.close()
    assert _pragma(str(path), "freelist_count") == 0
    assert _pragma(str(path), "integrity_check") == "ok"
    engine.dispose()


COMPACTOR = textwrap.dedent("""
    import os, sys
    from vfs_orm import VFS
    with VFS(sys.argv[1]) as fs:
        print("ready", flush=True)
        while True:
            fs.write_bytes("/scratch.bin", os.urandom(4 << 20))
            fs.remove("/scratch.bin")
            fs.compact()
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_sigkill_while_compacting_loses_nothing(tmp_path):
    path = str(tmp_path / "save.vfs")
    with VFS(path) as fs:
        for i in range(30):
            fs.write_bytes(f"/save/{i}.bin", os.urandom(30_000 + i))
        expected = _digest(fs)
    rnd = random.Random(7)
    for _ in range(8):
        child = subprocess.Popen([sys.executable, "-c", COMPACTOR, path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rnd.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert _pragma(path, "integrity_check") == "ok"
        with VFS(path) as fs:
            got = _digest(fs)
            got.pop("/scratch.bin", None)
            assert got == expected
            assert fs.check().ok


def test_cli_compact(tmp_path):
    path = tmp_path / "img.vfs"
    with VFS(str(path)) as fs:
        fs.write_bytes("/keep.bin", b"k" * 1000)
        fs.write_bytes("/gone.bin", os.urandom(3 * MiB))
        fs.remove("/gone.bin")
    proc = subprocess.run([sys.executable, "-m", "vfs_orm", "compact", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "(incremental)" in proc.stdout and str(path) in proc.stdout
    assert os.path.getsize(path) < MiB
    with VFS(str(path), read_only=True) as fs:
        assert fs.read_bytes("/keep.bin") == b"k" * 1000
    missing = subprocess.run([sys.executable, "-m", "vfs_orm", "compact",
                              str(tmp_path / "nope.vfs")], capture_output=True, text=True)
    assert missing.returncode != 0 and "nope.vfs" in missing.stderr
    assert not (tmp_path / "nope.vfs").exists()
