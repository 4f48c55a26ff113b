"""Patch packs: [PATCH over OLD] reads as NEW, a wrong base is refused before any read,
apply-patch flattens in one transaction (a kill leaves OLD as it was), chains work."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_cli import run
from vfs_orm import VFS, PatchBaseError
from vfs_orm.patching import apply_patch, make_patch


def _make(path, tree: dict[str, bytes | None]) -> str:
    """A pack holding ``tree`` (path -> bytes, or None for an empty directory)."""
    with VFS(path, compression="zstd") as fs:
        for p, data in sorted(tree.items()):
            if data is None:
                fs.makedirs(p, exist_ok=True)
            else:
                fs.makedirs(os.path.dirname(p) or "/", exist_ok=True)
                fs.write_bytes(p, data)
    return str(path)


def _view(fs: VFS) -> dict[str, object]:
    """Everything a reader sees: each directory's listing and each file's bytes and digest."""
    out: dict[str, object] = {}
    for top, _dirs, files in fs.walk("/"):
        out[top] = sorted(fs.listdir(top))
        for f in files:
            p = top.rstrip("/") + "/" + f
            out[p] = (fs.read_bytes(p), fs.digest(p))
    return out


def _stacked(tmp_path, *layers: str) -> VFS:
    """A fresh top over ``layers``, the first the lowest."""
    top = VFS(tmp_path / f"top-{len(os.listdir(tmp_path))}.vfs")
    for prio, layer in enumerate(layers):
        top.add_underlay(layer, priority=prio, name=f"l{prio}")
    return top


OLD = {"/a.txt": b"alpha " * 100, "/keep.txt": b"same", "/dir/x.bin": os.urandom(5000),
       "/dir/sub/y.txt": b"y" * 10, "/gone/z.txt": b"z", "/becomes_dir": b"file",
       "/empty": None}
NEW = {"/a.txt": b"alpha " * 100 + b"beta", "/keep.txt": b"same", "/dir/x.bin": OLD["/dir/x.bin"],
       "/dir/new.txt": b"new file", "/becomes_dir/inner.txt": b"now a directory",
       "/fresh": None}


def test_a_patch_over_its_base_reads_as_new(tmp_path):
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    report = make_patch(old, new, patch)
    assert (report.added, report.changed) == (2, 1) and report.deleted >= 2
    with VFS(new, read_only=True) as n:
        want, digest = _view(n), n.content_digest()
    with _stacked(tmp_path, old, patch) as top:
        assert _view(top) == want
        assert top.content_digest() == digest
    with VFS(patch) as p:  # a patch on top of its base, too
        assert p.patch is not None and p.patch.new_digest == digest
        p.add_underlay(old)
        assert _view(p) == want
    with VFS(patch, read_only=True) as p:  # alone: to inspect it
        assert p.read_bytes("/dir/new.txt") == b"new file" and not p.exists("/keep.txt")


def test_a_patch_over_the_wrong_base_is_refused_before_any_read(tmp_path):
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    other = _make(tmp_path / "other.vfs", {**OLD, "/a.txt": b"edited"})
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    with VFS(tmp_path / "t.vfs") as top:
        top.add_underlay(other, priority=0, name="other")
        with pytest.raises(PatchBaseError, match="layer 'patch' is a patch of"):
            top.add_underlay(patch, priority=1, name="patch")
        assert [lay["name"] for lay in top.list_layers()] == ["local", "other"]
        top.remove_underlay("other")
        with pytest.raises(PatchBaseError, match="lies over nothing"):
            top.add_underlay(patch, priority=1, name="patch")
        top.add_underlay(old, priority=0, name="old")
        top.add_underlay(patch, priority=1, name="patch")
        with pytest.raises(PatchBaseError):
            top.remove_underlay("old")  # would leave the patch over nothing
    with VFS(patch) as p, pytest.raises(PatchBaseError):
        p.add_underlay(other)
    _make(tmp_path / "cli-top.vfs", {})
    code, _out, err = run("ls", tmp_path / "cli-top.vfs", "/", "--underlay", f"{other}:0",
                          "--underlay", f"{patch}:1")
    assert code == 1 and "patch" in err


def test_apply_patch_in_place_and_into_a_new_file(tmp_path):
    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    assert run("make-patch", old, new, patch, "-q")[0] == 0
    with VFS(new, read_only=True) as n:
        want = _view(n)
    with VFS(old, read_only=True) as o:
        before = _view(o)
    code, _out, err = run("apply-patch", old, patch, "--output", tmp_path / "out.vfs", "-q")
    assert code == 0, err
    with VFS(tmp_path / "out.vfs", read_only=True) as out, VFS(old, read_only=True) as o:
        assert _view(out) == want and _view(o) == before
    assert run("apply-patch", old, patch, "-q")[0] == 0
    with VFS(old, read_only=True) as o:
        assert _view(o) == want
    code, _out, err = run("apply-patch", old, patch, "-q")  # not its base any more
    assert code == 1 and "not made from this tree" in err


def test_a_killed_apply_leaves_old_as_it_was(tmp_path):
    tree = {f"/d{k % 5}/f{k}.txt": b"old %d " % k * 50 for k in range(60)}
    old = _make(tmp_path / "old.vfs", tree)
    new = _make(tmp_path / "new.vfs", {p: d + b"!" for p, d in tree.items()})
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    with VFS(old, read_only=True) as o:
        before = _view(o)
    script = textwrap.dedent(f"""
        import os
        from vfs_orm.patching import apply_patch
        def progress(done):
            if done == 30:
                os._exit(9)  # killed half way: no rollback, no close
        apply_patch({old!r}, {patch!r}, progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert proc.returncode == 9
    with VFS(old, read_only=True) as o:
        assert _view(o) == before
    apply_patch(old, patch)  # and it still applies afterwards
    with VFS(old, read_only=True) as o, VFS(new, read_only=True) as n:
        assert _view(o) == _view(n)


def test_patch_chains_read_as_the_last_release(tmp_path):
    v10 = _make(tmp_path / "1.0.vfs", OLD)
    v11 = _make(tmp_path / "1.1.vfs", NEW)
    v12 = _make(tmp_path / "1.2.vfs", {**NEW, "/a.txt": b"third", "/v12.txt": b"1.2"})
    p11, p12 = str(tmp_path / "p11.vfs"), str(tmp_path / "p12.vfs")
    make_patch(v10, v11, p11)
    make_patch(v11, v12, p12)
    with VFS(v12, read_only=True) as n:
        want = _view(n)
    with _stacked(tmp_path, v10, p11, p12) as top:
        assert _view(top) == want
    with pytest.raises(PatchBaseError):  # 1.2's patch straight over 1.0
        _stacked(tmp_path, v10, p12)
    out = tmp_path / "flat.vfs"
    apply_patch(v10, p11, output=out)
    apply_patch(out, p12)
    with VFS(out, read_only=True) as o:
        assert _view(o) == want


names = st.sampled_from(["a", "b", "c", "d.txt", "e.bin"])
trees = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    st.binary(max_size=3000), max_size=12)


def _consistent(tree: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that would need a file to be a directory too."""
    out: dict[str, bytes] = {}
    for p in sorted(tree, key=len):
        if not any(p.startswith(q + "/") for q in out) and \
                not any(q.startswith(p + "/") for q in out):
            out[p] = tree[p]
    return out


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old_tree=trees, edits=trees, deletes=st.sets(st.integers(0, 20), max_size=5))
def test_patch_round_trips_on_random_trees(tmp_path_factory, old_tree, edits, deletes):
    base = tmp_path_factory.mktemp("rt")
    old_tree = _consistent(old_tree)
    keys = sorted(old_tree)
    new_tree = {k: v for i, k in enumerate(keys) if i not in deletes for v in [old_tree[k]]}
    new_tree = _consistent({**new_tree, **edits})
    round_trip(base, old_tree, new_tree)


def round_trip(base, old_tree: dict[str, bytes], new_tree: dict[str, bytes]) -> None:
    """A patch from ``old_tree`` to ``new_tree`` (packs made in ``base``): [patch over old]
    and the patch applied into a new file both read exactly as new."""
    old, new = _make(base / "old.vfs", dict(old_tree)), _make(base / "new.vfs", dict(new_tree))
    patch = str(base / "p.vfs")
    make_patch(old, new, patch)
    with VFS(new, read_only=True) as n:
        want = _view(n)
    with _stacked(base, old, patch) as top:
        assert _view(top) == want
    apply_patch(old, patch, output=base / "out.vfs")
    with VFS(base / "out.vfs", read_only=True) as out:
        assert _view(out) == want


def test_a_damaged_patch_record_is_a_corruption_error(tmp_path):
    import sqlite3

    from vfs_orm import CorruptionError

    old, new = _make(tmp_path / "old.vfs", OLD), _make(tmp_path / "new.vfs", NEW)
    patch = str(tmp_path / "p.vfs")
    make_patch(old, new, patch)
    with VFS(patch, read_only=True) as p, VFS(old, read_only=True) as o, \
            VFS(new, read_only=True) as n:
        base = o.content_manifest()
        assert p.patch_manifest(base=base) == n.content_manifest()
        with pytest.raises(PatchBaseError, match="give the base"):  # stored as changes
            p.patch_manifest()
        with pytest.raises(PatchBaseError, match="not the one"):
            p.patch_manifest(base=n.content_manifest())
    con = sqlite3.connect(patch)
    con.execute("UPDATE vfs_layer_manifests SET description = 'zlib:AAAA' WHERE role = 'patch'")
    con.commit()
    con.close()
    with VFS(patch, read_only=True) as p, pytest.raises(CorruptionError):
        p.patch_manifest()
    with VFS(old, read_only=True) as o:
        before = _view(o)
    with pytest.raises(CorruptionError):
        apply_patch(old, patch)
    with VFS(old, read_only=True) as o:
        assert _view(o) == before
