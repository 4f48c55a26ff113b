"""vfs_orm: a POSIX-like virtual file system in one SQLite database, on SQLAlchemy.

>>> from vfs_orm import VFS
>>> with VFS() as fs:
...     fs.write_text("/game/config.json", '{"fullscreen": true}')
...     fs.listdir("/game")
20
['config.json']
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from vfs_orm.backends import install_transaction_fix
from vfs_orm.errors import (
    AlreadyExistsError,
    BusyError,
    ClosedError,
    ContractError,
    CorruptionError,
    CrossLayerError,
    DirNotEmptyError,
    FileTooLargeError,
    ForeignSchemaError,
    FormatVersionError,
    InvalidOperationError,
    InvalidPathError,
    IsADirError,
    MountError,
    NoSpaceError,
    NotADirError,
    NotAVFSDatabaseError,
    NotFoundError,
    PatchBaseError,
    PermissionDenied,
    ReadOnlyError,
    ReadOnlyLayerError,
    RootContractError,
    SpecialFileError,
    StaleHandleError,
    VFSError,
    VirtualFileSystemError,
)
from vfs_orm.models import FORMAT_REVISION, Chunk, Inode, LayerManifest
from vfs_orm.types import CheckpointInfo, DirEntry, InodeKind, StatResult
from vfs_orm.upgrading import repair, upgrade, upgrade_engine
from vfs_orm.vfs import VFS, VirtualFileSystem

try:  # the one place the version is written is pyproject.toml; the installed metadata has it
    __version__ = _version("vfs-orm")
except _PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "FORMAT_REVISION",
    "VFS",
    "AlreadyExistsError",
    "BusyError",
    "CheckpointInfo",
    "Chunk",
    "ClosedError",
    "ContractError",
    "CorruptionError",
    "CrossLayerError",
    "DirEntry",
    "DirNotEmptyError",
    "FileTooLargeError",
    "ForeignSchemaError",
    "FormatVersionError",
    "Inode",
    "InodeKind",
    "InvalidOperationError",
    "InvalidPathError",
    "IsADirError",
    "LayerManifest",
    "MountError",
    "NoSpaceError",
    "NotADirError",
    "NotAVFSDatabaseError",
    "NotFoundError",
    "PatchBaseError",
    "PermissionDenied",
    "ReadOnlyError",
    "ReadOnlyLayerError",
    "RootContractError",
    "SpecialFileError",
    "StaleHandleError",
    "StatResult",
    "VFSError",
    "VirtualFileSystem",
    "VirtualFileSystemError",
    "install_transaction_fix",
    "repair",
    "upgrade",
    "upgrade_engine",
]
