"""Caching policy for a block of code: ``disabled()``, ``refreshing()``, ``readonly()``.

Why a context variable: a policy must hold for the code inside the block and
nowhere else, so a request handled in another thread, or another asyncio task
of the same loop, keeps caching while one block switches it off. asyncio copies
the context into each task when the task is created, so tasks started inside a
block inherit its policy while the block is open, and a block inside one task
never leaks into its siblings; a new thread starts with no policy. A task that
outlives the block it was created in falls back to the policy of the enclosing
blocks still open (none, outside them): a policy holds exactly as long as its
block is open.

The three policies, as every decorator applies them:

- ``disabled``: call the function straight through; read and store nothing.
- ``refreshing``: recompute every call and overwrite the stored entry.
- ``readonly``: serve hits; on a miss compute and return, but store nothing.

The innermost block wins. Each works as a context manager (``with``), and as a
decorator of a sync or ``async def`` function, which then runs under the policy
on every call:

>>> from twat_cache import disabled, mcache
>>> @mcache
... def square(x: int) -> int:
...     return x * x
>>> with disabled():
...     square(3)
9
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from contextvars import ContextVar, Token
from typing import Any, Final, Literal, Protocol, TypeVar, cast, overload

from typing_extensions import Self

from twat_cache.exceptions import ConfigurationError

__all__ = [
    "ACTIVE",
    "DISABLED",
    "READONLY",
    "REFRESHING",
    "Policy",
    "PolicyName",
    "current",
    "disabled",
    "readonly",
    "refreshing",
]

F = TypeVar("F", bound=Callable[..., Any])

PolicyName = Literal["disabled", "refreshing", "readonly"]
DISABLED: Final = "disabled"
REFRESHING: Final = "refreshing"
READONLY: Final = "readonly"


class _Frame:
    """One entered block: its policy, the block it is nested in, and whether it is open.

    The context variable holds the innermost frame. Closing marks the frame
    rather than relying on the variable alone, because a task created inside
    the block keeps a copy of the variable after the block has exited.
    """

    __slots__ = ("name", "open", "outer")

    def __init__(self, name: str, outer: _Frame | None) -> None:
        self.name = name
        self.outer = outer
        self.open = True


_POLICY: ContextVar[_Frame | None] = ContextVar("twat_cache_policy", default=None)

#: How many policy blocks are entered right now, in any thread or task. The call
#: path reads this plain int first and reads the context variable only when it
#: is non-zero (the generated memory hit path reads neither: see ``WATCHERS``).
ACTIVE = 0
_ACTIVE_LOCK = threading.Lock()


def current() -> str | None:
    """The policy in force here (this thread or task): a policy name, or ``None``.

    Returns:
        ``"disabled"``, ``"refreshing"``, ``"readonly"``, or ``None`` outside any block.

    >>> current() is None
    True
    >>> with readonly():
    ...     current()
    'readonly'
    """
    if not ACTIVE:
        return None
    frame = _POLICY.get()
    while frame is not None and not frame.open:
        frame = frame.outer
    return None if frame is None else frame.name


#: Called with True when the first block opens anywhere, False when the last one closes:
#: the generated memory wrappers then send every call down their slow path, which reads
#: the policy, so their hit path never looks at it.
WATCHERS: list[Callable[[bool], None]] = []


def _enter() -> None:
    global ACTIVE
    with _ACTIVE_LOCK:
        ACTIVE += 1
        if ACTIVE == 1:
            for watcher in WATCHERS:
                watcher(True)


def _leave() -> None:
    global ACTIVE
    with _ACTIVE_LOCK:
        ACTIVE -= 1
        if ACTIVE == 0:
            for watcher in WATCHERS:
                watcher(False)


class Policy:
    """One policy block: a context manager, and a decorator of sync and async functions.

    Why a class and not ``contextlib.contextmanager``: the decorator form must
    open a fresh block on every call (calls may overlap in threads and tasks),
    and wrap an ``async def`` so that the policy holds while it is awaited, not
    only while the coroutine object is created.

    Args:
        name: ``"disabled"``, ``"refreshing"`` or ``"readonly"``.

    >>> with Policy("refreshing"):
    ...     current()
    'refreshing'
    """

    __slots__ = ("_entered", "name")

    def __init__(self, name: PolicyName) -> None:
        if name not in (DISABLED, REFRESHING, READONLY):
            msg = f"policy {name!r} is not one of 'disabled', 'refreshing', 'readonly'"
            raise ConfigurationError(msg)
        self.name: PolicyName = name
        # The blocks open on this object: it may be re-entered (nested) in one thread, and
        # one object (``NOCACHE = disabled()``) may be open in several threads and tasks
        # at once, whose blocks end in any order.
        self._entered: list[tuple[_Frame, Token[_Frame | None]]] = []

    def __repr__(self) -> str:
        return f"twat_cache.{self.name}()"

    def __enter__(self) -> Self:
        frame = _Frame(self.name, _POLICY.get())
        entry = (frame, _POLICY.set(frame))
        with _ACTIVE_LOCK:
            self._entered.append(entry)
        _enter()
        return self

    def __exit__(self, *exc: object) -> None:
        here = _POLICY.get()  # the innermost block of this thread or task: the one ending
        with _ACTIVE_LOCK:
            entered = self._entered
            at = len(entered) - 1
            while at > 0 and entered[at][0] is not here:
                at -= 1
            frame, token = entered.pop(at)
        frame.open = False
        _leave()
        try:
            _POLICY.reset(token)
        except ValueError:  # not this context's block (blocks closed out of order)
            _POLICY.set(frame.outer)

    def __call__(self, func: F) -> F:
        """Run ``func`` under this policy on every call (``async def`` while awaited)."""
        from twat_cache.keys import runs  # an object's async __call__ counts too

        name = self.name
        inner = runs(func)
        if inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner):
            msg = (
                f"twat_cache.{name}: {getattr(func, '__qualname__', func)!r} is a generator "
                "function, whose body runs after the call returns, outside the block; "
                f"open the block inside it instead (with twat_cache.{name}(): ...)"
            )
            raise ConfigurationError(msg)
        if inspect.iscoroutinefunction(inner):
            coro = cast("Callable[..., Coroutine[Any, Any, Any]]", func)

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with Policy(name):
                    return await coro(*args, **kwargs)

            return cast("F", run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with Policy(name):
                return func(*args, **kwargs)

        return cast("F", run)


class PolicyMaker(Protocol):
    """``disabled``/``refreshing``/``readonly``: ``with f():``, ``@f()`` or ``@f``."""

    @overload
    def __call__(self) -> Policy: ...
    @overload
    def __call__(self, func: F) -> F: ...


_FORMS = """

    Works as ``with {name}():``, ``@{name}()`` and ``@{name}`` (sync and ``async def``).

    Args:
        func: when given (the bare decorator form), the function to wrap.

    Returns:
        The context manager, or ``func`` wrapped to run under the policy.

    >>> with {name}():
    ...     current()
    '{name}'
"""


def _maker(name: PolicyName, summary: str) -> PolicyMaker:
    def make(func: F | None = None) -> Policy | F:
        policy = Policy(name)
        return policy if func is None else policy(func)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = summary + _FORMS.format(name=name)
    return cast("PolicyMaker", make)


disabled = _maker(
    DISABLED,
    """Call cached functions straight through inside the block: read and store nothing.

    Use it for a test or a code path that must see fresh results, or to measure
    the uncached cost.""",
)
refreshing = _maker(
    REFRESHING,
    """Recompute every cached call inside the block and overwrite the stored entries.

    Use it to warm or repair a cache after the data behind it changed.""",
)
readonly = _maker(
    READONLY,
    """Serve hits inside the block, but store nothing: a miss is computed and returned.

    Use it for one-off calls (a rare argument, an ad-hoc query) that should not
    evict the working set or fill the disk.""",
)
