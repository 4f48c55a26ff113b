"""The composition root of a ``VFS``: what its constructor builds, in order.

The database is opened (or a host's engine or session joined) by its backend, its format
checked or created (``prepare``, with the manifest of a new database), the chunk size,
compression, case folding and zstd dictionaries recorded in it read back and checked against
what was asked, then the unit of work, the content codecs, the namespace (``Tree``), the
checkpoints and the layer stack (empty: ``vfs_orm.layering`` changes it) are made. Every
failure on the way disposes of what was opened and surfaces as a ``VFSError``.

``compose`` fills the facade's own state (its ``_uow``, ``_tree``, ...): this module is the
facade's, not a layer of its own below it.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from vfs_orm import layering
from vfs_orm.backends import DB_ERRORS, SQLITE, backend_for, translate
from vfs_orm.content import (
    CODECS,
    Content,
    Dictionaries,
    Dictionary,
    compression_codec,
    compression_name,
)
from vfs_orm.content import (
    compression_level as check_level,
)
from vfs_orm.content.codec import keep
from vfs_orm.content.deltas import Bases
from vfs_orm.errors import ContractError, CorruptionError, InvalidPathError
from vfs_orm.models import LayerManifest
from vfs_orm.namespace.checkpoints import Checkpoints
from vfs_orm.namespace.tree import Tree
from vfs_orm.uow import UnitOfWork

if TYPE_CHECKING:
    from vfs_orm.vfs import VFS

DEFAULT_CHUNK_SIZE = 65536
MIN_CHUNK_SIZE = 512
MAX_CHUNK_SIZE = 64 * 1024 * 1024


def compose(vfs: VFS, db_path: Any, chunk_size: int | None, read_only: bool,
            page_size: int | None, durable: bool, busy_timeout: float, engine: Any,
            session: Any, image: bytes | None, tree: str | None = None,
            compression: str | None = None, verify: bool = True,
            case_insensitive: bool | None = None,
            compression_level: int | None = None, checkpoint: int | None = None) -> None:
    """Build ``vfs``'s state: open (or join) the database, check or create its format, and
    make the unit of work, the content codecs, the namespace (``Tree``), the checkpoints and
    the (empty) layer stack. ``checkpoint``: the id of the checkpoint the (read-only) tree
    is, read in place (``VFS.open_checkpoint``). A failure closes what was opened and leaves
    ``vfs`` closed."""
    vfs._uow = None
    vfs._view = checkpoint
    vfs._compression = compression
    vfs._layer_dicts = {}
    #: Patch packs of the stack (see vfs_orm.patching): this one's record, each layer's,
    #: and the content digests of plain layers under a patch, computed once.
    vfs._patch = None
    vfs._layer_patch = {}
    vfs._layer_digest = {}
    #: Whether this database holds groups (format 0013, solid packs), and which layers do:
    #: their slices are read with the stack's bases.
    vfs._groups = False
    vfs._layer_groups = set()
    if compression_level is not None and (not isinstance(compression_level, int)
                                          or isinstance(compression_level, bool)):
        raise TypeError("compression_level must be an int")
    if case_insensitive is not None and not isinstance(case_insensitive, bool):
        raise TypeError("case_insensitive must be a bool")
    vfs._case_insensitive = case_insensitive
    vfs._folded = False
    wanted_codec = compression_codec(compression)  # a bad name fails before any I/O
    if compression_level is not None and (
            compression is not None or (isinstance(db_path, (str, os.PathLike))
                                        and "://" not in os.fspath(db_path)
                                        and not os.path.exists(db_path))):
        check_level(wanted_codec, compression_level)  # ... and a bad level
    if isinstance(db_path, os.PathLike):
        db_path = os.fspath(db_path)
    if not isinstance(db_path, str):
        raise TypeError(f"db_path must be str or os.PathLike, not {type(db_path).__name__}")
    if "\x00" in db_path:
        raise InvalidPathError.for_path(db_path, "database path contains NUL")
    if chunk_size is not None:
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
            raise TypeError("chunk_size must be an int")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ContractError.for_path(
                db_path, f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}")
    if page_size is not None and (page_size < 512 or page_size > 65536
                                  or page_size & (page_size - 1)):
        raise ContractError.for_path(db_path, "page_size must be a power of two, 512..65536")
    if engine is not None and session is not None:
        raise ValueError("pass an engine or a session, not both")
    vfs._read_only = bool(read_only)
    vfs._layers = []
    vfs._alias_counter = 0
    vfs._embedded = engine is not None or session is not None
    host = None
    if vfs._embedded:
        host = engine if engine is not None else session.get_bind()
    backend = vfs._backend = backend_for(None if vfs._embedded else db_path, host, tree,
                                         checkpoint)
    keep_alive = None
    if host is not None:
        engine = host
        vfs._db_path = db_path = str(host.url.database or ":memory:")
        memory = db_path in ("", ":memory:") and host.dialect.name == "sqlite"
        try:
            backend.check_host(host)
        except DB_ERRORS as exc:
            raise translate(exc, db_path) from exc
        vfs._ro_uri = ""
    else:
        vfs._db_path = db_path
        opened = backend.open_engine(db_path, read_only=read_only, durable=durable,
                                     busy_timeout=busy_timeout, image=image, tree=tree,
                                     checkpoint=checkpoint)
        engine, memory, keep_alive = opened.engine, opened.memory, opened.keep_alive
        # How another VFS attaches this one as an underlay: read-only at the SQLite level
        # (a checkpoint's view is none: attached by its URI it would be the live tree).
        vfs._ro_uri = opened.read_only_uri if checkpoint is None else ""
    if backend is not SQLITE:
        # Errors name the server (never its password) and the tree.
        db_path = _where_of(vfs, engine)
    vfs._where = db_path
    try:
        if session is not None:
            db_chunk = _prepare(vfs, session.connection(), True, read_only, page_size,
                                chunk_size or DEFAULT_CHUNK_SIZE)
        else:
            with engine.connect() as conn, backend.own_transactions(conn):
                db_chunk = _prepare(vfs, conn, memory, read_only, page_size,
                                    chunk_size or DEFAULT_CHUNK_SIZE)
    except DB_ERRORS as exc:
        if not vfs._embedded:
            engine.dispose()
        raise translate(exc, db_path) from exc
    except BaseException:
        if not vfs._embedded:
            engine.dispose()
        raise
    finally:
        if keep_alive is not None:
            keep_alive.close()  # the engine's own connection holds the memdb now
    vfs._chunk_size = chunk_size or db_chunk
    try:
        codec = _stored_codec(vfs, wanted_codec)
        level = check_level(codec, compression_level) \
            if compression_level is not None else None
        vfs._folded = _stored_folding(vfs)
    except BaseException:
        if not vfs._embedded:
            engine.dispose()
        raise
    vfs._uow = UnitOfWork(engine, shared=memory, read_only=read_only, where=db_path,
                          owns_engine=not vfs._embedded, session=session,
                          backend=backend)
    vfs._uow.retry_for = busy_timeout
    vfs._manifest = backend.manifest_statements()
    try:
        with vfs._uow.read_lock:
            own = _load_dictionaries(vfs, vfs._uow.raw())
            vfs._patch = layering.patch_record(vfs._manifest.patch_record(vfs._uow.raw()),
                                               vfs._where)
            vfs._groups = vfs._manifest.holds_groups(vfs._uow.raw())
    except DB_ERRORS as exc:
        vfs._uow.close()
        raise translate(exc, db_path) from exc
    #: How this database's content is written (its compression, level and dictionary)
    #: and read (verified?), and how the stack's is read (with every layer's dictionaries).
    #: Deltas of patch packs find their bases in the stack (bound to it once the tree is);
    #: only a stack with a patch in it reads with them (see ``layering.delta_bases``).
    vfs._bases = Bases()
    vfs._writes_deltas = False
    bases = layering.delta_bases(vfs)
    vfs._content = Content(codec, bool(verify), level=level, dicts=own, bases=bases)
    vfs._read_content = Content(verify=bool(verify), dicts=own, bases=bases)
    vfs._repo = backend.inode_statements(content=vfs._content)
    vfs._tree = Tree(vfs._uow, vfs._repo, vfs._chunk_size)
    vfs._bases.sources = vfs._tree.resolver.sources
    vfs._checkpoints = Checkpoints(vfs._uow, vfs._repo, vfs._tree.content)
    try:
        vfs._per_connection = backend.attach_limit(vfs._uow.raw())
    except DB_ERRORS as exc:
        vfs.close()
        raise translate(exc, db_path) from exc
    try:
        with vfs._uow.read_lock:
            vfs._may_hide = vfs._manifest.may_hold_whiteouts(vfs._uow.raw())
    except DB_ERRORS as exc:
        vfs.close()
        raise translate(exc, db_path) from exc
    vfs._uow.stack = backend.layer_stack(0, (), vfs._per_connection, busy_timeout,
                                         vfs._read_content, vfs._folded,
                                         vfs._may_hide)
    if not read_only:
        # The first write of this session records the stack the save is made with.
        vfs._uow.before_write = layering.recorder(vfs)
    if not read_only and not memory and session is None:
        try:
            vfs._tree.reclaim_staging()
        except DB_ERRORS as exc:
            vfs.close()
            raise translate(exc, db_path) from exc


def _where_of(vfs: VFS, engine: Any) -> str:
    url = engine.url.render_as_string(hide_password=True)
    return f"{url}#{vfs._backend.source_tree or ''}"


def _prepare(vfs: VFS, conn: Any, memory: bool, read_only: bool, page_size: int | None,
             chunk_size: int) -> int:
    """Check or create the format on ``conn``; returns the database's chunk size."""
    backend = vfs._backend

    def on_create(c: Any) -> None:
        # Metadata through the ORM, inside the migration's transaction.
        now = time.time_ns()
        with Session(bind=c) as session:
            backend.manifest_statements().add(session, LayerManifest(
                role="self", uuid=str(uuid.uuid4()), name=None, version=None,
                description=None, created_ns=now, modified_ns=now, chunk_size=chunk_size,
                compression=compression_name(compression_codec(vfs._compression)),
                case_insensitive=1 if vfs._case_insensitive else None))

    row = backend.prepare(conn, where=vfs._where, memory=memory, read_only=read_only,
                          embedded=vfs._embedded, page_size=page_size,
                          on_create=on_create)
    vfs._stored_compression = None if row is None else row.compression
    vfs._stored_ci = None if row is None else row.case_insensitive
    stored_size = None if row is None else row.chunk_size
    if type(stored_size) is int and MIN_CHUNK_SIZE <= stored_size <= MAX_CHUNK_SIZE:
        return stored_size
    # Missing or damaged (check() reports it): new files get the default chunk size;
    # every existing file keeps its own.
    return DEFAULT_CHUNK_SIZE


def _stored_codec(vfs: VFS, wanted: int) -> int:
    """The codec new content of this database is written with: the compression recorded
    at its creation (a compression asked for must be that one)."""
    name = vfs._stored_compression
    if name is not None and name not in CODECS:
        raise CorruptionError.for_path(vfs._where, f"damaged database: unknown "
                                                   f"compression {name!r:.40}")
    codec = compression_codec(name)
    if vfs._compression is not None and wanted != codec:
        raise ContractError.for_path(
            vfs._where, f"compression is chosen when a database is created: this one "
                        f"stores {name or 'uncompressed'} content")
    return codec


#: Stored dictionaries loaded in this process, by their rows (id, digest and bytes, exactly
#: as read): a database opened again, or another storing the same dictionaries, gets the same
#: ``Dictionaries``. Its statements are compiled once per ``Content``, which compares its
#: dictionaries by identity: without this, every open of a pack with a dictionary compiled
#: them again (about 30 ms, as long as reading mpl-data's 204 files). A few sets are kept.
#: A shared set names, in its errors, the database it was first loaded from (same bytes).
_LOADED: dict[tuple[Any, ...], Dictionaries] = {}
_LOADED_MAX = 16


def _load_dictionaries(vfs: VFS, raw: Any) -> Dictionaries | None:
    """This database's stored dictionaries (None: it has none); the newest compresses
    new small values. Checked when first used."""
    rows = vfs._manifest.dictionaries(raw)
    if not rows:
        return None
    key: tuple[Any, ...] | None = tuple((ident, digest, data) for ident, digest, data in rows)
    try:
        own = _LOADED.get(key)  # type: ignore[arg-type]
    except TypeError:  # a value of a type that does not hash (damage): not kept
        own = key = None
    if own is not None:
        return own
    entries = [Dictionary(ident, digest, data, vfs._where) for ident, digest, data in rows]
    own = Dictionaries(entries[-1])
    for entry in entries[:-1]:
        own.add(entry)
    if key is not None:
        keep(_LOADED, key, own, _LOADED_MAX)
    return own


def _stored_folding(vfs: VFS) -> bool:
    """Whether this database is case-insensitive, as recorded at its creation (asking for
    the other is a ContractError)."""
    stored_ci = vfs._stored_ci
    if stored_ci not in (None, 0, 1):
        raise CorruptionError.for_path(vfs._where, f"damaged database: case_insensitive "
                                                   f"{stored_ci!r:.40}")
    folded = bool(stored_ci)
    if vfs._case_insensitive is not None and vfs._case_insensitive != folded:
        raise ContractError.for_path(
            vfs._where, f"case sensitivity is chosen when a database is created: this one "
                        f"is case-{'in' if folded else ''}sensitive")
    return folded


def adopt(vfs: VFS, source: VFS) -> None:
    """After ``vfs``'s database took the image ``source`` holds (``deserialize_iter``): what
    ``vfs`` derived from its database is now what ``source`` derived from the image (chunk
    size, compression and its dictionaries, case folding, patch record, whiteouts, whether
    it holds groups); the read checks stay ``vfs``'s own."""
    vfs._chunk_size = vfs._tree.chunk_size = source._chunk_size
    vfs._stored_compression, vfs._stored_ci = source._stored_compression, source._stored_ci
    vfs._folded, vfs._patch, vfs._may_hide = source._folded, source._patch, source._may_hide
    vfs._groups = source._groups  # its slices are read with bases (or no longer need them)
    layering.use_content(vfs, replace(source._content, verify=vfs._content.verify))
