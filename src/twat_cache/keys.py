"""Key building, re-exported from :mod:`twat_cache.encoding` and :mod:`twat_cache.codeversion`.

Canonical argument bytes and digests live in ``encoding``; the code version of
a persistent cache lives in ``codeversion``. This module keeps the names that
callers import from here.
"""

from __future__ import annotations

from twat_cache.codeversion import code_version, source_digest
from twat_cache.encoding import (
    DigestKey,
    describe_unkeyable,
    encode,
    memory_key,
    namespaced_digest,
    stable_digest,
)

__all__ = [
    "DigestKey",
    "code_version",
    "describe_unkeyable",
    "encode",
    "memory_key",
    "namespaced_digest",
    "source_digest",
    "stable_digest",
]
