"""Workloads W1-W9 of SPEC §8, every subject side by side in one run (W10 joins with layers).

Each benchmark records ``extra_info``: ``workload``, ``unit`` (a throughput such as files/s,
or ``ms`` for latency workloads), and ``work`` (items per round). ``run.py`` turns the JSON into
RESULTS.md with the ratio vfs_orm / raw_sqlite beside each SPEC target.
"""

from __future__ import annotations

import os
import random

import pytest
from conftest import SIZES, built_store, sample, settle, small_files

MiB = 1 << 20


def _info(benchmark, workload: str, unit: str, work: float) -> None:
    benchmark.extra_info.update({"workload": workload, "unit": unit, "work": work})


def _run(benchmark, fn, setup=None, rounds=None):
    return benchmark.pedantic(fn, setup=setup, rounds=rounds or SIZES.rounds, iterations=1,
                              warmup_rounds=0)


def _read_rounds(subject, workload: str) -> int:
    """Read-only workloads take well under a second a round: three times the rounds, so a
    burst of noise on this 2-core VM moves the median less (slow subjects keep the count)."""
    slow = subject.slow or workload in subject.slow_in
    return SIZES.rounds if slow else SIZES.rounds * 3


# -- W1 ingest ------------------------------------------------------------------------------
def test_w1_ingest(benchmark, subject, workdir):
    n = sample(subject, SIZES.small_files)
    files = small_files(n)
    counter = iter(range(10_000))

    def setup():
        settle()
        store = subject.create(workdir / f"w1-{subject.name}-{next(counter)}")
        return (store,), {}

    def ingest(store):
        subject.ingest(store, files)
        subject.close(store)

    _info(benchmark, "W1 ingest 4 KiB files, one batch", "files/s", n)
    _run(benchmark, ingest, setup)


def _builder(subject, files, reopen: bool = False):
    """Builds a store holding ``files`` (the seed library through its fast path; ``reopen``:
    vfs_orm closed and opened again, so reads start from a fresh connection)."""
    def build(path):
        if subject.name == "stella":
            subject.build_fast(path, files)
            return subject.open(path)
        store = subject.create(path)
        subject.ingest(store, files)
        if reopen and subject.name == "vfs_orm":
            subject.close(store)
            store = subject.open(path)
        return store
    return build


def _small_store(subject, workdir):
    files = small_files(SIZES.small_files)
    return built_store(subject, workdir, "small", _builder(subject, files, reopen=True)), files


# -- W2 read small files --------------------------------------------------------------------
def test_w2_read_small(benchmark, subject, workdir):
    store, files = _small_store(subject, workdir)
    paths = [p for p, _ in files]
    random.Random(2).shuffle(paths)
    paths = paths[: sample(subject, len(paths))]

    def read_all():
        for p in paths:
            subject.read(store, p)

    _info(benchmark, "W2 read small files, shuffled", "files/s", len(paths))
    _run(benchmark, read_all, rounds=_read_rounds(subject, "w2"))


# -- W3 / W4 / W5 one big file -------------------------------------------------------------
def _pieces(total_mib: int):
    piece = os.urandom(MiB)
    return [piece] * total_mib


def test_w3_write_big(benchmark, subject, workdir):
    mib = SIZES.big_mib if not subject.slow else max(4, SIZES.big_mib // 4)
    pieces = _pieces(mib)
    counter = iter(range(1000))

    def setup():
        settle()
        return (subject.create(workdir / f"w3-{subject.name}-{next(counter)}"),), {}

    def write(store):
        subject.write_big(store, "/big/file.bin", pieces)
        subject.close(store)

    _info(benchmark, "W3 write one big file in 1 MiB pieces", "MiB/s", mib)
    _run(benchmark, write, setup)


def _big_store(subject, workdir):
    def build(path):
        store = subject.create(path)
        subject.write_big(store, "/big/file.bin", _pieces(SIZES.big_mib))
        if subject.name in ("vfs_orm", "stella"):
            subject.close(store)
            store = subject.open(path)
        return store
    return built_store(subject, workdir, "big", build)


@pytest.mark.parametrize("read_size", [MiB, 4096], ids=["1MiB", "4KiB"])
def test_w4_read_big(benchmark, subject, workdir, read_size):
    store = _big_store(subject, workdir)
    mib = SIZES.big_mib
    if subject.slow and read_size == 4096:
        mib = max(1, mib // 8)

    def read():
        with subject.open_read(store, "/big/file.bin") as f:
            left = mib * MiB
            while left > 0:
                got = f.read(min(read_size, left))
                if not got:
                    break
                left -= len(got)

    label = "W4a sequential read, 1 MiB reads" if read_size == MiB else \
        "W4b sequential read, 4 KiB reads"
    _info(benchmark, label, "MiB/s", mib)
    _run(benchmark, read, rounds=_read_rounds(subject, "w4"))


@pytest.mark.parametrize("read_size", [4096, 65536, MiB, "copyfileobj"],
                         ids=["4KiB", "64KiB", "1MiB", "copyfileobj"])
def test_ws_stream(benchmark, subject, workdir, read_size):
    """A whole file streamed from start to end through ``open()`` (raw sqlite3: the
    straightforward reader, one BLOB per chunk in order)."""
    import shutil

    store = _big_store(subject, workdir)
    mib = SIZES.big_mib if not subject.slow else max(1, SIZES.big_mib // 8)

    class Sink:
        def write(self, b):
            return len(b)

    def read():
        with subject.open_stream(store, "/big/file.bin") as f:
            if read_size == "copyfileobj":
                shutil.copyfileobj(f, Sink())
                return
            while f.read(read_size):
                pass

    name = read_size if read_size == "copyfileobj" else \
        {4096: "4 KiB", 65536: "64 KiB", MiB: "1 MiB"}[read_size] + " reads"
    _info(benchmark, f"WS stream a big file, {name}", "MiB/s", mib)
    _run(benchmark, read, rounds=_read_rounds(subject, "ws"))


def test_w5_random_reads(benchmark, subject, workdir):
    store = _big_store(subject, workdir)
    n = sample(subject, SIZES.random_reads, "w5")
    rnd = random.Random(5)
    offsets = [rnd.randrange(0, SIZES.big_mib * MiB - 4096) for _ in range(n)]

    def read():
        with subject.open_read(store, "/big/file.bin") as f:
            for off in offsets:
                f.seek(off)
                f.read(4096)

    _info(benchmark, "W5 random 4 KiB reads", "ops/s", n)
    _run(benchmark, read, rounds=_read_rounds(subject, "w5"))


# -- W6 listdir, W7 glob, W8 exists/stat ----------------------------------------------------
def _tree_store(subject, workdir, total: int):
    wide = SIZES.wide_dir
    files = [(f"/wide/e{i:05}", b"x") for i in range(wide)]
    files += [(f"/d{i % 100:02}/s{i % 7}/f{i}", b"x") for i in range(total - wide)]
    return built_store(subject, workdir, f"tree{total}", _builder(subject, files))


@pytest.mark.parametrize("total", SIZES.store_sizes)
@pytest.mark.parametrize("target", ["/wide", "/"], ids=["wide", "root"])
def test_w6_listdir(benchmark, subject, workdir, total, target):
    store = _tree_store(subject, workdir, total)
    calls = 20

    def listing():
        for _ in range(calls):
            subject.listdir(store, target)

    assert len(subject.listdir(store, target)) == (SIZES.wide_dir if target == "/wide" else 101)
    label = (f"W6 listdir {SIZES.wide_dir}-entry dir" if target == "/wide"
             else "W6r listdir('/')") + f", {total} files"
    _info(benchmark, label, "ms", calls)
    _run(benchmark, listing, rounds=_read_rounds(subject, "w6"))


def test_w7_glob(benchmark, subject, workdir):
    store, files = _small_store(subject, workdir)
    pattern = "/d*/sub*/*.json"
    expect = sum(1 for p, _ in files if p.endswith(".json"))
    assert len(subject.glob(store, pattern)) == expect

    def run():
        subject.glob(store, pattern)

    _info(benchmark, "W7 glob /d*/sub*/*.json", "ms", 1)
    _run(benchmark, run, rounds=SIZES.rounds * 3)


@pytest.mark.parametrize("op", ["exists_hit", "exists_miss", "stat_hit"])
def test_w8_exists_stat(benchmark, subject, workdir, op):
    store, files = _small_store(subject, workdir)
    paths = [p for p, _ in files]
    random.Random(8).shuffle(paths)
    paths = paths[: sample(subject, len(paths))]
    if op == "exists_miss":
        paths = [p + ".missing" for p in paths]
    fn = subject.stat_size if op == "stat_hit" else subject.exists

    def run():
        for p in paths:
            fn(store, p)

    _info(benchmark, f"W8 {op.replace('_', ' ')}", "ops/s", len(paths))
    _run(benchmark, run, rounds=_read_rounds(subject, "w8"))


# -- W9 durable atomic save -----------------------------------------------------------------
def test_w9_durable_save(benchmark, subject, workdir):
    n = sample(subject, SIZES.saves)
    store = subject.create(workdir / f"w9-{subject.name}")
    settle()
    payloads = [os.urandom(2048) for _ in range(3)]
    gen = iter(range(10**9))

    def save_many():
        for _ in range(n):
            g = next(gen)
            subject.save(store, [(f"/save/slot1/{name}.json", payloads[k][:-4] + g.to_bytes(4, "big"))
                                 for k, name in enumerate(("player", "world", "inventory"))])

    _info(benchmark, "W9 durable atomic save, 3 x 2 KiB", "saves/s", n)
    try:
        _run(benchmark, save_many)
    finally:
        subject.close(store)


# -- W10 reads through a stack of layers ----------------------------------------------------
@pytest.mark.parametrize("depth", SIZES.stack_depths)
def test_w10_layered_reads(benchmark, subject, workdir, depth):
    n = sample(subject, SIZES.layered_reads)
    rnd = random.Random(10)
    blob = rnd.randbytes(4096)
    per_layer = max(1, SIZES.layered_reads // depth)
    layers = [[(f"/game/l{k}/f{i}.bin", blob) for i in range(per_layer)] for k in range(depth)]
    root = workdir / f"w10-{subject.name}-{depth}"
    root.mkdir()
    stack = subject.make_stack(root, layers)
    settle()
    paths = [p for files in layers for p, _ in files]
    rnd.shuffle(paths)
    paths = (paths * (n // len(paths) + 1))[:n]
    for p in paths[:50]:
        assert subject.read_stack(stack, p) == blob

    def run():
        for p in paths:
            subject.read_stack(stack, p)

    _info(benchmark, f"W10 reads through {depth} layers", "files/s", len(paths))
    try:
        _run(benchmark, run, rounds=_read_rounds(subject, "w10"))
    finally:
        subject.close_stack(stack)


# -- W11 concurrent writers -------------------------------------------------------------------
WRITERS = 4


def _writer(subject, path, slot: int, saves: int, ready, go, done) -> None:
    """One writer process: opens the shared store, waits for the start, saves ``saves`` times
    into its own slot (3 x 2 KiB files, one atomic save each)."""
    store = subject.open(path)
    payload = os.urandom(2048)
    ready.put(slot)
    go.wait()
    for g in range(saves):
        subject.save(store, [(f"/save/slot{slot}/{name}.json", payload[:-4] + g.to_bytes(4, "big"))
                             for name in ("player", "world", "inventory")])
    subject.close(store)
    done.put(slot)


def test_w11_concurrent_saves(benchmark, subject, workdir):
    """W11: 4 processes saving at once into ONE store, each into its own slot: how writers of
    one store share it (SQLite: one writer at a time, the others wait on the file lock;
    vfs_orm on PostgreSQL: SERIALIZABLE transactions in parallel, a conflicting batch run
    again; raw psycopg: row locks only). 1, 4 and 8 writers, and separate trees:
    benchmarks/w11_writers.py."""
    import multiprocessing

    saves = max(5, sample(subject, SIZES.saves) // 3)
    ctx = multiprocessing.get_context("fork")
    counter = iter(range(1000))
    path = workdir / f"w11-{subject.name}"
    subject.close(subject.create(path))

    def setup():
        settle()
        ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = [ctx.Process(target=_writer, args=(subject, path, k, saves, ready, go, done))
                 for k in range(WRITERS)]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=120)
        next(counter)
        return (procs, go, done), {}

    def run(procs, go, done):
        go.set()
        for _ in procs:
            done.get(timeout=600)
        for p in procs:
            p.join(60)
            assert p.exitcode == 0

    _info(benchmark, f"W11 concurrent saves, {WRITERS} processes into one store", "saves/s",
          saves * WRITERS)
    _run(benchmark, run, setup)
