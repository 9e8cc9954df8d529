"""Reading: where the table comes from (`plan_source`) and its raw rows (`read_table`)."""

from __future__ import annotations

import codecs
import gzip
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

import pandas as pd

from components.common.config import FileSource, SqlSource
from components.common.errors import SeamlessError
from components.ingest.sources import marker_text, pandas_encoding, read_source
from pipelines.scaffold.common import PASSWORD_VAR, identifier, show


@dataclass(frozen=True)
class SourcePlan:
    """Where the table is read from now, and how the config names it."""

    read: FileSource | SqlSource
    """The source as `init` reads it (absolute paths, the password as given)."""
    config: FileSource | SqlSource
    """The source written into the config (paths relative to the data dir if possible,
    the password as `${SEAMLESS_DB_PASSWORD}`)."""
    shown: str
    """The source for messages (passwords masked)."""
    table: str
    """Table name in the config."""
    notes: tuple[str, ...] = ()
    password: str | None = None
    """The database password (URL-encoded), when the config reads it from PASSWORD_VAR."""


def is_database_url(text: str) -> bool:
    """A SQLAlchemy URL (`dialect[+driver]://...`), not a file path or http(s)/file URI."""
    scheme = urlsplit(text).scheme.lower()
    return "://" in text and len(scheme) > 1 and scheme not in ("http", "https", "file")


def plan_source(
    from_: str,
    data_dir: Path,
    *,
    query: str | None = None,
    table: str | None = None,
    cwd: Path | None = None,
    column_names: list[str] | None = None,
) -> SourcePlan:
    """The source for `--from` (a CSV/Parquet/JSON path or URL, or a SQLAlchemy URL);
    `column_names` for a CSV file without a header row."""
    cwd = (cwd or Path.cwd()).resolve()
    data_dir = data_dir.resolve()
    if is_database_url(from_):
        if column_names:
            raise SeamlessError(
                f"--column-names applies to a CSV file without a header row, but --from "
                f"{from_} is a database; drop --column-names."
            )
        return _plan_sql(from_, data_dir, query, table, cwd)
    if query or table:
        flag = "--query" if query else "--table"
        raise SeamlessError(
            f"{flag} applies to a database URL, but --from {from_} is a file; drop {flag}."
        )
    parts = urlsplit(from_)
    if parts.scheme.lower() in ("http", "https"):
        name = Path(parts.path).name or "data"
        src = FileSource(uri=from_, column_names=column_names)
        return SourcePlan(src, src, from_, identifier(Path(name).stem.split(".")[0], "data"))
    path = Path(url2pathname(unquote(parts.path))) if parts.scheme == "file" else Path(from_)
    path = path.expanduser()
    path = (path if path.is_absolute() else cwd / path).resolve()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise SeamlessError(f"--from {from_}: {path} {what}.")
    delimiter = _delimiter_of(path)
    encoding, encoding_note = _encoding_of(path)
    notes: tuple[str, ...] = (encoding_note,) if encoding_note else ()
    try:
        uri = path.relative_to(data_dir).as_posix()
    except ValueError:
        uri = str(path)
        notes += (
            f"An absolute path: {path.name} is not inside the data directory {data_dir} "
            "(init --data-dir).",
        )
    read = FileSource(
        uri=str(path), delimiter=delimiter, encoding=encoding, column_names=column_names
    )
    written = read.model_copy(update={"uri": uri})
    stem = path.name.split(".")[0]
    return SourcePlan(read, written, str(path), identifier(stem, "data"), notes)


def _file_format(path: Path) -> str:
    """`csv`, `parquet` or `json`, as ingest tells them apart (spreadsheets refused)."""
    from components.ingest.sources import format_of, local_file_head

    return format_of(path.name, local_file_head(path, "--from"), "auto", str(path), "--from")


def _delimiter_of(path: Path) -> str:
    """`,` unless another delimiter splits the first lines into a constant number of fields."""
    from components.ingest.sources import sample_text, sniff_delimiter  # ingest's sniffer

    if _file_format(path) != "csv":
        return ","
    return sniff_delimiter(sample_text(path), ",") or ","


def _encoding_of(path: Path) -> tuple[str, str]:
    """`utf-8`, or for a CSV that is not UTF-8 the Windows Western European code page
    (`latin-1` where even that cannot read a byte), with a note showing the values whose
    reading the user should check."""
    if _file_format(path) == "parquet":
        return "utf-8", ""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with opener(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    offset += exc.start
                    break
                offset += len(chunk)
            else:
                return "utf-8", ""
            fh.seek(0)
            sample = fh.read(1 << 20)
    except (OSError, EOFError):  # the reader says what is wrong, with the file named
        return "utf-8", ""
    try:
        sample.decode("cp1252")
        encoding, called = "cp1252", "Windows Western European"
    except UnicodeDecodeError:
        encoding, called = "latin-1", "ISO 8859-1"
    words = re.findall(r"[^\s,;|\t\"]*[^\x00-\x7f][^\s,;|\t\"]*", sample.decode(encoding))
    examples = [w for w in dict.fromkeys(words) if len(w) < 40]
    return encoding, (
        f"Not UTF-8 text (the byte at offset {offset} is not): read as {encoding} "
        f"({called}); values such as {show(examples, 6)} must read as meant, else set "
        "the source's `encoding` to the file's."
    )


def _plan_sql(
    url_text: str, data_dir: Path, query: str | None, table: str | None, cwd: Path
) -> SourcePlan:
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from components.ingest.fetch import mask_url

    shown = mask_url(url_text)
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise SeamlessError(f"--from {shown} is not a valid SQLAlchemy database URL.") from None
    if bool(query) == bool(table):
        raise SeamlessError(
            f"--from {shown} is a database: name the table with --table NAME or give --query "
            "SQL (one of them)."
        )
    if table:
        try:
            preparer = url.get_dialect()().identifier_preparer
        except (NoSuchModuleError, ImportError) as exc:
            raise SeamlessError(f"--from {shown}: no SQLAlchemy dialect for it ({exc}).") from None
        name = ".".join(preparer.quote(part) for part in table.split("."))
        query = f"SELECT * FROM {name}"  # identifiers quoted by the dialect
    assert query is not None
    notes: list[str] = []
    read_url, config_url = url, url
    db = url.database
    if (
        url.get_backend_name() == "sqlite"
        and db
        and db != ":memory:"
        and not db.startswith("file:")
    ):
        path = Path(db).expanduser()
        path = (path if path.is_absolute() else cwd / path).resolve()
        read_url = url.set(database=str(path))
        try:
            config_url = url.set(database=path.relative_to(data_dir).as_posix())
        except ValueError:
            config_url = read_url
            notes.append(f"An absolute path: the database is not inside {data_dir}.")
    password = None
    config_text = config_url.render_as_string(hide_password=False)
    if url.password:
        password = quote(str(url.password), safe="")
        placeholder = "SEAMLESSPASSWORDPLACEHOLDER"
        config_text = config_url.set(password=placeholder).render_as_string(hide_password=False)
        config_text = config_text.replace(placeholder, "${" + PASSWORD_VAR + "}")
        notes.append(
            f"The password is read from the environment: export {PASSWORD_VAR} (URL-encoded)."
        )
    read = SqlSource(kind="sql", url=read_url.render_as_string(hide_password=False), query=query)
    written = SqlSource(kind="sql", url=config_text, query=query)
    name = identifier(table.split(".")[-1], "data") if table else "data"
    return SourcePlan(read, written, shown, name, tuple(notes), password)


def read_table(plan: SourcePlan) -> pd.DataFrame:
    """The table's raw rows; a CSV's values all as text, so "007" stays "007"."""
    src = plan.read
    if isinstance(src, SqlSource):
        df = read_source(src, None, plan.table)
    else:
        header = _csv_header(src)
        df = read_source(src, None, plan.table, header)
        # A CSV whose header was not read here (a URL): again, as text. JSON records are
        # object columns already.
        if not header and not _is_parquet(src.uri) and df.select_dtypes(exclude=object).shape[1]:
            df = read_source(src, None, plan.table, [str(c) for c in df.columns])  # as text
    if len(df) == 0:
        raise SeamlessError(f"--from {plan.shown} has no rows.")
    df.columns = [str(c) for c in df.columns]
    dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup:
        raise SeamlessError(f"--from {plan.shown} has more than one column named {dup[0]!r}.")
    return df


def _is_parquet(uri: str) -> bool:
    return urlsplit(uri).path.lower().endswith((".parquet", ".pq", ".parq"))


def _csv_header(src: FileSource) -> list[str]:
    """Column names of a local CSV (empty for Parquet, URLs or unreadable files: the
    reader then reports the problem)."""
    path = Path(src.uri)
    if not path.is_file() or _file_format(path) != "csv":
        return []
    if src.column_names:
        return list(src.column_names)
    try:
        encoding = pandas_encoding(src.encoding)
        cols = pd.read_csv(path, sep=src.delimiter, nrows=0, encoding=encoding).columns
    except Exception:  # the reader says what is wrong, with the file named
        return []
    return [str(c) for c in cols]


def _marker_candidates() -> frozenset[str]:
    """The texts pandas takes as missing by default ("NA", "null", "#N/A", ...), and "?",
    which the UCI repository's data sets use (adult, heart disease, breast cancer)."""
    from pandas.io.parsers.readers import STR_NA_VALUES

    return frozenset(m for m in STR_NA_VALUES if m) | {"?"}


def find_missing_markers(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """column -> marker -> count of the usual missing-value texts where they keep an
    otherwise numeric or timestamp column from parsing ("NA" among numbers, say); a text
    column keeps them as values (Namibia's code is "NA")."""
    from components.ingest.normalize import CONVERTERS, nonblank

    candidates = _marker_candidates()
    found: dict[str, dict[str, int]] = {}
    for col in df.columns:
        values = df[col]
        if values.dtype != object:
            continue
        text = marker_text(values)  # " ?" in the UCI files, whose delimiter is ", "
        hit = text.isin(candidates)
        rest = values[~hit & nonblank(values)]
        if not hit.any() or rest.empty:
            continue
        if any(CONVERTERS[kind](rest).notna().all() for kind in ("float", "timestamp")):
            counts = text[hit].value_counts()
            found[str(col)] = {str(m): int(n) for m, n in counts.items()}
    return found


def with_missing_markers(plan: SourcePlan, df: pd.DataFrame) -> tuple[SourcePlan, pd.DataFrame]:
    """The plan's file source with the markers `find_missing_markers` sees (noted), and
    the table with them as missing, as ingest will read it."""
    found = find_missing_markers(df) if isinstance(plan.read, FileSource) else {}
    if not found:
        return plan, df
    markers = sorted({m for counts in found.values() for m in counts})
    where = "; ".join(
        f"{col}: " + ", ".join(f"{m!r} x{n}" for m, n in counts.items())
        for col, counts in found.items()
    )
    text = {c: marker_text(df[c]) for c in df.columns if df[c].dtype == object}
    elsewhere = {
        str(c): {str(m): int(n) for m, n in t[t.isin(markers)].value_counts().items()}
        for c, t in text.items()
        if c not in found and t.isin(markers).any()
    }
    also = "; ".join(
        f"{col}: " + ", ".join(f"{m!r} x{n}" for m, n in counts.items())
        for col, counts in elsewhere.items()
    )
    note = (
        f"Read {', '.join(repr(m) for m in markers)} as missing (missing_values), found where "
        f"numbers or timestamps are expected ({where})"
        + (f" and in text columns too ({also})" if also else "")
        + "; remove a marker if it is a real value."
    )
    out = df.copy()
    for col, t in text.items():
        out[col] = out[col].mask(t.isin(markers))
    update = {"missing_values": markers}
    assert isinstance(plan.read, FileSource) and isinstance(plan.config, FileSource)
    return (
        replace(
            plan,
            read=plan.read.model_copy(update=update),
            config=plan.config.model_copy(update=update),
            notes=(*plan.notes, note),
        ),
        out,
    )
