"""Patch packs: ship an update as the difference between two packs.

``make_patch(OLD, NEW, PATCH)`` writes PATCH, a regular vfs_orm pack meant to lie right over
OLD: the files NEW added or changed, whiteouts for what NEW deleted, and a record of the
tree it was made from (OLD's uuid and content digest) and of the tree it makes (NEW's
content manifest and digest, see ``VFS.content_manifest``). A changed file is stored as a
binary delta against OLD's version wherever that is smaller (format 0008, a chunk at a time:
zstd with OLD's bytes as a raw-content dictionary, as ``zstd --patch-from`` does; see
``vfs_orm.content.deltas``), else whole and zstd-compressed. A stack [PATCH over OLD] then
reads as NEW; a stack where PATCH lies over anything else is refused with ``PatchBaseError``
when it is composed, before any read. Patches chain: a patch made from 1.1 lies over [patch
1.1 over 1.0].

``apply_patch(OLD, PATCH)`` flattens PATCH into OLD in one transaction (or into a new file):
the result is checked against NEW's digest before it is committed, so a failed or killed apply
leaves OLD as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from vfs_orm import layering, special
from vfs_orm.content.codec import DELTA_BASE_MAX, DICT_VALUES, Base, dictionary_size
from vfs_orm.content.deltas import rebase
from vfs_orm.copying import entry_pieces, write_entry
from vfs_orm.dictionaries import SAMPLE_BYTES
from vfs_orm.errors import ContractError, CorruptionError, PatchBaseError
from vfs_orm.vfs import VFS, manifest_digest

#: Files per transaction is not a thing here: a patch is written, and applied, in one.
Progress = Callable[[int], None]  # files done
#: A patch's chunk size: a delta is made a chunk at a time, and each frame starts its own
#: statistics; on a rebuilt 1.4 MB extension module 64 KiB chunks made a delta twice the size
#: of one made whole, 1 MiB ones within 2% of it.
PATCH_CHUNK = 1 << 20
#: A patch's page size: most of a small patch is pages its tables start with (a 4 KiB page
#: each) and part-filled pages of small rows.
PATCH_PAGE = 512


@dataclass
class PatchReport:
    added: int = 0
    changed: int = 0
    deleted: int = 0
    dirs: int = 0
    #: Changed files stored (at least in part) as deltas against OLD's version, and the bytes
    #: that saved against storing them whole.
    deltas: int = 0
    delta_saved: int = 0
    base_digest: str = ""
    new_digest: str = ""


def make_patch(old: str | os.PathLike[str], new: str | os.PathLike[str],
               patch: str | os.PathLike[str], *, compression_level: int = 19,
               dictionary: bool = False) -> PatchReport:
    """Write the patch pack ``patch`` (replaced atomically) that turns ``old`` into ``new``
    (both vfs_orm databases, read as they are). ``compression_level``: zstd's (19: a patch is
    made once and downloaded many times); ``dictionary``: the patch is also made with a
    dictionary trained first on the files it adds (not those likely to be deltas, see
    ``_new_files``), and whichever file is smaller is kept, with its report (a patch holds
    few values, mostly deltas, which a dictionary does not shrink: it pays only for many
    similar new files)."""
    report = PatchReport()  # the digests, shared by both tries
    patch = os.fspath(patch)
    tmp = f"{patch}.making-{os.getpid()}"
    tries = [tmp, f"{tmp}-dict"] if dictionary else [tmp]
    for path in tries:
        _remove(path)
    try:
        with VFS(old, read_only=True) as o, VFS(new, read_only=True) as n:
            before, after = o.content_manifest(), n.content_manifest()
            report.base_digest = manifest_digest(before)
            report.new_digest = manifest_digest(after)
            reports = {}
            for k, path in enumerate(tries):
                samples = _new_files(n, before, after) if k == 1 else None
                reports[path] = PatchReport(base_digest=report.base_digest,
                                            new_digest=report.new_digest)
                _write_patch(os.fspath(old), o, n, path, before, after, reports[path],
                             compression_level, samples)
        smallest = min((t for t in tries if os.path.exists(t)), key=os.path.getsize)
        _durably_replace(smallest, patch)
    finally:
        for path in tries:
            _remove(path)
    return reports[smallest]  # what the kept file holds (its deltas' savings differ)


def _new_files(n: VFS, before: dict[str, str], after: dict[str, str]) -> list[bytes]:
    """The bytes of the regular files ``after`` adds, up to ``DICT_VALUES`` each and
    ``dictionaries.SAMPLE_BYTES`` in all: what a patch's dictionary is trained on (a changed
    file, or an added one with the name of one of OLD's, is likely a delta, which a
    dictionary does not shrink)."""
    old_names = {k.rpartition("/")[2] for k, v in before.items() if v != "dir"}
    out: list[bytes] = []
    held = 0
    for k in sorted(after):
        v = after[k]
        if v == "dir" or k in before or ":" in v or k.rpartition("/")[2] in old_names:
            continue  # ":": a link or a node ("link:...")
        st = n.stat(k)
        if 0 < st.st_size <= DICT_VALUES and held + st.st_size <= SAMPLE_BYTES:
            out.append(n.read_bytes(k))
            held += st.st_size
    return out


def _write_patch(old: str, o: VFS, n: VFS, tmp: str, before: dict[str, str],
                 after: dict[str, str], report: PatchReport, level: int,
                 samples: list[bytes] | None) -> None:
    """The patch from ``o`` (the database ``old``) to ``n`` into the new file ``tmp``;
    ``samples``: with a dictionary trained on them first (none is written, and ``tmp`` is
    not made, if they are too few to train on)."""
    with VFS(tmp, compression="zstd", compression_level=level, durable=False,
             chunk_size=PATCH_CHUNK, page_size=PATCH_PAGE) as p:
        if samples is not None:
            try:  # the everyday size (a fiftieth): a patch's new files are all it holds
                p.train_dictionary(samples, recompress=False,
                                   size=dictionary_size(sum(map(len, samples))))
            except ContractError:  # too little to train on: only the patch without one
                p.close()
                _remove(tmp)
                return
        p.add_underlay(old, name="base")
        layering.write_deltas(p)
        with p.atomic_batch():
            _remove_gone(p, before, after, report)
            _write_changes(n, p, before, after, report, base=o)
            if p.content_manifest() != after:
                raise CorruptionError.for_path(tmp, "the patch does not read as NEW")
        p._record_patch(o.identity.get("uuid") or "", report.base_digest, after, before)
        p.compact()  # what the whiteouts' batch freed: a patch is downloaded


def _durably_replace(tmp: str, path: str) -> None:
    """``tmp`` (written without a sync per commit) becomes ``path`` only once its bytes are on
    disk, and the rename is made durable too: a power cut leaves the old PATCH or the new."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def apply_patch(old: str | os.PathLike[str], patch: str | os.PathLike[str], *,
                output: str | os.PathLike[str] | None = None,
                progress: Progress | None = None) -> PatchReport:
    """Apply ``patch`` to ``old``: in place, in one transaction, or into the new file
    ``output`` (``old`` untouched). The result is checked against the content digest the
    patch records before it is committed (``CorruptionError`` otherwise, nothing changed).

    Raises:
        PatchBaseError: ``patch`` is not a patch of ``old``'s content.
    """
    old = os.fspath(old)
    if output is not None:
        output = os.fspath(output)
        tmp = f"{output}.applying-{os.getpid()}"
        _remove(tmp)
        try:
            with VFS(old, read_only=True) as o, open(tmp, "wb") as f:
                for block in o.serialize_iter():
                    f.write(block)
            report = apply_patch(tmp, patch, progress=progress)
            os.replace(tmp, output)
        finally:
            _remove(tmp)
        return report
    report = PatchReport()
    # OLD is opened first and closed last: the patch's read-only view of it must be gone by
    # then, so that closing OLD's writer folds its log into the file (WAL).
    with VFS(old) as o, VFS(patch, read_only=True) as p:
        record = p.patch
        before = o.content_manifest()
        report.base_digest, report.new_digest = manifest_digest(before), record.new_digest \
            if record else ""
        if record is None or report.base_digest != record.base_digest:
            raise PatchBaseError.for_path(old, "this patch was not made from this tree "
                                               "(content digests differ): refused")
        after = p.patch_manifest(base=before)
        # NEW is read as [PATCH over OLD]: deltas find their bases in OLD as it was (its own
        # connection reads the last commit, not this transaction's changes).
        p.add_underlay(old, name="base")
        with o.atomic_batch():
            _remove_gone(o, before, after, report)
            _write_changes(p, o, before, after, report, progress)
            if manifest_digest(o.content_manifest()) != report.new_digest:
                raise CorruptionError.for_path(old, "the patched tree does not match the "
                                                    "patch's manifest: nothing changed")
    return report


def _remove_gone(dst: VFS, before: dict[str, str], after: dict[str, str],
                 report: PatchReport) -> None:
    """Remove from ``dst`` what ``after`` no longer has, and what changed between file and
    directory: the topmost such paths (their subtrees go with them)."""
    for k in sorted((k for k, v in before.items()
                     if k not in after or (v == "dir") != (after[k] == "dir")), key=len):
        if dst.exists(k):
            if before[k] == "dir":
                dst.rmtree(k)
            else:
                dst.remove(k)
            report.deleted += 1


def _write_changes(src: VFS, dst: VFS, before: dict[str, str], after: dict[str, str],
                   report: PatchReport, progress: Progress | None = None,
                   base: VFS | None = None) -> None:
    """Write into ``dst`` every directory and file of ``after`` that ``before`` does not
    have as it is, from ``src`` (bytes, mode and mtime); ``base``: the tree ``before``
    describes, whose version of a changed file the new one is stored as a delta against
    where that is smaller."""
    done = 0
    by_name: dict[str, list[str]] = {}  # OLD's files by name, for added files' bases
    if base is not None:
        for k, v in before.items():
            if v != "dir":
                by_name.setdefault(k.rpartition("/")[2], []).append(k)
    for k in sorted(after):
        v = after[k]
        if v == "dir":
            if before.get(k) != "dir":
                dst.makedirs(k, exist_ok=True)
                report.dirs += 1
        elif before.get(k) != v:
            st = src.stat(k)
            regular = special.kind_of(st.st_mode) == special.REGULAR
            if not regular:  # a link or a node (0010): written as such, never a delta
                write_entry(dst, k, st.st_mode, entry_pieces(src, k, st.st_mode),
                            dst.exists(k))
                dst.chmod(k, st.st_mode & 0o7777)
                dst.utime(k, ns=(st.st_mtime_ns, st.st_mtime_ns))
            else:
                dst.write_bytes(k, src.read_bytes(k), mode=st.st_mode & 0o7777,
                                mtime_ns=st.st_mtime_ns)
            if st.owner_uid is not None or st.owner_gid is not None:  # as the mode: carried
                dst._set_owner(k, st.owner_uid, st.owner_gid)
            if k in before and before[k] != "dir":
                report.changed += 1
                if base is not None and regular:
                    _store_delta(dst, k, base, k, report)
            else:
                report.added += 1
                similar = _similar(k, by_name, after)
                if base is not None and similar is not None and regular:  # e.g. moved
                    _store_delta(dst, k, base, similar, report)
            done += 1
            if progress is not None:
                progress(done)


def _similar(path: str, by_name: dict[str, list[str]], after: dict[str, str]) -> str | None:
    """A file of OLD an added file may be a new version of: one of the same name, preferably
    one NEW no longer has (moved), then the one whose directories end most alike."""
    head, _, name = path.rpartition("/")
    parts = head.split("/")

    def likeness(other: str) -> tuple[bool, int, str]:
        theirs = other.rpartition("/")[0].split("/")
        same = 0
        while same < min(len(parts), len(theirs)) and parts[-1 - same] == theirs[-1 - same]:
            same += 1
        return other not in after, same, other

    found = by_name.get(name)
    return max(found, key=likeness) if found else None


def _store_delta(patch: VFS, path: str, base: VFS, base_path: str,
                 report: PatchReport) -> None:
    """Store the file ``path`` of ``patch`` (just written whole) as deltas against
    ``base``'s file ``base_path`` where that is smaller; only against a version the patch's
    stack can find again by its stored digest (the one the delta names)."""
    was = base.stat(base_path)
    if was.st_size > DELTA_BASE_MAX or special.kind_of(was.st_mode) != special.REGULAR:
        return  # too big a base, or a link or node (0010): never a delta's base
    old = Base(base.read_bytes(base_path))
    try:
        if patch._bases.base(old.digest).data != old.data:
            return
    except PatchBaseError:  # OLD's copy has no stored digest (written in place since)
        return
    node = patch._tree.require(patch._path(path))
    with patch._live_uow().write() as raw:
        made, saved = rebase(patch._manifest, raw, node.id, patch._content, old)
    if made:
        report.deltas += 1
        report.delta_saved += saved


__all__ = ["PatchReport", "apply_patch", "make_patch"]
