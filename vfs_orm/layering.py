"""Layer policy: which underlays a VFS reads through, in which order, and what is refused.

``VFS.add_underlay``, ``remove_underlay``, ``list_layers`` and ``check_layers`` are this
module's, the facade keeping their arguments and their opening of a path: the checks before a
layer changes (the names, ``atomic_batch``, embedded trees), how a source becomes a ``Layer``
(attached by the backend, or foreign: read through a VFS of its own), the patch packs of the
stack (a patch must lie right over the tree it was made from), the zstd dictionaries every
layer's content needs, the stack handed to the unit of work, and the stack recorded in the
manifest with the first write after it changed (what ``check_layers`` compares against).

The functions work on the facade's own state (its ``_layers``, ``_uow``, ``_manifest``, ...):
this module is the facade's, not a layer of its own below it.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import time
import zlib
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vfs_orm.backends import DB_ERRORS, Layer, translate
from vfs_orm.content import Content, Dictionaries
from vfs_orm.errors import (
    ContractError,
    CorruptionError,
    InvalidOperationError,
    PatchBaseError,
    VFSError,
)

if TYPE_CHECKING:
    from vfs_orm.content.deltas import Bases
    from vfs_orm.vfs import VFS


# -- patch packs: their records, and the chain they must form in a stack ----------------
@dataclasses.dataclass(frozen=True)
class PatchRecord:
    """A patch pack's record: the identity (uuid) and content digest of the tree it was made
    from, and the content digest of the tree it makes (``VFS.content_digest``)."""

    base_uuid: str
    base_digest: str
    new_digest: str


def manifest_digest(manifest: Mapping[str, str]) -> str:
    """The content digest of a ``content_manifest``."""
    h = hashlib.sha256()
    for p in sorted(manifest):
        h.update(f"{p}\x00{manifest[p]}\n".encode())
    return h.hexdigest()


def patch_record(row: Any, where: str) -> PatchRecord | None:
    """A patch record read from the manifest (None: not a patch pack), checked."""
    if row is None:
        return None
    base_uuid, base_digest, new_digest, *_ = row
    if not all(isinstance(v, str) and v for v in (base_uuid, base_digest, new_digest)):
        raise CorruptionError.for_path(where, "damaged patch record")
    return PatchRecord(base_uuid, base_digest, new_digest)


def pack_manifest(manifest: dict[str, str], base: Mapping[str, str] | None = None) -> str:
    """A patch's content manifest as stored in its record: base64 of zlib of the JSON; with
    ``base`` (the manifest of the tree the patch is made from), of only what differs from it
    (a tenth of the size on a release that changes a tenth of its files)."""
    if base is None:
        text, tag = json.dumps(manifest, sort_keys=True), "zlib:"
    else:
        changed = {k: v for k, v in manifest.items() if base.get(k) != v}
        gone = sorted(k for k in base if k not in manifest)
        text, tag = json.dumps({"changed": changed, "deleted": gone}, sort_keys=True), "zdiff:"
    return tag + base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def unpack_manifest(row: Any, record: PatchRecord, where: str,
                    base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The content manifest of a stored patch record ``row``, checked against the digest
    ``record`` holds (a damaged one is a CorruptionError; at most 64 MiB is inflated).
    ``base``: the manifest of the tree the patch was made from, needed when the record holds
    only what differs from it (``PatchBaseError`` without it, or with another tree's)."""
    diff = False
    try:
        text = None
        if row is not None:
            _, _, _, stored_text = row  # (base uuid, base digest, new digest, manifest)
            text = stored_text if isinstance(stored_text, str) else None
        diff = text is not None and text.startswith("zdiff:")
        if text is not None and (diff or text.startswith("zlib:")):  # base64 of zlib of JSON
            inflate = zlib.decompressobj()
            text = inflate.decompress(base64.b64decode(text.partition(":")[2], validate=True),
                                      64 << 20).decode()
            if not inflate.eof:
                raise ValueError("a manifest past 64 MiB")
        manifest = json.loads(text) if text is not None else None
    except (ValueError, zlib.error):
        manifest = None
    if diff:
        manifest = _apply_diff(manifest, _base_of(base, record, where))
    if not isinstance(manifest, dict) or \
            not all(isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()) \
            or manifest_digest(manifest) != record.new_digest:
        raise CorruptionError.for_path(where, "damaged patch record (its manifest does not "
                                              "match its digest)")
    return manifest


def _base_of(base: Mapping[str, str] | None, record: PatchRecord,
             where: str) -> Mapping[str, str]:
    if base is None:
        raise PatchBaseError.for_path(where, "this patch records its tree as the changes to "
                                             "its base's: give the base's content manifest")
    if manifest_digest(base) != record.base_digest:
        raise PatchBaseError.for_path(where, "that manifest is not the one of the tree this "
                                             "patch was made from")
    return base


def _apply_diff(diff: Any, base: Mapping[str, str]) -> dict[str, str] | None:
    """``base`` with a stored diff's changes (None: not a diff of this shape)."""
    if not isinstance(diff, dict) or set(diff) != {"changed", "deleted"} \
            or not isinstance(diff["changed"], dict) or not isinstance(diff["deleted"], list):
        return None
    out = dict(base)
    for gone in diff["deleted"]:
        if isinstance(gone, str):
            out.pop(gone, None)
    out.update(diff["changed"])
    return out


# -- the stack ---------------------------------------------------------------------------
def check_new(vfs: VFS, name: str | None, priority: int) -> str:
    """Refuse a layer change before anything is opened; the new layer's name."""
    uow = vfs._live_uow()
    backend = vfs._backend
    if not backend.capabilities.layers:
        raise VFSError.for_path(vfs._where, f"layers are not available on "
                                            f"{backend.capabilities.name} yet")
    if vfs._embedded:
        raise VFSError.for_path(vfs._db_path, "layers need a VFS that owns its database "
                                              "(not VFS(engine=...) or VFS(session=...))")
    if vfs._view is not None:
        raise InvalidOperationError.for_path(vfs._db_path, "a checkpoint's view takes no "
                                                           "underlays")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError("priority must be an int")
    if name is None:
        name = f"underlay_{len(vfs._layers)}"
    if not isinstance(name, str) or not name:
        raise ContractError.for_path(None, "layer name must be a non-empty string")
    if name == "local":
        raise ValueError("the name 'local' is reserved for this VFS's own layer")
    if any(lay.name == name for lay in vfs._layers):
        raise ValueError(f"Underlay with name '{name}' already exists")
    if uow.in_batch():
        raise VFSError.for_path(vfs._db_path, "layers cannot change inside atomic_batch")
    return name


def attach(vfs: VFS, source: VFS, owned: bool, name: str, priority: int) -> str:
    """Put ``source`` under ``vfs`` as layer ``name`` (``owned``: opened for it, closed with
    it or on failure)."""
    uow = vfs._live_uow()
    try:
        if source._view is not None:  # attached by its file, it would be the live tree
            raise InvalidOperationError.for_path(
                source._db_path, "a checkpoint's view cannot be an underlay (restore the "
                                 "checkpoint, or save the view with to_bytes() first)")
        ident = source.identity
        reader = source._live_uow()
        alias = vfs._backend.underlay_schema(uow.engine, source._backend, reader.engine,
                                             vfs._alias_counter + 1)
        if alias is None and reader.shared:
            raise VFSError.for_path(
                source._where, "an in-memory database can only be an underlay of a SQLite "
                               "database (save it to a file first)")
    except BaseException:
        if owned:
            source.close()
        raise
    vfs._alias_counter += 1
    if alias is None:  # foreign: read through its own VFS (see backends/sqlite/stack.py)
        layer = Layer(name=name, priority=priority, alias=f"l{vfs._alias_counter}",
                      uri="", db_path=source._where, uuid=ident.get("uuid"),
                      source=source, reader=reader, owned=owned)
    else:
        layer = Layer(name=name, priority=priority, alias=alias, uri=source._ro_uri,
                      db_path=source._where, uuid=ident.get("uuid"),
                      source=None if owned else source)
        if owned:
            source.close()
    try:
        if source._patch is not None:
            vfs._layer_patch[name] = source._patch
        if source._groups:
            vfs._layer_groups.add(name)
        check_patches(vfs, sorted(vfs._layers + [layer], key=lambda lay: -lay.priority),
                      {name: source})
        if (source._patch is not None or source._groups) and vfs._read_content.bases is None:
            rebind(vfs, vfs._content)  # deltas and slices are read with bases from now on
        if source._content.dicts is not None:
            vfs._layer_dicts[name] = source._content.dicts
            vfs._read_content = replace(vfs._read_content, dicts=stack_dictionaries(vfs))
        set_layers(vfs, vfs._layers + [layer])
    except BaseException:
        vfs._layer_patch.pop(name, None)
        vfs._layer_groups.discard(name)
        vfs._layer_digest.pop(name, None)
        if vfs._layer_dicts.pop(name, None) is not None:
            vfs._read_content = replace(vfs._read_content, dicts=stack_dictionaries(vfs))
        if layer.owned:
            source.close()
        raise
    return name


def remove(vfs: VFS, name: str) -> bool:
    """Take layer ``name`` out of the stack; whether it was there."""
    uow = vfs._live_uow()
    if not isinstance(name, str) or not name:
        raise ContractError.for_path(None, "layer name must be a non-empty string")
    if uow.in_batch():
        raise VFSError.for_path(vfs._db_path, "layers cannot change inside atomic_batch")
    keep = [lay for lay in vfs._layers if lay.name != name]
    if len(keep) == len(vfs._layers):
        return False
    gone = [lay for lay in vfs._layers if lay.name == name]
    check_patches(vfs, sorted(keep, key=lambda lay: -lay.priority), {})
    vfs._layer_patch.pop(name, None)
    vfs._layer_groups.discard(name)
    vfs._layer_digest.pop(name, None)
    if vfs._layer_dicts.pop(name, None) is not None:
        vfs._read_content = replace(vfs._read_content, dicts=stack_dictionaries(vfs))
    set_layers(vfs, keep)
    for lay in gone:
        if lay.owned:
            lay.source.close()
    return True


def delta_bases(vfs: VFS) -> Bases | None:
    """The bases deltas and slices are read with: only patch packs hold deltas, and solid
    packs groups, so a stack without either reads without (and its statements stay the ones
    every such VFS of the process shares)."""
    return vfs._bases if vfs._patch is not None or vfs._layer_patch or vfs._writes_deltas \
        or vfs._groups or vfs._layer_groups else None


def write_deltas(vfs: VFS) -> None:
    """``vfs`` is becoming a patch (``make_patch``): read its deltas before it is one."""
    vfs._writes_deltas = True
    use_content(vfs, vfs._content)


def use_content(vfs: VFS, content: Content) -> None:
    """Write new content of ``vfs`` with ``content`` from now on (its dictionaries or patch
    record changed): the statements, the namespace's and the stack's readers are made again
    with it."""
    rebind(vfs, content)
    set_layers(vfs, vfs._layers)


def rebind(vfs: VFS, content: Content) -> None:
    """``use_content`` up to the stack, which the caller hands over."""
    bases = delta_bases(vfs)
    vfs._content = replace(content, bases=bases)
    vfs._read_content = replace(vfs._read_content, dicts=stack_dictionaries(vfs), bases=bases)
    vfs._repo = vfs._backend.inode_statements(content=vfs._content)
    vfs._tree.repo = vfs._tree.resolver.repo = vfs._checkpoints.repo = vfs._repo


def set_layers(vfs: VFS, layers: list[Layer]) -> None:
    """Hand the stack ``layers`` (by descending priority) to the unit of work, attached now
    so that a bad underlay fails here; the first write after records it."""
    uow = vfs._live_uow()
    # Stable sort: equal priorities keep the order they were added in.
    ordered = sorted(layers, key=lambda lay: -lay.priority)
    with uow.lock:
        vfs._layers = ordered
        old = uow.stack
        if ordered:
            vfs._may_hide = True  # writes over underlays may white out their entries
        uow.stack = vfs._backend.layer_stack(old.version + 1, tuple(ordered),
                                             vfs._per_connection, old.busy_timeout,
                                             vfs._read_content, vfs._folded, vfs._may_hide)
        try:
            uow.view()  # attach now, so a bad underlay fails here and not later
        except DB_ERRORS as exc:
            vfs._layers = list(old.layers)
            uow.stack = old
            uow.view()
            raise translate(exc, vfs._db_path) from exc
        if not vfs._read_only:
            uow.before_write = recorder(vfs)


def recorder(vfs: VFS) -> functools.partial[None]:
    """What the unit of work runs inside the first write transaction after the stack
    changed: ``record_stack`` of ``vfs``."""
    return functools.partial(record_stack, vfs)


def record_stack(vfs: VFS, raw: Any) -> None:
    """Record the stack in the manifest (inside a write transaction, see uow)."""
    vfs._manifest.record_stack(
        raw, [(lay.uuid, lay.name, lay.priority, lay.db_path) for lay in vfs._layers],
        time.time_ns(), vfs._may_hide)


def listed(vfs: VFS) -> list[dict[str, Any]]:
    """``list_layers``: local first, then the underlays in resolution order."""
    out = [{"name": "local", "priority": float("inf"), "db_path": vfs._db_path,
            "writable": not vfs._read_only, "uuid": vfs.identity.get("uuid")}]
    out += [{"name": lay.name, "priority": lay.priority, "db_path": lay.db_path,
             "writable": False, "uuid": lay.uuid} for lay in vfs._layers]
    return out


def check(vfs: VFS) -> list[dict[str, Any]]:
    """``check_layers``: the attached underlays against the stack recorded in the manifest."""
    uow = vfs._live_uow()
    with uow.read_lock:
        recorded = vfs._manifest.recorded_stack(uow.raw())
    current_by_uuid = {lay.uuid: lay for lay in vfs._layers}
    current_by_name = {lay.name: lay for lay in vfs._layers}
    seen = set()
    problems = []
    for name, uuid_, _prio, db_path in recorded:
        if uuid_ in current_by_uuid:
            seen.add(uuid_)
            continue
        now = current_by_name.get(name)
        if now is not None:
            seen.add(now.uuid)
            problems.append({"problem": "changed", "name": name, "recorded_uuid": uuid_,
                             "current_uuid": now.uuid, "db_path": now.db_path})
        else:
            problems.append({"problem": "missing", "name": name, "recorded_uuid": uuid_,
                             "current_uuid": None, "db_path": db_path})
    for lay in vfs._layers:
        if lay.uuid not in seen:
            problems.append({"problem": "added", "name": lay.name, "recorded_uuid": None,
                             "current_uuid": lay.uuid, "db_path": lay.db_path})
    return problems


def stack_dictionaries(vfs: VFS) -> Dictionaries | None:
    """The dictionaries of this database and of every underlay (an id used by two
    different dictionaries is a CorruptionError)."""
    merged = vfs._content.dicts
    for dicts in vfs._layer_dicts.values():
        merged = dicts.merged(None) if merged is None else merged.merged(dicts)
    if merged is not None and vfs._content.dicts is None:
        merged.writer = None
    return merged


def check_patches(vfs: VFS, ordered: list[Layer], fresh: dict[str, VFS],
                  top: PatchRecord | None = None) -> None:
    """Refuse a stack where a patch pack does not lie right over the tree it was made
    from: the layer below it must be a patch that made that tree, or a database whose
    content digest is the one the patch recorded (``PatchBaseError``). A patch opened
    alone (to inspect it) is allowed."""
    chain: list[tuple[str, PatchRecord | None, Layer | None]] = [
        ("local", vfs._patch if top is None else top, None)]
    chain += [(lay.name, vfs._layer_patch.get(lay.name), lay) for lay in ordered]
    for at, (name, patch, _lay) in enumerate(chain):
        if patch is None or (at == 0 and len(chain) == 1):
            continue
        if at + 1 >= len(chain):
            raise PatchBaseError.for_path(
                vfs._where, f"layer {name!r} is a patch of {patch.base_digest[:16]}... and "
                            f"lies over nothing: add its base first (at a lower priority)")
        below_name, below_patch, below = chain[at + 1]
        have = below_patch.new_digest if below_patch is not None \
            else _digest_of_layer(vfs, below, fresh)
        if have != patch.base_digest:
            raise PatchBaseError.for_path(
                vfs._where, f"layer {name!r} is a patch of the tree with content digest "
                            f"{patch.base_digest[:16]}..., but the layer below it "
                            f"({below_name!r}) has {have[:16]}...: refused")


def _digest_of_layer(vfs: VFS, lay: Layer | None, fresh: dict[str, VFS]) -> str:
    if lay is None:
        return vfs.content_digest()
    known = vfs._layer_digest.get(lay.name)
    if known is not None:
        return known
    source = fresh.get(lay.name) or lay.source
    if source is not None and not source.closed:
        digest = source.content_digest()
    else:
        with vfs._open_reader(lay.db_path) as opened:
            digest = opened.content_digest()
    vfs._layer_digest[lay.name] = digest
    return digest
