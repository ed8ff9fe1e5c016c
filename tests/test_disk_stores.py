"""The disk stores on the Store contract: capabilities declared, and one meaning of ttl."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines import get_engine_manager
from twat_cache.engines.base import Store
from twat_cache.engines.persistent import PersistentEngine

DISK_STORES = ["diskcache", "klepto", "joblib"]
KEY = "0123456789abcdef0123456789abcdef"


def _store(name: str, tmp_path: Path, **options: object) -> PersistentEngine:
    cls = get_engine_manager().engine_class(name)
    store = cls(CacheConfig(cache_dir=tmp_path, name="stores", **options))
    assert isinstance(store, PersistentEngine)
    return store


def _files(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in (".lock",)]


@pytest.mark.parametrize("name", DISK_STORES)
def test_disk_stores_declare_their_capabilities(name: str, tmp_path: Path) -> None:
    """Each disk store is a Store that outlives the process, is shared and locks across them."""
    store = _store(name, tmp_path)
    assert isinstance(store, Store)
    assert store.persistent
    assert store.shared
    assert not store.in_process
    with store.key_lock(KEY):
        pass
    store.close()


@pytest.mark.parametrize("name", DISK_STORES)
def test_ttl_none_never_expires_whatever_the_config(name: str, tmp_path: Path) -> None:
    """set(k, v, None) keeps the entry with no deadline even when the config has a ttl."""
    store = _store(name, tmp_path, ttl=0.01)
    store.set(KEY, {"v": 1}, None)
    time.sleep(0.05)
    assert store.get(KEY) == {"v": 1}
    assert store.expired() == 0
    assert len(store) == 1
    store.close()


@pytest.mark.parametrize("name", DISK_STORES)
def test_ttl_zero_keeps_nothing(name: str, tmp_path: Path) -> None:
    """set(k, v, 0) stores nothing and writes no file, whatever the config's ttl."""
    store = _store(name, tmp_path)
    store.set(KEY, {"v": 1}, 0)
    store.set(KEY, np.ones(10), 0)
    assert store.get(KEY) is MISSING
    assert len(store) == 0
    assert _files(tmp_path) == []
    store.close()


@pytest.mark.parametrize("name", DISK_STORES)
def test_ttl_is_this_entrys_lifetime(name: str, tmp_path: Path) -> None:
    """set(k, v, ttl) lives ttl seconds (not the config's ttl); prune then removes it."""
    store = _store(name, tmp_path)  # no ttl in the config
    store.set(KEY, "short", 0.05)
    store.set(KEY[::-1], "long", 3600)
    assert store.get(KEY) == "short"
    time.sleep(0.2)
    assert store.get(KEY) is MISSING
    assert store.get(KEY[::-1]) == "long"
    store.prune()
    assert len(store) == 1
    store.close()
