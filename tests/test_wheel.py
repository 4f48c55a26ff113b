"""A wheel built from the repository, installed in a clean virtualenv, upgrades a legacy file
(the migration scripts travel inside the package) and runs the CLI entry point."""

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    wheels = list(out.glob("vfs_orm-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_carries_the_migrations(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ["vfs_orm/migrations/env.py", "vfs_orm/migrations/script.py.mako",
                   "vfs_orm/migrations/legacy_seed.py",
                   "vfs_orm/migrations/versions/0001_initial.py",
                   "vfs_orm/migrations/versions/0002_chunk_rowids_whiteouts.py",
                   "vfs_orm/migrations/versions/0003_inline_small_files.py",
                   "vfs_orm/py.typed"]:
        assert needed in names


def test_installed_wheel_upgrades_a_legacy_file(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    legacy = tmp_path / "legacy.db"
    shutil.copy(FIXTURES / "legacy-seed-format.db", legacy)
    legacy.chmod(0o644)
    script = ("import json, sys, vfs_orm\n"
              "r = vfs_orm.upgrade(sys.argv[1], backup=True)\n"
              "fs = vfs_orm.VFS(sys.argv[1], read_only=True)\n"
              "print(json.dumps({'r': r, 'module': vfs_orm.__file__,\n"
              "  'files': sorted(p for d, _, fs_ in fs.walk('/') for p in\n"
              "                  [d.rstrip('/') + '/' + f for f in fs_])}))\n")
    run = subprocess.run([str(py), "-c", script, str(legacy)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert str(env_dir) in out["module"]  # the installed copy, not the repository
    assert out["r"]["from"] == "legacy" and os.path.exists(out["r"]["backup"])
    manifest = json.loads((FIXTURES / "legacy-seed-format.manifest.json").read_text())
    assert out["files"] == sorted(p for p, m in manifest.items() if m["type"] == "file")
    cli = subprocess.run([str(env_dir / "bin" / "vfs-orm"), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0 and "Usage" in cli.stdout
