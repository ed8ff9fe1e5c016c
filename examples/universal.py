"""ucache picks the engine for you, and explain_selection says why."""

from __future__ import annotations

import asyncio

from twat_cache import explain_selection, ucache


@ucache
def parse(text: str) -> list[str]:
    """A plain function: the in-memory chain."""
    return text.split()


@ucache(ttl=60)
async def lookup(word: str) -> int:
    """An async def: the async chain."""
    await asyncio.sleep(0)
    return len(word)


if __name__ == "__main__":
    print(parse("one two three"), parse("one two three"))
    print(asyncio.run(lookup("cache")))
    for fn in (parse, lookup):
        print(f"{fn.__name__}: {fn.cache_parameters()['engine']}")
        print("  " + explain_selection(fn).replace("\n", "\n  "))
