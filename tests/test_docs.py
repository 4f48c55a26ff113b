"""Every ```python block of the README runs (docs are part of the feature)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(README.parent)  # examples may read tests/fixtures; they write to temp dirs
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def test_every_public_method_is_documented():
    from vfs_orm import VFS
    text = README.read_text()
    public = [n for n in dir(VFS) if not n.startswith("_") and callable(getattr(VFS, n))]
    missing = [n for n in public if n not in text]
    assert missing == []
