"""The ceiling of a FUSE mount on this machine: mount_bench.py's workloads through the fastest
FUSE servers we can write, against the local disk and our own mount.

    python benchmarks/mount_ceiling.py [--runs 5] [--servers c,c-1m,...,orm-dio]
                                       [--big-mib 256] [--small 2000] [--entries 10000]
                                       [--before CHECKOUT]

The files are mount_bench.py's (its ``build`` writes them to an image and to a local
directory) and so are the workloads and the ratio (local time / server time, medians of
``--runs``; 1.0: as fast as the local disk). Every server is mounted anew for every timed
workload, so the kernel's caches of the mount start empty (the page-cache re-read is timed on
its second run in the same mount), and the runs alternate between the servers:

- ``c``: benchmarks/ceiling/memfs_ll.c, libfuse 3's low-level API, multithreaded, the local
  directory copied into memory at start; the page cache kept across opens (``keep_cache``),
  entries and attributes valid for 60 s, READDIRPLUS on every chunk of a listing
  (``readdirplus=yes``; libfuse's default "auto" costs it 3x on find + stat). Compiled here
  with gcc (skipped with a line when gcc or libfuse3-dev is missing).
- ``c-1m``: the same with ``-o max_read=1048576,max_readahead=1048576``.
- ``c-ra``: the same as ``c-1m`` with the mount's read-ahead raised to 1 MiB in sysfs
  (``/sys/class/bdi/<dev>/read_ahead_kb``: root only, not a server's option).
- ``c-dio``: the same as ``c-1m`` with ``direct_io`` (no page cache: a read is one request).
- ``py``: a minimal mfusepy server in Python over a dict of the same bytes in memory, through
  the same binding code as our mount (vfs_orm.adapters.mount's ``FUSE`` subclass: reads
  straight into libfuse's buffer, READDIRPLUS), with the same generous options as ``c``
  (``kernel_cache``, 60 s timeouts).
- ``pyfuse3`` (if installed): the same through pyfuse3 (libfuse's low-level API from Cython,
  trio tasks on one thread), keep_cache and 60 s timeouts, READDIRPLUS.
- ``orm``: ``vfs-orm mount`` of the image, as mount_bench.py mounts it (default writable mount).
- ``orm-kc``: the same with ``-o kernel_cache`` (see MOUNT.md, round 12).
- ``orm-dio``: the same with ``-o direct_io`` (no page cache: a read is one request).
- ``orm-before`` (with ``--before CHECKOUT``): ``vfs-orm mount`` with that checkout's
  ``vfs_orm`` first on the import path: an A/B of a change to the mount, runs alternating.

At the end each C server prints what INIT granted and the read requests it got (count and
largest), from its sequential-read mount.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mount_bench import READERS, build, cases, seq_read, timed, workload_arguments

from vfs_orm.adapters.mount import Operations

HERE = Path(__file__).resolve().parent
C_SOURCE = HERE / "ceiling" / "memfs_ll.c"
GENEROUS = ["-o", "kernel_cache,attr_timeout=60,entry_timeout=60,negative_timeout=60"]


# -- the minimal Python server (run as ``mount_ceiling.py --serve-py SRC MNT``) -------------
class MemOps:
    """Read-only files from a dict in memory, with the methods our mount's ``FUSE`` subclass
    calls (``read_into``, ``readdir_plus``)."""

    use_ns = True

    def __init__(self, src: Path) -> None:
        self.data: dict[str, bytes] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        self.kids: dict[str, list[str]] = {}
        self.handles: dict[int, bytes] = {}
        self.next = 1
        for dirpath, dirnames, filenames in os.walk(src):
            rel = "/" + os.path.relpath(dirpath, src).replace(".", "", 1).lstrip("/")
            rel = "/" if rel in ("/", "/.") else rel
            self.kids[rel] = sorted(dirnames + filenames)
            self.attrs[rel] = self._attrs(os.lstat(dirpath))
            for name in filenames:
                p = f"{rel.rstrip('/')}/{name}"
                self.data[p] = Path(dirpath, name).read_bytes()
                self.attrs[p] = self._attrs(os.lstat(os.path.join(dirpath, name)))

    @staticmethod
    def _attrs(st: os.stat_result) -> dict[str, Any]:
        return {"st_mode": st.st_mode, "st_size": st.st_size, "st_nlink": st.st_nlink,
                "st_uid": st.st_uid, "st_gid": st.st_gid, "st_ino": st.st_ino,
                "st_mtime": st.st_mtime_ns, "st_atime": st.st_mtime_ns,
                "st_ctime": st.st_ctime_ns}

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        try:
            return self.attrs[path]
        except KeyError:
            raise OSError(errno.ENOENT, "") from None

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self.kids[path]]

    def readdir_plus(self, path: str) -> list[tuple[str, dict[str, Any] | None]]:
        base = path.rstrip("/")
        return [(".", None), ("..", None),
                *((name, self.attrs[f"{base}/{name}"]) for name in self.kids[path])]

    def listing(self, path: str, fh: int, offset: int
                ) -> list[tuple[str, dict[str, Any] | None]]:
        return self.readdir_plus(path)

    def init_with_config(self, conn: Any, config: Any) -> None:
        Operations.init_with_config(self, conn, config)  # type: ignore[arg-type]

    def open(self, path: str, flags: int) -> int:
        fh = self.next
        self.next += 1
        self.handles[fh] = self.data[path]
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.handles[fh][offset:offset + size]

    def read_into(self, fh: int, view: memoryview, offset: int) -> int:
        chunk = self.handles[fh][offset:offset + len(view)]
        view[:len(chunk)] = chunk
        return len(chunk)

    def release(self, path: str, fh: int) -> int:
        self.handles.pop(fh, None)
        return 0

    def init(self, path: str) -> None:
        pass

    def destroy(self, path: str) -> None:
        pass


def serve_py(src: str, mnt: str, opts: list[str]) -> None:
    from vfs_orm.adapters.mount import _fuse_class

    ops = MemOps(Path(src))
    kw: dict[str, Any] = {}
    for item in ",".join(opts[1::2]).split(","):
        key, eq, val = item.partition("=")
        kw[key] = val if eq else True
    _fuse_class()(ops, mnt, foreground=True, max_idle_threads=10, **kw)


def serve_pyfuse3(src: str, mnt: str) -> None:
    """The same tree from memory through pyfuse3 (libfuse's low-level API from Cython, trio
    tasks on one thread), with the options of ``c``: keep_cache, 60 s timeouts; its
    ``readdir_reply`` gives every entry's attributes (READDIRPLUS)."""
    import pyfuse3
    import trio

    entries: list[Any] = [None]  # by inode: (EntryAttributes, bytes, {name: inode}, [names])
    root_ino = pyfuse3.ROOT_INODE

    def node(path: str, ino: int) -> None:
        st = os.lstat(path)
        attr = pyfuse3.EntryAttributes()
        for field in ("st_mode", "st_size", "st_nlink", "st_uid", "st_gid", "st_mtime_ns",
                      "st_ctime_ns", "st_atime_ns"):
            setattr(attr, field, getattr(st, field))
        attr.st_ino = ino
        attr.attr_timeout = attr.entry_timeout = 60
        while len(entries) <= ino:
            entries.append(None)
        if os.path.isdir(path):
            kids: dict[bytes, int] = {}
            entries[ino] = (attr, b"", kids, [])
            for name in sorted(os.listdir(path)):
                kid = len(entries)
                entries.append(None)
                kids[os.fsencode(name)] = kid
                node(os.path.join(path, name), kid)
            entries[ino][3].extend(kids)
        else:
            entries[ino] = (attr, Path(path).read_bytes(), {}, [])

    node(src, root_ino)

    class Ops(pyfuse3.Operations):  # type: ignore[misc]
        async def lookup(self, parent: int, name: bytes, ctx: Any = None) -> Any:
            ino = entries[parent][2].get(name)
            if ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return entries[ino][0]

        async def getattr(self, inode: int, ctx: Any = None) -> Any:
            return entries[inode][0]

        async def opendir(self, inode: int, ctx: Any) -> int:
            return int(inode)

        async def readdir(self, fh: int, start_id: int, token: Any) -> None:
            _, _, kids, names = entries[fh]
            for i in range(start_id, len(names)):
                if not pyfuse3.readdir_reply(token, names[i], entries[kids[names[i]]][0],
                                             i + 1):
                    break

        async def open(self, inode: int, flags: int, ctx: Any) -> Any:
            return pyfuse3.FileInfo(fh=inode, keep_cache=True)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            return bytes(entries[fh][1][off:off + size])

        async def release(self, fh: int) -> None:
            pass

    options = set(pyfuse3.default_options)
    options.add("fsname=ceiling-pyfuse3")
    pyfuse3.init(Ops(), mnt, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)


# -- mounting the servers --------------------------------------------------------------------
Mounter = Callable[[Path], Callable[[], str]]


def _wait_mounted(mnt: Path, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 60
    while not os.path.ismount(mnt):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the mount")
        time.sleep(0.005)


def _unmount(mnt: Path) -> None:
    subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    while os.path.ismount(mnt):
        time.sleep(0.005)


def _bdi(mnt: Path) -> Path:
    dev = os.stat(mnt).st_dev
    return Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")


def process_server(cmd: list[str], read_ahead_kb: int | None = None) -> Mounter:
    """A server run in the foreground as a child process (``MNT`` in ``cmd`` is the mount
    point): mount, then a callable that unmounts, waits for it to exit and returns its last
    stderr line."""

    def mount(mnt: Path) -> Callable[[], str]:
        proc = subprocess.Popen([str(mnt) if a == "MNT" else a for a in cmd],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_mounted(mnt, proc)
        if read_ahead_kb is not None:
            _bdi(mnt).write_text(str(read_ahead_kb))

        def done() -> str:
            _unmount(mnt)
            _, err = proc.communicate(timeout=60)
            lines = err.decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else ""

        return done

    return mount


def orm_server(where: list[str], extra: list[str], code: str | None = None) -> Mounter:
    """``vfs-orm mount`` (of the ``vfs_orm`` at ``code``, first on the import path, if given)."""
    cli = [sys.executable, "-m", "vfs_orm"]
    env = {**os.environ, "PYTHONPATH": code} if code else None

    def mount(mnt: Path) -> Callable[[], str]:
        subprocess.run([*cli, "mount", *where, str(mnt), *extra], check=True,
                       stdout=subprocess.DEVNULL, env=env)

        def done() -> str:
            subprocess.run([*cli, "umount", str(mnt)], check=True, env=env)
            while os.path.ismount(mnt):
                time.sleep(0.01)
            return ""

        return done

    return mount


def compile_c(tmp: Path) -> Path | None:
    """The C server built into ``tmp``, or None (with a line saying why) when it cannot be."""
    gcc = shutil.which("gcc")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                           text=True) if shutil.which("pkg-config") else None
    if gcc is None or flags is None or flags.returncode != 0 or not Path(
            "/usr/include/fuse3/fuse_lowlevel.h").exists():
        print("skipping the C server: needs gcc, pkg-config and libfuse3-dev "
              "(apt-get install -y gcc pkg-config libfuse3-dev)")
        return None
    out = tmp / "memfs_ll"
    subprocess.run([gcc, "-O2", "-Wall", "-o", str(out), str(C_SOURCE), *flags.stdout.split()],
                   check=True)
    return out


def main() -> None:
    ap = workload_arguments()
    ap.add_argument("--servers", default="c,c-1m,c-ra,c-dio,py,pyfuse3,orm,orm-kc,orm-dio")
    ap.add_argument("--before", metavar="DIR",
                    help="also mount with the vfs_orm of this checkout (server orm-before): A/B")
    ap.add_argument("--serve-py", nargs=2, metavar=("SRC", "MNT"), help=argparse.SUPPRESS)
    ap.add_argument("--serve-pyfuse3", nargs=2, metavar=("SRC", "MNT"), help=argparse.SUPPRESS)
    ap.add_argument("-o", dest="opts", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_py:
        serve_py(*args.serve_py, [x for o in args.opts for x in ("-o", o)])
        return
    if args.serve_pyfuse3:
        serve_pyfuse3(*args.serve_pyfuse3)
        return
    wanted = args.servers.split(",")
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        image, local = build(root, args.big_mib, args.small, args.entries, None)
        mnt = root / "mnt"
        mnt.mkdir()
        servers: dict[str, Mounter] = {}
        binary = compile_c(root) if any(s.startswith("c") for s in wanted) else None
        c_1m = ["-o", "max_read=1048576,max_readahead=1048576"]
        if binary is not None:
            c = [str(binary), str(local), "MNT", "-f", "-o", "readdirplus=yes"]
            servers["c"] = process_server(c)
            servers["c-1m"] = process_server([*c, *c_1m])
            servers["c-ra"] = process_server([*c, *c_1m], read_ahead_kb=1024)
            servers["c-dio"] = process_server([*c, *c_1m, "-o", "direct_io"])
        servers["py"] = process_server([sys.executable, str(Path(__file__).resolve()),
                                        "--serve-py", str(local), "MNT", *GENEROUS])
        if "pyfuse3" in wanted:
            try:
                import pyfuse3  # noqa: F401
                import trio  # noqa: F401
            except ImportError as exc:
                print(f"skipping pyfuse3: {exc} (pip install pyfuse3)")
            else:
                servers["pyfuse3"] = process_server(
                    [sys.executable, str(Path(__file__).resolve()), "--serve-pyfuse3",
                     str(local), "MNT"])
        servers["orm"] = orm_server([image], [])
        servers["orm-kc"] = orm_server([image], ["-o", "kernel_cache"])
        servers["orm-dio"] = orm_server([image], ["-o", "direct_io"])
        if args.before:
            servers["orm-before"] = orm_server([image], [], args.before)
            wanted.append("orm-before")
        servers = {k: v for k, v in servers.items() if k in wanted}
        if "c-ra" in servers:
            done = process_server([str(binary), str(local), "MNT", "-f"])(mnt)
            try:
                _bdi(mnt).write_text(_bdi(mnt).read_text())
            except OSError as exc:
                print(f"skipping c-ra: cannot write the mount's read_ahead_kb ({exc})")
                del servers["c-ra"]
            finally:
                done()
        workloads = cases(args.big_mib, args.small, args.entries)
        sides = ["local", *servers]
        times = {n: {s: [] for s in sides} for n, _, _ in workloads}  # type: dict[str, dict[str, list[float]]]
        notes: dict[str, str] = {}
        for _name, fn, _warm in workloads:
            fn(local)  # the local copy and the image in the page cache
        for _ in range(args.runs):
            for name, fn, warm in workloads:
                times[name]["local"].append(timed(fn, local))
                for side, mount in servers.items():
                    done = mount(mnt)
                    try:
                        if warm:
                            fn(mnt)
                        times[name][side].append(timed(fn, mnt))
                    finally:
                        line = done()
                    if fn is seq_read and not warm and line:
                        notes[side] = line
        load1 = Path("/proc/loadavg").read_text().split()[:3]
        print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, load average "
              f"{' '.join(load0)} at start, {' '.join(load1)} at end; medians of {args.runs}")
        print("\n| workload | local (s) | " + " | ".join(f"{s} (s)" for s in servers) + " | "
              + " | ".join(f"local/{s}" for s in servers) + " |")
        print("| --- | ---: | " + " | ".join(["---:"] * 2 * len(servers)) + " |")
        for name, _, _ in workloads:
            med = {s: statistics.median(times[name][s]) for s in sides}
            print(f"| {name} | {med['local']:.4f} | "
                  + " | ".join(f"{med[s]:.4f}" for s in servers) + " | "
                  + " | ".join(f"{med['local'] / med[s]:.2f}x" for s in servers) + " |")
        (serial, _, _), (at_once, _, _) = workloads[-2:]
        print(f"\n{READERS} readers at once / the same reads one after another:")
        for side in sides:
            share = (statistics.median(times[at_once][side])
                     / statistics.median(times[serial][side]))
            print(f"  {side}: {share:.2f}x")
        for side, line in notes.items():
            print(f"{side}, sequential read: {line}")


if __name__ == "__main__":
    main()
