"""A directed graph as SVG boxes and arrows, laid out left to right by depth.

Each node sits in the column of its longest path from a root, in the order nodes were
added within a column; edges are arrows from a box's right side to the next box's left.
Enough for lineage chains (tens of nodes), not a general graph layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.dashboard.markup import Safe, el, svg

KIND_FILL = {
    "source": "#eef6ff",
    "snapshot": "#f0f7ee",
    "validation": "#fff8e5",
    "features": "#f5f0ff",
    "training": "#fff0f5",
    "model": "#e6f4ea",
    "deployment": "#eaeef2",
    "batch": "#fdf2e9",
    "request": "#fff5e0",
    "gap": "#ffebe9",
}
BOX_W, BOX_H, GAP_X, GAP_Y, LINE_CHARS = 210, 62, 54, 18, 30


@dataclass
class Node:
    id: str
    title: str
    lines: list[str] = field(default_factory=list)
    kind: str = "source"
    href: str | None = None


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add(self, node: Node, *after: str) -> Node:
        self.nodes.append(node)
        self.edges.extend((a, node.id) for a in after)
        return node


def _depths(graph: Graph) -> dict[str, int]:
    depth = {n.id: 0 for n in graph.nodes}
    # Longest path by relaxation; the chains are acyclic and short.
    for _ in range(len(graph.nodes)):
        changed = False
        for a, b in graph.edges:
            if a in depth and b in depth and depth[b] < depth[a] + 1:
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    return depth


def _cut(value: str) -> str:
    return value if len(value) <= LINE_CHARS else value[: LINE_CHARS - 1] + "…"


def render(graph: Graph, css_class: str = "lineage") -> Safe:
    depth = _depths(graph)
    columns: dict[int, list[Node]] = {}
    for node in graph.nodes:
        columns.setdefault(depth[node.id], []).append(node)
    place: dict[str, tuple[float, float]] = {}
    for col, nodes in columns.items():
        for row, node in enumerate(nodes):
            place[node.id] = (10 + col * (BOX_W + GAP_X), 10 + row * (BOX_H + GAP_Y))
    width = 20 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = 20 + max((len(v) for v in columns.values()), default=1) * (BOX_H + GAP_Y) - GAP_Y
    parts: list[Safe] = [
        el(
            "defs",
            el(
                "marker",
                el("path", d="M0,0 L10,5 L0,10 z", fill="#57606a"),
                id="arrow",
                viewBox="0 0 10 10",
                refX="10",
                refY="5",
                markerWidth="8",
                markerHeight="8",
                orient="auto",
            ),
        )
    ]
    for a, b in graph.edges:
        if a not in place or b not in place:
            continue
        (ax, ay), (bx, by) = place[a], place[b]
        x1, y1, x2, y2 = ax + BOX_W, ay + BOX_H / 2, bx, by + BOX_H / 2
        mid = (x1 + x2) / 2
        parts.append(
            el(
                "path",
                d=f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}",
                fill="none",
                stroke="#57606a",
                stroke_width="1.5",
                marker_end="url(#arrow)",
                class_="edge",
                data_from=a,
                data_to=b,
            )
        )
    for node in graph.nodes:
        x, y = place[node.id]
        body = [
            el("title", "\n".join([node.title, *node.lines])),
            el(
                "rect",
                x=f"{x:.0f}",
                y=f"{y:.0f}",
                width=str(BOX_W),
                height=str(BOX_H),
                rx="6",
                fill=KIND_FILL.get(node.kind, "#ffffff"),
                stroke="#8c959f",
            ),
            el("text", _cut(node.title), x=f"{x + 8:.0f}", y=f"{y + 18:.0f}", class_="node-title"),
        ]
        for i, line in enumerate(node.lines[:2]):
            body.append(
                el(
                    "text",
                    _cut(line),
                    x=f"{x + 8:.0f}",
                    y=f"{y + 36 + i * 16:.0f}",
                    class_="node-line",
                )
            )
        group = el("g", body, class_=f"node kind-{node.kind}", data_node=node.id)
        parts.append(el("a", group, href=node.href) if node.href else group)
    return svg(parts, css_class, width, height)
