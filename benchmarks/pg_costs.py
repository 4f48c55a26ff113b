"""Per-operation costs of vfs_orm on PostgreSQL, against raw psycopg 3 doing the same work on the
same server and socket in the same run, and against vfs_orm on a SQLite file.

    python benchmarks/pg_costs.py            # starts a throwaway cluster (tests/pgserver.py)
    VFS_ORM_PG_URL=postgresql+psycopg://... python benchmarks/pg_costs.py

Raw psycopg gets its best shot: prepared statements, one statement per operation, COPY for
bulk ingest, the same tables and indexes. Medians of several rounds; writes to
benchmarks/PG-COSTS.md.
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

import pgserver  # noqa: E402
import psycopg  # noqa: E402

from vfs_orm import VFS  # noqa: E402

N = 500  # operations per round
ROUNDS = 7


def per_op_us(fn: Callable[[int], object], n: int = N) -> float:
    """Median over ROUNDS of the mean cost of ``fn(k)``, k in 0..n-1, in microseconds."""
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for k in range(n):
            fn(k)
        times.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(times)


def main() -> int:
    cluster = pgserver.start()
    rows: list[tuple[str, float, float, float]] = []
    try:
        url = cluster.url
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        tmp = tempfile.mkdtemp()
        lite = VFS(os.path.join(tmp, "costs.vfs"))
        pg = VFS(url, tree="costs")
        small = {f"/small/f{k}.json": os.urandom(2048) for k in range(N)}
        big = os.urandom(4 << 20)
        for fs in (lite, pg):
            fs.write_files(small)
            fs.write_bytes("/big.bin", big)
            fs.write_files({f"/wide/e{k:04d}": b"" for k in range(1000)})
        raw = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
        raw.execute("CREATE SCHEMA IF NOT EXISTS raw")
        raw.execute("DROP TABLE IF EXISTS raw.files")
        raw.execute('CREATE TABLE raw.files (parent text COLLATE "C", name text COLLATE "C", '
                    "size bigint, data bytea, PRIMARY KEY (parent, name))")
        raw.execute("ALTER TABLE raw.files ALTER COLUMN data SET STORAGE EXTERNAL")
        with raw.cursor().copy("COPY raw.files (parent, name, size, data) FROM STDIN") as cp:
            for p, d in small.items():
                cp.write_row(("/small", p.rsplit("/", 1)[1], len(d), d))
            cp.write_row(("/", "big.bin", len(big), big))
            for k in range(1000):
                cp.write_row(("/wide", f"e{k:04d}", 0, b""))
        names = list(small)
        rng = random.Random(1)
        order = [rng.randrange(N) for _ in range(N)]

        rows.append(("round trip (SELECT 1)", float("nan"),
                     per_op_us(lambda k: raw.execute("SELECT 1").fetchone()), float("nan")))

        def stat_raw(k: int) -> object:
            return raw.execute("SELECT size FROM raw.files WHERE parent = %s AND name = %s",
                               ("/small", names[order[k]][7:])).fetchone()

        rows.append(("stat, hit", per_op_us(lambda k: pg.stat(names[order[k]])),
                     per_op_us(stat_raw), per_op_us(lambda k: lite.stat(names[order[k]]))))

        def read_raw(k: int) -> object:
            return raw.execute("SELECT data FROM raw.files WHERE parent = %s AND name = %s",
                               ("/small", names[order[k]][7:])).fetchone()

        rows.append(("read_bytes, 2 KiB file", per_op_us(lambda k: pg.read_bytes(names[order[k]])),
                     per_op_us(read_raw), per_op_us(lambda k: lite.read_bytes(names[order[k]]))))

        offsets = [rng.randrange(len(big) - 4096) for _ in range(N)]
        fpg, flite = pg.open("/big.bin", "rb", buffering=0), lite.open("/big.bin", "rb",
                                                                       buffering=0)

        def rand(f: object) -> Callable[[int], object]:
            def go(k: int) -> object:
                f.seek(offsets[k])  # type: ignore[attr-defined]
                return f.read(4096)  # type: ignore[attr-defined]
            return go

        def rand_raw(k: int) -> object:
            return raw.execute("SELECT substring(data FROM %s FOR 4096) FROM raw.files "
                               "WHERE parent = '/' AND name = 'big.bin'",
                               (offsets[k] + 1,)).fetchone()

        rows.append(("random 4 KiB read of a 4 MiB file", per_op_us(rand(fpg)),
                     per_op_us(rand_raw), per_op_us(rand(flite))))

        def save(fs: VFS) -> Callable[[int], object]:
            def go(k: int) -> object:
                with fs.atomic_batch():
                    for n in ("player", "world", "inventory"):
                        fs.write_bytes(f"/save/{n}.json", b"%d" % k + bytes(2000))
                return None
            return go

        def save_raw(k: int) -> object:
            with raw.transaction():
                raw.execute("SELECT pg_advisory_xact_lock(1, 1)")
                for n in ("player", "world", "inventory"):
                    d = b"%d" % k + bytes(2000)
                    raw.execute("INSERT INTO raw.files VALUES ('/save', %s, %s, %s) "
                                "ON CONFLICT (parent, name) DO UPDATE SET size = "
                                "excluded.size, data = excluded.data", (n, len(d), d))
            return None

        rows.append(("atomic save of 3 x 2 KiB files", per_op_us(save(pg), 200),
                     per_op_us(save_raw, 200), per_op_us(save(lite), 200)))
        rows.append(("listdir, 1000 entries", per_op_us(lambda k: pg.listdir("/wide"), 50),
                     per_op_us(lambda k: raw.execute(
                         "SELECT name FROM raw.files WHERE parent = '/wide' ORDER BY name")
                         .fetchall(), 50),
                     per_op_us(lambda k: lite.listdir("/wide"), 50)))

        batch = {f"/ingest{{}}/f{k}.bin": os.urandom(4096) for k in range(1000)}

        fresh = itertools.count()  # every round ingests into a new directory

        def ingest(fs: VFS) -> Callable[[int], object]:
            def go(k: int) -> object:
                n = next(fresh)
                return fs.write_files({p.format(n): d for p, d in batch.items()})
            return go

        def ingest_raw(k: int) -> object:
            n = next(fresh)
            with raw.cursor().copy("COPY raw.files (parent, name, size, data) FROM STDIN") as c:
                for p, d in batch.items():
                    c.write_row((f"/ingest{n}", p.rsplit("/", 1)[1], len(d), d))
            return None

        rows.append(("ingest 1000 x 4 KiB files (per file; raw: COPY)",
                     per_op_us(ingest(pg), 3) / 1000, per_op_us(ingest_raw, 3) / 1000,
                     per_op_us(ingest(lite), 3) / 1000))
        fpg.close()
        flite.close()
        pg.close()
        lite.close()
        raw.close()
    finally:
        cluster.stop()
    lines = ["# vfs_orm on PostgreSQL: cost per operation", "",
             f"- run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; PostgreSQL over a "
             "unix socket on this machine (fsync off: a throwaway test cluster)",
             f"- medians of {ROUNDS} rounds; microseconds per operation; ratio = raw psycopg "
             "time / vfs_orm time (>= 0.7 is the target of #15)", "",
             "| operation | vfs_orm on PostgreSQL | raw psycopg | ratio | vfs_orm on SQLite |",
             "|---|---:|---:|---:|---:|"]
    for name, ours, theirs, lite_us in rows:
        ratio = "" if ours != ours else f"{theirs / ours:.2f}"
        lines.append(f"| {name} | {'' if ours != ours else f'{ours:,.1f}'} | {theirs:,.1f} "
                     f"| {ratio} | {'' if lite_us != lite_us else f'{lite_us:,.1f}'} |")
    out = HERE / "PG-COSTS.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
