"""JSON records as a raw table: JSON-lines and JSON-array files, and API pages.

Values stay the Python values JSON gives (object columns), so `normalize` sees 007 as
the text "007" and 900000000000000001 as that integer: a typed frame would make an
integer column with a missing value float64 and round every id past 2**53.
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from typing import Any

import numpy as np
import pandas as pd

from components.common.errors import SeamlessError

# Records parsed and framed per chunk: a JSON-lines file's dicts are held one chunk at a
# time, not all at once.
_CHUNK_LINES = 100_000


class RepeatedKey(Exception):
    """A JSON object naming one key twice: Python's json would keep the last value and
    drop the other without a word, so it is refused instead."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def problem(self) -> str:
        return (
            f"has the key {self.key!r} twice in one object (JSON readers differ on which "
            "value counts); keep one"
        )


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` that refuses an object repeating a key."""
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return record


def loads(text: str) -> Any:
    """JSON text as Python values; an object repeating a key raises `RepeatedKey`."""
    return json.loads(text, object_pairs_hook=unique_keys)


def check_records(records: list[Any], shown: str, what: str, unit: str = "record") -> None:
    """Refuse a record that is not a JSON object (`unit` names how the user finds it)."""
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise SeamlessError(
                f"{what}: {unit} {i + 1} of {shown} is a JSON {json_type(rec)}, not an object "
                "with one value per column."
            )


def json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def is_nested(value: Any) -> bool:
    """A JSON object or array, or a Parquet struct, list or map value (pyarrow gives
    dicts, numpy arrays and lists of pairs)."""
    return isinstance(value, dict | list | tuple | np.ndarray)


def json_text(value: Any) -> Any:
    """A nested value as canonical JSON text, hashable and stable; any other value as
    it is."""
    if is_nested(value):
        return json.dumps(value, sort_keys=True, default=_plain)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)  # dates, decimals, bytes: as their text


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per record, one object column per key (in the order keys first appear);
    a key a record lacks is null there."""
    return pd.DataFrame(records, dtype=object) if records else pd.DataFrame()


def read_json_records(data: bytes, shown: str, what: str, encoding: str) -> pd.DataFrame:
    """A file of JSON records: one object per line (JSON lines), or one array of objects.
    Gzip is recognized by its first bytes; blank lines are not records."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise SeamlessError(f"{what}: {shown} cannot be decompressed ({exc}).") from None
    name = codecs.lookup(encoding).name
    try:
        text = data.decode("utf-8-sig" if name in ("utf-8", "utf-8-sig") else name)
    except UnicodeDecodeError as exc:
        raise SeamlessError(
            f"{what}: {shown} is not {encoding} text (byte {exc.object[exc.start]:#04x} at "
            f"offset {exc.start}), so it cannot be read as JSON; set the source's encoding."
        ) from None
    start = text.lstrip()[:1]
    if not start:
        raise SeamlessError(f"{what}: {shown} holds no JSON records (only white space).")
    if start == "[":
        return _array(text, shown, what)
    frame = _lines(text, shown, what)
    if len(frame) == 1:
        _refuse_wrapped(frame.iloc[0].to_dict(), shown, what)
    return frame


def _refuse_wrapped(record: dict[str, Any], shown: str, what: str) -> None:
    """One object holding the records under a key (`{"data": [{...}, ...]}`), as APIs
    answer, would be one row: say where the records are instead."""
    for key, value in record.items():
        if isinstance(value, list) and len(value) > 1 and all(isinstance(v, dict) for v in value):
            raise SeamlessError(
                f"{what}: {shown} is one JSON object whose {key!r} holds {len(value)} records; "
                "write the records one per line (JSON lines) or as one array, or read the "
                f"URL that answers it with a source of kind: api (records_key: {key})."
            )


def _array(text: str, shown: str, what: str) -> pd.DataFrame:
    try:
        records = loads(text)
    except RepeatedKey as exc:
        raise SeamlessError(
            f"{what}: {_element_repeating(text)} of {shown} {exc.problem()}."
        ) from None
    except json.JSONDecodeError as exc:
        raise SeamlessError(
            f"{what}: {shown} is not valid JSON at line {exc.lineno}, column {exc.colno} "
            f"({exc.msg})."
        ) from None
    if not isinstance(records, list):  # '[' opened it, so this is unreachable but typed
        raise SeamlessError(f"{what}: {shown} is not a JSON array of records.")
    check_records(records, shown, what, unit="array element")
    return records_frame(records)


def _element_repeating(text: str) -> str:
    """Which element of a JSON array (known to repeat a key somewhere) does, and on
    which line it starts: the decoder's hook cannot tell."""
    decoder = json.JSONDecoder(object_pairs_hook=unique_keys)
    at = text.index("[") + 1
    number = 0
    while True:
        while text[at] in " \t\r\n,":
            at += 1
        if text[at] == "]":  # not reached: some element repeats a key
            return "an array element"
        number += 1
        try:
            _, at = decoder.raw_decode(text, at)
        except RepeatedKey:
            return f"array element {number} (line {text.count(chr(10), 0, at) + 1})"


def _lines(text: str, shown: str, what: str) -> pd.DataFrame:
    # Split at \n only: str.splitlines also splits at U+2028 and other separators that
    # JSON strings may hold as they are.
    lines = text.split("\n")
    numbered = [(i, line.rstrip("\r")) for i, line in enumerate(lines, 1) if line.strip()]
    frames = []
    for at in range(0, len(numbered), _CHUNK_LINES):
        chunk = numbered[at : at + _CHUNK_LINES]
        try:
            # One array per chunk: the decoder's per-call cost dominates on short lines.
            records = loads("[" + ",".join(line for _, line in chunk) + "]")
        except (json.JSONDecodeError, RepeatedKey):
            records = [_one_line(number, line, shown, what) for number, line in chunk]
        if len(records) != len(chunk):  # a line such as `1, 2` holds two values
            records = [_one_line(number, line, shown, what) for number, line in chunk]
        for (number, _), rec in zip(chunk, records, strict=True):
            if not isinstance(rec, dict):
                raise SeamlessError(
                    f"{what}: line {number} of {shown} is a JSON {json_type(rec)}, not an "
                    "object with one value per column."
                )
        frames.append(records_frame(records))
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True, sort=False).astype(object)


def _one_line(number: int, line: str, shown: str, what: str) -> Any:
    try:
        return loads(line)
    except RepeatedKey as exc:
        raise SeamlessError(f"{what}: line {number} of {shown} {exc.problem()}.") from None
    except json.JSONDecodeError as exc:
        hint = (
            " (one record written over several lines? JSON lines hold one object per line)"
            if line.strip() in ("{", "[")
            else ""
        )
        raise SeamlessError(
            f"{what}: line {number} of {shown} is not one JSON value ({exc.msg}: column "
            f"{exc.colno}){hint}."
        ) from None
