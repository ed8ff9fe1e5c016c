"""CacheContext: use an engine by hand in a with block, sharing entries with a decorator."""

from __future__ import annotations

from twat_cache import CacheContext, mcache


@mcache(name="sessions")
def load_session(user: str) -> dict[str, str]:
    return {"user": user, "theme": "light"}


if __name__ == "__main__":
    with CacheContext(engine_name="cachebox", name="sessions") as cache:
        cache.set("alice", {"user": "alice", "theme": "dark"})  # what load_session("alice") reads
        print("in cache:", "alice" in cache)
        print("missing:", cache.get("bob", default="no entry"))
    print("decorator sees:", load_session("alice"))
    print("computed:", load_session("bob"))
