"""Per-call control (cachecache style): again=, cache_results=, cache_path=, location_arg=."""

from __future__ import annotations

import tempfile
from pathlib import Path

from twat_cache import bcache

runs: list[str] = []


@bcache(folder_name="per-call", call_options=True)
def summarize(dataset: str) -> str:
    runs.append(dataset)
    return f"summary of {dataset} #{len(runs)}"


@bcache(location_arg="datapath")
def load(datapath: str, name: str) -> str:
    return f"{name} from {datapath}"


if __name__ == "__main__":
    print(summarize("a"), "|", summarize("a"))  # computed once
    print(summarize("a", again=True))  # recomputed and overwritten
    print(summarize("b", cache_results=False), "|", summarize("b", cache_results=False))
    with tempfile.TemporaryDirectory() as elsewhere:
        summarize("c", cache_path=elsewhere)
        print("stored elsewhere:", any(Path(elsewhere).rglob("*")))
    with tempfile.TemporaryDirectory() as data:
        load(data, "table")
        print("stored next to the data:", (Path(data) / ".twat_cache").is_dir())
    print("runs:", runs)
