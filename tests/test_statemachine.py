"""Random operation sequences against the VFS and the real OS file system, compared.

The seed library's documented deviations from POSIX are encoded in the model:
- ``rename`` onto an existing path raises FileExistsError (the OS would replace);
- writes create missing parent directories (the OS would raise FileNotFoundError);
- ``rmdir`` of a non-empty directory is a PermissionError whose errno is ENOTEMPTY.
Errors are compared by errno.
"""

import errno
import os
import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vfs_orm import VFS

NAMES = st.sampled_from(["a", "b", "c[1]", "d e", "%", "_"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
DATA = st.binary(max_size=300)


def outcome(fn):
    try:
        return ("ok", fn())
    except OSError as exc:
        return ("err", exc.errno)


class VFSvsOS(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tmp = tempfile.mkdtemp()
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root)
        self.fs = VFS(os.path.join(self.tmp, "db.vfs"), chunk_size=512)

    def teardown(self):
        self.fs.close()
        shutil.rmtree(self.tmp)

    def real(self, p):
        return self.root + p

    def _parent_chain_blocked(self, p):
        """The first ancestor that exists and is not a directory, if any."""
        parts = p.strip("/").split("/")[:-1]
        cur = self.root
        for part in parts:
            cur = os.path.join(cur, part)
            if os.path.lexists(cur) and not os.path.isdir(cur):
                return True
        return False

    def check(self, a, b):
        assert a == b, (a, b)

    @rule(p=PATHS)
    def mkdir(self, p):
        self.check(outcome(lambda: self.fs.mkdir(p)), outcome(lambda: os.mkdir(self.real(p))))

    @rule(p=PATHS)
    def makedirs(self, p):
        self.check(outcome(lambda: self.fs.makedirs(p, exist_ok=True)),
                   outcome(lambda: os.makedirs(self.real(p), exist_ok=True)))

    def _os_write(self, p, data, mode):
        if not self._parent_chain_blocked(p):
            os.makedirs(os.path.dirname(self.real(p)), exist_ok=True)
        with open(self.real(p), mode) as f:
            f.write(data)

    @rule(p=PATHS, data=DATA)
    def write(self, p, data):
        self.check(outcome(lambda: (self.fs.write_bytes(p, data), None)[1]),
                   outcome(lambda: self._os_write(p, data, "wb")))

    @rule(files=st.lists(st.tuples(PATHS, DATA), min_size=1, max_size=4))
    def write_files(self, files):
        def os_write_all():  # all or nothing, like the VFS's one transaction
            snap = self.root + ".snap"
            shutil.copytree(self.root, snap)
            try:
                for p, data in files:
                    self._os_write(p, data, "wb")
            except OSError:
                shutil.rmtree(self.root)
                os.rename(snap, self.root)
                raise
            shutil.rmtree(snap)
        self.check(outcome(lambda: (self.fs.write_files(files), None)[1]), outcome(os_write_all))

    @rule(p=PATHS, data=DATA)
    def append(self, p, data):
        def vfs_append():
            with self.fs.open(p, "ab") as f:
                f.write(data)
        self.check(outcome(vfs_append), outcome(lambda: self._os_write(p, data, "ab")))

    @rule(p=PATHS, data=DATA, off=st.integers(0, 700))
    def patch(self, p, data, off):
        def patch_vfs():
            with self.fs.open(p, "r+b") as f:
                f.seek(off)
                f.write(data)

        def patch_os():
            with open(self.real(p), "r+b") as f:
                f.seek(off)
                f.write(data)
        self.check(outcome(patch_vfs), outcome(patch_os))

    @rule(src=PATHS, dst=PATHS)
    def rename(self, src, dst):
        got = outcome(lambda: self.fs.rename(src, dst))
        rs, rd = self.real(src), self.real(dst)
        if not os.path.lexists(rs):
            expect = outcome(lambda: os.rename(rs, rd))
        elif os.path.isdir(rs) and (dst + "/").startswith(src + "/") and dst != src:
            # As Linux: both paths are resolved first (a file in dst's path is ENOTDIR), then
            # "into itself" is EINVAL. A missing parent is no error here (writes make them).
            real = outcome(lambda: os.rename(rs, rd))
            expect = real if real == ("err", errno.ENOTDIR) else ("err", errno.EINVAL)
        elif os.path.lexists(rd):
            expect = ("err", errno.EEXIST)  # seed deviation: never overwrite
        else:
            def os_rename():
                if not self._parent_chain_blocked(dst):
                    os.makedirs(os.path.dirname(rd), exist_ok=True)
                os.rename(rs, rd)
            expect = outcome(os_rename)
        self.check(got, expect)

    @rule(p=PATHS)
    def remove(self, p):
        self.check(outcome(lambda: self.fs.remove(p)), outcome(lambda: os.remove(self.real(p))))

    @rule(p=PATHS)
    def rmdir(self, p):
        self.check(outcome(lambda: self.fs.rmdir(p)), outcome(lambda: os.rmdir(self.real(p))))

    @rule(p=PATHS)
    def rmtree(self, p):
        def os_rmtree():
            rp = self.real(p)
            if os.path.lexists(rp) and not os.path.isdir(rp):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", rp)
            shutil.rmtree(rp)
        self.check(outcome(lambda: self.fs.rmtree(p)), outcome(os_rmtree))

    @rule(p=PATHS)
    def listdir(self, p):
        self.check(outcome(lambda: self.fs.listdir(p)),
                   outcome(lambda: sorted(os.listdir(self.real(p)))))

    @rule(p=PATHS)
    def stat(self, p):
        def vfs_stat():
            s = self.fs.stat(p)
            return (s.is_dir(), s.st_size if not s.is_dir() else 0)

        def os_stat():
            s = os.stat(self.real(p))
            return (os.path.isdir(self.real(p)), s.st_size if not os.path.isdir(self.real(p)) else 0)
        self.check(outcome(vfs_stat), outcome(os_stat))

    @rule(p=PATHS)
    def read(self, p):
        def os_read():
            with open(self.real(p), "rb") as f:
                return f.read()
        self.check(outcome(lambda: self.fs.read_bytes(p)), outcome(os_read))

    @invariant()
    def same_tree(self):
        ours = [(d, sorted(ds), sorted(fs)) for d, ds, fs in self.fs.walk("/")]
        theirs = [("/" if d == self.root else "/" + os.path.relpath(d, self.root),
                   sorted(ds), sorted(fs)) for d, ds, fs in os.walk(self.root)]
        assert sorted(ours) == sorted(theirs)


VFSvsOS.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
TestVFSvsOS = VFSvsOS.TestCase


# The same model over a layer stack: the tree starts as the merged view of three read-only
# underlays (a directory in several layers, its files in different ones, files shadowed by a
# higher layer's), and every rule runs against the top layer. What
# the real OS shows must be what the merged view shows: copy-up, whiteouts and the one-layer
# fast paths all answer through the same namespace.
UNDERLAYS = [  # highest priority first: (priority, {path: content or None for a directory})
    (30, {"/a": None, "/a/b": b"from layer 30", "/b": b"over a lower file"}),
    (20, {"/a": None, "/a/c[1]": None, "/a/c[1]/%": b"deep", "/a/b": b"shadowed",
          "/d e": None, "/d e/_": b"in a lower directory"}),
    (10, {"/_": None, "/_/a": b"x" * 700, "/b": b"a lower file", "/d e": None}),
]


def fill_underlay(under: VFS, entries: dict[str, bytes | None]) -> None:
    for p, data in sorted(entries.items()):
        if data is None:
            under.makedirs(p, exist_ok=True)
        else:
            under.write_bytes(p, data)


class VFSvsOSLayered(VFSvsOS):
    def add_underlay(self, k: int, priority: int, entries: dict[str, bytes | None]) -> None:
        path = os.path.join(self.tmp, f"under{k}.vfs")
        with VFS(path, chunk_size=512) as under:
            fill_underlay(under, entries)
        self.fs.add_underlay(path, priority=priority, name=f"under{k}")

    def __init__(self):
        super().__init__()
        merged: dict[str, bytes | None] = {}
        for k, (priority, entries) in enumerate(UNDERLAYS):
            self.add_underlay(k, priority, entries)
            for p, data in entries.items():
                # Exact-path resolution: the highest layer holding a path provides it.
                merged.setdefault(p, data)
        for p in sorted(merged):
            if merged[p] is None:
                os.makedirs(self.real(p), exist_ok=True)
            else:
                os.makedirs(os.path.dirname(self.real(p)), exist_ok=True)
                with open(self.real(p), "wb") as f:
                    f.write(merged[p])


VFSvsOSLayered.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                            deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
TestVFSvsOSLayered = VFSvsOSLayered.TestCase


def test_state_machine_on_postgresql(pg_url):
    """The same model on a PostgreSQL tree (one fresh tree per example)."""
    import itertools

    import pgserver
    from hypothesis.stateful import run_state_machine_as_test

    trees = itertools.count()
    made: list[str] = []

    class VFSvsOSOnPostgreSQL(VFSvsOS):
        def __init__(self):
            super().__init__()
            self.fs.close()
            tree = f"sm{os.getpid()}_{next(trees)}"
            made.append(tree)
            self.fs = VFS(pg_url, tree=tree, chunk_size=512)

    try:
        run_state_machine_as_test(
            VFSvsOSOnPostgreSQL,
            settings=settings(max_examples=40, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]))
    finally:
        pgserver.drop_trees(pg_url, made)
    assert made  # it ran


def test_state_machine_on_postgresql_layers(pg_url):
    """The layered model on PostgreSQL: the three underlays are trees of the same database
    (made once, never written), under a fresh top tree per example."""
    import itertools

    import pgserver
    from hypothesis.stateful import run_state_machine_as_test

    prefix = f"sml{os.getpid()}"
    bases = []
    for k, (_, entries) in enumerate(UNDERLAYS):
        bases.append(f"{prefix}_under{k}")
        with VFS(pg_url, tree=bases[-1], chunk_size=512) as under:
            fill_underlay(under, entries)
    trees = itertools.count()
    made: list[str] = []

    class VFSvsOSLayeredOnPostgreSQL(VFSvsOSLayered):
        def add_underlay(self, k: int, priority: int, entries: dict[str, bytes | None]) -> None:
            if k == 0:  # a fresh top tree for this example
                self.fs.close()
                made.append(f"{prefix}_{next(trees)}")
                self.fs = VFS(pg_url, tree=made[-1], chunk_size=512)
            self.fs.add_underlay(pg_url, tree=bases[k], priority=priority, name=f"under{k}")

    try:
        run_state_machine_as_test(
            VFSvsOSLayeredOnPostgreSQL,
            settings=settings(max_examples=30, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]))
    finally:
        pgserver.drop_trees(pg_url, made + bases)
    assert made  # it ran
