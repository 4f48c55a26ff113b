"""File content: how it is stored (``codec``: compression, dictionaries, block checksums
sealed to their place) and who owns it (``store``: an inode's bytes, read, written in place,
shared, staged). The codec's names are this package's, so ``from vfs_orm.content import
Content`` reads as before; the store is imported by name (``vfs_orm.content.store``), so
that a backend importing the codec never loads the layers above it."""

from vfs_orm.content.codec import (
    BLOCK,
    CODECS,
    DELTA,
    DICT_VALUES,
    INLINE,
    LEVELS,
    PLAIN,
    RELEASE_LEVELS,
    SLICE,
    SUM,
    ZSTD,
    Content,
    Damage,
    Dictionaries,
    Dictionary,
    block_sums,
    compression_codec,
    compression_level,
    compression_name,
    damaged,
    dictionary_id,
    reseal,
    stored_form,
    train,
    verify,
    whole_sums,
)

__all__ = ["BLOCK", "CODECS", "DELTA", "DICT_VALUES", "INLINE", "LEVELS", "PLAIN", "RELEASE_LEVELS",
           "SLICE", "SUM", "ZSTD",
           "Content", "Damage", "Dictionaries", "Dictionary", "block_sums",
           "compression_codec", "compression_level", "compression_name", "damaged", "dictionary_id",
           "reseal", "stored_form", "train", "verify", "whole_sums"]
