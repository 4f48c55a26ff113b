import pytest

from vfs_orm import ContractError, InvalidPathError, paths


@pytest.mark.parametrize("raw, norm", [
    ("/", "/"), ("a", "/a"), ("a/b", "/a/b"), ("/a//b/", "/a/b"), ("/a/./b", "/a/b"),
    ("/a/../b", "/b"), ("../../x", "/x"), ("/..", "/"), ("/a/b/../../..", "/"),
    ("/.hidden", "/.hidden"), ("/a b/[1]*?%_'\"", "/a b/[1]*?%_'\""), ("//", "/"),
])
def test_normalize(raw, norm):
    assert paths.normalize(raw) == norm


def test_normalize_pathlike():
    from pathlib import PurePosixPath
    assert paths.normalize(PurePosixPath("/x/y")) == "/x/y"


@pytest.mark.parametrize("bad", ["/a\x00b", "/a\nb", "/tab\there", "/del\x7f"])
def test_control_characters_refused(bad):
    with pytest.raises(InvalidPathError) as ei:
        paths.normalize(bad)
    assert isinstance(ei.value, ValueError)


def test_empty_is_contract_violation():
    import icontract
    with pytest.raises(ContractError) as ei:
        paths.normalize("")
    assert isinstance(ei.value, icontract.ViolationError) and isinstance(ei.value, ValueError)


@pytest.mark.parametrize("bad", [None, 3, b"/bytes", ["/"]])
def test_wrong_types(bad):
    with pytest.raises(TypeError):
        paths.normalize(bad)


def test_split_join_bounds():
    assert paths.split("/") == ("", "")
    assert paths.split("/a") == ("/", "a")
    assert paths.split("/a/b") == ("/a", "b")
    assert paths.join("/", "a") == "/a" and paths.join("/a", "b") == "/a/b"
    lo, hi = paths.subtree_bounds("/a")
    inside = ["/a/b", "/a/b/c", "/a/%", "/a/~"]
    outside = ["/a", "/ab", "/a0", "/a.b", "/b", "/a-"]
    assert all(lo <= p < hi for p in inside)
    assert not any(lo <= p < hi for p in outside)
    assert paths.parents("/a/b/c") == ["/", "/a", "/a/b"]
