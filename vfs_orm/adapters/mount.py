"""A ``VFS`` as a real directory: libfuse 3 through ``mfusepy`` (the ``mount`` extra).

Every FUSE request maps onto the public ``VFS`` API; the library's errors carry Linux's errno,
which FUSE hands back to the program. An open file is one unbuffered ``ChunkedFile`` (``rb`` or
``r+b``) kept by handle number, so ``pread``/``pwrite`` are a seek and a read or write under the
handle's lock; every write is committed when it returns, ``fsync`` is ``VFS.sync``.

Why mfusepy: it binds libfuse's high-level (path-based) API through ctypes, so it installs
from a pure-Python wheel with nothing to compile (pyfuse3 needs libfuse3-dev and a C compiler),
it is maintained (libfuse 3 support, nanosecond times), and the high-level API's path-based
requests match ``VFS``'s path-based API one to one. libfuse's multithreaded loop serves requests
in parallel; ``VFS`` is thread-safe.

Owners (format 0009): an entry reports its stored uid/gid (``VFS.chown``), or, where none is
stored, the user who mounted. ``create``/``mkdir`` record the calling process's uid/gid when
they differ from the mounting user's (what the mounting user creates stays "not set": it
belongs to whoever mounts the database), with BSD/Linux set-group-ID directories (a new entry
takes the directory's group, a new directory its S_ISGID bit). The kernel decides who may
``chmod``/``chown``/open what (``default_permissions``); the file system clears S_ISUID, and
S_ISGID of a group-executable file, when an unprivileged process chowns, writes or truncates a
file, as Linux does.

Symbolic links, FIFOs, sockets and devices (format 0010) are stored entries
(``VFS.symlink``, ``mknod``): the kernel follows links itself (``readlink``) and serves FIFOs
and devices without asking the file system. What vfs_orm has no notion of fails as it does on
Linux file systems without the feature: hard links ``EPERM``; extended attributes
``EOPNOTSUPP``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat as _stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from vfs_orm.errors import MountError
from vfs_orm.types import StatResult

if TYPE_CHECKING:  # the facade imports this module when mount() is called
    from vfs_orm.vfs import VFS

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2
_FILL_DIR_PLUS = 2  # libfuse 3's FUSE_FILL_DIR_PLUS: the entry's attributes are filled in
_CAP_READDIRPLUS = 1 << 13  # fuse_common.h's FUSE_CAP_READDIRPLUS
_CAP_READDIRPLUS_AUTO = 1 << 14  # FUSE_CAP_READDIRPLUS_AUTO

#: Kernel cache settings of a writable mount: the kernel asks again after one second (another
#: process writing the same database is seen within that), and revalidates a file's page cache
#: at open against its size and mtime (``auto_cache``).
WRITABLE_CACHE = {"attr_timeout": 1.0, "entry_timeout": 1.0, "negative_timeout": 0.0,
                  "auto_cache": True}
#: A read-only mount: nothing changes under it through this process, so the kernel keeps
#: names, attributes and pages for a minute and keeps the page cache across opens.
READ_ONLY_CACHE = {"attr_timeout": 60.0, "entry_timeout": 60.0, "negative_timeout": 60.0,
                   "kernel_cache": True}


def check_available() -> None:
    """Raise ``MountError`` with a one-line fix when this machine cannot mount."""
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        if isinstance(exc, OSError) and "libfuse" not in str(exc).lower():
            raise
        hint = ("install the binding: pip install 'vfs-orm[mount]'" if isinstance(exc, ImportError)
                else "install libfuse 3: apt-get install fuse3")
        raise MountError.for_path("", f"cannot mount: {hint} ({exc})") from None
    if not os.path.exists("/dev/fuse"):
        raise MountError.for_path("/dev/fuse", "cannot mount: /dev/fuse is missing "
                                  "(load the fuse module, or run the container with --device /dev/fuse)")
    if shutil.which("fusermount3") is None and os.geteuid() != 0:
        raise MountError.for_path("", "cannot mount: fusermount3 is missing (apt-get install fuse3)")


class _Handle:
    __slots__ = ("lock", "path", "raw", "setid_checked", "writable")

    def __init__(self, raw: Any, writable: bool, path: str = "") -> None:
        self.raw = raw
        self.writable = writable
        self.path = path
        self.lock = threading.Lock()
        #: Whether a write through it has already cleared the file's set-ID bits (once a
        #: handle, by an unprivileged writer: see ``Operations._kill_setid``).
        self.setid_checked = False


def _setid_bits(mode: int) -> int:
    """The set-ID bits of ``mode`` an unprivileged write or truncate clears (Linux's
    ``should_remove_suid``: S_ISGID only with group execute; without, it marks mandatory
    locking)."""
    bits = mode & _stat.S_ISUID
    if mode & _stat.S_ISGID and mode & _stat.S_IXGRP:
        bits |= _stat.S_ISGID
    return bits


def _no_context() -> tuple[int, int, int]:
    """Outside a FUSE request (tests calling the operations directly): the mounting user."""
    return os.getuid(), os.getgid(), os.getpid()


def _device(mode: int) -> bool:
    return _stat.S_ISCHR(mode) or _stat.S_ISBLK(mode)


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


#: A name's longest length in bytes, as ext4's and tmpfs's (and ``statfs``'s ``f_namemax``).
NAME_MAX = 255


def _checked(path: str) -> str:
    """``path``, or ENAMETOOLONG when one of its names is longer than :data:`NAME_MAX` bytes
    (the kernel leaves that check to a FUSE file system)."""
    if len(path) > NAME_MAX // 4 and any(  # a character is at most 4 bytes
            len(os.fsencode(name)) > NAME_MAX for name in path.split("/")):
        raise _err(errno.ENAMETOOLONG)
    return path


class Operations:
    """libfuse's high-level operations over one ``VFS`` (paths arrive absolute, ``/a/b``)."""

    use_ns = True  # times in integer nanoseconds

    def __init__(self, vfs: VFS) -> None:
        self.vfs = vfs
        self.uid = os.getuid()
        self.gid = os.getgid()
        #: (uid, gid, pid) of the process behind the current request (``fuse_get_context``
        #: once mounted).
        self.context: Any = _no_context
        self._handles: dict[int, _Handle] = {}
        #: An open directory's listing (``readdir_plus``), by directory handle: made when
        #: the kernel reads from offset 0, the rest of the listing's chunks served from it.
        self._listings: dict[int, list[tuple[str, dict[str, Any] | None]]] = {}
        self._next = 1
        self._lock = threading.Lock()
        self.started = False  # set once the kernel has sent INIT: the mount is up
        #: The process's working directory: libfuse moves the whole process to "/" when it
        #: mounts (``fuse_daemonize``, even in the foreground); ``init`` moves it back.
        self._cwd = os.getcwd()

    # -- handles --------------------------------------------------------------------------
    def _keep(self, raw: Any, writable: bool, path: str = "") -> int:
        with self._lock:
            fh = self._next
            self._next += 1
            self._handles[fh] = _Handle(raw, writable, path)
        return fh

    # -- owners ---------------------------------------------------------------------------
    def _caller(self) -> tuple[int, int]:
        uid, gid, _pid = self.context()
        return int(uid), int(gid)

    def _kill_setid(self, path: str) -> None:
        """An unprivileged write or truncate: the file loses its set-ID bits (as Linux's
        ``file_remove_privs``; root keeps them, it has CAP_FSETID)."""
        if self._caller()[0] == 0:
            return
        mode = self.vfs.stat(path).st_mode
        bits = _setid_bits(mode)
        if bits:
            self.vfs.chmod(path, mode & 0o7777 & ~bits)

    def _new_owner(self, path: str) -> tuple[int, int, bool]:
        """(uid, gid, set-group-ID directory) for a new entry at ``path``: the caller's, the
        group of a set-group-ID parent directory instead (BSD semantics, Linux's too)."""
        uid, gid = self._caller()
        parent = self.vfs.stat(os.path.dirname(path) or "/")
        inherit = bool(parent.st_mode & _stat.S_ISGID)
        if inherit:
            gid = self._uid_gid(parent)[1]
        return uid, gid, inherit

    def _uid_gid(self, st: StatResult) -> tuple[int, int]:
        """The owner an entry reports: the stored one, the mounting user where none is."""
        return (self.uid if st.owner_uid is None else st.owner_uid,
                self.gid if st.owner_gid is None else st.owner_gid)

    def _record_owner(self, path: str, uid: int, gid: int) -> None:
        """Store the owner of a new entry unless it is the default (the mounting user)."""
        if (uid, gid) != (self.uid, self.gid):
            self.vfs.chown(path, uid, gid)

    def _handle(self, fh: int | None) -> _Handle:
        h = self._handles.get(fh) if fh is not None else None
        if h is None:
            raise _err(errno.EBADF)
        return h

    def _writable(self) -> None:
        if self.vfs.read_only:
            raise _err(errno.EROFS)

    # -- metadata -------------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        attrs = self._attrs(self.vfs.stat(_checked(path)))
        if _device(attrs["st_mode"]):
            attrs["st_rdev"] = self.vfs.device_number(path)
        return attrs

    def _attrs(self, st: StatResult) -> dict[str, Any]:
        is_dir = _stat.S_ISDIR(st.st_mode)
        return {
            "st_mode": st.st_mode, "st_size": st.st_size, "st_nlink": 2 if is_dir else 1,
            "st_uid": self.uid if st.owner_uid is None else st.owner_uid,
            "st_gid": self.gid if st.owner_gid is None else st.owner_gid, "st_ino": st.st_ino,
            "st_mtime": st.st_mtime_ns, "st_atime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns,
            "st_blksize": 4096, "st_blocks": (st.st_size + 511) // 512,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self.vfs.listdir(path)]

    def readdir_plus(self, path: str) -> list[tuple[str, dict[str, Any] | None]]:
        """A directory's names with their attributes, from one statement (``scandir``): the
        kernel then needs no lookup per entry (``READDIRPLUS``)."""
        # A device's number is not in the listing: the kernel asks ``getattr`` for those.
        return [(".", None), ("..", None),
                *((e.name, None if _device(e.stat().st_mode) else self._attrs(e.stat()))
                  for e in self.vfs.scandir(path))]

    def opendir(self, path: str) -> int:
        with self._lock:
            fh = self._next
            self._next += 1
        return fh

    def listing(self, path: str, fh: int, offset: int
                ) -> list[tuple[str, dict[str, Any] | None]]:
        """``readdir_plus(path)``, kept for directory handle ``fh`` while the kernel reads
        the listing chunk by chunk (a new one at offset 0: ``rewinddir``)."""
        entries = self._listings.get(fh) if offset else None
        if entries is None:
            entries = self.readdir_plus(path)
            if fh:
                self._listings[fh] = entries
        return entries

    def releasedir(self, path: str, fh: int) -> int:
        self._listings.pop(fh, None)
        return 0

    def access(self, path: str, amode: int) -> int:
        self.vfs.stat(path)
        if amode & os.W_OK and self.vfs.read_only:
            raise _err(errno.EROFS)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        where = self.vfs.db_path
        st = None
        if where and where != ":memory:" and "://" not in where:
            with suppress(OSError):
                st = os.statvfs(os.path.dirname(os.path.abspath(where)) or "/")
        if st is None:
            total = 1 << 30
            return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": total, "f_bfree": total,
                    "f_bavail": total, "f_files": total, "f_ffree": total, "f_namemax": 255}
        return {"f_bsize": 4096, "f_frsize": st.f_frsize, "f_blocks": st.f_blocks,
                "f_bfree": st.f_bfree, "f_bavail": st.f_bavail, "f_files": st.f_files,
                "f_ffree": st.f_ffree, "f_favail": st.f_favail, "f_namemax": 255}

    def chmod(self, path: str, mode: int) -> int:
        self._writable()
        self.vfs.chmod(path, mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        """The kernel has checked who may (``default_permissions``: only root gives a file
        away; its owner may change its group to one of theirs). An unprivileged caller's
        chown clears a file's set-ID bits, as Linux does (not a directory's)."""
        self._writable()
        unprivileged = self._caller()[0] != 0 and (uid, gid) != (-1, -1)
        self.vfs.chown(path, uid, gid, clear_setid=unprivileged)
        return 0

    def utimens(self, path: str, times: tuple[int | None, int | None] | None = None) -> int:
        self._writable()
        mtime = times[1] if times is not None else time.time_ns()
        if mtime is None:  # UTIME_OMIT: only the access time, which is not stored
            self.vfs.stat(path)
            return 0
        self.vfs.utime(path, ns=(mtime, mtime))
        return 0

    # -- directories ----------------------------------------------------------------------
    def mkdir(self, path: str, mode: int) -> int:
        self._writable()
        _checked(path)
        with self.vfs.atomic_batch():
            uid, gid, inherit = self._new_owner(path)
            self.vfs.mkdir(path)
            # A directory made in a set-group-ID directory is one too.
            self.vfs.chmod(path, (mode & 0o7777) | (_stat.S_ISGID if inherit else 0))
            self._record_owner(path, uid, gid)
        return 0

    def rmdir(self, path: str) -> int:
        self._writable()
        self.vfs.rmdir(path)
        return 0

    def unlink(self, path: str) -> int:
        self._writable()
        self.vfs.remove(path)
        return 0

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        self._writable()
        _checked(new)
        if flags == 0:
            self.vfs.replace(old, new)
        elif flags == RENAME_NOREPLACE:
            self.vfs.rename(old, new)
        elif flags == RENAME_EXCHANGE:
            self._exchange(old, new)
        else:
            raise _err(errno.EINVAL)
        return 0

    def _exchange(self, a: str, b: str) -> None:
        vfs = self.vfs
        with vfs.atomic_batch():
            vfs.stat(a)
            vfs.stat(b)
            if a == b:
                return
            parent = os.path.dirname(a)
            tmp = f"{parent.rstrip('/')}/.vfs-orm-exchange-{uuid.uuid4().hex}"
            vfs.rename(a, tmp)
            vfs.rename(b, a)
            vfs.rename(tmp, b)

    # -- links and nodes (format 0010): the kernel follows links and serves the nodes -----
    def symlink(self, target: str, source: str) -> int:
        # mfusepy's names: ``target`` is the new link's path, ``source`` what it points to.
        self._writable()
        _checked(target)
        with self.vfs.atomic_batch():
            uid, gid, _inherit = self._new_owner(target)
            self.vfs.symlink(source, target)
            self._record_owner(target, uid, gid)
        return 0

    def readlink(self, path: str) -> str:
        return self.vfs.readlink(path)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        self._writable()
        _checked(path)
        with self.vfs.atomic_batch():
            uid, gid, _inherit = self._new_owner(path)
            self.vfs.mknod(path, mode, dev)
            self._record_owner(path, uid, gid)
        return 0

    # -- files ----------------------------------------------------------------------------
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        self._writable()
        _checked(path)
        vfs = self.vfs
        if vfs.exists(path):
            if flags & os.O_EXCL:
                raise _err(errno.EEXIST)
            return self.open(path, flags | os.O_RDWR)
        with vfs.atomic_batch():
            uid, gid, _inherit = self._new_owner(path)
            with vfs.open(path, "xb", buffering=0):
                pass
            if mode & 0o7777 != 0o644:
                vfs.chmod(path, mode & 0o7777)
            self._record_owner(path, uid, gid)
        return self._keep(vfs.open(path, "r+b", buffering=0), True, path)

    def open(self, path: str, flags: int) -> int:
        acc = flags & os.O_ACCMODE
        if acc == os.O_RDONLY and not flags & os.O_TRUNC:
            return self._keep(self.vfs.open(path, "rb", buffering=0), False)
        self._writable()
        raw = self.vfs.open(path, "r+b", buffering=0)
        try:
            if flags & os.O_TRUNC:
                self._kill_setid(path)
                raw.truncate(0)
        except BaseException:
            raw.close()
            raise
        return self._keep(raw, True, path)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        buf = bytearray(size)
        with memoryview(buf) as view:
            got = self.read_into(fh, view, offset)
        return bytes(buf[:got]) if got < size else bytes(buf)

    def read_into(self, fh: int, view: memoryview, offset: int) -> int:
        """Read at ``offset`` into ``view`` (libfuse's own reply buffer, when the kernel
        asks: no copy on the way); the count read."""
        h = self._handle(fh)
        size = len(view)
        got = 0
        with h.lock:
            h.raw.seek(offset)
            while got < size:  # the kernel takes a short read for the end of the file
                n = h.raw.readinto(view[got:])
                if not n:
                    break
                got += n
        return got

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        h = self._handle(fh)
        if not h.writable:
            raise _err(errno.EBADF)
        with h.lock:
            if not h.setid_checked:  # once a handle: no statement added to later writes
                h.setid_checked = True
                self._kill_setid(path or h.path)
            h.raw.seek(offset)
            return int(h.raw.write(data))

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self._writable()
        h = self._handles.get(fh) if fh is not None else None
        self._kill_setid(path or (h.path if h is not None else "/"))
        if h is not None and h.writable:
            with h.lock:
                h.raw.truncate(length)
            return 0
        with self.vfs.open(path, "r+b", buffering=0) as raw:
            raw.truncate(length)
        return 0

    # No ``flush``: every write is committed when it returns, so a close has nothing to do
    # before ``release``; without the operation libfuse answers FLUSH itself, one request
    # into Python fewer per file opened.

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self._handle(fh)
        self.vfs.sync()
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self.vfs.sync()
        return 0

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            h = self._handles.pop(fh, None)
        if h is not None:
            with h.lock:
                h.raw.close()
        return 0

    def init(self, path: str) -> None:
        # INIT comes after libfuse's chdir("/"): give the host application its directory back.
        with suppress(OSError):
            if os.getcwd() != self._cwd:
                os.chdir(self._cwd)
        self.started = True

    def init_with_config(self, conn: Any, config: Any) -> None:
        """``init``, and every chunk of a listing with its attributes (READDIRPLUS always,
        not libfuse's default "auto", where the kernel asks for plain names after a
        listing's first chunk and then looks each entry up: one ``getattr`` into Python per
        entry where ``readdir_plus`` already had them all from one statement)."""
        if conn is not None and conn.capable & _CAP_READDIRPLUS:
            conn.want = (conn.want | _CAP_READDIRPLUS) & ~_CAP_READDIRPLUS_AUTO
        self.init("/")

    def destroy(self, path: str) -> None:
        with self._lock:
            handles = list(self._handles.values())
            self._handles.clear()
        for h in handles:
            with suppress(Exception):
                h.raw.close()

    # -- what vfs_orm has no notion of ----------------------------------------------------
    def link(self, target: str, source: str) -> int:
        raise _err(errno.EPERM)  # as a Linux file system without hard links (vfat)


    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        raise _err(errno.EOPNOTSUPP)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise _err(errno.EOPNOTSUPP)

    def listxattr(self, path: str) -> list[str]:
        raise _err(errno.EOPNOTSUPP)

    def removexattr(self, path: str, name: str) -> int:
        raise _err(errno.EOPNOTSUPP)


def _fuse_class() -> Any:
    """mfusepy's ``FUSE`` with rename's flags and raw ``utimensat`` times passed on."""
    import mfusepy

    pinned = threading.local()
    ensure = ctypes.pythonapi.PyGILState_Ensure

    class _FUSE(mfusepy.FUSE):  # type: ignore[misc]
        def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
            # A request arrives on one of libfuse's worker threads, which Python does not
            # know: ctypes gives each call a fresh thread state, dropped on return, and with
            # it the thread's VFS connection (one new database connection per request).
            # Holding one more reference on the worker's thread state keeps it, and so the
            # connection, for the worker's life (libfuse keeps up to 10 idle workers).
            if not getattr(pinned, "done", False):
                ensure()
                pinned.done = True
            return super()._wrapper(func, *args, **kwargs)

        def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
            # Straight into libfuse's reply buffer: mfusepy's read makes a bytes object and
            # copies it there, two copies of every 128 KiB request.
            target = (ctypes.c_char * size).from_address(ctypes.addressof(buf.contents))
            with memoryview(target).cast("B") as view:
                return int(self.operations.read_into(fip.contents.fh, view, offset))

        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            return int(self.operations.rename(old.decode(self.encoding, self.errors),
                                              new.decode(self.encoding, self.errors), flags))

        def readdir_fuse_3(self, path: bytes | None, buf: Any, filler: Any, offset: int,
                           fip: Any, flags: int) -> int:
            # Each entry with its offset (its index + 1), as many as fit in the kernel's
            # buffer: only so does libfuse's high-level API pass the attributes on to the
            # kernel (entries given with offset 0 reach it with inode 0, "ignore the
            # attributes", and the kernel then looks every name up: a getattr each).
            p = "/" if path is None else path.decode(self.encoding, self.errors)
            entries = self.operations.listing(p, fip.contents.fh if fip else 0, offset)
            st = mfusepy.c_stat()
            for index in range(offset, len(entries)):
                name, attrs = entries[index]
                ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
                if attrs is not None:
                    mfusepy.set_st_attrs(st, attrs, use_ns=True)
                plus = _FILL_DIR_PLUS if attrs is not None else 0
                if filler(buf, name.encode(self.encoding, self.errors),
                          st if attrs is not None else None, index + 1, plus) != 0:
                    break
            return 0

        def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
            times: tuple[int | None, int | None] | None = None
            if buf:
                now = time.time_ns()

                def one(ts: Any) -> int | None:
                    if ts.tv_nsec == _UTIME_OMIT:
                        return None
                    if ts.tv_nsec == _UTIME_NOW:
                        return now
                    return int(ts.tv_sec) * 10**9 + int(ts.tv_nsec)

                times = (one(buf.contents.actime), one(buf.contents.modtime))
            p = "/" if path is None else path.decode(self.encoding, self.errors)
            return int(self.operations.utimens(p, times))

    return _FUSE


def fuse_options(vfs: VFS, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options a mount of ``vfs`` gets: the kernel checks permissions over the stored
    modes and owners (``default_permissions``; ``allow_other`` when root mounts), the caches
    of :data:`WRITABLE_CACHE` or :data:`READ_ONLY_CACHE`, ``ro`` for a read-only VFS;
    ``options`` override them."""
    opts: dict[str, Any] = {"fsname": f"vfs-orm:{vfs.db_path}", "subtype": "vfs-orm",
                            "default_permissions": True,
                            # libfuse keeps this many idle workers (each keeps its database
                            # connection); 3.14 warns when it is left unset.
                            "max_idle_threads": 10}
    if os.geteuid() == 0:
        # Other users may reach the mount (FUSE refuses every other user by default); the
        # kernel checks their permissions over the stored modes and owners. A non-root
        # mounter needs ``user_allow_other`` in /etc/fuse.conf for it: pass it with ``-o``.
        opts["allow_other"] = True
    opts.update(READ_ONLY_CACHE if vfs.read_only else WRITABLE_CACHE)
    if vfs.read_only:
        opts["ro"] = True
    opts.update(options or {})
    return opts


def serve(vfs: VFS, mountpoint: str, options: dict[str, Any] | None = None) -> None:
    """Mount ``vfs`` at ``mountpoint`` and serve requests in this thread until it is unmounted
    (``fusermount3 -u``, or SIGINT/SIGTERM/SIGHUP when this is the main thread)."""
    check_available()
    if not os.path.isdir(mountpoint):
        raise MountError.for_path(mountpoint, "mount point is not a directory")
    fuse = _fuse_class()
    ops = Operations(vfs)
    import mfusepy

    ops.context = mfusepy.fuse_get_context
    try:
        fuse(ops, mountpoint, foreground=True, **fuse_options(vfs, options))
    except RuntimeError as exc:
        # libfuse's loop reports the signal that ended it (SIGINT/SIGTERM/SIGHUP) as a
        # non-zero result: after a mount that is a clean stop.
        if not ops.started:
            raise MountError.for_path(mountpoint, f"FUSE could not mount: {exc}") from None
    finally:
        ops.destroy("/")


def unmount(mountpoint: str, lazy: bool = False) -> None:
    """``fusermount3 -u`` (``-z`` with ``lazy``: detach now, finish when the last file closes)."""
    cmd = ["fusermount3", "-u", *(["-z"] if lazy else []), mountpoint]
    if shutil.which("fusermount3") is None:
        cmd = ["umount", *(["-l"] if lazy else []), mountpoint]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise MountError.for_path(mountpoint, (done.stderr.strip() or "unmount failed"),
                                  err=errno.EBUSY)


def wait_mounted(mountpoint: str, alive: Any, timeout: float = 30.0) -> None:
    """Wait until ``mountpoint`` is a mount, while ``alive()`` says the server still runs."""
    deadline = time.monotonic() + timeout
    while not os.path.ismount(mountpoint):
        if not alive():
            raise MountError.for_path(mountpoint, "the FUSE server stopped before mounting")
        if time.monotonic() > deadline:
            raise MountError.for_path(mountpoint, "timed out waiting for the mount",
                                      err=errno.ETIMEDOUT)
        time.sleep(0.01)


@contextmanager
def mounted(vfs: VFS, mountpoint: str | os.PathLike[str],
            options: dict[str, Any] | None = None) -> Iterator[str]:
    """Serve ``vfs`` at ``mountpoint`` from a background thread for the ``with`` block; on exit
    unmount (lazily if a file is still open there) and wait for the server to stop. The VFS
    stays open (its owner closes it)."""
    check_available()
    # Absolute: libfuse's mount leaves this process in "/", so a relative path would name
    # another directory for the checks that follow (a mount that is up, never seen).
    where = os.path.abspath(os.fspath(mountpoint))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            serve(vfs, where, options)
        except BaseException as exc:  # reported by the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"vfs-orm-mount:{where}", daemon=True)
    thread.start()
    try:
        wait_mounted(where, thread.is_alive)
    except MountError:
        thread.join(5)
        if failure:
            raise failure[0] from None
        raise
    try:
        yield where
    finally:
        if os.path.ismount(where):
            try:
                unmount(where)
            except MountError:
                unmount(where, lazy=True)
        thread.join()
    if failure:
        raise failure[0]


__all__ = ["READ_ONLY_CACHE", "WRITABLE_CACHE", "MountError", "Operations", "check_available",
           "fuse_options", "mounted", "serve", "unmount"]

