"""Sound search over a collection: ``clapkit index`` fills a SQLite database (file metadata, the
vectors, zero-shot tags) and a FAISS index cached beside it; ``clapkit search`` queries it by text
or by example audio. Builds on the library (``clapkit.load``, the one decoder); the library never
imports this package.

The database is the source of truth: each vector is a float32 blob in SQLite, written in one
transaction per batch of files, so a run killed at any moment leaves it consistent and the next run
finishes the job. The FAISS file (``DB.faiss``) is a cache stamped with the database's generation
counter and rebuilt from SQLite whenever it is stale or missing.
"""
from __future__ import annotations

__all__ = ["Database", "Searcher", "index_files", "merge_parts"]


def __getattr__(name: str):
    if name == "Database":
        from .db import Database

        return Database
    if name == "Searcher":
        from .search import Searcher

        return Searcher
    if name == "index_files":
        from .indexer import index_files

        return index_files
    if name == "merge_parts":
        from .merge import merge_parts

        return merge_parts
    raise AttributeError(f"module 'clapkit.index' has no attribute {name!r}")
