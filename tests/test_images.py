"""Images as bytes: from_bytes, serialize_iter/fileobj, to_bytes, deserialize_iter."""

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import tree_of

from vfs_orm import VFS, NotAVFSDatabaseError, ReadOnlyError, StaleHandleError, VFSError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _fill(fs, seed=0):
    rnd = random.Random(seed)
    for i in range(40):
        fs.write_bytes(f"/d{i % 4}/f{i}.bin", rnd.randbytes(rnd.randrange(0, 150_000)))
    fs.makedirs("/empty/dir")


def _digest(fs):
    return {p: (None if d is None else hashlib.sha256(d).hexdigest())
            for p, d in tree_of(fs).items()}


def test_memory_roundtrip_and_iterables():
    with VFS() as a:
        _fill(a)
        data = a.to_bytes()
        assert data.startswith(b"SQLite format 3\x00") and data[18:20] == b"\x01\x01"
        with VFS.from_bytes(data) as b:
            assert _digest(b) == _digest(a)
        blocks = list(a.serialize_iter(block_size=1000))
        assert all(len(x) <= 1000 for x in blocks) and b"".join(blocks) == data
        with VFS.from_bytes(iter(blocks)) as c:  # any iterable of bytes
            assert _digest(c) == _digest(a)
        with VFS.from_bytes(bytearray(data)) as c:
            assert c.listdir("/") == ["d0", "d1", "d2", "d3", "empty"]


def test_file_roundtrip_streaming(db_path):
    with VFS(db_path) as a:
        _fill(a, 1)
        expect = _digest(a)
        with VFS.from_bytes(a.serialize_iter(block_size=8192)) as b:
            assert _digest(b) == expect
        f = a.serialize_fileobj()
        assert f.readable() and not f.seekable()
        with pytest.raises(OSError):
            f.seek(0)
        image = f.read()
        f.close()
    con = sqlite3.connect(":memory:")
    con.deserialize(image)  # a regular SQLite database file
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    # and it can be written to disk and opened as a file
    out = Path(db_path).with_name("copy.vfs")
    out.write_bytes(image)
    with VFS(str(out), read_only=True) as c:
        assert _digest(c) == expect


def test_from_bytes_is_writable_and_isolated(db_path):
    with VFS(db_path) as a:
        a.write_text("/x", "file")
        with VFS.from_bytes(a.to_bytes()) as m:
            m.write_text("/x", "memory")
            assert m.read_text("/x") == "memory"
        assert a.read_text("/x") == "file"
        with VFS.from_bytes(a.to_bytes(), read_only=True) as ro:
            with pytest.raises(ReadOnlyError):
                ro.write_text("/y", "no")


@pytest.mark.parametrize("bad", [b"", b"hello world" * 20, os.urandom(8192), "text"])
def test_bad_images_are_refused(bad):
    with pytest.raises((VFSError, TypeError)) as ei:
        VFS.from_bytes(bad)
    if not isinstance(bad, str):
        assert isinstance(ei.value, NotAVFSDatabaseError)


def test_truncated_and_foreign_images(db_path):
    with VFS(db_path) as a:
        _fill(a)
        image = a.to_bytes()
    with pytest.raises(NotAVFSDatabaseError):
        VFS.from_bytes(image[: len(image) // 2])
    with pytest.raises(NotAVFSDatabaseError):
        VFS.from_bytes(image[:-100])
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE other(x)")
    with pytest.raises(NotAVFSDatabaseError):
        VFS.from_bytes(con.serialize())
    with pytest.raises(TypeError):
        VFS.from_bytes([b"SQLite", 42])


@pytest.mark.parametrize("fixture", ["format_0001", "legacy-seed-format"])
def test_older_images_upgrade_in_memory(fixture):
    image = (FIXTURES / f"{fixture}.db").read_bytes()
    manifest = json.loads((FIXTURES / f"{fixture}.manifest.json").read_text())
    with VFS.from_bytes(image) as fs:
        for p, meta in manifest.items():
            if meta["type"] == "file":
                assert hashlib.sha256(fs.read_bytes(p)).hexdigest() == meta["sha256"]
            else:
                assert fs.isdir(p)
        assert fs.to_bytes()[:16] == b"SQLite format 3\x00"
    assert (FIXTURES / f"{fixture}.db").read_bytes() == image  # source untouched


def test_deserialize_iter_replaces_content(db_path):
    with VFS(db_path) as a, VFS() as b:
        a.write_text("/old", "old")
        _fill(b, 2)
        handle = a.open("/old", "rb")
        a.deserialize_iter(b.serialize_iter(block_size=4096))
        assert _digest(a) == _digest(b) and not a.exists("/old")
        with pytest.raises(StaleHandleError):
            handle.read()
        handle.close()
        before = _digest(a)
        with pytest.raises(NotAVFSDatabaseError):
            a.deserialize_iter([b"garbage" * 100])
        assert _digest(a) == before  # a bad image changes nothing
        a.write_text("/after", "still writable")
    with VFS(db_path) as a:  # persisted
        assert a.read_text("/after") == "still writable" and "d0" in a.listdir("/")


def test_serialize_while_another_thread_writes(db_path):
    fs = VFS(db_path)
    fs.write_text("/counter", "0")
    fs.write_bytes("/payload", b"0" * 100_000)
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            with fs.atomic_batch():
                fs.write_text("/counter", str(n))
                fs.write_bytes("/payload", str(n % 10).encode() * 100_000)

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen = set()
        for _ in range(15):
            image = b"".join(fs.serialize_iter())
            con = sqlite3.connect(":memory:")
            con.deserialize(image)
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            con.close()
            with VFS.from_bytes(image) as snap:
                n = int(snap.read_text("/counter"))
                assert snap.read_bytes("/payload") == str(n % 10).encode() * 100_000
                seen.add(n)
    finally:
        stop.set()
        t.join()
        fs.close()
    assert len(seen) > 1  # the snapshots really were taken while the writer ran


AUDIT = textwrap.dedent("""
    import os, sys
    events = []
    def hook(event, args):
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode = args[1] or "r"
            if any(c in str(mode) for c in "wax+"):
                events.append(("open-write", str(args[0])))
        elif event == "os.open" and isinstance(args[0], (str, bytes)):
            flags = args[2] if len(args) > 2 else 0
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                events.append(("os.open-write", str(args[0])))
        elif event == "sqlite3.connect":
            events.append(("sqlite3.connect", str(args[0])))
        elif event in ("os.mkdir", "os.rename", "os.remove", "shutil.copyfile"):
            events.append((event, str(args[0])))
    sys.addaudithook(hook)
    from vfs_orm import VFS
    image = sys.stdin.buffer.read()
    with VFS.from_bytes(image) as fs:
        fs.write_text("/new/file.txt", "written in memory")
        with fs.open("/new/stream.bin", "wb") as f:
            f.write(os.urandom(300_000))
        assert fs.read_text("/new/file.txt") == "written in memory"
        assert len(fs.read_bytes("/game/readme.txt")) > 0
        out = fs.to_bytes()
    disk = [e for e in events if not (e[0] == "sqlite3.connect" and
            ("vfs=memdb" in e[1] or e[1] in (":memory:", "file::memory:")))]
    print(repr((disk, len(out))))
""")


def test_from_bytes_touches_no_disk(tmp_path):
    cwd, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    image = (FIXTURES / "legacy-seed-format.db").read_bytes()  # upgraded in memory, too
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONDONTWRITEBYTECODE="1")
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", AUDIT], input=image, cwd=cwd, env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    disk, size = eval(proc.stdout.decode())
    assert disk == [] and size > 0
    assert list(cwd.iterdir()) == [] and list(tmpdir.iterdir()) == []


MEMORY_PROBE = textwrap.dedent("""
    import hashlib, resource, sys
    from vfs_orm import VFS
    fs = VFS(sys.argv[1], read_only=True)
    fs.exists("/")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    h, n = hashlib.sha256(), 0
    for block in fs.serialize_iter(block_size=1 << 20):
        h.update(block)
        n += len(block)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(n, (after - before) // 1024, h.hexdigest())
""")


def test_serializing_512_mib_streams_in_bounded_memory(tmp_path):
    path = str(tmp_path / "big.vfs")
    piece = os.urandom(1 << 20)
    with VFS(path, durable=False) as fs:
        with fs.open("/big.bin", "wb") as f:
            for i in range(520):
                f.write(piece[i % 7:] + piece[: i % 7])
    size = os.path.getsize(path)
    assert size >= 512 << 20
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, path], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n, grew_mib, _digest = proc.stdout.split()
    assert int(n) >= 512 << 20
    assert int(grew_mib) <= 64, f"peak RSS grew by {grew_mib} MiB"
