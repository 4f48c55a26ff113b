"""Format 0004's content rules: compression per database, block checksums verified on every
read path, a SHA-256 digest per file computed while writing, the deep check and diff."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vfs_orm import VFS, ContractError, CorruptionError
from vfs_orm.backends.sqlite import schema as dbmod

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEXT = b"".join(b"line %d of a very repetitive save file\n" % i for i in range(4000))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


@pytest.mark.parametrize("compression", ["zstd", "zlib"])
def test_compressed_content_reads_and_writes_like_plain(tmp_path, compression):
    path = tmp_path / "c.vfs"
    noise = random.Random(1).randbytes(200_000)  # incompressible: stored as is
    with VFS(path, compression=compression, chunk_size=16384) as fs:
        assert fs.compression == compression
        fs.write_bytes("/save.txt", TEXT)
        fs.write_bytes("/noise.bin", noise)
        fs.write_bytes("/small.txt", b"hello " * 100)
        fs.write_files([(f"/many/{i}.txt", b"entry %d " % i * 50) for i in range(100)])
    assert os.path.getsize(path) < len(TEXT) // 4 + len(noise) + 100_000
    codecs = _codecs(path)
    assert codecs.get(0) and codecs.get(1 if compression == "zlib" else 2)
    with VFS(path) as fs:  # the setting is the database's: no argument needed
        assert fs.compression == compression
        assert fs.read_bytes("/save.txt") == TEXT
        assert fs.read_bytes("/noise.bin") == noise
        rnd = random.Random(2)
        with fs.open("/save.txt", "rb") as f:
            for _ in range(200):
                at, n = rnd.randrange(len(TEXT)), rnd.randrange(1, 9000)
                f.seek(at)
                assert f.read(n) == TEXT[at:at + n]
        with fs.open("/save.txt", "r+b") as f:  # in place, across compressed chunks
            f.seek(16380)
            f.write(b"PATCHED")
        with fs.open("/save.txt", "ab") as f:
            f.write(b"appended")
        want = TEXT[:16380] + b"PATCHED" + TEXT[16387:] + b"appended"
        assert fs.read_bytes("/save.txt") == want
        assert fs.digest("/save.txt") == _sha(want)
        with fs.open("/save.txt", "r+b") as f:
            f.truncate(20000)
        assert fs.read_bytes("/save.txt") == want[:20000]
        assert fs.read_bytes("/many/7.txt") == b"entry 7 " * 50
        image = fs.to_bytes()
        assert fs.check(deep=True).ok
    with VFS.from_bytes(image) as copy:
        assert copy.compression == compression
        assert copy.read_bytes("/noise.bin") == noise


def test_compression_is_chosen_at_creation(tmp_path):
    path = tmp_path / "c.vfs"
    VFS(path, compression="zlib").close()
    with pytest.raises(ContractError, match="chosen when a database is created"):
        VFS(path, compression="zstd")
    with pytest.raises(ContractError, match="unknown compression"):
        VFS(tmp_path / "d.vfs", compression="lzma")
    with VFS(path, compression="zlib") as fs:  # the same one is fine
        assert fs.compression == "zlib"
    with VFS(tmp_path / "plain.vfs") as fs:
        assert fs.compression is None


def test_zstd_pack_without_zstandard_names_the_extra(tmp_path):
    path = tmp_path / "z.vfs"
    with VFS(path, compression="zstd") as fs:
        fs.write_bytes("/a.txt", TEXT)
    code = textwrap.dedent("""
        import sys
        sys.modules["zstandard"] = None  # as if it were not installed
        from vfs_orm import VFS, VFSError
        try:
            VFS(sys.argv[1], read_only=True)
        except VFSError as exc:
            print(type(exc).__name__, exc)
    """)
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'vfs-orm[zstd]'" in out.stdout


def test_digests_are_computed_while_writing(tmp_path):
    data = random.Random(3).randbytes(300_000)
    with VFS(tmp_path / "d.vfs", chunk_size=65536) as fs:
        fs.write_bytes("/big.bin", data)
        fs.write_bytes("/small.txt", b"small")
        fs.write_files([("/w/a", b"A" * 10), ("/w/b", data)])
        with fs.open("/streamed.bin", "wb") as f:
            for k in range(0, len(data), 7000):
                f.write(data[k:k + 7000])
        with fs.open("/sought.bin", "wb") as f:  # not front to back, but whole at close
            f.seek(10)
            f.write(b"tail")
            f.seek(0)
            f.write(b"head")
        con = sqlite3.connect(fs.db_path)
        stored = dict(con.execute("SELECT name, digest FROM vfs_inodes WHERE kind = 1"))
        con.close()
        assert stored["big.bin"] == hashlib.sha256(data).digest()
        assert stored["streamed.bin"] == hashlib.sha256(data).digest()
        assert stored["small.txt"] == hashlib.sha256(b"small").digest()
        assert stored["b"] == hashlib.sha256(data).digest()
        assert stored["sought.bin"] == hashlib.sha256(b"head" + bytes(6) + b"tail").digest()
        assert fs.digest("/sought.bin") == _sha(b"head" + bytes(6) + b"tail")
        fs.copy("/big.bin", "/copy.bin")
        assert fs.digest("/copy.bin") == fs.digest("/big.bin") == _sha(data)
        with fs.open("/big.bin", "r+b") as f:
            f.seek(100_000)
            f.write(b"changed")
        changed = data[:100_000] + b"changed" + data[100_007:]
        assert fs.digest("/big.bin") == _sha(changed)
        assert fs.digest("/copy.bin") == _sha(data)
        with pytest.raises(IsADirectoryError):
            fs.digest("/w")
        with pytest.raises(FileNotFoundError):
            fs.digest("/nope")
        assert fs.check(deep=True).ok


def _pack(path) -> dict[str, bytes]:
    rnd = random.Random(5)
    files = {f"/assets/f{i:03}.bin": rnd.randbytes(rnd.choice([300, 5000, 70_000, 150_000]))
             for i in range(24)}
    with VFS(path, chunk_size=16384) as fs:
        fs.write_files(sorted(files.items()))
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return files


def test_flipped_bytes_in_content_are_never_returned(tmp_path):
    """Flip random bytes inside the stored content of a real pack, hundreds of times: every
    read of a damaged file raises CorruptionError, none returns wrong bytes."""
    path = tmp_path / "pack.vfs"
    files = _pack(path)
    image = path.read_bytes()
    # Where each file's bytes lie in the database file (their 64-byte samples).
    spots = []
    for data in files.values():
        for k in range(0, len(data) - 64, 997):
            at = image.find(data[k:k + 64])
            if at >= 0:
                spots.append(at)
    assert len(spots) > 300
    rnd = random.Random(6)
    work = tmp_path / "work.vfs"
    raised = 0
    for _round in range(300):
        damaged = bytearray(image)
        for _ in range(rnd.randrange(1, 4)):
            at = rnd.choice(spots) + rnd.randrange(64)
            damaged[at] ^= 1 << rnd.randrange(8)
        work.write_bytes(bytes(damaged))
        with VFS(work, read_only=True) as fs:
            for p, data in files.items():
                try:
                    assert fs.read_bytes(p) == data, p
                except CorruptionError:
                    raised += 1
                try:
                    with fs.open(p, "rb") as f:
                        f.seek(len(data) // 3)
                        got = f.read(5000)
                    assert got == data[len(data) // 3:len(data) // 3 + 5000], p
                except CorruptionError:
                    pass
    assert raised >= 300  # every round damaged at least one file


def test_deep_check_and_cli_list_damaged_files(tmp_path):
    from tests.test_cli import run

    path = tmp_path / "pack.vfs"
    files = _pack(path)
    assert run("check", path, "--deep")[0] == 0
    victim = next(p for p, d in files.items() if len(d) > 20_000)
    image = bytearray(path.read_bytes())
    at = bytes(image).find(files[victim][20_000:20_064])
    image[at + 5] ^= 0xFF
    path.write_bytes(bytes(image))
    with VFS(path, read_only=True) as fs:
        report = fs.check(deep=True)
        assert not report.ok and len(report.problems) == 1
        assert report.problems[0].startswith(f"{victim}: damaged content at offset 16384")
        assert fs.check().ok  # the structure is fine: only the deep check reads content
        with VFS(path, read_only=True, verify=False) as fast:
            assert fast.read_bytes(victim) != files[victim]  # what verification prevents
    code, _out, err = run("check", path, "--deep")
    assert code == 1 and victim in err


def test_cli_pack_compress_and_diff(tmp_path):
    from tests.test_cli import run

    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data" / "save.txt").write_bytes(TEXT)
    (src / "data" / "same.txt").write_text("unchanged")
    (src / "gone.txt").write_text("only in the old pack")
    assert run("pack", src, tmp_path / "v1.vfs", "--compress", "zstd", "-q")[0] == 0
    (src / "data" / "save.txt").write_bytes(TEXT + b"patch")
    (src / "gone.txt").unlink()
    (src / "new.txt").write_text("new")
    assert run("pack", src, tmp_path / "v2.vfs", "--compress", "zlib", "-q")[0] == 0
    with VFS(tmp_path / "v1.vfs", read_only=True) as fs:
        assert fs.compression == "zstd" and fs.read_bytes("/data/save.txt") == TEXT
        assert fs.info()["chunk_size"] == 256 * 1024  # compressed packs: bigger chunks
    code, out, _err = run("diff", tmp_path / "v1.vfs", tmp_path / "v2.vfs")
    assert code == 1
    assert out.decode().splitlines() == ["M /data/save.txt", "- /gone.txt", "+ /new.txt"]
    assert run("diff", tmp_path / "v1.vfs", tmp_path / "v1.vfs")[0] == 0


def test_format_0003_upgrades_with_digests_and_checksums(tmp_path):
    path = tmp_path / "f.vfs"
    shutil.copy(FIXTURES / "format_0003.db", path)
    manifest = json.loads((FIXTURES / "format_0003.manifest.json").read_text())
    with VFS(path) as fs:
        for p, want in manifest.items():
            if want["type"] == "file":
                assert fs.digest(p) == want["sha256"], p
                assert _sha(fs.read_bytes(p)) == want["sha256"], p
                st = fs.stat(p)
                assert (st.st_mtime_ns, st.st_ctime_ns) == (want["mtime_ns"], want["ctime_ns"])
        report = fs.check(deep=True)
        assert report.ok, report.problems
        assert report.counts["files_verified"] == sum(
            1 for w in manifest.values() if w["type"] == "file")
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version_num FROM vfs_alembic_version").fetchone()[0] == \
            dbmod.head_revision()
        assert con.execute("SELECT count(*) FROM vfs_inodes WHERE kind = 1 AND digest IS NULL"
                           ).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM vfs_chunks WHERE length(sums) != "
                           "8 * ((length(data) + 4095) / 4096 + 1)").fetchone()[0] == 0
    finally:
        con.close()


def test_verification_can_be_switched_off(tmp_path):
    path = tmp_path / "v.vfs"
    with VFS(path) as fs:
        fs.write_bytes("/a.bin", TEXT)
    with VFS(path, verify=False, read_only=True) as fs:
        assert fs.read_bytes("/a.bin") == TEXT
        with fs.open("/a.bin", "rb") as f:
            f.seek(70_000)
            assert f.read(10) == TEXT[70_000:70_010]
    with pytest.raises(TypeError):
        VFS(path, compression=123)  # type: ignore[arg-type]


@pytest.mark.parametrize("verify", [True, False])
def test_a_compressed_underlay_is_read_right_by_every_path(tmp_path, verify):
    """Chunks of a compressed underlay, and their copies up into an uncompressed top, are
    never read in part as if stored as is."""
    text = b"".join(b"%06d semi compressible line of a pack\n" % (i * 7919 % 100000)
                    for i in range(8000))
    under = tmp_path / "under.vfs"
    with VFS(under, compression="zlib") as fs:
        fs.write_bytes("/asset.txt", text)
    with VFS(tmp_path / "top.vfs", verify=verify) as fs:
        fs.add_underlay(str(under), name="pack")
        with fs.open("/asset.txt", "rb", buffering=0) as f:
            f.seek(66_000)
            assert f.read(24) == text[66_000:66_024]
        with fs.open("/asset.txt", "rb") as f:
            assert f.readlines() == text.splitlines(keepends=True)
        fs.copy("/asset.txt", "/copy.txt")  # up into the top, in the top's own encoding
        with fs.open("/copy.txt", "rb", buffering=0) as f:
            f.seek(100_000)
            assert f.read(50) == text[100_000:100_050]
        assert fs.digest("/copy.txt") == _sha(text)
        assert fs.check(deep=True).ok
