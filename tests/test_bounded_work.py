"""Work on hostile content is bounded by what is stored (SPEC §9).

Packs are crafted with plain ``sqlite3`` after vfs_orm wrote them, as a player would: chunks
that decompress to far more than a chunk, a recorded size of half a terabyte over nothing
stored, a zstd frame followed by junk. The deep check runs in a subprocess whose peak memory is
read back (``ru_maxrss``): a resource bound, not a timing.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from vfs_orm import VFS, CorruptionError
from vfs_orm.content import block_sums

zstandard = pytest.importorskip("zstandard")

_DEEP_CHECK = """
import json, resource, sys
from vfs_orm import VFS
with VFS(sys.argv[1], read_only=True) as fs:
    report = fs.check(deep=True)
print(json.dumps({"problems": report.problems, "warnings": report.warnings,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def _deep_check(path: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _DEEP_CHECK, path], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def pack(tmp_path) -> str:
    path = str(tmp_path / "pack.vfs")
    with VFS(path, compression="zstd", chunk_size=65536) as fs:
        for i in range(40):
            fs.write_bytes(f"/data/f{i}.bin", bytes([i]) * 65536 * 3)  # 3 chunks each
    return path


def test_chunks_that_expand_past_a_chunk_are_damage_not_memory(pack):
    """Every chunk replaced by a 2 KiB zstd frame of 64 MiB: the deep check reports each file
    as damaged without producing the 64 MiB (peak memory stays far below 40 x 3 x 64 MiB), and
    says what is wrong; a read is a CorruptionError."""
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(64 << 20))
    assert len(bomb) < 4096
    con = sqlite3.connect(pack)
    con.execute("UPDATE vfs_chunks SET data = ?, codec = 2", (bomb,))
    con.commit()
    con.close()
    report = _deep_check(pack)
    assert len(report["problems"]) == 40, report["problems"][:3]
    assert all("67108864" in p or "expands past" in p for p in report["problems"])
    assert report["rss_mib"] < 1024, report["rss_mib"]  # 40 x 3 x 64 MiB were it expanded
    with VFS(pack, read_only=True) as fs, pytest.raises(CorruptionError, match="offset 0"):
        fs.read_bytes("/data/f1.bin")


def test_a_recorded_size_over_nothing_stored_is_not_hashed_byte_by_byte(pack):
    """A file claiming 512 GiB with no chunk: the deep check does work proportional to what is
    stored (it would hash 512 GiB of zeros otherwise), says so in a warning, and still checks
    every other file."""
    con = sqlite3.connect(pack)
    con.execute("UPDATE vfs_inodes SET size = ?, digest = NULL WHERE name = 'f7.bin'", (1 << 39,))
    con.execute("DELETE FROM vfs_chunks WHERE inode_id = "
                "(SELECT id FROM vfs_inodes WHERE name = 'f7.bin')")
    con.commit()
    con.close()
    report = _deep_check(pack)
    assert report["problems"] == []
    assert len(report["warnings"]) == 1 and "/data/f7.bin" in report["warnings"][0]
    assert "holes" in report["warnings"][0]


def test_trailing_junk_after_a_frame_is_damage(pack):
    """A valid zstd frame of the right bytes, with the right checksums, followed by junk."""
    plain = bytes([3]) * 65536
    frame = zstandard.ZstdCompressor().compress(plain) + b"junk"
    con = sqlite3.connect(pack)
    (cid,) = con.execute("SELECT id FROM vfs_chunks WHERE idx = 1 AND inode_id = (SELECT id "
                         "FROM vfs_inodes WHERE name = 'f3.bin')").fetchone()
    con.execute("UPDATE vfs_chunks SET data = ?, codec = 2, sums = ? WHERE id = ?",
                (frame, block_sums(plain, cid), cid))
    con.commit()
    con.close()
    report = _deep_check(pack)
    assert len(report["problems"]) == 1 and "/data/f3.bin" in report["problems"][0]
    assert "after the frame" in report["problems"][0]
    with VFS(pack, read_only=True) as fs, pytest.raises(CorruptionError, match="offset 65536"):
        fs.read_bytes("/data/f3.bin")
