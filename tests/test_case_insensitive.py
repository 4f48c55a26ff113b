"""Case-insensitive databases (format 0004): paths match under Unicode case folding and NFC,
listings keep the stored spelling, and a case-insensitive top searches its underlays the same
way through the folded key every 0004 database keeps."""

from __future__ import annotations

import sqlite3
import unicodedata

import pytest

from vfs_orm import VFS, AlreadyExistsError, ContractError

NFD_ECOLE = unicodedata.normalize("NFD", "École")


@pytest.fixture
def ci(tmp_path):
    with VFS(tmp_path / "ci.vfs", case_insensitive=True) as fs:
        yield fs


def test_spellings_of_one_name_reach_one_file(ci):
    ci.makedirs("/Data/Saves")
    ci.write_bytes("/Data/Saves/Save.DAT", b"one")
    for spelling in ("/data/saves/save.dat", "/DATA/SAVES/SAVE.DAT", "/Data/saves/Save.dat"):
        assert ci.read_bytes(spelling) == b"one"
        assert ci.exists(spelling) and ci.isfile(spelling)
    ci.write_bytes("/data/saves/SAVE.DAT", b"two")  # reaches the entry, keeps its spelling
    assert ci.listdir("/data/saves") == ["Save.DAT"]
    assert ci.read_bytes("/Data/Saves/Save.DAT") == b"two"
    with pytest.raises(AlreadyExistsError):
        ci.mkdir("/DATA")
    ci.write_text(f"/data/{NFD_ECOLE}.txt", "nfd")  # NFD and NFC spell one name
    assert ci.read_text("/DATA/école.TXT") == "nfd"
    assert ci.stat("/data/ÉCOLE.txt").st_size == 3


def test_listings_keep_the_stored_spelling(ci):
    ci.makedirs("/Textures/Hero")
    ci.write_bytes("/textures/hero/Diffuse.PNG", b"png")
    ci.write_bytes("/TEXTURES/Readme.txt", b"r")
    assert ci.listdir("/textures") == ["Hero", "Readme.txt"]
    assert list(ci.walk("/")) == [("/", ["Textures"], []),
                                  ("/Textures", ["Hero"], ["Readme.txt"]),
                                  ("/Textures/Hero", [], ["Diffuse.PNG"])]
    assert sorted(e.path for e in ci.scandir("/", recursive=True)) == [
        "/Textures", "/Textures/Hero", "/Textures/Hero/Diffuse.PNG", "/Textures/Readme.txt"]
    assert ci.glob("/textures/*/*.png") == ["/Textures/Hero/Diffuse.PNG"]
    assert ci.glob("/textures/**/*.png") == ["/Textures/Hero/Diffuse.PNG"]
    assert ci.glob("/**/README.TXT") == ["/Textures/Readme.txt"]


def test_renames_moves_and_removal_by_any_spelling(ci):
    ci.makedirs("/Mods/Alpha")
    ci.write_bytes("/Mods/Alpha/Plugin.esp", b"esp")
    ci.rename("/mods/alpha/plugin.esp", "/mods/alpha/PLUGIN.ESP")  # only the case changes
    assert ci.listdir("/Mods/Alpha") == ["PLUGIN.ESP"]
    ci.rename("/MODS/ALPHA", "/mods/Beta")  # a directory, by another spelling
    assert ci.listdir("/Mods") == ["Beta"]
    assert ci.read_bytes("/mods/beta/plugin.esp") == b"esp"
    ci.rename("/mods", "/MODS")
    assert ci.listdir("/") == ["MODS"]
    ci.copy("/mods/beta/plugin.esp", "/mods/beta/Copy.esp")
    ci.remove("/MODS/BETA/copy.ESP")
    ci.rmtree("/mods/BETA")
    assert ci.listdir("/mods") == []
    assert ci.check().ok


def test_the_setting_is_the_database_s(tmp_path):
    path = tmp_path / "ci.vfs"
    with VFS(path, case_insensitive=True) as fs:
        fs.write_text("/A.txt", "a")
    with VFS(path) as fs:
        assert fs.case_insensitive and fs.read_text("/a.TXT") == "a"
    with pytest.raises(ContractError, match="chosen when a database is created"):
        VFS(path, case_insensitive=False)
    with VFS(tmp_path / "cs.vfs") as fs:  # the default: case-sensitive, as POSIX
        fs.write_text("/A.txt", "upper")
        fs.write_text("/a.txt", "lower")
        assert not fs.case_insensitive and fs.listdir("/") == ["A.txt", "a.txt"]
    with pytest.raises(TypeError):
        VFS(tmp_path / "x.vfs", case_insensitive="yes")  # type: ignore[arg-type]


def test_every_database_keeps_the_folded_key(tmp_path):
    path = tmp_path / "cs.vfs"
    with VFS(path) as fs:
        fs.makedirs("/Textures/Hero")
        fs.write_files([("/Textures/Hero/Diffuse.PNG", b"x"), (f"/{NFD_ECOLE}.txt", b"y")])
        fs.rename("/Textures", "/TEX")
    con = sqlite3.connect(path)
    try:
        rows = set(con.execute("SELECT parent, name, fparent, fname FROM vfs_inodes "
                               "WHERE parent != ''"))
    finally:
        con.close()
    assert rows == {("/", "TEX", "/", "tex"), ("/TEX", "Hero", "/tex", "hero"),
                    ("/TEX/Hero", "Diffuse.PNG", "/tex/hero", "diffuse.png"),
                    ("/", f"{NFD_ECOLE}.txt", "/", "école.txt")}


def test_a_case_insensitive_top_searches_its_underlays_the_same_way(tmp_path):
    """A mod written on Windows over a base pack spelled otherwise."""
    base = tmp_path / "base.vfs"
    with VFS(base) as fs:  # case-sensitive, as packs made on Linux are
        fs.makedirs("/Textures/Hero")
        fs.write_bytes("/Textures/Hero/Diffuse.png", b"base diffuse")
        fs.write_bytes("/Textures/Hero/Normal.png", b"base normal")
        fs.write_text("/Config.ini", "base")
    with VFS(tmp_path / "mod.vfs", case_insensitive=True) as fs:
        fs.add_underlay(str(base), priority=0, name="base")
        assert fs.read_bytes("/TEXTURES/hero/diffuse.PNG") == b"base diffuse"
        fs.write_bytes("/textures/hero/DIFFUSE.PNG", b"mod diffuse")  # overrides, not beside
        assert fs.read_bytes("/Textures/Hero/Diffuse.png") == b"mod diffuse"
        assert fs.listdir("/textures/HERO") == ["Diffuse.png", "Normal.png"]
        assert fs.which_layer("/TEXTURES/HERO/NORMAL.PNG") == "base"
        fs.remove("/config.INI")
        assert not fs.exists("/Config.ini") and fs.listdir("/") == ["Textures"]
        assert fs.glob("/textures/hero/*.PNG") == ["/textures/hero/Diffuse.png",
                                                    "/textures/hero/Normal.png"]
        # ** globs match under case folding too, whichever layer spells the path how.
        assert fs.glob("/TEXTURES/**/*.png") == ["/Textures/Hero/Diffuse.png",
                                                 "/Textures/Hero/Normal.png"]
        assert fs.glob("/**/normal.PNG") == ["/Textures/Hero/Normal.png"]
        assert fs.glob("/**/[d]iffuse.*") == ["/Textures/Hero/Diffuse.png"]
    with VFS(base, read_only=True) as fs:  # the base is untouched
        assert fs.read_bytes("/Textures/Hero/Diffuse.png") == b"base diffuse"


def test_check_finds_a_folded_key_that_is_not_the_name_s(tmp_path):
    path = tmp_path / "cs.vfs"
    with VFS(path) as fs:
        fs.write_text("/Readme.txt", "r")
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_inodes SET fname = 'other.txt' WHERE name = 'Readme.txt'")
    con.commit()
    con.close()
    with VFS(path, read_only=True) as fs:
        report = fs.check()
    assert not report.ok
    assert report.problems == ["/Readme.txt: its folded key '/'/'other.txt' is not its name's"]


def test_write_files_and_recursive_listings_use_one_spelling(ci):
    ci.write_files([("/A/x.txt", b"1"), ("/a/y.txt", b"2")])
    assert ci.listdir("/") == ["A"] and ci.listdir("/a") == ["x.txt", "y.txt"]
    assert [e.path for e in ci.scandir("/a", recursive=True)] == ["/A/x.txt", "/A/y.txt"]
    ci.rmtree("/A")
    assert ci.listdir("/") == [] and ci.check().ok


@pytest.mark.parametrize("lower, upper", [("/DIR/SUB", "/Dir/Sub"),
                                          (unicodedata.normalize("NFD", "/Café/Sub"),
                                           unicodedata.normalize("NFC", "/Café/Sub"))])
def test_renames_and_copies_over_layers_spelled_otherwise(tmp_path, lower, upper):
    """An underlay spells a directory otherwise (case, or NFD against NFC) than the top:
    every entry lands under the directory it belongs to, whichever layer provides it."""
    under = tmp_path / "under.vfs"
    with VFS(under) as fs:
        fs.write_bytes(f"{lower}/f", b"from below")
    with VFS(tmp_path / "top.vfs", case_insensitive=True) as fs:
        fs.write_bytes(f"{upper}/g", b"on top")  # spelled before the underlay came
        fs.add_underlay(str(under), name="under")
        top_dir = upper.rsplit("/", 1)[0]
        assert sorted(e.path for e in fs.scandir(top_dir, recursive=True)) == [
            f"{upper}", f"{upper}/f", f"{upper}/g"]
        fs.copytree(top_dir, "/copy")
        assert sorted(fs.listdir("/copy/sub")) == ["f", "g"]
        fs.rename(top_dir, "/new")
        assert sorted(fs.listdir("/new/sub")) == ["f", "g"]
        fs.rename("/new/SUB", "/moved")
        assert sorted(fs.listdir("/moved")) == ["f", "g"]
        assert fs.read_bytes("/moved/f") == b"from below"
        report = fs.check()
        assert report.ok, report.problems


def test_a_w_handle_lands_in_the_directory_made_while_it_was_open(ci):
    with ci.open("/Docs/x.txt", "wb") as f:
        f.write(b"x")
        ci.mkdir("/DOCS")
    assert ci.listdir("/docs") == ["x.txt"] and ci.listdir("/") == ["DOCS"]
    ci.rename("/docs", "/Moved")
    assert ci.listdir("/moved") == ["x.txt"] and ci.check().ok
