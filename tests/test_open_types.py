"""``VFS.open`` is typed as typeshed types ``builtins.open``: ``mypy --strict`` over user code
sees a TextIOWrapper for text modes and a BufferedReader, BufferedWriter or BufferedRandom
for binary ones (the raw stream with ``buffering=0``); and the objects returned at run time
are instances of the types the checker was told."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pytest

from vfs_orm import VFS

#: (mode, buffering, the type mypy must infer, the type the object must be at run time)
CASES: list[tuple[str | None, int | None, str, type]] = [
    (None, None, "io.TextIOWrapper", io.TextIOWrapper),
    ("r", None, "io.TextIOWrapper", io.TextIOWrapper),
    ("rt", None, "io.TextIOWrapper", io.TextIOWrapper),
    ("w", None, "io.TextIOWrapper", io.TextIOWrapper),
    ("a+", None, "io.TextIOWrapper", io.TextIOWrapper),
    ("r+", 1, "io.TextIOWrapper", io.TextIOWrapper),
    ("rb", None, "io.BufferedReader", io.BufferedReader),
    ("rb", -1, "io.BufferedReader", io.BufferedReader),
    ("wb", None, "io.BufferedWriter", io.BufferedWriter),
    ("ab", None, "io.BufferedWriter", io.BufferedWriter),
    ("xb", None, "io.BufferedWriter", io.BufferedWriter),
    ("r+b", None, "io.BufferedRandom", io.BufferedRandom),
    ("w+b", None, "io.BufferedRandom", io.BufferedRandom),
    ("rb", 0, "io.RawIOBase", io.RawIOBase),
    ("wb", 0, "io.RawIOBase", io.RawIOBase),
]

USER_CODE = '''\
import io
from typing import IO, Any, BinaryIO, assert_type

from vfs_orm import VFS


def check(fs: VFS, mode: str, buffering: int) -> None:
{asserts}
    assert_type(fs.open("/f", "rb", buffering), BinaryIO)
    assert_type(fs.open("/f", mode), IO[Any])
    with fs.open("/f", "rb") as f:
        data: bytes = f.read()
    with fs.open("/f", "w", encoding="utf-8", newline="") as t:
        t.write("text")
    with fs.open("/f") as r:
        text: str = r.read()
    print(len(data), text)
'''

#: What builtins.open refuses too: bytes read from a text file, text written to a binary
#: one, buffered or raw.
WRONG_CODE = '''\
from vfs_orm import VFS


def wrong(fs: VFS) -> None:
    data: bytes = fs.open("/f").read()
    fs.open("/f", "wb").write("text")
    fs.open("/f", "r+b", buffering=0).write("text")
'''


def _call(mode: str | None, buffering: int | None) -> str:
    args = ['"/f"'] + ([repr(mode)] if mode is not None else [])
    if buffering is not None:
        args.append(f"buffering={buffering}")
    return f"fs.open({', '.join(args)})"


def test_user_code_type_checks_as_with_builtins_open(tmp_path):
    asserts = "\n".join(f"    assert_type({_call(m, b)}, {t})" for m, b, t, _ in CASES)
    (tmp_path / "user_code.py").write_text(USER_CODE.format(asserts=asserts))
    (tmp_path / "wrong_code.py").write_text(WRONG_CODE)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                           str(tmp_path / ".mypy_cache"), "user_code.py", "wrong_code.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    # user_code.py is clean; each wrong line of wrong_code.py is an error.
    assert sorted({line.split(":")[0] + ":" + line.split(":")[1] for line in errors}) == \
        ["wrong_code.py:5", "wrong_code.py:6", "wrong_code.py:7"], out


@pytest.mark.parametrize(("mode", "buffering", "_static", "runtime"), CASES)
def test_the_objects_are_what_the_types_say(tmp_path, mode, buffering, _static, runtime):
    with VFS(tmp_path / "t.vfs") as fs:
        fs.write_bytes("/f", b"content")
        kwargs: dict[str, Any] = {} if buffering is None else {"buffering": buffering}
        path = "/new" if mode is not None and "x" in mode else "/f"
        with fs.open(path, mode or "r", **kwargs) as f:
            assert isinstance(f, runtime), type(f).__mro__
