"""Concurrency torture on PostgreSQL: 8 processes change one small namespace of one tree at
once (writes, batches, renames of files and directories, removes, makedirs, rmdir, rmtree,
copies that share content), each from its own seeded random sequence, a fixed number of
operations each.

Afterwards the tree checks ok (no entry without its directory, no duplicate name, shared
content's counts exact), every file holds one whole value that some process wrote, every
batch landed whole or not at all, and the only errors raised were the library's documented
ones for what the namespace looked like at that moment (a path gone, taken, not empty, ...)
or ``BusyError`` for a conflict inside a batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from vfs_orm import VFS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCS = 8
#: Operations per process (about 15 s of them on a 2-core machine).
OPS = 400

WORKER = textwrap.dedent("""
    import json, random, sys
    from vfs_orm import VFS, VFSError

    url, tree, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    DIRS = ["/a", "/b", "/a/x", "/b/y", "/c", "/a/x/z"]
    NAMES = ["f0", "f1", "f2"]
    errors, by_op, ops, n = {}, {}, 0, 0

    def path():
        return rng.choice(DIRS) + "/" + rng.choice(NAMES)

    def value():
        global n
        n += 1
        # Sizes around the chunk size (4 KiB here): inline rows, one chunk, several.
        size = rng.choice([10, 300, 4096, 9000, 20000])
        head = f"{seed}:{n}:".encode()
        body = bytes([n % 251]) * (size - len(head) - 2)
        return head + body + b"$$"

    def batch_values(k):
        # A batch writes one generation into k files: all or nothing.
        global n
        n += 1
        gen = f"{seed}:{n}:batch{k}:".encode()
        return [gen + bytes([i]) * rng.choice([20, 5000]) + b"$$" for i in range(k)]

    fs = VFS(url, tree=tree, chunk_size=4096)
    while ops < count:
        op = rng.choice(["write", "write", "write", "batch", "rename", "rename_dir",
                         "remove", "makedirs", "rmdir", "rmtree", "copy", "read"])
        ops += 1
        try:
            if op == "write":
                fs.write_bytes(path(), value())
            elif op == "batch":
                targets = sorted({path() for _ in range(3)})
                with fs.atomic_batch():
                    for p, v in zip(targets, batch_values(len(targets))):
                        fs.write_bytes(p, v)
            elif op == "rename":
                fs.rename(path(), path())
            elif op == "rename_dir":
                fs.rename(rng.choice(DIRS), rng.choice(DIRS))
            elif op == "remove":
                fs.remove(path())
            elif op == "makedirs":
                fs.makedirs(rng.choice(DIRS), exist_ok=True)
            elif op == "rmdir":
                fs.rmdir(rng.choice(DIRS))
            elif op == "rmtree":
                if rng.random() < 0.3:
                    fs.rmtree(rng.choice(DIRS))
            elif op == "copy":
                fs.copy(path(), path())
            else:
                fs.read_bytes(path())
        except VFSError as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
            key = op + ":" + name
            by_op[key] = by_op.get(key, 0) + 1
    fs.close()
    print(json.dumps({"ops": ops, "errors": errors, "by_op": by_op}))
""")

#: What the namespace at that moment may answer: a path gone, taken, a file where a
#: directory is wanted or the other way, a directory not empty, a directory moved into
#: itself or a file copied onto itself, and a conflict inside a batch.
DOCUMENTED = {"NotFoundError", "AlreadyExistsError", "NotADirError", "IsADirError",
              "DirNotEmptyError", "InvalidOperationError", "InvalidPathError", "BusyError"}


def _whole(data: bytes, seeds: range) -> bool:
    """One whole value a worker wrote: its header names the writer and ends as written."""
    if not data.endswith(b"$$"):
        return False
    head = data.split(b":", 2)
    if len(head) < 3 or not head[0].isdigit() or int(head[0]) not in seeds:
        return False
    rest = head[2]
    if rest.startswith(b"batch"):
        body = rest.split(b":", 1)[1][:-2]
        return len(set(body)) <= 1
    body = data[:-2][len(head[0]) + len(head[1]) + 2:]
    return body == bytes([int(head[1]) % 251]) * len(body)


def test_eight_processes_torture_one_tree(pg_url, pg_tree):
    seed = int(os.environ.get("VFS_ORM_TORTURE_SEED", "29"))
    with VFS(pg_url, tree=pg_tree, chunk_size=4096) as fs:
        fs.makedirs("/a/x/z")
        fs.makedirs("/b/y")
    env = dict(os.environ, PYTHONPATH=ROOT)
    seeds = range(seed * 100, seed * 100 + PROCS)
    children = [subprocess.Popen([sys.executable, "-c", WORKER, pg_url, pg_tree, str(s),
                                  str(OPS)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
                for s in seeds]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-3000:]  # no undocumented error escaped
        reports.append(json.loads(out.strip().splitlines()[-1]))
    raised: dict[str, int] = {}
    by_op: dict[str, int] = {}
    for r in reports:
        for key, k in r["by_op"].items():
            by_op[key] = by_op.get(key, 0) + k
        for name, k in r["errors"].items():
            raised[name] = raised.get(name, 0) + k
    print(f"torture: {sum(r['ops'] for r in reports)} operations, errors {sorted(by_op.items())}")
    assert set(raised) <= DOCUMENTED, raised
    # A single operation that conflicts runs again (within busy_timeout): only a batch, whose
    # block is the caller's, hands a conflict to the caller.
    assert not [k for k in by_op if k.endswith(":BusyError") and k != "batch:BusyError"], by_op
    assert [r["ops"] for r in reports] == [OPS] * PROCS  # each ran every operation
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        report = fs.check(deep=True)
        assert report.ok, report
        for top, _dirs, files in fs.walk("/"):
            for name in files:
                p = f"{top.rstrip('/')}/{name}"
                data = fs.read_bytes(p)
                assert _whole(data, seeds), (p, data[:40], len(data))
