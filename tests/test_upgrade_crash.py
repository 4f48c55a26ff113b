"""An upgrade SIGKILLed at random moments leaves the file at the old or the new revision with
every byte intact (one transaction), on a database of 20,000 files."""

import hashlib
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from vfs_orm import VFS
from vfs_orm.backends.sqlite import engine as sqlite_engine
from vfs_orm.backends.sqlite import schema as dbmod

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

UPGRADER = textwrap.dedent("""
    import sys
    from vfs_orm import VFS
    print("ready", flush=True)
    VFS(sys.argv[1]).close()
    print("done", flush=True)
""")


def _digest(path):
    """Content of the file system, whatever the revision: (path, kind, size, sha of chunks)."""
    con = sqlite3.connect(path)
    try:
        h = hashlib.sha256()
        for row in con.execute(
                "SELECT i.parent, i.name, i.kind, i.size, c.idx, c.data FROM vfs_inodes i "
                "LEFT JOIN vfs_chunks c ON c.inode_id = i.id ORDER BY i.parent, i.name, c.idx"):
            h.update(repr(row[:5]).encode())
            h.update(row[5] or b"")
        rev = con.execute("SELECT version_num FROM vfs_alembic_version").fetchone()[0]
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        return rev, ok, h.hexdigest()
    finally:
        con.close()


@pytest.fixture(scope="module")
def old_database(tmp_path_factory):
    """20,000 files (and their directories) at revision 0001, chunk ids not in 0002's form."""
    path = str(tmp_path_factory.mktemp("upgrade") / "big_0001.vfs")
    with VFS(path, chunk_size=1024) as fs:
        with fs.atomic_batch():
            for i in range(20_000):
                fs.write_bytes(f"/d{i % 50}/s{i % 7}/f{i}.bin", i.to_bytes(4, "big") * (i % 700))
    from alembic import command
    engine = sqlite_engine.make_engine(sqlite_engine.file_uri(path, False), read_only=False, shared=False)
    try:
        with engine.connect() as conn:
            with dbmod.foreign_keys_off(conn):
                with conn.begin():
                    command.downgrade(dbmod.alembic_config(conn), "0001")
                    conn.exec_driver_sql("UPDATE vfs_chunks SET id = -(inode_id * 100000 + idx)")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    rev, ok, digest = _digest(path)
    assert rev == "0001" and ok == "ok"
    return path, digest


def test_killed_upgrades_leave_old_or_new(old_database, tmp_path):
    original, digest = old_database
    rnd = random.Random(7)
    work = str(tmp_path / "work.vfs")
    shutil.copy(original, work)
    outcomes = []
    for _attempt in range(12):
        child = subprocess.Popen([sys.executable, "-c", UPGRADER, work],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rnd.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        rev, ok, now = _digest(work)
        assert ok == "ok"
        assert rev in ("0001", dbmod.head_revision())
        assert now == digest  # every byte, whatever the revision
        outcomes.append(rev)
        if rev != "0001":
            shutil.copy(original, work)  # start the next attempt from the old file again
            for suffix in ("-wal", "-shm"):
                p = tmp_path / f"work.vfs{suffix}"
                if p.exists():
                    p.unlink()
    assert "0001" in outcomes  # some kills landed mid-upgrade
    # and an upgrade that is not interrupted finishes
    VFS(work).close()
    assert _digest(work)[0] == dbmod.head_revision()
