"""The call path: decoration builds one wrapper per function (see ``build.py``)."""

from twat_cache.call.build import make_cached, make_passthrough

__all__ = ["make_cached", "make_passthrough"]
