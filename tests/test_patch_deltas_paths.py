"""Binary deltas in patch packs (format 0008), from a review: each test failed before its fix
(bases without a stored digest, images of other page sizes, patch images over the wrong
stack, errors naming the right file, bounded base reads, pickled fsspec stacks)."""

from __future__ import annotations

import pickle
import random
import sqlite3

import fsspec
import pytest

from tests.test_patch_deltas import NEW, OLD
from tests.test_patches import _make, _stacked
from vfs_orm import VFS, CorruptionError, PatchBaseError
from vfs_orm.patching import make_patch


def _written_in_place(path, tree: dict[str, bytes]) -> str:
    """A pack of ``tree`` whose files were written through "r+b" handles, as the FUSE mount
    adapter writes every file (create, then write at offsets): no digest is stored."""
    with VFS(path, compression="zstd") as fs:
        for p, data in sorted(tree.items()):
            with fs.open(p, "xb"):
                pass
            with fs.open(p, "r+b") as f:
                f.write(data)
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT count(*) FROM vfs_inodes WHERE kind = 1 "
                           "AND digest IS NULL").fetchone() == (len(tree),)
    finally:
        con.close()
    return str(path)


def test_a_patch_reads_over_an_equal_base_whose_digests_are_not_stored(tmp_path):
    """The stack is accepted (same content digest), but its deltas cannot find their bases:
    ``Bases._map`` only knows files whose digest is stored."""
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    assert make_patch(old, new, patch).deltas == 2
    same = _written_in_place(tmp_path / "same.vfs", OLD)
    with VFS(same, read_only=True) as a, VFS(old, read_only=True) as b:
        assert a.content_digest() == b.content_digest()
    with _stacked(tmp_path, same, patch) as top:  # accepted: the base is OLD's content
        assert top.read_bytes("/big.bin") == NEW["/big.bin"]


def test_make_patch_makes_deltas_against_files_written_in_place(tmp_path):
    """An OLD pack built through the mount (or any "r+b" handle) gets no delta at all:
    ``_store_delta`` silently ships each changed file whole."""
    old = _written_in_place(tmp_path / "old.vfs", OLD)
    new = _make(tmp_path / "new.vfs", NEW)
    report = make_patch(old, new, str(tmp_path / "p.vfs"))
    assert report.changed == 2
    assert report.deltas == 2


def test_deserialize_iter_takes_a_patch_image(tmp_path):
    """A patch pack has 512-byte pages (PATCH_PAGE); ``deserialize_iter`` into a database of
    another page size fails with a misleading ReadOnlyError (SQLite's backup cannot change
    the page size of a WAL database)."""
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    with VFS(patch, read_only=True) as p:
        image = p.to_bytes()
    with VFS(tmp_path / "game.vfs") as game:
        game.deserialize_iter(image)
        assert game.patch is not None
        game.add_underlay(old, name="base")
        assert game.read_bytes("/big.bin") == NEW["/big.bin"]


def test_a_delta_refused_alone_names_its_file(tmp_path):
    """Every other read error names the file (``Damage.in_file``); ``missing_base`` is made
    with no path and nothing adds it, so a reader (or a mount's log) cannot tell which file
    of the patch needs a base."""
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    with VFS(patch, read_only=True) as p:
        with pytest.raises(PatchBaseError) as info:
            p.read_bytes("/big.bin")
    assert "big.bin" in str(info.value)


def test_a_damaged_base_is_named_not_the_delta_reading_it(tmp_path):
    """An added file stored as a delta against an OLD file of another path (a renamed
    directory): damage in that base is reported as damage at offset 0 of the NEW file, with
    no word of the base's path (or that it is a base in a layer below)."""
    lib = random.Random(5).randbytes(200_000)
    old = _make(tmp_path / "old.vfs", {"/pkg-1.0/lib.so": lib})
    new = _make(tmp_path / "new.vfs", {"/pkg-1.1/lib.so": lib[:1000] + b"1.1" + lib[1000:]})
    patch = str(tmp_path / "p.vfs")
    assert make_patch(old, new, patch).deltas == 1
    con = sqlite3.connect(old)
    with con:  # the base's chunk 1 replaced by its chunk 2: its seal fails where it is read
        rows = con.execute("SELECT idx, sums, data FROM vfs_chunks ORDER BY idx").fetchall()
        con.execute("UPDATE vfs_chunks SET sums = ?, data = ? WHERE idx = 1",
                    (rows[2][1], rows[2][2]))
    con.close()
    with _stacked(tmp_path, old, patch) as top:
        with pytest.raises(CorruptionError) as info:
            top.read_bytes("/pkg-1.1/lib.so")
    assert "pkg-1.0" in str(info.value)


def test_a_pickled_fsspec_filesystem_over_a_patched_stack_reopens(tmp_path):
    """``VFSFileSystem.__reduce__`` (and the re-open in a forked child) re-adds the underlays
    in ``list_layers()`` order, highest priority first: the patch is added before its base,
    and ``check_patches`` refuses a patch that lies over nothing."""
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    with _stacked(tmp_path, old, patch) as top:
        fs = fsspec.filesystem("vfsorm", vfs=top, skip_instance_cache=True)
        assert fs.cat("/big.bin") == NEW["/big.bin"]
        clone = pickle.loads(pickle.dumps(fs))
        try:
            assert clone.cat("/big.bin") == NEW["/big.bin"]
        finally:
            clone.close()


def test_finding_a_base_reads_no_more_than_the_base_s_size(tmp_path):
    """``Bases._find`` reads the candidate file's chunks 0..CHUNK_SPAN (all of them), decoded,
    before ``assemble`` cuts them to the size its row states: a hostile layer below the base
    (a mod pack at a low priority: ``sources()`` starts at the bottom) claims the base's digest
    with a 100-byte size and 64 chunks of 1 MiB of zeros (a 350 KB file), and every read of a
    delta decodes 64 MiB (as many as it stores: unbounded). The in-flight bound counts the
    stated size, not what is decoded."""
    import tracemalloc

    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    con = sqlite3.connect(patch)
    try:
        digest, = con.execute("SELECT substr(data, 1, 32) FROM vfs_inodes "
                              "WHERE name = 'text.txt'").fetchone()
    finally:
        con.close()
    evil = str(tmp_path / "mod.vfs")
    with VFS(evil, compression="zstd", chunk_size=1 << 20) as mod:
        mod.write_bytes("/x.bin", bytes(64 << 20))
    con = sqlite3.connect(evil)
    with con:
        con.execute("UPDATE vfs_inodes SET size = 100, digest = ? WHERE name = 'x.bin'",
                    (digest,))
    con.close()
    with VFS(tmp_path / "top.vfs") as top:
        top.add_underlay(evil, priority=-1, name="mod")
        top.add_underlay(old, priority=0, name="base")
        top.add_underlay(patch, priority=1, name="patch")
        tracemalloc.start()
        try:
            assert top.read_bytes("/text.txt") == NEW["/text.txt"]  # an 11 KB file
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 << 20, f"{peak >> 20} MiB decoded to read an 11 KB file"


def test_deserialize_iter_of_a_patch_image_checks_the_stack_it_lands_in(tmp_path):
    """A patch over anything but its base is refused "when it is composed, before any read"
    (``check_patches`` at ``add_underlay``); ``deserialize_iter`` (``composition.adopt``)
    takes a patch's record over whatever underlays the VFS has without that check. (The
    target is made with the patch's 512-byte pages, so the page-size bug above does not
    hide this one.)"""
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    with VFS(patch, read_only=True) as p:
        image = p.to_bytes()
    with VFS(tmp_path / "game.vfs", page_size=512) as game:
        game.add_underlay(new, name="not-its-base")
        with pytest.raises(PatchBaseError):
            game.deserialize_iter(image)
