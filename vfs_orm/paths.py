"""Pure POSIX path helpers: normalise, split, validate. No I/O, no SQL.

Paths inside a VFS are absolute, ``/``-separated strings. ``a/b`` means ``/a/b``; ``.``, ``..``
and repeated slashes collapse; ``..`` never climbs above ``/``. Control characters (NUL included)
are refused: they cannot be written to a real file system on unpack, and NUL truncates C strings.
"""

from __future__ import annotations

import os
import re
import unicodedata

from vfs_orm.errors import ContractError, InvalidPathError

ROOT = "/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize(path: object) -> str:
    """Return the absolute, normalised form of ``path``.

    Raises:
        TypeError: ``path`` is not a ``str`` or ``os.PathLike`` of ``str``.
        ContractError: ``path`` is empty (a ``ValueError`` and an ``icontract.ViolationError``).
        InvalidPathError: ``path`` holds a control character (a ``ValueError``).
    """
    if type(path) is not str:  # fast path first: the exact type costs one comparison
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"path must be str or os.PathLike[str], not {type(path).__name__}")
    if not path:
        raise ContractError.for_path(path, "path must not be empty")
    if not path.isprintable():  # isprintable: the C fast path
        if _CONTROL.search(path):
            raise InvalidPathError.for_path(path, "path contains a control character")
        if _SURROGATE.search(path):
            raise InvalidPathError.for_path(
                path, "path contains an unpaired surrogate (a name os.fsdecode could not "
                      "decode): names are stored as UTF-8 text")
    # Already-normal absolute paths (the common case) skip the split/join.
    if path[0] == "/" and "//" not in path and "/." not in path and (path == "/" or path[-1] != "/"):
        return path
    parts: list[str] = []
    for part in path.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def fold(text: str) -> str:
    """The case-insensitive key of a path or name (format 0004's ``fparent``/``fname``):
    Unicode case folding of the NFC form, in NFC again, so that ``Save.DAT``, ``save.dat`` and
    the NFD spelling of a name fold alike. Folding works character by character, so the fold
    of a path is the fold of each of its segments joined by "/"."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def split(path: str) -> tuple[str, str]:
    """Split a NORMALISED path into (parent, name). The root splits into ("", ""), the root's
    parent ("") into a key no entry has (a probe of it matches nothing). The one split of the
    package: the backends' statements key rows by it too."""
    if path == ROOT:
        return "", ""
    i = path.rfind("/")
    if i < 0:
        return "\x00", "\x00"
    return (path[:i] or ROOT), path[i + 1:]


def join(parent: str, name: str) -> str:
    """Join a normalised directory and one name."""
    return parent + name if parent == ROOT else parent + "/" + name


def subtree_bounds(path: str) -> tuple[str, str]:
    """(lo, hi) such that ``lo <= p < hi`` holds exactly for paths strictly below ``path``.

    Used for range scans on the index instead of LIKE/GLOB, so that ``%``, ``_``, ``*``, ``?``
    and ``[`` in names are never patterns. ``"0"`` is the character after ``"/"``.
    """
    if path == ROOT:
        return "/", "0"
    return path + "/", path + "0"


def is_within(path: str, top: str) -> bool:
    """True if normalised ``path`` equals ``top`` or lies below it."""
    return path == top or top == ROOT or path.startswith(top + "/")


def parents(path: str) -> list[str]:
    """Ancestors of a normalised path from the root down, excluding the path itself."""
    out = []
    parent, _ = split(path)
    while parent:
        out.append(parent)
        parent, _ = split(parent)
    out.reverse()
    return out
