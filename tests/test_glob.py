import pytest


@pytest.fixture
def fs(any_vfs):
    for p in ["/game/scripts/player.lua", "/game/scripts/enemy.lua", "/game/data/level1.json",
              "/game/data/level2.json", "/game/data/levelx.json", "/game/data/deep/level3.json",
              "/top.json", "/game/.hidden.lua"]:
        any_vfs.write_text(p, "...")
    return any_vfs


def test_seed_examples(fs):
    assert fs.glob("/game/scripts/*.lua") == ["/game/scripts/enemy.lua", "/game/scripts/player.lua"]
    assert fs.glob("/**/*.json") == ["/game/data/deep/level3.json", "/game/data/level1.json",
                                      "/game/data/level2.json", "/game/data/levelx.json",
                                      "/top.json"]
    assert fs.glob("/game/data/level[0-9].json") == ["/game/data/level1.json",
                                                      "/game/data/level2.json"]


def test_star_stays_in_segment(fs):
    assert fs.glob("/game/*.json") == []
    assert fs.glob("/*/data/*.json") == ["/game/data/level1.json", "/game/data/level2.json",
                                          "/game/data/levelx.json"]
    assert fs.glob("/game/*") == ["/game/.hidden.lua", "/game/data", "/game/scripts"]


def test_negation_both_forms(fs):
    expect = ["/game/data/levelx.json"]
    assert fs.glob("/game/data/level[!0-9].json") == expect
    assert fs.glob("/game/data/level[^0-9].json") == expect


def test_question_and_doublestar_middle(fs):
    assert fs.glob("/game/data/level?.json") == ["/game/data/level1.json",
                                                  "/game/data/level2.json",
                                                  "/game/data/levelx.json"]
    assert fs.glob("/game/**/level3.json") == ["/game/data/deep/level3.json"]
    assert fs.glob("/game/**") == sorted(["/game", "/game/data", "/game/data/deep",
                                           "/game/scripts"])
    assert fs.glob("/nothing/**/x") == []
    assert fs.glob("/game/data/level1.json") == ["/game/data/level1.json"]
    assert fs.glob("/game/data/nope.json") == []
