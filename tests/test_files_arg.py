"""``files=``: arguments that are paths are keyed by their file's state (API.md 8)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twat_cache import ConfigurationError, bcache, fcache, mcache

DECORATORS = [mcache, bcache, fcache]


def _write(path: Path, data: bytes, mtime_ns: int) -> None:
    """Write ``data`` and set the modification time (a coarse file clock cannot hide it)."""
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture(autouse=True)
def _cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TWAT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_rewritten_input_file_recomputes(decorator, tmp_path):
    """A file rewritten in place at the same path is a new call; unchanged, it hits; a str
    and a Path naming the same file find the same entry."""
    data = tmp_path / "in.csv"
    _write(data, b"a,b\n1,2\n", 1_000_000_000)
    calls = []

    @decorator(files=("path",))
    def rows(path):
        calls.append(path)
        return Path(path).read_bytes().count(b"\n")

    assert rows(data) == 2
    assert rows(str(data)) == 2
    assert len(calls) == 1
    _write(data, b"a,b\n1,2\n3,4\n", 2_000_000_000)
    assert rows(data) == 3
    assert rows(data) == 3
    assert len(calls) == 2


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_missing_file_is_a_value(decorator, tmp_path):
    """A path whose file is missing is keyed as missing: cached as such, and creating the
    file makes the next call recompute."""
    data = tmp_path / "later.txt"
    calls = []

    @decorator(files=("path",))
    def exists(path):
        calls.append(1)
        return os.path.exists(path)

    assert exists(data) is False
    assert exists(data) is False
    assert len(calls) == 1
    _write(data, b"x", 1_000_000_000)
    assert exists(data) is True
    assert len(calls) == 2


def test_mtime_key_ignores_content_with_same_size_and_time(tmp_path):
    """file_key="mtime" (the default) reads only size and modification time: the same
    size and time count as the same file."""
    data = tmp_path / "a.bin"
    _write(data, b"AAAA", 1_000_000_000)
    calls = []

    @mcache(files=("path",))
    def read(path):
        calls.append(1)
        return Path(path).read_bytes()

    assert read(data) == b"AAAA"
    _write(data, b"BBBB", 1_000_000_000)
    assert read(data) == b"AAAA"
    assert len(calls) == 1


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_content_key_follows_the_bytes(decorator, tmp_path):
    """file_key="content" keys by the bytes: a touched file with the same bytes hits, other
    bytes of the same size and time recompute."""
    data = tmp_path / "a.bin"
    _write(data, b"AAAA", 1_000_000_000)
    calls = []

    @decorator(files=("path",), file_key="content")
    def read(path):
        calls.append(1)
        return Path(path).read_bytes()

    assert read(data) == b"AAAA"
    _write(data, b"AAAA", 5_000_000_000)
    assert read(data) == b"AAAA"
    assert len(calls) == 1
    _write(data, b"BBBB", 5_000_000_000)
    assert read(data) == b"BBBB"
    assert len(calls) == 2


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=st.binary(max_size=64), second=st.binary(max_size=64))
def test_content_key_equal_exactly_when_bytes_equal(tmp_path, first, second):
    """With file_key="content" two file contents give one entry exactly when they are equal."""
    data = tmp_path / "p.bin"
    calls = []

    @mcache(files=("path",), file_key="content")
    def read(path):
        calls.append(1)
        return Path(path).read_bytes()

    data.write_bytes(first)
    assert read(data) == first
    data.write_bytes(second)
    assert read(data) == second
    assert len(calls) == (1 if first == second else 2)


def test_non_path_values_are_keyed_as_they_are(tmp_path):
    """A files= argument given something that is not a path (None) is an ordinary value."""
    calls = []

    @mcache(files=("path",))
    def maybe(path=None):
        calls.append(path)
        return path is None

    assert maybe() is True
    assert maybe(None) is True
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("files", "signature", "extra", "message"),
    [
        (("nope",), "def f(path): pass", {}, "'nope' is not a parameter of"),
        (("paths",), "def f(*paths): pass", {}, "'paths' is a \\*args/\\*\\*kwargs parameter"),
        (("path",), "def f(path): pass", {"ignore": ("path",)}, "also in ignore="),
        (("path",), "def f(path): pass", {"key": lambda path: 1}, "key= replaces the key"),
    ],
)
def test_bad_files_names_are_refused_at_decoration(files, signature, extra, message):
    """files= naming no usable parameter raises ConfigurationError naming the field and the
    parameter, at decoration."""
    namespace: dict[str, object] = {}
    exec(signature, namespace)
    with pytest.raises(ConfigurationError, match=f"CacheConfig.files: .*{message}"):
        mcache(files=files, **extra)(namespace["f"])


def test_bad_file_key_is_refused():
    """file_key accepts "mtime" or "content" only; anything else names the field."""
    with pytest.raises(ConfigurationError, match="file_key"):
        mcache(files=("path",), file_key="size")(lambda path: path)


@pytest.mark.parametrize("decorator", [mcache, bcache])
def test_content_key_refuses_what_is_not_a_regular_file(decorator, tmp_path, calls):
    """file_key='content' on a FIFO blocked for ever (or, with a writer, read away what the
    function was about to read), on /dev/zero never ended: a CacheKeyError naming the path
    and its kind, at once; the function never runs with such a key. A folder holding a
    FIFO is keyed by its regular files, the FIFO by its kind only."""
    import threading

    from twat_cache import CacheKeyError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "pipe")

    @decorator(files=("path",), file_key="content")
    def size(path):
        calls(path)
        return 0

    outcomes = []

    def call_each():
        kinds = ((fifo, "a FIFO"), ("/dev/zero", "a character device"))
        for path, kind in kinds:
            try:
                size(path)
            except CacheKeyError as exc:
                outcomes.append(str(path) in str(exc) and kind in str(exc))
        outcomes.append(size(folder) == size(folder) == 0)

    worker = threading.Thread(target=call_each, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "reading the key hung"
    assert outcomes == [True, True, True]
    assert calls == [folder]
    regular = tmp_path / "data.txt"
    regular.write_text("abc")
    assert size(regular) == size(regular) == 0
    assert calls == [folder, regular]


@pytest.mark.parametrize("file_key", ["mtime", "content"])
@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_a_directory_is_keyed_by_the_files_under_it(decorator, file_key, tmp_path):
    """A folder argument recomputes when a file under it is rewritten, added or removed."""
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    _write(folder / "sub" / "a.txt", b"1", 1_000_000_000)
    calls = []

    @decorator(files=("path",), file_key=file_key)
    def total(path):
        calls.append(path)
        return sum(int(p.read_text()) for p in sorted(Path(path).rglob("*.txt")))

    assert total(folder) == 1
    assert total(folder) == 1
    assert len(calls) == 1
    _write(folder / "sub" / "a.txt", b"5", 2_000_000_000)  # same size, same folder listing
    assert total(folder) == 5
    _write(folder / "b.txt", b"2", 2_000_000_000)
    assert total(folder) == 7
    (folder / "sub" / "a.txt").unlink()
    assert total(folder) == 2
    assert len(calls) == 4


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_a_bytes_path_is_keyed_by_its_file(decorator, tmp_path, calls):
    """``b"/path"`` names a file as ``"/path"`` does; the function may answer in bytes, so
    the two are separate entries."""
    data = tmp_path / "in.txt"
    _write(data, b"ab", 1_000_000_000)

    @decorator(files=("path",))
    def names(path):
        calls(path)
        return os.path.basename(path), Path(os.fsdecode(path)).read_bytes()

    assert names(os.fsencode(data)) == (b"in.txt", b"ab")
    assert names(os.fsencode(data)) == (b"in.txt", b"ab")
    assert names(str(data)) == ("in.txt", b"ab")
    _write(data, b"cd", 2_000_000_000)
    assert names(os.fsencode(data)) == (b"in.txt", b"cd")
    assert len(calls) == 3


@pytest.mark.parametrize("kind", [list, tuple, frozenset])
@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_a_collection_of_paths_is_keyed_by_each_file(decorator, kind, tmp_path, calls):
    """A list of input files was keyed as a plain value: rewriting one served the old
    result. Each path counts; a collection holding anything but paths is a plain value."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    _write(first, b"1", 1_000_000_000)
    _write(second, b"2", 1_000_000_000)

    @decorator(files=("paths",))
    def total(paths):
        calls(len(paths))
        return sum(p if type(p) is int else int(Path(p).read_text()) for p in paths)

    inputs = kind([str(first), second])
    assert total(inputs) == total(inputs) == 3
    _write(second, b"5", 2_000_000_000)
    assert total(inputs) == total(inputs) == 6
    assert total(kind([1, 2])) == total(kind([1, 2])) == 3
    assert calls == [2, 2, 2]
