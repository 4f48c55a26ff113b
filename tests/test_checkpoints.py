"""Checkpoints (format 0005): named point-in-time copies of a tree's metadata whose content is
shared with the tree, copy on write. Taking one copies no content byte; later writes never
change it; restore is all or nothing; dropping one frees exactly what only it held; check()
verifies the reference counts checkpoints hold."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import stat as _stat
from pathlib import Path

import pytest

from vfs_orm import (
    VFS,
    AlreadyExistsError,
    BusyError,
    ContractError,
    CorruptionError,
    NotFoundError,
    ReadOnlyError,
    VFSError,
)
from vfs_orm.backends.sqlite import schema as dbmod

FIXTURES = Path(__file__).parent / "fixtures"
MiB = 1 << 20


def _chunk_bytes(path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT coalesce(sum(length(data)), 0) FROM vfs_chunks").fetchone()[0]
    finally:
        con.close()


def _snapshot(fs: VFS) -> dict[str, object]:
    """Everything a user sees of the tree: each path's kind, mode, mtime and content."""
    out: dict[str, object] = {}
    for top, dirs, files in fs.walk("/"):
        for d in dirs:
            p = f"{top.rstrip('/')}/{d}"
            st = fs.stat(p)
            out[p] = ("dir", st.st_mode, st.st_mtime_ns)
        for f in files:
            p = f"{top.rstrip('/')}/{f}"
            st = fs.stat(p)
            special = not _stat.S_ISREG(st.st_mode)  # a link or node (0010): its content
            out[p] = ("file", st.st_mode, st.st_mtime_ns,
                      fs.readlink(p) if _stat.S_ISLNK(st.st_mode) else
                      b"" if special else fs.read_bytes(p))
    return out


@pytest.fixture
def fs(tmp_path):
    with VFS(tmp_path / "ck.vfs") as vfs:
        yield vfs


def _fill(fs: VFS, seed: int = 1) -> dict[str, bytes]:
    rnd = random.Random(seed)
    files = {"/save/slot1.json": b'{"hp": 10}', "/save/big.bin": rnd.randbytes(3 * MiB),
             "/save/mid.bin": rnd.randbytes(70_000), "/empty.txt": b"",
             "/deep/a/b/c.txt": b"c" * 100}
    for p, data in files.items():
        fs.write_bytes(p, data)
    fs.mkdir("/emptydir")
    fs.chmod("/save/slot1.json", 0o600)
    return files


def test_checkpoint_copies_no_content_and_writes_never_change_it(fs):
    files = _fill(fs)
    before = _snapshot(fs)
    chunk_bytes = _chunk_bytes(fs.db_path)
    assert fs.checkpoint("start") == "start"
    assert _chunk_bytes(fs.db_path) == chunk_bytes  # metadata only
    # Every kind of later write: in place, appended, truncated, replaced whole, removed,
    # renamed, new files, a whole subtree gone.
    with fs.open("/save/big.bin", "r+b") as f:
        f.seek(100_000)
        f.write(b"patched")
    with fs.open("/save/mid.bin", "ab") as f:
        f.write(b"tail")
    fs.write_bytes("/save/slot1.json", b'{"hp": 0}')
    fs.remove("/empty.txt")
    fs.rename("/deep", "/moved")
    fs.rmtree("/moved")
    fs.write_bytes("/new.bin", os.urandom(200_000))
    with fs.open_checkpoint("start") as view:
        assert _snapshot(view) == before
        assert view.read_only
        with pytest.raises(ReadOnlyError):
            view.write_bytes("/x", b"x")
    fs.restore("start")
    assert _snapshot(fs) == before
    assert {p: fs.read_bytes(p) for p in files} == files
    report = fs.check(deep=True)
    assert report.ok, report.problems


def test_restore_is_exact_and_checkpoint_survives_it(fs):
    _fill(fs)
    fs.checkpoint("a")
    state_a = _snapshot(fs)
    fs.write_bytes("/only-in-b", b"b")
    fs.remove("/save/big.bin")
    fs.checkpoint("b")
    state_b = _snapshot(fs)
    fs.restore("a")
    assert _snapshot(fs) == state_a
    fs.write_bytes("/after", b"x")
    fs.restore("b")
    assert _snapshot(fs) == state_b
    fs.restore("a")  # again: a checkpoint is not used up by a restore
    assert _snapshot(fs) == state_a
    assert [c.name for c in fs.checkpoints()] == ["a", "b"]
    assert fs.check(deep=True).ok


def test_listing_counts_files_and_bytes_only_it_holds(fs):
    data = os.urandom(2 * MiB)
    fs.write_bytes("/big.bin", data)
    fs.write_bytes("/small.txt", b"0123456789")
    fs.checkpoint("one")
    [info] = fs.checkpoints()
    assert info.name == "one" and info.files == 2 and not info.auto
    assert info.created > 0
    # The tree still holds the big file: the checkpoint alone holds only its inline copy.
    assert info.alone_bytes == 10
    fs.checkpoint("two")
    fs.remove("/big.bin")
    assert [c.alone_bytes for c in fs.checkpoints()] == [10, 10]  # the big file: both hold it
    before = _chunk_bytes(fs.db_path)
    fs.drop_checkpoint("one")
    assert _chunk_bytes(fs.db_path) == before  # "two" still holds it
    assert fs.checkpoints()[0].alone_bytes == 10 + len(data)
    fs.drop_checkpoint("two")
    assert _chunk_bytes(fs.db_path) == 0  # exactly what only they held is gone
    assert fs.read_bytes("/small.txt") == b"0123456789"
    assert fs.check(deep=True).ok


def test_drop_keeps_what_the_tree_still_reads(fs):
    data = os.urandom(MiB)
    fs.write_bytes("/a.bin", data)
    fs.checkpoint("c")
    fs.copy("/a.bin", "/b.bin")
    fs.drop_checkpoint("c")
    assert fs.read_bytes("/a.bin") == data and fs.read_bytes("/b.bin") == data
    assert fs.check(deep=True).ok


def test_errors_are_library_errors(fs):
    fs.write_bytes("/x", b"x")
    fs.checkpoint("x")
    with pytest.raises(AlreadyExistsError):
        fs.checkpoint("x")
    for call in (fs.restore, fs.drop_checkpoint, fs.open_checkpoint):
        with pytest.raises(NotFoundError) as ei:
            call("nope")
        assert isinstance(ei.value, FileNotFoundError) and isinstance(ei.value, VFSError)
    with pytest.raises(NotFoundError):
        fs.diff("x", "nope")
    for bad in ("", "a\x00b", "line\nbreak", "x" * 256):
        with pytest.raises(ContractError):
            fs.checkpoint(bad)
    with pytest.raises(TypeError):
        fs.checkpoint(3)  # type: ignore[arg-type]
    with pytest.raises(ContractError):
        fs.checkpoint(keep=0)
    assert [c.name for c in fs.checkpoints()] == ["x"]
    ro = VFS(fs.db_path, read_only=True)
    try:
        with pytest.raises(ReadOnlyError):
            ro.checkpoint("y")
        with pytest.raises(ReadOnlyError):
            ro.restore("x")
        assert [c.name for c in ro.checkpoints()] == ["x"]
    finally:
        ro.close()


def test_automatic_checkpoints_and_retention(fs):
    names = []
    for i in range(5):
        fs.write_bytes("/autosave.json", json.dumps({"turn": i}).encode())
        names.append(fs.checkpoint(keep=3))
    fs.checkpoint("manual")
    fs.write_bytes("/autosave.json", b'{"turn": 5}')
    names.append(fs.checkpoint(keep=3))
    listed = fs.checkpoints()
    assert [c.name for c in listed] == names[3:5] + ["manual"] + names[5:]
    assert all(c.auto for c in listed if c.name != "manual")
    assert len(set(names)) == len(names)
    fs.restore(names[3])
    assert json.loads(fs.read_bytes("/autosave.json")) == {"turn": 3}
    assert fs.check().ok


def test_diff_between_checkpoints_and_the_tree(fs):
    _fill(fs)
    fs.checkpoint("a")
    with fs.open("/save/big.bin", "r+b") as f:  # in place: no digest stored until computed
        f.write(b"!")
    fs.remove("/empty.txt")
    fs.write_bytes("/added", b"+")
    fs.checkpoint("b")
    expected = [("+", "/added"), ("-", "/empty.txt"), ("M", "/save/big.bin")]
    assert fs.diff("a", "b") == expected
    assert fs.diff("a") == expected  # against the tree as it is
    assert fs.diff("b") == []
    assert fs.diff("b", "a") == [("-", "/added"), ("+", "/empty.txt"), ("M", "/save/big.bin")]


def test_whiteouts_over_underlays_are_restored(tmp_path):
    base = str(tmp_path / "base.vfs")
    with VFS(base) as b:
        b.write_bytes("/assets/a.txt", b"A")
        b.write_bytes("/assets/b.txt", b"B")
    with VFS(str(tmp_path / "top.vfs")) as top:
        top.add_underlay(base)
        top.checkpoint("clean")
        top.remove("/assets/a.txt")  # a whiteout in the top
        top.write_bytes("/assets/mod.txt", b"M")
        top.checkpoint("modded")
        top.restore("clean")
        assert top.listdir("/assets") == ["a.txt", "b.txt"]
        top.restore("modded")
        assert top.listdir("/assets") == ["b.txt", "mod.txt"]
        assert not top.exists("/assets/a.txt")
        assert top.check().ok


def test_checkpoint_inside_a_batch_is_part_of_it(fs):
    fs.write_bytes("/f", b"1")
    with pytest.raises(RuntimeError):
        with fs.atomic_batch():
            fs.checkpoint("in-batch")
            fs.write_bytes("/f", b"2")
            raise RuntimeError
    assert fs.checkpoints() == [] and fs.read_bytes("/f") == b"1"
    with fs.atomic_batch():
        fs.write_bytes("/f", b"3")
        fs.checkpoint("kept")
    fs.write_bytes("/f", b"4")
    fs.restore("kept")
    assert fs.read_bytes("/f") == b"3"


def test_checkpoints_travel_with_images(fs):
    files = _fill(fs)
    fs.checkpoint("saved")
    fs.write_bytes("/save/big.bin", b"overwritten")
    image = fs.to_bytes()
    with VFS.from_bytes(image) as copy:
        assert [c.name for c in copy.checkpoints()] == ["saved"]
        copy.restore("saved")
        assert {p: copy.read_bytes(p) for p in files} == files
        assert copy.check(deep=True).ok


def test_check_reports_wrong_checkpoint_reference_counts(fs):
    fs.write_bytes("/a.bin", os.urandom(200_000))
    fs.checkpoint("c")
    fs.close()
    con = sqlite3.connect(fs.db_path)
    con.execute("UPDATE vfs_inodes SET refs = 0 WHERE name = 'a.bin'")
    con.commit()
    con.close()
    with VFS(fs.db_path) as again:
        problems = again.check().problems
    assert problems == ["/a.bin: reference count 0, but 1 file(s) or checkpoint entries read "
                        "its chunks"]


@pytest.mark.parametrize("damage", [
    "UPDATE vfs_checkpoint_inodes SET kind = 9 WHERE name = 'big.bin'",
    "UPDATE vfs_checkpoint_inodes SET parent = X'00ff' WHERE name = 'big.bin'",
    "UPDATE vfs_checkpoint_inodes SET parent = '/../x' WHERE name = 'big.bin'",
    "UPDATE vfs_checkpoint_inodes SET name = 'a/b' WHERE name = 'big.bin'",
    "UPDATE vfs_checkpoint_inodes SET content = 999999 WHERE name = 'big.bin'",
    "UPDATE vfs_checkpoint_inodes SET size = -1 WHERE name = 'big.bin'",
    "UPDATE vfs_checkpoint_inodes SET data = 'text' WHERE name = 'slot1.json'",
    "UPDATE vfs_checkpoint_inodes SET parent = '/nowhere' WHERE name = 'big.bin'",
    "UPDATE vfs_checkpoints SET created_ns = 'yesterday'",
    # A holder counting fewer readers than the checkpoint has: a restore would delete it.
    "UPDATE vfs_inodes SET refs = 0 WHERE name = 'big.bin'",
])
def test_damaged_checkpoint_rows_are_corruption_and_lose_no_live_file(tmp_path, damage):
    path = str(tmp_path / "d.vfs")
    with VFS(path) as fs:
        files = _fill(fs)
        fs.checkpoint("c")
        fs.write_bytes("/live-only", b"keep me")
    con = sqlite3.connect(path)
    con.execute(damage)
    con.commit()
    con.close()
    with VFS(path) as fs:
        before = _snapshot(fs)
        with pytest.raises(CorruptionError):
            fs.checkpoints() if "vfs_checkpoints " in damage else fs.restore("c")
        assert _snapshot(fs) == before
        assert fs.read_bytes("/live-only") == b"keep me"
        assert {p: fs.read_bytes(p) for p in files} == files


def test_every_fixture_upgrades_and_takes_checkpoints(tmp_path):
    fixtures = sorted(p for p in FIXTURES.glob("*.db"))
    assert len(fixtures) >= 6
    for fixture in fixtures:
        path = str(tmp_path / fixture.name)
        shutil.copy(fixture, path)
        with VFS(path) as fs:
            before = _snapshot(fs)
            fs.checkpoint("upgraded")
            for p in [p for p, v in before.items() if v[0] == "file"]:
                fs.remove(p)
            fs.restore("upgraded")
            assert _snapshot(fs) == before, fixture.name
            report = fs.check(deep=True)
            assert report.ok, (fixture.name, report.problems)
        con = sqlite3.connect(path)
        try:
            rev = con.execute("SELECT version_num FROM vfs_alembic_version").fetchone()[0]
        finally:
            con.close()
        assert rev == dbmod.head_revision()


def test_downgrade_gives_back_checkpoint_references(tmp_path):
    from alembic import command
    path = str(tmp_path / "down.vfs")
    data = os.urandom(300_000)
    with VFS(path) as fs:
        fs.write_bytes("/kept.bin", data)
        fs.write_bytes("/gone.bin", os.urandom(300_000))
        fs.checkpoint("c")
        fs.remove("/gone.bin")  # now held by the checkpoint alone
    dbmod.run_alembic_on_file(path, lambda conn: command.downgrade(dbmod.alembic_config(conn),
                                                                   "0004"), destination="0004")
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "vfs_checkpoints" not in tables
        assert con.execute("SELECT count(*) FROM vfs_inodes WHERE parent IS NULL").fetchone()[0] == 0
    finally:
        con.close()
    with VFS(path) as fs:  # up again
        assert fs.read_bytes("/kept.bin") == data and hashlib.sha256(data).hexdigest() == \
            fs.digest("/kept.bin")
        assert fs.check(deep=True).ok and fs.checkpoints() == []


# -- on every backend: SQLite files and PostgreSQL trees ------------------------------------
def test_checkpoint_restore_drop_on_every_backend(opener):
    with opener() as fs:
        files = _fill(fs)
        before = _snapshot(fs)
        fs.checkpoint("start")
        with fs.open("/save/big.bin", "r+b") as f:
            f.write(b"patched")
        fs.remove("/save/mid.bin")
        fs.write_bytes("/new", b"new")
        assert fs.diff("start") == [("+", "/new"), ("M", "/save/big.bin"),
                                    ("-", "/save/mid.bin")]
        with fs.open_checkpoint("start") as view:
            assert _snapshot(view) == before
        assert fs.checkpoints()[0].alone_bytes >= len(files["/save/mid.bin"])
        fs.restore("start")
        assert _snapshot(fs) == before
        fs.checkpoint(keep=1)
        fs.checkpoint(keep=1)
        assert [c.name for c in fs.checkpoints()] == ["start", "auto-3"]
        with pytest.raises(AlreadyExistsError):
            fs.checkpoint("start")
        with pytest.raises(NotFoundError):
            fs.restore("missing")
        report = fs.check(deep=True)
        assert report.ok, report.problems
        fs.drop_checkpoint("start")
        fs.drop_checkpoint("auto-3")
        assert fs.checkpoints() == []
        assert {p: fs.read_bytes(p) for p in files} == files
        assert fs.check(deep=True).ok


def test_a_checkpoint_taken_during_writes_is_one_committed_state(opener):
    """A writer (its own VFS, connection and thread) saves K files together in each batch,
    all holding the batch's number; checkpoints taken meanwhile must each hold one batch
    whole, and must still hold it after the writer has gone on."""
    import threading
    import time

    k, rounds = 6, 15
    with opener() as fs:
        with fs.atomic_batch():
            for j in range(k):
                fs.write_bytes(f"/save/part{j}.bin", b"0" * (j * 7000))
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                with opener() as w:
                    n = 0
                    while not stop.is_set() or n < 5:
                        n += 1
                        while True:  # a batch that meets a checkpoint's rows (PostgreSQL's
                            try:     # SERIALIZABLE) is rolled back whole: run it again
                                with w.atomic_batch():
                                    for j in range(k):
                                        # Sizes over and under the inline limit: both kinds.
                                        w.write_bytes(
                                            f"/save/part{j}.bin",
                                            str(n).encode() * (j * 7000 // len(str(n)) + 1))
                                break
                            except BusyError:
                                continue
                        time.sleep(0.002)  # SQLite's busy wait is not fair: let others in
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        seen: dict[str, set[bytes]] = {}
        try:
            for i in range(rounds):
                name = fs.checkpoint(f"c{i}")
                with fs.open_checkpoint(name) as view:
                    seen[name] = {view.read_bytes(f"/save/part{j}.bin")[:1] for j in range(1, k)}
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        for name, firsts in seen.items():
            assert len(firsts) == 1, (name, firsts)  # one batch, never half of two
        # After the writer went on, every checkpoint still holds what it held.
        for name, firsts in seen.items():
            with fs.open_checkpoint(name) as view:
                assert {view.read_bytes(f"/save/part{j}.bin")[:1]
                        for j in range(1, k)} == firsts
        report = fs.check(deep=True)
        assert report.ok, report.problems


def test_command_line(tmp_path):
    """The real entry point: checkpoint, checkpoints, diff between checkpoints, restore,
    drop-checkpoint, and their one-line errors."""
    import subprocess
    import sys

    def run(*args: str) -> tuple[int, str, str]:
        proc = subprocess.run([sys.executable, "-m", "vfs_orm", *args], capture_output=True,
                              text=True, timeout=120)
        return proc.returncode, proc.stdout, proc.stderr

    image = str(tmp_path / "save.vfs")
    with VFS(image) as fs:
        fs.write_bytes("/save/slot1.json", b'{"hp": 10}')
    assert run("checkpoint", image, "before-boss") == (0, "before-boss\n", "")
    with VFS(image) as fs:
        fs.write_bytes("/save/slot1.json", b'{"hp": 0}')
        fs.write_bytes("/save/ghost.json", b"{}")
    code, out, _ = run("checkpoint", image, "--keep", "2")
    assert code == 0 and out.strip().startswith("auto-")
    auto = out.strip()
    code, out, _ = run("checkpoints", image)
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["before-boss", auto]
    assert "1 files" in out and "(auto)" in out
    code, out, _ = run("checkpoints", image, "--json")
    assert code == 0 and [c["name"] for c in json.loads(out)] == ["before-boss", auto]
    code, out, _ = run("diff", image, "-c", "before-boss", "-c", auto)
    assert code == 1 and out.splitlines() == ["+ /save/ghost.json", "M /save/slot1.json"]
    assert run("diff", image, "-c", auto)[:2] == (0, "")
    assert run("restore", image, "before-boss")[0] == 0
    with VFS(image) as fs:
        assert fs.read_bytes("/save/slot1.json") == b'{"hp": 10}'
        assert not fs.exists("/save/ghost.json")
    code, _, err = run("restore", image, "nope")
    assert code == 1 and "no such checkpoint" in err and "Traceback" not in err
    code, _, err = run("checkpoint", image, "before-boss")
    assert code == 1 and "exists" in err and "Traceback" not in err
    assert run("drop-checkpoint", image, auto)[0] == 0
    code, out, _ = run("checkpoints", image)
    assert [line.split("\t")[0] for line in out.splitlines()] == ["before-boss"]
    code, _, err = run("checkpoints", str(tmp_path / "missing.vfs"))
    assert code == 1 and "no such image" in err


CHECKPOINTER = """
import sys
from vfs_orm import VFS
target, tree, run = sys.argv[1], sys.argv[2] or None, sys.argv[3]
with VFS(target, tree=tree) as fs:
    n = 0
    while True:
        n += 1
        fs.restore("a" if n % 2 else "b")
        fs.checkpoint(f"tmp-{run}-{n}")
        if n > 2:
            fs.drop_checkpoint(f"tmp-{run}-{n - 2}")
        if n == 1:
            print("ready", flush=True)
"""


def _digests(fs: VFS) -> dict[str, object]:
    out: dict[str, object] = {}
    for top, dirs, files in fs.walk("/"):
        for d in dirs:
            out[f"{top.rstrip('/')}/{d}"] = "dir"
        for f in files:
            out[f"{top.rstrip('/')}/{f}"] = fs.digest(f"{top.rstrip('/')}/{f}")
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_during_checkpoint_and_restore_leaves_everything_as_before(tmp_path, request,
                                                                           backend):
    import signal
    import subprocess
    import sys
    import time

    if backend == "sqlite":
        target, tree, files, kills = str(tmp_path / "crash.vfs"), None, 1000, 10
    else:
        target, tree = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_tree")
        files, kills = 400, 6

    def opened() -> VFS:
        return VFS(target) if tree is None else VFS(target, tree=tree)

    rnd = random.Random(32)
    with opened() as fs:
        with fs.atomic_batch():
            for i in range(files):
                fs.write_bytes(f"/a/d{i % 30}/f{i}.txt", b"a%d" % i)
            fs.write_bytes("/a/big.bin", rnd.randbytes(400_000))
        fs.checkpoint("a")
        fs.rmtree("/a")
        with fs.atomic_batch():
            for i in range(files):
                fs.write_bytes(f"/b/e{i % 40}/g{i}.bin", rnd.randbytes(20_000 + i))
        fs.checkpoint("b")
        states = {}
        for name in ("a", "b"):
            fs.restore(name)
            states[name] = _digests(fs)
    for run in range(kills):
        child = subprocess.Popen([sys.executable, "-c", CHECKPOINTER, target, tree or "",
                                  str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rnd.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if tree is None:
            con = sqlite3.connect(target)
            try:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            finally:
                con.close()
        with opened() as fs:
            assert _digests(fs) in (states["a"], states["b"])  # all or nothing
            names = [c.name for c in fs.checkpoints()]
            assert names[:2] == ["a", "b"] and all(n.startswith("tmp-") for n in names[2:])
            for name in names:  # each still holds one whole state (by digest)
                assert fs.diff("a", name) == [] or fs.diff("b", name) == [], name
            report = fs.check()
            assert report.ok, report.problems


def test_fuzzed_checkpoint_rows_are_corruption_or_harmless_never_a_lost_file(tmp_path):
    """Random values (wrong types, out of range, other rows' ids) written into random
    columns of random checkpoint rows: restore, listing, diff and open either work or raise
    CorruptionError, and the live tree is never touched by a refused restore."""
    src = str(tmp_path / "src.vfs")
    with VFS(src) as fs:
        _fill(fs)
        fs.checkpoint("c")
        fs.write_bytes("/live-only", b"keep me")
    cols = ["id", "parent", "name", "kind", "mode", "size", "chunk_size", "ctime_ns",
            "mtime_ns", "content", "fparent", "fname", "digest", "codec", "sums", "data"]
    rnd = random.Random(7)
    values = [None, -1, 0, 1, 2, 3, 7, 2**40, 2**62, "", "/", "x", "/save", "/save/../..",
              "a\x00b", b"", b"\xff" * 9, 1.5, "text"]
    outcomes = set()
    for round_ in range(60):
        path = str(tmp_path / f"f{round_}.vfs")
        shutil.copy(src, path)
        con = sqlite3.connect(path)
        rows = [r[0] for r in con.execute("SELECT rowid FROM vfs_checkpoint_inodes")]
        for _ in range(rnd.randint(1, 3)):
            col, val = rnd.choice(cols), rnd.choice(values)
            try:
                con.execute(f"UPDATE vfs_checkpoint_inodes SET {col} = ? WHERE rowid = ?",
                            (val, rnd.choice(rows)))
            except sqlite3.IntegrityError:
                pass  # NOT NULL or a duplicate key: SQLite itself refuses that damage
        con.commit()
        con.close()
        with VFS(path) as fs:
            before = _snapshot(fs)
            for op in (fs.checkpoints, lambda: fs.diff("c"),
                       lambda: fs.open_checkpoint("c").close(), lambda: fs.restore("c")):
                try:
                    op()
                    outcomes.add("ok")
                except CorruptionError:
                    outcomes.add("corrupt")
                    if op is not fs.checkpoints:
                        assert _snapshot(fs) == before  # a refused restore changed nothing
    assert outcomes == {"ok", "corrupt"}


def _history(fs: VFS) -> list[tuple[str, bool, int, dict[str, object]]]:
    """Each checkpoint (name, auto, files, its tree by digest), and the tree itself."""
    out = []
    for c in fs.checkpoints():
        with fs.open_checkpoint(c.name) as view:
            out.append((c.name, c.auto, c.files, _digests(view)))
    return out + [("", False, 0, _digests(fs))]


def _make_history(fs: VFS) -> None:
    rnd = random.Random(5)
    fs.write_bytes("/save/world.bin", rnd.randbytes(500_000))
    fs.write_bytes("/save/slot.json", b'{"turn": 1}')
    fs.checkpoint("turn-1")
    fs.write_bytes("/save/slot.json", b'{"turn": 2}')
    fs.mkdir("/save/screens")
    fs.checkpoint()
    fs.remove("/save/slot.json")
    fs.write_bytes("/save/screens/1.png", rnd.randbytes(90_000))


def test_copy_between_packs_carries_checkpoints_or_leaves_them_out(tmp_path):
    import subprocess
    import sys

    src, dst, bare = (str(tmp_path / n) for n in ("src.vfs", "dst.vfs", "bare.vfs"))
    with VFS(src) as fs:
        _make_history(fs)
        expected = _history(fs)
    proc = subprocess.run([sys.executable, "-m", "vfs_orm", "copy", src, dst, "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with VFS(dst) as fs:
        assert _history(fs) == expected
        # The unchanged 500 KB world file is stored once for both checkpoints and the tree.
        assert _chunk_bytes(dst) < 500_000 + 90_000 + 65536
        assert fs.check(deep=True).ok
    proc = subprocess.run([sys.executable, "-m", "vfs_orm", "copy", src, bare, "-q",
                           "--no-checkpoints"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with VFS(bare) as fs:
        assert fs.checkpoints() == [] and _history(fs) == expected[-1:]


def test_postgresql_images_and_copies_carry_checkpoints(pg_url, pg_tree, tmp_path):
    with VFS(pg_url, tree=pg_tree) as fs:
        _make_history(fs)
        expected = _history(fs)
        image = fs.to_bytes()  # a SQLite pack of the tree, with its checkpoints
    with VFS.from_bytes(image) as pack:
        assert _history(pack) == expected
        assert pack.check(deep=True).ok
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.checkpoint("to-be-replaced")
        fs.deserialize_iter(image)  # the pack's history replaces the tree's
        assert _history(fs) == expected
        assert fs.check(deep=True).ok


@pytest.mark.parametrize("options", [{"case_insensitive": True}, {"compression": "zlib"}, {}],
                         ids=["case-insensitive", "zlib", "memory"])
def test_in_memory_compressed_and_case_insensitive_trees(options):
    with VFS(":memory:", **options) as fs:
        big = os.urandom(300_000)
        fs.write_bytes("/Dir/File.TXT", b"x" * 100)
        fs.write_bytes("/Dir/big.bin", big)
        fs.checkpoint("a")
        fs.write_bytes("/Dir/File.TXT", b"y")
        fs.remove("/Dir/big.bin")
        fs.restore("a")
        name = "/dir/FILE.txt" if options.get("case_insensitive") else "/Dir/File.TXT"
        assert fs.read_bytes(name) == b"x" * 100 and fs.read_bytes("/Dir/big.bin") == big
        with fs.open_checkpoint("a") as view:
            assert view.listdir("/Dir") == ["File.TXT", "big.bin"]
        report = fs.check(deep=True)
        assert report.ok, report.problems
