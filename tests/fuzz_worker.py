"""Fuzz worker: mutates copies of a real vfs_orm database and drives the public API over each.

Run as a subprocess by ``tests/test_fuzz.py`` (a crash or a hang then fails one run, not the
suite). Every mutant is opened writable and read-only, walked, read (whole, streamed, seeked),
stat'ed, listed, globbed, written, renamed, removed and checked, always with VALID arguments:
whatever goes wrong is caused by the stored bytes, so only a ``VFSError`` may leave the API.

    python fuzz_worker.py SEED FIRST COUNT WORKDIR

prints one JSON line per leak: {"mutant": k, "how": ..., "op": ..., "error": ...}.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import resource
import shutil
import sqlite3
import sys
import traceback

from vfs_orm import VFS, VFSError

PAGE = 4096
MUTANT_TIMEOUT = 60  # seconds for one mutant (it takes well under one)


def build_base(path: str) -> None:
    """A small real database: inline files, chunked files, a sparse file, directories."""
    with VFS(path, chunk_size=4096) as fs:
        rng = random.Random(7)
        with fs.atomic_batch():
            for d in range(4):
                for f in range(6):
                    n = rng.choice([0, 10, 300, 5000, 9000])
                    fs.write_bytes(f"/d{d}/f{f}.bin", bytes(rng.getrandbits(8) for _ in range(n)))
            fs.makedirs("/empty/deeper")
            fs.write_text("/save/player.json", '{"hp": 10}')
        with fs.open("/big.bin", "wb") as f:
            f.write(os.urandom(40000))
        with fs.open("/sparse.bin", "r+b" if fs.exists("/sparse.bin") else "wb") as f:
            f.write(b"x")
        with fs.open("/sparse.bin", "r+b") as f:
            f.seek(20000)
            f.write(b"tail")
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


# -- mutations ----------------------------------------------------------------------------------

def _pages(data: bytearray) -> int:
    return len(data) // PAGE


def flip(data: bytearray, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(100, len(data))
        data[i] ^= 1 << rng.randrange(8)
    return "flip"


def zero_page(data: bytearray, rng: random.Random) -> str:
    p = rng.randrange(1, _pages(data))
    data[p * PAGE:(p + 1) * PAGE] = bytes(PAGE)
    return "zero_page"


def dup_page(data: bytearray, rng: random.Random) -> str:
    a, b = rng.randrange(1, _pages(data)), rng.randrange(1, _pages(data))
    data[b * PAGE:(b + 1) * PAGE] = data[a * PAGE:(a + 1) * PAGE]
    return "dup_page"


def truncate(data: bytearray, rng: random.Random) -> str:
    del data[rng.randrange(PAGE, len(data)):]
    return "truncate"


def scribble(data: bytearray, rng: random.Random) -> str:
    p = rng.randrange(1, _pages(data))
    o = p * PAGE + rng.randrange(0, PAGE - 64)
    data[o:o + 64] = bytes(rng.getrandbits(8) for _ in range(64))
    return "scribble"


BYTE_MUTATIONS = [flip, zero_page, dup_page, truncate, scribble]

# Hostile values written through SQLite itself (a well-formed file with lying rows).
FIELD_VALUES = {
    "size": [2**40, 2**62, -1, "12", 1.5, b"\x01", None, 1e30],
    "mtime_ns": [1e300, -2**63, "yesterday", 2**63 - 1, None],
    "ctime_ns": [1e300, "x", -1],
    "mode": [-1, 2**40, "rw", 1.5],
    "kind": [0, 4, "1", 2.0],
    "chunk_size": [0, -5, 2**40, "x", 1.5],
    "generation": ["g", 1.5, None],
    "name": [b"bytes", 42, "", "a/b", "..", "x\x00y"],
    "parent": [b"/", 7, "/nowhere"],
    "data": [12345, "text", b"", b"x" * 70000],
    "owner": [123],
}


def field_mutation(path: str, rng: random.Random) -> str:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA ignore_check_constraints=ON")
        column = rng.choice(sorted(FIELD_VALUES))
        value = rng.choice(FIELD_VALUES[column])
        if column == "data" and rng.random() < 0.5:
            sql = "UPDATE vfs_chunks SET data = ? WHERE id = (SELECT id FROM vfs_chunks " \
                  "ORDER BY random() LIMIT 1)"
            column = "chunk.data"
        elif column == "chunk_size" and rng.random() < 0.3:
            sql = "UPDATE vfs_layer_manifests SET chunk_size = ?"
            column = "manifest.chunk_size"
        else:
            sql = f"UPDATE vfs_inodes SET {column} = ? WHERE id = (SELECT id FROM vfs_inodes " \
                  f"WHERE parent IS NOT NULL AND parent != '' ORDER BY random() LIMIT 1)"
        try:
            con.execute(sql, (value,))
            con.commit()
        except (sqlite3.Error, OverflowError):
            pass
        return f"field {column}={value!r:.30}"
    finally:
        con.close()


def foreign_wal(path: str, rng: random.Random) -> str:
    with open(path + "-wal", "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(rng.choice([32, 100, 5000]))))
    return "foreign_wal"


def mutate(base: str, dst: str, rng: random.Random) -> str:
    shutil.copyfile(base, dst)
    for ext in ("-wal", "-shm"):
        if os.path.exists(dst + ext):
            os.remove(dst + ext)
    r = rng.random()
    if r < 0.35:
        return field_mutation(dst, rng)
    if r < 0.42:
        return foreign_wal(dst, rng)
    with open(dst, "rb") as f:
        data = bytearray(f.read())
    how = rng.choice(BYTE_MUTATIONS)(data, rng)
    with open(dst, "wb") as f:
        f.write(data)
    return how


# -- the workload -------------------------------------------------------------------------------

STRICT = False  # the control run: an undamaged database must give no error at all


def attempt(leaks: list, k: int, how: str, op: str, fn) -> object:
    try:
        return fn()
    except VFSError as exc:
        if STRICT:
            leaks.append({"mutant": k, "how": how, "op": op, "where": "control",
                          "error": f"{type(exc).__name__}: {exc}"[:300]})
        return None
    except Exception as exc:
        leaks.append({"mutant": k, "how": how, "op": op,
                      "error": f"{type(exc).__name__}: {exc}"[:300],
                      "where": traceback.format_exc().splitlines()[-3][:200]})
        return None


def exercise(path: str, k: int, how: str, leaks: list, read_only: bool) -> None:
    def op(name, fn):
        return attempt(leaks, k, how, name + (" (ro)" if read_only else ""), fn)

    fs = op("open", lambda: VFS(path, read_only=read_only))
    if fs is None:
        return
    try:
        files: list[str] = []
        walked = op("walk", lambda: list(fs.walk("/")))
        for top, dirs, names in walked or []:
            for name in [top, *dirs, *names]:
                if not isinstance(name, str):
                    leaks.append({"mutant": k, "how": how, "op": "walk", "where": "",
                                  "error": f"a name that is not a str: {name!r:.40}"})
                    return
            for name in names:
                files.append(top.rstrip("/") + "/" + name)
        for p in files[:40]:
            op("stat", lambda: (lambda s: (s.st_mtime, s.st_ctime, s.is_dir(), s.is_file(),
                                           s.modified_at, s.created_at, s.st_size))(fs.stat(p)))
            op("read_bytes", lambda: fs.read_bytes(p))
            op("exists", lambda: (fs.exists(p), fs.isfile(p), fs.isdir(p), fs.getsize(p)))

            def stream():
                with fs.open(p, "rb") as f:
                    f.read(100)
                    f.seek(0)
                    # What a game streams; a huge sparse file is valid, reading all of it
                    # whole is not what this test is about.
                    for _ in range(300):
                        if not f.read(3000):
                            break
                    f.seek(5)
                    f.read(10)
                    f.seek(0, 2)
                    f.read()
            op("stream", stream)
        op("listdir", lambda: [fs.listdir(d) for d in ("/", "/d0", "/save", "/empty")])
        op("glob", lambda: (fs.glob("/**/*.bin"), fs.glob("/d*/f?.bin"), fs.glob("/*")))
        op("which", lambda: [fs.which_layer(p) for p in files[:5]])
        op("info", lambda: fs.info())
        op("check", lambda: fs.check())
        op("snapshot", lambda: _snapshot_read(fs, files[:5]))
        if not read_only:
            op("write_bytes", lambda: fs.write_bytes("/d0/f0.bin", b"new content"))
            op("write_new", lambda: fs.write_bytes("/new/dir/file.txt", b"hello" * 100))
            op("write_files", lambda: fs.write_files({"/bulk/a": b"1", "/bulk/b": b"2" * 9000}))

            def append():
                for p in files[:3]:
                    with fs.open(p, "ab") as f:
                        f.write(b"more")
            op("append", append)

            def rplus():
                for p in files[3:6]:
                    with fs.open(p, "r+b") as f:
                        f.seek(2)
                        f.write(b"XY")
                        f.truncate(5000)
            op("r+", rplus)
            op("remove", lambda: [fs.remove(p) for p in files[6:9]])
            op("rename", lambda: fs.rename("/d1", "/d1-moved"))
            op("copy", lambda: fs.copy(files[0], "/copied.bin") if files else None)
            op("copytree", lambda: fs.copytree("/d2", "/d2-copy"))
            op("rmtree", lambda: fs.rmtree("/d3"))
            op("mkdir", lambda: fs.mkdir("/made", exist_ok=True))
            op("compact", lambda: fs.compact())
            op("check-after", lambda: fs.check())
    finally:
        attempt(leaks, k, how, "close", fs.close)


def _snapshot_read(fs: VFS, files: list[str]) -> None:
    snap = getattr(fs, "snapshot", None)
    if snap is None:
        return
    with snap():
        for p in files:
            fs.read_bytes(p)


def main() -> None:
    seed, first, count, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    # A hostile size must not be able to take the machine's memory: an allocation past this
    # is a MemoryError, which is a leak like any other.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    base = os.path.join(work, "base.vfs")
    if not os.path.exists(base):
        build_base(base)
    leaks: list = []
    global STRICT
    STRICT = True
    control = os.path.join(work, "control.vfs")
    shutil.copyfile(base, control)
    exercise(control, -1, "none", leaks, read_only=True)
    exercise(control, -1, "none", leaks, read_only=False)
    STRICT = False
    for k in range(first, first + count):
        # A hang is a failure: dump every thread's stack and exit non-zero.
        faulthandler.dump_traceback_later(MUTANT_TIMEOUT, exit=True)
        rng = random.Random(seed * 1_000_003 + k)
        path = os.path.join(work, f"mutant-{k}.vfs")
        how = mutate(base, path, rng)
        exercise(path, k, how, leaks, read_only=True)
        exercise(path, k, how, leaks, read_only=False)
        for ext in ("", "-wal", "-shm"):
            if os.path.exists(path + ext):
                os.remove(path + ext)
    faulthandler.cancel_dump_traceback_later()
    for leak in leaks:
        print(json.dumps(leak))
    print(json.dumps({"done": count}))


if __name__ == "__main__":
    main()
