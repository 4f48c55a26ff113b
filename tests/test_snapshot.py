"""``with vfs.snapshot():`` - every read inside sees one committed state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from vfs_orm import VFS, InvalidOperationError

FILES = [f"/save/part{k}.json" for k in range(5)]

SAVER = textwrap.dedent("""
    import json, sys
    from vfs_orm import VFS
    fs = VFS(sys.argv[1])
    gen = 0

    def save():
        global gen
        gen += 1
        with fs.atomic_batch():
            for k in range(5):
                fs.write_text(f"/save/part{k}.json", json.dumps({"gen": gen, "pad": "x" * (k * 3000)}))

    # One save per line asked for, acknowledged; then "run N": N saves back to back.
    for line in sys.stdin:
        if line.startswith("run"):
            for _ in range(int(line.split()[1])):
                save()
            print(gen, flush=True)
            break
        save()
        print(gen, flush=True)
    fs.close()
""")
#: Saves made one at a time, each while the reader holds a snapshot open; then back to back
#: while the reader loads over and over.
LOCKSTEP, RUN = 25, 200


def _generations(fs):
    return {json.loads(fs.read_text(p))["gen"] for p in FILES}


def _start(tmp_path, path):
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    return subprocess.Popen([sys.executable, str(script), path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _load(fs):
    """The save's five files and a stream of one, in one snapshot."""
    with fs.snapshot():
        gens = _generations(fs)
        with fs.open(FILES[4]) as f:  # streams see the same state
            gens.add(json.loads(f.read())["gen"])
        assert fs.listdir("/save") == sorted(p.rsplit("/", 1)[1] for p in FILES)
    return gens


@pytest.mark.parametrize("read_only", [False, True])
def test_loading_a_save_never_mixes_two_saves(tmp_path, read_only):
    path = str(tmp_path / "game.vfs")
    with VFS(path) as fs:
        with fs.atomic_batch():
            for p in FILES:
                fs.write_text(p, json.dumps({"gen": 0}))
    saver = _start(tmp_path, path)
    assert saver.stdin is not None and saver.stdout is not None
    seen = {0}
    try:
        with VFS(path, read_only=read_only) as fs:
            # A save commits while the reader holds its snapshot open (the writer is never
            # blocked), and the snapshot keeps the state it pinned; the next load sees it.
            for k in range(1, LOCKSTEP + 1):
                with fs.snapshot():
                    before = _generations(fs)
                    saver.stdin.write("save\n")
                    saver.stdin.flush()
                    assert int(saver.stdout.readline()) == k  # committed meanwhile
                    assert _load(fs) == before == {k - 1}
                seen |= _load(fs)
                assert seen == set(range(k + 1))
            # Saves back to back while the reader loads: every load is one whole save.
            saver.stdin.write(f"run {RUN}\n")
            saver.stdin.flush()
            while saver.poll() is None:
                gens = _load(fs)
                assert len(gens) == 1, f"a load mixed saves {sorted(gens)}"
                seen |= gens
            assert _load(fs) == {LOCKSTEP + RUN}
        out, _ = saver.communicate(timeout=120)
    finally:
        if saver.poll() is None:
            saver.kill()
            saver.communicate()
    assert saver.returncode == 0
    assert int(out) == LOCKSTEP + RUN  # every save asked for was made
    assert len(seen) > LOCKSTEP and seen <= set(range(LOCKSTEP + RUN + 1))


def test_snapshot_through_layers_and_refuses_writes(tmp_path):
    base = VFS(str(tmp_path / "base.vfs"))
    base.write_bytes("/a.txt", b"base")
    top = VFS(str(tmp_path / "top.vfs"))
    top.add_underlay(base.db_path, name="base")
    with top.snapshot():
        with top.snapshot():  # nests
            assert top.read_bytes("/a.txt") == b"base"
        with pytest.raises(InvalidOperationError):
            top.write_bytes("/b.txt", b"no")
        with pytest.raises(InvalidOperationError):
            with top.atomic_batch():
                pass
    top.write_bytes("/b.txt", b"after")  # writes work again after it
    with top.atomic_batch():
        with top.snapshot():  # the batch's own transaction is the snapshot
            assert top.read_bytes("/b.txt") == b"after"
        top.write_bytes("/c.txt", b"in batch")
    assert top.read_bytes("/c.txt") == b"in batch"
    top.close()
    base.close()


def test_snapshot_pins_the_state_against_another_connection(tmp_path):
    path = str(tmp_path / "s.vfs")
    reader, writer = VFS(path), VFS(path)
    writer.write_bytes("/x", b"1")
    with reader.snapshot():
        assert reader.read_bytes("/x") == b"1"
        writer.write_bytes("/x", b"2")  # another connection commits meanwhile: not blocked
        writer.write_bytes("/y", b"new")
        assert reader.read_bytes("/x") == b"1"
        assert not reader.exists("/y")
    assert reader.read_bytes("/x") == b"2" and reader.exists("/y")
    reader.close()
    writer.close()


def test_snapshot_on_memory_database(any_vfs):
    any_vfs.write_bytes("/m", b"1")
    with any_vfs.snapshot():
        assert any_vfs.read_bytes("/m") == b"1"
