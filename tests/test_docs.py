"""The documentation is part of the feature: every ```python block of the README and of every
page under docs/ runs and type-checks as user code, the README stays short, and the site builds
with warnings as errors (broken links, unresolved references, docstrings mkdocstrings cannot
parse)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
README_MAX_LINES = 250


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


BLOCKS = [(page, i, code) for page in PAGES for i, code in enumerate(_blocks(page))]
IDS = [f"{_name(page)}-block{i}" for page, i, _ in BLOCKS]


def test_readme_has_examples():
    assert len(_blocks(README)) >= 2


def test_docs_have_examples():
    """The guide keeps its runnable examples (the README's 22 moved here)."""
    assert len([b for b in BLOCKS if b[0] != README]) >= 25


def test_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_readme_links_resolve():
    """The README links into docs/ (built into the site); each relative link names a file
    that exists, and each docs page it names is in the site's nav."""
    text = README.read_text()
    links = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if "://" not in t]
    assert len(links) > 10
    assert [t for t in links if not (ROOT / t).exists()] == []
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [t.removeprefix("docs/") for t in links if t.startswith("docs/")]
    assert [p for p in pages if p not in nav] == []


@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=IDS)
def test_example_runs(page, index, code, tmp_path, monkeypatch, capsys, request):
    monkeypatch.chdir(ROOT)  # examples may read tests/fixtures; they write to temp dirs
    if "VFS_ORM_PG_URL" in code:  # a PostgreSQL example: the test server (tests/pgserver.py)
        monkeypatch.setenv("VFS_ORM_PG_URL", request.getfixturevalue("pg_url"))
    exec(compile(code, f"{page}:block{index}", "exec"), {"__name__": "__docs__"})


def _documented_text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def test_every_public_method_is_documented():
    """Each public method of VFS is named in the prose (guide, reference tables or README) and
    has a docstring with a Raises section for the generated reference."""
    import inspect

    from vfs_orm import VFS

    text = _documented_text()
    public = [n for n in dir(VFS) if not n.startswith("_") and callable(getattr(VFS, n))]
    assert len(public) > 40
    missing = [n for n in public if not re.search(rf"\b{n}\b", text)]
    assert missing == [], f"not named in README.md or docs/: {missing}"
    undocumented = [n for n in public if not inspect.getdoc(getattr(VFS, n))]
    assert undocumented == []
    no_raises = [n for n in public if n != "close" and "Raises:" not in inspect.getdoc(getattr(VFS, n))]
    assert no_raises == [], f"docstrings without a Raises section: {no_raises}"


def test_raises_sections_name_real_error_classes():
    """A Raises entry names an exception that exists: a vfs_orm error, a builtin, or a
    qualified name (so the reference never documents a class that is not there)."""
    import builtins
    import inspect

    import vfs_orm
    from vfs_orm import VFS

    targets = [getattr(VFS, n) for n in dir(VFS) if not n.startswith("_")
               and callable(getattr(VFS, n))]
    targets += [VFS, vfs_orm.upgrade, vfs_orm.upgrade_engine]
    unknown = []
    for obj in targets:
        doc = inspect.getdoc(obj) or ""
        if "Raises:" not in doc:
            continue
        section = doc.split("Raises:", 1)[1]
        for name in re.findall(r"^    ([A-Za-z_][\w.]*):", section, re.M):
            if "." not in name and not (hasattr(vfs_orm, name) or hasattr(builtins, name)):
                unknown.append(f"{getattr(obj, '__name__', obj)}: {name}")
    assert unknown == []


def test_examples_type_check(tmp_path):
    """Every example is what a user would write: it passes ``mypy --strict`` against the
    installed package (so public signatures stay visible to type checkers)."""
    for page, i, code in BLOCKS:
        stem = re.sub(r"\W", "_", _name(page).removesuffix(".md"))
        (tmp_path / f"{stem}_block{i}.py").write_text(code)
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
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert errors and all(line.startswith("wrong_code.py:3:") for line in errors), out


def _mkdocs() -> list[str]:
    exe = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed, and CI must build the docs (the dev extra has it)")
        pytest.skip("mkdocs is not installed (pip install '.[docs]')")
    return [exe]


def test_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing page, an unresolved reference or a
    docstring section mkdocstrings cannot parse fails the build. The reference then has an
    entry for every public method of VFS and every command of the CLI."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([*_mkdocs(), "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr

    from vfs_orm import VFS
    from vfs_orm.cli import cli

    html = (site / "reference" / "vfs" / "index.html").read_text()
    public = [n for n in dir(VFS) if not n.startswith("_") and callable(getattr(VFS, n))]
    missing = [n for n in public if f'id="vfs_orm.VFS.{n}"' not in html]
    assert missing == [], f"methods missing from the generated reference: {missing}"
    cli_html = (site / "reference" / "cli" / "index.html").read_text()
    commands = sorted(cli.commands)  # type: ignore[attr-defined]
    assert len(commands) > 15
    assert [c for c in commands if f"vfs-orm {c}" not in cli_html] == []
    errors_html = (site / "reference" / "errors" / "index.html").read_text()
    import vfs_orm.errors as errors_module
    leaves = [n for n in vfs_orm_exports() if n != "VirtualFileSystemError"]
    assert [n for n in leaves if f'id="vfs_orm.errors.{n}"' not in errors_html] == []
    assert errors_module.VFSError.__name__ in errors_html

    # Every public name of vfs_orm has an entry in the reference; the seed library's aliases
    # and the format constant are named in its prose.
    import vfs_orm

    ids: set[str] = set()
    for page in (site / "reference").rglob("*.html"):
        ids |= set(re.findall(r'id="(vfs_orm[^"]*)"', page.read_text()))
    prose = "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md"))
    unlisted = [n for n in vfs_orm.__all__
                if not {f"vfs_orm.{n}", f"vfs_orm.errors.{n}"} & ids and n not in prose]
    assert unlisted == []


def vfs_orm_exports() -> list[str]:
    import vfs_orm
    return [n for n in vfs_orm.__all__ if isinstance(getattr(vfs_orm, n), type)
            and issubclass(getattr(vfs_orm, n), OSError)]
