"""Fuzz the config loader: whatever the text, only a SeamlessError may come out.

Bounded runs (max_examples, no deadline); the YAML bomb shapes are covered by the corpus.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.common.config import default_config_path, parse_config
from components.common.errors import SeamlessError

pytestmark = [pytest.mark.unit, pytest.mark.slow]

BUNDLED: dict[str, Any] = yaml.safe_load(default_config_path().read_text())
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# YAML-ish text: the characters YAML gives meaning to, plus keys the config knows.
# No `!!int`/`!!float`/`!!bool`/`!!timestamp`: PyYAML raises non-YAMLError exceptions for
# bad scalars under them, a known bug kept as corpus cases (config_*_tag_*).
_TOKENS = st.sampled_from(
    [":", " ", "\n", "  ", "-", "[", "]", "{", "}", ",", "&a", "*a", "!!str", "#",
     "'", '"', "|", ">", "?", "%YAML 1.2", "---", "...", "${X}", "${HOME:-x}", "\t", "\x00",
     "name", "tables", "model", "labels", "features", "source", "kind", "file", "1e400",
     ".inf", ".nan", "~", "null", "true", "0x1F", "0o17", "2024-01-01", "é", "🙂"]
)  # fmt: skip
yamlish = st.lists(st.one_of(_TOKENS, st.text(max_size=8)), max_size=40).map("".join)

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just("${SEAMLESS_FUZZ_UNSET}"),
)
values = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _check(text: str) -> None:
    try:
        parse_config(text, origin="fuzz.yaml")
    except SeamlessError as exc:
        assert str(exc).startswith("fuzz.yaml"), str(exc)


@FUZZ
@given(text=yamlish)
def test_random_yamlish_text_only_raises_seamless_error(text: str) -> None:
    _check(text)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BUNDLED)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """The bundled config with 1-3 edits: replace a value, delete a key, or add one."""
    cfg = copy.deepcopy(BUNDLED)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = cfg
        try:
            for step in path[:-1]:
                parent = parent[step]
            last = path[-1]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[last] = draw(values)
            elif action == "delete" and isinstance(parent, dict):
                del parent[last]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    return cfg


@FUZZ
@given(cfg=mutated())
def test_mutated_bundled_config_only_raises_seamless_error(cfg: dict[str, Any]) -> None:
    text = yaml.safe_dump(cfg, allow_unicode=True)
    _check(text)
