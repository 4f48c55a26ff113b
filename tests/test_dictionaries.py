"""Compression levels and zstd dictionaries (format 0006): packs of many small files
compressed with a dictionary trained on their own content and stored in them; every read
path, underlays, copies, images and upgrades read them; a damaged or missing dictionary is a
CorruptionError, never wrong bytes."""

from __future__ import annotations

import hashlib
import io
import os
import random
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import run
from tests.test_migrations import _migrate, _revision
from vfs_orm import FORMAT_REVISION, VFS, ContractError, CorruptionError, InvalidOperationError
from vfs_orm.copying import copy_tree
from vfs_orm.pack import pack

WORDS = ("player enemy level score health weapon shield quest item inventory map tile sprite "
         "sound music config option value true false none import def class return self "
         "for while if else elif try except finally with as from lambda yield").split()


def _small_tree(root, n: int = 300, seed: int = 1) -> dict[str, bytes]:
    """``n`` small, similar text files (configs and scripts), as a game's data has."""
    rnd = random.Random(seed)
    files = {}
    for k in range(n):
        lines = [f"# file {k}", "import os", "from game import engine", ""]
        for _ in range(rnd.randrange(10, 80)):
            lines.append(" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(3, 12)))
                         + f" = {rnd.randrange(1000)}")
        rel = f"d{k % 7}/f{k}.py"
        data = "\n".join(lines).encode()
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        files["/" + rel] = data
    return files


def _codecs(path) -> dict[int, int]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT codec, count(*) FROM vfs_chunks GROUP BY codec").fetchall()
        rows += con.execute("SELECT codec, count(*) FROM vfs_inodes WHERE data IS NOT NULL "
                            "GROUP BY codec").fetchall()
    finally:
        con.close()
    out: dict[int, int] = {}
    for codec, n in rows:
        out[codec] = out.get(codec, 0) + n
    return out


def _stored_bytes(path) -> int:
    con = sqlite3.connect(path)
    try:
        return sum(con.execute(f"SELECT coalesce(sum(length(data)), 0) FROM {t}").fetchone()[0]
                   for t in ("vfs_chunks", "vfs_inodes"))
    finally:
        con.close()


def _reads_right(fs: VFS, files: dict[str, bytes]) -> None:
    for p, data in files.items():
        assert fs.read_bytes(p) == data, p
        assert fs.digest(p) == hashlib.sha256(data).hexdigest(), p
        with fs.open(p, "rb") as f:
            f.seek(len(data) // 2)
            assert f.read(100) == data[len(data) // 2:len(data) // 2 + 100], p
        with fs.open(p, "rb", buffering=0) as f:
            assert f.read() == data, p


def test_compression_level_is_chosen_per_writer(tmp_path):
    src = tmp_path / "src"
    files = _small_tree(src, 60)
    sizes = {}
    for level in (1, 19):
        image = tmp_path / f"l{level}.vfs"
        pack(str(src), str(image), compression="zstd", compression_level=level)
        with VFS(image, read_only=True) as fs:
            _reads_right(fs, files)
        sizes[level] = _stored_bytes(image)
    assert sizes[19] < sizes[1]
    with pytest.raises(ContractError, match="between -7 and 22"):
        VFS(tmp_path / "bad.vfs", compression="zstd", compression_level=23)
    with pytest.raises(ContractError, match="between 1 and 9"):
        VFS(tmp_path / "bad.vfs", compression="zlib", compression_level=0)
    with pytest.raises(ContractError, match="needs a compressed database"):
        VFS(tmp_path / "bad.vfs", compression_level=3)
    with pytest.raises(TypeError):
        VFS(tmp_path / "bad.vfs", compression="zstd", compression_level="9")  # type: ignore[arg-type]
    # An existing compressed database is written at the level its writer asks for.
    with VFS(tmp_path / "l1.vfs", compression_level=19) as fs:
        fs.write_bytes("/more.py", files["/d0/f0.py"] * 3)
        assert fs.read_bytes("/more.py") == files["/d0/f0.py"] * 3
    code, _out, err = run("pack", src, tmp_path / "cli.vfs", "--compress", "zlib", "--level", "9",
                          "-q")
    assert code == 0, err
    code, _out, err = run("pack", src, tmp_path / "cli2.vfs", "--level", "9", "-q")
    assert code != 0 and "need --compress" in err


def test_dictionary_pack_is_smaller_and_read_by_every_path(tmp_path):
    src = tmp_path / "src"
    files = _small_tree(src)
    (src / "big.bin").write_bytes(random.Random(3).randbytes(300_000))  # incompressible
    files["/big.bin"] = (src / "big.bin").read_bytes()
    plain, with_dict = tmp_path / "plain.vfs", tmp_path / "dict.vfs"
    assert run("pack", src, plain, "--compress", "zstd", "-q")[0] == 0
    code, _out, err = run("pack", src, with_dict, "--compress", "zstd", "--dict", "-q")
    assert code == 0, err
    assert _codecs(with_dict).get(3, 0) >= 250
    big = len(files["/big.bin"])  # stored as is in both
    assert _stored_bytes(with_dict) - big < 0.8 * (_stored_bytes(plain) - big)
    with VFS(with_dict, read_only=True) as fs:
        _reads_right(fs, files)
        assert fs.check(deep=True).ok
    # Unpacked, through the CLI.
    out = tmp_path / "out"
    assert run("unpack", with_dict, out, "-q")[0] == 0
    for p, data in files.items():
        assert (out / p[1:]).read_bytes() == data
    # As an underlay of an uncompressed top: reads, copies up, copies.
    with VFS(tmp_path / "top.vfs") as top:
        top.add_underlay(str(with_dict), name="base")
        _reads_right(top, files)
        with top.open("/d0/f0.py", "r+b") as f:  # copy up, in the top's encoding
            f.write(b"#!")
        assert top.read_bytes("/d0/f0.py") == b"#!" + files["/d0/f0.py"][2:]
        top.copy("/d1/f1.py", "/copied.py")
        top.copytree("/d2", "/d2copy")
        assert top.read_bytes("/copied.py") == files["/d1/f1.py"]
        assert top.read_bytes("/d2copy/f2.py") == files["/d2/f2.py"]
        assert top.check(deep=True).ok
        top.remove_underlay("base")
        assert top.read_bytes("/copied.py") == files["/d1/f1.py"]
    # Copied into another database, and as an image in memory.
    with VFS(with_dict, read_only=True) as fs, VFS(tmp_path / "copy.vfs") as dst:
        copy_tree(fs, dst)
        _reads_right(dst, files)
        image = fs.to_bytes()
    with VFS.from_bytes(image, read_only=True) as mem:
        _reads_right(mem, files)
    # Stacked over another dictionary pack (two dictionaries in one stack).
    other = tmp_path / "other"
    more = {p: d for p, d in _small_tree(other, 400, seed=9).items() if p not in files}
    assert len(more) == 100
    pack(str(other), str(tmp_path / "o.vfs"), compression="zstd", dictionary=True)
    with VFS(tmp_path / "stack.vfs", compression="zstd") as top:
        top.add_underlay(str(with_dict))
        top.add_underlay(str(tmp_path / "o.vfs"))
        _reads_right(top, files)
        _reads_right(top, more)


def test_train_dictionary_on_an_existing_database(tmp_path):
    path = tmp_path / "db.vfs"
    src = tmp_path / "src"
    files = _small_tree(src, 200)
    with VFS(path, compression="zstd") as fs:
        fs.write_files([(p, d) for p, d in files.items()])
        before = _stored_bytes(path)
        ident = fs.train_dictionary()
        _reads_right(fs, files)
        fs.write_bytes("/new.py", files["/d0/f0.py"] + b"\n# new")
    assert _codecs(path).get(3, 0) >= 200
    assert _stored_bytes(path) < 0.8 * before
    con = sqlite3.connect(path)
    assert con.execute("SELECT id FROM vfs_dictionaries").fetchall() == [(ident,)]
    con.close()
    with VFS(path, read_only=True) as fs:
        _reads_right(fs, files)
        assert fs.read_bytes("/new.py") == files["/d0/f0.py"] + b"\n# new"
    with VFS(tmp_path / "plain.vfs") as fs:
        with pytest.raises(ContractError, match="compression='zstd'"):
            fs.train_dictionary()
    with VFS(path, read_only=True) as fs:
        with pytest.raises(PermissionError):
            fs.train_dictionary()


def _damage(path, sql: str, *args) -> None:
    con = sqlite3.connect(path)
    con.execute(sql, args)
    con.commit()
    con.close()


@pytest.mark.parametrize("damage", ["flip", "missing", "truncated", "forged_digest"])
def test_a_damaged_or_missing_dictionary_is_a_corruption_error(tmp_path, damage):
    files, path = _dictionary_pack(tmp_path, 150, "dict.vfs")
    con = sqlite3.connect(path)
    data = con.execute("SELECT data FROM vfs_dictionaries").fetchone()[0]
    con.close()
    if damage == "flip":
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0x40
        _damage(path, "UPDATE vfs_dictionaries SET data = ?", bytes(bad))
    elif damage == "missing":
        _damage(path, "DELETE FROM vfs_dictionaries")
    elif damage == "truncated":
        _damage(path, "UPDATE vfs_dictionaries SET data = ?, digest = ?", data[:40],
                hashlib.sha256(data[:40]).digest())
    else:  # bytes and digest agree, but the bytes are not that dictionary
        bad = data[:8] + bytes(len(data) - 8)
        _damage(path, "UPDATE vfs_dictionaries SET data = ?, digest = ?", bad,
                hashlib.sha256(bad).digest())
    _over.path = str(path)  # type: ignore[attr-defined]
    for opener in (lambda: VFS(path, read_only=True), _over):
        with opener() as fs:
            if opener is not _over:
                report = fs.check(deep=True)
                assert not report.ok and any("dictionar" in p for p in report.problems)
                if damage != "missing":  # the quick check looks at the dictionaries too
                    assert any("dictionary" in p for p in fs.check().problems)
            assert _dictionary_damage(fs, files) >= 100


def _dictionary_damage(fs: VFS, files: dict[str, bytes]) -> int:
    """How many of ``files`` fail to read with a CorruptionError naming the dictionary (the
    others read right)."""
    damaged = 0
    for p, want in files.items():
        try:
            assert fs.read_bytes(p) == want
        except CorruptionError as exc:
            assert "dictionary" in str(exc)
            damaged += 1
    return damaged


def _over() -> VFS:
    top = VFS(_over.path + ".top")  # type: ignore[attr-defined]
    top.add_underlay(_over.path)  # type: ignore[attr-defined]
    return top


def test_a_forged_dictionary_id_in_a_stack_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _small_tree(a, 100, seed=1)
    _small_tree(b, 100, seed=2)
    pack(str(a), str(tmp_path / "a.vfs"), compression="zstd", dictionary=True)
    pack(str(b), str(tmp_path / "b.vfs"), compression="zstd", dictionary=True)
    con = sqlite3.connect(tmp_path / "a.vfs")
    ident = con.execute("SELECT id FROM vfs_dictionaries").fetchone()[0]
    con.close()
    _damage(tmp_path / "b.vfs", "UPDATE vfs_dictionaries SET id = ?", ident)
    with VFS(tmp_path / "top.vfs") as top:
        top.add_underlay(str(tmp_path / "a.vfs"), name="a")
        with pytest.raises(CorruptionError, match="already used by another dictionary"):
            top.add_underlay(str(tmp_path / "b.vfs"), name="b")
        assert [lay["name"] for lay in top.list_layers()] == ["local", "a"]


def test_a_crafted_frame_cannot_expand_past_a_chunk(tmp_path):
    import zstandard

    files, path = _dictionary_pack(tmp_path, 150, "dict.vfs")
    con = sqlite3.connect(path)
    data = con.execute("SELECT data FROM vfs_dictionaries").fetchone()[0]
    victim = con.execute("SELECT id FROM vfs_inodes WHERE codec = 3 LIMIT 1").fetchone()[0]
    con.close()
    d = zstandard.ZstdCompressionDict(zstandard.ZstdDecompressor().decompress(data),
                                      dict_type=zstandard.DICT_TYPE_FULLDICT)
    bomb = zstandard.ZstdCompressor(dict_data=d).compress(bytes(64 << 20))
    _damage(path, "UPDATE vfs_inodes SET data = ? WHERE id = ?", bomb, victim)
    with VFS(path, read_only=True) as fs:
        bad = [p for p in files if _fails(fs, p)]
        assert len(bad) == 1


def _fails(fs: VFS, p: str) -> bool:
    try:
        fs.read_bytes(p)
    except CorruptionError:
        return True
    return False


def test_upgrade_and_downgrade_keep_dictionary_content(tmp_path):
    files, path = _dictionary_pack(tmp_path, 120, "dict.vfs")
    assert _codecs(path).get(3, 0) > 100
    _migrate(str(path), "0005")  # the revision before dictionaries
    assert _revision(str(path)) == "0005" and 3 not in _codecs(path)
    _migrate(str(path), "head")
    with VFS(path, read_only=True) as fs:
        _reads_right(fs, files)
        assert fs.check(deep=True).ok


def test_dictionaries_on_postgresql(tmp_path, pg_url, pg_tree):
    """A tree trained and recompressed in place, read back, and as an underlay of a SQLite
    top (a foreign layer, read through its own VFS)."""
    src = tmp_path / "src"
    files = _small_tree(src, 150)
    with VFS(pg_url, tree=pg_tree, compression="zstd", compression_level=19) as fs:
        fs.write_files(list(files.items()))
        fs.train_dictionary()
        _reads_right(fs, files)
        fs.write_bytes("/after.py", files["/d0/f0.py"] + b"#")
        assert fs.check(deep=True).ok
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        _reads_right(fs, files)
    with VFS(pg_url, tree=pg_tree, compression_level=5) as fs:  # a level for an existing tree
        fs.write_bytes("/level5.py", files["/d1/f1.py"])
        assert fs.read_bytes("/level5.py") == files["/d1/f1.py"]
    with VFS(tmp_path / "top.vfs") as top:
        top.add_underlay(pg_url, tree=pg_tree)
        _reads_right(top, files)


def _dictionary_pack(tmp_path: Path, n: int, name: str) -> tuple[dict[str, bytes], Path]:
    """A pack (with a dictionary) of ``n`` small similar files: (its files, its path)."""
    files = _small_tree(tmp_path / "src", n)
    path = tmp_path / name
    pack(str(tmp_path / "src"), str(path), compression="zstd", dictionary=True)
    return files, path


def _unframed(stored: bytes) -> bytes:
    """The dictionary a stored frame holds (read independently of vfs_orm)."""
    import zstandard
    return zstandard.ZstdDecompressor().decompress(stored)


def _dictionary_row(path) -> tuple[bytes, bytes]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT data, digest FROM vfs_dictionaries").fetchone()
    finally:
        con.close()


def test_a_dictionary_is_stored_compressed_and_read_either_way(tmp_path):
    """Format 0011: a new dictionary is stored as one zstd frame when that is smaller, its
    digest still the dictionary's own; one stored as is (every release before 0011) reads the
    same. The downgrade to 0010 stores it as is again."""

    files, path = _dictionary_pack(tmp_path, 200, "dict.vfs")
    data, digest = _dictionary_row(path)
    assert data[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    plain = _unframed(data)
    assert plain[:4] == b"\x37\xa4\x30\xec" and hashlib.sha256(plain).digest() == digest
    assert len(data) < 0.7 * len(plain)
    with VFS(path, read_only=True) as fs:
        _reads_right(fs, files)
        assert fs.check(deep=True).ok
    _migrate(str(path), "0010")
    assert _revision(str(path)) == "0010"
    assert _dictionary_row(path) == (plain, digest)
    _migrate(str(path), "head")
    with VFS(path, read_only=True) as fs:  # stored as is, read by this release
        _reads_right(fs, files)
        assert fs.check(deep=True).ok


def test_a_release_pack_trains_a_bigger_dictionary(tmp_path):
    """At a release level the dictionary is a quarter of the samples (it is stored
    compressed); at an everyday level a fiftieth."""
    from vfs_orm.content.codec import dictionary_size

    assert dictionary_size(10 << 20, 3) == (10 << 20) // 50
    assert dictionary_size(10 << 20, 19) == (10 << 20) // 4
    assert dictionary_size(100 << 20, 19) == 4 << 20
    assert dictionary_size(1000, 19) == dictionary_size(1000, 3) == 16 * 1024
    src = tmp_path / "src"
    files = _small_tree(src, 300)
    sizes = {}
    for level in (3, 19):
        path = tmp_path / f"l{level}.vfs"
        pack(str(src), str(path), compression="zstd", compression_level=level, dictionary=True)
        import zstandard
        sizes[level] = len(zstandard.ZstdDecompressor().decompress(_dictionary_row(path)[0]))
        with VFS(path, read_only=True) as fs:
            _reads_right(fs, files)
    assert sizes[19] > 2 * sizes[3]
    with VFS(tmp_path / "t.vfs", compression="zstd") as fs:
        fs.write_files(list(files.items()))
        for bad in (0, 100, (16 << 20) + 1, 2.5):
            with pytest.raises(ContractError, match="dictionary's size"):
                fs.train_dictionary(size=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("damage", ["bomb", "zeros", "unsized", "trailing", "other_dictionary",
                                    "not_a_frame"])
def test_a_damaged_compressed_dictionary_is_a_corruption_error(tmp_path, monkeypatch, damage):
    """The stored frame is untrusted: one claiming more than 16 MiB, or more than 16 times its
    own size (3 KB of zeros claiming 16 MiB: memory must follow the file's size), is refused
    before it is inflated; one that does not state its size, one followed by more bytes, one
    holding another dictionary, and garbage after the frame magic are each a CorruptionError
    naming the dictionary, decoded once however many values name it, and the check reports
    it."""
    import zstandard

    files, path = _dictionary_pack(tmp_path, 150, "dict.vfs")
    data, _digest = _dictionary_row(path)
    plain = _unframed(data)
    if damage == "bomb":
        bad = zstandard.ZstdCompressor(level=1).compress(plain + bytes(64 << 20))
    elif damage == "zeros":
        bad = zstandard.ZstdCompressor(level=19).compress(plain + bytes((16 << 20) - len(plain)))
        assert len(bad) * 16 < 16 << 20
    elif damage == "trailing":
        bad = data + b"more"
    elif damage == "unsized":  # streamed: the frame does not state its size
        bad = b"".join(zstandard.ZstdCompressor().read_to_iter(io.BytesIO(plain)))
        assert zstandard.frame_content_size(bad) == -1
    elif damage == "other_dictionary":
        other = tmp_path / "other"
        _small_tree(other, 150, seed=5)
        pack(str(other), str(tmp_path / "o.vfs"), compression="zstd", dictionary=True)
        bad = _dictionary_row(tmp_path / "o.vfs")[0]
    else:
        bad = b"\x28\xb5\x2f\xfd" + os.urandom(200)
    _damage(path, "UPDATE vfs_dictionaries SET data = ?", bad)
    from vfs_orm.content import codec
    calls = []
    unframe = codec.unframe
    monkeypatch.setattr(codec, "unframe", lambda data: calls.append(1) or unframe(data))
    with VFS(path, read_only=True) as fs:
        assert any("dictionary" in p for p in fs.check().problems)
        assert _dictionary_damage(fs, files) >= 100
    assert len(calls) <= 2  # the check's VFS and the reads' (one Dictionary each at most)


def test_format_0010_upgrades_with_its_dictionary_stored_as_is(tmp_path):
    """A database written by the 0010 release (a dictionary stored as is, links, a FIFO, a
    checkpoint) reads as it was; a dictionary trained after the upgrade is stored compressed
    beside the old one, and both read: the old one's values, and the new one's."""
    import json
    import shutil
    from pathlib import Path

    from vfs_orm import FORMAT_REVISION
    fixtures = Path(__file__).with_name("fixtures")
    path = tmp_path / "f.db"
    shutil.copy(fixtures / "format_0010.db", path)
    manifest = json.loads((fixtures / "format_0010.manifest.json").read_text())
    assert _dictionary_row(path)[0][:4] == b"\x37\xa4\x30\xec"  # stored as is
    with VFS(path) as fs:
        assert fs.info()["revision"] == FORMAT_REVISION
        for p, meta in manifest.items():
            st = fs.stat(p)
            assert st.st_mode == meta["mode"], p
            if meta["type"] == "file":
                assert fs.digest(p) == meta["sha256"], p
            elif meta["type"] == "link":
                assert fs.readlink(p) == meta["target"]
        assert fs.check(deep=True).ok
        new = {f"/new{p}": data for p, data in _small_tree(tmp_path / "new", 150).items()}
        fs.write_files(list(new.items()))
        fs.train_dictionary(recompress=False)
        fs.write_text("/new/after.json", '{"id": 1000, "name": "item 1000"}\n' * 5)
        with fs.open_checkpoint("before-edit") as view:
            assert view.read_bytes("/many/f007.json").startswith(b'{"id": 7,')
    con = sqlite3.connect(path)
    magics = sorted(bytes(d[:4]) for d, in con.execute("SELECT data FROM vfs_dictionaries"))
    con.close()
    assert magics == [b"\x28\xb5\x2f\xfd", b"\x37\xa4\x30\xec"]
    with VFS(path, read_only=True) as fs:
        for p, meta in manifest.items():
            if meta["type"] == "file":
                assert fs.digest(p) == meta["sha256"], p
        for p, data in new.items():
            assert fs.read_bytes(p) == data
        assert fs.check(deep=True).ok


def test_only_if_smaller_keeps_a_dictionary_that_pays_and_nothing_else(tmp_path):
    """``train_dictionary(only_if_smaller=True)``: a dictionary that shrinks no value (trained
    on unrelated samples) is not stored, values stay as they were and new writes use no
    dictionary; on many similar small files it is kept, as without the option."""
    rnd = random.Random(2)
    unrelated = list(_small_tree(tmp_path / "unrelated", 200, seed=7).values())
    with VFS(tmp_path / "few.vfs", compression="zstd") as fs:
        values = {f"/r{k}.bin": rnd.randbytes(3000) + b"tail " * 20 for k in range(40)}
        fs.write_files(list(values.items()))
        before = _stored_bytes(tmp_path / "few.vfs")
        assert fs.train_dictionary(unrelated, only_if_smaller=True) is None
        fs.write_bytes("/later.txt", b"later " * 100)
        _reads_right(fs, {**values, "/later.txt": b"later " * 100})
        with pytest.raises(ContractError, match="needs recompress"):
            fs.train_dictionary(only_if_smaller=True, recompress=False)
    assert _dictionary_row(tmp_path / "few.vfs") is None
    assert 3 not in _codecs(tmp_path / "few.vfs")
    assert _stored_bytes(tmp_path / "few.vfs") >= before
    src = tmp_path / "src"
    files = _small_tree(src, 300)
    with VFS(tmp_path / "many.vfs", compression="zstd") as fs:
        fs.write_files(list(files.items()))
        ident = fs.train_dictionary(only_if_smaller=True)
        assert isinstance(ident, int)
        _reads_right(fs, files)
        # The same dictionary again: nothing new to store, so it is kept whatever it saves.
        with VFS(tmp_path / "again.vfs", compression="zstd") as again:
            again.write_files(list(files.items()))
            assert again.train_dictionary(only_if_smaller=True) == ident
            assert again.train_dictionary(only_if_smaller=True) == ident
    assert _codecs(tmp_path / "many.vfs").get(3, 0) > 250


@pytest.mark.parametrize("level", [0, -5, 3, 9])
def test_dictionary_writes_at_every_low_level(tmp_path, level):
    """Levels up to 9 compress with a dictionary prepared for them (0 is zstd's default)."""
    src = tmp_path / "src"
    files = _small_tree(src, 120)
    with VFS(tmp_path / "l.vfs", compression="zstd", compression_level=level) as fs:
        fs.write_files(list(files.items()))
        assert isinstance(fs.train_dictionary(), int)
        fs.write_bytes("/after.py", files["/d0/f0.py"] + b"# after")
        _reads_right(fs, {**files, "/after.py": files["/d0/f0.py"] + b"# after"})
        assert fs.check(deep=True).ok
    assert _codecs(tmp_path / "l.vfs").get(3, 0) > 100


def test_train_dictionary_refuses_a_batch(tmp_path):
    """Inside atomic_batch() a dictionary is refused (a batch rolled back later would leave
    new values naming a dictionary that was never stored), and nothing changes."""
    src = tmp_path / "src"
    files = _small_tree(src, 120)
    path = tmp_path / "b.vfs"
    with VFS(path, compression="zstd") as fs:
        fs.write_files(list(files.items()))
        with fs.atomic_batch():
            with pytest.raises(InvalidOperationError, match="atomic_batch"):
                fs.train_dictionary()
            fs.write_bytes("/in-batch.py", files["/d1/f1.py"])
    assert _dictionary_row(path) is None and 3 not in _codecs(path)
    with VFS(path, read_only=True) as fs:
        _reads_right(fs, {**files, "/in-batch.py": files["/d1/f1.py"]})


def test_the_downgrade_refuses_a_damaged_frame_and_changes_nothing(tmp_path):
    import zstandard

    files, path = _dictionary_pack(tmp_path, 120, "d.vfs")
    data, _digest = _dictionary_row(path)
    plain = _unframed(data)
    zeros = zstandard.ZstdCompressor(level=19).compress(plain + bytes(8 << 20))
    _damage(path, "UPDATE vfs_dictionaries SET data = ?", zeros)  # claims 16 times its size
    with pytest.raises(Exception, match="damaged frame"):
        _migrate(str(path), "0010")
    assert _revision(str(path)) == FORMAT_REVISION and _dictionary_row(path)[0] == zeros
    _damage(path, "UPDATE vfs_dictionaries SET data = ?", data)
    _migrate(str(path), "0010")
    assert _dictionary_row(path)[0] == plain
    with VFS(path) as fs:  # upgraded again on its first writable open
        _reads_right(fs, files)
