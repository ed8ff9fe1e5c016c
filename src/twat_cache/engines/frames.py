"""pandas, polars and pyarrow tables as Arrow IPC (Feather v2) files, exactly or not at all.

Arrow keeps column data, dtypes (categorical, nullable, tz-aware, strings) and
the row index through pandas' own metadata; what it would change is kept
beside the table, pickled in its schema metadata under :data:`META_KEY`: the
column labels (any type, duplicates, a MultiIndex), the index names, a
``DatetimeIndex``'s ``freq``, ``attrs``, ``flags`` and a Series' name.

:func:`to_table` refuses (returns ``None``) what would not come back equal
and of the same dtypes: object columns holding anything but ``str``/``bytes``
and ``None``, a type Arrow cannot hold, a subclass. The file store then keeps
the value through its pickler instead, so the user sees the same value either
way. The check is made before anything is written: object columns are scanned
once, and a few leading rows are converted back to compare dtypes.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from typing import Any, Final

__all__ = ["META_KEY", "from_table", "read_ipc", "rough_nbytes", "to_table", "write_ipc"]

#: The schema metadata key holding what Arrow itself does not keep.
META_KEY: Final = b"twat_cache"
_PANDAS_FRAME = "pandas.DataFrame"
_PANDAS_SERIES = "pandas.Series"
_POLARS_FRAME = "polars.DataFrame"
_ARROW_TABLE = "pyarrow.Table"
#: Leading rows converted back at write time to prove the dtypes survive.
_PROBE_ROWS = 16
_EXACT_OBJECTS = ({str, type(None)}, {bytes, type(None)})
#: The pandas module that registers its period and interval types with pyarrow.
_PANDAS_TYPES = "pandas.core.arrays.arrow.extension_types"


def to_table(value: Any) -> Any:
    """``value`` as a ``pyarrow.Table`` that :func:`from_table` turns back into it, or ``None``."""
    pd = sys.modules.get("pandas")
    if pd is not None and type(value) in (pd.DataFrame, pd.Series):
        return _pandas_table(pd, value)
    pa = sys.modules.get("pyarrow")
    if pa is not None and type(value) is pa.Table:
        meta = {"type": _ARROW_TABLE, "metadata": value.schema.metadata}
        return _with_meta(value, meta)
    pl = sys.modules.get("polars")
    if pl is not None and type(value) is pl.DataFrame:
        return _polars_table(pl, value)
    return None


def rough_nbytes(value: Any) -> int | None:
    """About how many bytes a table type's data holds (cheap), ``None`` for other values."""
    pd = sys.modules.get("pandas")
    if pd is not None and type(value) in (pd.DataFrame, pd.Series):
        usage = value.memory_usage(index=True, deep=False)
        return int(usage if type(value) is pd.Series else usage.sum())
    pa = sys.modules.get("pyarrow")
    if pa is not None and type(value) is pa.Table:
        return int(value.nbytes)
    pl = sys.modules.get("polars")
    if pl is not None and type(value) is pl.DataFrame:
        return int(value.estimated_size())
    return None


def from_table(table: Any, views: bool = False) -> Any:
    """The value :func:`to_table` was given, back from its table.

    ``views``: a pandas value's columns may be read-only views of the table's buffers
    (``fcache(mmap_mode="r")``, as for arrays); otherwise each hit is a writable copy.

    Raises:
        ValueError: the table carries no twat-cache metadata.
    """
    meta = _meta_of(table)
    kind = meta["type"]
    if kind == _ARROW_TABLE:
        return table.replace_schema_metadata(meta["metadata"])
    if kind == _POLARS_FRAME:
        import polars as pl  # a polars entry means polars wrote it

        return pl.from_arrow(table.replace_schema_metadata(None))
    return _pandas_from(table, meta, views)


def _meta_of(table: Any) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        msg = "stored table has no twat-cache metadata"
        raise ValueError(msg)
    meta: dict[str, Any] = pickle.loads(raw)
    return meta


def read_ipc(source: Any) -> Any:
    """The table in the Arrow IPC file ``source``, read with pandas' Arrow types known.

    pandas registers its period and interval Arrow types only once it converts such
    a column itself; a fresh process reading one first would get their storage structs.
    """
    import pyarrow as pa

    reader = pa.ipc.open_file(source)
    if _PANDAS_TYPES not in sys.modules:
        raw = (reader.schema.metadata or {}).get(META_KEY)
        if raw is not None and pickle.loads(raw)["type"] in (_PANDAS_FRAME, _PANDAS_SERIES):
            try:
                importlib.import_module(_PANDAS_TYPES)
            except ImportError:  # another pandas: the dtypes check on read still holds
                return reader.read_all()
            reader = pa.ipc.open_file(source)
    return reader.read_all()


def write_ipc(sink: Any, table: Any, compression: str | None = None) -> None:
    """Write ``table`` to ``sink`` (a pyarrow output stream) as an Arrow IPC file.

    An empty table still gets one (empty) record batch: without it the file
    holds no dictionary, and an empty categorical would lose its categories.
    """
    import pyarrow as pa

    batches = table.to_batches() or [
        pa.RecordBatch.from_arrays(
            [c.chunk(0) if c.num_chunks else pa.array([], type=c.type) for c in table.columns],
            schema=table.schema,
        )
    ]
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        for batch in batches:
            writer.write_batch(batch)


def _through_ipc(table: Any) -> Any:
    """``table`` written to an Arrow IPC file in memory and read back (the write-time probe)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    write_ipc(sink, table)
    return pa.ipc.open_file(sink.getvalue()).read_all()


def _with_meta(table: Any, meta: dict[str, Any]) -> Any:
    metadata = dict(table.schema.metadata or {})
    metadata[META_KEY] = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
    return table.replace_schema_metadata(metadata)


# -- pandas ------------------------------------------------------------------------------


def _object_ok(values: Any) -> bool:
    """True when an object column holds only ``str`` (or only ``bytes``) and ``None``.

    Those come back identical; NaN, numbers, dates or containers in an object
    column would come back as other types, so such a frame is pickled instead.
    """
    kinds = set(map(type, values))
    return any(kinds <= allowed for allowed in _EXACT_OBJECTS)


def _levels_rebuilt(pd: Any, index: Any, values: list[Any]) -> bool:
    """True when Arrow's rebuild of a MultiIndex from its level values has the same levels.

    Arrow keeps each level's values; pandas factorizes them again on read, which drops
    unused level entries and sorts the levels.
    """
    rebuilt = pd.MultiIndex.from_arrays(values)
    return all(
        a.equals(b) and type(a) is type(b)
        for a, b in zip(rebuilt.levels, index.levels, strict=True)
    )


def _pandas_table(pd: Any, value: Any) -> Any:
    import pyarrow as pa

    series = type(value) is pd.Series
    frame = value.to_frame(name="0") if series else value
    index = frame.index
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    for column in (*(frame.iloc[:, i] for i in range(frame.shape[1])), *levels):
        if column.dtype == "object" and not _object_ok(column.array):
            return None
    if isinstance(index, pd.MultiIndex) and not _levels_rebuilt(pd, index, levels):
        return None
    meta: dict[str, Any] = {
        "type": _PANDAS_SERIES if series else _PANDAS_FRAME,
        "columns": None if series else frame.columns,
        "index_names": list(index.names),
        "freq": getattr(index, "freq", None),
        "attrs": value.attrs,
        "duplicates": value.flags.allows_duplicate_labels,
        "name": value.name if series else None,
        # Arrow strings come back as pandas' ``str`` dtype: these go back to object.
        "objects": [i for i, dtype in enumerate(frame.dtypes) if dtype == "object"],
        "object_index": index.nlevels == 1 and index.dtype == "object",
        # Arrow keeps a zone's name: ``datetime.timezone.utc`` (pandas' "UTC") comes back
        # as ``ZoneInfo("UTC")``, a dateutil zone as a zoneinfo one. The same instants: the
        # zone objects are set back on read (no copy).
        "zones": {i: dtype.tz for i, dtype in enumerate(frame.dtypes) if _zone(dtype)},
        "index_zone": index.dtype.tz if index.nlevels == 1 and _zone(index.dtype) else None,
        # Checked on read: a reader lacking what the writer had (pandas' Arrow extension
        # types, another pandas) must not hand back other dtypes.
        "dtypes": _dtype_keys(pd, value),
    }
    # Positional field names and unnamed index levels: Arrow fields need unique
    # str names; the real labels come back from ``meta``.
    plain = frame.set_axis([str(i) for i in range(frame.shape[1])], axis=1)
    plain.index = index.set_names([None] * index.nlevels)
    try:
        table = pa.Table.from_pandas(plain, preserve_index=None)
        table = _with_meta(table, meta)
        # read back as a reader will: the metadata too goes through pickle
        probe = _pandas_from(_through_ipc(table.slice(0, _PROBE_ROWS)), _meta_of(table))
    except Exception:  # a type Arrow cannot hold, unpicklable attrs...: the pickler decides
        return None
    if not _same_dtypes(pd, probe, value):
        return None
    return table


def _dtype_key(pd: Any, dtype: Any) -> tuple[Any, ...]:
    """What tells two dtypes apart, beyond ``==``: their class, and a time zone's class too.

    ``==`` holds between ``datetime.timezone.utc`` and ``ZoneInfo("UTC")`` (Arrow brings the
    second back), and between categoricals whose categories' dtypes differ.
    """
    tz = getattr(dtype, "tz", None)
    if isinstance(dtype, pd.CategoricalDtype):  # its categories are the table's dictionary
        return (_qualname(dtype), dtype.ordered, _dtype_key(pd, dtype.categories.dtype))
    return (_qualname(dtype), repr(dtype), _qualname(tz), str(tz))


def _zone(dtype: Any) -> bool:
    """True for a tz-aware datetime dtype (pandas' own, not Arrow's ``timestamp[..., tz]``)."""
    return getattr(dtype, "tz", None) is not None and getattr(dtype, "kind", "") == "M"


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _dtypes(pd: Any, value: Any) -> list[Any]:
    """The dtypes of a value's data and index levels."""
    index = value.index
    own = [value.dtype] if type(value) is pd.Series else list(value.dtypes)
    return own + [index.get_level_values(i).dtype for i in range(index.nlevels)]


def _dtype_keys(pd: Any, value: Any) -> list[Any]:
    """:func:`_dtype_key` of each of :func:`_dtypes`, after the type of the index."""
    return [_qualname(value.index), *(_dtype_key(pd, dtype) for dtype in _dtypes(pd, value))]


def _same_dtypes(pd: Any, probe: Any, value: Any) -> bool:
    """True when the probe has the value's type, dtypes and number of rows (up to the probe's).

    Rows count too: a frame without columns keeps its rows only as its index.
    """
    return (
        type(probe) is type(value)
        and len(probe) == min(len(value), _PROBE_ROWS)
        and _dtypes(pd, probe) == _dtypes(pd, value)
        and _dtype_keys(pd, probe) == _dtype_keys(pd, value)
    )


def _as_objects(column: Any) -> Any:
    """An Arrow column as a NumPy object array (``None`` for nulls, as stored)."""
    return column.to_numpy(zero_copy_only=False)


def _pandas_from(table: Any, meta: dict[str, Any], views: bool = False) -> Any:
    # views: one block per column on the (mapped) table's own buffers, no copy, read-only
    # (pandas refuses writes into them, as NumPy does for a read-only memmap).
    frame = table.to_pandas(split_blocks=views)
    pd = sys.modules["pandas"]  # imported by ``to_pandas``
    for i in meta["objects"]:
        frame.isetitem(i, pd.Series(_as_objects(table.column(str(i))), frame.index, object))
    for i, zone in meta.get("zones", {}).items():
        column = frame.iloc[:, i]
        if _zone(column.dtype) and column.dtype.tz is not zone:
            frame.isetitem(i, column.dt.tz_convert(zone))
    index = frame.index
    if meta["object_index"]:
        index = pd.Index(_as_objects(table.column("__index_level_0__")), dtype=object)
    zone = meta.get("index_zone")
    if zone is not None and _zone(index.dtype) and index.dtype.tz is not zone:
        index = index.tz_convert(zone)
    index = index.set_names(meta["index_names"])
    freq = meta["freq"]
    if freq is not None:
        index = type(index)(index, freq=freq)
    frame.index = index
    if meta["type"] == _PANDAS_SERIES:
        result = frame.iloc[:, 0]
        result.name = meta["name"]
    else:
        frame.columns = meta["columns"]
        result = frame
    result.attrs = meta["attrs"]
    if "dtypes" in meta and _dtype_keys(pd, result) != meta["dtypes"]:
        msg = "stored table comes back with other dtypes than were stored"
        raise ValueError(msg)
    if not meta.get("duplicates", True):
        result = result.set_flags(allows_duplicate_labels=False)
    return result


# -- polars ------------------------------------------------------------------------------


def _polars_table(pl: Any, value: Any) -> Any:

    try:
        table = value.to_arrow()
        back = pl.from_arrow(_through_ipc(table.slice(0, _PROBE_ROWS)))
    except Exception:  # a type Arrow cannot hold: the pickler decides
        return None
    if not isinstance(back, pl.DataFrame) or back.schema != value.schema:
        return None
    return _with_meta(table, {"type": _POLARS_FRAME})
