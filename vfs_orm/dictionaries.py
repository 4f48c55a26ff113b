"""zstd dictionaries of a database (``VFS.train_dictionary``): the samples they are trained
on, the new dictionary with the ones before it, and the stored values written again with it.

The facade keeps the checks of its arguments; how its content codecs, statements and stack
are then rebuilt with the new dictionaries is ``layering.use_content``'s.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

from vfs_orm import stored
from vfs_orm.content import (
    DICT_VALUES,
    INLINE,
    LEVELS,
    ZSTD,
    Content,
    Dictionaries,
    Dictionary,
    train,
)


def samples(manifest: Any, raw: Any, reader: Content) -> list[bytes]:
    """The database's small values (inline files, then chunks), decoded: what a dictionary
    is trained on."""
    out = []
    for chunks in (False, True):
        for page in manifest.stored_values(raw, chunks):
            for k, codec, sums, data in page:
                plain = reader.decode(data, codec, sums, stored.MAX_CHUNK_SIZE,
                                      k if chunks else INLINE)
                if 0 < len(plain) <= DICT_VALUES:
                    out.append(plain)
    return out


def trained(content: Content, samples: list[bytes], size: int | None, where: str
            ) -> tuple[Dictionary, Content]:
    """A new dictionary trained on ``samples``, and the codecs of ``content`` that compress
    new small values with it (the dictionaries before it still read what they wrote)."""
    data = train(samples, size, level=content.level or LEVELS[ZSTD])
    ident = int.from_bytes(data[4:8], "little")
    entry = Dictionary(ident, hashlib.sha256(data).digest(), data, where)
    entry.zstd_dict()
    own = Dictionaries(entry)
    if content.dicts is not None:
        for old in content.dicts.by_id.values():
            own.add(old)
    return entry, replace(content, dicts=own)


def store(manifest: Any, raw: Any, entry: Dictionary, before: Content, reader: Content,
          writer: Content, recompress: bool) -> None:
    """Inside a write transaction: record ``entry`` (unless the database has it already) and,
    with ``recompress``, store again every value ``writer`` makes smaller."""
    if before.dicts is None or entry.ident not in before.dicts.by_id:
        manifest.add_dictionary(raw, entry.ident, time.time_ns(), entry.digest, entry.data)
    if recompress:
        for chunks in (False, True):
            for page in manifest.stored_values(raw, chunks):
                out = []
                for k, codec, sums, value in page:
                    seal = k if chunks else INLINE  # where the value is: a chunk id, or inline
                    plain = reader.decode(value, codec, sums, stored.MAX_CHUNK_SIZE, seal)
                    new, new_codec, _ = writer.encode(plain, seal)
                    if new_codec != codec and len(new) < len(value):
                        out.append((new_codec, new, k))
                manifest.restore_values(raw, chunks, out)
