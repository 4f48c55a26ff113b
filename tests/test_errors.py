import builtins
import errno
import pickle

import icontract
import pytest

import vfs_orm
from vfs_orm import errors as E


@pytest.mark.parametrize("cls, builtin, code", [
    (E.NotFoundError, builtins.FileNotFoundError, errno.ENOENT),
    (E.AlreadyExistsError, builtins.FileExistsError, errno.EEXIST),
    (E.NotADirError, builtins.NotADirectoryError, errno.ENOTDIR),
    (E.IsADirError, builtins.IsADirectoryError, errno.EISDIR),
    (E.DirNotEmptyError, builtins.PermissionError, errno.ENOTEMPTY),
    (E.ReadOnlyError, builtins.PermissionError, errno.EROFS),
    (E.ReadOnlyLayerError, builtins.PermissionError, errno.EROFS),
    (E.InvalidPathError, builtins.ValueError, errno.EINVAL),
    (E.InvalidOperationError, builtins.ValueError, errno.EINVAL),
    (E.BusyError, builtins.TimeoutError, errno.EBUSY),
    (E.ClosedError, builtins.ValueError, errno.EBADF),
    (E.CrossLayerError, builtins.OSError, errno.EXDEV),
    (E.StaleHandleError, builtins.OSError, errno.ESTALE),
])
def test_leaves_are_builtins_with_errno(cls, builtin, code):
    err = cls.for_path("/p", path2="/q")
    assert isinstance(err, E.VFSError) and isinstance(err, OSError) and isinstance(err, builtin)
    assert err.errno == code and err.filename == "/p" and err.filename2 == "/q"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and again.errno == code and again.filename == "/p"


def test_root_and_aliases():
    assert vfs_orm.VirtualFileSystemError is E.VFSError
    assert issubclass(E.VFSError, OSError)
    assert issubclass(E.ContractError, icontract.ViolationError)
    assert issubclass(E.ContractError, ValueError)
    assert issubclass(E.RootContractError, icontract.ViolationError)
    assert issubclass(E.RootContractError, PermissionError)
    assert vfs_orm.VirtualFileSystem is vfs_orm.VFS


def test_every_error_is_exported():
    for name in E.__all__:
        assert getattr(vfs_orm, name) is getattr(E, name)
