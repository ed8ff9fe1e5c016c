"""Custom storage: a Backend subclass stores bytes under str keys; twat-cache does the rest."""

from __future__ import annotations

from twat_cache import Backend, mcache


class DictBackend(Backend):
    """The smallest backend: a dict. Misses raise KeyError."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes:
        return self.data[key]

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.data[key] = value

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self) -> None:
        self.data.clear()


store = DictBackend()


@mcache(backend=lambda: store)  # a factory: resolved on the first call, not at import
def profile(user_id: int) -> dict[str, object]:
    return {"id": user_id, "name": f"user{user_id}"}


if __name__ == "__main__":
    print(profile(7), profile(7))
    print("engine:", profile.engine.name)
    print("stored keys:", len(store.data), "bytes:", sum(len(v) for v in store.data.values()))
    print("hits:", profile.cache_info().hits)
