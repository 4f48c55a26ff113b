"""The ``vfsorm`` fsspec filesystem: ways to open it, what each method maps to, and real
clients (pandas, DuckDB, PyArrow, Zarr) compared with the same operation on local files.
(fsspec's and universal_pathlib's own contract suites are test_fsspec_contract.py and
test_upath_contract.py.)"""

from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import stat
import subprocess
import sys
import warnings

import pytest

fsspec = pytest.importorskip("fsspec", reason="the fsspec extra is not installed")

from vfs_orm import VFS, ReadOnlyError
from vfs_orm.adapters.fsspec import VFSFileSystem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def pack(tmp_path):
    path = str(tmp_path / "pack.vfs")
    with VFS(path) as fs:
        fs.write_bytes("/data/a.txt", b"alpha")
        fs.write_bytes("/data/sub/b.bin", bytes(range(256)) * 1000)  # several chunks
        fs.mkdir("/empty")
    return path


@pytest.fixture
def fs(pack):
    out = fsspec.filesystem("vfsorm", db=pack, skip_instance_cache=True)
    yield out
    out.close()


def test_importing_vfs_orm_never_imports_fsspec():
    code = "import sys, vfs_orm; print('fsspec' in sys.modules, 'upath' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), check=True).stdout
    assert out.split() == ["False", "False"]


def test_registered_by_entry_point(pack):
    assert fsspec.get_filesystem_class("vfsorm") is VFSFileSystem
    fs, path = fsspec.core.url_to_fs("vfsorm:///data/a.txt", db=pack)
    assert isinstance(fs, VFSFileSystem) and path == "/data/a.txt"
    with fsspec.open("vfsorm:///data/a.txt", "rt", db=pack) as f:
        assert f.read() == "alpha"


def test_listings_and_info(fs):
    listing = fs.ls("/data")
    assert [(x["name"], x["type"]) for x in listing] == [("/data/a.txt", "file"),
                                                       ("/data/sub", "directory")]
    assert listing[0]["size"] == 5 and listing[0]["mode"] & 0o777 == 0o644
    assert fs.ls("/data", detail=False) == ["/data/a.txt", "/data/sub"]
    assert fs.ls("/data/a.txt", detail=False) == ["/data/a.txt"]
    info = fs.info("vfsorm:///data/sub/b.bin")
    assert info["size"] == 256_000 and info["type"] == "file" and info["layer"] == "local"
    assert fs.modified("/data/a.txt").timestamp() == pytest.approx(info["mtime"], abs=1)
    assert fs.created("/data/a.txt").tzinfo is not None
    assert fs.find("/") == ["/data/a.txt", "/data/sub/b.bin"]
    assert fs.find("/", withdirs=True) == ["/", "/data", "/data/a.txt", "/data/sub",
                                           "/data/sub/b.bin", "/empty"]
    assert fs.find("/data/a.txt") == ["/data/a.txt"] and fs.find("/missing") == []
    assert fs.glob("/data/**/*.bin") == ["/data/sub/b.bin"]
    assert fs.du("/data") == 256_005
    assert [d for d, _, _ in fs.walk("/")] == ["/", "/data", "/data/sub", "/empty"]
    with pytest.raises(FileNotFoundError):
        fs.info("/missing")
    with pytest.raises(FileNotFoundError):
        fs.ls("/missing")
    assert not fs.exists("/bad\x00path") and fs.isdir("/empty") and fs.isfile("/data/a.txt")


def test_listings_are_one_statement(fs):
    """A listing with details, find and info are one statement each, whatever the count."""
    for i in range(100):
        fs.pipe_file(f"/many/f{i:03}", b"x" * i)
    with fs.vfs.tracer() as log:
        for call in (lambda: fs.ls("/many", detail=True), lambda: fs.find("/many"),
                     lambda: fs.info("/many/f050"), lambda: fs.cat_file("/many/f050")):
            log.clear()
            call()
            assert len(log) == 1, log
    assert len(fs.ls("/many")) == 100


def test_ranges_and_modes(fs):
    data = bytes(range(256)) * 1000
    assert fs.cat_file("/data/sub/b.bin", 70_000, 70_010) == data[70_000:70_010]
    assert fs.cat_file("/data/sub/b.bin", -10) == data[-10:]
    assert fs.cat_file("/data/sub/b.bin", 10, -246_000) == data[10:-246_000]
    assert fs.cat_file("/data/sub/b.bin", 300_000) == b""
    with fs.open("/data/sub/b.bin", "r+b") as f:  # vfs_orm's own io object: patch in place
        f.seek(100_000)
        f.write(b"PATCH")
    assert fs.cat_file("/data/sub/b.bin", 99_998, 100_007) == data[99_998:100_000] + b"PATCH" \
        + data[100_005:100_007]
    with fs.open("/data/a.txt", "ab") as f:
        f.write(b"+more")
    assert fs.cat("/data/a.txt") == b"alpha+more"
    with pytest.raises(FileExistsError):
        fs.open("/data/a.txt", "xb")
    fs.pipe_file("/new/c.txt", b"c")
    with pytest.raises(FileExistsError):
        fs.pipe_file("/new/c.txt", b"d", mode="create")
    with fs.open("/new/t.txt", "wt", encoding="utf-8") as f:
        f.write("héllo")
    assert fs.read_text("/new/t.txt", encoding="utf-8") == "héllo"
    with pytest.raises(IsADirectoryError):
        fs.cat_file("/data")
    fs.touch("/new/c.txt", truncate=False)
    assert fs.cat("/new/c.txt") == b"c"
    fs.touch("/new/c.txt")
    assert fs.cat("/new/c.txt") == b""


def test_tree_operations(fs):
    fs.mkdir("/d1/d2")
    with pytest.raises(FileExistsError):
        fs.mkdir("/d1/d2")
    with pytest.raises(FileNotFoundError):
        fs.mkdir("/x/y", create_parents=False)
    fs.makedirs("/d1/d2", exist_ok=True)
    fs.cp_file("/data/sub/b.bin", "/d1/copy.bin")
    assert fs.cat("/d1/copy.bin") == fs.cat("/data/sub/b.bin")
    fs.copy("/data", "/d1/data-copy", recursive=True)
    assert fs.find("/d1/data-copy") == ["/d1/data-copy/a.txt", "/d1/data-copy/sub/b.bin"]
    ino = fs.vfs.stat("/d1/data-copy/sub").st_ino
    fs.mv("/d1/data-copy", "/moved")  # one rename: the directory's row moves, not copies
    assert fs.vfs.stat("/moved/sub").st_ino == ino and not fs.exists("/d1/data-copy")
    fs.mv("/moved/a.txt", "/d1")  # into an existing directory, as shutil.move
    assert fs.cat("/d1/a.txt") == b"alpha"
    fs.mv("/d1/a.txt", "/d1/copy.bin")  # onto an existing file: replaced
    assert fs.cat("/d1/copy.bin") == b"alpha"
    with pytest.raises(OSError) as info:
        fs.rm("/d1")  # a non-empty directory without recursive
    assert info.value.errno == errno.ENOTEMPTY
    fs.rm("/d1/d2")  # empty: fine
    fs.rm("/d1", recursive=True)
    fs.rm("/moved/sub/*.bin")
    assert fs.find("/moved", withdirs=True) == ["/moved", "/moved/sub"]
    fs.rmdir("/moved/sub")
    with pytest.raises(FileNotFoundError):
        fs.rm("/nothing")
    fs.rm("/", recursive=True)
    assert fs.ls("/") == []


def test_transaction_is_atomic_batch(fs):
    with fs.transaction:
        fs.pipe_file("/t/1", b"1")
        with fs.open("/t/2", "wb") as f:
            f.write(b"2")
    assert fs.cat("/t/1") == b"1" and fs.cat("/t/2") == b"2"
    with pytest.raises(KeyError), fs.transaction:
        fs.pipe_file("/t/3", b"3")
        fs.rm("/t/1")
        raise KeyError("abandon")
    assert fs.find("/t") == ["/t/1", "/t/2"]
    fs.start_transaction()
    fs.pipe_file("/t/4", b"4")
    fs.end_transaction()
    assert fs.cat("/t/4") == b"4"


def test_over_a_live_vfs_and_with_underlays(tmp_path, pack):
    with VFS(str(tmp_path / "top.vfs")) as live:
        fs = fsspec.filesystem("vfsorm", vfs=live, skip_instance_cache=True)
        fs.pipe_file("/x", b"through fsspec")
        assert live.read_bytes("/x") == b"through fsspec"
        live.add_underlay(pack, name="base")
        assert fs.info("/data/a.txt")["layer"] == "base"
        clone = pickle.loads(pickle.dumps(fs))  # re-opened by path, underlays included
        assert clone.cat("/data/a.txt") == b"alpha" and clone.cat("/x") == b"through fsspec"
        clone.close()
    layered = fsspec.filesystem("vfsorm", db=str(tmp_path / "mod.vfs"),
                                underlays=[(pack, 0, "base")], skip_instance_cache=True)
    layered.pipe_file("/data/a.txt", b"modded")
    assert layered.cat("/data/a.txt") == b"modded" and layered.info("/data/sub")["layer"] == "base"
    with VFS(pack, read_only=True) as base:
        assert base.read_bytes("/data/a.txt") == b"alpha"  # the underlay is never written
    layered.close()
    with VFS(":memory:") as mem:
        with pytest.raises(TypeError):
            pickle.dumps(fsspec.filesystem("vfsorm", vfs=mem, skip_instance_cache=True))


def test_read_only(pack):
    fs = fsspec.filesystem("vfsorm", db=pack, read_only=True, skip_instance_cache=True)
    assert fs.cat("/data/a.txt") == b"alpha"
    with pytest.raises(ReadOnlyError):
        fs.pipe_file("/new", b"x")
    fs.close()


def test_chained_urls(pack, tmp_path):
    """A local pack is opened in place; a pack on another fsspec filesystem is loaded into
    memory, read-only, without a temporary file."""
    with fsspec.open(f"vfsorm:///data/a.txt::file://{pack}", "rb") as f:
        assert f.read() == b"alpha"
    with open(pack, "rb") as src:
        fsspec.filesystem("memory").pipe("/packs/base.vfs", src.read())
    try:
        fs, path = fsspec.core.url_to_fs("vfsorm:///data/sub::memory://packs/base.vfs")
        assert path == "/data/sub" and fs.ls(path, detail=False) == ["/data/sub/b.bin"]
        assert fs.vfs.db_path == ":memory:" and fs.vfs.read_only
        with pytest.raises(ReadOnlyError):
            fs.pipe_file("/x", b"x")
    finally:
        fsspec.filesystem("memory").rm("/packs", recursive=True)
    # No temporary file anywhere near: only the pack (and its WAL, open in place).
    assert {n for n in os.listdir(tmp_path)} <= {"pack.vfs", "pack.vfs-wal", "pack.vfs-shm"}


def _child_reads(fs, queue):
    queue.put(fs.cat("/data/a.txt"))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_usable_in_child_processes(fs, method):
    """A forked child re-opens its own connections; a spawned one gets a pickle."""
    assert fs.cat("/data/a.txt") == b"alpha"  # the parent has live connections
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_reads, args=(fs, queue))
    proc.start()
    assert queue.get(timeout=60) == b"alpha"
    proc.join(60)
    assert proc.exitcode == 0
    fs.pipe_file("/after", b"parent still works")
    assert fs.cat("/after") == b"parent still works"


def test_opening_needs_one_source(pack):
    with pytest.raises(ValueError):
        fsspec.filesystem("vfsorm", skip_instance_cache=True)
    with pytest.raises(ValueError):
        fsspec.filesystem("vfsorm", db=pack, vfs=VFS(), skip_instance_cache=True)


# -- real clients, each compared with the same operation on local files ---------------------
def test_pandas_csv_and_parquet(pack, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"id": range(500), "name": [f"item{i}" for i in range(500)],
                       "price": [i * 0.25 for i in range(500)]})
    so = {"db": pack}
    df.to_csv("vfsorm:///tables/items.csv", storage_options=so, index=False)
    df.to_parquet("vfsorm:///tables/items.parquet", storage_options=so)
    df.to_csv(tmp_path / "items.csv", index=False)
    df.to_parquet(tmp_path / "items.parquet")
    local_csv = pd.read_csv(tmp_path / "items.csv")
    pd.testing.assert_frame_equal(
        pd.read_csv("vfsorm:///tables/items.csv", storage_options=so), local_csv)
    pd.testing.assert_frame_equal(
        pd.read_parquet("vfsorm:///tables/items.parquet", storage_options=so),
        pd.read_parquet(tmp_path / "items.parquet"))
    with VFS(pack, read_only=True) as fs:
        assert fs.read_bytes("/tables/items.csv") == (tmp_path / "items.csv").read_bytes()


def test_duckdb_queries_parquet_inside_a_pack(pack, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    fs = fsspec.filesystem("vfsorm", db=pack, skip_instance_cache=True)
    table = pa.table({"level": [i % 7 for i in range(2000)], "score": list(range(2000))})
    for i in range(3):
        pq.write_table(table.slice(i * 500, 700), f"/stats/part{i}.parquet", filesystem=fs)
        pq.write_table(table.slice(i * 500, 700), tmp_path / f"part{i}.parquet")
    query = ("SELECT level, count(*), sum(score) FROM read_parquet('{}') "
             "GROUP BY level ORDER BY level")
    con = duckdb.connect()
    con.register_filesystem(fs)
    in_pack = con.sql(query.format("vfsorm:///stats/*.parquet")).fetchall()
    local = con.sql(query.format(tmp_path / "*.parquet")).fetchall()
    assert in_pack == local and len(in_pack) == 7
    con.close()
    fs.close()


def test_pyarrow_dataset_over_a_directory_in_a_pack(pack, tmp_path):
    pa = pytest.importorskip("pyarrow")
    ds = pytest.importorskip("pyarrow.dataset")
    fs = fsspec.filesystem("vfsorm", db=pack, skip_instance_cache=True)
    table = pa.table({"zone": ["a", "b", "c", "d"] * 250, "hp": list(range(1000))})
    ds.write_dataset(table, "/world", filesystem=fs, format="parquet",
                     partitioning=["zone"], partitioning_flavor="hive")
    ds.write_dataset(table, tmp_path / "world", format="parquet", partitioning=["zone"],
                     partitioning_flavor="hive")
    assert fs.ls("/world", detail=False) == [f"/world/zone={z}" for z in "abcd"]

    def read(source, **kw):
        t = ds.dataset(source, format="parquet", partitioning="hive", **kw).to_table(
            filter=ds.field("hp") > 500)
        return t.sort_by("hp").to_pylist()

    assert read("/world", filesystem=fs) == read(str(tmp_path / "world"))
    fs.close()


def test_zarr_array_in_a_pack_read_back_in_slices(pack, tmp_path):
    np = pytest.importorskip("numpy")
    zarr = pytest.importorskip("zarr")
    data = np.arange(120 * 80, dtype="int32").reshape(120, 80)
    so = {"db": pack}
    z = zarr.open_array("vfsorm:///arrays/grid.zarr", mode="w", shape=data.shape,
                        chunks=(32, 32), dtype="int32", storage_options=so)
    z[:] = data
    local = zarr.open_array(str(tmp_path / "grid.zarr"), mode="w", shape=data.shape,
                            chunks=(32, 32), dtype="int32")
    local[:] = data
    back = zarr.open_array("vfsorm:///arrays/grid.zarr", mode="r", storage_options=so)
    for sl in [np.s_[0:10, 0:10], np.s_[31:97, 5:77], np.s_[-3:, :], np.s_[::7, ::5]]:
        np.testing.assert_array_equal(back[sl], local[sl])
    with VFS(pack, read_only=True) as fs:
        chunks = [p for p in fs.glob("/arrays/grid.zarr/**") if fs.isfile(p)]
    assert len(chunks) > 4 * 3  # one object per chunk, stored as files


def test_upath_is_clean_under_warnings_as_errors(pack):
    """A fresh interpreter, -W error: the entry point finds the path class, and neither
    defining it nor using it warns (universal_pathlib warns when a protocol's filesystem is
    unknown when its path class is defined)."""
    pytest.importorskip("upath")
    code = ("import sys; from upath import UPath; "
            "p = UPath('vfsorm:///data', db=sys.argv[1]); "
            "print(type(p).__name__, sorted(c.name for c in p.iterdir()))")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code, pack], check=True,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.stdout.split(None, 1) == ["VFSPath", "['a.txt', 'sub']\n"]


def test_upath_mkdir_stores_mode_and_parent_mode(pack):
    """vfs_orm stores modes: ``mkdir(mode=, parent_mode=)`` keeps both (masked by the umask,
    as ``os.mkdir`` masks them), without universal_pathlib's "parent_mode is ignored" warning;
    an existing directory keeps its mode."""
    pytest.importorskip("upath")
    from upath import UPath

    old = os.umask(0o022)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            UPath("vfsorm:///p1/p2/leaf", db=pack).mkdir(mode=0o750, parents=True,
                                                          parent_mode=0o777)
            UPath("vfsorm:///data/new", db=pack).mkdir(mode=0o700, parents=True,
                                                        parent_mode=0o711)
    finally:
        os.umask(old)
    with VFS(pack, read_only=True) as vfs:
        modes = {p: stat.S_IMODE(vfs.stat(p).st_mode)
                 for p in ("/p1", "/p1/p2", "/p1/p2/leaf", "/data", "/data/new")}
    # /data existed: parent_mode is only for the parents the call creates.
    assert modes == {"/p1": 0o755, "/p1/p2": 0o755, "/p1/p2/leaf": 0o750,
                     "/data": 0o755, "/data/new": 0o700}
