"""``VFS.tracer()``: the SQL statements a VFS runs, on SQLite (file and ``:memory:``) and on
PostgreSQL; nothing is recorded outside a block."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vfs_orm import VFS, ClosedError


@pytest.fixture(params=["file", "memory", "postgresql"])
def fs(request: pytest.FixtureRequest, tmp_path) -> Iterator[VFS]:
    if request.param == "postgresql":
        url, tree = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_tree")
        opened = VFS(url, tree=tree)
    else:
        opened = VFS(tmp_path / "t.vfs" if request.param == "file" else ":memory:")
    opened.write_bytes("/d/a.txt", b"a")
    yield opened
    opened.close()


def _is(sql: str, word: str) -> bool:
    return sql.lstrip().upper().startswith(word)


def test_a_lookup_is_one_select_and_a_save_one_insert_in_a_transaction(fs):
    with fs.tracer() as statements:
        assert fs.exists("/d/a.txt")
    assert len(statements) == 1 and _is(statements[0], "SELECT"), statements
    assert "vfs_inodes" in statements[0]
    with fs.tracer() as statements:
        fs.write_bytes("/d/b.txt", b"b")
    assert [s.split()[0].upper() for s in statements] == ["BEGIN", "INSERT", "COMMIT"], \
        statements


def test_nothing_is_recorded_outside_the_block(fs):
    with fs.tracer() as statements:
        pass
    fs.read_bytes("/d/a.txt")
    fs.write_bytes("/d/c.txt", b"c")
    assert statements == []
    with fs.tracer() as again:  # and a new block records again
        fs.read_bytes("/d/a.txt")
    assert len(again) == 1


def test_tracers_nest_and_call_back(fs):
    seen: list[str] = []
    with fs.tracer() as outer:
        fs.exists("/d/a.txt")
        with fs.tracer(seen.append) as inner:
            fs.isdir("/d")
        fs.stat("/d/a.txt")
    assert len(outer) == 3 and len(inner) == 1 and seen == inner == outer[1:2]


def test_a_failed_statement_is_recorded_and_the_trace_ends(fs):
    with pytest.raises(FileNotFoundError), fs.tracer() as statements:
        fs.read_bytes("/missing")
    assert len(statements) == 1
    fs.exists("/d/a.txt")
    assert len(statements) == 1


def test_bulk_rows_are_one_entry_each(fs):
    with fs.tracer() as statements:
        fs.write_files({f"/d/bulk{k}": b"x" for k in range(20)})
    assert len(statements) >= 20


def test_a_closed_vfs_refuses(fs):
    fs.close()
    with pytest.raises(ClosedError), fs.tracer():
        pass
