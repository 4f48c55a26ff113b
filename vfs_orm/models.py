"""Declarative SQLAlchemy 2.x models of the on-disk format. No queries live here.

A path ``/a/b/c`` is stored as ``parent='/a/b', name='c'``: the unique index on
``(parent, name)`` makes a lookup one index probe and a listing a range over one directory's
entries, whatever lies below them. The root is the row ``parent='', name=''``. Rows still being
written by an open ``w``/``x`` handle ("staging" rows) have ``parent`` NULL and are invisible.

The migrations in ``migrations/versions`` create these tables; ``tests/test_migrations.py``
checks that models and migrations agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TABLE_PREFIX = "vfs_"
VERSION_TABLE = "vfs_alembic_version"
#: The on-disk format revision these models describe and this release writes: the head of
#: ``migrations/versions/`` (a new revision bumps it; tests/test_migrations.py checks that it
#: is Alembic's head). Exported as ``vfs_orm.FORMAT_REVISION``.
FORMAT_REVISION = "0014"
#: ``PRAGMA application_id`` of every vfs_orm database: "VFSO" in ASCII.
APPLICATION_ID = 0x5646534F


#: Ids and values that may pass 2**31 (chunk ids are ``inode_id * 2**32 + idx``; modes are a
#: C ``mode_t``): 64-bit on every dialect, while SQLite keeps ``INTEGER``, so that an
#: ``INTEGER PRIMARY KEY`` stays the rowid alias that BLOB I/O and rowid lookups rely on.
Int64 = BigInteger().with_variant(Integer(), "sqlite")
#: Paths and names compare byte by byte on every dialect (subtree scans are ranges on the
#: (parent, name) index): SQLite's default BINARY collation, PostgreSQL's "C".
Path = Text().with_variant(Text(collation="C"), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Inode(Base):
    """A file or a directory."""

    __tablename__ = "vfs_inodes"
    __table_args__ = (
        UniqueConstraint("parent", "name"),
        # The case-folded key (format 0004), in every database so that any database can be
        # an underlay of a case-insensitive one: lookups and listings by it are one probe or
        # range, as by (parent, name). Not unique: a case-sensitive tree may hold "A" and "a".
        Index("ix_vfs_inodes_fparent_fname", "fparent", "fname"),
        # The files sharing a content (format 0004): found when it is copied on write.
        Index("ix_vfs_inodes_content", "content", sqlite_where=text("content IS NOT NULL"),
              postgresql_where=text("content IS NOT NULL")),
        # The overlays on a row's chunks (format 0014): found when it loses a reader. Only
        # overlays (the rows that read them carry a base too, and need no entry).
        Index("ix_vfs_inodes_base", "base",
              sqlite_where=text("content IS NULL AND base IS NOT NULL"),
              postgresql_where=text("content IS NULL AND base IS NOT NULL")),
        # Not "kind IN (1, 2, 3)": SQLite evaluates an IN list in a CHECK through an
        # ephemeral table, 1.6 us of every INSERT (format 0003).
        CheckConstraint("kind BETWEEN 1 AND 3 AND typeof(kind) = 'integer'", name="kind")
        .ddl_if(dialect="sqlite"),
        # PostgreSQL's integer column holds nothing but integers.
        CheckConstraint("kind BETWEEN 1 AND 3", name="kind").ddl_if(dialect="postgresql"),
        {"sqlite_autoincrement": True},  # ids are never reused: open handles bind to them
    )

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    parent: Mapped[str | None] = mapped_column(Path)
    name: Mapped[str] = mapped_column(Path)
    kind: Mapped[int] = mapped_column(Integer)
    mode: Mapped[int] = mapped_column(Int64)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    chunk_size: Mapped[int] = mapped_column(Integer)
    ctime_ns: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    # Bumped whenever the whole content is replaced in place: open handles compare it on each
    # read and report a stale handle instead of mixing old and new bytes.
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    # For staging rows: which process writes them, so a crashed writer's rows can be reclaimed.
    owner: Mapped[str | None] = mapped_column(Text)
    # Shared content (format 0004): a copy reads the chunks of the inode ``content`` names
    # instead of its own (NULL: its own), and ``refs`` counts the inodes reading this one's
    # chunks that way. A file shared by others that is deleted or replaced whole stays as a
    # hidden row (parent NULL) until its last sharer goes; a write in place copies first.
    content: Mapped[int | None] = mapped_column(Int64)
    refs: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # ``parent`` and ``name`` case-folded (``paths.fold``: Unicode case folding and NFC;
    # format 0004); NULL for staging rows.
    fparent: Mapped[str | None] = mapped_column(Path)
    fname: Mapped[str | None] = mapped_column(Path)
    # The numeric owner and group (format 0009, ``VFS.chown``); NULL: not set, reported as
    # the reading process's (the mounting user's through ``vfs-orm mount``). Before the large
    # columns: every lookup and listing reads them.
    uid: Mapped[int | None] = mapped_column(BigInteger)
    gid: Mapped[int | None] = mapped_column(BigInteger)
    # Chunk-level sharing (format 0014): where a chunk the file's chunk rows lack is read
    # from. A file reads chunk ``i`` of ``coalesce(content, id)`` if that row exists, else
    # chunk ``i`` of ``base``. An "overlay" is a hidden row (parent NULL, content NULL) whose
    # base is a complete, frozen set of chunks; the files and checkpoint entries reading it
    # carry its base too. So a write in place to shared content writes only the chunks it
    # touches (see ``ContentStore.detach``).
    base: Mapped[int | None] = mapped_column(Int64)
    # SHA-256 of the whole content (format 0004), computed while the file is written; NULL for
    # directories, and after a write in place until ``digest()`` or ``check(deep=True)``
    # computes it again.
    digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    # How ``data`` is stored (format 0004, see ``vfs_orm.content``): its codec (0 as is, 1
    # zlib, 2 zstd, ...) and XXH3-64 checksums of its plain bytes (per 4 KiB block; one for a
    # compressed value since 0012). Before ``data``: SQLite
    # reads a row's columns in order, and a column after a large value means walking it.
    codec: Mapped[int] = mapped_column(Integer, server_default="0")
    sums: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The whole content of a small file written whole (format 0003), instead of chunk rows:
    # NOT NULL only for a file with length(data) == size <= chunk_size and no chunks. Last
    # column, so lookups and listings never read it; deferred, so ORM loads do not either.
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="inode", cascade="all, delete-orphan", passive_deletes=True
    )


class Chunk(Base):
    """One fixed-size piece of a file's content. Missing chunks of a file read as zeros; a
    file whose bytes are inline (``Inode.data``) has none.

    Its id is ``inode_id * 2**32 + idx`` (see ``statements.CHUNK_SPAN``)."""

    __tablename__ = "vfs_chunks"
    __table_args__ = (UniqueConstraint("inode_id", "idx"),)

    # An explicit rowid, so incremental BLOB I/O (sqlite3 blobopen) can address a chunk.
    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=False)
    inode_id: Mapped[int] = mapped_column(Int64, ForeignKey("vfs_inodes.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Int64)
    # Codec and checksums of ``data`` (format 0004, see ``vfs_orm.content``; since 0007
    # sealed to this row's id), before it: a partial read of a chunk reads its sums without
    # walking the chunk's overflow pages.
    codec: Mapped[int] = mapped_column(Integer, server_default="0")
    sums: Mapped[bytes] = mapped_column(LargeBinary)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    inode: Mapped[Inode] = relationship(back_populates="chunks")


class LayerManifest(Base):
    """A database's identity (``role='self'``, one row) and, in a top database, the underlays
    it was last composed with (``role='underlay'``, one row each)."""

    __tablename__ = "vfs_layer_manifests"
    __table_args__ = (Index("ix_vfs_layer_manifests_role", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    uuid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    modified_ns: Mapped[int] = mapped_column(BigInteger)
    chunk_size: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[int | None] = mapped_column(Integer)
    db_path: Mapped[str | None] = mapped_column(Text)
    # How new content is compressed in this database (format 0004): NULL, 'zlib' or 'zstd'.
    compression: Mapped[str | None] = mapped_column(Text)
    # 1: paths match under case folding in this database (format 0004, chosen at creation).
    case_insensitive: Mapped[int | None] = mapped_column(Integer)


class Checkpoint(Base):
    """A named point-in-time copy of the tree's metadata (format 0005). Its entries are rows
    of ``vfs_checkpoint_inodes``; their content is shared with the live tree (see there)."""

    __tablename__ = "vfs_checkpoints"
    __table_args__ = (UniqueConstraint("name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    name: Mapped[str] = mapped_column(Path)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    # 1: made without a name (``checkpoint()``), subject to retention (``keep=``).
    auto: Mapped[int] = mapped_column(Integer, server_default="0")
    # Files in it, counted when it was taken.
    files: Mapped[int] = mapped_column(BigInteger, server_default="0")


class CheckpointInode(Base):
    """An entry of a checkpoint: the live row's metadata as it was (its ``id`` too), in a
    table of its own so that no query of the live tree can ever see it.

    Content: a file whose chunks the live tree stores names, in ``content``, the live inode
    holding them (``coalesce(content, id)`` of the live row, and its ``base``), and counts in
    that inode's ``refs`` exactly as a live copy does; the live tree's copy on write
    (``detach``: the chunks freeze, the file writes an overlay) and its hidden holders
    (``release``) then keep those chunks unchanged for as long as the checkpoint holds them.
    Small files' inline bytes are copied into ``data`` as stored."""

    __tablename__ = "vfs_checkpoint_inodes"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "parent", "name"),
        # Who reads a holder's chunks (copy on write repoints them; check() counts them).
        Index("ix_vfs_checkpoint_inodes_content", "content",
              sqlite_where=text("content IS NOT NULL"),
              postgresql_where=text("content IS NOT NULL")),
    )

    checkpoint_id: Mapped[int] = mapped_column(
        Int64, ForeignKey("vfs_checkpoints.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=False)
    parent: Mapped[str] = mapped_column(Path)
    name: Mapped[str] = mapped_column(Path)
    kind: Mapped[int] = mapped_column(Integer)
    mode: Mapped[int] = mapped_column(Int64)
    size: Mapped[int] = mapped_column(BigInteger)
    chunk_size: Mapped[int] = mapped_column(Integer)
    ctime_ns: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[int | None] = mapped_column(Int64)
    fparent: Mapped[str | None] = mapped_column(Path)
    fname: Mapped[str | None] = mapped_column(Path)
    uid: Mapped[int | None] = mapped_column(BigInteger)  # format 0009, as the live row's
    gid: Mapped[int | None] = mapped_column(BigInteger)
    base: Mapped[int | None] = mapped_column(Int64)  # format 0014, as the live row's
    digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    codec: Mapped[int] = mapped_column(Integer, server_default="0")
    sums: Mapped[bytes | None] = mapped_column(LargeBinary)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)


class Dictionary(Base):
    """A zstd dictionary values of this database may be compressed with (format 0006, codec 3;
    see ``vfs_orm.content``). The newest compresses new small values."""

    __tablename__ = "vfs_dictionaries"

    # The dictionary's own id (in its bytes and in every frame made with it), derived from
    # its content.
    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=False)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    # SHA-256 of the dictionary: checked before it is used.
    digest: Mapped[bytes] = mapped_column(LargeBinary)
    # The dictionary, or (format 0011) one zstd frame of it: a frame's magic says which.
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Group(Base):
    """Several small files' bytes in one stored value (format 0013, a solid pack's "group"):
    their inline values are slices of it (codec 5, see ``vfs_orm.content``), so one zstd frame
    finds what they share, and one leaf page need not hold a few hundred bytes alone."""

    __tablename__ = "vfs_groups"

    # The first 8 bytes of ``digest`` (big-endian, signed): content-derived, so a stack
    # resolves a slice's group in any layer, and a group from a forged layer is never used.
    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=False)
    # SHA-256 of the group's plain bytes: checked before they are used.
    digest: Mapped[bytes] = mapped_column(LargeBinary)
    # Stored as file content is (its codec, and its sums sealed to this row's id).
    codec: Mapped[int] = mapped_column(Integer, server_default="0")
    sums: Mapped[bytes] = mapped_column(LargeBinary)
    data: Mapped[bytes] = mapped_column(LargeBinary)
