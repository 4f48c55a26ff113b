"""The vfs-orm command line, through the real entry point (python -m vfs_orm)."""

import filecmp
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from vfs_orm import VFS
from vfs_orm.cli import cli
from vfs_orm.content import block_sums

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMANDS = ["pack", "unpack", "ls", "tree", "cat", "put", "get", "rm", "mv", "stat", "info",
            "which", "check", "compact", "upgrade", "demo", "checkpoint", "checkpoints",
            "restore", "drop-checkpoint"]


def run(*args, input=None, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "vfs_orm", *map(str, args)],
                          capture_output=True, input=input, cwd=cwd, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr.decode()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.vfs"
    with VFS(str(path)) as fs:
        fs.write_text("/game/config.json", '{"a": 1}')
        fs.write_bytes("/game/data/blob.bin", os.urandom(100_000))
        fs.mkdir("/empty")
    return path


def test_help_for_every_command():
    code, top, _ = run("--help")
    assert code == 0
    for cmd in COMMANDS:
        assert re.search(rf"^\s+{cmd}\s", top.decode(), re.M), cmd
        code, out, err = run(cmd, "--help")
        assert code == 0 and b"Usage" in out, (cmd, err)


def test_every_command_is_in_the_guide():
    """The command-line guide (docs/guide/cli.md) shows every command; the generated
    reference (docs/reference/cli.md) lists them all by construction."""
    guide = (ROOT / "docs" / "guide" / "cli.md").read_text()
    for cmd in sorted(cli.commands):  # type: ignore[attr-defined]
        assert f"vfs-orm {cmd}" in guide, cmd


def test_browse_and_edit(image, tmp_path):
    code, out, err = run("ls", image, "/game")
    assert code == 0 and out.decode().split() == ["config.json", "data"]
    code, out, _ = run("ls", "-l", image, "/game")
    assert code == 0 and "config.json" in out.decode() and out.decode().startswith("-")
    code, out, _ = run("tree", image)
    assert code == 0 and "blob.bin" in out.decode() and "3 directories, 2 files" in out.decode()
    code, out, _ = run("cat", image, "/game/config.json")
    assert code == 0 and out == b'{"a": 1}'
    local = tmp_path / "local.txt"
    local.write_text("from disk")
    assert run("put", image, local, "/game/new.txt")[0] == 0
    assert run("cat", image, "/game/new.txt")[1] == b"from disk"
    dest = tmp_path / "out.bin"
    assert run("get", image, "/game/data/blob.bin", dest)[0] == 0
    with VFS(str(image), read_only=True) as fs:
        assert dest.read_bytes() == fs.read_bytes("/game/data/blob.bin")
    assert run("mv", image, "/game/new.txt", "/moved.txt")[0] == 0
    code, out, _ = run("stat", "--json", image, "/moved.txt")
    assert code == 0 and json.loads(out)["size"] == 9
    assert run("rm", image, "/moved.txt")[0] == 0
    code, _, err = run("rm", image, "/game")
    assert code == 1 and "use -r" in err
    assert run("rm", "-r", image, "/game")[0] == 0
    code, out, _ = run("info", "--json", image)
    data = json.loads(out)
    assert code == 0 and data["files"] == 0 and data["directories"] == 1
    assert data["revision"] == data["head"] and data["page_size"] == 4096
    code, out, _ = run("check", image)
    assert code == 0 and b"ok" in out


def test_layers_on_the_command_line(tmp_path):
    base, top = tmp_path / "base.vfs", tmp_path / "top.vfs"
    with VFS(str(base)) as fs:
        fs.write_text("/a.txt", "base")
        fs.write_text("/b.txt", "base")
    with VFS(str(top)) as fs:
        fs.write_text("/a.txt", "top")
    code, out, _ = run("ls", "-l", top, "-u", f"{base}:5:basepack")
    lines = out.decode().splitlines()
    assert code == 0 and "[local]  a.txt" in lines[0] and "[basepack]  b.txt" in lines[1]
    code, out, _ = run("which", top, "/b.txt", "--underlay", f"{base}:0:basepack")
    assert code == 0 and out.decode().strip() == "basepack"
    code, out, _ = run("cat", top, "/b.txt", "-u", str(base))
    assert out == b"base"


def test_wrong_paths_and_non_vfs_files_give_one_line_and_exit_1(tmp_path, image):
    missing = tmp_path / "missing.vfs"
    junk = tmp_path / "junk.vfs"
    junk.write_bytes(b"this is not a database" * 100)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    local = tmp_path / "x.txt"
    local.write_text("x")
    calls = {
        "unpack": lambda img: ("unpack", img, tmp_path / "dest"),
        "ls": lambda img: ("ls", img), "tree": lambda img: ("tree", img),
        "cat": lambda img: ("cat", img, "/nope"), "put": lambda img: ("put", img, local, "/x"),
        "get": lambda img: ("get", img, "/nope", tmp_path / "got"),
        "rm": lambda img: ("rm", img, "/nope"), "mv": lambda img: ("mv", img, "/a", "/b"),
        "stat": lambda img: ("stat", img, "/nope"), "info": lambda img: ("info", img),
        "which": lambda img: ("which", img, "/nope"), "check": lambda img: ("check", img),
        "upgrade": lambda img: ("upgrade", img),
    }
    for name, make in calls.items():
        for img in (missing, junk, other):
            if name == "put" and img == missing:
                continue  # put creates a new image
            code, _, err = run(*make(img))
            assert code == 1, (name, img, err)
            assert "Traceback" not in err and err.strip().count("\n") == 0, (name, err)
            assert err.startswith("Error: "), (name, err)
        # and a wrong path inside a good image
        if name in ("cat", "get", "rm", "stat", "which"):
            code, _, err = run(*make(image))
            assert code == 1 and "Traceback" not in err and err.startswith("Error: "), (name, err)
    assert run("put", image, tmp_path / "nofile", "/x")[0] == 1
    assert run("pack", tmp_path / "nodir", tmp_path / "p.vfs")[0] == 1
    code, _, err = run("ls")  # usage error
    assert code == 2


def test_pack_unpack_roundtrip_of_a_stdlib_package(tmp_path):
    import email
    src = tmp_path / "src"
    shutil.copytree(os.path.dirname(email.__file__), src,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (src / "empty_dir").mkdir()
    os.chmod(src / "__init__.py", 0o640)
    img = tmp_path / "email.vfs"
    code, _out, err = run("pack", "--quiet", src, img)
    assert code == 0, err
    dest = tmp_path / "dest"
    code, _out, err = run("unpack", img, dest)
    assert code == 0, err
    cmp = filecmp.dircmp(src, dest)

    def same(c):
        assert not c.left_only and not c.right_only and not c.diff_files and not c.funny_files
        for sub in c.subdirs.values():
            same(sub)

    same(cmp)
    for dirpath, dirs, files in os.walk(src):
        for name in files + dirs:
            a = os.path.join(dirpath, name)
            b = os.path.join(dest, os.path.relpath(a, src))
            if os.path.isfile(a):
                assert open(a, "rb").read() == open(b, "rb").read()
                assert os.stat(a).st_mtime_ns == os.stat(b).st_mtime_ns, a
                assert stat.S_IMODE(os.stat(a).st_mode) == stat.S_IMODE(os.stat(b).st_mode)
    assert (dest / "empty_dir").is_dir()
    assert os.stat(src / "empty_dir").st_mtime_ns == os.stat(dest / "empty_dir").st_mtime_ns


def test_pack_refuses_links_out_and_special_files(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "real.txt").write_text("inside")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, src / "leak.txt")
    os.symlink(src / "sub" / "real.txt", src / "alias.txt")
    os.symlink(tmp_path, src / "dirlink")
    os.mkfifo(src / "pipe")
    img = tmp_path / "p.vfs"
    code, _out, err = run("pack", src, img)
    assert code == 0
    assert "leak.txt: symlink pointing outside" in err and "pipe: special file" in err
    assert "dirlink" in err
    with VFS(str(img), read_only=True) as fs:
        assert fs.listdir("/") == ["alias.txt", "sub"]
        assert fs.read_text("/alias.txt") == "inside"
        assert not any(b"outside" in fs.read_bytes(f"{d}/{f}".replace("//", "/"))
                       for d, _, fl in fs.walk("/") for f in fl)


def test_pack_keeps_links_as_links_when_asked(tmp_path):
    """--symlinks keep stores every link as a link, its target as written (inside, outside,
    to a directory, dangling): nothing is followed, so nothing outside SRC is read; a target
    that cannot be stored (not UTF-8) is skipped with a warning. The default still packs a
    link to a file inside as its content."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "real.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", src / "leak.txt")
    os.symlink("sub/real.txt", src / "alias.txt")
    os.symlink("sub", src / "dirlink")
    os.symlink("nowhere", src / "dangling")
    os.symlink(b"bad\xff", os.fsencode(src / "badname"))
    os.utime(src / "alias.txt", ns=(1_000_000_000, 1_000_000_000), follow_symlinks=False)
    img = tmp_path / "p.vfs"
    code, out, err = run("pack", "--symlinks", "keep", src, img)
    assert code == 0, err
    assert "badname: symlink not stored: its target is not valid UTF-8" in err
    assert b"packed 5 files, 1 directories" in out
    with VFS(str(img), read_only=True) as fs:
        assert fs.listdir("/") == ["alias.txt", "dangling", "dirlink", "leak.txt", "sub"]
        assert fs.readlink("/alias.txt") == "sub/real.txt"
        assert fs.readlink("/leak.txt") == str(tmp_path / "secret.txt")
        assert fs.readlink("/dirlink") == "sub" and fs.readlink("/dangling") == "nowhere"
        assert fs.stat("/alias.txt").st_mtime_ns == 1_000_000_000
        assert fs.read_text("/sub/real.txt") == "inside"
        assert fs.check(deep=True).ok
    code, _out, err = run("pack", src, tmp_path / "copied.vfs")  # the default: copy
    assert code == 0
    with VFS(str(tmp_path / "copied.vfs"), read_only=True) as fs:
        assert fs.read_text("/alias.txt") == "inside" and not fs.exists("/leak.txt")
    code, _out, err = run("pack", "--symlinks", "follow", src, tmp_path / "x.vfs")
    assert code == 2 and "follow" in err


def _hostile(path, names):
    """A database with entries inserted by raw SQL, bypassing every check of the library."""
    with VFS(str(path)) as fs:
        fs.write_text("/ok.txt", "fine")
        fs.mkdir("/dir")
    con = sqlite3.connect(path)
    for parent, name in names:
        cur = con.execute("INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, "
                          "ctime_ns, mtime_ns, generation) VALUES (?, ?, 1, 33188, 4, 65536, "
                          "0, 0, 0)", (parent, name))
        con.execute("INSERT INTO vfs_chunks (id, inode_id, idx, sums, data) VALUES (?, ?, 0, ?, ?)",
                    (cur.lastrowid * 2**32, cur.lastrowid, block_sums(b"evil", cur.lastrowid * 2**32),
                     b"evil"))
    con.commit()
    con.close()


def test_unpack_is_safe_with_hostile_images(tmp_path):
    img = tmp_path / "hostile.vfs"
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    _hostile(img, [("/", ".."), ("/", "../escape.txt"), ("/", "/etc/passwd"),
                   ("/", "a\x00b"), ("/", "bell\x07"), ("/", "C:evil"), ("/dir", ".."),
                   ("/", "README"), ("/", "readme"), ("/", nfc), ("/", nfd),
                   ("/", "back\\slash")])
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, dest / "dir")  # a symlink already in DEST, pointing outside
    os.symlink(outside / "victim.txt", dest / "ok.txt")
    code, _out, err = run("unpack", img, dest)
    assert code == 1 and "refused" in err
    assert list(outside.iterdir()) == []  # nothing written through the symlinks
    assert not (tmp_path / "escape.txt").exists()
    assert (dest / "ok.txt").read_text() == "fine" and not (dest / "ok.txt").is_symlink()
    written = sorted(p.name for p in dest.iterdir())
    assert "README" in written and "readme" not in written
    assert sum(1 for n in written if unicodedata.normalize("NFC", n) == nfc) == 1
    for bad in ("..", "a\x00b", "bell\x07", "C:evil", "back\\slash"):
        assert bad not in written


def test_check_finds_structural_problems(tmp_path, image):
    assert run("check", image)[0] == 0
    con = sqlite3.connect(image)
    con.execute("INSERT INTO vfs_chunks (id, inode_id, idx, sums, data) VALUES (999 * 4294967296, "
                "999, 0, x'', x'00')")  # an orphan chunk
    con.execute("UPDATE vfs_chunks SET data = zeroblob(70000) WHERE idx = 0 AND inode_id = "
                "(SELECT id FROM vfs_inodes WHERE name = 'blob.bin')")
    con.execute("UPDATE vfs_inodes SET data = zeroblob(9) WHERE name = 'config.json'")
    con.execute("UPDATE vfs_inodes SET data = x'00' WHERE name = 'empty'")
    con.execute("INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, ctime_ns, "
                "mtime_ns, generation) VALUES ('/no/such/dir', 'lost.txt', 1, 33188, 0, 65536, "
                "0, 0, 0)")
    con.commit()
    con.close()
    code, _out, err = run("check", image)
    assert code == 1
    assert "belongs to no file" in err
    assert "blob.bin: chunk 0 holds 70000 bytes" in err
    assert "config.json: 9 inline bytes, but file size 8, chunk size 65536" in err
    assert "/empty: 1 inline bytes, but a directory" in err
    assert "/no/such/dir/lost.txt: its parent '/no/such/dir' is not a directory" in err


def test_upgrade_command(tmp_path):
    old = tmp_path / "old.db"
    shutil.copy(FIXTURES / "legacy-seed-format.db", old)
    old.chmod(0o644)
    code, out, err = run("upgrade", "--backup", old)
    assert code == 0 and b"upgraded from legacy" in out, err
    assert list(tmp_path.glob("old.db.bak-legacy"))
    code, out, _ = run("upgrade", old)
    assert code == 0 and b"already at revision" in out


def test_demo_runs(tmp_path):
    code, out, err = run("demo", "--workdir", tmp_path / "demo")
    assert code == 0, err
    text = out.decode()
    for needle in ("packed", "served by dlc", "whiteout", "rolled back", "missing fov-mod",
                   "upgraded to revision", "compacted the old save (vacuum, now "
                   "auto_vacuum=incremental)",
                   # internals come with plain words for a newcomer
                   "a whiteout is a marker", "a revision is a version of the on-disk format",
                   "auto_vacuum=incremental means", "records which layers it was made with"):
        assert needle in text
