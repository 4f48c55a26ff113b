"""Names with [ ] * ? % _ ' " and spaces are literal in every operation (no LIKE/GLOB)."""

import pytest
from conftest import tree_of

SIBLINGS = ["a[1]", "a1", "*", "a_1", "ab1", "%", "a b", "it's", 'q"q', "?", "a%1"]


@pytest.fixture
def fs(any_vfs):
    for name in SIBLINGS:
        any_vfs.write_bytes(f"/top/{name}/file", name.encode())
        any_vfs.write_bytes(f"/top/{name}/{name}", b"inner")
    return any_vfs


def test_listdir_each(fs):
    assert fs.listdir("/top") == sorted(SIBLINGS)
    for name in SIBLINGS:
        assert fs.listdir(f"/top/{name}") == sorted(["file", name])


@pytest.mark.parametrize("victim", SIBLINGS)
def test_rmtree_touches_only_its_entry(fs, victim):
    fs.rmtree(f"/top/{victim}")
    assert fs.listdir("/top") == sorted(set(SIBLINGS) - {victim})
    for name in set(SIBLINGS) - {victim}:
        assert fs.read_bytes(f"/top/{name}/file") == name.encode()


@pytest.mark.parametrize("victim", SIBLINGS)
def test_rename_touches_only_its_entry(fs, victim):
    before = tree_of(fs, "/top")
    fs.rename(f"/top/{victim}", "/moved")
    assert fs.read_bytes("/moved/file") == victim.encode()
    after = tree_of(fs, "/top")
    assert after == {k: v for k, v in before.items()
                     if not k.startswith(f"/top/{victim}/") and k != f"/top/{victim}"}


@pytest.mark.parametrize("victim", SIBLINGS)
def test_copytree_and_walk_each(fs, victim):
    fs.copytree(f"/top/{victim}", "/copy")
    assert tree_of(fs, "/copy") == {"/copy/file": victim.encode(), f"/copy/{victim}": b"inner"}
    walked = list(fs.walk(f"/top/{victim}"))
    assert walked == [(f"/top/{victim}", [], sorted(["file", victim]))]


def test_glob_with_escaped_literals(fs):
    assert fs.glob("/top/a[[]1]/file") == ["/top/a[1]/file"]
    assert fs.glob("/top/[*]/file") == ["/top/*/file"]
    assert fs.glob("/top/[?]") == ["/top/?"]
    assert fs.glob("/top/a_1") == ["/top/a_1"]
    assert fs.glob("/top/%") == ["/top/%"]
    assert fs.glob("/top/a?1") == ["/top/a%1", "/top/a_1", "/top/ab1"]
    assert fs.glob("/top/a[[]*") == ["/top/a[1]"]
    assert fs.exists("/top/a[1]") and not fs.exists("/top/a[2]")
