"""W11 at 1, 4 and 8 writers: durable 3-file atomic saves (3 x 4 KiB) by N processes at once,
each into its own directory, on a PostgreSQL cluster with fsync=on and synchronous_commit=on
started here (tests/pgserver.py), against raw psycopg 3 doing the same upserts in the same run.

    python benchmarks/w11_writers.py [--runs 3] [--seconds 4] [--writers 1,4,8]

Subjects: ``raw_pg`` (one table, path primary key, ``INSERT ... ON CONFLICT DO UPDATE`` of the
three files in one transaction), ``vfs_orm_pg`` (``atomic_batch()`` of three ``write_bytes``
into ONE tree), ``vfs_orm_pg_trees`` (the same, each writer into a tree of its own) and, with
``--subjects``, ``vfs_orm_pg_pipelined`` (``vfs_orm_pg`` with each transaction's BEGIN in a
psycopg pipeline with its first statement, as before 2026-12-06 on a unix socket). Every
writer saves for a fixed time after a common start; throughput is all writers' saves / time.
A vfs_orm save that the server aborts for a conflict (BusyError) is counted and run again.
Prints one line per (subject, writers) with the median of the runs and the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

NAMES = ("player", "world", "inventory")


def _raw_writer(dsn: str, slot: int, seconds: float, go: Any, out: Any) -> None:
    import psycopg
    con = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
    payload = os.urandom(4096 - 4)
    sql = ("INSERT INTO w11.files VALUES (%s, %s) ON CONFLICT (path) DO UPDATE SET "
           "data = excluded.data")
    go.wait()
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        with con.transaction():
            con.cursor().executemany(sql, [(f"/save/slot{slot}/{k}.json",
                                            payload + n.to_bytes(4, "big")) for k in NAMES])
        n += 1
    con.close()
    out.put((n, 0))


def _vfs_writer(url: str, tree: str, slot: int, seconds: float, go: Any, out: Any,
                pipelined: bool = False) -> None:
    from vfs_orm import VFS, BusyError
    fs = VFS(url, tree=tree)
    if pipelined:
        # The behaviour before 2026-12-06 on a unix socket (a transaction's BEGIN in a psycopg
        # pipeline with its first statement), for an A/B in one run; reaches into the
        # connection on purpose (a benchmark, not an API).
        with fs.tracer():
            fs._uow.state().raw.pipelined = True  # type: ignore[union-attr]
    payload = os.urandom(4096 - 4)
    fs.makedirs(f"/save/slot{slot}", exist_ok=True)
    go.wait()
    end, n, conflicts = time.monotonic() + seconds, 0, 0
    while time.monotonic() < end:
        try:
            with fs.atomic_batch():
                for k in NAMES:
                    fs.write_bytes(f"/save/slot{slot}/{k}.json", payload + n.to_bytes(4, "big"))
            n += 1
        except BusyError:
            conflicts += 1
    fs.close()
    out.put((n, conflicts))


def _round(target: Any, args_of: Any, writers: int, seconds: float,
           extra: tuple[Any, ...] = ()) -> tuple[float, int]:
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(k), seconds, go, out, *extra))
             for k in range(writers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # connected and waiting
    go.set()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    return sum(n for n, _ in got) / seconds, sum(c for _, c in got)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--writers", default="1,4,8")
    ap.add_argument("--server", default="", help="extra server settings (-c name=value ...)")
    ap.add_argument("--fillfactor", type=int, default=0,
                    help="ALTER TABLE vfs_inodes SET (fillfactor = N) in the trees")
    ap.add_argument("--subjects", default="raw_pg,vfs_orm_pg,vfs_orm_pg_trees")
    opts = ap.parse_args()
    import pgserver
    import psycopg

    from vfs_orm import VFS

    cluster = pgserver.start(durable=True, own=True, extra=" " + opts.server)
    try:
        url = cluster.url
        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(dsn, autocommit=True) as con:
            settings = {k: con.execute(f"SHOW {k}").fetchone()[0]
                        for k in ("fsync", "synchronous_commit", "server_version")}
            con.execute("CREATE SCHEMA w11")
            con.execute('CREATE TABLE w11.files (path text COLLATE "C" PRIMARY KEY, '
                        'data bytea)')
            con.execute("ALTER TABLE w11.files ALTER COLUMN data SET STORAGE EXTERNAL")
        print(f"# server {settings} {opts.server}; fillfactor {opts.fillfactor}; "
              f"{opts.runs} runs of {opts.seconds} s; "
              f"{os.cpu_count()} cores", flush=True)
        for k in range(8):
            VFS(url, tree=f"w11_{k}").close()
            if opts.fillfactor:
                with psycopg.connect(dsn, autocommit=True) as con:
                    con.execute(f"ALTER TABLE w11_{k}.vfs_inodes SET (fillfactor = "
                                f"{int(opts.fillfactor)})")
        every: dict[str, tuple[Any, Any, tuple[Any, ...]]] = {
            "raw_pg": (_raw_writer, lambda k: (dsn, k), ()),
            "vfs_orm_pg": (_vfs_writer, lambda k: (url, "w11_0", k), ()),
            "vfs_orm_pg_trees": (_vfs_writer, lambda k: (url, f"w11_{k}", k), ()),
            "vfs_orm_pg_pipelined": (_vfs_writer, lambda k: (url, "w11_0", k), (True,)),
        }
        subjects = {k: every[k] for k in opts.subjects.split(",")}
        for writers in [int(w) for w in opts.writers.split(",")]:
            res: dict[str, list[float]] = {s: [] for s in subjects}
            conflicts: dict[str, int] = dict.fromkeys(subjects, 0)
            for _ in range(opts.runs):
                for name, (target, args_of, extra) in subjects.items():  # interleaved
                    rate, c = _round(target, args_of, writers, opts.seconds, extra)
                    res[name].append(rate)
                    conflicts[name] += c
            raw = statistics.median(res["raw_pg"]) if "raw_pg" in res else 1.0
            for name in subjects:
                med = statistics.median(res[name])
                print(f"W11 writers={writers} {name:18s} median {med:8.0f} saves/s  "
                      f"x{med / raw:.2f} raw  runs {[round(r) for r in res[name]]}  "
                      f"conflicts {conflicts[name]}", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
