"""Chunk-level copy on write (format 0014): a file written in place while a checkpoint or a
copy reads its chunks writes only the chunks it touches, to an "overlay" (a hidden row whose
base is the shared chunks, frozen from then on). Every reader keeps what it read; dropping
and deleting frees exactly what nobody reads; check() counts overlays among their base's
readers; the downgrade gives every overlay its chunks back."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vfs_orm import VFS, CorruptionError
from vfs_orm.backends.sqlite import schema as dbmod

FIXTURES = Path(__file__).parent / "fixtures"
CS = 65536


def _stored(fs: VFS) -> int:
    report = fs.check(deep=True)
    assert report.ok, report.problems
    return int(report.counts["stored_bytes"])


def _write_at(fs: VFS, path: str, pos: int, data: bytes, state: dict[str, bytearray]) -> None:
    with fs.open(path, "r+b") as f:
        f.seek(pos)
        f.write(data)
    buf = state[path]
    if len(buf) < pos:
        buf.extend(bytes(pos - len(buf)))
    buf[pos:pos + len(data)] = data


def test_first_write_in_place_after_a_checkpoint_copies_no_shared_chunk(opener):
    """The issue's case: 4 KiB written into a checkpointed 640 KiB file adds one chunk (the
    one written), not a copy of the file; the checkpoint still reads the old bytes."""
    data = random.Random(1).randbytes(10 * CS)
    with opener() as fs:
        fs.write_bytes("/save.bin", data)
        fs.checkpoint("before")
        stored = _stored(fs)
        with fs.open("/save.bin", "r+b") as f:
            f.seek(3 * CS + 100)
            f.write(b"w" * 4096)
        grown = _stored(fs) - stored
        assert CS <= grown < 2 * CS, grown  # one chunk, not ten
        new = data[:3 * CS + 100] + b"w" * 4096 + data[3 * CS + 4196:]
        assert fs.read_bytes("/save.bin") == new
        with fs.open_checkpoint("before") as view:
            assert view.read_bytes("/save.bin") == data
        # Written again: the same overlay, nothing more shared.
        with fs.open("/save.bin", "r+b") as f:
            f.seek(3 * CS + 200)
            f.write(b"v")
        assert _stored(fs) - stored == grown
        fs.restore("before")
        assert fs.read_bytes("/save.bin") == data
        fs.drop_checkpoint("before")
        assert fs.read_bytes("/save.bin") == data
        assert _stored(fs) == len(data)


def test_generations_each_read_what_they_held_and_free_exactly(opener):
    rnd = random.Random(7)
    with opener() as fs:
        state = {"/a": bytearray(rnd.randbytes(6 * CS + 123)),
                 "/b": bytearray(rnd.randbytes(3 * CS))}
        for path, buf in state.items():
            fs.write_bytes(path, bytes(buf))
        held: dict[str, dict[str, bytes]] = {}
        for gen in range(6):
            name = f"g{gen}"
            fs.checkpoint(name)
            held[name] = {p: bytes(b) for p, b in state.items()}
            for _ in range(4):
                path = rnd.choice(sorted(state))
                pos = rnd.randrange(0, len(state[path]) + CS)
                _write_at(fs, path, pos, rnd.randbytes(rnd.choice([1, 4096, CS + 7])), state)
            if gen == 3:
                fs.copy("/a", "/c")  # reads /a's overlay
                state["/c"] = bytearray(state["/a"])
                _write_at(fs, "/c", 10, b"copy", state)
                _write_at(fs, "/a", 20, b"orig", state)  # an overlay read by two: copied
        for path, buf in state.items():
            assert fs.read_bytes(path) == bytes(buf), path
            assert fs.digest(path) == hashlib.sha256(buf).hexdigest()
        for name, files in held.items():
            with fs.open_checkpoint(name) as view:
                for path, data in files.items():
                    assert view.read_bytes(path) == data, (name, path)
        assert fs.check(deep=True).ok
        order = list(held)
        rnd.shuffle(order)
        fs.restore(order[0])
        for path, data in held[order[0]].items():
            assert fs.read_bytes(path) == data
        _write_at(fs, "/a", 5, b"after restore", {"/a": bytearray(held[order[0]]["/a"])})
        for name in order:
            fs.drop_checkpoint(name)
            report = fs.check(deep=True)
            assert report.ok, (name, report.problems)
            for other in order[order.index(name) + 1:]:
                with fs.open_checkpoint(other) as view:
                    assert view.read_bytes("/b") == held[other]["/b"]
        for path in fs.listdir("/"):
            fs.remove(path)
        assert _stored(fs) == 0


def test_a_file_checkpointed_between_writes_stores_itself_once_all_are_dropped(opener):
    """Each checkpoint's first write costs the chunks written since the file's overlay was
    made (copied to the new overlay), never the whole file; once the checkpoints are gone,
    the overlay folds back and what is stored is the file, once."""
    rnd = random.Random(11)
    data = bytearray(rnd.randbytes(16 * CS))
    with opener() as fs:
        fs.write_bytes("/save", bytes(data))
        for gen in range(5):
            fs.checkpoint(f"g{gen}")
            before = _stored(fs)
            _write_at(fs, "/save", rnd.randrange(16) * CS + 5, b"turn", {"/save": data})
            assert _stored(fs) - before <= (gen + 1) * CS, gen
        for gen in range(5):
            fs.drop_checkpoint(f"g{gen}")
        assert fs.read_bytes("/save") == data
        assert _stored(fs) == len(data)


def test_truncate_replace_rename_remove_of_an_overlaid_file(opener):
    data = random.Random(3).randbytes(5 * CS)
    with opener() as fs:
        fs.write_bytes("/f", data)
        fs.checkpoint("c")
        _write_at(fs, "/f", CS + 1, b"x", {"/f": bytearray(data)})
        with fs.open("/f", "r+b") as f:
            f.truncate(2 * CS + 5)  # the chunks past the cut must not come back
            f.truncate(4 * CS)
        live = bytearray(data[:2 * CS + 5])
        live[CS + 1:CS + 2] = b"x"
        live.extend(bytes(4 * CS - len(live)))
        assert fs.read_bytes("/f") == bytes(live)
        fs.rename("/f", "/g")
        assert fs.read_bytes("/g") == bytes(live)
        fs.write_bytes("/g", b"whole")  # replaced whole
        assert fs.read_bytes("/g") == b"whole"
        with fs.open_checkpoint("c") as view:
            assert view.read_bytes("/f") == data
        fs.remove("/g")
        fs.restore("c")
        assert fs.read_bytes("/f") == data
        assert fs.check(deep=True).ok
        fs.drop_checkpoint("c")
        fs.remove("/f")
        assert _stored(fs) == 0


def _poke(fs: VFS, path: str, pos: int) -> None:
    with fs.open(path, "r+b") as f:
        f.seek(pos)
        f.write(b"p" * 100)


# Histories of one tree: steps, then checkpoints dropped in an order.
_HISTORIES = {
    "in place": (["k1", "poke /a 10"], ["k1"]),
    "in place, removed": (["k1", "poke /a 10", "rm /a"], ["k1"]),
    "replaced whole": (["k1", "whole /a"], ["k1"]),
    "two generations, older first": (
        ["k1", "poke /a 10", "k2", "poke /a 20", "poke /a 70000"], ["k1", "k2"]),
    "two generations, newer first": (
        ["k1", "poke /a 10", "k2", "poke /a 20", "poke /a 70000"], ["k2", "k1"]),
    "a copy written": (["cp /a /b", "k1", "poke /b 10", "rm /a", "k2", "poke /b 140000"],
                       ["k1", "k2"]),
    "truncated between": (["k1", "poke /a 10", "k2", "poke /a 140000", "cut /a 100000"],
                          ["k2", "k1"]),
}


@pytest.mark.parametrize("history", sorted(_HISTORIES))
def test_what_a_checkpoint_alone_holds_is_what_dropping_it_frees(opener, history):
    """checkpoints()' ``alone_bytes`` of each checkpoint, as it is dropped, is exactly the
    bytes that go: with overlays (format 0014) these include the frozen chunks an overlay
    overrides, freed when their last other reader goes."""
    steps, drops = _HISTORIES[history]
    rnd = random.Random(7)
    with opener() as fs:
        fs.write_bytes("/a", rnd.randbytes(2 * CS + 7))  # 3 chunks, no inline bytes
        for step in steps:
            verb, *args = step.split()
            if verb.startswith("k"):
                fs.checkpoint(verb)
            elif verb == "poke":
                _poke(fs, args[0], int(args[1]))
            elif verb == "rm":
                fs.remove(args[0])
            elif verb == "whole":
                fs.write_bytes(args[0], rnd.randbytes(CS + 5000))
            elif verb == "cp":
                fs.copy(args[0], args[1])
            else:
                with fs.open(args[0], "r+b") as f:
                    f.truncate(int(args[1]))
        for name in drops:
            alone = {c.name: c.alone_bytes for c in fs.checkpoints()}[name]
            before = _stored(fs)
            fs.drop_checkpoint(name)
            assert before - _stored(fs) == alone, (name, before, alone)


def test_every_read_path_reads_through_an_overlay(tmp_path):
    path = str(tmp_path / "r.vfs")
    data = bytearray(random.Random(5).randbytes(4 * CS + 999))
    with VFS(path) as fs:
        fs.write_bytes("/f", bytes(data))
        with fs.open("/f", "rb") as early:  # opened before the first write
            assert early.read(10) == data[:10]
            fs.checkpoint("c")
            _write_at(fs, "/f", 2 * CS - 3, b"ABCDEF", {"/f": data})
            early.seek(2 * CS - 5)
            assert early.read(10) == data[2 * CS - 5:2 * CS + 5]
    with VFS(path, read_only=True) as fs:  # incremental BLOB reads: the key, else the base
        with fs.open("/f", "rb") as f:
            for at in (0, CS - 2, 2 * CS - 4, 3 * CS + 17, 4 * CS + 990):
                f.seek(at)
                assert f.read(50) == data[at:at + 50], at
            f.seek(0)
            assert f.read() == data
        assert fs.read_bytes("/f") == data
        assert fs.digest("/f") == hashlib.sha256(data).hexdigest()
        with fs.open_checkpoint("c") as view, view.open("/f", "rb") as f:
            f.seek(2 * CS - 4)
            assert f.read(8) != data[2 * CS - 4:2 * CS + 4]
    with VFS(path) as fs, fs.open("/f", "r+b") as f:  # the query path
        f.seek(2 * CS - 4)
        assert f.read(8) == data[2 * CS - 4:2 * CS + 4]


def _sql(path: str, query: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_forged_bases_are_reported_and_never_read_as_the_file(tmp_path):
    """A base column is untrusted like every stored value: a forged one is found by check(),
    a base of the wrong type is a CorruptionError on read, and the checkpoint and the other
    files read what they hold."""
    path = str(tmp_path / "h.vfs")
    data, other = random.Random(8).randbytes(3 * CS), random.Random(9).randbytes(3 * CS)
    with VFS(path) as fs:
        fs.write_bytes("/f", data)
        fs.write_bytes("/other", other)
        fs.checkpoint("c")
        _write_at(fs, "/f", 1, b"x", {"/f": bytearray(data)})
    (other_id,), = _sql(path, "SELECT id FROM vfs_inodes WHERE name = 'other'")
    (overlay,), = _sql(path, "SELECT id FROM vfs_inodes WHERE parent IS NULL AND base IS NOT NULL")
    for forged, expect in ((f"UPDATE vfs_inodes SET base = {other_id} WHERE id = {overlay}",
                            "read"),
                           (f"UPDATE vfs_inodes SET base = {overlay} WHERE id = {overlay}",
                            "read"),
                           ("UPDATE vfs_inodes SET base = 'x' WHERE name = 'f'", None)):
        broken = str(tmp_path / "broken.vfs")
        shutil.copy(path, broken)
        con = sqlite3.connect(broken)
        con.execute(forged)
        con.commit()
        con.close()
        with VFS(broken) as fs:
            report = fs.check()
            assert not report.ok
            if expect is not None:
                assert any(expect in p for p in report.problems), report.problems
            try:
                got = fs.read_bytes("/f")
            except CorruptionError:
                pass
            else:
                assert got[:1] == data[:1]
            assert fs.read_bytes("/other") == other
            with fs.open_checkpoint("c") as view:
                assert view.read_bytes("/f") == data


def test_downgrade_gives_every_overlay_its_chunks(tmp_path):
    from alembic import command
    path = str(tmp_path / "down.vfs")
    data = random.Random(4).randbytes(4 * CS)
    live = bytearray(data)
    with VFS(path) as fs:
        fs.write_bytes("/f", data)
        fs.copy("/f", "/copy")
        fs.checkpoint("c")
        _write_at(fs, "/f", CS + 9, b"new", {"/f": live})
        _write_at(fs, "/copy", 3, b"cp", {"/copy": bytearray(data)})
        assert _sql(path, "SELECT count(*) FROM vfs_inodes WHERE base IS NOT NULL")[0][0] > 0
    dbmod.run_alembic_on_file(path, lambda conn: command.downgrade(dbmod.alembic_config(conn),
                                                                   "0013"), destination="0013")
    columns = {r[1] for r in _sql(path, "PRAGMA table_info(vfs_inodes)")}
    assert "base" not in columns
    # 0013's rule: a row that reads another's chunks has none of its own.
    assert _sql(path, "SELECT count(*) FROM vfs_inodes AS i WHERE i.content IS NOT NULL AND "
                      "EXISTS (SELECT 1 FROM vfs_chunks AS c WHERE c.inode_id = i.id)") == [(0,)]
    with VFS(path) as fs:  # up again
        assert fs.read_bytes("/f") == live
        copy = bytearray(data)
        copy[3:5] = b"cp"
        assert fs.read_bytes("/copy") == copy
        with fs.open_checkpoint("c") as view:
            assert view.read_bytes("/f") == data and view.read_bytes("/copy") == data
        report = fs.check(deep=True)
        assert report.ok, report.problems


def test_the_0011_fixture_upgrades_and_writes_in_place_without_copying(tmp_path):
    """A database an older release wrote (shared copies, one written in place, a checkpoint
    holding both) upgrades, and its first writes in place then share chunks."""
    path = str(tmp_path / "old.db")
    shutil.copy(FIXTURES / "format_0011.db", path)
    with VFS(path) as fs:
        names = [c.name for c in fs.checkpoints()]
        assert names
        files = {p: fs.read_bytes(p) for p in fs.glob("/**") if fs.isfile(p)}
        big = max(files, key=lambda p: len(files[p]))
        stored = _stored(fs)
        with fs.open(big, "r+b") as f:
            f.write(b"patched")
        assert _stored(fs) - stored < 2 * CS
        with fs.open_checkpoint(names[0]) as view:
            assert view.read_bytes(big) != fs.read_bytes(big)
        fs.restore(names[0])
        assert fs.check(deep=True).ok


def test_postgresql_downgrade_gives_every_overlay_its_chunks(pg_url, pg_tree):
    from tests.test_postgresql import downgrade_tree
    data = random.Random(6).randbytes(4 * CS)
    live = bytearray(data)
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/f", data)
        fs.checkpoint("c")
        _write_at(fs, "/f", 2 * CS + 1, b"pg", {"/f": live})
    downgrade_tree(pg_url, pg_tree, "0013")
    with VFS(pg_url, tree=pg_tree) as fs:  # up again on its first writable open
        assert fs.read_bytes("/f") == live
        with fs.open_checkpoint("c") as view:
            assert view.read_bytes("/f") == data
        report = fs.check(deep=True)
        assert report.ok, report.problems


def test_a_live_file_others_overlay_keeps_its_own_bytes(opener):
    """A copy written in place overlays the original's chunks; when the original's other
    readers go (a checkpoint dropped), its chunks are still its own content: never folded
    into or pruned for the copy's overlay."""
    data = random.Random(12).randbytes(3 * CS)
    with opener() as fs:
        fs.write_bytes("/orig", data)
        fs.checkpoint("c")
        fs.copy("/orig", "/copy")
        copy = bytearray(data)
        _write_at(fs, "/copy", CS + 2, b"mine", {"/copy": copy})
        fs.drop_checkpoint("c")
        assert fs.read_bytes("/orig") == data
        assert fs.read_bytes("/copy") == copy
        _write_at(fs, "/orig", 0, b"o", {"/orig": bytearray(data)})
        fs.remove("/copy")
        assert fs.read_bytes("/orig") == b"o" + data[1:]
        assert fs.check(deep=True).ok
        assert _stored(fs) == len(data)


# -- random histories against a model ----------------------------------------------------------

SMALL = 512  # chunk size: files of a few chunks from a few hundred bytes
FILES = st.sampled_from(["/a", "/b", "/c"])
BYTES = st.binary(min_size=1, max_size=4 * SMALL)


class SharingHistory(RuleBasedStateMachine):
    """Writes whole and in place, truncations, copies, renames, removals, checkpoints taken,
    restored and dropped, in any order: every file and every checkpoint reads as the model
    says, check() finds nothing wrong, and once everything is gone nothing is stored."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile
        self.tmp = tempfile.mkdtemp()
        self.fs = VFS(str(Path(self.tmp) / "h.vfs"), chunk_size=SMALL)
        self.live: dict[str, bytes] = {}
        self.held: dict[str, dict[str, bytes]] = {}
        self.n = 0

    def teardown(self) -> None:
        try:
            for name in list(self.held):
                self.fs.drop_checkpoint(name)
            for path in list(self.live):
                self.fs.remove(path)
            report = self.fs.check(deep=True)
            assert report.ok, report.problems
            assert report.counts["stored_bytes"] == 0, report.counts
        finally:
            self.fs.close()
            shutil.rmtree(self.tmp)

    @rule(path=FILES, data=BYTES)
    def write_whole(self, path: str, data: bytes) -> None:
        self.fs.write_bytes(path, data)
        self.live[path] = data

    @precondition(lambda self: self.live)
    @rule(path=FILES, pos=st.integers(0, 5 * SMALL), data=BYTES)
    def write_in_place(self, path: str, pos: int, data: bytes) -> None:
        if path not in self.live:
            return
        buf = bytearray(self.live[path])
        _write_at(self.fs, path, pos, data, {path: buf})
        self.live[path] = bytes(buf)

    @precondition(lambda self: self.live)
    @rule(path=FILES, size=st.integers(0, 5 * SMALL))
    def truncate(self, path: str, size: int) -> None:
        if path not in self.live:
            return
        with self.fs.open(path, "r+b") as f:
            f.truncate(size)
        old = self.live[path]
        self.live[path] = old[:size] + bytes(max(0, size - len(old)))

    @rule(src=FILES, dst=FILES)
    def copy(self, src: str, dst: str) -> None:
        if src not in self.live or dst in self.live:
            return
        self.fs.copy(src, dst)
        self.live[dst] = self.live[src]

    @rule(src=FILES, dst=FILES)
    def rename(self, src: str, dst: str) -> None:
        if src not in self.live or dst in self.live or src == dst:
            return
        self.fs.rename(src, dst)
        self.live[dst] = self.live.pop(src)

    @rule(path=FILES)
    def remove(self, path: str) -> None:
        if path in self.live:
            self.fs.remove(path)
            del self.live[path]

    @rule()
    def checkpoint(self) -> None:
        self.n += 1
        name = f"k{self.n}"
        self.fs.checkpoint(name)
        self.held[name] = dict(self.live)

    @precondition(lambda self: self.held)
    @rule(pick=st.integers(0, 100))
    def drop(self, pick: int) -> None:
        name = sorted(self.held)[pick % len(self.held)]
        # What checkpoints() says it alone holds is what dropping it frees: the chunks
        # that go, and its entries' inline bytes.
        alone = {c.name: c.alone_bytes for c in self.fs.checkpoints()}[name]
        before = self._stored_chunks()
        inline = self._inline_of(name)
        self.fs.drop_checkpoint(name)
        del self.held[name]
        assert before - self._stored_chunks() + inline == alone, (name, before, inline, alone)

    def _stored_chunks(self) -> int:
        con = sqlite3.connect(str(Path(self.tmp) / "h.vfs"))
        try:
            return int(con.execute("SELECT coalesce(sum(length(data)), 0) FROM vfs_chunks")
                       .fetchone()[0])
        finally:
            con.close()

    def _inline_of(self, name: str) -> int:
        con = sqlite3.connect(str(Path(self.tmp) / "h.vfs"))
        try:
            return int(con.execute(
                "SELECT coalesce(sum(length(e.data)), 0) FROM vfs_checkpoint_inodes e "
                "JOIN vfs_checkpoints c ON c.id = e.checkpoint_id WHERE c.name = ?", (name,))
                .fetchone()[0])
        finally:
            con.close()

    @precondition(lambda self: self.held)
    @rule(pick=st.integers(0, 100))
    def restore(self, pick: int) -> None:
        name = sorted(self.held)[pick % len(self.held)]
        self.fs.restore(name)
        self.live = dict(self.held[name])

    @invariant()
    def everything_reads_as_the_model_says(self) -> None:
        for path, data in self.live.items():
            assert self.fs.read_bytes(path) == data, path
        for name, files in self.held.items():
            with self.fs.open_checkpoint(name) as view:
                for path, data in files.items():
                    assert view.read_bytes(path) == data, (name, path)
        report = self.fs.check()
        assert report.ok, report.problems


SharingHistory.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestSharingHistory = SharingHistory.TestCase
