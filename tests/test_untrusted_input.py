"""Bad input gets the library's own error, never a raw one, and never loses a file (#27).

Each test here failed on the code before it: raw ``UnicodeEncodeError``/``RecursionError``/
``OverflowError``/SQLAlchemy errors, tracebacks from the CLI, files created by a read, a
write that returned and could not be read back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfs_orm import VFS, InvalidOperationError, InvalidPathError, IsADirError, VFSError

SURROGATE = "/saves/\udc80player.json"  # what os.fsdecode makes of an undecodable byte


@pytest.mark.parametrize("call", [
    lambda fs: fs.read_bytes(SURROGATE),
    lambda fs: fs.write_text(SURROGATE, "x"),
    lambda fs: fs.stat(SURROGATE),
    lambda fs: fs.exists(SURROGATE),
    lambda fs: fs.rename("/ok.txt", SURROGATE),
    lambda fs: fs.glob("/saves/*\udc80*"),
    lambda fs: fs.open(SURROGATE, "wb"),
    lambda fs: fs.makedirs(SURROGATE),
], ids=["read", "write", "stat", "exists", "rename", "glob", "open", "makedirs"])
def test_unpaired_surrogates_are_invalid_paths(vfs, call):
    vfs.write_text("/ok.txt", "kept")
    with pytest.raises(InvalidPathError, match="surrogate"):
        call(vfs)
    assert vfs.read_text("/ok.txt") == "kept" and vfs.listdir("/") == ["ok.txt"]


def test_unpaired_surrogates_through_fsspec(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("vfsorm", db=str(tmp_path / "p.vfs"), skip_instance_cache=True)
    fs.pipe_file("/ok", b"x")
    with pytest.raises(InvalidPathError):
        fs.pipe_file(SURROGATE, b"x")
    with pytest.raises(InvalidPathError):
        fs.cat_file(SURROGATE)
    fs.close()


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"times": (0.0, float("nan"))}, InvalidOperationError),
    ({"times": (0.0, float("inf"))}, InvalidOperationError),
    ({"times": (0.0, 1e300)}, InvalidOperationError),
    ({"ns": (0, 2**70)}, InvalidOperationError),
    ({"ns": (0, 1.5)}, TypeError),
    ({"times": (0, "yesterday")}, TypeError),
    ({"times": 5}, TypeError),
])
def test_utime_out_of_range_or_not_a_number(vfs, kwargs, error):
    vfs.write_text("/t", "x")
    before = vfs.stat("/t").st_mtime_ns
    with pytest.raises(error):
        vfs.utime("/t", **kwargs)
    assert vfs.stat("/t").st_mtime_ns == before
    assert issubclass(InvalidOperationError, ValueError)


DEPTH = 1200  # deeper than Python's recursion limit


@pytest.fixture
def deep_pack(tmp_path) -> str:
    path = str(tmp_path / "deep.vfs")
    with VFS(path) as fs:
        fs.makedirs("/" + "/".join(f"d{i}" for i in range(DEPTH)))
        fs.write_text("/" + "/".join(f"d{i}" for i in range(DEPTH)) + "/leaf.txt", "bottom")
        fs.write_text("/top.txt", "top")
    return path


def test_deep_trees_walk_without_recursion(deep_pack):
    with VFS(deep_pack, read_only=True) as fs:
        walked = list(fs.walk("/"))
        assert len(walked) == DEPTH + 1 and walked[0] == ("/", ["d0"], ["top.txt"])
        assert walked[-1][2] == ["leaf.txt"]
        bottom_up = list(fs.walk("/", topdown=False))
        assert bottom_up[0][2] == ["leaf.txt"] and bottom_up[-1][0] == "/"
        assert sorted(walked) == sorted(bottom_up)
        assert len(fs.glob("/**/leaf.txt")) == 1
        deep = "/" + "/".join(f"D{i}" for i in range(DEPTH))
        assert not fs.exists(deep + "/LEAF.txt")


def test_deep_trees_through_the_cli(deep_pack, tmp_path):
    cli = [sys.executable, "-m", "vfs_orm"]
    tree = subprocess.run(cli + ["tree", deep_pack], capture_output=True, text=True)
    assert tree.returncode == 0 and "Traceback" not in tree.stderr, tree.stderr[-500:]
    assert tree.stdout.rstrip().endswith(f"{DEPTH} directories, 2 files")
    out = tmp_path / "out"
    unpack = subprocess.run(cli + ["unpack", deep_pack, str(out)], capture_output=True,
                            text=True)
    assert "Traceback" not in unpack.stderr, unpack.stderr[-500:]
    assert unpack.returncode == 1 and "deeper than 256 directory levels" in unpack.stderr
    assert (out / "top.txt").read_text() == "top"
    assert len(list(out.rglob("*"))) == 256 + 1  # the levels it took, and top.txt


def test_case_insensitive_write_after_remove_over_two_spellings(tmp_path):
    """A case-insensitive save over a case-sensitive base holding "A.txt" and "a.txt":
    removing one spelling then writing another returned, and every spelling then raised
    FileNotFoundError (two whiteouts of one folded key)."""
    base = str(tmp_path / "base.vfs")
    with VFS(base) as fs:
        fs.write_text("/A.txt", "upper")
        fs.write_text("/a.txt", "lower")
        fs.write_text("/Dir/x", "1")
        fs.write_text("/dir/X", "2")
    with VFS(str(tmp_path / "save.vfs"), case_insensitive=True) as save:
        save.add_underlay(base, priority=1)
        save.remove("/a.txt")
        assert not save.exists("/A.TXT")
        save.write_text("/a.TXT", "mine")
        assert [save.read_text(p) for p in ("/a.TXT", "/a.txt", "/A.txt")] == ["mine"] * 3
        save.rmtree("/dir")
        save.write_text("/DIR/x", "again")
        assert save.read_text("/dir/X") == "again" and save.listdir("/dir") == ["x"]
        assert save.check().ok
    with VFS(str(tmp_path / "save.vfs"), case_insensitive=True) as reopened:
        reopened.add_underlay(base, priority=1)
        assert reopened.read_text("/A.TXT") == "mine"


@pytest.mark.parametrize("top", ["file", "memory", "image"])
def test_a_file_underlay_under_every_kind_of_top(tmp_path, top):
    """An in-memory top (memdb) ATTACHed the underlay's name as a new, empty memory database:
    "no such table: l1.vfs_inodes" on the first read."""
    base = str(tmp_path / "base.vfs")
    with VFS(base) as fs:
        fs.write_text("/levels/1.json", "{}")
    fs = {"file": lambda: VFS(str(tmp_path / "top.vfs")), "memory": VFS,
          "image": lambda: VFS.from_bytes(VFS().to_bytes())}[top]()
    with fs:
        fs.add_underlay(base, priority=1)
        assert fs.listdir("/") == ["levels"] and fs.read_text("/levels/1.json") == "{}"
        fs.write_text("/levels/2.json", "[]")
        assert fs.listdir("/levels") == ["1.json", "2.json"]


def test_a_directory_is_not_a_database(tmp_path):
    for read_only in (False, True):
        with pytest.raises(IsADirError):
            VFS(str(tmp_path), read_only=read_only)


@pytest.mark.parametrize("url", ["postgresql+psycopg://u:secret@h:notaport/db",
                                 "postgresql://u:secret@[::1/db"])
def test_malformed_postgresql_urls(url):
    pytest.importorskip("psycopg")
    with pytest.raises(InvalidPathError, match="not a valid PostgreSQL URL") as info:
        VFS(url, tree="t")
    assert "secret" not in str(info.value)


def test_a_missing_postgresql_database_is_not_a_lost_connection(pg_url):
    missing = pg_url.replace("@/postgres", "@/no_such_database")
    assert missing != pg_url
    with pytest.raises(VFSError, match="cannot connect") as info:
        VFS(missing, tree="t")
    assert "no_such_database" in str(info.value) and "lost" not in str(info.value)
    out = subprocess.run([sys.executable, "-m", "vfs_orm", "diff", missing, missing,
                          "--tree", "t"], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "cannot connect" in out.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfs_orm", *args], capture_output=True,
                          text=True)


def test_pack_refuses_an_existing_image_unless_forced(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    precious = tmp_path / "notes.txt"
    precious.write_text("not a database")
    out = _cli("pack", str(src), str(precious))
    assert out.returncode == 1 and "exists" in out.stderr
    out = _cli("pack", "--force", str(src), str(precious))  # --force: only over a database
    assert out.returncode == 1 and precious.read_text() == "not a database"
    image = tmp_path / "pack.vfs"
    assert _cli("pack", str(src), str(image)).returncode == 0
    (src / "b.txt").write_text("b")
    assert _cli("pack", str(src), str(image)).returncode == 1
    assert _cli("pack", "--force", str(src), str(image)).returncode == 0
    with VFS(str(image), read_only=True) as fs:
        assert fs.listdir("/") == ["a.txt", "b.txt"]


def test_pack_skips_what_it_cannot_pack(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "keep.txt").write_text("kept")
    os.symlink("loop2", src / "loop1")
    os.symlink("loop1", src / "loop2")
    os.symlink("nowhere", src / "dangling")
    os.mkfifo(src / "fifo")
    Path(os.fsdecode(bytes(src) + b"/bad\xff.txt")).write_text("x")
    image = tmp_path / "pack.vfs"
    out = _cli("pack", str(src), str(image))
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 5, warnings
    assert sum("not valid UTF-8" in w for w in warnings) == 1
    assert sum("leads nowhere" in w for w in warnings) == 3
    with VFS(str(image), read_only=True) as fs:
        assert fs.listdir("/") == ["sub"] and fs.read_text("/sub/keep.txt") == "kept"


def test_listings_end_quietly_on_a_closed_pipe(tmp_path):
    image = str(tmp_path / "pack.vfs")
    with VFS(image) as fs:
        fs.write_files({f"/d/f{i:05}": b"" for i in range(5000)})
    for args in (["ls", image, "/d"], ["ls", "-l", image, "/d"], ["tree", image]):
        shell = " ".join([sys.executable, "-m", "vfs_orm", *args]) + " | head -1"
        out = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                             text=True)
        assert out.returncode == 0 and out.stderr == "", (args, out.stderr)


def test_fsspec_reads_never_create_or_rewrite_a_database(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    missing, empty = tmp_path / "missing.vfs", tmp_path / "empty.vfs"
    empty.write_bytes(b"")
    for db in (missing, empty):
        fs = fsspec.filesystem("vfsorm", db=str(db), skip_instance_cache=True)
        assert not fs.exists("/a") if db is missing else True
        with pytest.raises(VFSError):
            fs.ls("/")
        with pytest.raises(VFSError), fsspec.open(f"vfsorm:///a::file://{db}", "rb") as f:
            f.read()
        fs.close()
    assert not missing.exists() and empty.read_bytes() == b""
    with pytest.raises(IsADirError):
        fsspec.filesystem("vfsorm", db=str(tmp_path), skip_instance_cache=True).ls("/")
    fs = fsspec.filesystem("vfsorm", db=str(missing), skip_instance_cache=True)
    fs.pipe_file("/a", b"written")  # the first write creates it
    assert fs.cat_file("/a") == b"written" and missing.exists()
    fs.close()
