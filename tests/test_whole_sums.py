"""One checksum for a compressed value (format 0012).

A compressed value is only ever read whole, so since 0012 it carries one XXH3-64 of all its
plain bytes and the seal, instead of one per 4 KiB block; an uncompressed value keeps one per
block (its parts are read alone). Packs are edited with plain ``sqlite3`` after vfs_orm wrote
them, as a broken tool or a player would. Older databases (per-block checksums on compressed
values, written by the 0011 release) read as before; the downgrade gives compressed values
their per-block checksums back, and is refused while a delta (whose base is in another layer)
has one checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.test_migrations import _migrate, _revision
from tests.test_patch_deltas import NEW, OLD
from tests.test_patches import _make, _stacked
from vfs_orm import FORMAT_REVISION, VFS, CorruptionError
from vfs_orm.content import BLOCK, SUM, block_sums, whole_sums
from vfs_orm.content.codec import DELTA, RAW
from vfs_orm.patching import make_patch

FIXTURES = Path(__file__).with_name("fixtures")
TEXT = "".join(f"record {i}: gold={i * 7} turn={i}\n" for i in range(3000)).encode()  # 85 KB
SMALL = TEXT[:12_000]  # inline, compressed, three blocks
NOISE = os.urandom(20_000)  # stored as is, five blocks


def _values(path) -> dict[str, list[tuple[int, int, bytes, int]]]:
    """Each file's stored values: (codec, length of sums, sums, seal key)."""
    con = sqlite3.connect(path)
    try:
        out: dict[str, list[tuple[int, int, bytes, int]]] = {}
        for name, codec, sums in con.execute(
                "SELECT name, codec, sums FROM vfs_inodes WHERE data IS NOT NULL"):
            out.setdefault(name, []).append((codec, len(sums), sums, 0))
        for name, cid, codec, sums in con.execute(
                "SELECT i.name, c.id, c.codec, c.sums FROM vfs_chunks c "
                "JOIN vfs_inodes i ON c.inode_id = i.id ORDER BY c.id"):
            out.setdefault(name, []).append((codec, len(sums), sums, cid))
        return out
    finally:
        con.close()


def _pack(path, **kw):
    with VFS(str(path), chunk_size=65536, compression="zstd", **kw) as fs:
        fs.write_bytes("/text.txt", TEXT)
        fs.write_bytes("/small.txt", SMALL)
        fs.write_bytes("/noise.bin", NOISE)
    return path


def test_compressed_values_carry_one_checksum_uncompressed_ones_one_per_block(tmp_path):
    path = _pack(tmp_path / "p.vfs")
    values = _values(path)
    for name in ("text.txt", "small.txt"):
        for codec, n, _, _ in values[name]:
            assert codec != RAW and n == 2 * SUM, name
    (codec, n, _, _), = values["noise.bin"]
    assert codec == RAW and n == (len(NOISE) // BLOCK + 1) * SUM + SUM
    with VFS(str(path), read_only=True) as fs:
        assert fs.read_bytes("/text.txt") == TEXT
        assert fs.read_bytes("/small.txt") == SMALL
        with fs.open("/noise.bin", "rb") as f:  # a part of an uncompressed value
            f.seek(9000)
            assert f.read(100) == NOISE[9000:9100]
        assert fs.check(deep=True).ok


def test_recompressing_with_a_dictionary_stores_one_checksum(tmp_path):
    """Values ``train_dictionary`` stores again (0011's, with a checksum per block) get one
    checksum with their new codec; everything reads and checks."""
    path = tmp_path / "f.db"
    shutil.copy(FIXTURES / "format_0011.db", path)
    manifest = json.loads((FIXTURES / "format_0011.manifest.json").read_text())
    with VFS(str(path)) as fs:
        for i in range(80):
            fs.write_bytes(f"/more/{i}.bin", bytes(range(256)) * 60 + str(i).encode())
    before = {(name, key): (codec, n) for name, rows in _values(path).items()
              for codec, n, _, key in rows}
    with VFS(str(path)) as fs:
        assert fs.train_dictionary() is not None
        for p, meta in manifest.items():
            if meta["type"] == "file":
                assert fs.digest(p) == meta["sha256"], p
        assert fs.check(deep=True).ok
    after = {(name, key): (codec, n) for name, rows in _values(path).items()
             for codec, n, _, key in rows}
    recoded = [k for k in before if after[k][0] != before[k][0]]
    assert any(before[k][1] > 2 * SUM for k in recoded)  # 0011's per-block ones among them
    assert all(after[k][1] == 2 * SUM for k in recoded)


@pytest.mark.parametrize("forgery", ["other bytes", "moved", "one checksum on a raw value"])
def test_a_forged_value_with_one_checksum_is_corruption(tmp_path, forgery):
    path = _pack(tmp_path / "p.vfs")
    con = sqlite3.connect(path)
    first, second = [r[0] for r in con.execute(
        "SELECT c.id FROM vfs_chunks c JOIN vfs_inodes i ON c.inode_id = i.id "
        "WHERE i.name = 'text.txt' ORDER BY c.idx LIMIT 2")]
    target, path_read = "/text.txt", None
    if forgery == "other bytes":  # a valid frame of other bytes, with the sums of the first
        data, = con.execute("SELECT data FROM vfs_chunks WHERE id = ?", (second,)).fetchone()
        con.execute("UPDATE vfs_chunks SET data = ? WHERE id = ?", (data, first))
        match = "checksum mismatch"
    elif forgery == "moved":  # the second chunk, checksum and all, in the first's place
        row = con.execute("SELECT codec, sums, data FROM vfs_chunks WHERE id = ?",
                          (second,)).fetchone()
        con.execute("UPDATE vfs_chunks SET codec = ?, sums = ?, data = ? WHERE id = ?",
                    (*row, first))
        match = "another file or position"
    else:  # an uncompressed value is read in parts: it must have a checksum per block
        cid, = con.execute("SELECT c.id FROM vfs_chunks c JOIN vfs_inodes i "
                           "ON c.inode_id = i.id WHERE i.name = 'noise.bin'").fetchone()
        con.execute("UPDATE vfs_chunks SET sums = ? WHERE id = ?", (whole_sums(NOISE, cid), cid))
        target, path_read, match = "/noise.bin", 9000, "checksum"
    con.commit()
    con.close()
    before = path.read_bytes()
    with VFS(str(path), read_only=True) as fs:
        with pytest.raises(CorruptionError, match=match):
            fs.read_bytes(target)
        if path_read is not None:
            with pytest.raises(CorruptionError, match=match), fs.open(target, "rb") as f:
                f.seek(path_read)
                f.read(100)
        assert not fs.check(deep=True).ok
        assert fs.read_bytes("/small.txt") == SMALL  # the rest reads
    assert path.read_bytes() == before


def test_format_0011_upgrades_and_its_per_block_checksums_read_as_before(tmp_path):
    """The 0011 release wrote compressed values over 4 KiB with a checksum per block (chunks,
    inline bytes, a checkpoint's inline bytes): they read and check as they were, and new
    values beside them get one checksum."""
    path = tmp_path / "f.db"
    shutil.copy(FIXTURES / "format_0011.db", path)
    manifest = json.loads((FIXTURES / "format_0011.manifest.json").read_text())
    per_block = {k: n for k, v in _values(path).items() for codec, n, _, _ in v
                 if codec != RAW and n > 2 * SUM}
    assert per_block  # what the fixture is for
    with VFS(str(path)) as fs:
        assert fs.info()["revision"] == FORMAT_REVISION
        for p, meta in manifest.items():
            if meta["type"] == "file":
                assert fs.digest(p) == meta["sha256"], p
        assert fs.check(deep=True).ok
        with fs.open_checkpoint("before-edit") as view:
            assert hashlib.sha256(view.read_bytes("/game/save.json")).hexdigest() == \
                manifest["/game/save.json"]["sha256"]
        fs.write_bytes("/game/new.txt", TEXT)
    values = _values(path)
    assert {k: n for k, v in values.items() for codec, n, _, _ in v
            if codec != RAW and n > 2 * SUM and k != "new.txt"} == per_block
    assert all(n == 2 * SUM for _, n, _, _ in values["new.txt"])


def test_downgrade_to_0011_gives_compressed_values_per_block_checksums(tmp_path):
    """Every compressed value over 4 KiB (chunks, inline bytes, dictionary-compressed ones, a
    checkpoint's) gets exactly the checksums 0011 wrote; a damaged value is left as it is;
    upgraded again, everything reads."""
    path = tmp_path / "d.vfs"
    with VFS(str(path), chunk_size=65536, compression="zstd") as fs:
        fs.write_bytes("/text.txt", TEXT)
        fs.write_bytes("/noise.bin", NOISE)
        for i in range(60):
            fs.write_bytes(f"/many/{i}.txt", SMALL[i * 50:] + str(i).encode())
        fs.train_dictionary()
        fs.write_bytes("/small.txt", SMALL)
        fs.checkpoint("saved")
        fs.write_bytes("/small.txt", b"replaced")
        fs.write_bytes("/damaged.txt", TEXT[:9000])
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_inodes SET data = ? WHERE name = 'damaged.txt'",
                (b"\x28\xb5\x2f\xfd garbage",))  # a frame that does not decode
    damaged_sums, = con.execute("SELECT sums FROM vfs_inodes WHERE name = 'damaged.txt'"
                                ).fetchone()
    checkpointed, = con.execute("SELECT sums FROM vfs_checkpoint_inodes WHERE name = "
                                "'small.txt'").fetchone()
    con.commit()
    con.close()
    assert len(checkpointed) == 2 * SUM
    _migrate(str(path), "0011")
    assert _revision(str(path)) == "0011"
    plain = _plain_values(path)
    for name, rows in _values(path).items():
        for codec, _, sums, key in rows:
            if name == "damaged.txt":
                assert sums == damaged_sums
            elif codec != RAW:
                assert sums == block_sums(plain[name, key], key), name
    con = sqlite3.connect(path)
    sums, = con.execute("SELECT sums FROM vfs_checkpoint_inodes WHERE name = "
                        "'small.txt'").fetchone()
    con.close()
    assert sums == block_sums(SMALL, 0)
    _migrate(str(path), "head")
    with VFS(str(path), read_only=True) as fs:
        assert fs.read_bytes("/text.txt") == TEXT
        assert fs.read_bytes("/many/7.txt") == SMALL[350:] + b"7"
        with fs.open_checkpoint("saved") as view:
            assert view.read_bytes("/small.txt") == SMALL
        with pytest.raises(CorruptionError):
            fs.read_bytes("/damaged.txt")


def _plain_values(path) -> dict[tuple[str, int], bytes]:
    """Every compressed value's plain bytes by (file name, seal key), decoded here with the
    dictionary as stored (the database is at 0011: vfs_orm does not open it without
    upgrading), to compare the downgrade's checksums with ``block_sums``."""
    import zstandard
    con = sqlite3.connect(path)
    try:
        dicts = {}
        for ident, data in con.execute("SELECT id, data FROM vfs_dictionaries"):
            if data[:4] == b"\x28\xb5\x2f\xfd":  # stored compressed (format 0011)
                data = zstandard.ZstdDecompressor().decompress(data)
            dicts[ident] = zstandard.ZstdCompressionDict(data)
        rows = list(con.execute("SELECT name, codec, data, 0 FROM vfs_inodes "
                                "WHERE data IS NOT NULL AND name != 'damaged.txt'"))
        rows += list(con.execute("SELECT i.name, c.codec, c.data, c.id FROM vfs_chunks c "
                                 "JOIN vfs_inodes i ON c.inode_id = i.id"))
    finally:
        con.close()
    out = {}
    for name, codec, data, key in rows:
        if codec != RAW:
            did = zstandard.get_frame_parameters(data).dict_id
            reader = zstandard.ZstdDecompressor(dict_data=dicts[did] if did else None)
            out[name, key] = reader.decompress(data, max_output_size=1 << 20)
    return out


def test_a_patch_stores_deltas_with_one_checksum_and_refuses_the_downgrade(tmp_path):
    """A patch's deltas (format 0008) carry one checksum each; they cannot be given per-block
    ones without their base, which lies in another layer: the downgrade to 0011 is refused
    with nothing changed."""
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    assert make_patch(old, new, patch).deltas >= 2
    deltas = [(n, name) for name, rows in _values(patch).items()
              for codec, n, _, _ in rows if codec == DELTA]
    assert len(deltas) >= 2 and all(n == 2 * SUM for n, _ in deltas)
    with VFS(new, read_only=True) as n, _stacked(tmp_path, old, patch) as top:
        for p in ("/big.bin", "/text.txt"):
            assert top.read_bytes(p) == n.read_bytes(p)
    before = Path(patch).read_bytes()
    with pytest.raises(RuntimeError, match="apply the patch before downgrading"):
        _migrate(patch, "0011")
    assert Path(patch).read_bytes() == before and _revision(patch) == FORMAT_REVISION


def _chunked_pack(path, compression="zstd"):
    with VFS(str(path), chunk_size=16384, compression=compression) as fs:
        fs.write_bytes("/text.txt", TEXT)  # 85 KB: six chunks, compressed
    return path


def test_downgrade_does_not_launder_a_moved_value(tmp_path):
    """A compressed chunk moved, one checksum and all, to another place: 0012 reports it;
    the downgrade must leave it as it is (not give it per-block checksums sealed to where it
    now is), so that 0011 reports it too."""
    path = _chunked_pack(tmp_path / "p.vfs")
    con = sqlite3.connect(path)
    first, second = [r[0] for r in con.execute("SELECT id FROM vfs_chunks ORDER BY id LIMIT 2")]
    row = con.execute("SELECT codec, sums, data FROM vfs_chunks WHERE id = ?", (second,)).fetchone()
    assert len(row[1]) == 2 * SUM
    con.execute("UPDATE vfs_chunks SET codec = ?, sums = ?, data = ? WHERE id = ?", (*row, first))
    con.commit()
    con.close()
    with VFS(str(path), read_only=True) as fs, pytest.raises(CorruptionError):
        fs.read_bytes("/text.txt")
    _migrate(str(path), "0011")
    con = sqlite3.connect(path)
    sums, = con.execute("SELECT sums FROM vfs_chunks WHERE id = ?", (first,)).fetchone()
    con.close()
    assert sums == row[1]  # left as it is


def test_downgrade_of_zlib_values(tmp_path):
    """The downgrade decodes zlib values itself too (codec 1)."""
    path = _chunked_pack(tmp_path / "z.vfs", "zlib")
    assert all(c == 1 and n == 2 * SUM for c, n, _, _ in _values(path)["text.txt"])
    _migrate(str(path), "0011")
    for _, _, sums, key in _values(path)["text.txt"]:
        idx = key % (1 << 32)
        assert sums == block_sums(TEXT[idx * 16384:(idx + 1) * 16384], key)


@pytest.mark.parametrize("forged", ["sixteen chars ok", 1234567890123456, -123456789012345])
def test_downgrade_with_sums_not_bytes(tmp_path, forged):
    """Sums stored as TEXT or INTEGER (a hostile or broken file), length() 16, on a value
    that decodes: 0012 reports it as damaged; the downgrade should leave it as it is, not
    fail with TypeError/MemoryError/ValueError."""
    path = _chunked_pack(tmp_path / "h.vfs")
    con = sqlite3.connect(path)
    first, = con.execute("SELECT id FROM vfs_chunks ORDER BY id LIMIT 1").fetchone()
    con.execute("UPDATE vfs_chunks SET sums = ? WHERE id = ?", (forged, first))
    assert con.execute("SELECT length(sums) FROM vfs_chunks WHERE id = ?", (first,)
                       ).fetchone() == (16,)
    con.commit()
    con.close()
    with VFS(str(path), read_only=True) as fs, pytest.raises(CorruptionError):
        fs.read_bytes("/text.txt")
    _migrate(str(path), "0011")  # (was TypeError, MemoryError, ValueError)
    assert _revision(str(path)) == "0011"


def _pg_sums(pg_url, tree):
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                f'SELECT codec, length(sums), octet_length(data) FROM "{tree}".vfs_chunks '
                f'UNION ALL SELECT codec, length(sums), octet_length(data) FROM '
                f'"{tree}".vfs_inodes WHERE data IS NOT NULL')).fetchall()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows]


def test_postgresql_recompresses_values_over_4_kib_with_one_checksum(pg_url, pg_tree):
    """On PostgreSQL (bytea sums): train_dictionary's recompression of values over 4 KiB
    (inline and chunked) stores one checksum each; copy on write, a write in place, a spill,
    a truncate and a restore keep every value readable."""
    rnd = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "engine", "player", "score", "level"]
    files = {}
    for k in range(120):
        body = "\n".join(" ".join(rnd.choice(words) for _ in range(8)) + f" = {rnd.randrange(999)}"
                         for _ in range(rnd.randrange(150, 300))).encode()
        files[f"/d{k % 5}/f{k}.txt"] = body  # 7-16 KB: inline, several blocks
    big = b"".join(files.values())  # chunked
    incompressible = random.Random(5).randbytes(12000)
    with VFS(pg_url, tree=pg_tree, compression="zstd", chunk_size=65536) as fs:
        fs.write_files(list(files.items()))
        fs.write_bytes("/big.txt", big)
        fs.write_bytes("/noise.bin", incompressible)
        before = _pg_sums(pg_url, pg_tree)
        assert any(c != 0 and n == 2 * SUM and size > 0 for c, n, size in before)
        assert fs.train_dictionary() is not None
        after = _pg_sums(pg_url, pg_tree)
        assert any(c == 3 for c, _, _ in after)
        for c, n, _ in after:
            assert (n == 2 * SUM) if c != 0 else n > 2 * SUM
        for p, b in files.items():
            assert fs.read_bytes(p) == b
        assert fs.read_bytes("/big.txt") == big
        # copy on write of compressed chunks, then a write in place, then truncate
        fs.copy("/big.txt", "/copy.txt")
        with fs.open("/copy.txt", "r+b") as f:
            f.seek(70000)
            f.write(b"XYZ")
        want = bytearray(big)
        want[70000:70003] = b"XYZ"
        assert fs.read_bytes("/copy.txt") == bytes(want)
        assert fs.read_bytes("/big.txt") == big
        with fs.open("/d0/f0.txt", "r+b") as f:  # spill of a compressed inline value
            f.seek(5000)
            f.write(b"!!")
        w0 = bytearray(files["/d0/f0.txt"])
        w0[5000:5002] = b"!!"
        assert fs.read_bytes("/d0/f0.txt") == bytes(w0)
        with fs.open("/noise.bin", "rb") as f:
            f.seek(9000)
            assert f.read(100) == incompressible[9000:9100]
        with fs.open("/copy.txt", "r+b") as f:
            f.truncate(70001)
        assert fs.read_bytes("/copy.txt") == bytes(want[:70001])
        fs.checkpoint("c")
        fs.write_bytes("/d1/f1.txt", b"gone")
        fs.restore("c")
        assert fs.read_bytes("/d1/f1.txt") == files["/d1/f1.txt"]
        assert fs.check(deep=True).ok


def test_downgrade_of_a_postgresql_tree_gives_per_block_checksums(pg_url, pg_tree):
    """The downgrade on a PostgreSQL tree (its own decoding, the tree's dictionary): exactly
    the checksums 0011 wrote; the tree upgrades and reads again."""
    from tests.test_postgresql import downgrade_tree

    rnd = random.Random(4)
    files = {f"/f{k}.txt": "\n".join(f"line {rnd.randrange(99)} of {k}" for _ in range(600)
                                     ).encode() for k in range(40)}
    big = b"".join(files.values())
    with VFS(pg_url, tree=pg_tree, compression="zstd", chunk_size=65536) as fs:
        fs.write_files(list(files.items()))
        fs.write_bytes("/big.txt", big)
        fs.train_dictionary()
    assert any(c != 0 and n == 2 * SUM and size > 4096 for c, n, size in _pg_sums(pg_url, pg_tree))
    downgrade_tree(pg_url, pg_tree, "0011")
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                f'SELECT i.name, c.id, c.codec, c.sums FROM "{pg_tree}".vfs_chunks c JOIN '
                f'"{pg_tree}".vfs_inodes i ON c.inode_id = i.id UNION ALL SELECT name, 0, '
                f'codec, sums FROM "{pg_tree}".vfs_inodes WHERE data IS NOT NULL')).fetchall()
    finally:
        engine.dispose()
    for name, key, codec, sums in rows:
        plain = big if name == "big.txt" else files["/" + name]
        if name == "big.txt":
            plain = plain[(key % (1 << 32)) * 65536:(key % (1 << 32) + 1) * 65536]
        assert bytes(sums) == block_sums(plain, key), (name, codec)
    with VFS(pg_url, tree=pg_tree) as fs:  # upgraded again on a writable open
        assert fs.read_bytes("/big.txt") == big
        assert fs.check(deep=True).ok
