"""Async caching with acache: 100 concurrent requests for one URL run the fetch once."""

from __future__ import annotations

import asyncio

from twat_cache import acache

fetches: list[str] = []


@acache(ttl=300)
async def fetch(url: str) -> dict[str, str]:
    """Pretend to make an HTTP request."""
    fetches.append(url)
    await asyncio.sleep(0.1)
    return {"url": url, "body": f"content of {url}"}


async def main() -> None:
    results = await asyncio.gather(*(fetch("https://example.org/a") for _ in range(100)))
    print(f"{len(results)} results, {len(fetches)} fetch")
    again = await fetch("https://example.org/a")
    print("cached:", again["body"])
    print("engine:", fetch.engine.name)
    print("hits:", fetch.cache_info().hits)


if __name__ == "__main__":
    asyncio.run(main())
