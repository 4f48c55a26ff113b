"""Lint, types and layering are part of the suite: ruff, ``mypy --strict`` over the package,
and the import-linter contracts of pyproject.toml (no driver above the backends, no layer
importing one above it)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean():
    proc = _run(sys.executable, "-m", "ruff", "check", "vfs_orm", "tests", "benchmarks",
                "migrations")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean(tmp_path):
    proc = _run(sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), "vfs_orm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports is not installed (the dev extra has import-linter)")
    proc = _run(exe)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
