"""Layers: underlays ATTACHed read-only, one-statement resolution, whiteouts, deep stacks."""

import hashlib
import os
import random
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from conftest import tree_of

from vfs_orm import VFS, FormatVersionError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def game(tmp_path):
    """base (file) <- dlc (file) <- mod (in memory) <- user save (top)."""
    base = VFS(str(tmp_path / "base.vfs"))
    base.write_text("/game/player_speed.txt", "10")
    base.write_text("/game/levels/level1.txt", "L1")
    base.write_text("/game/levels/level2.txt", "L2")
    base.write_bytes("/game/textures/big.bin", os.urandom(300_000))
    base.close()
    dlc = VFS(str(tmp_path / "dlc.vfs"))
    dlc.write_text("/game/levels/level3.txt", "L3 (DLC)")
    dlc.write_text("/game/new_level.txt", "Level data...")
    dlc.write_text("/game/levels/level2.txt", "L2 (DLC remaster)")
    dlc.close()
    mod = VFS(":memory:")
    mod.write_text("/game/player_speed.txt", "15")
    user = VFS(str(tmp_path / "user.vfs"))
    user.add_underlay(str(tmp_path / "base.vfs"), priority=0, name="base")
    user.add_underlay(str(tmp_path / "dlc.vfs"), priority=10, name="dlc")
    user.add_underlay(mod, priority=20, name="mod")
    yield user, mod, tmp_path
    user.close()
    mod.close()


def test_load_order_and_which_layer(game):
    user, _mod, _ = game
    assert [lay["name"] for lay in user.list_layers()] == ["local", "mod", "dlc", "base"]
    assert user.list_layers()[0]["priority"] == float("inf")
    assert user.list_layers()[0]["writable"] and not user.list_layers()[1]["writable"]
    assert user.read_text("/game/player_speed.txt") == "15"
    assert user.which_layer("/game/player_speed.txt") == "mod"
    assert user.read_text("/game/levels/level2.txt") == "L2 (DLC remaster)"
    assert user.which_layer("/game/levels/level1.txt") == "base"
    assert user.which_layer("/nope") is None
    assert user.stat("/game/new_level.txt").source_layer == "dlc"
    assert user.listdir("/game/levels") == ["level1.txt", "level2.txt", "level3.txt"]
    assert user.listdir("/game") == ["levels", "new_level.txt", "player_speed.txt", "textures"]
    detail = user.which_layer_detailed("/game/player_speed.txt")
    assert detail["resolved_from"] == "mod" and detail["path"] == "/game/player_speed.txt"
    assert [(x["name"], x["has_file"]) for x in detail["layers"]] == [
        ("local", False), ("mod", True), ("dlc", False), ("base", True)]
    # the user's save overrides everything
    user.write_text("/game/player_speed.txt", "20")
    assert user.read_text("/game/player_speed.txt") == "20"
    assert user.which_layer("/game/player_speed.txt") == "local"
    # removal of a layer at runtime
    assert user.remove_underlay("mod") is True
    assert user.remove_underlay("mod") is False
    user.remove("/game/player_speed.txt")  # deletes ours; base's is now hidden by a whiteout
    assert not user.exists("/game/player_speed.txt")
    assert user.remove_underlay("dlc")
    assert user.read_text("/game/levels/level2.txt") == "L2"
    assert user.listdir("/game/levels") == ["level1.txt", "level2.txt"]


def test_names_and_errors(tmp_path):
    top, a, b = VFS(), VFS(), VFS()
    try:
        assert top.add_underlay(a) == "underlay_0"
        assert top.add_underlay(b) == "underlay_1"
        with pytest.raises(ValueError, match="already exists"):
            top.add_underlay(VFS(), name="underlay_0")
        with pytest.raises(ValueError):
            top.add_underlay(top)
        with pytest.raises(TypeError):
            top.add_underlay(a, priority="high")
        with pytest.raises(TypeError):
            top.add_underlay(42)
        with pytest.raises(FileNotFoundError):
            top.add_underlay(str(tmp_path / "missing.vfs"))
        assert [x["name"] for x in top.list_layers()] == ["local", "underlay_0", "underlay_1"]
    finally:
        for fs in (top, a, b):
            fs.close()


def test_underlays_are_attached_read_only(game):
    user, _, _tmp = game
    raw = user._uow.view().raw
    aliases = [r[1] for r in raw.execute("PRAGMA database_list") if r[1] not in ("main", "temp")]
    assert len(aliases) == 3 and all(a.startswith("l") for a in aliases)
    for alias in aliases:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            raw.execute(f'DELETE FROM "{alias}".vfs_chunks')


def test_live_memory_underlay(game):
    user, mod, _ = game
    assert not user.exists("/game/fresh.txt")
    mod.write_text("/game/fresh.txt", "hot off the press")
    assert user.read_text("/game/fresh.txt") == "hot off the press"
    mod.remove("/game/fresh.txt")
    assert not user.exists("/game/fresh.txt")


def test_every_thread_sees_stack_changes(game):
    user, _, tmp = game
    seen = []
    ready, go, done = threading.Event(), threading.Event(), threading.Event()

    def reader():
        seen.append(user.exists("/game/extra.txt"))  # this thread's connection exists now
        ready.set()
        go.wait()
        seen.append(user.exists("/game/extra.txt"))
        done.set()

    extra = VFS(str(tmp / "extra.vfs"))
    extra.write_text("/game/extra.txt", "x")
    t = threading.Thread(target=reader)
    t.start()
    ready.wait()
    user.add_underlay(extra, name="extra")
    go.set()
    done.wait()
    t.join()
    extra.close()
    assert seen == [False, True]


def test_resolution_is_one_statement(game):
    user, _, _ = game
    with user.tracer() as log:
        for call in (lambda: user.exists("/game/levels/level1.txt"),
                     lambda: user.stat("/game/player_speed.txt"),
                     lambda: user.isdir("/game"),
                     lambda: user.which_layer("/game/new_level.txt"),
                     lambda: user.which_layer_detailed("/game/new_level.txt"),
                     lambda: user.listdir("/game/levels")):
            log.clear()
            call()
            selects = [s for s in log if s.lstrip().upper().startswith("SELECT")]
            assert len(selects) <= 2 and "UNION ALL" in selects[0], log  # listdir: dir + entries
        log.clear()
        user.exists("/game/levels/level1.txt")
        assert len(log) == 1


def test_whiteouts_and_opaque_directories(game):
    user, _, tmp = game
    user.remove("/game/levels/level1.txt")
    assert not user.exists("/game/levels/level1.txt")
    assert user.which_layer("/game/levels/level1.txt") is None
    assert user.which_layer_detailed("/game/levels/level1.txt")["resolved_from"] is None
    assert "level1.txt" not in user.listdir("/game/levels")
    assert user.glob("/game/levels/*") == ["/game/levels/level2.txt", "/game/levels/level3.txt"]
    with pytest.raises(FileNotFoundError):
        user.read_text("/game/levels/level1.txt")
    with pytest.raises(FileNotFoundError):
        user.open("/game/levels/level1.txt")
    # bring it back with new content
    user.write_text("/game/levels/level1.txt", "mine")
    assert user.read_text("/game/levels/level1.txt") == "mine"
    # a whole lower directory
    user.rmtree("/game/levels")
    assert not user.exists("/game/levels") and not user.exists("/game/levels/level3.txt")
    assert user.glob("/game/**/level*.txt") == []
    assert [d for d, _, _ in user.walk("/")] == ["/", "/game", "/game/textures"]
    # mkdir over it: opaque, the lower entries stay hidden
    user.mkdir("/game/levels")
    assert user.listdir("/game/levels") == []
    user.write_text("/game/levels/level2.txt", "fresh")
    assert user.listdir("/game/levels") == ["level2.txt"]
    # rmdir of a lower directory that is empty in the merged view
    user.makedirs("/game/empty")
    user.rmdir("/game/empty")
    with pytest.raises(OSError):
        user.rmdir("/game/textures")  # not empty (lower content)
    # persists across reopen with the same underlays
    user.close()
    again = VFS(str(tmp / "user.vfs"))
    try:
        again.add_underlay(str(tmp / "base.vfs"), name="base")
        again.add_underlay(str(tmp / "dlc.vfs"), priority=10, name="dlc")
        assert again.listdir("/game/levels") == ["level2.txt"]
        assert again.read_text("/game/levels/level2.txt") == "fresh"
        assert not again.exists("/game/levels/level1.txt")
    finally:
        again.close()


def test_rename_of_lower_entries_copies_up(game):
    user, _, _ = game
    big = user.read_bytes("/game/textures/big.bin")
    user.rename("/game/levels", "/archive/levels")
    assert user.listdir("/archive/levels") == ["level1.txt", "level2.txt", "level3.txt"]
    assert user.read_text("/archive/levels/level3.txt") == "L3 (DLC)"
    assert all(user.which_layer(f"/archive/levels/{n}") == "local"
               for n in user.listdir("/archive/levels"))
    assert not user.exists("/game/levels")
    user.rename("/game/textures/big.bin", "/big.bin")
    assert user.read_bytes("/big.bin") == big and not user.exists("/game/textures/big.bin")
    with pytest.raises(FileExistsError):
        user.rename("/big.bin", "/game/new_level.txt")
    user.replace("/big.bin", "/game/new_level.txt")
    assert user.read_bytes("/game/new_level.txt") == big
    user.copy("/game/player_speed.txt", "/copied.txt")
    assert user.read_text("/copied.txt") == "15"
    user.copytree("/archive", "/archive2")
    assert tree_of(user, "/archive2") == {k.replace("/archive", "/archive2", 1): v
                                         for k, v in tree_of(user, "/archive").items()}


def test_in_place_writes_copy_up_never_touch_underlays(game):
    user, mod, tmp = game
    with user.open("/game/levels/level1.txt", "a") as f:
        f.write(" + more")
    assert user.read_text("/game/levels/level1.txt") == "L1 + more"
    with user.open("/game/new_level.txt", "r+") as f:
        f.write("LEVEL")
    assert user.read_text("/game/new_level.txt") == "LEVEL data..."
    with VFS(str(tmp / "base.vfs"), read_only=True) as base:
        assert base.read_text("/game/levels/level1.txt") == "L1"
    assert mod.read_text("/game/player_speed.txt") == "15"


def test_reads_from_underlays_all_paths(game):
    user, _, tmp = game
    with VFS(str(tmp / "base.vfs"), read_only=True) as base:
        big = base.read_bytes("/game/textures/big.bin")
    assert user.read_bytes("/game/textures/big.bin") == big
    with user.open("/game/textures/big.bin", "rb") as f:
        assert f.read(10) == big[:10]
        f.seek(200_000)
        assert f.read(5000) == big[200_000:205_000]
        f.seek(123)
        assert f.read(70_000) == big[123:70_123]
        f.seek(0)
        assert f.read() == big
    assert user.getsize("/game/textures/big.bin") == 300_000


def test_read_only_top_refuses_every_write(tmp_path):
    with VFS(str(tmp_path / "top.vfs")):
        pass
    lower = VFS()
    lower.write_text("/a", "x")
    top = VFS(str(tmp_path / "top.vfs"), read_only=True)
    try:
        top.add_underlay(lower)
        assert top.read_text("/a") == "x"
        for call in (lambda: top.remove("/a"), lambda: top.write_text("/a", "y"),
                     lambda: top.open("/a", "a"), lambda: top.rename("/a", "/b"),
                     lambda: top.mkdir("/d"), lambda: top.rmtree("/")):
            with pytest.raises(PermissionError):
                call()
    finally:
        top.close()
        lower.close()


def test_deep_stack_of_25(tmp_path):
    layers = []
    for k in range(25):
        fs = VFS(str(tmp_path / f"l{k}.vfs"))
        fs.write_text(f"/only/in{k}.txt", f"layer {k}")
        fs.write_text("/shared.txt", f"from {k}")
        fs.write_text(f"/dirs/d{k % 5}/f{k}.txt", str(k))
        fs.close()
        layers.append(str(tmp_path / f"l{k}.vfs"))
    top = VFS(str(tmp_path / "top.vfs"))
    try:
        for k, path in enumerate(layers):
            top.add_underlay(path, priority=k, name=f"L{k}")
        assert len(top.list_layers()) == 26
        # the highest priority wins, whatever connection group it lives in
        assert top.read_text("/shared.txt") == "from 24"
        assert top.which_layer("/shared.txt") == "L24"
        for k in range(25):
            assert top.read_text(f"/only/in{k}.txt") == f"layer {k}"
            assert top.which_layer(f"/only/in{k}.txt") == f"L{k}"
            assert top.stat(f"/only/in{k}.txt").source_layer == f"L{k}"
        assert top.listdir("/only") == sorted(f"in{k}.txt" for k in range(25))
        assert top.listdir("/dirs") == [f"d{i}" for i in range(5)]
        assert len(top.glob("/dirs/*/*.txt")) == 25
        assert len(top.glob("/**/*.txt")) == 51
        assert sum(len(f) for _, _, f in top.walk("/")) == 51
        detail = top.which_layer_detailed("/shared.txt")
        assert detail["resolved_from"] == "L24" and len(detail["layers"]) == 26
        # whiteouts reach every group
        top.remove("/only/in0.txt")
        top.rmtree("/dirs")
        assert not top.exists("/only/in0.txt") and not top.exists("/dirs/d1/f21.txt")
        assert len(top.glob("/**/*.txt")) == 25
        top.rename("/only", "/moved")
        assert len(top.listdir("/moved")) == 24 and top.read_text("/moved/in3.txt") == "layer 3"
        top.remove_underlay("L24")
        assert top.read_text("/shared.txt") == "from 23"
    finally:
        top.close()


def test_underlay_files_never_change(tmp_path):
    rnd = random.Random(42)
    paths = []
    for k in range(3):
        fs = VFS(str(tmp_path / f"u{k}.vfs"))
        for i in range(30):
            p = f"/d{rnd.randrange(4)}/s{rnd.randrange(3)}/f{i}_{k}"
            fs.write_bytes(p, os.urandom(rnd.randrange(1, 90_000)))
            paths.append(p)
        fs.close()
    sums = {k: sha(tmp_path / f"u{k}.vfs") for k in range(3)}
    top = VFS(str(tmp_path / "top.vfs"))
    try:
        for k in range(3):
            top.add_underlay(str(tmp_path / f"u{k}.vfs"), priority=k)
        for step in range(250):
            op = rnd.randrange(9)
            p = rnd.choice(paths)
            d = p.rsplit("/", 2)[0]
            try:
                if op == 0:
                    top.remove(p)
                elif op == 1:
                    top.rmtree(d)
                elif op == 2:
                    top.rename(p, p + ".moved")
                elif op == 3:
                    top.rename(d, d + "_moved")
                elif op == 4:
                    with top.open(p, "ab") as f:
                        f.write(b"more")
                elif op == 5:
                    top.write_bytes(p, b"over")
                elif op == 6:
                    top.mkdir(d)
                elif op == 7:
                    top.copytree(d, d + "_copy")
                else:
                    with top.open(p, "r+b") as f:
                        f.write(b"patch")
            except OSError:
                pass
            if step % 50 == 0:
                list(top.walk("/"))
    finally:
        top.close()
    assert {k: sha(tmp_path / f"u{k}.vfs") for k in range(3)} == sums
    assert not any((tmp_path / f"u{k}.vfs-wal").exists() and
                   (tmp_path / f"u{k}.vfs-wal").stat().st_size for k in range(3))


def test_manifest_and_check_layers(game):
    user, _mod, tmp = game
    assert user.check_layers() == [
        {"problem": "added", "name": n, "recorded_uuid": None, "current_uuid": u,
         "db_path": p} for n, u, p in [(x["name"], x["uuid"], x["db_path"])
                                       for x in user.list_layers()[1:]]]
    user.write_text("/save/slot.json", "{}")  # the save is made with this stack
    assert user.check_layers() == []
    ident = user.identity
    assert len(ident["uuid"]) == 36 and ident["chunk_size"] == 65536
    user.describe(name="save 1", version="1.0", description="a save")
    assert user.identity["name"] == "save 1"
    user.close()
    # reopen without the mod, and with a different "dlc"
    other = VFS(str(tmp / "other.vfs"))
    other.write_text("/x", "y")
    other.close()
    again = VFS(str(tmp / "user.vfs"))
    try:
        again.add_underlay(str(tmp / "base.vfs"), priority=0, name="base")
        again.add_underlay(str(tmp / "other.vfs"), priority=10, name="dlc")
        problems = {(p["problem"], p["name"]) for p in again.check_layers()}
        assert problems == {("missing", "mod"), ("changed", "dlc")}
    finally:
        again.close()


def test_underlay_in_an_older_format_is_a_clear_error(tmp_path):
    old = tmp_path / "old.db"
    shutil.copy(FIXTURES / "format_0001.db", old)
    before = old.read_bytes()
    with VFS() as top:
        with pytest.raises(FormatVersionError) as ei:
            top.add_underlay(str(old))
        assert "upgrade" in str(ei.value)
        assert top.list_layers()[1:] == []
    assert old.read_bytes() == before


def test_four_reader_threads_through_layers(game):
    user, _, _ = game
    errors = []
    expect = {p: user.read_bytes(p) for p in ["/game/player_speed.txt",
                                              "/game/levels/level3.txt",
                                              "/game/textures/big.bin"]}

    def reader():
        try:
            for _ in range(50):
                for p, data in expect.items():
                    assert user.read_bytes(p) == data
                assert user.listdir("/game/levels") == ["level1.txt", "level2.txt",
                                                        "level3.txt"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_layers_cannot_change_inside_a_batch(game):
    user, _, _tmp = game
    with user.atomic_batch():
        with pytest.raises(OSError):
            user.remove_underlay("base")
    assert user.remove_underlay("base")


def test_check_accepts_whiteouts_below_whiteouts(tmp_path):
    """Removing or renaming an underlay's directory whites out every entry below it (exact-path
    resolution needs one per entry): check() must not report those as entries whose parent
    is not a directory (it did, for every rename or rmtree of a lower directory)."""
    base = tmp_path / "base.vfs"
    with VFS(base) as b:
        b.write_bytes("/pre/keep.txt", b"k")
        b.write_bytes("/pre/sub/x.bin", b"x" * 5000)
    with VFS(tmp_path / "top.vfs") as fs:
        fs.add_underlay(base, name="base")
        fs.rename("/pre", "/moved")
        fs.rmtree("/moved/sub")
        assert not fs.exists("/pre/keep.txt") and not fs.exists("/pre/sub/x.bin")
        assert fs.info()["whiteouts"] >= 4
        report = fs.check()
        assert report.ok, report.problems
        # A file whose parent is a whiteout is still a problem.
        con = sqlite3.connect(tmp_path / "top.vfs")
        con.execute("INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, "
                    "ctime_ns, mtime_ns, generation) VALUES ('/pre', 'stray', 1, 33188, 0, "
                    "4096, 0, 0, 0)")
        con.commit()
        con.close()
        assert "/pre/stray: its parent '/pre' is not a directory" in fs.check().problems


def test_whiteouts_stay_hidden_in_a_top_opened_alone(tmp_path):
    """A save made over a mod, opened without it (a tool listing the save, the mod
    uninstalled): the whiteouts it holds hide nothing, and must not show as empty files,
    even after writes made without any underlay; a whited-out path can be written again."""
    import subprocess
    import sys

    base = tmp_path / "mod.vfs"
    with VFS(base) as mod:
        mod.write_bytes("/game/a.txt", b"a")
        mod.write_bytes("/game/b.txt", b"b")
        mod.write_bytes("/game/maps/m1", b"m1")
    save = tmp_path / "save.vfs"
    with VFS(save) as fs:
        fs.add_underlay(base, name="mod")
        fs.write_bytes("/game/mine.txt", b"mine")
        fs.remove("/game/a.txt")
        fs.rmtree("/game/maps")
        fs.remove_underlay("mod")
        assert fs.listdir("/game") == ["mine.txt"]
        assert not fs.exists("/game/a.txt")
        fs.write_bytes("/other.txt", b"written with no underlay")  # records an empty stack
    for _ in range(2):
        with VFS(save) as alone:
            assert alone.listdir("/game") == ["mine.txt"]
            assert not alone.exists("/game/maps") and not alone.isfile("/game/a.txt")
            assert sorted(alone.glob("/game/*")) == ["/game/mine.txt"]
            assert [files for _, _, files in alone.walk("/game")] == [["mine.txt"]]
            assert alone.check().ok
        with VFS(save, read_only=True) as alone:
            assert alone.listdir("/game") == ["mine.txt"]
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "vfs_orm", "unpack", str(save), str(out)],
                   check=True, capture_output=True)
    assert sorted(p.name for p in (out / "game").iterdir()) == ["mine.txt"]
    with VFS(save) as fs:
        fs.write_bytes("/game/a.txt", b"new")  # over its whiteout
        assert fs.listdir("/game") == ["a.txt", "mine.txt"]
        fs.add_underlay(base, name="mod")  # the mod back: what was removed stays removed
        assert fs.listdir("/game") == ["a.txt", "b.txt", "mine.txt"]
        assert fs.read_bytes("/game/a.txt") == b"new"


def test_a_threads_first_operation_can_be_a_write_through_the_stack(tmp_path):
    """A thread whose first use of a layered VFS is a write attaches the underlays before its
    transaction begins (it failed with 'no such table: l1.vfs_inodes', EIO; found serving a
    FUSE mount, whose worker threads come and go)."""

    base = tmp_path / "base.vfs"
    with VFS(str(base)) as b:
        b.write_bytes("/data/b.txt", b"base b")
        b.write_bytes("/data/c.txt", b"base c")
    with VFS(str(tmp_path / "save.vfs")) as fs:
        fs.add_underlay(str(base), priority=10, name="base")
        errors: list[BaseException] = []

        def first_write(op):
            try:
                op()
            except BaseException as exc:
                errors.append(exc)

        # and a thread that gets a pooled connection a finished thread had the stack on
        for op in (lambda: fs.remove("/data/b.txt"),
                   lambda: fs.rename("/data/c.txt", "/data/d.txt"),
                   lambda: fs.listdir("/data"), lambda: fs.listdir("/data"),
                   lambda: fs.listdir("/data")):
            t = threading.Thread(target=first_write, args=(op,))
            t.start()
            t.join()
        assert errors == []
        assert fs.listdir("/data") == ["d.txt"]
