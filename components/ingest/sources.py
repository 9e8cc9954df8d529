"""Readers per source kind: each turns one configured source into a raw DataFrame.

Readers only fetch and parse; types, keys and generated columns are `normalize`'s job.
Every failure is a `SeamlessError` whose message starts with "Table '<name>'" and names
the file, URL or database (passwords masked).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import warnings
import zlib
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import pandas as pd
import requests

from components.common import storage
from components.common.config import ApiSource, FileSource, SqlSource
from components.common.connect import first_connection
from components.common.errors import SeamlessError
from components.ingest.fetch import get_with_retries, mask_url, with_params
from components.ingest.json_records import (
    RepeatedKey,
    check_records,
    read_json_records,
    records_frame,
    unique_keys,
)

log = logging.getLogger(__name__)

AnySource = FileSource | SqlSource | ApiSource

# Delimiters we recognise when a CSV header comes back as one column.
DELIMITERS = (",", ";", "\t", "|")
# Downloading a file over HTTP has no config knobs; these match ApiSource's defaults.
_FILE_HTTP_TIMEOUT_S = 60.0
_FILE_HTTP_RETRIES = 3
_FILE_HTTP_BACKOFF_S = 0.5


def short_reason(exc: BaseException | str, limit: int = 180) -> str:
    """First line of an error, trimmed, so it fits inside a one-sentence message."""
    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
    # Drivers add advice after the first sentence; keep the cause only.
    text = re.split(r"\.\s+(?=[A-Z])", text, maxsplit=1)[0]
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.rstrip(".")


# ---------------------------------------------------------------- locations and display


def resolve_file(uri: str, data_dir: str | Path | None, what: str = "File source") -> str | Path:
    """A local `Path`, or the http(s) URL / object-store URI (s3://...) as a string.

    A relative path under an object-store data directory becomes a URI below it.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return uri
    if scheme in storage.OBJECT_STORE_SCHEMES:
        return uri
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SeamlessError(
                f"{what}: file URI {uri} names host '{parts.netloc}'; only local file:// URIs work."
            )
        return Path(url2pathname(unquote(parts.path)))
    if len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise SeamlessError(
            f"{what}: URI {mask_url(uri)} uses scheme '{scheme}'; use a local path, file://, "
            "http(s):// or an object store URI such as s3://."
        )
    if data_dir is not None and storage.is_remote(str(data_dir)) and not Path(uri).is_absolute():
        if ".." in Path(uri).parts:
            raise SeamlessError(
                f"{what}: relative path {uri} points outside the data directory {data_dir}."
            )
        return storage.join(data_dir, uri)
    path = Path(uri).expanduser()
    if not path.is_absolute():
        base = (Path(data_dir) if data_dir is not None else Path.cwd()).resolve()
        path = (base / path).resolve()
        # A relative source stays inside the data directory (absolute paths are explicit).
        if base not in path.parents and path != base:
            raise SeamlessError(
                f"{what}: relative path {uri} points outside the data directory {base}."
            )
    return path.absolute()


def describe_source(source: AnySource, data_dir: str | Path | None = None) -> str:
    """Where the table comes from, for messages and manifests; passwords and tokens masked."""
    if isinstance(source, FileSource):
        try:
            where = resolve_file(source.uri, data_dir)
        except SeamlessError:
            return mask_url(source.uri)
        return mask_url(where) if isinstance(where, str) else str(where)
    return mask_url(source.url)


def _sqlite_path(url: Any, data_dir: str | Path | None) -> Path | None:
    """The SQLite database file of a SQLAlchemy URL (relative to `data_dir`), or None."""
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    path = Path(db).expanduser()
    if not path.is_absolute() and data_dir is not None:
        path = Path(data_dir) / path
    return path.absolute()


# ---------------------------------------------------------------- files


_SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
_JSON = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


def format_of(name: str, head: bytes, declared: str, shown: str, what: str) -> str:
    """`csv`, `parquet` or `json`: as declared, else by the name and the first bytes. A
    spreadsheet is refused here: as CSV it would fail on some later line, or worse, read
    as one odd column."""
    if declared != "auto":
        return declared
    lower = name.lower()
    if lower.endswith((".parquet", ".pq", ".parq")):
        return "parquet"
    if lower.endswith((".csv", ".tsv", ".txt", ".csv.gz")):
        return "csv"
    if lower.endswith(_JSON):
        return "json"
    if head.startswith(b"PAR1"):
        return "parquet"
    if lower.endswith(_SPREADSHEETS) or head.startswith(b"PK\x03\x04"):
        raise SeamlessError(
            f"{what}: {shown} is a spreadsheet or ZIP archive, not CSV, Parquet or JSON; "
            "export it as CSV or Parquet, or set the source's format to csv if it is CSV "
            "after all."
        )
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return "json"
    return "csv"


def source_format(source: FileSource, name: str, head: bytes, shown: str, what: str) -> str:
    """`format_of` a file source's file; `column_names` fits a CSV file only."""
    fmt = format_of(name, head, source.format, shown, what)
    if source.column_names and fmt != "csv":
        raise SeamlessError(
            f"{what}: {shown} is {'a Parquet' if fmt == 'parquet' else 'a JSON'} file, which "
            "names its own columns; column_names is for a CSV file without a header row, "
            "so leave it out."
        )
    return fmt


def _read_file(
    source: FileSource, data_dir: str | Path | None, what: str, expected: Collection[str]
) -> pd.DataFrame:
    where = resolve_file(source.uri, data_dir, what)
    if isinstance(where, str) and storage.scheme_of(where) in storage.OBJECT_STORE_SCHEMES:
        return _read_object_store(source, where, what, expected)
    if isinstance(where, str):  # a download: its bytes are parsed as an object's are
        with requests.Session() as session:
            resp = get_with_retries(
                session,
                where,
                what=what,
                timeout_s=_FILE_HTTP_TIMEOUT_S,
                retries=_FILE_HTTP_RETRIES,
                backoff_s=_FILE_HTTP_BACKOFF_S,
            )
        shown = mask_url(where)
        if not resp.content:
            raise SeamlessError(f"{what}: {shown} is empty (0 bytes).")
        return _parse(source, urlsplit(where).path, resp.content, shown, what, expected)
    fmt = source_format(source, where.name, local_file_head(where, what), str(where), what)
    if fmt == "parquet":
        return _read_parquet(where, str(where), what)
    if fmt == "json":
        return read_json_records(where.read_bytes(), str(where), what, source.encoding)
    if not where.name.lower().endswith(".gz"):
        refuse_nul_bytes(where, str(where), what)
    return _read_csv(where, str(where), what, source, expected)


def local_file_head(path: Path, what: str) -> bytes:
    """The first bytes of a local data file (enough to tell Parquet and JSON from CSV);
    fails if it is missing, not a file or empty."""
    if not path.exists():
        raise SeamlessError(f"{what}: file {path} does not exist.")
    if not path.is_file():
        raise SeamlessError(f"{what}: {path} is not a file.")
    if path.stat().st_size == 0:
        raise SeamlessError(f"{what}: file {path} is empty (0 bytes).")
    with path.open("rb") as fh:
        return fh.read(64)


def _about(what: str, exc: SeamlessError) -> SeamlessError:
    """A storage sentence ("Cannot read s3://...") as part of the table's own sentence."""
    text = str(exc)
    return SeamlessError(f"{what}: {text[:1].lower()}{text[1:]}")


def _object_bytes(uri: str, what: str) -> bytes:
    try:
        data = storage.read_bytes(uri)
    except SeamlessError as exc:
        raise _about(what, exc) from None
    if not data:
        raise SeamlessError(f"{what}: {uri} is empty (0 bytes).")
    return data


def _parse(
    source: FileSource, name: str, data: bytes, shown: str, what: str, expected: Collection[str]
) -> pd.DataFrame:
    fmt = source_format(source, name, data[:64], shown, what)
    if fmt == "parquet":
        return _read_parquet(io.BytesIO(data), shown, what)
    if fmt == "json":
        return read_json_records(data, shown, what, source.encoding)
    if not name.lower().endswith(".gz"):
        refuse_nul_bytes(data, shown, what)
    return _read_csv(io.BytesIO(data), shown, what, source, expected)


_DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".parquet", ".pq", ".parq", *_JSON)


def _read_object_store(
    source: FileSource, uri: str, what: str, expected: Collection[str]
) -> pd.DataFrame:
    """One object, or every CSV/Parquet/JSON object under a prefix ending in '/' (name
    order)."""
    if not uri.endswith("/"):
        return _parse(source, urlsplit(uri).path, _object_bytes(uri, what), uri, what, expected)
    try:
        listed = storage.list_files(uri)
    except SeamlessError as exc:
        raise _about(what, exc) from None
    # Markers such as _SUCCESS and hidden objects are not data.
    objects = [
        u
        for u in listed
        if u.lower().endswith(_DATA_SUFFIXES) and not u.rsplit("/", 1)[-1].startswith(("_", "."))
    ]
    if not objects:
        raise SeamlessError(
            f"{what}: the prefix {uri} holds no CSV, Parquet or JSON object "
            f"({len(listed)} other objects)."
        )
    frames = [_parse(source, u, _object_bytes(u, what), u, what, expected) for u in objects]
    columns = [list(f.columns) for f in frames]
    # JSON records name their values: parts may order or leave out keys, as lines do.
    named = all(u.lower().endswith(_JSON) for u in objects)
    for u, cols in zip(objects[1:], columns[1:], strict=True):
        if cols != columns[0] and not named:
            raise SeamlessError(
                f"{what}: {u} has columns {cols[:10]} where {objects[0]} has {columns[0][:10]}; "
                "every object under the prefix must have the same columns."
            )
    log.info("%s: %d objects under %s", what, len(objects), uri)
    return pd.concat(frames, ignore_index=True)


def refuse_nul_bytes(content: bytes | Path, shown: str, what: str) -> None:
    """The CSV parser silently cuts values at a NUL byte: refuse such text instead."""
    if isinstance(content, bytes):
        offset = content.find(b"\x00")
    else:
        offset, base = -1, 0
        with content.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                hit = chunk.find(b"\x00")
                if hit >= 0:
                    offset = base + hit
                    break
                base += len(chunk)
    if offset >= 0:
        raise SeamlessError(
            f"{what}: {shown} has a NUL byte at offset {offset}; it is binary, not CSV text."
        )


def _read_parquet(handle: Any, shown: str, what: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(handle)
        frame = table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SeamlessError(
            f"{what}: {shown} is not a readable Parquet file ({short_reason(exc)})."
        ) from None
    # pandas makes an integer column with nulls float64, which rounds values past 2**53
    # (long ids, account numbers) silently: such a column comes as a nullable integer.
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if pa.types.is_integer(field.type) and column.null_count:
            exact = (
                pd.UInt64Dtype() if pa.types.is_unsigned_integer(field.type) else pd.Int64Dtype()
            )
            frame[field.name] = column.to_pandas(types_mapper=lambda _, d=exact: d).array
    return frame


def nameless_columns(header: list[Any], shown: str, what: str) -> list[int]:
    """Positions (from 0) of the header's empty names; refuses a name given twice.

    CSV readers rename such columns on their own (pandas `income.1` and `Unnamed: 6`,
    Spark `income3` and `_c6`): the engines would disagree, and a second `income` would
    be stored under a name nobody gave it."""
    names = ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in header]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name and name in seen:
            raise SeamlessError(
                f"{what}: {shown} has two columns named '{name}' (columns {seen[name] + 1} "
                f"and {i + 1} of the header); rename one in the source."
            )
        seen.setdefault(name, i)
    return [i for i, name in enumerate(names) if not name]


def empty_nameless_sentence(
    positions: list[int], holding: list[int], shown: str, what: str
) -> str | None:
    """Refuses a column without a name that holds values; what to log about the others
    (a delimiter ending every line gives one with neither name nor value)."""
    if holding:
        raise SeamlessError(
            f"{what}: column {holding[0] + 1} of {shown} has no name in the header but holds "
            "values (a row index written with the data?); name it in the header, or "
            "remove it."
        )
    if not positions:
        return None
    listed = ", ".join(str(i + 1) for i in positions)
    return (
        f"{what}: left out column {listed} of {shown}: no name in the header and no value "
        "in any row (a delimiter ending every line)."
    )


def _read_csv(
    handle: Any, shown: str, what: str, source: FileSource, expected: Collection[str]
) -> pd.DataFrame:
    delimiter = source.delimiter
    encoding = pandas_encoding(source.encoding)
    header: Any = []
    try:
        # pandas infers compression from a path's suffix only: an object or a download
        # of x.csv.gz arrives as bytes.
        if isinstance(handle, io.BytesIO) and handle.getbuffer()[:2] == b"\x1f\x8b":
            handle = io.BytesIO(gzip.decompress(handle.getvalue()))
        names = source.column_names
        nameless: list[int] = []
        if names is None:
            first = pd.read_csv(
                handle,
                sep=delimiter,
                header=None,
                nrows=1,
                dtype=str,
                keep_default_na=False,
                encoding=encoding,
            )
            if hasattr(handle, "seek"):
                handle.seek(0)
            nameless = nameless_columns(list(first.iloc[0]) if len(first) else [], shown, what)
            header = pd.read_csv(handle, sep=delimiter, nrows=0, encoding=encoding).columns
            if hasattr(handle, "seek"):
                handle.seek(0)
        else:
            header = names  # no header row: every line is data
        # Only an empty field is missing, plus the source's `missing_values` outside the
        # declared columns; in those, ingest counts the markers (`count_missing_markers`).
        # pandas' own list ("NA", "null", "n/a", ...) would silently erase real values.
        markers = ["", *source.missing_values]
        na = {c: [""] if c in expected else markers for c in header}
        # Declared columns stay text so normalize sees the raw values ("007", "1e3").
        with warnings.catch_warnings():
            # A row wider than column_names: pandas cuts it and warns; check_row_widths
            # refuses it below with the row named.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            df = pd.read_csv(
                handle,
                sep=delimiter,
                header=None if names else "infer",
                names=names,
                index_col=False,  # never a data column taken as the index (check_row_widths)
                dtype={c: str for c in expected},
                encoding=encoding,
                skipinitialspace=False,
                keep_default_na=False,
                na_values=na,
                float_precision="round_trip",  # exact undeclared floats (see normalize)
            )
    except pd.errors.EmptyDataError:
        empty = "no rows" if source.column_names else "no header row"
        raise SeamlessError(f"{what}: file {shown} is empty ({empty}).") from None
    except pd.errors.ParserError as exc:
        other = sniff_delimiter(sample_text(handle), delimiter)
        if other is None and len(header):
            # A row of the wrong width: named as the Spark engine names it, by data row.
            check_row_widths(
                handle, len(header), shown, what, delimiter, encoding, source.column_names
            )
        raise SeamlessError(_parser_error(exc, shown, what, delimiter, other)) from None
    except UnicodeDecodeError as exc:
        utf8 = encoding == "utf-8-sig"
        hint = " (set the source's encoding, e.g. cp1252 for a Windows export)" if utf8 else ""
        raise SeamlessError(
            f"{what}: {shown} is not {'UTF-8' if utf8 else source.encoding} text (byte "
            f"{exc.object[exc.start]:#04x} at offset {exc.start}), so it cannot be read as "
            f"CSV{hint}."
        ) from None
    except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt compressed files
        raise SeamlessError(
            f"{what}: {shown} cannot be decompressed or read ({short_reason(exc)})."
        ) from None
    check_delimiter([str(c) for c in df.columns], expected, handle, shown, what, delimiter)
    check_row_widths(handle, len(df.columns), shown, what, delimiter, encoding, source.column_names)
    if nameless:
        holding = [i for i in nameless if df.iloc[:, i].notna().any()]
        note = empty_nameless_sentence(nameless, holding, shown, what)
        log.warning("%s", note)
        df = df.drop(columns=[df.columns[i] for i in nameless])
    return _undeclared_markers_as_null(df, source.missing_values, expected)


# What spaces around a missing-value marker may be (`39, ?, 77516` writes " ?"); ASCII
# only, as the Spark engine matches them too (MARKER_SPACE_PATTERN).
MARKER_SPACE = " \t\r\n\f\v"
MARKER_SPACE_PATTERN = "^[ \\t\\r\\n\\f\\x0B]+|[ \\t\\r\\n\\f\\x0B]+$"


def marker_text(values: pd.Series) -> pd.Series:
    """Text values without the spaces around them, to compare with `missing_values`
    (anything else null)."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.str.strip(MARKER_SPACE)
    # JSON records and Parquet values mix text with numbers and nested values.
    stripped = [v.strip(MARKER_SPACE) if isinstance(v, str) else None for v in values]
    return pd.Series(stripped, index=values.index, dtype=object)


def _undeclared_markers_as_null(
    df: pd.DataFrame, markers: list[str], expected: Collection[str]
) -> pd.DataFrame:
    """The reader took `markers` written exactly as missing; with spaces around too."""
    for col in df.columns:
        if markers and col not in expected and df[col].dtype == object:
            hit = marker_text(df[col]).isin(markers)
            if hit.any():
                df[col] = df[col].mask(hit)
    return df


def pandas_encoding(encoding: str) -> str:
    """The codec pandas reads a CSV with: UTF-8 may open with a byte order mark."""
    import codecs

    name = codecs.lookup(encoding).name
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def check_row_widths(
    handle: Any,
    width: int,
    shown: str,
    what: str,
    delimiter: str,
    encoding: str = "utf-8-sig",
    column_names: list[str] | None = None,
) -> None:
    """Refuse rows whose number of fields is not the header's (or, for a file without
    a header row, the number of `column_names`).

    pandas pads a short row (a file cut off mid-line) with nulls, and with one field too
    many on every data row it takes the first column as the index and shifts every value
    one column over; Spark's reader refuses both. pyarrow's parser counts the fields
    (converting one column only, a few percent of the read)."""
    import pyarrow as pa
    import pyarrow.csv as pc

    if len(delimiter) != 1:  # a pattern pandas splits on; pyarrow takes one character
        return
    if hasattr(handle, "seek"):
        handle.seek(0)
    source = handle if hasattr(handle, "read") else str(handle)
    bad: list[Any] = []

    def keep(row: Any) -> str:
        bad.append(row)
        return "skip"

    names = [f"f{i}" for i in range(width)]
    try:
        pc.read_csv(
            source,
            # One thread: as fast for this one-column pass, and rows keep their numbers.
            read_options=pc.ReadOptions(
                column_names=names,
                skip_rows=0 if column_names else 1,
                use_threads=False,
                encoding="utf8" if encoding == "utf-8-sig" else encoding,
            ),
            parse_options=pc.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=keep
            ),
            convert_options=pc.ConvertOptions(
                include_columns=names[:1], column_types={names[0]: pa.string()}
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        reason = short_reason(exc)
        raise SeamlessError(f"{what}: {shown} cannot be read as CSV ({reason}).") from None
    finally:
        if hasattr(handle, "seek"):
            handle.seek(0)
    if not bad:
        return
    first = min(bad, key=lambda r: r.number if r.number is not None else 1 << 62)
    header_rows = 0 if column_names else 1
    where = f"data row {first.number - header_rows}" if first.number is not None else "a row"
    expected = f"column_names lists {width}" if column_names else f"the header has {width}"
    other = sniff_delimiter(sample_text(handle), delimiter) if first.actual_columns == 1 else None
    if other is not None:  # no header row to tell the delimiter by (column_names)
        hint = f" (it looks delimited by {other!r}: set the source's delimiter to {other!r})"
    elif first.actual_columns < width:
        hint = " (a file cut short, or a value with the delimiter but no quotes?)"
    elif len(bad) > 1 and all(r.actual_columns == width + 1 for r in bad):
        ending = "line" if column_names else "data line but not the header"
        hint = f" (a delimiter ending every {ending}?)"
    else:
        hint = " (a value holding the delimiter without quotes?)"
    others = f"; {len(bad) - 1} other rows too" if len(bad) > 1 else ""
    raise SeamlessError(
        f"{what}: {where} of {shown} has {first.actual_columns} fields where {expected}"
        f"{hint}{others}. Nothing was read."
    )


def check_delimiter(
    columns: list[str],
    expected: Collection[str],
    handle: Any,
    shown: str,
    what: str,
    delimiter: str,
) -> None:
    """Declared columns missing behind a single header column: say which delimiter fits."""
    missing = [c for c in expected if c not in columns]
    if not missing or len(columns) != 1:
        return
    header = columns[0]
    other = sniff_delimiter(sample_text(handle), delimiter)
    if other is None:  # a one-line file: judge by the header alone
        other = next((d for d in DELIMITERS if d != delimiter and d in header), None)
    if other is not None:
        raise SeamlessError(
            f"{what}: {shown} looks like it is delimited by {other!r} not {delimiter!r} "
            f"(its header is the single column {header[:80]!r}); set the source's "
            f"delimiter to {other!r}."
        )


_SNIFF_BYTES = 64 * 1024
_PARSER_LINE = re.compile(r"[Ee]xpected (\d+) fields in line (\d+), saw (\d+)")


def sample_text(handle: Any) -> str:
    """The first 64 KiB of the file as text (decompressed if gzip), for sniffing."""
    try:
        if isinstance(handle, io.BytesIO):
            raw = handle.getvalue()[: _SNIFF_BYTES * 4]
        else:
            with Path(handle).open("rb") as fh:
                raw = fh.read(_SNIFF_BYTES * 4)
        if raw[:2] == b"\x1f\x8b":
            raw = zlib.decompressobj(wbits=31).decompress(raw, _SNIFF_BYTES)
        return raw[:_SNIFF_BYTES].decode("utf-8-sig", errors="replace")
    except (OSError, zlib.error):
        return ""


def sniff_delimiter(sample: str, current: str) -> str | None:
    """Another delimiter that splits the sample's lines into a constant number (>1) of
    fields, quotes respected; None when none does better than `current`."""
    lines = sample.splitlines()[:200]
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line short
    if len(lines) < 2:
        return None

    def fields(delim: str) -> int | None:
        counts = {len(row) for row in csv.reader(lines, delimiter=delim) if row}
        return counts.pop() if len(counts) == 1 else None

    if (fields(current) or 0) > 1:
        return None
    best = [(n, d) for d in DELIMITERS if d != current and (n := fields(d) or 0) > 1]
    if best:
        return max(best)[1]
    # A space last: text fields hold spaces, so it only counts where nothing else splits
    # (the UCI files written with one space between values, e.g. german.data).
    return " " if current != " " and (fields(" ") or 0) > 1 else None


def _parser_error(exc: Exception, shown: str, what: str, delimiter: str, other: str | None) -> str:
    """The parser's complaint as one sentence: the line at fault and, if `other` (a
    delimiter that reads the file cleanly) is found, that delimiter."""
    reason = short_reason(exc)
    m = _PARSER_LINE.search(str(exc))
    at = ""
    if m:
        at = f" at line {m.group(2)} (expected {m.group(1)} fields, found {m.group(3)})"
        reason = ""
    hint = (
        f"; it looks like it is delimited by {other!r} not {delimiter!r}: set the source's "
        f"delimiter to {other!r}"
        if other
        else ""
    )
    detail = f" ({reason})" if reason else ""
    return f"{what}: {shown} is not valid CSV{at}{detail}{hint}."


# ---------------------------------------------------------------- SQL


def _read_sql(source: SqlSource, data_dir: str | Path | None, what: str) -> pd.DataFrame:
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    shown = mask_url(source.url)
    try:
        url = make_url(source.url)
    except ArgumentError:
        raise SeamlessError(f"{what}: {shown} is not a valid SQLAlchemy database URL.") from None
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    sqlite_file = _sqlite_path(url, data_dir)
    if sqlite_file is not None:
        # SQLite would silently create an empty database; a missing file is a config error.
        if not sqlite_file.is_file():
            raise SeamlessError(f"{what}: SQLite database file {sqlite_file} does not exist.")
        url = url.set(database=str(sqlite_file))
    if backend == "sqlite":
        connect_args["timeout"] = source.connect_timeout_s
    elif backend in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = source.connect_timeout_s
    try:
        engine = create_engine(url, connect_args=connect_args, poolclass=NullPool)
    except (NoSuchModuleError, ImportError) as exc:
        raise SeamlessError(
            f"{what}: no database driver for {shown} ({short_reason(exc)}); install it or name an "
            f"installed one in the URL, e.g. postgresql+psycopg2://."
        ) from None

    def failed(exc: BaseException, attempts: int, seconds: float) -> SeamlessError:
        reason = short_reason(getattr(exc, "orig", None) or exc)
        tried = f", after {attempts} attempts over {seconds:.0f} s" if attempts > 1 else ""
        return SeamlessError(f"{what}: cannot connect to database {shown} ({reason}{tried}).")

    try:
        # A pipeline step is a fresh pod: its first connection may be refused for a few
        # seconds (issue #14 A.1); SQLite files are local, nothing to wait for.
        budget = 0.0 if backend == "sqlite" else None
        conn = first_connection(shown, engine.connect, failed, budget)
        # The connection is closed without commit, so a query can never change the database.
        with conn:
            try:
                result = conn.execute(text(source.query))
                if not result.returns_rows:
                    raise SeamlessError(
                        f"{what}: the query on {shown} returned no result set; use a SELECT."
                    )
                columns = [str(c) for c in result.keys()]  # noqa: SIM118 (Result has no __iter__ over keys)
                rows = result.fetchall()
            except (DBAPIError, SQLAlchemyError) as exc:
                reason = short_reason(getattr(exc, "orig", None) or exc)
                raise SeamlessError(f"{what}: SQL query failed on {shown} ({reason}).") from None
    finally:
        engine.dispose()
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)


# ---------------------------------------------------------------- HTTP JSON API


def _page_records(resp: requests.Response, source: ApiSource, what: str) -> tuple[list[Any], Any]:
    shown = mask_url(resp.url)
    try:
        body = resp.json(object_pairs_hook=unique_keys)
    except RepeatedKey as exc:
        raise SeamlessError(f"{what}: {shown} answered a record that {exc.problem()}.") from None
    except ValueError:
        start = resp.text[:40].strip()
        raise SeamlessError(
            f"{what}: {shown} answered a body that is not JSON (Content-Type "
            f"{resp.headers.get('Content-Type', 'unset')}, starting {start!r})."
        ) from None
    if source.records_key is None:
        records = body
    elif isinstance(body, dict) and source.records_key in body:
        records = body[source.records_key]
    else:
        found = sorted(str(k) for k in body)[:10] if isinstance(body, dict) else type(body).__name__
        raise SeamlessError(
            f"{what}: {shown} answered JSON without the records key {source.records_key!r} "
            f"(found {found})."
        )
    if not isinstance(records, list):
        raise SeamlessError(
            f"{what}: {shown} holds a JSON {type(records).__name__} where a list of records "
            f"was expected."
        )
    check_records(records, shown, what)
    return records, body


def _read_api(source: ApiSource, what: str) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    size = {source.page_size_param: source.page_size} if source.page_size_param else {}
    with requests.Session() as session:
        session.headers.update({"Accept": "application/json", **source.headers})

        def fetch(url: str) -> tuple[list[Any], Any]:
            resp = get_with_retries(
                session,
                url,
                what=what,
                timeout_s=source.timeout_s,
                retries=source.retries,
                backoff_s=source.backoff_s,
            )
            return _page_records(resp, source, what)

        if source.pagination == "none":
            records, _ = fetch(source.url)
        elif source.pagination == "page":
            for page in range(1, source.max_pages + 2):
                recs, _ = fetch(with_params(source.url, {source.page_param: page, **size}))
                if not recs:
                    break
                if page > source.max_pages:
                    raise SeamlessError(
                        f"{what}: {mask_url(source.url)} still returns records after max_pages="
                        f"{source.max_pages} pages; raise max_pages if that is expected."
                    )
                records.extend(recs)
        else:
            url = with_params(source.url, size) if size else source.url
            seen = {url}
            for page in range(1, source.max_pages + 1):
                recs, body = fetch(url)
                records.extend(recs)
                nxt = body.get(source.next_key) if isinstance(body, dict) else None
                if not nxt:
                    break
                if not isinstance(nxt, str):
                    raise SeamlessError(
                        f"{what}: {mask_url(url)} has a non-string {source.next_key!r} ({nxt!r})."
                    )
                url = urljoin(url, nxt)
                if url in seen:
                    raise SeamlessError(
                        f"{what}: {source.next_key!r} links loop back to {mask_url(url)} after "
                        f"{page} pages."
                    )
                seen.add(url)
            else:
                raise SeamlessError(
                    f"{what}: {mask_url(source.url)} still links to a next page after max_pages="
                    f"{source.max_pages} pages; raise max_pages if that is expected."
                )
    log.info("%s: %d records", what, len(records))
    return records_frame(records)


# ---------------------------------------------------------------- entry point


def read_source(
    source: AnySource,
    data_dir: str | Path | None,
    table: str,
    expected_columns: Collection[str] = (),
) -> pd.DataFrame:
    """Read one table's raw rows from `source`.

    `data_dir` anchors relative file paths and relative SQLite database files
    (None: the current directory). `expected_columns` are the columns the table
    declares: CSV reads them as text and uses them to spot a wrong delimiter.
    """
    what = f"Table '{table}'"
    if isinstance(source, FileSource):
        return _read_file(source, data_dir, what, expected_columns)
    if isinstance(source, SqlSource):
        return _read_sql(source, data_dir, what)
    return _read_api(source, what)
