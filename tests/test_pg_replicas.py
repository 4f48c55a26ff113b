"""PostgreSQL read replicas and failover, on a real primary and a real streaming hot standby
that these tests start themselves (``pg_basebackup -R``, see tests/pgserver.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from vfs_orm import VFS, ReadOnlyError, VFSError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _need_binaries() -> None:
    import pgserver

    missing = pgserver.driver_missing()
    if missing is None and pgserver.server_binaries() is None:
        missing = "needs PostgreSQL server binaries to start a primary and a standby"
    if missing is not None:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(missing)


@pytest.fixture(scope="module")
def pair() -> Iterator:
    import pgserver

    _need_binaries()
    p = pgserver.start_pair()
    try:
        yield p
    finally:
        p.stop()


def _psql(url: str, sql: str) -> list:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as con:
        return con.execute(sql).fetchall()


def test_a_tree_reads_whole_on_a_hot_standby(pair):
    """``read_only=True`` on a standby: reads, listings, walk, glob, stat, snapshot() and
    check() work; nothing is written (a standby refuses every write) and no lock is taken
    (a standby refuses advisory locks); the primary's later saves show up."""
    with VFS(pair.url, tree="replica", chunk_size=4096) as fs:
        fs.write_bytes("/saves/slot1.json", b'{"hp": 3}')
        fs.write_bytes("/assets/big.bin", bytes(range(256)) * 100)
        fs.makedirs("/empty")
    pair.wait_replayed()
    with VFS(pair.standby.url, tree="replica", read_only=True) as ro:
        assert ro.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
        assert ro.read_bytes("/assets/big.bin") == bytes(range(256)) * 100
        with ro.open("/assets/big.bin", "rb") as f:
            f.seek(5000)
            assert f.read(3) == bytes([5000 % 256, 5001 % 256, 5002 % 256])
        assert ro.listdir("/") == ["assets", "empty", "saves"]
        assert [(top, files) for top, _, files in ro.walk("/")] == [
            ("/", []), ("/assets", ["big.bin"]), ("/empty", []), ("/saves", ["slot1.json"])]
        assert ro.glob("/**/*.json") == ["/saves/slot1.json"]
        assert ro.stat("/assets/big.bin").st_size == 25600
        with ro.snapshot():
            assert ro.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
            assert _psql(pair.standby.url, "SELECT count(*) FROM pg_locks WHERE locktype = "
                                           "'advisory'") == [(0,)]
        report = ro.check(deep=True)
        assert report.ok, report
        assert ro.info()["files"] == 2
        with pytest.raises(ReadOnlyError):
            ro.write_bytes("/x", b"")
        with VFS(pair.url, tree="replica") as fs:
            fs.write_bytes("/saves/slot1.json", b'{"hp": 4}')
        pair.wait_replayed()
        assert ro.read_bytes("/saves/slot1.json") == b'{"hp": 4}'


def test_a_checkpoint_opens_on_a_standby_as_a_copy(pair):
    """A hot standby creates nothing, not even the temporary views a checkpoint is read in
    place through: ``open_checkpoint`` there copies the checkpoint into a temporary file (on
    the primary it reads in place)."""
    with VFS(pair.url, tree="replica_ck") as fs:
        fs.write_bytes("/saves/slot1.json", b'{"hp": 3}')
        fs.checkpoint("before")
        fs.write_bytes("/saves/slot1.json", b'{"hp": 9}')
        with fs.open_checkpoint("before") as view:
            assert view.db_path == fs.db_path  # in place
            assert view.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
    pair.wait_replayed()
    with VFS(pair.standby.url, tree="replica_ck", read_only=True) as ro, \
            ro.open_checkpoint("before") as view:
        assert view.db_path != ro.db_path and os.path.isfile(view.db_path)  # a copy
        assert view.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
        assert ro.read_bytes("/saves/slot1.json") == b'{"hp": 9}'


def test_a_writable_open_of_a_standby_fails_cleanly(pair):
    with VFS(pair.url, tree="replica_w") as fs:
        fs.write_bytes("/f", b"1")
    pair.wait_replayed()
    with VFS(pair.standby.url, tree="replica_w") as fs, pytest.raises(VFSError):
        fs.write_bytes("/f", b"2")  # a hot standby takes no write: the library's error


WRITER = textwrap.dedent("""
    import sys, time
    from vfs_orm import VFS, VFSError
    url, seconds = sys.argv[1], float(sys.argv[2])
    # busy_timeout also bounds how long a call waits for a server after the connection was
    # lost: here, for the standby's promotion.
    fs = VFS(url, tree="failover", busy_timeout=60)
    g = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with fs.atomic_batch():
                for name in ("player", "world", "inventory"):
                    fs.write_bytes(f"/save/{name}.json", b"%d:" % (g + 1) + bytes(3000))
            g += 1
            print(g, flush=True)  # acknowledged
        except VFSError as exc:
            print("E", type(exc).__name__, exc.errno, flush=True)
    fs.close()
    print("end", flush=True)
""")


@pytest.mark.slow
def test_a_writer_follows_a_failover_to_the_promoted_standby():
    """A writer on a multi-host URL (target_session_attrs=read-write) saving 3 files at a
    time; the primary stops like a power cut (pg_ctl stop -m immediate); the synchronous
    standby is promoted a moment later. The save in flight fails with a VFSError; the next
    save waits for the new primary and succeeds there; every acknowledged save is on the new
    primary, and every save is whole."""
    import pgserver

    _need_binaries()
    pair = pgserver.start_pair(synchronous=True)
    try:
        with VFS(pair.url, tree="failover") as fs:
            fs.makedirs("/save")
        env = dict(os.environ, PYTHONPATH=ROOT)
        child = subprocess.Popen([sys.executable, "-c", WRITER, pair.both_url, "12"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
        assert child.stdout is not None
        first = child.stdout.readline()  # saving on the primary
        assert first.strip().isdigit(), first + child.stderr.read() if child.stderr else ""
        time.sleep(1.0)
        pair.primary.crash()
        time.sleep(1.0)  # no primary at all for a while: the writer's next save waits
        pair.standby.promote()
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-3000:]  # nothing but VFSErrors reached the writer
        lines = (first + out).split("\n")
        events = [line for line in lines if line and line != "end"]
        failed = [e for e in events if e.startswith("E ")]
        acked = [int(e) for e in events if e.isdigit()]
        assert len(failed) == 1, failed  # the save in flight, and only it
        at = events.index(failed[0])
        assert any(e.isdigit() for e in events[at + 1:]), "no save on the new primary"
        with VFS(pair.standby.url, tree="failover") as fs:  # the new primary
            gens = {int(fs.read_bytes(f"/save/{n}.json").split(b":")[0])
                    for n in ("player", "world", "inventory")}
            assert len(gens) == 1, gens  # all or nothing
            assert gens.pop() >= acked[-1]  # no acknowledged save lost
            assert fs.check().ok
            fs.write_bytes("/after", b"writable")  # it really is the primary now
    finally:
        pair.stop()
