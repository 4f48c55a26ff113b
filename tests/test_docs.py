"""Every ```python block of the README runs (docs are part of the feature)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch, capsys, request):
    monkeypatch.chdir(README.parent)  # examples may read tests/fixtures; they write to temp dirs
    if "VFS_ORM_PG_URL" in code:  # a PostgreSQL example: the test server (tests/pgserver.py)
        monkeypatch.setenv("VFS_ORM_PG_URL", request.getfixturevalue("pg_url"))
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def test_every_public_method_is_documented():
    from vfs_orm import VFS
    text = README.read_text()
    public = [n for n in dir(VFS) if not n.startswith("_") and callable(getattr(VFS, n))]
    missing = [n for n in public if n not in text]
    assert missing == []


def test_readme_examples_type_check(tmp_path):
    """Every example is what a user would write: it passes ``mypy --strict`` against the
    installed package (so public signatures stay visible to type checkers)."""
    import subprocess
    import sys

    for i, code in enumerate(BLOCKS):
        (tmp_path / f"readme_block{i}.py").write_text(code)
    # What a user of these libraries configures: they ship no type information.
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\n[mypy-fsspec.*,pandas.*,pyarrow.*]\nignore_missing_imports = True\n")
    # Decorated methods keep their signatures: keyword arguments type-check, wrong ones fail.
    (tmp_path / "user_code.py").write_text(
        "from vfs_orm import VFS\n"
        "def audit(fs: VFS) -> bool:\n"
        "    report = fs.check(quick=True)\n"
        "    fs.copytree('/a', '/b', dirs_exist_ok=True)\n"
        "    return bool(report.ok)\n")
    (tmp_path / "wrong_code.py").write_text(
        "from vfs_orm import VFS\n"
        "def audit(fs: VFS) -> None:\n"
        "    fs.check(quick='yes', deep=1)\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                           str(tmp_path / ".mypy_cache"), "."], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert errors and all(line.startswith("wrong_code.py:3:") for line in errors), out
