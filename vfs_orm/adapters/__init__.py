"""Adapters to other ecosystems' interfaces (optional extras, imported only when used):
``fsspec`` (protocol ``vfsorm``) and ``upath`` (``UPath("vfsorm:///...")``)."""
