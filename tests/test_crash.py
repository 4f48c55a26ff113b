"""A saving process SIGKILLed at random moments leaves every save entirely old or new."""

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from vfs_orm import VFS

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

SAVER = textwrap.dedent("""
    import os, sys
    from vfs_orm import VFS
    path = sys.argv[1]
    with VFS(path) as fs:
        gen = int(fs.read_text("/save/gen")) if fs.exists("/save/gen") else 0
        first = True
        while True:
            gen += 1
            with fs.atomic_batch():
                fs.write_text("/save/player.json", f"{gen}:" + "p" * 3000)
                with fs.open("/save/world.bin", "wb") as f:
                    for _ in range(8):
                        f.write(f"{gen}:".encode() + os.urandom(60000))
                fs.write_text("/save/gen", str(gen))
            if first:
                print("ready", flush=True)
                first = False
""")


def _check(path: str) -> int:
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    with VFS(path) as fs:
        if not fs.exists("/save/gen"):
            assert not fs.exists("/save/player.json") and not fs.exists("/save/world.bin")
            return 0
        gen = int(fs.read_text("/save/gen"))
        assert fs.read_text("/save/player.json").split(":")[0] == str(gen)
        world = fs.read_bytes("/save/world.bin")
        assert world.startswith(f"{gen}:".encode()) and len(world) == 8 * (60000 + len(f"{gen}:"))
        # no staging rows survive a reopen by a writer
        assert fs._tree.reclaim_staging() == 0
        return gen


def test_sigkill_while_saving(tmp_path):
    path = str(tmp_path / "save.vfs")
    rnd = random.Random(1234)
    gens = []
    for _ in range(25):
        child = subprocess.Popen([sys.executable, "-c", SAVER, path], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        assert line.strip() == "ready", child.stderr.read()
        time.sleep(rnd.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.wait()
        gens.append(_check(path))
    assert gens == sorted(gens) and gens[-1] > 25


STREAMER = textwrap.dedent("""
    import os, sys
    from vfs_orm import VFS
    fs = VFS(sys.argv[1])
    f = fs.open("/huge.bin", "wb")
    for i in range(10_000):
        f.write(os.urandom(1 << 20))
        if i == 8:
            print("staging", flush=True)
""")


def test_killed_writer_leaves_no_visible_file_and_space_is_reclaimed(tmp_path):
    path = str(tmp_path / "s.vfs")
    with VFS(path) as fs:
        fs.write_bytes("/huge.bin", b"old")
    child = subprocess.Popen([sys.executable, "-c", STREAMER, path], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "staging"
    child.send_signal(signal.SIGKILL)
    child.wait()
    con = sqlite3.connect(path)
    staged = con.execute("SELECT count(*) FROM vfs_inodes WHERE parent IS NULL").fetchone()[0]
    chunks = con.execute("SELECT count(*) FROM vfs_chunks").fetchone()[0]
    con.close()
    assert staged == 1 and chunks > 8
    with VFS(path, read_only=True) as ro:  # readers never see staging rows
        assert ro.read_bytes("/huge.bin") == b"old" and ro.listdir("/") == ["huge.bin"]
    with VFS(path) as fs:  # a writer reclaims the dead process's rows
        assert fs.read_bytes("/huge.bin") == b"old"
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM vfs_inodes WHERE parent IS NULL").fetchone()[0] == 0
    # only the old content is left: 3 bytes, inline in its inode row
    assert con.execute("SELECT count(*) FROM vfs_chunks").fetchone()[0] == 0
    assert con.execute("SELECT data FROM vfs_inodes WHERE name = 'huge.bin'").fetchone()[0] == b"old"
    con.close()
