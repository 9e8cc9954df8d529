"""The package's structure, read from its imports, so it stays as designed.

Every import statement counts: top-level, inside functions and under TYPE_CHECKING,
since each is a dependency a reader has to follow.

- no import cycles among the modules of `components/` and `pipelines/`;
- nothing under `components/` imports `pipelines/` (pipelines compose components);
- `kfp` only in the component adapters (`component.py`) and the decorator they share;
- serving, monitoring and governance stand beside each other: serving and monitoring do
  not import each other, governance imports neither, and they use governance only
  through its public modules (audit, access control, the stage hooks). The prediction
  log they share is its own package, `components/predictions/`;
- serving is layered: the HTTP front (`serve/api/`) over the request core (`service.py`
  and the modules beside it) over the served model (`serve/models/`) and the feature
  lookup (`serve/lookup/`); no layer imports one above it, and models and lookup do not
  import each other;
- training does not reach into serving or monitoring, nor they into training: the model's
  input contract and the reference profile they share are in `components/common/`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("components", "pipelines")
KFP_ALLOWED = {"components.common.image"}  # `seamless_component`, the adapters' decorator
GOVERNANCE_PUBLIC = {
    "components.governance",
    "components.governance.access",
    "components.governance.audit",
    "components.governance.hooks",
}
SIDE_BY_SIDE = ("serve", "monitor", "governance")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(path: Path) -> Iterator[str]:
    """Every absolute import target of a module (`from a import b` yields a and a.b)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    return {
        name: {t for t in _imported(path) if t in MODULES and t != name}
        for name, path in MODULES.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            nxt = next(targets, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "components" and len(parts) > 1 else None


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_components_do_not_import_pipelines() -> None:
    wrong = sorted(
        f"{m} -> {t}"
        for m, path in MODULES.items()
        if m.startswith("components")
        for t in _imported(path)
        if t == "pipelines" or t.startswith("pipelines.")
    )
    assert wrong == []


def test_kfp_only_in_component_adapters() -> None:
    wrong = sorted(
        m
        for m, path in MODULES.items()
        if m.startswith("components")
        and not m.endswith(".component")
        and m not in KFP_ALLOWED
        and any(t == "kfp" or t.startswith("kfp.") for t in _imported(path))
    )
    assert wrong == []


def test_serving_monitoring_and_governance_stand_side_by_side() -> None:
    wrong = []
    for module, targets in _graph().items():
        mine = _stage(module)
        if mine not in SIDE_BY_SIDE:
            continue
        for target in targets:
            theirs = _stage(target)
            if theirs not in SIDE_BY_SIDE or theirs == mine:
                continue
            allowed = mine != "governance" and target in GOVERNANCE_PUBLIC
            if not allowed:
                wrong.append(f"{module} -> {target}")
    assert sorted(wrong) == []


def test_training_shares_contracts_through_common() -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if (_stage(module), _stage(target))
        in {("train", "serve"), ("train", "monitor"), ("serve", "train"), ("monitor", "train")}
    )
    assert wrong == []


def _serve_layer(module: str) -> str | None:
    """`api`, `core`, `models` or `lookup` for a module of components/serve/."""
    parts = module.split(".")
    if parts[:2] != ["components", "serve"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in {"api", "models", "lookup"} else "core"


def test_serving_is_layered() -> None:
    above = {"api": set(), "core": {"api"}, "models": {"api", "core", "lookup"},
             "lookup": {"api", "core", "models"}}  # fmt: skip
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if (mine := _serve_layer(module)) and _serve_layer(target) in above[mine]
    )
    assert wrong == []
    # The layers exist: a rename would otherwise make the rule vacuous.
    assert {_serve_layer(m) for m in MODULES} >= {"api", "core", "models", "lookup"}
