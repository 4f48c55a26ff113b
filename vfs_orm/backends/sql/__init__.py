"""The shared SQL core: what every SQL backend runs, defined once with SQLAlchemy Core and
compiled per dialect by each backend.

- ``statements``: the repositories' statements (inodes and chunks, the layer stack's unions,
  manifests, checkpoints, the format's checks), with the few dialect hooks a backend's
  subclass fills (``sqlite/dialect.py``, ``postgresql/statements.py``);
- ``stack``: the layer stack's shape (groups, priorities, which statements read a layer);
  attaching underlays to connections is a backend's (``sqlite/attach.py``);
- ``check``: ``check()`` and ``info()`` counts over a backend's ``CheckRepository``;
- ``revisions``: the format's Alembic scripts, head and lock.

It imports no driver and no backend (an import-linter contract); backends import it.
"""
