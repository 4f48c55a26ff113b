"""Binary deltas in patch packs (format 0008): a changed file is stored as the difference from
OLD's version where that is smaller, and every read path reads it through the stack with
its base found by digest. Patches opened alone, forged deltas and missing or damaged bases
are clean errors."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_cli import run
from tests.test_patches import _make, _stacked, _view, round_trip
from vfs_orm import VFS, CorruptionError, PatchBaseError
from vfs_orm.content.codec import DELTA
from vfs_orm.patching import apply_patch, make_patch

_rng = random.Random(8)
BIG = bytes(_rng.getrandbits(8) for _ in range(300_000))  # incompressible; 5 chunks in OLD
TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n"
               for i in range(200)).encode()  # 11 KB: one inline value

OLD = {"/big.bin": BIG, "/text.txt": TEXT, "/same.txt": b"unchanged", "/gone.txt": b"gone"}
NEW = {"/big.bin": BIG[:70_000] + b"INSERTED" + BIG[70_000:250_000] + BIG[250_008:],
       "/text.txt": TEXT.replace(b"line 100:", b"line one hundred:"),
       "/same.txt": b"unchanged", "/added.txt": b"a new file"}


def _codecs(patch: str) -> list[int]:
    """The codec of every stored value of a pack (inline bytes and chunks)."""
    con = sqlite3.connect(patch)
    try:
        return [c for c, in con.execute(
            "SELECT codec FROM vfs_inodes WHERE data IS NOT NULL "
            "UNION ALL SELECT codec FROM vfs_chunks")]
    finally:
        con.close()


@pytest.fixture
def packs(tmp_path):
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "patch.vfs")
    report = make_patch(old, new, patch)
    return old, new, patch, report


def test_changed_files_are_stored_as_deltas_and_read_as_new(tmp_path, packs):
    old, new, patch, report = packs
    assert (report.changed, report.added, report.deleted, report.deltas) == (2, 1, 1, 2)
    assert _codecs(patch) == [0, DELTA, DELTA]  # added.txt whole; the text; the big file's chunk
    # Whole, the big file is incompressible: shipped whole it would be 300 KB.
    assert os.path.getsize(patch) < 100_000 and report.delta_saved > 250_000
    with VFS(new, read_only=True) as n:
        want = _view(n)
    with _stacked(tmp_path, old, patch) as top:
        assert _view(top) == want
        with top.open("/big.bin", "rb") as f:  # a span read in the middle of a chunk
            f.seek(69_990)
            assert f.read(30) == NEW["/big.bin"][69_990:70_020]
        report_ = top.check(deep=True)
        assert report_.ok, report_.problems
    with VFS(patch, read_only=True) as p:
        p.add_underlay(old, name="base")
        assert p.read_bytes("/big.bin") == NEW["/big.bin"]
        deep = p.check(deep=True)
        assert deep.ok and not deep.warnings and deep.counts["files_verified"] == 3


def test_a_patch_opened_alone_names_the_missing_base(packs):
    _old, _new, patch, _report = packs
    with VFS(patch, read_only=True) as p:
        assert p.read_bytes("/added.txt") == b"a new file"  # not a delta
        with pytest.raises(PatchBaseError, match="delta against content"):
            p.read_bytes("/big.bin")
        deep = p.check(deep=True)
        assert deep.ok  # not damage: unverifiable alone, and said so
        assert sorted(w.split(":")[0] for w in deep.warnings) == ["/big.bin", "/text.txt"]


def test_apply_patch_with_deltas_in_place_and_into_a_new_file(tmp_path, packs):
    old, new, patch, _report = packs
    with VFS(new, read_only=True) as n:
        want = _view(n)
    out = tmp_path / "out.vfs"
    apply_patch(old, patch, output=out)
    with VFS(out, read_only=True) as o:
        assert _view(o) == want
    apply_patch(old, patch)
    with VFS(old, read_only=True) as o:
        assert _view(o) == want
        assert DELTA not in _codecs(old)  # flattened: no base needed any more


def test_a_chain_of_delta_patches_reads_as_the_last_release(tmp_path):
    v12 = dict(NEW, **{"/big.bin": NEW["/big.bin"][:200_000] + b"1.2" + NEW["/big.bin"][200_000:]})
    p10, p11, p12 = (_make(tmp_path / f"{v}.vfs", t) for v, t in
                     (("1.0", OLD), ("1.1", NEW), ("1.2", v12)))
    d11, d12 = str(tmp_path / "d11.vfs"), str(tmp_path / "d12.vfs")
    assert make_patch(p10, p11, d11).deltas == 2
    assert make_patch(p11, p12, d12).deltas == 1  # 1.1's big file lives in d11, as deltas
    with VFS(p12, read_only=True) as n:
        want = _view(n)
    with _stacked(tmp_path, p10, d11, d12) as top:
        assert _view(top) == want
    out = tmp_path / "flat.vfs"
    apply_patch(p10, d11, output=out)
    apply_patch(out, d12)
    with VFS(out, read_only=True) as o:
        assert _view(o) == want


def test_a_save_over_a_patched_stack_copies_delta_files_up(tmp_path, packs):
    old, _new, patch, _report = packs
    with _stacked(tmp_path, old, patch) as top:
        with top.open("/big.bin", "r+b") as f:
            f.seek(10)
            f.write(b"edited")
        want = bytearray(NEW["/big.bin"])
        want[10:16] = b"edited"
        assert top.read_bytes("/big.bin") == bytes(want)
        assert top.check(deep=True).ok


def test_patch_images_and_dictionaries_keep_deltas_readable(tmp_path, packs):
    old, _new, patch, _report = packs
    with VFS(patch) as p:
        p.add_underlay(old, name="base")
        p.train_dictionary([TEXT[i:i + 2000] for i in range(0, 10_000, 100)], recompress=True)
        assert p.read_bytes("/text.txt") == NEW["/text.txt"]
        image = p.to_bytes()
    with VFS.from_bytes(image) as copy:
        copy.add_underlay(old, name="base")
        assert copy.read_bytes("/big.bin") == NEW["/big.bin"]
        assert copy.read_bytes("/text.txt") == NEW["/text.txt"]


def _set_value(path: str, where: str, value: bytes) -> None:
    con = sqlite3.connect(path)
    with con:
        assert con.execute(f"UPDATE {where}", (value,)).rowcount >= 1
    con.close()


def _big_chunk(patch: str) -> tuple[int, bytes]:
    con = sqlite3.connect(patch)
    try:
        return con.execute(
            "SELECT c.id, c.data FROM vfs_chunks c JOIN vfs_inodes i ON i.id = c.inode_id "
            "WHERE i.name = 'big.bin' AND c.idx = 0").fetchone()
    finally:
        con.close()


def test_forged_deltas_are_clean_errors(tmp_path, packs):
    old, _new, patch, _report = packs
    cid, value = _big_chunk(patch)
    cases = {
        "frame": value[:32] + b"\x28\xb5\x2f\xfd" + b"\x00" * 20,  # a broken frame
        "short": value[:20],  # no frame after the digest
        "unknown": hashlib.sha256(b"no such base").digest() + value[32:],
    }
    for what, forged in cases.items():
        copy = str(tmp_path / f"{what}.vfs")
        with open(patch, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        _set_value(copy, f"vfs_chunks SET data = ? WHERE id = {cid}", forged)
        with _stacked(tmp_path, old, copy) as top:
            assert top.read_bytes("/text.txt") == NEW["/text.txt"]  # the rest reads
            error = PatchBaseError if what == "unknown" else CorruptionError
            with pytest.raises(error):
                top.read_bytes("/big.bin")
        with VFS(copy, read_only=True) as p:
            p.add_underlay(old, name="base")
            deep = p.check(deep=True)
            # Over its base, a delta whose base is missing names forged content: a problem.
            assert deep.problems[0].startswith("/big.bin")


def test_a_delta_that_is_its_own_base_is_refused(tmp_path, packs):
    """A forged file whose stored digest is D and whose value is a delta against D: reading
    it would need itself."""
    old, _new, patch, _report = packs
    con = sqlite3.connect(patch)
    with con:
        digest, = con.execute("SELECT digest FROM vfs_inodes WHERE name = 'text.txt'").fetchone()
        value, = con.execute("SELECT data FROM vfs_inodes WHERE name = 'text.txt'").fetchone()
        con.execute("UPDATE vfs_inodes SET data = ? WHERE name = 'text.txt'",
                    (digest + value[32:],))
    con.close()
    with _stacked(tmp_path, old, patch) as top:
        with pytest.raises(CorruptionError):
            top.read_bytes("/text.txt")


def test_a_damaged_base_is_a_corruption_error_naming_it(tmp_path, packs):
    old, _new, patch, _report = packs
    con = sqlite3.connect(old)
    with con:  # the base's chunk 2 moved onto chunk 1: its seal fails where it is read
        sums2, data2 = con.execute(
            "SELECT c.sums, c.data FROM vfs_chunks c JOIN vfs_inodes i ON i.id = c.inode_id "
            "WHERE i.name = 'big.bin' AND c.idx = 2").fetchone()
        con.execute("UPDATE vfs_chunks SET sums = ?, data = ? WHERE idx = 1 AND inode_id = "
                    "(SELECT id FROM vfs_inodes WHERE name = 'big.bin')", (sums2, data2))
    con.close()
    with _stacked(tmp_path, old, patch) as top:
        with pytest.raises(CorruptionError, match="another file or position"):
            top.read_bytes("/big.bin")


def test_the_cli_reports_deltas(tmp_path):
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    code, out, err = run("make-patch", old, new, str(tmp_path / "p.vfs"))
    assert code == 0, err
    assert b"2 changed, 1 deleted, 0 new directories; 2 stored as deltas" in out


_edit = st.tuples(st.integers(0, 5000), st.integers(0, 40), st.binary(max_size=40))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 9000), min_size=1, max_size=5),
       edits=st.lists(st.lists(_edit, max_size=4), min_size=1, max_size=5), seed=st.integers())
def test_delta_patches_round_trip_on_edited_files(tmp_path_factory, sizes, edits, seed):
    """Files edited in place (bytes replaced, inserted, removed): [patch over old] and the
    applied patch read exactly as NEW."""
    base = tmp_path_factory.mktemp("dt")
    rng = random.Random(seed)
    old_tree = {f"/f{i}.bin": bytes(rng.getrandbits(8) for _ in range(n))
                for i, n in enumerate(sizes)}
    new_tree = dict(old_tree)
    for (path, data), changes in zip(sorted(old_tree.items()), edits, strict=False):
        for at, cut, put in changes:
            at = min(at, len(data))
            data = data[:at] + put + data[at + cut:]
        new_tree[path] = data
    round_trip(base, old_tree, new_tree)


def test_only_a_stack_with_a_patch_reads_with_bases(tmp_path, packs):
    """Statements are compiled once per process and shared by every VFS whose content rules
    are alike; bases are one VFS's stack, so only a stack holding a patch reads with them,
    with statements of its own."""
    old, new, patch, _report = packs
    with VFS(old, read_only=True) as a, VFS(new, read_only=True) as b:
        assert a._content.bases is None and a._repo is b._repo
        with _stacked(tmp_path, old) as plain:
            assert plain._read_content.bases is None
            compiled = plain._repo._read_span
        with _stacked(tmp_path, old, patch) as top:
            assert top._read_content.bases is top._bases is top._content.bases
            # Its own repository, bound to its bases, over the same compiled statements.
            assert top._repo.content is top._content and top._repo._read_span is compiled
            assert top.read_bytes("/text.txt") == NEW["/text.txt"]
        with VFS(patch, read_only=True) as p:
            assert p._read_content.bases is p._bases


def test_a_patch_keeps_a_dictionary_only_where_it_pays(tmp_path):
    """``make-patch --dict``: the patch is also made with a dictionary trained on its values
    that are not deltas, and the smaller file is kept. Changed files stored as deltas: no
    dictionary, the patch the size it is without ``--dict``; many similar added files: one is
    kept, and the patch is smaller than without it. Both read as NEW over OLD."""
    def dictionaries(patch: str) -> int:
        con = sqlite3.connect(patch)
        try:
            return con.execute("SELECT count(*) FROM vfs_dictionaries").fetchone()[0]
        finally:
            con.close()

    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    plain, with_dict = str(tmp_path / "p.vfs"), str(tmp_path / "pd.vfs")
    make_patch(old, new, plain)
    code, _out, err = run("make-patch", old, new, with_dict, "--dict", "-q")
    assert code == 0, err
    assert dictionaries(with_dict) == 0
    assert os.path.getsize(with_dict) == os.path.getsize(plain)
    rnd = random.Random(4)
    words = "player enemy quest item level score shield potion gold map".split()
    header = "".join(f"# {w}: see the modding guide, chapter {i}, for what {w} means\n"
                     for i, w in enumerate(words * 2))  # what every new file repeats
    added = dict(NEW)
    for k in range(300):
        added[f"/mods/npc{k}.cfg"] = (header + "\n".join(
            f"{rnd.choice(words)}_{rnd.choice(words)} = {rnd.randrange(100)}"
            for _ in range(30))).encode()
    new2 = _make(tmp_path / "new2.vfs", added)
    plain2, with_dict2 = str(tmp_path / "p2.vfs"), str(tmp_path / "pd2.vfs")
    make_patch(old, new2, plain2)
    make_patch(old, new2, with_dict2, dictionary=True)
    assert dictionaries(with_dict2) == 1
    assert os.path.getsize(with_dict2) < os.path.getsize(plain2)
    for target, patch in ((new, with_dict), (new2, with_dict2)):
        with VFS(target, read_only=True) as n:
            want = _view(n)
        with _stacked(tmp_path, old, patch) as top:
            assert _view(top) == want
