"""Solid packs (format 0013): small files stored in groups, each file's value a slice of its
group's plain bytes (``VFS.group_small_files``, ``pack(solid=True)``, the default of release
packs).

Every read path reads a grouped file as it was written (whole, in parts, through a layer, a
checkpoint, a view, an image, a copy, a patch); writes to one leave the others of its group
as they were; a forged slice or group (edited with plain ``sqlite3`` after vfs_orm wrote the
pack, as a broken tool or a player would) is a ``CorruptionError`` for the files that read
it and for nothing else, and a group from another layer is used only if it is the one named.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import struct

import pytest

from tests.test_cli import run
from tests.test_migrations import _migrate, _revision
from tests.test_patches import _stacked
from vfs_orm import (
    FORMAT_REVISION,
    VFS,
    ContractError,
    CorruptionError,
    InvalidOperationError,
    ReadOnlyError,
)
from vfs_orm.content.codec import SLICE
from vfs_orm.copying import copy_tree
from vfs_orm.pack import pack
from vfs_orm.patching import apply_patch, make_patch

_rng = random.Random(13)
_WORDS = [f"token{i}" for i in range(400)]


def _text(n: int) -> bytes:
    return " ".join(_rng.choice(_WORDS) for _ in range(n)).encode()


def _tree(root, count: int = 240) -> dict[str, bytes]:
    """Small similar text files in a few directories, two that do not compress, a big one."""
    files = {f"/mod{i % 6}/file{i}.py": b"# module %d\n" % i + _text(_rng.randint(10, 900))
             for i in range(count)}
    files["/media/icon.png"] = os.urandom(3000)
    files["/media/tiny.bin"] = b"x"
    files["/data/big.txt"] = _text(40_000)  # chunked: not grouped
    for p, data in files.items():
        os.makedirs(os.path.dirname(f"{root}{p}"), exist_ok=True)
        with open(f"{root}{p}", "wb") as f:
            f.write(data)
    return files


def _codecs(path) -> dict[int, int]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT codec, count(*) FROM vfs_inodes "
                                "WHERE data IS NOT NULL GROUP BY codec"))
    finally:
        con.close()


def _reads_right(fs: VFS, files: dict[str, bytes]) -> None:
    for p, data in files.items():
        assert fs.read_bytes(p) == data, p
        assert fs.stat(p).st_size == len(data), p
        assert fs.digest(p) == hashlib.sha256(data).hexdigest(), p
        if len(data) > 40:
            with fs.open(p, "rb") as f:
                f.seek(17)
                assert f.read(20) == data[17:37], p


@pytest.fixture
def solid(tmp_path):
    """(a solid release pack, the files in it, the same tree packed without groups)."""
    src = str(tmp_path / "src")
    files = _tree(src)
    image, plain = str(tmp_path / "solid.vfs"), str(tmp_path / "plain.vfs")
    pack(src, image, compression="zstd", compression_level=19, dictionary=True)
    pack(src, plain, compression="zstd", compression_level=19, dictionary=True, solid=False)
    return image, files, plain


def test_a_release_pack_is_solid_smaller_and_reads_every_file(solid):
    image, files, plain = solid
    codecs = _codecs(image)
    assert codecs.get(SLICE, 0) >= 230 and SLICE not in _codecs(plain)
    assert os.path.getsize(image) < os.path.getsize(plain)
    con = sqlite3.connect(image)
    grouped, = con.execute("SELECT sum(length(data)) FROM vfs_groups").fetchone()
    con.close()
    with VFS(image, read_only=True) as fs:
        assert fs.info()["stored_bytes"] > grouped > 0  # the groups are counted
        _reads_right(fs, files)
        assert sorted(fs.listdir("/mod3")) == sorted(p.rsplit("/", 1)[1] for p in files
                                                     if p.startswith("/mod3/"))
        report = fs.check(deep=True)
        assert report.ok, report.problems


def test_grouped_files_are_written_replaced_and_removed_alone(solid, tmp_path):
    """Writes in place (the slice spilled to a chunk first), appends, truncation, whole
    replacement, removal and renames of grouped files leave the rest of their group as it
    was; a checkpoint taken before holds the old bytes, and restore brings them back."""
    image, files, _ = solid
    path = str(tmp_path / "edit.vfs")
    shutil.copy(image, path)
    want = dict(files)
    with VFS(path) as fs:
        fs.checkpoint("shipped")
        with fs.open("/mod1/file1.py", "r+b") as f:
            f.seek(3)
            f.write(b"EDIT")
        want["/mod1/file1.py"] = files["/mod1/file1.py"][:3] + b"EDIT" + files["/mod1/file1.py"][7:]
        with fs.open("/mod2/file2.py", "ab") as f:
            f.write(b" appended")
        want["/mod2/file2.py"] = files["/mod2/file2.py"] + b" appended"
        with fs.open("/mod3/file3.py", "r+b") as f:
            f.truncate(5)
        want["/mod3/file3.py"] = files["/mod3/file3.py"][:5]
        fs.write_bytes("/mod4/file4.py", b"replaced whole")
        want["/mod4/file4.py"] = b"replaced whole"
        fs.remove("/mod5/file5.py")
        del want["/mod5/file5.py"]
        fs.rename("/mod0/file6.py", "/moved.py")
        want["/moved.py"] = want.pop("/mod0/file6.py")
        _reads_right(fs, want)
        assert fs.check(deep=True).ok
        with fs.open_checkpoint("shipped") as view:
            _reads_right(view, files)
        fs.restore("shipped")
        _reads_right(fs, files)
        assert not fs.exists("/moved.py")
        assert fs.check(deep=True).ok


def test_a_solid_pack_reads_through_layers_images_and_copies(solid, tmp_path):
    image, files, _ = solid
    with _stacked(tmp_path, image) as top:  # a save over the pack
        _reads_right(top, files)
        with top.open("/mod1/file7.py", "ab") as f:  # copied up, then written
            f.write(b"!")
        assert top.read_bytes("/mod1/file7.py") == files["/mod1/file7.py"] + b"!"
        assert top.read_bytes("/mod1/file13.py") == files["/mod1/file13.py"]
    with VFS(image, read_only=True) as fs:
        data = fs.to_bytes()
        copy = VFS(str(tmp_path / "copy.vfs"))
        with copy:
            copy_tree(fs, copy)
            _reads_right(copy, files)
            assert SLICE not in _codecs(str(tmp_path / "copy.vfs"))  # written again, whole
    with VFS.from_bytes(data) as mem:
        _reads_right(mem, files)


def test_patches_between_solid_packs(tmp_path):
    """A patch made between two solid packs lies over the old one and reads as the new one;
    applied, it makes the new tree."""
    old_src, new_src = str(tmp_path / "old"), str(tmp_path / "new")
    old_files = _tree(old_src, 120)
    new_files = dict(old_files)
    new_files["/mod1/file1.py"] = old_files["/mod1/file1.py"] + b"\nchanged = True\n"
    new_files["/mod2/added.py"] = b"# added\n" + _text(300)
    shutil.copytree(old_src, new_src)
    for p in ("/mod1/file1.py", "/mod2/added.py"):
        with open(f"{new_src}{p}", "wb") as f:
            f.write(new_files[p])
    old, new, patch = (str(tmp_path / n) for n in ("old.vfs", "new.vfs", "patch.vfs"))
    for src, image in ((old_src, old), (new_src, new)):
        pack(src, image, compression="zstd", compression_level=19, dictionary=True)
        assert _codecs(image).get(SLICE)
    make_patch(old, new, patch)
    with _stacked(tmp_path, old, patch) as top:
        _reads_right(top, new_files)
    out = str(tmp_path / "applied.vfs")
    apply_patch(old, patch, output=out)
    with VFS(out, read_only=True) as fs:
        _reads_right(fs, new_files)


def _slices(path) -> list[tuple[int, str, int, int, int]]:
    """(row id, name, group id, offset, length) of every slice."""
    con = sqlite3.connect(path)
    try:
        return [(k, name, *struct.unpack(">qII", data)) for k, name, data in con.execute(
            "SELECT id, name, data FROM vfs_inodes WHERE codec = ? ORDER BY id", (SLICE,))]
    finally:
        con.close()


def _forge(path, what: str) -> tuple[set[str], set[str]]:
    """Damage a solid pack with plain SQL; (names that must read as damaged, names of
    grouped files that must still read)."""
    slices = _slices(path)
    groups: dict[int, list[str]] = {}
    for _, name, gid, _, _ in slices:
        groups.setdefault(gid, []).append(name)
    first, second = list(groups)[:2]
    k, name, gid, start, length = slices[0]
    con = sqlite3.connect(path)
    try:
        if what == "past the end":
            con.execute("UPDATE vfs_inodes SET data = ? WHERE id = ?",
                        (struct.pack(">qII", gid, 1 << 20, length), k))
            bad = {name}
        elif what == "missing group":
            con.execute("UPDATE vfs_inodes SET data = ? WHERE id = ?",
                        (struct.pack(">qII", 12345, start, length), k))
            bad = {name}
        elif what == "short slice":
            con.execute("UPDATE vfs_inodes SET data = ? WHERE id = ?",
                        (struct.pack(">qI", gid, start), k))
            bad = {name}
        elif what == "another group's bytes":  # a valid frame, with the first group's sums
            data, = con.execute("SELECT data FROM vfs_groups WHERE id = ?", (second,)).fetchone()
            con.execute("UPDATE vfs_groups SET data = ? WHERE id = ?", (data, first))
            bad = set(groups[first])
        elif what == "wrong digest":
            con.execute("UPDATE vfs_groups SET digest = zeroblob(32) WHERE id = ?", (first,))
            bad = set(groups[first])
        elif what == "a group that is a slice":
            con.execute("UPDATE vfs_groups SET codec = ? WHERE id = ?", (SLICE, first))
            bad = set(groups[first])
        elif what == "a huge group":  # 64 MiB stored as is: never fetched, let alone hashed
            con.execute("UPDATE vfs_groups SET codec = 0, data = zeroblob(?) WHERE id = ?",
                        (64 << 20, first))
            bad = set(groups[first])
        elif what == "a bomb":  # claims 64 MiB of zeros
            import zstandard
            bomb = zstandard.ZstdCompressor(level=3).compress(bytes(64 << 20))
            con.execute("UPDATE vfs_groups SET codec = 2, data = ? WHERE id = ?", (bomb, first))
            bad = set(groups[first])
        else:
            raise AssertionError(what)
        con.commit()
    finally:
        con.close()
    return bad, set(groups[second]) - bad


@pytest.mark.parametrize("what", ["past the end", "missing group", "short slice",
                                  "another group's bytes", "wrong digest",
                                  "a group that is a slice", "a huge group", "a bomb"])
def test_a_forged_slice_or_group_is_corruption_for_its_files_only(solid, tmp_path, what):
    image, files, _ = solid
    path = str(tmp_path / "forged.vfs")
    shutil.copy(image, path)
    bad, good = _forge(path, what)
    before = open(path, "rb").read()
    by_name = {p.rsplit("/", 1)[1]: p for p in files}
    with VFS(path, read_only=True) as fs:
        for name in bad:
            with pytest.raises(CorruptionError) as caught:
                fs.read_bytes(by_name[name])
            if what == "a huge group":  # refused by its stored length alone
                assert "stored in more than 1048576 bytes" in str(caught.value)
        assert good
        for name in good:
            assert fs.read_bytes(by_name[name]) == files[by_name[name]]
        assert fs.read_bytes("/data/big.txt") == files["/data/big.txt"]
        problems = fs.check(deep=True).problems
        assert {p.split(":")[0].rsplit("/", 1)[1] for p in problems} >= bad
    assert open(path, "rb").read() == before


def test_a_group_from_a_forged_layer_is_never_used(solid, tmp_path):
    """Groups are found by id in any layer, bottom first: a layer holding a row under a
    group's id that is not that group (its digest differs) is passed over, and the group is
    read from the layer that holds it."""
    image, files, _ = solid
    forged = str(tmp_path / "forged.vfs")
    shutil.copy(image, forged)
    bad, _ = _forge(forged, "another group's bytes")
    con = sqlite3.connect(forged)  # the forged layer shows none of the files itself
    con.execute("DELETE FROM vfs_inodes WHERE parent IS NOT NULL AND parent != ''")
    con.commit()
    con.close()
    with _stacked(tmp_path, forged, image) as top:
        _reads_right(top, files)
    assert bad


def test_group_small_files_on_an_existing_database(tmp_path):
    path = str(tmp_path / "save.vfs")
    files = {f"/saves/slot{k}.json": b'{"slot": %d, "gold": %d, "notes": "%s"}' %
             (k, k * 7, _text(40)) for k in range(150)}
    with VFS(path, compression="zstd") as fs:
        fs.write_files(list(files.items()))
        assert fs.group_small_files(size=16 << 10) > 3
        _reads_right(fs, files)
        assert fs.group_small_files() == 0  # nothing left to group
        fs.write_bytes("/saves/new.json", b'{"slot": 999}' * 10)  # stored on its own
        assert fs.check(deep=True).ok
    assert _codecs(path)[SLICE] == 150
    with VFS(path, read_only=True) as fs:
        _reads_right(fs, files)
        with pytest.raises(ReadOnlyError):
            fs.group_small_files()
    with VFS(str(tmp_path / "plain.vfs")) as fs, pytest.raises(ContractError):
        fs.group_small_files()
    with VFS(path) as fs:
        for bad in (100, 4 << 20, "64K"):
            with pytest.raises(ContractError):
                fs.group_small_files(size=bad)  # type: ignore[arg-type]
        with fs.atomic_batch(), pytest.raises(InvalidOperationError):
            fs.group_small_files()


def test_the_downgrade_is_refused_while_groups_are_stored(solid, tmp_path):
    image, files, plain = solid
    path = str(tmp_path / "d.vfs")
    shutil.copy(image, path)
    before = open(path, "rb").read()
    with pytest.raises(RuntimeError, match="repack it with the older release"):
        _migrate(path, "0012")
    assert open(path, "rb").read() == before and _revision(path) == FORMAT_REVISION
    other = str(tmp_path / "p.vfs")
    shutil.copy(plain, other)  # no groups: down and up again
    _migrate(other, "0012")
    assert _revision(other) == "0012"
    _migrate(other, "head")
    with VFS(other, read_only=True) as fs:
        _reads_right(fs, files)


def test_the_cli_packs_solid_at_release_levels(tmp_path):
    src = str(tmp_path / "src")
    files = _tree(src, 80)
    for args, grouped in ((["--level", "19", "--dict"], True),
                          (["--level", "19", "--no-solid"], False),
                          (["--solid"], True), ([], False)):
        image = tmp_path / f"p{len(args)}{grouped}.vfs"
        code, _, err = run("pack", src, image, "--compress", "zstd", *args, "-q")
        assert code == 0, err
        assert (SLICE in _codecs(image)) is grouped, args
        with VFS(str(image), read_only=True) as fs:
            _reads_right(fs, files)
    code, _, err = run("pack", src, tmp_path / "x.vfs", "--solid", "-q")
    assert code != 0 and "--solid needs --compress" in err


def test_a_postgresql_tree_groups_its_small_files(pg_url, pg_tree):
    files = {f"/cfg/{k}.ini": b"[section]\nkey=%d\n" % k + _text(60) for k in range(80)}
    with VFS(pg_url, tree=pg_tree, compression="zstd") as fs:
        fs.write_files(list(files.items()))
        fs.checkpoint("before")
        assert fs.group_small_files(size=8 << 10) > 1
        _reads_right(fs, files)
        fs.write_bytes("/cfg/3.ini", b"changed")
        with fs.open_checkpoint("before") as view:
            _reads_right(view, files)
        assert fs.check(deep=True).ok
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        assert fs.read_bytes("/cfg/3.ini") == b"changed"
        _reads_right(fs, {p: d for p, d in files.items() if p != "/cfg/3.ini"})


def test_a_database_that_takes_a_solid_image_reads_its_grouped_files(solid, tmp_path):
    """``deserialize_iter`` of a solid pack into a database that held no groups: its slices
    are read with bases from then on (and a plain image taken back reads without them)."""
    image, files, plain = solid
    path = str(tmp_path / "took.vfs")
    with VFS(path, compression="zstd") as fs:
        fs.write_bytes("/before.txt", b"replaced by the image")
        with open(image, "rb") as f:
            fs.deserialize_iter(f.read())
        _reads_right(fs, files)
        assert not fs.exists("/before.txt")
        with open(plain, "rb") as f:
            fs.deserialize_iter(f.read())
        assert fs._content.bases is None
        _reads_right(fs, files)


def test_a_dictionary_trained_after_grouping_and_a_slice_spilled_to_a_chunk(tmp_path):
    """``train_dictionary`` over a grouped database recompresses what it can and reads every
    slice (groups stay as they were); a truncation that extends a grouped file moves its slice
    to chunk 0 as it is, where it reads and checks, before the dictionary and after."""
    path = str(tmp_path / "t.vfs")
    files = {f"/notes/{k}.txt": b"note %d: " % k + _text(120) for k in range(120)}
    with VFS(path, compression="zstd") as fs:
        fs.write_files(list(files.items()))
        assert fs.group_small_files(size=8 << 10) > 1
        with fs.open("/notes/1.txt", "r+b") as f:
            f.truncate(len(files["/notes/1.txt"]) + 7)
        files["/notes/1.txt"] += bytes(7)
        con = sqlite3.connect(path)
        try:
            assert con.execute("SELECT count(*) FROM vfs_chunks WHERE codec = ?",
                               (SLICE,)).fetchone() == (1,)
        finally:
            con.close()
        _reads_right(fs, files)
        fs.train_dictionary()
        _reads_right(fs, files)
        report = fs.check(deep=True)
        assert report.ok, report.problems
    assert _codecs(path).get(SLICE, 0) >= 100
    with VFS(path, read_only=True) as fs:
        _reads_right(fs, files)


def test_a_damaged_group_is_decoded_once_for_all_its_slices(solid, tmp_path):
    """Every file of a group whose row does not check reads as damaged, but the row is read
    (and decoded) once, not once per file; another VFS of the same stack tries again."""
    image, files, _ = solid
    path = str(tmp_path / "forged.vfs")
    shutil.copy(image, path)
    bad, good = _forge(path, "wrong digest")
    by_name = {p.rsplit("/", 1)[1]: p for p in files}
    assert len(bad) > 3
    for _ in range(2):
        with VFS(path, read_only=True) as fs:
            fetched: list[str] = []
            fs._live_uow().raw().set_trace_callback(
                lambda sql: fetched.append(sql) if "FROM vfs_groups" in sql else None)
            for name in sorted(bad) * 2:
                with pytest.raises(CorruptionError, match="does not match its SHA-256"):
                    fs.read_bytes(by_name[name])
            assert len(fetched) == 1, fetched
            for name in good:
                assert fs.read_bytes(by_name[name]) == files[by_name[name]]


def test_slices_are_read_with_bases_from_the_moment_they_are_committed(tmp_path):
    """Another thread of the VFS may read a grouped file as soon as ``group_small_files``
    commits: its reads have bases already then (they had none until the commit's end, and
    such a read was a CorruptionError). A call that groups nothing leaves them as they were."""
    path = str(tmp_path / "t.vfs")
    files = {f"/cfg/{k}.ini": b"[s]\nkey=%d\n" % k + _text(80) for k in range(60)}
    with VFS(path, compression="zstd") as fs:
        fs.write_files(list(files.items()))
        at_commit: list[bool] = []
        fs._live_uow().raw().set_trace_callback(
            lambda sql: at_commit.append(fs._content.bases is not None)
            if sql.startswith("COMMIT") else None)
        assert fs.group_small_files(size=4 << 10) > 1
        assert at_commit == [True]
        fs._live_uow().raw().set_trace_callback(None)
        _reads_right(fs, files)
    with VFS(str(tmp_path / "flat.vfs"), compression="zstd") as fs:
        fs.write_bytes("/one.txt", _text(300))  # one file: no group of two
        assert fs.group_small_files() == 0
        assert fs._content.bases is None and fs._read_content.bases is None


def test_grouping_again_over_a_damaged_group_writes_it_again(tmp_path):
    """Files back in their own values (a checkpoint from before the groups, restored) whose
    group is damaged meanwhile: grouped again, they make the same group (the same id), which
    is written again whole, not taken as it is (that made every one of them unreadable)."""
    path = str(tmp_path / "t.vfs")
    files = {f"/lvl/{k}.json": b'{"level": %d, "text": "%s"}' % (k, _text(60)) for k in range(40)}
    with VFS(path, compression="zstd") as fs:
        fs.write_files(list(files.items()))
        fs.checkpoint("pre")
        assert fs.group_small_files(size=512 << 10) == 1
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_groups SET data = zeroblob(100)")
    con.commit()
    con.close()
    with VFS(path) as fs:
        with pytest.raises(CorruptionError):
            fs.read_bytes("/lvl/3.json")  # found damaged (and remembered)
        fs.restore("pre")
        _reads_right(fs, files)
        assert fs.group_small_files(size=512 << 10) == 1
        _reads_right(fs, files)
        assert fs.check(deep=True).ok
    assert _codecs(path)[SLICE] == len(files)
