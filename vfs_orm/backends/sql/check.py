"""``vfs-orm check``: the engine's integrity check plus the format's own invariants (every
backend's: the engine's own checks are its ``CheckRepository``'s).

Reports problems as plain sentences naming what is wrong; the CLI exits non-zero on any.
Checks: ``PRAGMA integrity_check``, ``PRAGMA foreign_key_check``, chunks without a file,
chunks of directories or whiteouts, chunk row ids not derived from (inode, idx), chunks
longer than their file's chunk size or reaching past its end, entries whose parent is not a
directory (or missing), names that are not a single path segment, every value that the
read paths would refuse (``vfs_orm.stored``: kinds, modes, sizes, chunk sizes, timestamps and
generations of the wrong type or out of range, content stored as something else than bytes),
and staging rows of unfinished writes (reclaimable, reported as a warning).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vfs_orm import stored
from vfs_orm.backends.sql.statements import CheckRepository, ManifestRepository
from vfs_orm.paths import fold

_BAD_NAME = re.compile(r"[/\x00-\x1f\x7f]")


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(raw: Any, quick: bool, schema_problem: Callable[[Any], str | None], *,
          repo: CheckRepository, manifests: ManifestRepository) -> CheckReport:
    """``schema_problem(raw)``: what is wrong with the tables' shape (see schema.verify_schema).
    ``repo``/``manifests``: the backend's statements for the checks."""
    report = CheckReport()
    integrity = repo.integrity(raw, quick)
    if integrity != ["ok"]:
        report.problems += [f"SQLite integrity check: {line}" for line in integrity[:20]]
        return report  # the rest would read a damaged file
    problem = schema_problem(raw)
    if problem is not None:
        report.problems.append(problem)
        return report  # the row checks assume the tables of the recorded revision
    for row in repo.foreign_keys(raw):
        report.problems.append(f"foreign key violation: {tuple(row)}")
    for cid, inode, idx in repo.orphan_chunks(raw):
        report.problems.append(f"chunk {idx} (row {cid}) belongs to no file (inode {inode})")
    for cid, inode, idx in repo.misnumbered_chunks(raw):
        report.problems.append(f"chunk {idx} of inode {inode} has row id {cid}, "
                               f"not inode * 2**32 + idx")
    for parent, name, kind, n in repo.chunks_of_non_files(raw):
        report.problems.append(f"{_path(parent, name)}: a {_kind(kind)} with {n} chunk(s)")
    for parent, name, idx, length, cs, size in repo.missized_chunks(raw):
        report.problems.append(
            f"{_path(parent, name)}: chunk {idx} holds {length} bytes, chunk size {cs}, "
            f"file size {size}: it does not fit")
    for parent, name, idx, sql_type in repo.content_not_bytes(raw):
        where = "inline bytes" if idx is None else f"chunk {idx}"
        report.problems.append(f"{_path(parent, name)}: {where} stored as {sql_type}, not bytes")
    for parent, name, kind, length, size, cs, chunked in repo.bad_inline(raw):
        why = (f"a {_kind(kind)}" if kind != 1 else "chunk rows beside them" if chunked
               else f"file size {size}, chunk size {cs}")
        report.problems.append(
            f"{_path(parent, name)}: {length} inline bytes, but {why}: they do not fit")
    for ident, parent, name, refs, readers in repo.bad_refs(raw):
        where = f"shared content {ident}" if parent is None else _path(parent, name)
        report.problems.append(f"{where}: reference count {refs!r:.20}, but {readers} "
                               f"file(s) or checkpoint entries read its chunks")
    for parent, name, content in repo.bad_sharers(raw):
        report.problems.append(f"{_path(parent, name)}: shares the content of inode "
                               f"{content!r:.20}, which holds none it can read")
    for ident, base in repo.bad_overlays(raw):
        report.problems.append(f"overlay {ident!r:.20}: reads chunks of inode {base!r:.20}, "
                               f"which it cannot read")
    for ckpt, parent, name, content in repo.bad_checkpoint_sharers(raw):
        report.problems.append(f"checkpoint {ckpt!r:.20}: {_path(parent, name)} shares the "
                               f"content of inode {content!r:.20}, which holds none it can "
                               f"read")
    for ckpt, parent, name in repo.orphan_checkpoint_entries(raw):
        report.problems.append(f"{_path(parent, name)}: an entry of checkpoint {ckpt!r:.20}, "
                               f"which does not exist")
    identity = manifests.identity_row(raw)
    if identity is not None and (type(identity.chunk_size) is not int
                                 or not 0 < identity.chunk_size <= stored.MAX_CHUNK_SIZE):
        report.problems.append(
            f"the manifest's chunk size {identity.chunk_size!r:.40} is not a size")
    rows = repo.entries(raw)
    dirs = {_path(r.parent, r.name) for r in rows if r.kind == 2 and r.parent is not None}
    # Whiteouts hide a lower subtree entry by entry (resolution is by exact path), so a
    # whiteout's parent may be a whiteout too.
    hidden = {_path(r.parent, r.name) for r in rows if r.kind == 3 and r.parent is not None}
    files = dirs_n = whiteouts = staging = 0
    for row in rows:
        parent, name, kind = row.parent, row.name, row.kind
        problem = stored.row_problems(row)
        if problem is not None:
            report.problems.append(f"{_path(parent, name)}: {problem}")
            continue
        if parent is None:
            if row.refs == 0:  # not a hidden holder of shared content
                staging += 1
            continue
        if parent == "" and name == "":
            continue
        path = _path(parent, name)
        if not name or name in (".", "..") or _BAD_NAME.search(name):
            report.problems.append(f"{path!r}: {name!r} is not a valid name")
        if parent not in dirs and not (kind == 3 and parent in hidden):
            report.problems.append(f"{path}: its parent {parent!r} is not a directory")
        if (row.fparent, row.fname) != (fold(parent), fold(name)):
            # A case-insensitive lookup (or a case-insensitive top above) would miss it.
            report.problems.append(f"{path}: its folded key {row.fparent!r:.40}/{row.fname!r:.40} "
                                   f"is not its name's")
        if kind == 1:
            files += 1
        elif kind == 2:
            dirs_n += 1
        else:
            whiteouts += 1
    if staging:
        report.warnings.append(f"{staging} unfinished write(s) of a stopped process: "
                               f"reclaimed at the next writable open")
    n_chunks, chunk_bytes = repo.stored(raw)
    n_inline, inline_bytes = repo.stored_inline(raw)
    report.counts = {"files": files, "directories": dirs_n, "whiteouts": whiteouts,
                     "chunks": n_chunks, "inline_files": n_inline,
                     "stored_bytes": chunk_bytes + inline_bytes + repo.stored_groups(raw)}
    return report


def _path(parent: object, name: object) -> str:
    if not isinstance(parent, str) or not isinstance(name, str):
        return f"entry {parent!r:.40}/{name!r:.40}"
    if parent == "" and name == "":
        return "/"
    return (parent if parent == "/" else parent + "/") + name


def _kind(kind: int) -> str:
    return {1: "file", 2: "directory", 3: "whiteout"}.get(kind, f"kind {kind}")


def counts(raw: Any, repo: CheckRepository, entry_problems: Callable[[Any], Any]
           ) -> dict[str, int]:
    """What ``info()`` counts: entries by kind, logical and stored bytes, chunks, inline
    files, and entries a read would refuse (``check()`` says what is wrong with them)."""
    kinds = {1: 0, 2: 0, 3: 0}
    logical = damaged = 0
    for row in repo.entries(raw):
        if entry_problems(row) is not None:
            damaged += 1
            continue
        parent, kind, size = row.parent, row.kind, row.size
        if parent is None:
            continue
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == 1:
            logical += size
    n_chunks, chunk_bytes = repo.stored(raw)
    n_inline, inline_bytes = repo.stored_inline(raw)
    return {"files": kinds.get(1, 0), "directories": kinds.get(2, 0) - 1,
            "whiteouts": kinds.get(3, 0), "total_bytes": logical,
            "stored_bytes": chunk_bytes + inline_bytes + repo.stored_groups(raw),
            "chunks": n_chunks,
            "damaged_entries": damaged, "inline_files": n_inline}
