"""PostgreSQL-specific behaviour: trees, format creation, concurrency, errors. (Everything the
API promises on every backend is in tests/conformance, which runs on PostgreSQL too.)"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from vfs_orm import VFS, ContractError, FormatVersionError, NotFoundError, ReadOnlyError, VFSError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sql(url: str, *statements: str) -> list:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            out = []
            for s in statements:
                res = conn.exec_driver_sql(s)
                out.append(res.fetchall() if res.returns_rows else None)
            return out
    finally:
        engine.dispose()


def test_a_tree_is_a_schema(pg_url, pg_tree):
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/saves/slot1.json", b'{"hp": 3}')
        assert fs.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
        info = fs.info()
        assert info["tree"] == pg_tree and info["files"] == 1 and info["revision"] == info["head"]
    tables, storage, version = _sql(
        pg_url,
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{pg_tree}' "
        f"ORDER BY 1",
        f"SELECT attstorage FROM pg_attribute WHERE attrelid = '\"{pg_tree}\".vfs_chunks'"
        f"::regclass AND attname = 'data'",
        f'SELECT version_num FROM "{pg_tree}".vfs_alembic_version')
    assert [t[0] for t in tables] == ["vfs_alembic_version", "vfs_checkpoint_inodes",
                                      "vfs_checkpoints", "vfs_chunks", "vfs_dictionaries",
                                      "vfs_groups", "vfs_inodes", "vfs_layer_manifests"]
    assert storage == [("e",)]  # STORAGE EXTERNAL: substring() reads only what it needs
    # Room for rows' next versions on their page: saves update in place (HOT), writers in
    # different directories do not meet on index pages.
    assert _sql(pg_url, f"SELECT reloptions FROM pg_class WHERE oid = "
                        f"'\"{pg_tree}\".vfs_inodes'::regclass")[0] == [(["fillfactor=70"],)]
    assert version == [(info["head"],)]
    with VFS(pg_url, tree=pg_tree, read_only=True) as again:
        assert again.read_bytes("/saves/slot1.json") == b'{"hp": 3}'
        with pytest.raises(ReadOnlyError):
            again.write_bytes("/x", b"")


def test_trees_are_separate(pg_url, pg_tree):
    other = pg_tree + "_b"
    try:
        with VFS(pg_url, tree=pg_tree) as a, VFS(pg_url, tree=other) as b:
            a.write_bytes("/f", b"a")
            b.write_bytes("/f", b"b")
            assert (a.read_bytes("/f"), b.read_bytes("/f")) == (b"a", b"b")
            assert a.identity["uuid"] != b.identity["uuid"]
    finally:
        _sql(pg_url, f'DROP SCHEMA IF EXISTS "{other}" CASCADE')


@pytest.mark.parametrize("bad", ["", "Saves", "1st", "a-b", "a;drop table x", 'x"y', "public",
                                 "pg_catalog", "information_schema", "a" * 64, "ü"])
def test_hostile_tree_names_are_refused(pg_url, bad):
    with pytest.raises(ContractError):
        VFS(pg_url, tree=bad)


def test_tree_is_only_for_postgresql(tmp_path):
    with pytest.raises(ContractError):
        VFS(tmp_path / "x.vfs", tree="saves")


def test_read_only_never_creates_a_tree(pg_url, pg_tree):
    with pytest.raises(NotFoundError):
        VFS(pg_url, tree=pg_tree, read_only=True)
    assert _sql(pg_url, f"SELECT count(*) FROM information_schema.schemata "
                        f"WHERE schema_name = '{pg_tree}'")[0] == [(0,)]


def test_a_newer_tree_is_refused_untouched(pg_url, pg_tree):
    VFS(pg_url, tree=pg_tree).close()
    _sql(pg_url, f"UPDATE \"{pg_tree}\".vfs_alembic_version SET version_num = '9999'")
    with pytest.raises(FormatVersionError):
        VFS(pg_url, tree=pg_tree)
    assert _sql(pg_url, f'SELECT version_num FROM "{pg_tree}".vfs_alembic_version')[0] == \
        [("9999",)]


def test_hostile_paths_are_data(pg_url, pg_tree):
    names = ["'; DROP TABLE vfs_inodes; --", "%s", "%(x)s", "$1", "a\\b", "ünï ☃", "*", "[x]"]
    with VFS(pg_url, tree=pg_tree) as fs:
        for n in names:
            fs.write_bytes(f"/d/{n}", n.encode())
        assert fs.listdir("/d") == sorted(names)
        assert fs.glob("/d/*%*") == sorted(f"/d/{n}" for n in names if "%" in n)
        assert fs.glob("/d/[[]x]") == ["/d/[x]"]
        for n in names:
            assert fs.read_bytes(f"/d/{n}") == n.encode()
        fs.describe(name="'); DROP SCHEMA x; --", description="%s %(a)s")
        assert fs.identity["name"] == "'); DROP SCHEMA x; --"


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_concurrent_writers_lose_no_update(pg_url, pg_tree):
    """8 processes x 200 read-modify-write increments of one counter file end at 1,600:
    batches are SERIALIZABLE transactions; two that read and write one file at once cannot
    both commit: the second fails whole with BusyError (nothing of it lands) and runs
    again."""
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/counter", b"0")
    code = """
        import random, sys, time
        from vfs_orm import VFS, BusyError
        conflicts = 0
        with VFS(sys.argv[1], tree=sys.argv[2]) as fs:
            for _ in range(200):
                while True:
                    try:
                        with fs.atomic_batch():
                            n = int(fs.read_bytes("/counter"))
                            fs.write_bytes("/counter", str(n + 1).encode())
                        break
                    except BusyError:
                        conflicts += 1
                        time.sleep(random.random() * 0.01)
        print("done", conflicts)
    """
    children = [_child(code, pg_url, pg_tree) for _ in range(8)]
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-2000:]
        assert out.split()[0] == "done"
    with VFS(pg_url, tree=pg_tree) as fs:
        assert fs.read_bytes("/counter") == b"1600"
        assert fs.check().ok


def test_two_processes_create_one_tree(pg_url, pg_tree):
    code = """
        import sys
        from vfs_orm import VFS
        with VFS(sys.argv[1], tree=sys.argv[2]) as fs:
            fs.write_bytes("/" + sys.argv[3], b"x")
            print(fs.identity["uuid"])
    """
    children = [_child(code, pg_url, pg_tree, f"p{k}") for k in range(4)]
    uuids = set()
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        uuids.add(out.strip())
    assert len(uuids) == 1  # one tree, created once
    with VFS(pg_url, tree=pg_tree) as fs:
        assert fs.listdir("/") == ["p0", "p1", "p2", "p3"]


def test_missing_driver_names_the_extra(tmp_path):
    code = """
        import sys
        sys.modules["psycopg"] = None  # as if it were not installed
        from vfs_orm import VFS, VFSError
        try:
            VFS("postgresql+psycopg://nobody@/nothing?host=/nonexistent", tree="t")
        except VFSError as exc:
            print(type(exc).__name__, exc)
    """
    child = _child(code)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert "pip install 'vfs-orm[postgresql]'" in out


def _digest_tree(url: str, tree: str) -> str:
    import pgserver

    return pgserver.tree_digest(url, tree)


def test_layers_are_trees_of_one_database(pg_url, pg_tree):
    """Underlays are trees of the same database, resolved with ONE statement however many
    there are (no attach limit); a random workload on the top tree leaves them unchanged."""
    import random

    trees = [f"{pg_tree}_l{k}" for k in range(14)]  # more than SQLite attaches per connection
    try:
        for k, t in enumerate(trees):
            with VFS(pg_url, tree=t) as under:
                under.write_bytes(f"/mods/m{k}.txt", b"%d" % k)
                under.write_bytes("/game/shared.cfg", b"from %d" % k)
                under.write_bytes(f"/game/data/{k}.bin", bytes([k]) * (5000 + k))
        before = {t: _digest_tree(pg_url, t) for t in trees}
        with VFS(pg_url, tree=pg_tree) as fs:
            for k, t in enumerate(trees):
                fs.add_underlay(pg_url, tree=t, priority=k, name=t)
            assert fs.read_bytes("/game/shared.cfg") == b"from 13"  # the highest priority
            assert fs.which_layer("/mods/m0.txt") == trees[0]
            assert fs.listdir("/mods") == sorted(f"m{k}.txt" for k in range(14))
            assert len(fs.glob("/game/data/*.bin")) == 14
            # One statement (one round trip) per lookup, whatever the depth of the stack.
            with fs.tracer() as sent:
                assert fs.read_bytes("/mods/m0.txt") == b"0"
                assert fs.exists("/game/data/7.bin") and not fs.exists("/nowhere")
            assert len(sent) == 3, sent
            rng = random.Random(1)
            paths = ["/game/shared.cfg", "/mods/m3.txt", "/game/data/5.bin", "/new/x.txt",
                     "/game/data/new.bin", "/mods/m9.txt"]
            for _ in range(300):
                p = rng.choice(paths)
                op = rng.randrange(6)
                try:
                    if op == 0:
                        fs.write_bytes(p, rng.randbytes(rng.randrange(1, 9000)))
                    elif op == 1:
                        fs.remove(p)
                    elif op == 2:
                        with fs.open(p, "r+b") as f:
                            f.seek(rng.randrange(0, 100))
                            f.write(b"patch")
                    elif op == 3:
                        fs.rename(p, rng.choice(paths))
                    elif op == 4:
                        fs.copy(p, rng.choice(paths))
                    else:
                        fs.rmtree(rng.choice(["/game/data", "/mods", "/new"]))
                except OSError:
                    pass
            assert fs.check().ok
            assert fs.check_layers() == []
        assert {t: _digest_tree(pg_url, t) for t in trees} == before
    finally:
        _sql(pg_url, *[f'DROP SCHEMA IF EXISTS "{t}" CASCADE' for t in trees])


def test_files_in_chunks_are_read_from_the_layer_that_wins(pg_url, pg_tree):
    """Through a same-database stack a lookup is ONE statement for a file whose bytes are
    inline; a file in chunks gets its chunk 0 from the winning layer in a second one (the
    branches do not join their chunk tables). Shadowed copies, shared content and damage in
    the winner's chunk behave as through one tree."""
    from vfs_orm import CorruptionError

    mid = bytes(range(256)) * 160  # 40 KiB: one chunk, not inline
    big = bytes(range(7, 256)) * 1000  # 249 KB: four chunks
    trees = [f"{pg_tree}_c{k}" for k in range(6)]
    try:
        for k, t in enumerate(trees):
            with VFS(pg_url, tree=t) as under:
                under.write_bytes("/small.txt", b"small %d" % k)
                under.write_bytes("/mid.bin", mid[k:] + mid[:k])
                if k == 4:
                    under.write_bytes("/big.bin", big)
                    under.copy("/big.bin", "/big-copy.bin")  # shares the chunks
        with VFS(pg_url, tree=pg_tree) as fs:
            for k, t in enumerate(trees):
                fs.add_underlay(pg_url, tree=t, priority=k, name=t)
            with fs.tracer() as sent:
                assert fs.read_bytes("/small.txt") == b"small 5"
                assert len(sent) == 1, sent
                assert fs.read_bytes("/mid.bin") == mid[5:] + mid[:5]  # the top underlay's
                assert len(sent) == 3, sent
            assert fs.read_bytes("/big.bin") == big
            assert fs.read_bytes("/big-copy.bin") == big
            with fs.open("/big-copy.bin", "rb") as f:
                f.seek(70_000)
                assert f.read(10) == big[70_000:70_010]
            fs.write_bytes("/mid.bin", b"top")  # the top shadows every underlay
            assert fs.read_bytes("/mid.bin") == b"top"
        _sql(pg_url, f'UPDATE "{trees[5]}".vfs_chunks SET data = set_byte(data, 9, '
                     f"get_byte(data, 9) # 1) WHERE idx = 0")
        with VFS(pg_url, tree=f"{pg_tree}_ctop") as fs:  # a new top over the same stack
            for k, t in enumerate(trees):
                fs.add_underlay(pg_url, tree=t, priority=k, name=t)
            with pytest.raises(CorruptionError, match=r"/mid\.bin"):
                fs.read_bytes("/mid.bin")
            assert fs.read_bytes("/big.bin") == big
    finally:
        _sql(pg_url, *[f'DROP SCHEMA IF EXISTS "{t}" CASCADE'
                       for t in [*trees, f"{pg_tree}_ctop"]])


@contextlib.contextmanager
def _other_database(pg_url: str, name: str) -> Iterator[str]:
    """The URL of a new database of the same server (dropped afterwards)."""
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    prefix, rest = pg_url.split("/postgres?", 1)
    try:
        yield f"{prefix}/{name}?{rest}"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


def test_underlays_from_elsewhere_are_foreign_groups(pg_url, pg_tree, tmp_path):
    """A SQLite pack (a base game on disk) and a tree of another database lie under a tree,
    each read through a read-only VFS of its own, in its place in the priority order between
    trees of the same database; whiteouts, copy-up, renames, snapshots and check_layers work
    across them, and none of the underlays changes."""
    import pgserver

    pack, dlc = tmp_path / "base.vfs", tmp_path / "dlc.vfs"
    with VFS(pack, chunk_size=4096) as base:
        base.write_bytes("/game/shared.cfg", b"from the pack")
        base.write_bytes("/game/pack.txt", b"pack only")
        base.write_bytes("/game/textures/big.bin", bytes(range(256)) * 100)  # 7 chunks
        base.write_bytes("/game/old.txt", b"removed by the save")
    with VFS(dlc) as d:
        d.write_bytes("/game/shared.cfg", b"from the dlc pack")
        d.write_bytes("/dlc/map.txt", b"dlc map")
    same_db = f"{pg_tree}_mods"
    with VFS(pg_url, tree=same_db) as mods:
        mods.write_bytes("/game/shared.cfg", b"from the mods tree")
        mods.write_bytes("/mods/m.txt", b"a mod")
    with _other_database(pg_url, f"db_{pg_tree}") as elsewhere:
        with VFS(elsewhere, tree="patches") as patches:
            patches.write_bytes("/game/shared.cfg", b"from another database")
            patches.write_bytes("/patch/notes.txt", b"patch notes")
        before = (pack.read_bytes(), dlc.read_bytes(), _digest_tree(pg_url, same_db),
                  pgserver.tree_digest(elsewhere, "patches"))
        try:
            with VFS(pg_url, tree=pg_tree) as fs:
                # Priority order: the other database, the mods tree (same database), the
                # pack, the DLC pack: foreign, native, foreign, foreign groups.
                fs.add_underlay(pack, priority=2, name="base")
                fs.add_underlay(dlc, priority=1, name="dlc")
                fs.add_underlay(pg_url, tree=same_db, priority=3, name="mods")
                fs.add_underlay(elsewhere, tree="patches", priority=4, name="patches")
                assert [lay["name"] for lay in fs.list_layers()] == \
                    ["local", "patches", "mods", "base", "dlc"]
                assert fs.read_bytes("/game/shared.cfg") == b"from another database"
                assert fs.which_layer("/game/pack.txt") == "base"
                assert fs.which_layer("/dlc/map.txt") == "dlc"
                assert fs.listdir("/game") == ["old.txt", "pack.txt", "shared.cfg", "textures"]
                assert sorted(fs.glob("/*/*.txt")) == ["/dlc/map.txt", "/game/old.txt",
                                                        "/game/pack.txt", "/mods/m.txt",
                                                        "/patch/notes.txt"]
                with fs.open("/game/textures/big.bin", "rb") as f:
                    f.seek(5000)
                    assert f.read(10) == (bytes(range(256)) * 100)[5000:5010]
                fs.remove("/game/old.txt")  # a whiteout over the pack
                assert not fs.exists("/game/old.txt")
                with fs.open("/game/pack.txt", "ab") as f:  # copy-up from the pack
                    f.write(b" + saved")
                assert fs.read_bytes("/game/pack.txt") == b"pack only + saved"
                assert fs.which_layer("/game/pack.txt") == "local"
                fs.rename("/game/textures", "/game/tex")  # a directory of the pack, copied up
                assert fs.read_bytes("/game/tex/big.bin") == bytes(range(256)) * 100
                assert not fs.exists("/game/textures")
                fs.remove_underlay("patches")
                assert fs.read_bytes("/game/shared.cfg") == b"from the mods tree"
                fs.add_underlay(elsewhere, tree="patches", priority=4, name="patches")
                with fs.snapshot():
                    assert fs.read_bytes("/patch/notes.txt") == b"patch notes"
                assert fs.check().ok
                assert fs.check_layers() == []
            with VFS(pg_url, tree=pg_tree) as alone:  # its whiteouts hide nothing now
                assert alone.listdir("/game") == ["pack.txt", "tex"]
                assert not alone.exists("/game/old.txt")
            # A SQLite file over a tree: the tree is the foreign layer.
            with VFS(tmp_path / "local.vfs") as lite:
                lite.add_underlay(pg_url, tree=same_db, name="server")
                assert lite.read_bytes("/mods/m.txt") == b"a mod"
                lite.write_bytes("/mods/mine.txt", b"mine")
                assert lite.listdir("/mods") == ["m.txt", "mine.txt"]
                lite.remove("/mods/m.txt")
                assert lite.listdir("/mods") == ["mine.txt"]
            with VFS(pg_url, tree=pg_tree) as fs, VFS(":memory:") as memory:
                with pytest.raises(VFSError, match="in-memory database"):
                    fs.add_underlay(memory)
                with pytest.raises(ValueError, match="own underlay"):
                    fs.add_underlay(pg_url, tree=pg_tree)
            after = (pack.read_bytes(), dlc.read_bytes(), _digest_tree(pg_url, same_db),
                     pgserver.tree_digest(elsewhere, "patches"))
            assert after == before
        finally:
            _sql(pg_url, f'DROP SCHEMA IF EXISTS "{same_db}" CASCADE')


def _tree_of(fs: VFS) -> dict[str, tuple]:
    out = {}
    for top, dirs, files in fs.walk("/"):
        for d in dirs:
            p = f"{top.rstrip('/')}/{d}"
            st = fs.stat(p)
            out[p] = ("dir", st.st_mode & 0o7777, st.st_mtime_ns)
        for f in files:
            p = f"{top.rstrip('/')}/{f}"
            st = fs.stat(p)
            out[p] = (fs.read_bytes(p), st.st_mode & 0o7777, st.st_mtime_ns)
    return out


def _sample(fs: VFS) -> None:
    fs.write_bytes("/a/small.txt", b"hello", mtime_ns=1_600_000_000_000_000_000)
    fs.write_bytes("/a/b/big.bin", bytes(range(256)) * 2000)  # several chunks
    fs.write_bytes("/empty.bin", b"")
    fs.makedirs("/a/empty_dir")
    fs.chmod("/a/small.txt", 0o600)
    fs.utime("/a/b", ns=(1, 1_500_000_000_000_000_000))


def test_images_between_backends(pg_url, pg_tree):
    """A PostgreSQL tree's image is a SQLite pack of it; a pack loads into a tree (replacing
    its content, all or nothing); both round trips keep every byte, mode and mtime."""
    with VFS(pg_url, tree=pg_tree) as fs:
        _sample(fs)
        expected = _tree_of(fs)
        image = fs.to_bytes()
    assert image.startswith(b"SQLite format 3\x00")
    with VFS.from_bytes(image) as pack:
        assert _tree_of(pack) == expected
        pack.write_bytes("/from_pack.txt", b"new")
        expected2 = _tree_of(pack)
        image2 = pack.to_bytes()
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/to_be_replaced", b"x")
        fs.deserialize_iter(image2)
        assert _tree_of(fs) == expected2
        with pytest.raises(VFSError):
            fs.deserialize_iter(b"not an image")
        assert _tree_of(fs) == expected2  # a bad image changes nothing


def test_cli_copy_pack_to_server_and_back(pg_url, pg_tree, tmp_path):
    src = tmp_path / "src.vfs"
    with VFS(src) as fs:
        _sample(fs)
        expected = _tree_of(fs)
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = [sys.executable, "-m", "vfs_orm", "copy", "--quiet"]
    up = subprocess.run([*run, str(src), pg_url, "--to-tree", pg_tree], env=env,
                        capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back.vfs"
    down = subprocess.run([*run, pg_url, str(back), "--from-tree", pg_tree], env=env,
                          capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        assert _tree_of(fs) == expected
    with VFS(back, read_only=True) as fs:
        assert _tree_of(fs) == expected
    again = subprocess.run([*run, str(src), pg_url, "--to-tree", pg_tree], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_a_dropped_connection_is_a_clean_error_then_reconnects(pg_url, pg_tree):
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/f", b"before")
        pid = fs._uow.raw().conn.info.backend_pid  # this thread's server process
        _sql(pg_url, f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(VFSError) as info:
            fs.read_bytes("/f")
        assert type(info.value) is VFSError and "connection" in str(info.value)
        assert fs.read_bytes("/f") == b"before"  # the next call has a new connection
        fs.write_bytes("/f", b"after")
        pid = fs._uow.raw().conn.info.backend_pid
        _sql(pg_url, f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(VFSError), fs.atomic_batch():
            fs.write_bytes("/f", b"lost with its transaction")
        assert fs.read_bytes("/f") == b"after"


def test_a_role_without_write_grants_reads_only(pg_url, pg_tree):
    """A base tree made read-only at the database level: a role that may only read it."""
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/base/asset.bin", b"asset")
    role = f"reader_{pg_tree}"
    _sql(pg_url, f"DROP ROLE IF EXISTS {role}", f"CREATE ROLE {role} LOGIN",
         f'GRANT USAGE ON SCHEMA "{pg_tree}" TO {role}',
         f'GRANT SELECT ON ALL TABLES IN SCHEMA "{pg_tree}" TO {role}')
    reader_url = pg_url.replace("postgres@", f"{role}@", 1)
    try:
        with VFS(reader_url, tree=pg_tree, read_only=True) as ro:
            assert ro.read_bytes("/base/asset.bin") == b"asset"
        with VFS(reader_url, tree=pg_tree) as rw:  # opened writable: the server says no
            assert rw.read_bytes("/base/asset.bin") == b"asset"
            with pytest.raises(ReadOnlyError):
                rw.write_bytes("/base/asset.bin", b"changed")
            with pytest.raises(ReadOnlyError):
                rw.remove("/base/asset.bin")
        with VFS(pg_url, tree=pg_tree, read_only=True) as check:
            assert check.read_bytes("/base/asset.bin") == b"asset"
    finally:
        _sql(pg_url, f'REVOKE ALL ON ALL TABLES IN SCHEMA "{pg_tree}" FROM {role}',
             f'REVOKE ALL ON SCHEMA "{pg_tree}" FROM {role}', f"DROP ROLE {role}")


@pytest.mark.slow
def test_sigkill_mid_save_leaves_whole_saves(pg_url, pg_tree):
    """A client SIGKILLed while saving, 25 times: every save is all or nothing, and every save
    the client saw committed is there."""
    import random
    import signal
    import time

    with VFS(pg_url, tree=pg_tree) as fs:
        for name in ("player", "world", "inventory"):
            fs.write_bytes(f"/save/{name}.json", b"0:" + bytes(3000))
    code = """
        import sys
        from vfs_orm import VFS
        with VFS(sys.argv[1], tree=sys.argv[2]) as fs:
            g = int(fs.read_bytes("/save/player.json").split(b":")[0])
            while True:
                g += 1
                with fs.atomic_batch():
                    for name in ("player", "world", "inventory"):
                        fs.write_bytes(f"/save/{name}.json", b"%d:" % g + bytes(3000))
                print(g, flush=True)  # acknowledged
    """
    rng = random.Random(15)
    saves = 0
    for _ in range(25):
        child = _child(code, pg_url, pg_tree)
        # Once it saves (its start takes longer than the pause on a loaded machine).
        first = child.stdout.readline() if child.stdout else ""
        time.sleep(rng.random() * 0.4)
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=60)
        out = first + out
        acked = [int(x) for x in out.split()]
        assert acked or "Error" not in err, err[-2000:]
        saves += len(acked)
        with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
            gens = {int(fs.read_bytes(f"/save/{n}.json").split(b":")[0])
                    for n in ("player", "world", "inventory")}
            assert len(gens) == 1, gens  # all or nothing
            if acked:
                assert gens.pop() >= acked[-1]  # nothing acknowledged is lost
            assert fs.check().ok
    assert saves > 25  # the kills landed among saves, not before the first one


def test_embedded_in_a_host_engine_and_session(pg_url, pg_tree):
    """Beside the host application's own tables: its engine, then its session's transaction
    (vfs_orm's writes commit or roll back with the host's)."""
    from sqlalchemy.orm import Session

    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE TABLE "{pg_tree}_app" (id int primary key)')
        with VFS(engine=engine, tree=pg_tree) as fs:  # creates the tree
            fs.write_bytes("/from_engine", b"1")
        with Session(engine) as session:
            fs = VFS(session=session, tree=pg_tree)
            session.execute(text(f'INSERT INTO "{pg_tree}_app" VALUES (1)'))
            fs.write_bytes("/with_the_host", b"2")
            session.rollback()  # the host says no: both go
            fs.write_bytes("/committed", b"3")
            session.execute(text(f'INSERT INTO "{pg_tree}_app" VALUES (2)'))
            session.commit()
            fs.close()
        with VFS(pg_url, tree=pg_tree, read_only=True) as check:
            assert check.listdir("/") == ["committed", "from_engine"]
        assert _sql(pg_url, f'SELECT id FROM "{pg_tree}_app"')[0] == [(2,)]
    finally:
        _sql(pg_url, f'DROP TABLE IF EXISTS "{pg_tree}_app"')
        engine.dispose()


def test_writers_wait_only_for_the_rows_they_share(pg_url, pg_tree):
    """A writer with an open batch holds the rows it changed: another writer of that file
    waits (here until its busy_timeout: BusyError); writers of other files of the same tree,
    of other directories, of another tree, and readers, do not wait at all."""
    from vfs_orm import BusyError

    other = pg_tree + "_b"
    try:
        with VFS(pg_url, tree=pg_tree) as a1, VFS(pg_url, tree=pg_tree, busy_timeout=0.5) as a2, \
                VFS(pg_url, tree=other, busy_timeout=0.5) as b:
            a1.write_bytes("/f", b"committed")
            a1.write_bytes("/d1/x", b"1")
            a2.write_bytes("/d2/y", b"2")
            with a1.atomic_batch():
                a1.write_bytes("/f", b"in a1's open batch")
                a1.write_bytes("/d1/x", b"in a1's open batch")
                b.write_bytes("/g", b"tree B does not wait")
                assert a2.read_bytes("/f") == b"committed"  # readers never block
                a2.write_bytes("/h", b"another file of the tree does not wait")
                a2.write_bytes("/d2/y", b"another directory does not wait")
                a2.write_bytes("/d2/z", b"nor a new file there")
                with pytest.raises(BusyError):
                    a2.write_bytes("/f", b"waits for a1, then gives up")
                assert a2.read_bytes("/f") == b"committed"  # nothing of it landed
            a2.write_bytes("/f", b"now it goes through")
            assert a1.read_bytes("/f") == b"now it goes through"
            assert sorted(a2.listdir("/")) == ["d1", "d2", "f", "h"] and b.listdir("/") == ["g"]
            assert a2.read_bytes("/d1/x") == b"in a1's open batch"
            assert a2.check().ok
    finally:
        _sql(pg_url, f'DROP SCHEMA IF EXISTS "{other}" CASCADE')


@pytest.mark.slow
def test_server_crash_mid_save_keeps_whole_saves():
    """The server stopped like a power cut (pg_ctl stop -m immediate) while a client saves,
    then restarted, 5 times: every save whole, every acknowledged save present, and the
    client's next call after the restart works on a new connection."""
    import random
    import time

    import pgserver

    if pgserver.server_binaries() is None:
        _pg_skip_or_fail = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
        _pg_skip_or_fail("needs PostgreSQL server binaries to crash a server of its own")
    cluster = pgserver.start(durable=True, own=True)
    try:
        url = cluster.url
        with VFS(url, tree="crash") as fs:
            for name in ("player", "world", "inventory"):
                fs.write_bytes(f"/save/{name}.json", b"0:" + bytes(3000))
        code = """
            import sys, time
            from vfs_orm import VFS, VFSError
            fs = VFS(sys.argv[1], tree="crash")
            g = int(fs.read_bytes("/save/player.json").split(b":")[0])
            errors = 0
            deadline = time.monotonic() + float(sys.argv[2])
            while time.monotonic() < deadline:
                try:
                    with fs.atomic_batch():
                        for name in ("player", "world", "inventory"):
                            fs.write_bytes(f"/save/{name}.json", b"%d:" % (g + 1) + bytes(3000))
                    g += 1
                    print(g, flush=True)  # acknowledged
                except VFSError:
                    errors += 1
                    print("E", flush=True)
                    time.sleep(0.05)  # the server is down: try again
            print("errors", errors, flush=True)
            fs.close()
        """
        rng = random.Random(8)
        for _ in range(5):
            child = _child(code, url, "6")
            # Once it saves (its start takes longer than the pause on a loaded machine).
            first = child.stdout.readline() if child.stdout else ""
            time.sleep(0.2 + rng.random())
            cluster.crash()
            time.sleep(0.5)
            cluster.restart()
            out, err = child.communicate(timeout=120)
            out = first + out
            assert child.returncode == 0, err[-2000:]
            lines = out.split()
            assert "errors" in lines, out[-500:]
            events = lines[:lines.index("errors")]
            acked = [int(x) for x in events if x != "E"]
            assert "E" in events  # the crash was seen ...
            with VFS(url, tree="crash", read_only=True) as fs:
                gens = {int(fs.read_bytes(f"/save/{n}.json").split(b":")[0])
                        for n in ("player", "world", "inventory")}
                assert len(gens) == 1, gens  # all or nothing
                assert gens.pop() >= acked[-1]  # ... and nothing acknowledged was lost
                assert fs.check().ok
            after = events[len(events) - events[::-1].index("E"):]
            assert after, "no save after the restart"  # the client reconnected and went on
    finally:
        cluster.stop()


def _inject_conflicts(url: str, tree: str, state: str, times: int) -> None:
    """The server aborts the next ``times`` inserts into the tree with SQLSTATE ``state`` (a
    real server error, as a conflicting transaction would cause)."""
    _sql(url,
         f'CREATE SEQUENCE "{tree}".conflicts',
         f'CREATE FUNCTION "{tree}".conflict() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN '
         f"IF nextval('\"{tree}\".conflicts') <= {times} THEN "
         f"RAISE EXCEPTION 'injected conflict' USING ERRCODE = '{state}'; END IF; "
         f"RETURN NEW; END $$",
         f'CREATE TRIGGER conflict BEFORE INSERT ON "{tree}".vfs_inodes FOR EACH ROW '
         f'EXECUTE FUNCTION "{tree}".conflict()')


@pytest.mark.parametrize("state", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried(pg_url, pg_tree, state):
    from vfs_orm import BusyError

    # Conflicts are retried RETRIES times, then on for busy_timeout seconds.
    with VFS(pg_url, tree=pg_tree, busy_timeout=0.5) as fs:
        fs.write_bytes("/before", b"0")
        _inject_conflicts(pg_url, pg_tree, state, 3)
        fs.write_bytes("/save", b"1")  # aborted three times by the server, then through
        assert fs.read_bytes("/save") == b"1"
        # Inside a batch the caller's block is the unit: the conflict reaches the caller and
        # the batch rolls back whole.
        _sql(pg_url, f"""SELECT setval('"{pg_tree}".conflicts', 1, false)""")
        with pytest.raises(BusyError), fs.atomic_batch():
            fs.write_bytes("/in_batch", b"2")
        assert not fs.exists("/in_batch")
        # More conflicts in a row than the retries: a BusyError, nothing half-written.
        _sql(pg_url, f"""SELECT setval('"{pg_tree}".conflicts', 1, false)""",
             f'CREATE OR REPLACE FUNCTION "{pg_tree}".conflict() RETURNS trigger LANGUAGE '
             f"plpgsql AS $$ BEGIN RAISE EXCEPTION 'always' USING ERRCODE = '{state}'; END $$")
        with pytest.raises(BusyError):
            fs.write_bytes("/never", b"3")
        assert sorted(fs.listdir("/")) == ["before", "save"]


@pytest.mark.parametrize("state", ["40001", "40P01"])
def test_conflicts_at_a_handle_close_are_retried(pg_url, pg_tree, state):
    """A w-mode handle commits at close (and a big one flushes staged chunks before): a
    server abort there runs that write again with what the handle holds, as a VFS method
    would, and nothing is lost or written twice."""
    from vfs_orm._io import STAGE_LIMIT

    big = bytes(range(251)) * (2 * STAGE_LIMIT // 251 + 7)
    with VFS(pg_url, tree=pg_tree, chunk_size=65536) as fs:
        fs.write_bytes("/before", b"0")
        _inject_conflicts(pg_url, pg_tree, state, 2)
        with fs.open("/small.txt", "wb") as f:  # in memory until close
            f.write(b"saved at close")
        assert fs.read_bytes("/small.txt") == b"saved at close"
        _sql(pg_url, f"""SELECT setval('"{pg_tree}".conflicts', 1, false)""")
        with fs.open("/big.bin", "wb") as f:  # staged chunks flushed while writing
            for k in range(0, len(big), 100_000):
                f.write(big[k:k + 100_000])
        assert fs.read_bytes("/big.bin") == big
        assert sorted(fs.listdir("/")) == ["before", "big.bin", "small.txt"]
        # The injection is a trigger the tree's closed schema reports; without it, all is well.
        assert "trigger conflict on vfs_inodes" in " ".join(fs.check().problems)
        _sql(pg_url, f'DROP TRIGGER conflict ON "{pg_tree}".vfs_inodes',
             f'DROP FUNCTION "{pg_tree}".conflict()')
        assert fs.check().ok


def test_every_cli_command_takes_a_url_and_a_tree(pg_url, pg_tree, tmp_path):
    """The real entry point, in subprocesses: pack a directory into a server tree, then read,
    change, check and unpack it there, as with an image file."""
    src = tmp_path / "src"
    (src / "maps").mkdir(parents=True)
    (src / "maps" / "a.txt").write_bytes(b"alpha")
    (src / "readme").write_bytes(b"hello")
    os.symlink("maps/a.txt", src / "latest")  # stored as a link (--symlinks keep)
    local = tmp_path / "local.bin"
    local.write_bytes(b"x" * 70_000)
    env = dict(os.environ, PYTHONPATH=ROOT)

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "vfs_orm", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (args, proc.stderr)
        return proc.stdout

    t = ("--tree", pg_tree)
    cli("pack", "--quiet", "--symlinks", "keep", src, pg_url, *t)
    assert cli("ls", pg_url, "/", *t).split() == ["latest", "maps", "readme"]
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        assert fs.readlink("/latest") == "maps/a.txt"
    cli("rm", pg_url, "/latest", *t)
    assert cli("cat", pg_url, "/maps/a.txt", *t) == "alpha"
    cli("put", pg_url, local, "/big.bin", *t)
    cli("mv", pg_url, "/readme", "/README", *t)
    cli("rm", pg_url, "/maps", "-r", *t)
    cli("get", pg_url, "/big.bin", tmp_path / "got.bin", *t)
    assert (tmp_path / "got.bin").read_bytes() == local.read_bytes()
    assert json.loads(cli("stat", pg_url, "/big.bin", "--json", *t))["size"] == 70_000
    assert json.loads(cli("info", pg_url, "--json", *t))["tree"] == pg_tree
    assert "ok" in cli("check", pg_url, *t)
    assert "already at revision" in cli("upgrade", pg_url, *t)
    cli("unpack", "--quiet", pg_url, tmp_path / "out", *t)
    assert sorted(os.listdir(tmp_path / "out")) == ["README", "big.bin"]
    assert (tmp_path / "out" / "README").read_bytes() == b"hello"
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        assert fs.listdir("/") == ["README", "big.bin"]
    # compact is VACUUM (ANALYZE) of the tree's tables.
    assert "(vacuum)" in cli("compact", pg_url, *t)
    assert "(vacuum full)" in cli("compact", pg_url, "--full", *t)


def test_upgrade_creates_a_tree_for_a_host_engine(pg_url, pg_tree):
    import vfs_orm

    engine = create_engine(pg_url)
    try:
        assert vfs_orm.upgrade_engine(engine, tree=pg_tree) == "empty"
        assert vfs_orm.upgrade_engine(engine, tree=pg_tree) == "current"
        result = vfs_orm.upgrade(pg_url, tree=pg_tree)
        assert result["from"] == result["to"]
    finally:
        engine.dispose()
    with pytest.raises(ContractError):
        vfs_orm.upgrade("some.vfs", tree=pg_tree)


def test_a_base_tree_read_only_for_the_role_under_a_writable_top(pg_url, pg_tree):
    """The README's setup: players' role may only read the base tree, and writes its own tree
    over it (copy-up, whiteouts); the base cannot change whatever vfs_orm is asked."""
    base, role = f"{pg_tree}_base", f"player_{pg_tree}"
    with VFS(pg_url, tree=base) as b:
        b.write_bytes("/game/level1.map", b"original level")
        b.write_bytes("/game/config.ini", b"[video]")
    VFS(pg_url, tree=pg_tree).close()  # the player's tree, created by the operator
    _sql(pg_url, f"DROP ROLE IF EXISTS {role}", f"CREATE ROLE {role} LOGIN",
         f'GRANT USAGE ON SCHEMA "{base}" TO {role}',
         f'GRANT SELECT ON ALL TABLES IN SCHEMA "{base}" TO {role}',
         f'GRANT USAGE ON SCHEMA "{pg_tree}" TO {role}',
         f'GRANT ALL ON ALL TABLES IN SCHEMA "{pg_tree}" TO {role}',
         f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{pg_tree}" TO {role}')
    player_url = pg_url.replace("postgres@", f"{role}@", 1)
    before = _digest_tree(pg_url, base)
    try:
        with VFS(player_url, tree=pg_tree) as fs:
            fs.add_underlay(player_url, tree=base, name="base")
            fs.write_bytes("/game/config.ini", b"[video]\nfullscreen=1")  # copied up
            fs.remove("/game/level1.map")  # a whiteout in the player's tree
            assert fs.listdir("/game") == ["config.ini"]
            assert fs.which_layer("/game/config.ini") == "local"
        with VFS(player_url, tree=base) as direct, pytest.raises(ReadOnlyError):
            direct.write_bytes("/game/level1.map", b"cheat")
        assert _digest_tree(pg_url, base) == before
    finally:
        _sql(pg_url, f'DROP SCHEMA IF EXISTS "{base}" CASCADE',
             f'REVOKE ALL ON ALL TABLES IN SCHEMA "{pg_tree}" FROM {role}',
             f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "{pg_tree}" FROM {role}',
             f'REVOKE ALL ON SCHEMA "{pg_tree}" FROM {role}', f"DROP ROLE {role}")


def test_bulk_write_files_goes_through_copy(pg_url, pg_tree):
    """Many new files at once: COPY into a staging table, then one INSERT ... SELECT. The
    result is write_bytes' for each (names with any characters, order kept, all or nothing
    when a path is taken), and the staging table is empty afterwards."""
    from vfs_orm.backends.postgresql.statements import COPY_AT_LEAST

    n = COPY_AT_LEAST * 4
    files = [(f"/bulk/d{i % 7}/f {i} '\"\\%s;é.bin", bytes([i % 256]) * (i % 300))
             for i in range(n)]
    with VFS(pg_url, tree=pg_tree) as fs:
        assert fs.write_files(files) == n
        assert all(fs.read_bytes(p) == d for p, d in files)
        assert sum(len(fs.listdir(f"/bulk/d{k}")) for k in range(7)) == n
        ids = [fs.stat(p).st_ino for p, _ in files[:50]]
        assert ids == sorted(ids)  # created in the order given
        # One path taken: the bulk attempt rolls back and the files go one by one (replacing).
        again = [(p, b"new") for p, _ in files[:COPY_AT_LEAST]] + [("/bulk/extra", b"x" * 10)]
        fs.write_files(again * 1)
        assert fs.read_bytes(files[0][0]) == b"new" and fs.read_bytes("/bulk/extra") == b"x" * 10
        # All or nothing: a path through a file fails the whole call.
        bad = [(f"/bulk2/f{i}", b"y") for i in range(n)] + [("/bulk/extra/under", b"z")]
        with pytest.raises(OSError):
            fs.write_files(bad)
        assert not fs.exists("/bulk2")
        with fs.atomic_batch():  # inside a batch too
            fs.write_files([(f"/bulk3/f{i}", b"w") for i in range(n)])
        assert len(fs.listdir("/bulk3")) == n
        raw = fs._uow.raw()
        left = raw.execute("SELECT count(*) FROM pg_temp.vfs_ingest").fetchone()[0]
        assert left == 0
        assert fs.check().ok


TEXT = b"".join(b"line %d of a very repetitive save file\n" % i for i in range(4000))


def test_compressed_verified_tree(pg_url, pg_tree):
    import hashlib
    import random

    from vfs_orm import CorruptionError

    noise = random.Random(1).randbytes(150_000)
    many = [(f"/many/{i}.txt", b"entry %d " % i * 40) for i in range(80)]  # COPY ingest
    with VFS(pg_url, tree=pg_tree, compression="zstd", chunk_size=16384) as fs:
        fs.write_bytes("/save.txt", TEXT)
        fs.write_bytes("/noise.bin", noise)
        fs.write_files(many)
        with fs.open("/save.txt", "r+b") as f:
            f.seek(16380)
            f.write(b"PATCHED")
    want = TEXT[:16380] + b"PATCHED" + TEXT[16387:]
    codecs = dict(_sql(pg_url, f'SELECT codec, count(*) FROM "{pg_tree}".vfs_chunks '
                               f"GROUP BY codec")[0])
    assert codecs.get(0) and codecs.get(2)  # noise as is, text compressed
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        assert fs.compression == "zstd"
        assert fs.read_bytes("/save.txt") == want
        assert fs.read_bytes("/noise.bin") == noise
        assert fs.read_bytes("/many/9.txt") == b"entry 9 " * 40
        with fs.open("/save.txt", "rb") as f:
            f.seek(30_000)
            assert f.read(100) == want[30_000:30_100]
        assert fs.digest("/noise.bin") == hashlib.sha256(noise).hexdigest()
        assert fs.digest("/save.txt") == hashlib.sha256(want).hexdigest()
        assert fs.check(deep=True).ok
    _sql(pg_url, f'UPDATE "{pg_tree}".vfs_chunks SET data = set_byte(data, 100, '
                 f"get_byte(data, 100) # 1) WHERE codec = 0 AND idx = 2")
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        with pytest.raises(CorruptionError, match="offset 32768"):
            fs.read_bytes("/noise.bin")
        problems = fs.check(deep=True).problems
        assert len(problems) == 1 and problems[0].startswith("/noise.bin: damaged content")


def downgrade_tree(pg_url: str, tree: str, target: str) -> None:
    """Run the revisions' downgrades on a PostgreSQL tree, newest first, down to ``target``
    (as an older release left trees), in one transaction, and stamp it."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from vfs_orm.backends.sqlite.schema import _script
    from vfs_orm.models import VERSION_TABLE

    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{tree}"')
            in_tree = conn.execution_options(schema_translate_map={None: tree})
            context = MigrationContext.configure(
                in_tree, opts={"version_table": VERSION_TABLE, "version_table_schema": tree})
            with Operations.context(context):
                for step in _script().iterate_revisions("head", target):
                    if step.revision != target:
                        step.module.downgrade()
            context.stamp(_script(), target)
    finally:
        engine.dispose()


def test_a_tree_at_0003_is_upgraded_on_its_first_writable_open(pg_url, pg_tree):
    """Trees made before format 0004 get checksums and digests of their existing content."""
    import hashlib

    files = {"/a.txt": b"alpha", "/d/big.bin": os.urandom(200_000), "/empty": b""}
    with VFS(pg_url, tree=pg_tree) as fs:
        for p, data in files.items():
            fs.write_bytes(p, data)
    downgrade_tree(pg_url, pg_tree, "0003")  # as the previous release left trees
    assert _sql(pg_url, f'SELECT version_num FROM "{pg_tree}".vfs_alembic_version')[0] == \
        [("0003",)]
    with pytest.raises(FormatVersionError, match="upgrade"):
        VFS(pg_url, tree=pg_tree, read_only=True)
    with VFS(pg_url, tree=pg_tree) as fs:
        for p, data in files.items():
            assert fs.read_bytes(p) == data
            assert fs.digest(p) == hashlib.sha256(data).hexdigest()
        assert fs.check(deep=True).ok
    assert _sql(pg_url, f'SELECT count(*) FROM "{pg_tree}".vfs_inodes WHERE kind = 1 AND '
                        f"digest IS NULL")[0] == [(0,)]


def test_a_case_insensitive_tree(pg_url, pg_tree):
    """Trees fold like files: one entry per folded path, stored spellings kept, underlay
    trees searched by their folded keys."""
    import unicodedata

    base = f"{pg_tree}_cibase"
    try:
        with VFS(pg_url, tree=base) as fs:
            fs.makedirs("/Textures")
            fs.write_bytes("/Textures/Hero.png", b"base")
        with VFS(pg_url, tree=pg_tree, case_insensitive=True) as fs:
            fs.write_bytes("/Saves/Slot1.SAV", b"one")
            fs.write_bytes("/saves/slot1.sav", b"two")
            assert fs.listdir("/SAVES") == ["Slot1.SAV"]
            fs.write_text(unicodedata.normalize("NFD", "/saves/École.txt"), "e")
            assert fs.read_text("/SAVES/école.TXT") == "e"
            fs.add_underlay(pg_url, tree=base, name="base")
            assert fs.read_bytes("/textures/HERO.PNG") == b"base"
            fs.write_bytes("/TEXTURES/hero.png", b"mod")
            assert fs.listdir("/textures") == ["Hero.png"]
            assert fs.read_bytes("/Textures/Hero.png") == b"mod"
            assert fs.check().ok
        with pytest.raises(ContractError):
            VFS(pg_url, tree=pg_tree, case_insensitive=False)
    finally:
        import pgserver

        pgserver.drop_trees(pg_url, [base])


def test_shared_copies_in_a_tree(pg_url, pg_tree):
    import random

    data = random.Random(7).randbytes(600_000)

    def chunk_bytes() -> int:
        return _sql(pg_url, f'SELECT coalesce(sum(length(data)), 0) FROM "{pg_tree}".vfs_chunks'
                    )[0][0][0]

    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/a.bin", data)
        before = chunk_bytes()
        fs.copy("/a.bin", "/b.bin")
        fs.mkdir("/copy")
        fs.copy("/a.bin", "/copy/c.bin")
        assert chunk_bytes() == before
        with fs.open("/b.bin", "r+b") as f:
            f.write(b"B")
        fs.remove("/a.bin")
        assert fs.read_bytes("/copy/c.bin") == data
        assert fs.read_bytes("/b.bin") == b"B" + data[1:]
        fs.rmtree("/copy")
        assert chunk_bytes() == len(data)  # only b's own chunks are left
        assert fs.check(deep=True).ok


@pytest.mark.parametrize("full", [False, True])
def test_compact_vacuums_the_trees_tables(pg_url, pg_tree, full):
    """compact() runs VACUUM (ANALYZE) (full: VACUUM FULL) on the tree's tables and reports
    their size before and after; nothing a reader sees changes."""
    with VFS(pg_url, tree=pg_tree, chunk_size=8192) as fs:
        for k in range(40):
            fs.write_bytes(f"/d/{k}", bytes([k]) * 50_000)
        fs.rmtree("/d")
        fs.write_bytes("/kept", b"kept")
        done = fs.compact(full=full)
        assert done["method"] == ("vacuum full" if full else "vacuum")
        if full:  # rewritten to the live rows: the 2 MB of deleted chunks are gone
            assert done["bytes_before"] - done["bytes_after"] > 1_000_000
        assert fs.read_bytes("/kept") == b"kept" and fs.listdir("/") == ["kept"]
        assert fs.check().ok
        analyzed = _sql(pg_url, f"SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = "
                                f"'{pg_tree}' AND last_analyze IS NOT NULL AND "
                                f"(last_vacuum IS NOT NULL OR {full})")[0][0][0]
        assert analyzed == 5  # vfs_inodes, _chunks, _groups, _layer_manifests, _alembic_version
        with pytest.raises(VFSError), fs.atomic_batch():
            fs.compact()
    with VFS(pg_url, tree=pg_tree, read_only=True) as ro, pytest.raises(ReadOnlyError):
        ro.compact()


def test_batches_over_tcp_and_over_a_unix_socket():
    """A write transaction's BEGIN goes pipelined with its first statement over TCP, and as a
    statement of its own over a unix socket (cheaper there): over both, a batch is all or
    nothing, a failed first statement leaves nothing open, and the statements are the same
    (BEGIN, one UPDATE per save of an existing file, COMMIT)."""
    import socket

    import pgserver

    if pgserver.server_binaries() is None:
        _pg_skip_or_fail = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
        _pg_skip_or_fail("needs PostgreSQL server binaries to start a server on TCP")
    with socket.socket() as probe:  # a free port on the loopback interface
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = pgserver.start(own=True, extra=f" -c listen_addresses=127.0.0.1 -c port={port}")
    try:
        assert cluster.base is not None
        urls = {"tcp": f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
                "unix": f"postgresql+psycopg://postgres@/postgres?host={cluster.base}"
                        f"&port={port}"}
        for kind, url in urls.items():
            with VFS(url, tree=f"over_{kind}") as fs, VFS(url, tree=f"over_{kind}") as other:
                fs.makedirs("/save")
                names = ("player", "world", "inventory")
                with fs.atomic_batch():
                    for n in names:
                        fs.write_bytes(f"/save/{n}", b"1")
                for before, after in ((b"1", b"2"), (b"2", b"3")):  # the second: a save
                    with fs.tracer() as statements, fs.atomic_batch():  # over saves
                        for n in names:
                            fs.write_bytes(f"/save/{n}", after)
                        # Inside the batch: the other connection sees the last commit.
                        assert [other.read_bytes(f"/save/{n}") for n in names] == [before] * 3
                assert [s.split()[0] for s in statements] == \
                    ["BEGIN", "UPDATE", "UPDATE", "UPDATE", "COMMIT"], (kind, statements)
                with pytest.raises(RuntimeError), fs.atomic_batch():
                    for n in names:
                        fs.write_bytes(f"/save/{n}", b"4")
                    raise RuntimeError("the game crashed mid-save")
                assert [other.read_bytes(f"/save/{n}") for n in names] == [b"3"] * 3, kind
                # A batch whose first statement fails: nothing stays open or half done.
                with pytest.raises(VFSError), fs.atomic_batch():
                    fs.write_bytes("/save/player/x", b"under a file")
                with fs.atomic_batch():
                    fs.write_bytes("/save/world", b"4")
                assert other.read_bytes("/save/world") == b"4" and fs.check().ok, kind
    finally:
        cluster.stop()
