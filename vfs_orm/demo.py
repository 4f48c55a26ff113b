"""The demo behind ``vfs-orm demo`` and ``make demo``: the whole mission in a few seconds.

1. generate a small asset tree on disk and pack it into a base pack;
2. make a DLC pack and an in-memory mod, and layer them under a player's save;
3. show which layer serves a few paths;
4. hide a base file (a whiteout in the save, the base pack untouched);
5. save the game atomically, survive a failed save, and reload;
6. upgrade an old save written in the seed library's documented schema.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import create_engine, text

from vfs_orm import VFS
from vfs_orm.backends import SQLITE
from vfs_orm.pack import pack


def _assets(root: str) -> None:
    for rel, size in [("textures/player.png", 200_000), ("textures/enemy.png", 120_000),
                      ("audio/theme.ogg", 600_000), ("levels/level1.json", 2_000),
                      ("levels/level2.json", 2_500), ("scripts/ai.lua", 4_000),
                      ("config/settings.ini", 300)]:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(hashlib.sha256(rel.encode()).digest() * (size // 32 + 1))
    os.makedirs(os.path.join(root, "mods_go_here"), exist_ok=True)  # an empty directory


def _seed_save(path: str) -> None:
    """An old save in the seed library's documented schema (its README, "Storage Model"),
    written through SQLAlchemy as any application would."""
    schema = [
        """CREATE TABLE inodes (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT UNIQUE NOT NULL,
            is_directory INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
            modified_at TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX idx_inode_path ON inodes(path)",
        """CREATE TABLE chunks (inode_id INTEGER NOT NULL, chunk_index INTEGER NOT NULL,
            data BLOB, PRIMARY KEY (inode_id, chunk_index),
            FOREIGN KEY(inode_id) REFERENCES inodes(id) ON DELETE CASCADE)""",
    ]
    now = datetime(2026, 2, 5, 12, 0, 0, 123456).isoformat()
    rows = [("/", 1, 0), ("/save", 1, 0), ("/save/player.json", 0, 1),
            ("/save/world.bin", 0, 1)]
    payloads = {"/save/player.json": b'{"name": "Ayanami", "hp": 42}',
                "/save/world.bin": bytes(range(256)) * 1000}
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as con:
            for ddl in schema:
                con.execute(text(ddl))
            for path_, is_dir, _ in rows:
                size = len(payloads.get(path_, b""))
                inode_id = con.execute(
                    text("INSERT INTO inodes (path, is_directory, created_at, modified_at, "
                         "size) VALUES (:p, :d, :c, :m, :s) RETURNING id"),
                    {"p": path_, "d": is_dir, "c": now, "m": now, "s": size}).scalar_one()
                data = payloads.get(path_)
                if data is not None:
                    cs = 65536  # the seed's default; the upgrade infers it from the data anyway
                    con.execute(text("INSERT INTO chunks VALUES (:i, :k, :d)"),
                                [{"i": inode_id, "k": k // cs, "d": data[k:k + cs]}
                                 for k in range(0, len(data), cs)])
    finally:
        engine.dispose()


def run_demo(workdir: str | None = None, echo: Callable[[str], None] = print) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = workdir or tmp
        os.makedirs(root, exist_ok=True)
        t0 = time.perf_counter()

        def step(text: str) -> None:
            echo(f"[{time.perf_counter() - t0:5.2f}s] {text}")

        src = os.path.join(root, "assets")
        base_pack = os.path.join(root, "base.vfs")
        dlc_pack = os.path.join(root, "dlc.vfs")
        save_path = os.path.join(root, "save.vfs")
        for p in (base_pack, dlc_pack, save_path):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(p + suffix):
                    os.remove(p + suffix)
        _assets(src)
        report = pack(src, base_pack)
        step(f"1. packed {report.files} files and {report.dirs} directories "
             f"({report.bytes:,} bytes) from {src} into {base_pack}")
        with VFS(base_pack) as base:
            base.describe(name="Base game", version="1.0")
            step(f"   base pack: {base.listdir('/')}, empty dir kept: "
                 f"{base.isdir('/mods_go_here')}, audio/theme.ogg "
                 f"{base.getsize('/audio/theme.ogg'):,} bytes")

        with VFS(dlc_pack) as dlc:
            dlc.write_text("/levels/level3.json", '{"name": "The Deep"}')
            dlc.write_bytes("/textures/player.png", b"remastered" * 30_000)
            dlc.describe(name="Expansion", version="1.1")
        mod = VFS(":memory:")
        mod.write_text("/config/settings.ini", "[video]\nfov = 110\n")
        save = VFS(save_path)
        save.add_underlay(base_pack, priority=0, name="base")
        save.add_underlay(dlc_pack, priority=10, name="dlc")
        save.add_underlay(mod, priority=20, name="fov-mod")
        step("2. layers: " + " > ".join(f"{x['name']}" for x in save.list_layers()))
        step("   (a read looks in each layer from left to right and takes the first it finds; "
             "'local' is the player's save, the only one written to)")
        for p in ("/textures/player.png", "/textures/enemy.png", "/levels/level3.json",
                  "/config/settings.ini"):
            step(f"3. {p:<24} served by {save.which_layer(p)}")
        step(f"   /levels holds {save.listdir('/levels')} (merged across layers)")

        base_sum = hashlib.sha256(open(base_pack, "rb").read()).hexdigest()
        save.remove("/scripts/ai.lua")
        step(f"4. removed /scripts/ai.lua: exists={save.exists('/scripts/ai.lua')}, "
             f"which_layer={save.which_layer('/scripts/ai.lua')} (a whiteout in the save; the "
             f"base pack is byte-for-byte unchanged: "
             f"{hashlib.sha256(open(base_pack, 'rb').read()).hexdigest() == base_sum})")
        step("   (a whiteout is a marker the save keeps to say 'this file is deleted here': "
             "it hides the base pack's copy without changing the base pack)")

        with save.atomic_batch():
            save.write_text("/save/player.json", '{"hp": 100, "level": 3}')
            save.write_text("/save/world.json", '{"day": 12}')
            save.write_bytes("/save/thumbnail.png", os.urandom(20_000))
        try:
            with save.atomic_batch():
                save.write_text("/save/player.json", '{"hp": 0}')
                raise RuntimeError("power cut in the middle of a save")
        except RuntimeError:
            pass
        save.close()
        save = VFS(save_path)
        save.add_underlay(base_pack, priority=0, name="base")
        save.add_underlay(dlc_pack, priority=10, name="dlc")
        step(f"5. saved 3 files atomically, a failed save rolled back; reloaded: "
             f"player.json = {save.read_text('/save/player.json')}")
        problems = save.check_layers()
        step("   reopened without the mod: check_layers() says "
             + "; ".join(f"{p['problem']} {p['name']}" for p in problems))
        step("   (the save records which layers it was made with, so a game can warn "
             "'this save used a mod you no longer have')")
        save.close()
        mod.close()

        old = os.path.join(root, "old_save.db")
        if os.path.exists(old):
            os.remove(old)
        _seed_save(old)
        with VFS(old) as upgraded:
            st = upgraded.stat("/save/player.json")
            step(f"6. old seed-format save upgraded to revision {SQLITE.head_revision()}: "
                 f"player.json = {upgraded.read_text('/save/player.json')}, "
                 f"world.bin {upgraded.getsize('/save/world.bin'):,} bytes, "
                 f"modified_at kept: {st.modified_at}")
            step(f"   (a revision is a version of the on-disk format; {SQLITE.head_revision()} is "
                 f"this release's. The old file was converted in place, in one transaction, "
                 f"keeping every byte and timestamp)")
            upgraded.remove("/save/world.bin")
            done = upgraded.compact()
            step(f"7. deleted world.bin and compacted the old save ({done['method']}, now "
                 f"auto_vacuum={done['auto_vacuum']}): {done['bytes_before']:,} -> "
                 f"{done['bytes_after']:,} bytes, {os.path.getsize(old):,} on disk")
            step("   (deleted files leave free space inside the file; the old file was "
                 "rewritten once, and auto_vacuum=incremental means later compacts just cut "
                 "the free space off the end, which is quick)")
        step(f"done in {time.perf_counter() - t0:.2f} s; files in {root}"
             + (" (temporary, removed now)" if workdir is None else ""))
