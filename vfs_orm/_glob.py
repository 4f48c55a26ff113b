"""Glob patterns: ``*``, ``?`` and ``[...]`` match within one path segment, ``**`` matches zero
or more whole segments, ``[!x]`` and ``[^x]`` both negate.

Matching runs in SQL wherever it can (``Tree.glob_*``): a pattern without ``**`` is one
indexed statement; with ``**``, the subtree below the literal prefix is filtered by its last
segment in SQL and checked against the exact pattern here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from vfs_orm import paths

if TYPE_CHECKING:
    from vfs_orm.namespace.tree import Tree

_MAGIC = re.compile(r"[*?\[]")


def has_magic(segment: str) -> bool:
    return _MAGIC.search(segment) is not None


def _bracket_end(segment: str, i: int) -> int:
    """Index of the ``]`` closing the class opened at ``segment[i-1]``, or -1."""
    j, n = i, len(segment)
    if j < n and segment[j] in "!^":
        j += 1
    if j < n and segment[j] == "]":
        j += 1
    while j < n and segment[j] != "]":
        j += 1
    return j if j < n else -1


def tokens(segment: str) -> list[tuple[str, str]]:
    """One segment as ("star", ""), ("one", ""), ("class", body) with body starting with
    "!" when negated (``[^x]`` is read as ``[!x]``), or ("lit", char). An unclosed ``[`` is
    a literal. Both translators below read these, so they cannot disagree on the syntax."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(segment)
    while i < n:
        c = segment[i]
        i += 1
        if c == "*":
            while i < n and segment[i] == "*":
                i += 1
            out.append(("star", ""))
        elif c == "?":
            out.append(("one", ""))
        elif c == "[" and (j := _bracket_end(segment, i)) >= 0:
            body = segment[i:j]
            out.append(("class", "!" + body[1:] if body[:1] in "!^" and body else body))
            i = j + 1
        else:
            out.append(("lit", c))
    return out


def to_sqlite_glob(segment: str) -> str:
    """The same segment pattern in SQLite GLOB syntax (``[!`` becomes ``[^``; a literal
    ``[`` is written ``[[]``)."""
    out = []
    for kind, text in tokens(segment):
        if kind == "star":
            out.append("*")
        elif kind == "one":
            out.append("?")
        elif kind == "class":
            out.append("[" + ("^" + text[1:] if text.startswith("!") else text) + "]")
        else:
            out.append("[[]" if text == "[" else text)
    return "".join(out)


@lru_cache(maxsize=512)
def segment_regex(segment: str) -> str:
    """Regex source for one segment: no wildcard ever matches ``/``."""
    out = []
    for kind, text in tokens(segment):
        if kind == "star":
            out.append("[^/]*")
        elif kind == "one":
            out.append("[^/]")
        elif kind == "class":
            negate = text.startswith("!")
            body = (text[1:] if negate else text)
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(text))
    return "".join(out)


@lru_cache(maxsize=256)
def pattern_regex(segments: tuple[str, ...]) -> re.Pattern[str]:
    """The whole pattern as a regex over absolute paths (``**`` = zero or more segments)."""
    rx = ""
    for seg in segments:
        if seg == "**":
            rx += "(?:/[^/]+)*"
        else:
            rx += "/" + segment_regex(seg)
    return re.compile(rx + r"\Z", re.DOTALL)


def glob(tree: Tree, pattern: str) -> list[str]:
    """All paths (files and directories) matching a normalised absolute ``pattern``."""
    segments = tuple(s for s in pattern.split("/") if s)
    if not segments:
        return ["/"]
    if not any(has_magic(s) for s in segments):
        return [pattern] if tree.exists(pattern) else []
    # The literal directory the pattern starts in.
    k = 0
    prefix = "/"
    while k < len(segments) - 1 and segments[k] != "**" and not has_magic(segments[k]):
        prefix = paths.join(prefix, segments[k])
        k += 1
    rest = segments[k:]
    if "**" in rest:
        return _glob_recursive(tree, prefix, segments)
    globs = tuple(to_sqlite_glob(s) for s in rest)
    if len(rest) == 1:
        return [paths.join(prefix, n) for n in tree.glob_in(prefix, globs[0])]
    # Only directories have entries below them, so every matched parent is a directory.
    return sorted(tree.glob_levels(prefix, globs))


def _glob_recursive(tree: Tree, prefix: str, segments: tuple[str, ...]) -> list[str]:
    """Patterns with ``**``: as Python's ``glob(recursive=True)``, a trailing ``**`` matches
    the directory itself and everything below it."""
    folded = tree.resolver.folded  # a case-insensitive tree: match the folded spellings
    rx = pattern_regex(tuple(map(paths.fold, segments)) if folded else segments)
    last = segments[-1]
    name_glob = "*" if last == "**" else to_sqlite_glob(last)
    found = set()
    literal = len([p for p in prefix.split("/") if p])
    if all(s == "**" for s in segments[literal:]) and tree.exists(prefix):
        found.add(prefix)
    for parent, name, _ in tree.glob_below(prefix, name_glob):
        p = paths.join(parent, name)
        if rx.match(paths.fold(p) if folded else p):
            found.add(p)
    return sorted(found)
