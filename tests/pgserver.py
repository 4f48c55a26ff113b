"""A throwaway PostgreSQL cluster for the tests (or the server named by VFS_ORM_PG_URL).

The cluster lives in a temporary directory, listens only on a unix socket there, and is
stopped and deleted at the end of the session. ``initdb`` refuses to run as root: as root the
cluster is created and started as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

ENV_URL = "VFS_ORM_PG_URL"
HOW_TO_ENABLE = ("install the PostgreSQL server (Debian: apt-get install postgresql) or set "
                 f"{ENV_URL} to a postgresql+psycopg:// URL")


def server_binaries() -> str | None:
    """The directory of ``initdb``/``pg_ctl``: on PATH, or Debian's versioned directory."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        # The directory the binaries really live in (a PATH entry may be a few symlinks to
        # them, without pg_basebackup).
        return os.path.dirname(os.path.realpath(on_path))
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def driver_missing() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'vfs-orm[postgresql]')"
    return None


@dataclass
class Cluster:
    url: str
    base: str | None = None  # temporary directory of a cluster we started
    bindir: str | None = None
    owner: str | None = None

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", self.owner, "--", *cmd] if self.owner else cmd

    opts: str = ""

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.base is not None and self.bindir is not None
        return subprocess.run(self._as_owner([os.path.join(self.bindir, "pg_ctl"), "-D",
                                              os.path.join(self.base, "data"), *args]),
                              capture_output=True, text=True, timeout=120)

    def crash(self) -> None:
        """Stop the server the way a power cut would: no shutdown checkpoint."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        assert self.base is not None
        proc = self._pg_ctl("-o", self.opts, "-l", os.path.join(self.base, "log"), "-w",
                            "start")
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr[-300:]}")

    def stop(self) -> None:
        if self.base is None or self.bindir is None:
            return
        self.crash()
        shutil.rmtree(self.base, ignore_errors=True)

    def promote(self) -> None:
        """Make a standby the primary (``pg_ctl promote``, waiting until it takes writes)."""
        proc = self._pg_ctl("-w", "promote")
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl promote failed: {proc.stderr[-300:]}")

    @property
    def socket_dir(self) -> str:
        assert self.base is not None
        return self.base


@dataclass
class Pair:
    """A primary and a hot standby streaming from it (``pg_basebackup -R``), each listening
    on a unix socket of its own directory; ``url`` is the primary's, ``standby.url`` the
    standby's, ``both_url`` a libpq multi-host URL of the two that always picks the one
    taking writes (``target_session_attrs=read-write``)."""

    primary: Cluster
    standby: Cluster

    @property
    def url(self) -> str:
        return self.primary.url

    @property
    def both_url(self) -> str:
        return (f"postgresql+psycopg://postgres@/postgres?host={self.primary.socket_dir}"
                f"&host={self.standby.socket_dir}&target_session_attrs=read-write")

    def wait_replayed(self, timeout: float = 60.0) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        import time

        import psycopg

        def dsn(c: Cluster) -> str:
            return f"host={c.socket_dir} user=postgres dbname=postgres"

        with psycopg.connect(dsn(self.primary), autocommit=True) as p:
            lsn = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        with psycopg.connect(dsn(self.standby), autocommit=True) as s:
            while True:
                done = s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                 (lsn,)).fetchone()[0]  # type: ignore[index]
                if done:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("the standby did not catch up")
                time.sleep(0.05)

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()


def start_pair(synchronous: bool = False) -> Pair:
    """A primary (fsync on) and a hot standby made from it with ``pg_basebackup -R``, both
    started (about 3 s). ``synchronous``: the primary acknowledges a commit only once the
    standby has it (``synchronous_standby_names = '*'``, ``synchronous_commit = on``)."""
    extra = " -c synchronous_standby_names='*'" if synchronous else ""
    primary = start(durable=True, own=True, extra=extra)
    assert primary.base is not None and primary.bindir is not None
    base = os.path.join(primary.base, "standby")
    os.mkdir(base)
    if primary.owner:
        pw = pwd.getpwnam(primary.owner)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    os.chmod(base, 0o755)
    standby = Cluster("", base, primary.bindir, primary.owner)
    try:
        proc = subprocess.run(standby._as_owner([
            os.path.join(primary.bindir, "pg_basebackup"), "-D", os.path.join(base, "data"),
            "-R", "-X", "stream", "-c", "fast", "-h", primary.socket_dir, "-U", "postgres"]),
            capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {proc.stderr[-500:]}")
        standby.opts = f"-k {base} -c listen_addresses='' -c max_connections=200 " \
                       f"-c hot_standby=on"
        standby.restart()
    except BaseException:
        primary.stop()
        raise
    standby.url = f"postgresql+psycopg://postgres@/postgres?host={base}"
    return Pair(primary, standby)


def start(durable: bool = False, own: bool = False, extra: str = "") -> Cluster:
    """Start a cluster (1-2 s), or return the configured server. Raises RuntimeError with the
    reason when neither is possible. ``durable``: fsync on (crash tests); ``own``: always a
    cluster of our own (tests that stop and restart it)."""
    url = os.environ.get(ENV_URL)
    if url and not own:
        return Cluster(url)
    bindir = server_binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found: " + HOW_TO_ENABLE)
    base = tempfile.mkdtemp(prefix="vfs-orm-pg-")
    owner = None
    if os.geteuid() == 0:
        owner = "postgres"
        pw = pwd.getpwnam(owner)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    os.chmod(base, 0o755)
    cluster = Cluster("", base, bindir, owner)
    data, sock = os.path.join(base, "data"), base
    run = [os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
           "-E", "UTF8", "--locale=C.UTF-8" if _has_locale("C.UTF-8") else "--no-locale"]
    proc = subprocess.run(cluster._as_owner(run), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {proc.stderr[-500:]}")
    opts = f"-k {sock} -c listen_addresses='' -c max_connections=200" + extra
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    cluster.opts = opts
    proc = subprocess.run(cluster._as_owner([os.path.join(bindir, "pg_ctl"), "-D", data,
                                             "-o", opts, "-l", os.path.join(base, "log"),
                                             "-w", "start"]),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        log = open(os.path.join(base, "log")).read()[-800:] if os.path.exists(
            os.path.join(base, "log")) else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {proc.stderr[-300:]} {log}")
    cluster.url = f"postgresql+psycopg://postgres@/postgres?host={sock}"
    return cluster


def _has_locale(name: str) -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return False
    return name.lower().replace("-", "") in out.lower().replace("-", "")


def drop_trees(url: str, trees: list[str]) -> None:
    """Drop the schemas of trees a test made (names the tests generated, never user input)."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for tree in trees:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{tree}" CASCADE')
    finally:
        engine.dispose()


def tree_digest(url: str, tree: str) -> str:
    """A fingerprint of everything a tree holds (paths, modes, times, bytes): tests compare
    it before and after to prove an underlay tree never changed."""
    import hashlib

    from vfs_orm import VFS

    h = hashlib.sha256()
    with VFS(url, tree=tree, read_only=True) as fs:
        for e in fs.scandir("/", recursive=True):
            st = e.stat()
            h.update(repr((e.path, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)).encode())
            if e.is_file():
                h.update(fs.read_bytes(e.path))
    return h.hexdigest()
