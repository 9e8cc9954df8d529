"""docs/kubernetes.md's NetworkPolicy flow table is the one generated from the rendered
policies (manifests/tools/flow_table.py), so the documented flows cannot drift."""

from __future__ import annotations

import pytest
from flow_table import BEGIN, DOC, END, replace_section, table
from k8s_objects import ROOT, Rendering

pytestmark = pytest.mark.manifests


def test_docs_flow_table_is_generated_from_the_policies(
    renderings: dict[str, Rendering],
) -> None:
    doc = DOC.read_text()
    generated = table({name: r.objects for name, r in renderings.items()})
    assert replace_section(doc, generated) == doc, (
        f"{DOC.relative_to(ROOT)}: the flow table differs from the rendered NetworkPolicies; "
        "run `.venv/bin/python manifests/tools/flow_table.py --write`"
    )


def test_the_table_names_every_flow_and_outside_peer(renderings: dict[str, Rendering]) -> None:
    generated = table({name: r.objects for name, r in renderings.items()})
    for text in (
        "| serving | mlflow (5000), postgres (5432), redis (6379) | all |",
        "`allow-apiserver-egress` | kind |",
        "`allow-apiserver-egress` | production |",
        "`kind-nodeport-ingress` | kind |",
        "`ingress-controller` | production |",
    ):
        assert text in generated, f"generated flow table lacks {text!r}:\n{generated}"


def test_markers_are_required() -> None:
    with pytest.raises(SystemExit, match="expected one"):
        replace_section("no markers here", "table")
    with pytest.raises(SystemExit, match="expected one"):
        replace_section(f"{END}\n{BEGIN}\n", "table")
    assert replace_section(f"a\n{BEGIN}\nold\n{END}\nb", "new") == f"a\n{BEGIN}\nnew\n{END}\nb"
