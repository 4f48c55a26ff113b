"""``with vfs.snapshot():`` - every read inside sees one committed state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from vfs_orm import VFS, InvalidOperationError

FILES = [f"/save/part{k}.json" for k in range(5)]

SAVER = textwrap.dedent("""
    import json, sys, time
    from vfs_orm import VFS
    fs = VFS(sys.argv[1])
    deadline = time.monotonic() + float(sys.argv[2])
    gen = 1
    while time.monotonic() < deadline:
        with fs.atomic_batch():
            for k in range(5):
                fs.write_text(f"/save/part{k}.json", json.dumps({"gen": gen, "pad": "x" * (k * 3000)}))
        gen += 1
    print(gen - 1)
    fs.close()
""")


def _generations(fs):
    return {json.loads(fs.read_text(p))["gen"] for p in FILES}


def _start(tmp_path, path, seconds):
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    return subprocess.Popen([sys.executable, str(script), path, str(seconds)],
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("read_only", [False, True])
def test_loading_a_save_never_mixes_two_saves(tmp_path, read_only):
    path = str(tmp_path / "game.vfs")
    with VFS(path) as fs:
        with fs.atomic_batch():
            for p in FILES:
                fs.write_text(p, json.dumps({"gen": 0}))
    saver = _start(tmp_path, path, 4)
    loads = mixed_without = 0
    seen = set()
    with VFS(path, read_only=read_only) as fs:
        # The saver's first save first (its start-up may take seconds on a loaded machine;
        # it then saves for 4 s): the loads below overlap its saves.
        started = time.monotonic()
        while _generations(fs) == {0} and time.monotonic() - started < 120:
            time.sleep(0.01)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with fs.snapshot():
                gens = _generations(fs)
                with fs.open(FILES[4]) as f:  # streams see the same state
                    gens.add(json.loads(f.read())["gen"])
                assert fs.listdir("/save") == sorted(p.rsplit("/", 1)[1] for p in FILES)
            assert len(gens) == 1, f"a load mixed saves {sorted(gens)}"
            seen |= gens
            loads += 1
            if len(_generations(fs)) > 1:  # without a snapshot it can happen
                mixed_without += 1
    saved = int(saver.communicate(timeout=30)[0])
    assert saver.returncode == 0
    assert saved > 10 and loads > 10 and len(seen) > 2  # the writer was never blocked


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
