"""``UPath("vfsorm:///inner/path", db=PATH)``: universal_pathlib's path class for vfs_orm trees,
registered through the ``universal_pathlib.implementations`` entry point (extra
``vfs-orm[upath]``). Every operation goes through ``adapters.fsspec.VFSFileSystem``."""

from __future__ import annotations

import fsspec
from upath import UPath

# The filesystem class must be known to fsspec before the path class is defined, or
# universal_pathlib warns that it cannot tell the protocol's path flavour.
fsspec.get_filesystem_class("vfsorm")


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it: a race between
    threads); 0o022 where ``/proc`` does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


class VFSPath(UPath):
    """A path inside a vfs_orm tree. The root is ``vfsorm:///``."""

    __slots__ = ()

    @property
    def path(self) -> str:
        path = super().path
        return "/" if path in {"", "."} else path

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False, *,
              parent_mode: int | None = None) -> None:
        """``pathlib.Path.mkdir``: vfs_orm stores modes, so ``mode`` (and ``parent_mode`` for
        the parents created) is kept, masked by the process umask as ``os.mkdir`` masks it."""
        umask = _umask()
        if parents and not exist_ok and self.exists():
            raise FileExistsError(str(self))
        try:
            self.fs.mkdir(self.path, create_parents=parents, mode=mode & ~umask,
                          parent_mode=None if parent_mode is None else parent_mode & ~umask)
        except FileExistsError:
            if not exist_ok or not self.is_dir():
                raise FileExistsError(str(self)) from None
