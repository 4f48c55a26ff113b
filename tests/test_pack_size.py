"""Small packs (#31): a compressed pack file is written on 1 KiB SQLite pages, a release-level
pack in 1 MiB chunks, and a pack's dictionary is trained on and used for values up to 1 MiB;
such a pack reads right through every path (whole, streamed, random, unpacked, as an
underlay with copy up, copied, as an image) and passes the deep check."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from tests.test_cli import run
from tests.test_dictionaries import _reads_right, _small_tree
from vfs_orm import VFS, ContractError, CorruptionError
from vfs_orm.copying import copy_tree
from vfs_orm.pack import PACK_PAGE_SIZE, RELEASE_CHUNK, pack

KIB = 1024


def _page_size(path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA page_size").fetchone()[0])
    finally:
        con.close()


def _tree(root) -> dict[str, bytes]:
    """Small similar scripts, two bigger texts like them (one between 256 KiB and 1 MiB, one
    of three release chunks) and an incompressible file."""
    files = _small_tree(root, 120)
    scripts = b"".join(files.values())
    rnd = random.Random(5)
    mid = (scripts * 3)[:600 * KIB]
    big = b"".join(scripts[rnd.randrange(len(scripts) - 4096):][:4096]
                   for _ in range(2600 * KIB // 4096))
    for name, data in (("mid.txt", mid), ("big.txt", big),
                       ("noise.bin", rnd.randbytes(300 * KIB))):
        (root / name).write_bytes(data)
        files["/" + name] = data
    return files


def _chunks(path, name: str) -> list[tuple[int, int]]:
    """(codec, stored length) of each chunk of the top-level file ``name``."""
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT c.codec, length(c.data) FROM vfs_chunks c JOIN vfs_inodes i "
                           "ON c.inode_id = i.id WHERE i.parent = '/' AND i.name = ? "
                           "ORDER BY c.idx", (name,)).fetchall()
    finally:
        con.close()


def test_page_and_chunk_sizes_of_packs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = _tree(src)
    everyday, release, plain, small = (tmp_path / f"{n}.vfs"
                                       for n in ("everyday", "release", "plain", "small"))
    pack(str(src), str(everyday), compression="zstd")
    pack(str(src), str(release), compression="zstd", compression_level=19)
    pack(str(src), str(plain))
    pack(str(src), str(small), compression="zlib", compression_level=9, page_size=512)
    assert PACK_PAGE_SIZE == 1024 and RELEASE_CHUNK == 1024 * KIB
    assert [_page_size(p) for p in (everyday, release, plain, small)] == [1024, 1024, 4096, 512]
    # Everyday packs keep 256 KiB chunks (a random read decompresses a quarter of a MiB);
    # release packs compress a big file as 1 MiB frames.
    assert len(_chunks(everyday, "big.txt")) == 11
    assert len(_chunks(release, "big.txt")) == 3
    assert len(_chunks(small, "big.txt")) == 3  # zlib's release level is 9
    for path in (everyday, release, plain, small):
        with VFS(path, read_only=True) as fs:
            _reads_right(fs, files)
    # The same pack on 1 KiB pages is smaller than on SQLite's 4 KiB.
    roomy = tmp_path / "roomy.vfs"
    pack(str(src), str(roomy), compression="zstd", page_size=4096)
    assert _page_size(roomy) == 4096
    assert everyday.stat().st_size < roomy.stat().st_size
    with pytest.raises(ContractError, match="page_size must be a power of two"):
        pack(str(src), str(tmp_path / "bad.vfs"), compression="zstd", page_size=1000)
    assert not (tmp_path / "bad.vfs").exists()


def test_page_size_on_the_command_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    image = tmp_path / "cli.vfs"
    code, _out, err = run("pack", src, image, "--compress", "zstd", "--level", "19", "--dict",
                          "--page-size", "512", "-q")
    assert code == 0, err
    code, out, err = run("info", "--json", image)
    assert code == 0, err
    assert json.loads(out)["page_size"] == 512
    assert len(_chunks(image, "big.txt")) == 3
    code, _out, err = run("pack", src, tmp_path / "default.vfs", "--compress", "zstd", "-q")
    assert code == 0, err
    assert _page_size(tmp_path / "default.vfs") == 1024
    code, _out, err = run("pack", src, tmp_path / "bad.vfs", "--page-size", "3000", "-q")
    assert code != 0 and "page_size must be a power of two" in err
    code, _out, err = run("pack", src, "postgresql://nowhere/db", "--page-size", "512", "-q")
    assert code != 0 and "--page-size" in err


def test_release_pack_reads_by_every_path(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = _tree(src)
    image = tmp_path / "release.vfs"
    code, _out, err = run("pack", src, image, "--compress", "zstd", "--level", "19", "--dict",
                          "-q")
    assert code == 0, err
    assert _page_size(image) == 1024
    # The dictionary compresses values up to 1 MiB: the 600 KiB text (one chunk) and every
    # 1 MiB chunk of the big one.
    assert [codec for codec, _ in _chunks(image, "mid.txt")] == [3]
    assert [codec for codec, _ in _chunks(image, "big.txt")] == [3, 3, 3]
    with VFS(image, read_only=True) as fs:
        _reads_right(fs, files)
        assert fs.check(deep=True).ok
        with fs.open("/big.txt", "rb") as f:  # a read across two 1 MiB chunks
            f.seek(RELEASE_CHUNK - 100)
            assert f.read(300) == files["/big.txt"][RELEASE_CHUNK - 100:RELEASE_CHUNK + 200]
        image_bytes = fs.to_bytes()
    out = tmp_path / "out"
    assert run("unpack", image, out, "-q")[0] == 0
    for p, data in files.items():
        assert (out / p[1:]).read_bytes() == data, p
    # An image in memory, and written back to a file.
    with VFS.from_bytes(image_bytes, read_only=True) as mem:
        _reads_right(mem, files)
        assert mem.check(deep=True).ok
    (tmp_path / "again.vfs").write_bytes(image_bytes)
    assert _page_size(tmp_path / "again.vfs") == 1024
    with VFS(tmp_path / "again.vfs", read_only=True) as again:
        _reads_right(again, files)
    # As the underlay of an uncompressed top on 4 KiB pages: reads, copy up, copies.
    with VFS(tmp_path / "top.vfs") as top:
        top.add_underlay(str(image), name="base")
        _reads_right(top, files)
        with top.open("/mid.txt", "r+b") as f:  # copy up of a dictionary chunk
            f.seek(300 * KIB)
            f.write(b"patched")
        want = bytearray(files["/mid.txt"])
        want[300 * KIB:300 * KIB + 7] = b"patched"
        assert top.read_bytes("/mid.txt") == bytes(want)
        top.copy("/big.txt", "/big-copy.txt")
        top.copytree("/d3", "/d3copy")
        assert top.check(deep=True).ok
        top.remove_underlay("base")
        assert top.read_bytes("/big-copy.txt") == files["/big.txt"]
        assert top.read_bytes("/d3copy/f3.py") == files["/d3/f3.py"]
    # Copied into a database of another chunk size and page size.
    with VFS(image, read_only=True) as fs, VFS(tmp_path / "copy.vfs", chunk_size=65536) as dst:
        copy_tree(fs, dst)
        _reads_right(dst, files)
        assert dst.check(deep=True).ok


def test_existing_database_dictionary_covers_values_up_to_a_mebibyte(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = _tree(src)
    path = tmp_path / "db.vfs"
    with VFS(path, compression="zstd", chunk_size=RELEASE_CHUNK) as fs:
        for p, data in files.items():
            fs.write_bytes(p, data)
        fs.train_dictionary()
        fs.write_bytes("/mid2.txt", files["/mid.txt"])
        _reads_right(fs, files)
    assert [codec for codec, _ in _chunks(path, "mid.txt")] == [3]
    assert [codec for codec, _ in _chunks(path, "mid2.txt")] == [3]


def test_training_samples_of_a_big_database_stay_bounded(tmp_path, monkeypatch):
    from dataclasses import replace

    from vfs_orm import dictionaries

    monkeypatch.setattr(dictionaries, "SAMPLE_BYTES", 64 * KIB)
    with VFS(tmp_path / "db.vfs", compression="zstd") as fs:
        for k in range(400):  # 400 values of 1 KiB each: six times the limit
            fs.write_bytes(f"/v/{k:03d}.txt", f"{k:03d}".encode() * 341 + b"x")
        reader = replace(fs._content, partial=False)
        with fs._live_uow().read_lock:
            got = dictionaries.samples(fs._manifest, fs._live_uow().raw(), reader)
        assert 64 * KIB <= sum(map(len, got)) <= 128 * KIB
        firsts = sorted(int(v[:3]) for v in got)
        assert firsts[0] == 0 and firsts[-1] >= 380  # an even spread, not the first ones
        assert len(set(firsts)) == len(firsts)
        fs.train_dictionary()
        assert fs.read_bytes("/v/123.txt") == b"123" * 341 + b"x"


def test_a_dictionary_pack_opened_again_reuses_its_statements(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = _small_tree(src, 80)
    image = tmp_path / "p.vfs"
    pack(str(src), str(image), compression="zstd", dictionary=True)
    copy = tmp_path / "copy.vfs"
    copy.write_bytes(image.read_bytes())
    with VFS(image, read_only=True) as a, VFS(image, read_only=True) as b, \
            VFS(copy, read_only=True) as c:
        # The same stored dictionaries: the same statements, compiled once per process.
        assert a._content.dicts is not None
        assert a._repo is b._repo is c._repo
        _reads_right(c, files)
    # Other dictionary bytes: their own statements (and a damaged one is still refused).
    con = sqlite3.connect(copy)
    con.execute("UPDATE vfs_dictionaries SET data = substr(data, 1, 100) || "
                "zeroblob(8) || substr(data, 109)")
    con.commit()
    con.close()
    with VFS(image, read_only=True) as a, VFS(copy, read_only=True) as c:
        assert a._repo is not c._repo
        _reads_right(a, files)
        with pytest.raises(CorruptionError, match="dictionary"):
            c.read_bytes(next(iter(files)))
