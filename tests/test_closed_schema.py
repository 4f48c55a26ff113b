"""A save or a mod is data, never code (SPEC §9, the closed schema).

Hostile files are made with plain ``sqlite3``, as a player would: triggers, views, extra tables
and indexes, planner statistics. Every way vfs_orm opens a database refuses them by name before
anything is written, and leaves the file byte for byte as it was; a trigger planted after the
open cannot run either (the authorizer); ``check()`` reports them and ``repair`` removes them.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import vfs_orm
from vfs_orm import VFS, ForeignSchemaError, NotAVFSDatabaseError

FIXTURES = Path(__file__).parent / "fixtures"

#: (statement planting it, name the refusal must give)
PLANTED = [
    ("CREATE TRIGGER wipe AFTER INSERT ON vfs_inodes BEGIN "
     "DELETE FROM vfs_inodes WHERE name = 'player.json'; END", "trigger wipe"),
    ("CREATE TRIGGER swallow BEFORE INSERT ON vfs_inodes BEGIN SELECT RAISE(IGNORE); END",
     "trigger swallow"),
    ("CREATE TRIGGER on_cleanup AFTER DELETE ON vfs_inodes BEGIN "
     "DELETE FROM vfs_inodes WHERE name = 'player.json'; END", "trigger on_cleanup"),
    ("CREATE TRIGGER chunks_upd AFTER UPDATE ON vfs_chunks BEGIN DELETE FROM vfs_chunks; END",
     "trigger chunks_upd"),
    ("CREATE VIEW vfs_files AS SELECT * FROM vfs_inodes", "view vfs_files"),
    ("CREATE TABLE vfs_extra (x)", "table vfs_extra"),
    ("CREATE TABLE notes (x)", "table notes"),
    ("CREATE INDEX ix_planted ON vfs_inodes (size)", "index ix_planted"),
    ("INSERT INTO sqlite_stat1 VALUES ('vfs_inodes', NULL, '1')", "statistics sqlite_stat1"),
]


def _save(path: Path) -> Path:
    with VFS(str(path)) as fs:
        fs.write_text("/player.json", '{"hp": 100}')
        fs.write_bytes("/world/map.bin", bytes(range(256)) * 600)
    return path


def _plant(path: Path, *statements: str) -> bytes:
    con = sqlite3.connect(path)
    if any("sqlite_stat1" in s for s in statements):
        con.execute("ANALYZE")  # creates sqlite_stat1
        con.execute("DELETE FROM sqlite_stat1")
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path.read_bytes()


@pytest.mark.parametrize(("statement", "name"), PLANTED, ids=[n for _, n in PLANTED])
@pytest.mark.parametrize("read_only", [False, True])
def test_every_open_refuses_a_planted_object_by_name(tmp_path, statement, name, read_only):
    path = _save(tmp_path / "save.vfs")
    before = _plant(path, statement)
    with pytest.raises(ForeignSchemaError) as info:
        VFS(str(path), read_only=read_only)
    assert isinstance(info.value, NotAVFSDatabaseError)
    assert name in str(info.value) and name in info.value.objects
    assert path.read_bytes() == before  # untouched: no cleanup, no upgrade, no WAL replay
    with pytest.raises(ForeignSchemaError):  # an image: refused before it lands anywhere
        VFS.from_bytes(before)


def test_images_underlays_and_copies_are_checked(tmp_path):
    hostile = _save(tmp_path / "mod.vfs")
    image = _plant(hostile, PLANTED[0][0])
    with VFS(str(tmp_path / "mine.vfs")) as mine:
        mine.write_text("/player.json", "mine")
        with pytest.raises(ForeignSchemaError):
            mine.deserialize_iter([image[:1000], image[1000:]])
        with pytest.raises(ForeignSchemaError):
            mine.add_underlay(str(hostile), priority=1)
        assert mine.read_text("/player.json") == "mine"
        assert [layer["name"] for layer in mine.list_layers()] == ["local"]
    cli = [sys.executable, "-m", "vfs_orm", "copy", str(hostile), str(tmp_path / "copy.vfs")]
    out = subprocess.run(cli, capture_output=True, text=True)
    assert out.returncode != 0 and "trigger wipe" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_a_trigger_planted_after_open_never_runs(tmp_path):
    """The second wall: another process plants a trigger while the VFS is open; the write
    that would fire it fails (nothing of it runs), and other files are intact."""
    path = _save(tmp_path / "save.vfs")
    with VFS(str(path)) as fs:
        assert fs.read_text("/player.json") == '{"hp": 100}'
        _plant(path, PLANTED[0][0])
        with pytest.raises(ForeignSchemaError):
            fs.write_text("/other.txt", "x")
        assert fs.read_text("/player.json") == '{"hp": 100}'
        assert not fs.exists("/other.txt")
        report = fs.check()
        assert not report.ok and any("trigger wipe" in p for p in report.problems)


def test_check_reports_and_repair_removes(tmp_path):
    path = _save(tmp_path / "save.vfs")
    _plant(path, *(s for s, _ in PLANTED))
    cli = [sys.executable, "-m", "vfs_orm", "check", str(path)]
    out = subprocess.run(cli, capture_output=True, text=True)
    assert out.returncode == 1, out
    for _, name in PLANTED:
        assert f"foreign schema object: {name}" in out.stderr
    repaired = subprocess.run(cli[:4] + ["--repair", str(path)], capture_output=True, text=True)
    assert repaired.returncode == 0, repaired.stderr
    assert sorted(line for line in repaired.stderr.splitlines() if line.startswith("removed")
                  ) == sorted(f"removed {name}" for _, name in PLANTED)
    with VFS(str(path)) as fs:  # opens, every file as it was, writes work
        assert fs.read_text("/player.json") == '{"hp": 100}'
        assert fs.read_bytes("/world/map.bin") == bytes(range(256)) * 600
        fs.write_text("/other.txt", "x")
        assert fs.check().ok
    assert vfs_orm.repair(str(path)) == []


def test_repair_refuses_changed_format_objects(tmp_path):
    """A column added to a vfs_orm table is not foreign: dropping cannot fix it, so repair
    changes nothing and says so."""
    path = _save(tmp_path / "save.vfs")
    before = _plant(path, "ALTER TABLE vfs_inodes ADD COLUMN planted TEXT")
    with pytest.raises(vfs_orm.CorruptionError, match="vfs_inodes"):  # not its revision's shape
        VFS(str(path))
    with pytest.raises(vfs_orm.CorruptionError, match="table vfs_inodes"):
        vfs_orm.repair(str(path))
    assert path.read_bytes() == before


@pytest.mark.parametrize("fixture", ["legacy-seed-format.db", "format_0001.db",
                                     "format_0003.db", "format_0006.db", "format_0007.db",
                                     "format_0008.db", "format_0009.db", "format_0010.db",
                                     "format_0011.db"])
def test_older_formats_are_checked_against_their_own_revision(tmp_path, fixture):
    """A seed-format save or an older revision with a trigger is refused before the upgrade
    (which writes); clean, the same files upgrade as before."""
    path = tmp_path / fixture
    shutil.copy(FIXTURES / fixture, path)
    table = "inodes" if fixture.startswith("legacy") else "vfs_inodes"
    before = _plant(path, f"CREATE TRIGGER t AFTER DELETE ON {table} BEGIN SELECT 1; END")
    with pytest.raises(ForeignSchemaError, match="trigger t"):
        VFS(str(path))
    with pytest.raises(ForeignSchemaError):
        vfs_orm.upgrade(str(path))
    assert path.read_bytes() == before
    assert vfs_orm.repair(str(path)) == ["trigger t"]
    with VFS(str(path)) as fs:
        assert fs.check().ok


_TABLES = ["vfs_inodes", "vfs_chunks", "vfs_layer_manifests", "vfs_alembic_version"]
_EVENTS = ["INSERT", "DELETE", "UPDATE", "UPDATE OF size", "UPDATE OF parent, name"]


def _random_object(rng: random.Random, n: int) -> tuple[str, str]:
    kind = rng.choice(["trigger", "trigger", "view", "table", "index", "stats"])
    table = rng.choice(_TABLES)
    if kind == "trigger":
        when, event = rng.choice(["BEFORE", "AFTER"]), rng.choice(_EVENTS)
        body = rng.choice(["INSERT INTO canary VALUES (1)", "SELECT RAISE(IGNORE)",
                           "DELETE FROM vfs_inodes", "UPDATE vfs_chunks SET data = x''"])
        return (f"CREATE TRIGGER tr{n} {when} {event} ON {table} BEGIN {body}; END",
                f"trigger tr{n}")
    if kind == "view":
        return f"CREATE VIEW v{n} AS SELECT * FROM {table}", f"view v{n}"
    if kind == "table":
        return f"CREATE TABLE x{n} (a, b)", f"table x{n}"
    if kind == "index":
        col = {'vfs_inodes': 'size', 'vfs_chunks': 'idx', 'vfs_layer_manifests': 'role',
               'vfs_alembic_version': 'version_num'}[table]
        return f"CREATE INDEX ix{n} ON {table} ({rng.choice([col, f'1 + {col}'])})", \
            f"index ix{n}"
    return (f"INSERT INTO sqlite_stat1 VALUES ('{table}', NULL, '{rng.randint(1, 10**9)}')",
            "statistics sqlite_stat1")


@pytest.mark.parametrize("seed", range(12))
def test_fuzz_planted_objects_never_fire(tmp_path, seed):
    """Random triggers (every table, every event), views, tables, indexes and statistics in a
    real pack, seeded: none ever fires (the canary stays empty, no file changes), each is
    refused by name, and after an explicit repair the pack reads and writes as before."""
    rng = random.Random(seed)
    path = _save(tmp_path / "pack.vfs")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE canary (x)")
    con.commit()
    con.close()
    planted = [_random_object(rng, n) for n in range(rng.randint(1, 6))]
    before = _plant(path, *(s for s, _ in planted))
    for attempt in (lambda: VFS(str(path)), lambda: VFS(str(path), read_only=True),
                    lambda: VFS.from_bytes(before)):
        with pytest.raises(ForeignSchemaError) as info:
            attempt()
        assert {name for _, name in planted} | {"table canary"} <= set(info.value.objects)
    assert path.read_bytes() == before
    vfs_orm.repair(str(path))
    with VFS(str(path)) as fs:
        fs.write_text("/player.json", "new")
        fs.remove("/world/map.bin")
        assert fs.listdir("/") == ["player.json", "world"] and fs.check().ok


def test_statistics_cannot_steer_hot_paths(tmp_path):
    """Planted sqlite_stat1 rows turn indexed lookups into full scans (measured). The planner
    never sees them: a file holding them is refused until they are removed."""
    path = _save(tmp_path / "pack.vfs")
    _plant(path, "INSERT INTO sqlite_stat1 VALUES "
                 "('vfs_inodes', 'sqlite_autoindex_vfs_inodes_1', '1000000 1000000 1000000')")
    with pytest.raises(ForeignSchemaError, match="statistics sqlite_stat1"):
        VFS(str(path), read_only=True)
    assert vfs_orm.repair(str(path)) == ["statistics sqlite_stat1"]
    with VFS(str(path), read_only=True) as fs:
        raw = fs._uow.raw()
        plan = " ".join(r[3] for r in raw.execute(
            "EXPLAIN QUERY PLAN SELECT name FROM vfs_inodes WHERE parent = ? ORDER BY name",
            ("/world",)))
        assert "SCAN" not in plan, plan


def test_postgresql_tree_with_a_trigger_is_refused(pg_url, pg_tree):
    from sqlalchemy import create_engine

    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_text("/player.json", "{}")
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f'CREATE FUNCTION "{pg_tree}".wipe() RETURNS trigger LANGUAGE plpgsql AS '
                f"$$ BEGIN DELETE FROM \"{pg_tree}\".vfs_inodes WHERE name = 'player.json'; "
                f"RETURN NULL; END $$")
            conn.exec_driver_sql(
                f'CREATE TRIGGER wipe AFTER INSERT ON "{pg_tree}".vfs_inodes '
                f'FOR EACH STATEMENT EXECUTE FUNCTION "{pg_tree}".wipe()')
        for read_only in (False, True):
            with pytest.raises(ForeignSchemaError) as info:
                VFS(pg_url, tree=pg_tree, read_only=read_only)
            assert set(info.value.objects) == {"function wipe", "trigger wipe on vfs_inodes"}
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP TRIGGER wipe ON "{pg_tree}".vfs_inodes')
            conn.exec_driver_sql(f'DROP FUNCTION "{pg_tree}".wipe()')
        with VFS(pg_url, tree=pg_tree) as fs:
            fs.write_text("/other.txt", "x")
            assert fs.read_text("/player.json") == "{}" and fs.check().ok
    finally:
        engine.dispose()
