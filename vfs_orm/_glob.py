"""Glob patterns over a ``Tree``: pure matching logic plus directory listings.

``*``, ``?`` and ``[...]`` match within one path segment, ``**`` matches zero or more whole
segments, ``[!x]`` and ``[^x]`` both negate. Literal segments are looked up directly, wildcard
segments list one directory, and ``**`` fetches the subtree below it once (one range query)
and matches the rest of the pattern in memory.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from vfs_orm import paths

if TYPE_CHECKING:
    from vfs_orm.tree import Tree

_MAGIC = re.compile(r"[*?\[]")


def has_magic(segment: str) -> bool:
    return _MAGIC.search(segment) is not None


@lru_cache(maxsize=512)
def segment_regex(segment: str) -> re.Pattern[str]:
    """Translate one segment to a regex: no wildcard ever matches ``/``."""
    out, i, n = [], 0, len(segment)
    while i < n:
        c = segment[i]
        i += 1
        if c == "*":
            while i < n and segment[i] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i
            if j < n and segment[j] in "!^":
                j += 1
            if j < n and segment[j] == "]":
                j += 1
            while j < n and segment[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape("["))  # unclosed: a literal bracket
                continue
            body = segment[i:j]
            i = j + 1
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[{'^/' if negate else ''}{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob(tree: "Tree", pattern: str) -> list[str]:
    """All paths (files and directories) matching a normalised absolute ``pattern``."""
    segments = [s for s in pattern.split("/") if s]
    if not segments:
        return ["/"] if tree.lookup("/") is not None else []
    found: set[str] = set()
    DIR = 2

    def db_children(d: str) -> list[tuple[str, bool]]:
        try:
            return [(r[0], r[2] == DIR) for r in tree.entries(d)]
        except OSError:
            return []

    def expand(d: str, i: int, children: Callable[[str], list[tuple[str, bool]]],
               is_dir: bool = True) -> None:
        if i == len(segments):
            found.add(d)
            return
        if not is_dir:
            return
        seg = segments[i]
        last = i == len(segments) - 1
        if seg == "**":
            index = _subtree_index(tree, d) if children is db_children else None
            kids = children if index is None else (lambda x: index.get(x, []))
            expand(d, i + 1, kids)
            stack = [d]
            while stack:
                cur = stack.pop()
                for name, sub_is_dir in kids(cur):
                    if sub_is_dir:
                        child = paths.join(cur, name)
                        expand(child, i + 1, kids)
                        stack.append(child)
            return
        if not has_magic(seg):
            for name, sub_is_dir in _literal(children, d, seg, tree):
                expand(paths.join(d, name), i + 1, children, sub_is_dir)
            return
        rx = segment_regex(seg)
        for name, sub_is_dir in children(d):
            if rx.match(name) and (last or sub_is_dir):
                expand(paths.join(d, name), i + 1, children, sub_is_dir)

    expand("/", 0, db_children)
    return sorted(found)


def _literal(children: Callable[[str], list[tuple[str, bool]]], d: str, name: str,
             tree: "Tree") -> list[tuple[str, bool]]:
    if children.__name__ == "db_children":
        row = tree.lookup(paths.join(d, name))
        return [] if row is None else [(name, row[1] == 2)]
    return [(n, isdir) for n, isdir in children(d) if n == name]


def _subtree_index(tree: "Tree", top: str) -> dict[str, list[tuple[str, bool]]]:
    """directory path -> its entries, for everything below ``top`` (one query)."""
    index: dict[str, list[tuple[str, bool]]] = {}
    for row in tree.subtree(top):
        index.setdefault(row[0], []).append((row[1], row[3] == 2))
    return index
