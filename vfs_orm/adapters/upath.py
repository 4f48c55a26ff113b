"""``UPath("vfsorm:///inner/path", db=PATH)``: universal_pathlib's path class for vfs_orm trees,
registered through the ``universal_pathlib.implementations`` entry point (extra
``vfs-orm[upath]``). Every operation goes through ``adapters.fsspec.VFSFileSystem``."""

from __future__ import annotations

import fsspec
from upath import UPath

# The filesystem class must be known to fsspec before the path class is defined, or
# universal_pathlib warns that it cannot tell the protocol's path flavour.
fsspec.get_filesystem_class("vfsorm")


class VFSPath(UPath):
    """A path inside a vfs_orm tree. The root is ``vfsorm:///``."""

    __slots__ = ()

    @property
    def path(self) -> str:
        path = super().path
        return "/" if path in {"", "."} else path
