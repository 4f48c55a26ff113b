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
    DELTA,
    DICT_VALUES,
    INLINE,
    LEVELS,
    SLICE,
    ZSTD,
    Content,
    Dictionaries,
    Dictionary,
    stored_form,
    train,
)

#: At most about this many bytes of values are kept to train on (as ``pack`` samples files).
SAMPLE_BYTES = 16 << 20


def samples(manifest: Any, raw: Any, reader: Content) -> list[bytes]:
    """The database's small values (inline files, then chunks, up to ``DICT_VALUES`` each),
    decoded: what a dictionary is trained on. Deltas (a patch's changed files) are left out:
    a delta is smaller than any dictionary makes that file, so it is never stored again with
    one. An even spread of them when they hold more than
    ``SAMPLE_BYTES`` (every other one is dropped, and then every other one taken, each time
    they pass twice that): memory stays bounded on a big database."""
    out: list[bytes] = []
    held = seen = 0
    step = 1
    for chunks in (False, True):
        for page in manifest.stored_values(raw, chunks):
            for k, codec, sums, data in page:
                if codec == DELTA:
                    continue
                plain = reader.decode(data, codec, sums, stored.MAX_CHUNK_SIZE,
                                      k if chunks else INLINE)
                if not 0 < len(plain) <= DICT_VALUES:
                    continue
                seen += 1
                if (seen - 1) % step:
                    continue
                out.append(plain)
                held += len(plain)
                if held > 2 * SAMPLE_BYTES:
                    out = out[::2]
                    held = sum(map(len, out))
                    step *= 2
    return out


def trained(content: Content, samples: list[bytes], size: int | None, where: str
            ) -> tuple[Dictionary, Content]:
    """A new dictionary trained on ``samples``, and the codecs of ``content`` that compress
    new small values with it (the dictionaries before it still read what they wrote)."""
    data = train(samples, size, level=content.level or LEVELS[ZSTD])
    ident = int.from_bytes(data[4:8], "little")
    entry = Dictionary(ident, hashlib.sha256(data).digest(), stored_form(data), where)
    entry.zstd_dict()  # checks the stored form reads back
    own = Dictionaries(entry)
    if content.dicts is not None:
        for old in content.dicts.by_id.values():
            own.add(old)
    return entry, replace(content, dicts=own)


def store(manifest: Any, raw: Any, entry: Dictionary, before: Content, reader: Content,
          writer: Content, recompress: bool) -> int:
    """Inside a write transaction: record ``entry`` (unless the database has it already) and,
    with ``recompress``, store again every value ``writer`` makes smaller. Returns how many
    bytes of values that saved."""
    if before.dicts is None or entry.ident not in before.dicts.by_id:
        manifest.add_dictionary(raw, entry.ident, time.time_ns(), entry.digest, entry.data)
    saved = 0
    if recompress:
        for chunks in (False, True):
            for page in manifest.stored_values(raw, chunks):
                out = []
                for k, codec, sums, value in page:
                    if codec in (DELTA, SLICE):  # smaller than a dictionary makes them
                        continue
                    seal = k if chunks else INLINE  # where the value is: a chunk id, or inline
                    plain = reader.decode(value, codec, sums, stored.MAX_CHUNK_SIZE, seal)
                    new, new_codec, new_sums = writer.encode(plain, seal)
                    if new_codec != codec and len(new) < len(value):
                        out.append((new_codec, new_sums, new, k))
                        saved += len(value) - len(new)
                manifest.restore_values(raw, chunks, out)
    return saved
