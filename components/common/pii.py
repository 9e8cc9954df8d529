"""Personal data: keyed pseudonyms for columns tagged `pii: pseudonymize`, and the record of
what was pseudonymized or dropped (docs/security.md, "Personal data").

A pseudonym is HMAC-SHA256, under the key in `SEAMLESS_PII_KEY`, of the value's text (an
int's decimal digits, a string's UTF-8 bytes), and keeps the column's type:

- `int`: the digest's first 8 bytes as a big-endian integer with the top bit cleared, a
  non-negative int64, so Feast entity types, serving's int64 id checks and the stored
  schemas stay as they are;
- `string`: `ps_` and the digest's first 32 hex digits (128 bits); the prefix marks the
  value as a pseudonym and keeps it from ever reading as a number.

The same value and key give the same pseudonym in every table, engine (pandas or Spark)
and process (ingest, serving, batch scoring), so joins and entity lookups still work.
Nulls stay null. The key is read from the environment when a step needs it and is never
logged, stored or put in a message; what is recorded is its fingerprint (the first 8 hex
digits of HMAC(key, "seamless-key-id")), which tells keys apart (a rotation shows) without
revealing anything about them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import ColumnType, SeamlessConfig, TableConfig
from components.common.errors import SeamlessError

log = logging.getLogger(__name__)

KEY_ENV = "SEAMLESS_PII_KEY"
"""The environment variable holding the key (a Kubernetes Secret on a cluster)."""
MIN_KEY_BYTES = 32
"""Shortest key accepted, in bytes of its UTF-8 text (surrounding whitespace removed)."""
METHOD = "hmac-sha256"
"""How pseudonyms are made, as the manifest records it."""
STRING_PREFIX = "ps_"
STRING_HEX_DIGITS = 32
_INT63 = (1 << 63) - 1
_FINGERPRINT_TEXT = b"seamless-key-id"
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
WITHHELD = "<withheld: column tagged pii>"
"""Shown in messages and the manifest instead of a tagged column's source values."""


class Pseudonymizer:
    """Keyed pseudonyms of int and string values. Its repr shows the key's fingerprint
    only; it pickles (Spark sends it to its Python workers) with the key inside."""

    __slots__ = ("_key", "_mac", "fingerprint")

    def __init__(self, key: bytes) -> None:
        self._key = key
        # Keyed once; each value costs a copy of this state and one update.
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.fingerprint = self._digest(_FINGERPRINT_TEXT).hex()[:8]

    def __repr__(self) -> str:
        return f"Pseudonymizer(key fingerprint {self.fingerprint})"

    def __reduce__(self) -> tuple[type[Pseudonymizer], tuple[bytes]]:
        return (Pseudonymizer, (self._key,))

    def _digest(self, message: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(message)
        return mac.digest()

    def of_int(self, value: int) -> int:
        """The int64 pseudonym (0 .. 2**63-1) of an integer."""
        return int.from_bytes(self._digest(str(int(value)).encode())[:8], "big") & _INT63

    def of_text(self, value: str) -> str:
        """The `ps_<32 hex>` pseudonym of a string."""
        return STRING_PREFIX + self._digest(value.encode("utf-8")).hex()[:STRING_HEX_DIGITS]

    def value(self, value: Any, kind: ColumnType) -> Any:
        """The pseudonym of one value of a column of type `kind` (None stays None).

        For an int key, integral text (a feedback record's "123") is the integer; any
        other value is pseudonymized as text, never passed through."""
        if value is None:
            return None
        if kind == "int":
            if isinstance(value, int | np.integer) and not isinstance(value, bool):
                return self.of_int(int(value))
            text = str(value).strip()
            if _INT_TEXT.fullmatch(text):
                return self.of_int(int(text))
            return self.of_text(str(value))
        return self.of_text(value if isinstance(value, str) else str(value))

    def values(self, values: list[Any], kind: ColumnType) -> list[Any]:
        return [self.value(v, kind) for v in values]

    def series(self, values: pd.Series, kind: ColumnType) -> tuple[pd.Series, int, int]:
        """(pseudonyms with the dtype ingest gives `kind`, distinct values before, after).

        Each distinct value is hashed once; nulls stay null."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        present = codes >= 0
        if kind == "int":
            mapped = np.fromiter(
                (self.of_int(int(v)) for v in uniques), dtype=np.int64, count=len(uniques)
            )
            data = np.zeros(len(values), dtype=np.int64)
            data[present] = mapped[codes[present]]
            out = pd.Series(pd.arrays.IntegerArray(data, ~present), index=values.index)
        else:
            mapped = np.array([self.of_text(str(v)) for v in uniques], dtype=object)
            text = np.full(len(values), None, dtype=object)
            text[present] = mapped[codes[present]]
            out = pd.Series(text, index=values.index, dtype=object)
        return out, len(uniques), len(set(mapped.tolist()))


def key_problem(subject: str) -> str | None:
    """Why `SEAMLESS_PII_KEY` cannot key pseudonyms, as a sentence about `subject` (what
    needs the key), or None when it can. Never says anything about the key's value."""
    text = os.environ.get(KEY_ENV, "").strip()
    if not text:
        return (
            f"{subject}, but environment variable {KEY_ENV} is not set; set it to a secret "
            f"of at least {MIN_KEY_BYTES} bytes (the same one for ingest, serving and batch "
            "scoring), e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`."
        )
    if len(text.encode("utf-8")) < MIN_KEY_BYTES:
        return (
            f"{subject}, but environment variable {KEY_ENV} is shorter than "
            f"{MIN_KEY_BYTES} bytes; use a longer random secret, e.g. from "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`."
        )
    return None


def load_key(subject: str) -> Pseudonymizer:
    """The pseudonymizer keyed by `SEAMLESS_PII_KEY`; a missing or short key is one
    sentence about `subject` (e.g. "Table 'x' column 'y' is tagged pii: pseudonymize")."""
    problem = key_problem(subject)
    if problem:
        raise SeamlessError(problem)
    return Pseudonymizer(os.environ[KEY_ENV].strip().encode("utf-8"))


def tagged_subject(table: str, column: str) -> str:
    return f"Table '{table}' column '{column}' is tagged pii: pseudonymize"


def config_key(config: SeamlessConfig) -> Pseudonymizer | None:
    """The key when some table of `config` pseudonymizes a column (checked before any
    data is read), else None."""
    tagged = config.pseudonymized()
    if not tagged:
        return None
    table, columns = next(iter(tagged.items()))
    return load_key(tagged_subject(table, columns[0]))


def table_key(table: str, table_cfg: TableConfig) -> Pseudonymizer | None:
    """`config_key` for one table."""
    columns = table_cfg.tagged("pseudonymize")
    return load_key(tagged_subject(table, columns[0])) if columns else None


def entity_key(config: SeamlessConfig, what: str) -> Pseudonymizer | None:
    """The key when the config's entity key is tagged `pii: pseudonymize` (serving and
    batch scoring then look up and log pseudonyms), else None. `what` names the user."""
    if config.entity_pii() != "pseudonymize":
        return None
    key = config.entity_key()
    return load_key(
        f"{what} takes raw '{key}' values and the config tags '{key}' pii: pseudonymize"
    )


def withheld(table_cfg: TableConfig, column: str) -> bool:
    """Whether a column's source values stay out of messages, logs and the manifest."""
    return table_cfg.pii.get(column, "keep") != "keep"


def transform_frame(
    df: pd.DataFrame, table_cfg: TableConfig, where: str, key: Pseudonymizer | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table with its `drop` columns removed and `pseudonymize` columns replaced, and
    the manifest's `pii` entry ({} when the table has no tag). Two values sharing a
    pseudonym fail the table."""
    dropped = [c for c in table_cfg.tagged("drop") if c in df.columns]
    pseudo = [c for c in table_cfg.tagged("pseudonymize") if c in df.columns]
    if not dropped and not pseudo:
        return df, {}
    out = df.drop(columns=dropped)
    done: dict[str, dict[str, Any]] = {}
    if pseudo:
        assert key is not None, "a table with pseudonymized columns needs the key"
        for col in pseudo:
            kind = table_cfg.columns[col]
            out[col], before, after = key.series(out[col], kind)
            check_distinct(where, col, before, after)
            done[col] = {"type": kind, "values": int(out[col].notna().sum()), "distinct": after}
    return out, table_record(done, dropped, key)


def check_distinct(where: str, column: str, before: int, after: int) -> None:
    """Fail when fewer distinct pseudonyms came out than distinct values went in."""
    if after != before:
        raise SeamlessError(
            f"{where}: column '{column}' has {before} distinct values but {after} distinct "
            "pseudonyms, so two values share a pseudonym and would be merged; nothing was "
            "written (report this: with 63 or more bits per pseudonym it should not happen)."
        )


def table_record(
    pseudonymized: dict[str, dict[str, Any]], dropped: list[str], key: Pseudonymizer | None
) -> dict[str, Any]:
    """A table's manifest `pii` entry: what was pseudonymized (counts), what was dropped."""
    record: dict[str, Any] = {"method": METHOD}
    if pseudonymized:
        assert key is not None
        record["key_fingerprint"] = key.fingerprint
    record["pseudonymized"] = pseudonymized
    record["dropped"] = list(dropped)
    return record


def dataset_record(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest's top-level `pii` entry from the tables' entries ({} when none has one)."""
    entries = {n: e["pii"] for n, e in tables.items() if e.get("pii")}
    if not entries:
        return {}
    prints = {e["key_fingerprint"] for e in entries.values() if e.get("key_fingerprint")}
    record: dict[str, Any] = {"method": METHOD}
    if prints:
        record["key_fingerprint"] = sorted(prints)[0]
    record["pseudonymized"] = {
        n: sorted(e["pseudonymized"]) for n, e in entries.items() if e["pseudonymized"]
    }
    record["dropped"] = {n: list(e["dropped"]) for n, e in entries.items() if e["dropped"]}
    return {"pii": record}


def without_dropped(info: dict[str, Any], table_cfg: TableConfig) -> dict[str, Any]:
    """A table's manifest info without per-column entries of its dropped columns."""
    dropped = set(table_cfg.tagged("drop"))
    if not dropped:
        return info
    out = dict(info)
    for field in ("invalid_values", "invalid_examples", "missing_markers"):
        if isinstance(out.get(field), dict):
            out[field] = {c: v for c, v in out[field].items() if c not in dropped}
    return out


def log_pii(where: str, record: dict[str, Any]) -> None:
    """One log line per table saying what was pseudonymized (and with which key's
    fingerprint) and what was dropped."""
    parts = []
    if record.get("pseudonymized"):
        cols = ", ".join(
            f"'{c}' ({e['values']} values, {e['distinct']} distinct)"
            for c, e in record["pseudonymized"].items()
        )
        parts.append(f"pseudonymized {cols} with key {record['key_fingerprint']}")
    if record.get("dropped"):
        parts.append("dropped " + ", ".join(f"'{c}'" for c in record["dropped"]))
    if parts:
        log.info("%s: %s (pii tags)", where, "; ".join(parts))
