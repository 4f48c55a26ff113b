"""Where one W11 save's time goes, one writer, in one process: client CPU, server CPU and
wall time per save, for vfs_orm's save (``atomic_batch()`` of three 4 KiB ``write_bytes``,
over existing files as in W11's steady state) against raw psycopg 3 doing the same upserts
(w11_writers.py's raw side), on a cluster of its own (tests/pgserver.py, fsync=on,
synchronous_commit=on). ``vfs_orm_pg_pipelined`` is vfs_orm with each transaction's BEGIN in
a psycopg pipeline with its first statement (as before 2026-12-06 on a unix socket).

    python benchmarks/w11_profile.py [--saves 2000] [--rounds 5] [--profile]

Client CPU is ``time.process_time()`` of this process; server CPU the backend process's
utime + stime (``/proc/PID/stat``, 10 ms ticks: use enough saves). Medians of the rounds,
interleaved. On a machine whose cores the writers share with the server, client + server CPU
per save is what bounds W11's throughput. ``--profile`` adds a cProfile of vfs_orm's saves
timed in CPU time (``time.process_time``); the statements of one save are printed first, as
``VFS.tracer()`` records them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

NAMES = ("player", "world", "inventory")
TICK = os.sysconf("SC_CLK_TCK")


def _server_cpu(pid: int) -> float:
    """Seconds of CPU the backend ``pid`` has used (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(save: Callable[[int], None], backend_pid: int, saves: int) -> dict[str, float]:
    s0, c0, t0 = _server_cpu(backend_pid), time.process_time(), time.perf_counter()
    for n in range(saves):
        save(n)
    t1, c1, s1 = time.perf_counter(), time.process_time(), _server_cpu(backend_pid)
    return {"client_us": 1e6 * (c1 - c0) / saves, "server_us": 1e6 * (s1 - s0) / saves,
            "wall_us": 1e6 * (t1 - t0) / saves}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    opts = ap.parse_args()
    import pgserver
    import psycopg

    from vfs_orm import VFS

    cluster = pgserver.start(durable=True, own=True)
    try:
        url = cluster.url
        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute("CREATE SCHEMA w11")
            con.execute('CREATE TABLE w11.files (path text COLLATE "C" PRIMARY KEY, '
                        'data bytea)')
            con.execute("ALTER TABLE w11.files ALTER COLUMN data SET STORAGE EXTERNAL")
        payload = os.urandom(4096 - 4)
        raw = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
        sql = ("INSERT INTO w11.files VALUES (%s, %s) ON CONFLICT (path) DO UPDATE SET "
               "data = excluded.data")

        def raw_save(n: int) -> None:
            with raw.transaction():
                raw.cursor().executemany(sql, [(f"/save/slot0/{k}.json",
                                                payload + n.to_bytes(4, "big"))
                                               for k in NAMES])

        fs = VFS(url, tree="w11_0")
        fs.makedirs("/save/slot0", exist_ok=True)

        def vfs_save(n: int) -> None:
            with fs.atomic_batch():
                for k in NAMES:
                    fs.write_bytes(f"/save/slot0/{k}.json", payload + n.to_bytes(4, "big"))

        def vfs_pid(known: set[int]) -> int:
            """The backend of the one vfs_orm connection not in ``known`` (vfs_orm's
            connections name themselves "vfs_orm")."""
            rows = raw.execute("SELECT pid FROM pg_stat_activity WHERE application_name = "
                               "'vfs_orm'").fetchall()
            new = {int(r[0]) for r in rows} - known
            assert len(new) == 1, rows
            return new.pop()

        vfs_backend = vfs_pid(set())
        # The same with each transaction's BEGIN in a psycopg pipeline with its first
        # statement (as before 2026-12-06 on a unix socket), in a tree of its own: reaches
        # into the connection on purpose (a benchmark, not an API).
        piped = VFS(url, tree="w11_1")
        with piped.tracer():
            piped._uow.state().raw.pipelined = True  # type: ignore[union-attr]
        piped.makedirs("/save/slot0", exist_ok=True)

        def piped_save(n: int) -> None:
            with piped.atomic_batch():
                for k in NAMES:
                    piped.write_bytes(f"/save/slot0/{k}.json", payload + n.to_bytes(4, "big"))

        for n in range(300):  # warm: files exist, statements prepared, statistics settled
            raw_save(n)
            vfs_save(n)
            piped_save(n)
        with fs.tracer() as statements:
            vfs_save(7)
        print(f"# one vfs_orm save: {len(statements)} statements")
        for s in statements:
            print("#   " + (s if len(s) < 160 else s[:157] + "..."))
        subjects: dict[str, tuple[Callable[[int], None], int]] = {
            "raw_pg": (raw_save, int(raw.info.backend_pid)),
            "vfs_orm_pg": (vfs_save, vfs_backend),
            "vfs_orm_pg_pipelined": (piped_save, vfs_pid({vfs_backend}))}
        got: dict[str, list[dict[str, float]]] = {s: [] for s in subjects}
        for _ in range(opts.rounds):
            for name, (save, pid) in subjects.items():
                got[name].append(measure(save, pid, opts.saves))
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        print(f"# {opts.rounds} rounds x {opts.saves} saves, medians per save; load {load}")
        keys = ("client_us", "server_us", "wall_us")
        print(f"{'subject':20s} " + " ".join(f"{k:>10s}" for k in keys) + "  client+server")
        med: dict[str, dict[str, float]] = {}
        for name, runs in got.items():
            med[name] = {k: statistics.median(r[k] for r in runs) for k in keys}
            m = med[name]
            print(f"{name:20s} " + " ".join(f"{m[k]:10.1f}" for k in keys)
                  + f"  {m['client_us'] + m['server_us']:10.1f}")
        r = med["raw_pg"]
        for name in ("vfs_orm_pg", "vfs_orm_pg_pipelined"):
            v = med[name]
            print(f"# {name} / raw: client CPU x{v['client_us'] / r['client_us']:.2f}, "
                  f"server CPU x{v['server_us'] / r['server_us']:.2f}, both x"
                  f"{(v['client_us'] + v['server_us']) / (r['client_us'] + r['server_us']):.2f}"
                  f", wall x{v['wall_us'] / r['wall_us']:.2f}")
        if opts.profile:
            prof = cProfile.Profile(time.process_time)
            prof.enable()
            for n in range(opts.saves):
                vfs_save(n)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue())
        fs.close()
        piped.close()
        raw.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
