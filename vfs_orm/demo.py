"""The demo behind ``vfs-orm demo`` / ``make demo``: every step prints what it shows."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

from vfs_orm import VFS


def run_demo(workdir: str | None = None, echo: Callable[[str], None] = print) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = workdir or tmp
        os.makedirs(root, exist_ok=True)
        t0 = time.perf_counter()
        db = os.path.join(root, "game.vfs")
        if os.path.exists(db):
            os.remove(db)

        echo(f"1. create {db}")
        with VFS(db) as fs:
            fs.makedirs("/game/assets/textures")
            fs.write_text("/game/config.json", '{"resolution": "1920x1080"}')
            with fs.open("/game/data.txt", "w") as f:
                f.write("Hello, Virtual World!")
            for i in range(200):
                fs.write_bytes(f"/game/assets/textures/tex{i:03}.png", os.urandom(4096))
            echo(f"   /game holds {fs.listdir('/game')}")
            echo(f"   textures: {len(fs.listdir('/game/assets/textures'))} files, "
                 f"glob tex00?.png -> {fs.glob('/game/assets/textures/tex00?.png')[:3]}...")

            echo("2. atomic save of 3 files; a failing save leaves the old one intact")
            with fs.atomic_batch():
                for name in ("player", "world", "inventory"):
                    fs.write_text(f"/save/{name}.json", f'{{"{name}": 1}}')
            try:
                with fs.atomic_batch():
                    fs.write_text("/save/player.json", '{"player": 2}')
                    raise RuntimeError("power cut mid-save")
            except RuntimeError:
                pass
            echo(f"   after the failed save: player.json = {fs.read_text('/save/player.json')}")

            echo("3. rename a whole directory in one statement, stream a large file with seek")
            fs.rename("/game/assets", "/game/assets_v2")
            with fs.open("/videos/cutscene.bin", "wb") as f:
                for _ in range(16):
                    f.write(os.urandom(256 * 1024))
            with fs.open("/videos/cutscene.bin", "rb") as f:
                f.seek(3 * 1024 * 1024)
                sample = f.read(4096)
            st = fs.stat("/videos/cutscene.bin")
            echo(f"   cutscene.bin: {st.st_size} bytes, read {len(sample)} bytes at 3 MiB; "
                 f"textures now under {fs.listdir('/game')}")

        echo("4. reopen read-only: everything persisted")
        with VFS(db, read_only=True) as fs:
            echo(f"   /save = {fs.listdir('/save')}, "
                 f"{sum(len(f) for _, _, f in fs.walk('/'))} files in all")
            try:
                fs.write_text("/x", "nope")
            except PermissionError as exc:
                echo(f"   writing is refused: {type(exc).__name__}: {exc.strerror}")
        echo(f"done in {time.perf_counter() - t0:.2f} s")
